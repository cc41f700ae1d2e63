"""Reading what a child process wrote to a pseudo-terminal (for tests of what a person sees)."""

from __future__ import annotations

import os
import select


def read_until_closed(fd: int, quiet_s: float = 60.0) -> bytes:
    """Everything written to the terminal whose master side is ``fd``, until the child closes it
    (or nothing comes for ``quiet_s``: a hang guard, not a timing assertion)."""
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], quiet_s)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    return out
