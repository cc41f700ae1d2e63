"""Stopping a real busshare process with a signal once it is under way, and collecting what it wrote."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def signalled(p: subprocess.Popen[str], sig: int, under_way: Callable[[subprocess.Popen[str]], T]) -> tuple[T, str, str]:
    """``under_way(p)`` (it waits for the process to get going), then ``sig``: (what it returned, the rest of
    stdout, stderr). A process that outlives that is killed, so no test leaves one behind."""
    try:
        got = under_way(p)
        p.send_signal(sig)
        rest, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return got, rest, err
