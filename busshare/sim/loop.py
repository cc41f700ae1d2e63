"""The event loop: virtual time jumps from one queued event to the next, and each is handed to its handler.

Event kinds are small ints in the queue entries (``EventQueue`` compares times and sequence numbers only,
never payloads, so ties keep insertion order).  The loop knows nothing of nodes, cars or checks: the
``Handlers`` it is given do.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING
from typing import Protocol

from .bus import Port
from .clock import CHECK
from .clock import DELIVER
from .clock import EV
from .clock import NODE
from .clock import SCRIPT
from .clock import EventQueue

if TYPE_CHECKING:
    from .procs import MasterProc
    from .procs import ServantProc

__all__ = ["CHECK", "DELIVER", "EV", "NODE", "SCRIPT", "Check", "Handlers", "run_events"]


class Check(Enum):
    """What a CHECK event re-examines when it comes due."""

    FAILSAFE = "failsafe"  # rule 4: the servant's failsafe deadline
    HOLD = "hold"  # rule 4: failsafe_hold later
    CUTOFF = "cutoff"  # a non-compliant car's cut-off bound
    WASTE = "waste"  # capacity unused while a car wants more
    STARVE = "starve"  # a car waiting for current
    QUIET = "quiet"  # the quiet conditions settled: re-arm the service checks
    PAUSE = "pause"  # a paused or resumed car's promises (sim/pause_checks.py)


class Handlers(Protocol):
    """What each kind of event does (the simulation)."""

    def deliver(self, t: float, offset: int, targets: list[tuple[Port, bytes, bool]]) -> None: ...

    def master_due(self, m: MasterProc, t: float) -> None: ...

    def servant_due(self, p: ServantProc, t: float) -> None: ...

    def ev_due(self, p: ServantProc, t: float) -> None: ...

    def check_due(self, p: ServantProc | None, what: Check, t: float) -> None: ...


def run_events(queue: EventQueue, t_end: float, handlers: Handlers,
               on_step: Callable[[], None] | None = None) -> None:
    """Handle every event due by ``t_end`` in time order, counting them in ``queue.steps``.

    ``on_step`` runs after each one.  SCRIPT events carry their own callback ``a(t)``.
    """
    heap = queue.heap
    pop = heapq.heappop
    deliver, ev_due, check_due = handlers.deliver, handlers.ev_due, handlers.check_due
    master_due, servant_due = handlers.master_due, handlers.servant_due
    while heap and heap[0][0] <= t_end:
        e = pop(heap)  # (time, seq, kind, a, b): indexed, not unpacked, so the kind tells mypy what a and b are
        t = e[0]
        if t > queue.now:
            queue.now = t
        if e[2] == DELIVER:
            deliver(t, e[3], e[4])
        elif e[2] == NODE:
            a = e[3]
            if a.is_master:
                master_due(a, t)
            else:
                servant_due(a, t)
        elif e[2] == EV:
            ev_due(e[3], t)
        elif e[2] == SCRIPT:
            e[3](t)
        else:
            check_due(e[3], e[4], t)
        queue.steps += 1
        if on_step is not None:
            on_step()
    if t_end > queue.now:
        queue.now = t_end
