"""The master's sans-IO state machine (skeleton: logic follows)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .events import Event, EventLog
from .frames import Heartbeat, Message


@dataclass(frozen=True)
class ServantView:
    """A read-only snapshot of one servant, as the master accounts for it."""

    address: int
    state: str
    committed_da: int
    pending_da: int | None
    demand_da: int
    failsafe_da: int


class Master:
    def __init__(self, config: Config, now: float, master_id: int | None = None, epoch: int = 0) -> None:
        self.config = config
        self.master_id = config.master_id if master_id is None else master_id
        self.epoch = epoch
        self._events = EventLog()
        self._seq = 0
        self._next_hb = now

    def receive(self, msg: Message, now: float) -> list[Message]:
        return []

    def tick(self, now: float) -> list[Message]:
        out: list[Message] = []
        if now >= self._next_hb:
            out.append(self._heartbeat())
            self._next_hb = now + self.config.timing.heartbeat_period
        return out

    def _heartbeat(self, leaving: bool = False) -> Heartbeat:
        self._seq = (self._seq + 1) & 0xFF
        return Heartbeat(self.master_id, self.epoch, self._seq, self.config.limit_da, 0, leaving=leaving)

    def shutdown(self, now: float) -> list[Message]:
        return [self._heartbeat(leaving=True)]

    def next_deadline(self) -> float:
        return self._next_hb

    def drain_events(self) -> list[Event]:
        return self._events.drain()

    def committed_da(self) -> int:
        return 0

    def servants(self) -> list[ServantView]:
        return []
