"""The one JSON language of every command: record kinds, the time base, and how serials are written.

Every JSON object a command prints starts with ``record``, its kind (one
schema per kind in ``schemas/``, described in docs/JSON.md).  The same
names mean the same thing everywhere: ``t`` and ``*_t`` are points in time
in the chosen time base, ``*_s`` are durations in seconds, ``*_a`` currents
in amperes, ``serial`` is a unit's 32-bit serial and ``serial_tag`` its low
15 bits, both as hexadecimal text, and pilot states are the letters A-F.

Time: ``absolute`` is UNIX time (seconds since 1970, as candump -L and
python-can write) or, for a capture, the capture's own timestamps;
``relative`` is seconds since the command started or since the capture's
first frame.  Text defaults to relative, JSON to absolute; ``--time``
chooses.  The simulator's clock starts at 0, so for ``sim`` both are the
same.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass


class RecordKind(enum.StrEnum):
    """The value of ``record``: which schema a JSON object follows."""

    FRAME = "frame"  # a protocol frame, decoded (monitor, decode)
    BAD_FRAME = "bad-frame"  # a frame that cannot be decoded (monitor, decode)
    UNREADABLE = "unreadable"  # a capture line or record that is not a frame (decode)
    ANOMALY = "anomaly"  # a flag raised as it happens (monitor)
    EVENT = "event"  # something a node did or saw (master, servant)
    STATUS = "status"  # a node's periodic status (master, servant)
    STATE = "state"  # every EVSE of a simulation at one instant (sim)
    SUMMARY = "summary"  # the closing object of a run or a capture (sim, monitor, decode)
    BUSLOAD = "busload"  # bus utilisation (busload)
    CONFIG = "config"  # an installation file checked (check-config)


class TimeMode(enum.StrEnum):
    ABSOLUTE = "absolute"
    RELATIVE = "relative"

    @classmethod
    def choose(cls, given: str | None, as_json: bool) -> TimeMode:
        """``--time`` if given, else absolute for JSON (records of several processes line up) and
        relative for text (short numbers a person reads)."""
        if given is not None:
            return cls(given)
        return cls.ABSOLUTE if as_json else cls.RELATIVE


@dataclass
class TimeBase:
    """Maps a command's own clock onto the time it prints: ``t + offset``, to the microsecond.

    ``offset`` None: relative to the first time mapped (a capture's first frame).
    """

    mode: TimeMode = TimeMode.ABSOLUTE
    offset: float | None = 0.0

    def __call__(self, t: float) -> float:
        if self.offset is None:
            self.offset = -t
        return round(t + self.offset, 6) + 0.0  # never -0.0

    def opt(self, t: float | None) -> float | None:
        return None if t is None else self(t)

    @classmethod
    def monotonic(cls, mode: TimeMode, start: float, wall: Callable[[], float] = time.time,
                  mono: Callable[[], float] = time.monotonic) -> TimeBase:
        """For a process whose clock is ``time.monotonic()`` and that started at ``start``.

        Absolute: UNIX time through one offset taken now, so printed times never jump when the
        wall clock is set.  Relative: from ``start`` (rounded as records are, so the first
        record of a run is 0.0, never a hair below).
        """
        if mode is TimeMode.ABSOLUTE:
            return cls(mode, wall() - mono())
        return cls(mode, -round(start, 6))

    @classmethod
    def since_start(cls, mode: TimeMode, wall_at_start: float) -> TimeBase:
        """For a clock that reads seconds since the command started (monitor)."""
        return cls(mode, wall_at_start if mode is TimeMode.ABSOLUTE else 0.0)


def serial_hex(serial: int) -> str:
    """A unit's 32-bit serial as everywhere: ``0x6bb08461``."""
    return f"{serial:#010x}"


def serial_tag_hex(tag: int) -> str:
    """The 15-bit serial tag a STATUS carries (the serial's low bits): ``0x0461``."""
    return f"{tag:#06x}"
