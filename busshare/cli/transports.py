"""The bus options of `busshare master`, `servant` and `monitor`, and the transports they open.

Every one of these commands runs on CAN (python-can's own ``-i/-c/-b``
options, the id base) or, with ``--modbus PORT``, on a Modbus RTU line.  The
options are one CAN group and one Modbus group for all three commands; what
differs per command (the master's reply timeout, the servant's bench pilot
file, the monitor's never-transmit promise) is said by its ``Role``.
"""

from __future__ import annotations

import argparse
from enum import Enum

import can
import can.cli
import serial

from ..errors import UserError
from ..protocol.canid import IdScheme
from ..transport.can import CanTransport
from ..transport.can import open_bus
from ..transport.modbus.registers import DEFAULT_REPLY_TIMEOUT
from ..transport.modbus.servant import open_serial
from .commands import _options as opt

DEFAULT_BAUD = 19200
#: python-can's options that name and configure the bus (``can.Bus`` keyword arguments)
_BUS_KEYS = ("channel", "interface", "bitrate", "fd", "data_bitrate", "timing")


class Role(Enum):
    """The command that takes the bus options: what it does on a Modbus line."""

    MASTER = "master"
    SERVANT = "servant"
    MONITOR = "monitor"


_PORT_HELP = {
    Role.MASTER: "serial port of the RS-485 line (e.g. /dev/ttyUSB0)",
    Role.SERVANT: "serial port of the RS-485 line (e.g. /dev/ttyUSB0)",
    Role.MONITOR: "sniff this RS-485 serial port (never transmits)",
}


def add_bus_arguments(parser: argparse.ArgumentParser, role: Role) -> None:
    """The CAN options, then the Modbus ones (``--modbus PORT`` picks Modbus)."""
    add_can_arguments(parser)
    add_modbus_arguments(parser, role)


def add_can_arguments(parser: argparse.ArgumentParser) -> None:
    """python-can's own -i/-c/-b/--bus-kwargs options, plus the id base (every number checked when parsed)."""
    can.cli.add_bus_arguments(parser)
    opt.set_type(parser, "bitrate", opt.can_bitrate)
    opt.set_type(parser, "data_bitrate", opt.can_data_bitrate)
    parser.add_argument(
        "--id-base", type=opt.id_base, default=0, metavar="ID",
        help="first of the protocol's 512 CAN ids (a multiple of 0x200; default 0x000)",
    )
    parser.add_argument("--extended", action="store_true", help="use 29-bit ids")


def add_modbus_arguments(parser: argparse.ArgumentParser, role: Role) -> None:
    """The one Modbus option group: the port and baud rate, and what only ``role`` needs."""
    g = parser.add_argument_group("Modbus RTU (instead of CAN)")
    g.add_argument("--modbus", metavar="PORT", default=None, help=_PORT_HELP[role])
    g.add_argument("--baud", type=opt.modbus_baud, default=DEFAULT_BAUD, help=f"Modbus baud rate (default {DEFAULT_BAUD})")
    if role is Role.MASTER:
        g.add_argument("--reply-timeout", type=opt.seconds(10.0), default=DEFAULT_REPLY_TIMEOUT, metavar="S",
                       help=f"time a servant has to start its reply (default {DEFAULT_REPLY_TIMEOUT} s)")
    elif role is Role.SERVANT:
        g.add_argument("--pilot-file", metavar="FILE", default=None,
                       help="bench: read the pilot state (one letter A-F) from FILE every tick; the meter follows "
                       "the offer (for demos and tests)")


def on_modbus(args: argparse.Namespace) -> bool:
    """Whether the options name a Modbus line rather than a CAN bus."""
    return bool(args.modbus)


def can_ids(args: argparse.Namespace) -> IdScheme:
    """The protocol's CAN ids from ``--id-base`` and ``--extended``."""
    try:
        return IdScheme(args.id_base, args.extended)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def bus_config(args: argparse.Namespace) -> dict[str, object]:
    """python-can's keyword arguments from its options (those given), ``--bus-kwargs`` last."""
    config: dict[str, object] = {key: getattr(args, key) for key in _BUS_KEYS if key in args}
    config.update(getattr(args, "bus_kwargs", None) or {})
    return config


def open_can(args: argparse.Namespace) -> CanTransport:
    """The CAN transport the options name (``udp_multicast`` when none is named)."""
    ids = can_ids(args)
    return CanTransport(open_bus(bus_config(args)), ids)


#: python-can's options as typed, by their ``args`` name (given only: python-can leaves the others out of ``args``)
_CAN_OPTIONS = {"interface": "-i/--interface", "channel": "-c/--channel", "bitrate": "-b/--bitrate", "fd": "--fd",
                "data_bitrate": "--data-bitrate", "timing": "--timing", "bus_kwargs": "--bus-kwargs"}


def open_line(args: argparse.Namespace) -> serial.Serial:
    """The Modbus line's serial port, locked for this process; a CAN option beside ``--modbus`` is refused first."""
    given = [name for key, name in _CAN_OPTIONS.items() if key in args]
    given += ["--id-base"] if getattr(args, "id_base", 0) else []
    given += ["--extended"] if getattr(args, "extended", False) else []
    if given:
        raise UserError(f"{given[0]} is a CAN option, but --modbus {args.modbus} runs on a Modbus RTU line: "
                        "give one or the other")
    return open_serial(args.modbus, args.baud)
