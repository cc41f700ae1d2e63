"""What a node is to whoever drives it: the runtime, the simulator and the test harness.

``Master`` and ``Servant`` satisfy these protocols structurally; the drivers
depend only on them (and ``busshare.core.driver`` on ``Node``), so a test's
faulty subclass or a product's own node fits wherever the real one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from typing import runtime_checkable

from ..frames import Message
from ..frames import SetLimit
from ..protocol.pilot import PilotState
from .budget import Budget
from .budget import MainsReading
from .config import Config
from .events import Event
from .servant_memory import ServantMemory


class Node(Protocol):
    """A sans-IO node: every call takes ``now`` and returns the messages to send, in order."""

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        """Act on ``msg`` at ``now``; ``arrived``: when it reached the interface (<= now), if the caller knows
        (a frame that waited in the receive queue); a servant's rule-4 clocks count from then."""
        ...

    def tick(self, now: float) -> list[Message]: ...

    def shutdown(self, now: float) -> list[Message]: ...

    def next_deadline(self) -> float:
        """Latest time ``tick`` must next be called."""
        ...

    def drain_events(self) -> Sequence[Event]: ...


@runtime_checkable
class ServantNode(Node, Protocol):
    """A servant: it also reads its hardware and drives the pilot (``offer_da``, ``ev_stopped``)."""

    @property
    def address(self) -> int: ...

    @property
    def offer_da(self) -> int: ...

    @property
    def ev_stopped(self) -> bool: ...

    @property
    def in_failsafe(self) -> bool: ...

    @property
    def heard_at(self) -> float | None: ...

    @property
    def requested_da(self) -> int: ...

    @property
    def limit_da(self) -> int: ...

    @property
    def last_set_limit(self) -> SetLimit | None: ...

    def observe(self, pilot: PilotState, measured_da: int | None, now: float) -> list[Message]: ...

    def memory(self, now: float) -> ServantMemory:
        """What a restart of its process must not forget (core.servant_memory), for the next process."""
        ...

    def link_down(self, now: float) -> list[Message]:
        """Its bus is down (bus-off, replies unconfirmed): fail safe now (what it returns is sent as ever)."""
        ...


class ServantRow(Protocol):
    """One servant as the master accounts for it (``master.ServantView``)."""

    @property
    def address(self) -> int: ...

    @property
    def state(self) -> str: ...

    @property
    def committed_da(self) -> int: ...


class MasterNode(Node, Protocol):
    """A master: it also says what it counts against the limit, and per servant."""

    @property
    def config(self) -> Config: ...

    def committed_da(self, now: float) -> int:
        """What it counts against the limit at ``now`` (rule 1)."""
        ...

    def servants(self, now: float) -> Sequence[ServantRow]: ...


class BudgetInputs(Protocol):
    """A master that takes a live limit (docs/BUDGET.md 6.4): each input returns the frames to send now.

    The runtime's feed (``io.budget_feed``) and the simulator's budget world (``sim.budget_run``) drive it."""

    def mains_reading(self, reading: MainsReading, now: float) -> list[Message]: ...

    def mains_failed(self, now: float, detail: str) -> list[Message]: ...

    def setpoint(self, limit_da: int, ttl_s: float | None, now: float) -> list[Message]: ...

    def clear_setpoint(self, now: float) -> list[Message]: ...

    @property
    def budget(self) -> Budget: ...


@runtime_checkable
class BudgetMaster(BudgetInputs, Protocol):
    """A master that takes a live limit, as the checks read it: its count, and the part of it for servants it
    cannot reach (silent, unanswering, failsafe, contested, not heard: ``master.UNREACHABLE_STATES``)."""

    def committed_da(self, now: float) -> int: ...

    def unreachable_da(self, now: float) -> int: ...
