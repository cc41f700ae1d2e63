"""Virtual time: a clock and an ordered queue of future events.

Ties are broken by insertion order (a running sequence number), never by
comparing payloads, so a run is a pure function of its inputs and seed.
"""

from __future__ import annotations

import heapq
from typing import Any

INF = float("inf")

Entry = tuple[float, int, int, Any, Any]  # (time, seq, kind, a, b)


class EventQueue:
    """A min-heap of (time, seq, kind, a, b); ``kind`` is a small int chosen by the caller."""

    __slots__ = ("heap", "seq", "now", "steps")

    def __init__(self, start: float = 0.0) -> None:
        self.heap: list[Entry] = []
        self.seq = 0
        self.now = start
        self.steps = 0  # events handled (the loop counts them)

    def push(self, t: float, kind: int, a: Any = None, b: Any = None) -> None:
        if t < self.now:
            t = self.now  # never schedule into the past: time only moves forward
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def pop(self) -> Entry:
        entry = heapq.heappop(self.heap)
        if entry[0] > self.now:
            self.now = entry[0]
        return entry

    def peek_time(self) -> float:
        return self.heap[0][0] if self.heap else INF

    def __len__(self) -> int:
        return len(self.heap)
