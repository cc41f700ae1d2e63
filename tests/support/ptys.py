"""Reading what a child process wrote to a pseudo-terminal (for tests of what a person sees)."""

from __future__ import annotations

import os
import select
from collections.abc import Callable


def read_into(out: bytearray, fd: int, done: Callable[[bytes], bool], quiet_s: float) -> bool:
    """Add what is written to the terminal whose master side is ``fd`` to ``out`` until ``done(out)`` or the
    child closes it: False if nothing came for ``quiet_s`` first (a hang guard, not a timing assertion)."""
    while not done(bytes(out)):
        ready, _, _ = select.select([fd], [], [], quiet_s)
        if not ready:
            return False
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            return True
        if not chunk:
            return True
        out += chunk
    return True


def read_until_closed(fd: int, quiet_s: float = 60.0) -> bytes:
    """Everything written to the terminal whose master side is ``fd``, until the child closes it
    (or nothing comes for ``quiet_s``)."""
    out = bytearray()
    read_into(out, fd, lambda _: False, quiet_s)
    return bytes(out)
