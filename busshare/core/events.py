"""Notable things a node saw or did, for logs and UIs (never for control)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    t: float  # the ``now`` of the call that produced it
    kind: str  # short slug, e.g. "failsafe", "cut", "grant", "twin", "second-master"
    address: int | None  # the servant concerned (None: the node itself / the whole bus)
    detail: str  # one human line

    def __str__(self) -> str:
        who = "-" if self.address is None else str(self.address)
        return f"{self.t:10.3f} {self.kind:<16} {who:>3} {self.detail}"


class EventLog:
    """A list a node appends to and a caller drains."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    def add(self, t: float, kind: str, address: int | None, detail: str) -> None:
        self._events.append(Event(t, kind, address, detail))

    def drain(self) -> list[Event]:
        out, self._events = self._events, []
        return out
