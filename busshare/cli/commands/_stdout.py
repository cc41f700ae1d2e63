"""A closed stdout (`busshare ... | head -1`): the reader went away, which is no error of the run's.

A command stops then, as README.md's exit-status table says, but finishes what it must do anyway (a
node's shutdown, a simulation's capture file); so stdout is pointed at /dev/null first, and what is
still written there goes nowhere instead of raising ``BrokenPipeError`` again.
"""

from __future__ import annotations

import os
from typing import TextIO


def silence(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at /dev/null (a stream with no descriptor, a test's, is left alone)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
