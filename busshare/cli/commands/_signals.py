"""SIGTERM ends a run as Ctrl-C does: `timeout 60 busshare sim --log run.log`, a supervisor stopping it.

Python's default for SIGTERM kills the process on the spot: no summary, and a capture or plot still to
be written is lost.  The commands that stop on it anyway (master, servant, monitor) handle it
themselves; the ones that run to an end (sim, decode) treat it as the interrupt they already handle.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside: SIGTERM raises KeyboardInterrupt in the main thread (elsewhere there is nothing to set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
