"""Virtual time: a clock and an ordered queue of future events.

Ties are broken by insertion order (a running sequence number), never by
comparing payloads, so a run is a pure function of its inputs and seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING
from typing import Final
from typing import Literal
from typing import TypeVar

if TYPE_CHECKING:
    from .bus import Port
    from .loop import Check
    from .procs import MasterProc
    from .procs import ServantProc

INF = float("inf")

# Event kinds (small ints: the loop compares them on every event).  Typed as literals, so an entry's kind
# tells mypy what its payloads are.
DELIVER: Final = 0  # a frame reaching ports: (offset, [(port, data, corrupted)])
NODE: Final = 1  # a master or servant is due: (proc, None)
EV: Final = 2  # a servant's car is due: (proc, None)
SCRIPT: Final = 3  # a scripted step: (callback(t), None)
CHECK: Final = 4  # an invariant comes due: (servant or None, what)

Targets = list[tuple["Port", bytes, bool]]
_T = TypeVar("_T")

# (time, seq, kind, a, b): one tuple type per kind, told apart by ``entry[2]``
Entry = (tuple[float, int, Literal[0], int, Targets]
         | tuple[float, int, Literal[1], "MasterProc | ServantProc", None]
         | tuple[float, int, Literal[2], "ServantProc", None]
         | tuple[float, int, Literal[3], Callable[[float], None], None]
         | tuple[float, int, Literal[4], "ServantProc | None", "Check"])


class EventQueue:
    """A min-heap of (time, seq, kind, a, b); ``kind`` is a small int chosen by the caller."""

    __slots__ = ("heap", "seq", "now", "steps")

    def __init__(self, start: float = 0.0) -> None:
        self.heap: list[Entry] = []
        self.seq = 0
        self.now = start
        self.steps = 0  # events handled (the loop counts them)

    # one push per kind, each building its own entry type (a pusher cannot pair a kind with the wrong payloads);
    # each takes the next sequence number and never queues in the past: time only moves forward

    def push_deliver(self, t: float, offset: int, targets: Targets) -> None:
        """A frame (its id ``offset``) reaching ``targets`` at ``t``."""
        self.seq += 1  # (inline: one push per event handled)
        heapq.heappush(self.heap, (t if t > self.now else self.now, self.seq, DELIVER, offset, targets))

    def push_node(self, t: float, proc: MasterProc | ServantProc) -> None:
        """A node due at ``t``."""
        self.seq += 1  # (inline: one push per event handled)
        heapq.heappush(self.heap, (t if t > self.now else self.now, self.seq, NODE, proc, None))

    def push_ev(self, t: float, proc: ServantProc) -> None:
        """A servant's car due at ``t``."""
        self.seq += 1  # (inline: one push per event handled)
        heapq.heappush(self.heap, (t if t > self.now else self.now, self.seq, EV, proc, None))

    def push_check(self, t: float, proc: ServantProc | None, what: Check) -> None:
        """An invariant check due at ``t`` (for ``proc``, or the whole installation)."""
        self.seq += 1  # (inline: one push per event handled)
        heapq.heappush(self.heap, (t if t > self.now else self.now, self.seq, CHECK, proc, what))

    def push_script(self, t: float, callback: Callable[[_T, float], None], arg: _T) -> None:
        """Queue ``callback(arg, t)`` for ``t``."""
        if t < self.now:
            t = self.now
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, SCRIPT, partial(callback, arg), None))

    def pop(self) -> Entry:
        entry = heapq.heappop(self.heap)
        if entry[0] > self.now:
            self.now = entry[0]
        return entry

    def peek_time(self) -> float:
        return self.heap[0][0] if self.heap else INF

    def __len__(self) -> int:
        return len(self.heap)
