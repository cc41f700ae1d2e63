"""The errors busshare raises on purpose: one base, so the CLI can tell a user's mistake from a bug.

Every subclass carries a message that is one line a user can act on.  The
command line catches ``BusshareError`` (and ``OSError``) and prints that line;
anything else is a bug and keeps its traceback.

    BusshareError
    ├── UserError      a bad option, a missing file, a busy port
    ├── ConfigError    an installation file (``busshare.core.config``)
    ├── FrameError     bytes that are not a protocol frame (``busshare.frames``; also a ValueError)
    ├── RtuError       bytes that are not Modbus RTU (``busshare.transport.modbus.rtu``; also a ValueError)
    └── ScenarioError  a simulator scenario file (``busshare.sim.scenario``)
"""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every unprintable character escaped (``\\x1b``, ``\\x07``): what we print never drives the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class BusshareError(Exception):
    """Base of every error that is the input's fault, not the program's: ``str(e)`` is one line."""


class UserError(BusshareError):
    """A mistake the user can fix (bad option, missing file...): printed as one line."""


class ConfigError(BusshareError):
    """An installation config problem; ``str(e)`` is one line naming the file (when known), the key and the rule.

    ``key`` is the key path of the problem (``servant[2].min_a``, ``site.breaker_a``; ``""`` for
    the file as a whole) and ``path`` the file, when the config came from one.
    """

    def __init__(self, message: str, key: str = "", path: str | None = None) -> None:
        self.message, self.key, self.path = message, key, path
        where = [p for p in (path, key) if p]
        super().__init__(": ".join([*where, message]))
