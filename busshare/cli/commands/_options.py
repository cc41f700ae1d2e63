"""Option types shared by every command: each value is checked when the command line is parsed.

A bad number is a usage error of the command that got it (its own usage, exit
2), before any bus, port or file is opened and before a long run starts:
``argument --status-interval: -1 must be above 0 s``.  The rules are the ones
of ``busshare.core.problems`` (the same words as a config file's), applied to text.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
from collections.abc import Callable
from collections.abc import Sequence
from typing import TypeVar

from ...core import problems
from ...core.problems import Invalid
from ...core.problems import number
from ...core.problems import within
from ...frames import FIRST_SERVANT
from ...frames import LAST_SERVANT
from ...frames import MAX_CIRCUIT_DA
from ...frames import MAX_EVSE_DA
from ...frames import MAX_MASTER_ID
from ...frames import MIN_OFFER_DA
from ...frames import STATUS_MEASURED_MAX_DA

T = TypeVar("T")

MAX_SECONDS = 86400.0  # a timer or period above a day is a typo
MIN_STATUS_INTERVAL = 0.1  # the loop ticks every 50 ms: a shorter period is only a flood of lines
MIN_SPEED = 0.001  # slower would wait days for each simulated step
CAN_BITRATES = (5_000, 1_000_000)  # classic CAN (and a CAN FD arbitration phase)
CAN_DATA_BITRATES = (5_000, 16_000_000)  # CAN FD data phase
MODBUS_BAUDS = (300, 1_000_000)
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def option(convert: Callable[[str], T], name: str) -> Callable[[str], T]:
    """An argparse ``type=`` from a converter that raises ``Invalid``: the message shows the text as typed."""

    def parse(text: str) -> T:
        try:
            return convert(text)
        except Invalid as exc:
            shown = text if text and text.isprintable() and " " not in text else repr(text)
            raise argparse.ArgumentTypeError(f"{shown} {exc}") from None

    parse.__name__ = name  # argparse names the type in some messages: never "<lambda>"
    return parse


def _number(text: object) -> float:
    try:
        return number(float(str(text)))  # (finite)
    except ValueError:
        raise Invalid("is not a number") from None


def _integer(text: object) -> int:
    try:
        return int(str(text), 0)  # 10, 0x1F, 0o17, 0b101
    except ValueError:
        raise Invalid("is not an integer") from None


def integer(low: int | None = None, high: int | None = None, unit: str = "") -> Callable[[str], int]:
    return option(within(_integer, low, high, unit=unit), "integer")


def seconds(high: float = MAX_SECONDS, low: float = 0.0) -> Callable[[str], float]:
    """A time: above 0 s (or at least ``low``) and at most ``high``."""
    return option(within(_number, low, high, low_open=not low, unit="s"), "seconds")


#: how long to run: above 0 s and finite (no upper bound: a long soak is fine)
duration = option(within(_number, 0.0, low_open=True, unit="s"), "duration")


def deciamps(low_da: int, high_da: int, zero: bool = False) -> Callable[[str], int]:
    """A current in A (0.1 A resolution) -> 0.1 A units, within ``low_da``-``high_da`` (or 0 when ``zero``)."""
    span = f"{low_da / 10:g}-{high_da / 10:g} A"
    rule = f"must be 0 or {span}" if zero else f"must be {span}"

    def convert(text: str) -> int:
        da = problems.deciamps(_number(text))  # (exact at any size: 1e308 A is out of range, not an overflow)
        if not (zero and da == 0) and not low_da <= da <= high_da:
            raise Invalid(rule)
        return da

    return option(convert, "current")


def positive_amps(high_da: int = MAX_CIRCUIT_DA) -> Callable[[str], float]:
    """A current in A above 0 (any resolution), as a float."""
    return option(within(_number, 0.0, high_da / 10, low_open=True, unit="A"), "current")


def _speed(text: object) -> float:
    if text == "max":
        return float("inf")
    try:
        return within(_number, MIN_SPEED)(text)
    except Invalid:
        raise Invalid(f"must be a number from {MIN_SPEED:g} (1 = real time) or max") from None


#: ``max`` (as fast as possible) or simulated seconds per wall second, at least MIN_SPEED
speed = option(_speed, "speed")


#: the options every command shares
address = integer(FIRST_SERVANT, LAST_SERVANT)
byte = integer(0, 255)
master_id = integer(0, MAX_MASTER_ID)
serial = integer(0, 0xFFFFFFFF)
servant_count = integer(1, LAST_SERVANT - FIRST_SERVANT + 1)
evse_amps = deciamps(MIN_OFFER_DA, MAX_EVSE_DA)
failsafe_amps = deciamps(MIN_OFFER_DA, MAX_EVSE_DA, zero=True)
meter_amps = deciamps(0, STATUS_MEASURED_MAX_DA)
can_bitrate = integer(*CAN_BITRATES, unit="bit/s")
can_data_bitrate = integer(*CAN_DATA_BITRATES, unit="bit/s")
modbus_baud = integer(*MODBUS_BAUDS, unit="baud")
kwh = option(within(_number, 0.0, unit="kWh"), "energy")
id_base = integer(0)


def output_file(suffixes: Sequence[str], what: str) -> Callable[[str], str]:
    """A file a command will write: a known suffix, in a directory that exists and can be written.

    Checked before the run, so a long run never ends with "cannot write".
    """

    def check(text: str) -> str:
        if not text.lower().endswith(tuple(suffixes)):
            raise Invalid(f"is not a {what} file name: use {', '.join(suffixes)}")
        return writable(text)

    return option(check, "file")


def writable(text: str) -> str:
    """A path that can be written: not a directory, in a directory that exists, and opened for writing once.

    Opened, not asked (``os.access`` says yes to root everywhere, /proc included); a file that was not
    there is removed again, one that was is left as it was (opened to append, nothing written).
    """
    folder = os.path.dirname(text) or "."
    if os.path.isdir(text):
        raise Invalid("is a directory")
    if not os.path.isdir(folder):
        raise Invalid(f"cannot be written: no directory {folder}")
    existed = os.path.lexists(text)
    try:
        os.close(os.open(text, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666))
    except OSError as exc:
        raise Invalid(f"cannot be written: {(exc.strerror or type(exc).__name__).lower()}") from None
    if not existed:
        with contextlib.suppress(OSError):
            os.unlink(text)
    return text


def plot_file(text: str) -> str:
    """An image file for ``--plot``; refuses early when matplotlib is not installed."""
    path = output_file(PLOT_SUFFIXES, "plot")(text)
    if importlib.util.find_spec("matplotlib") is None:
        raise argparse.ArgumentTypeError("needs matplotlib: pip install matplotlib")
    return path


def set_type(parser: argparse.ArgumentParser, dest: str, convert: Callable[[str], object]) -> None:
    """Give an option added by someone else's helper (python-can's bus options) our type."""
    for action in parser._actions:  # argparse has no public way to reach an added option
        if action.dest == dest:
            action.type = convert
