"""busshare: wired EV-charger current sharing over CAN and Modbus RTU.

The public API, for a program that embeds a node rather than running the
``busshare`` command::

    from busshare import Master, Servant, Link, Config, Timing, SetLimit, ...

Every name is imported on first use (PEP 562), so ``import busshare`` costs
nothing and pulls in neither python-can, pymodbus nor matplotlib. Not even
``busshare.Runtime`` does: it drives any ``Transport`` it is given, and only
opening a CAN or Modbus transport (``busshare.transport``) loads its library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE: dict[str, str] = {
    # the sans-IO nodes and the link layer (rule 8)
    "Master": "busshare.master",
    "Servant": "busshare.servant",
    "Link": "busshare.protocol.link",
    "Received": "busshare.protocol.link",
    # configuration as data
    "Config": "busshare.core.config",
    "ServantConfig": "busshare.core.config",
    "Timing": "busshare.core.config",
    "config_from_mapping": "busshare.core.config",
    "parse_config": "busshare.core.config",
    "load_config": "busshare.core.config",
    # the messages and their codec
    "Message": "busshare.frames",
    "MsgType": "busshare.frames",
    "Heartbeat": "busshare.frames",
    "SetLimit": "busshare.frames",
    "Ack": "busshare.frames",
    "Nack": "busshare.frames",
    "Release": "busshare.frames",
    "Request": "busshare.frames",
    "Status": "busshare.frames",
    "Join": "busshare.frames",
    "AckHow": "busshare.frames",
    "NackCode": "busshare.frames",
    "ReleaseReason": "busshare.frames",
    "encode": "busshare.frames",
    "decode": "busshare.frames",
    "PilotState": "busshare.protocol.pilot",
    # the hardware a servant drives, and the runtime that runs a node on a bus
    "EvseHardware": "busshare.core.hardware",
    "Runtime": "busshare.io.runtime",
    # the errors: one base
    "BusshareError": "busshare.errors",
    "ConfigError": "busshare.errors",
    "FrameError": "busshare.frames",
    "UserError": "busshare.errors",
}

# (spelt out for linters; a test keeps it equal to _WHERE)
__all__ = [
    "__version__", "Master", "Servant", "Link", "Received", "Config", "ServantConfig", "Timing",
    "config_from_mapping", "parse_config", "load_config", "Message", "MsgType", "Heartbeat", "SetLimit", "Ack",
    "Nack", "Release", "Request", "Status", "Join", "AckHow", "NackCode", "ReleaseReason", "encode", "decode",
    "PilotState", "EvseHardware", "Runtime", "BusshareError", "ConfigError", "FrameError", "UserError",
]


def __getattr__(name: str) -> object:
    """Import a public name from its module on first use, and keep it."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'busshare' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


if TYPE_CHECKING:  # what the names are, for type checkers (not imported at run time)
    from .core.config import Config
    from .core.config import ServantConfig
    from .core.config import Timing
    from .core.config import config_from_mapping
    from .core.config import load_config
    from .core.config import parse_config
    from .core.hardware import EvseHardware
    from .errors import BusshareError
    from .errors import ConfigError
    from .errors import UserError
    from .frames import Ack
    from .frames import AckHow
    from .frames import FrameError
    from .frames import Heartbeat
    from .frames import Join
    from .frames import Message
    from .frames import MsgType
    from .frames import Nack
    from .frames import NackCode
    from .frames import Release
    from .frames import ReleaseReason
    from .frames import Request
    from .frames import SetLimit
    from .frames import Status
    from .frames import decode
    from .frames import encode
    from .io.runtime import Runtime
    from .master import Master
    from .protocol.link import Link
    from .protocol.link import Received
    from .protocol.pilot import PilotState
    from .servant import Servant
