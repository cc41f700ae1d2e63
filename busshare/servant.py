"""The servant's sans-IO state machine (skeleton: logic follows)."""

from __future__ import annotations

from .config import ServantConfig, Timing
from .events import Event, EventLog
from .frames import Message
from .pilot import PilotState


class Servant:
    def __init__(self, config: ServantConfig, timing: Timing, now: float) -> None:
        self.config = config
        self.timing = timing
        self.offer_da = 0
        self.ev_stopped = False
        self.in_failsafe = False
        self._events = EventLog()

    def receive(self, msg: Message, now: float) -> list[Message]:
        return []

    def observe(self, pilot: PilotState, measured_da: int | None, now: float) -> list[Message]:
        return []

    def tick(self, now: float) -> list[Message]:
        return []

    def link_down(self, now: float) -> None:
        pass

    def next_deadline(self) -> float:
        return float("inf")

    def drain_events(self) -> list[Event]:
        return self._events.drain()
