"""Where an I/O edge's thread puts its events: the owner's callback, or a queue the owner drains in its own loop."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Generic
from typing import TypeVar

E = TypeVar("E")


class EventSink(Generic[E]):
    """``emit`` from any thread; ``drain`` from the owner's (when no callback was given)."""

    def __init__(self, callback: Callable[[E], None] | None = None) -> None:
        self._callback = callback
        self._queue: queue.SimpleQueue[E] = queue.SimpleQueue()

    def emit(self, event: E) -> None:
        if self._callback is not None:
            self._callback(event)
        else:
            self._queue.put(event)

    def drain(self) -> list[E]:
        """Events since the last drain, oldest first."""
        out: list[E] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out
