"""A progress line on a terminal: how far a long run is, how fast it goes, and when it will end.

Drawn in place on stderr (``\\r`` and erase-to-end-of-line) at most every
``every_s`` wall seconds, and erased by ``close``, so what the command prints
on stdout is all that stays on the screen.  Only for terminals: in a pipe or
a CI log it would be noise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TextIO


def wanted(stream: TextIO) -> bool:
    """A progress line belongs on ``stream`` only if it is a terminal that understands ``\\r`` and erasing."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def clock_text(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``update(done)`` as often as convenient; it redraws only every ``every_s`` of wall time."""

    def __init__(self, out: TextIO, total: float, label: str = "simulated", every_s: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.total = total
        self.label = label
        self.every_s = every_s
        self.clock = clock
        self.start = clock()
        self.next_draw = self.start  # the first update draws at once
        self.drawn = False

    def line(self, done: float, wall: float) -> str:
        elapsed = wall - self.start
        pct = 100.0 * done / self.total if self.total > 0 else 100.0
        text = f"{self.label} {done:.0f} of {self.total:.0f} s ({pct:.0f} %)"
        if elapsed > 0 and done > 0:
            rate = done / elapsed
            text += f", {rate:,.0f}x real time, ETA {clock_text((self.total - done) / rate)}"
        else:
            text += ", ETA --:--"
        return text

    def update(self, done: float) -> None:
        wall = self.clock()
        if wall < self.next_draw:
            return
        self.next_draw = wall + self.every_s
        self.out.write("\r" + self.line(done, wall) + "\x1b[K")
        self.out.flush()
        self.drawn = True

    def close(self, done: float | None = None) -> None:
        """Draw the last state (when given), then erase the line."""
        if done is not None:
            self.next_draw = self.clock()
            self.update(done)
        if self.drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self.drawn = False
