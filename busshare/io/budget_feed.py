"""The live budget's sources around a running master: the mains meter poller and the MQTT link.

The meter client polls in a thread of its own and the MQTT link works in paho's network thread;
both only *queue* what they get.  ``BudgetFeed.service(now)`` runs on the runtime's loop thread,
with the runtime's monotonic ``now``: it hands each queued ``MeterReading`` to
``master.mains_reading``, each ``MeterFailure`` to ``master.mains_failed``, each ``Setpoint`` to
``master.setpoint``, returns the frames those calls
produced (the cuts of a lowering, sent in the same step), and publishes the retained
``busshare/<site>/limit`` whenever the master's (limit, source) changed.  So the sans-IO master
is only ever called from one thread, and a meter read waiting for its timeout or a broker that
is away never holds up the loop.

A meter or broker that is down at start is not an error: the policy starts at the fallback
(waiting for the first reading), the link reports the broker lost and keeps reconnecting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ..core.budget import MainsReading
from ..core.config import Config
from ..core.currents import PhaseCurrents
from ..core.meter_maps import MeterEvent
from ..core.meter_maps import MeterReading
from ..core.node import BudgetInputs
from ..core.setpoint import LimitSource
from ..core.setpoint import Setpoint
from ..core.setpoint import SetpointRejected
from ..core.setpoint import SetpointWithdrawn
from ..frames import Message
from .meter import MeterClient
from .mqtt import BrokerConnected
from .mqtt import BrokerLost
from .mqtt import MqttBudgetLink
from .mqtt import MqttEvent


class MeterSource(Protocol):
    """A meter poller whose thread queues (``io.meter.MeterClient``)."""

    def start(self) -> object: ...

    def stop(self) -> None: ...

    def drain(self) -> list[MeterEvent]: ...


class LimitLink(Protocol):
    """Setpoints in, the limit out (``io.mqtt.MqttBudgetLink``)."""

    def start(self) -> object: ...

    def stop(self) -> None: ...

    def drain(self) -> list[MqttEvent]: ...

    def publish_limit(self, limit_da: int, source: LimitSource) -> bool: ...

    @property
    def connected(self) -> bool: ...


class FeedEventKind(StrEnum):
    """What the feed itself reports (the budget's own events come from the master)."""

    BROKER_CONNECTED = "broker-connected"
    BROKER_LOST = "broker-lost"
    SETPOINT_REJECTED = "setpoint-rejected"


@dataclass(frozen=True)
class FeedEvent:
    t: float
    kind: FeedEventKind
    detail: str


def mains_reading_of(reading: MeterReading) -> MainsReading:
    """A meter's reading as the master takes it: per-phase currents signed by the power (+ import, - export).

    Eastron current registers are magnitudes; the sign comes from the phase's power where the map has one.
    """
    powers = reading.powers_w
    signed = tuple(-da if powers is not None and i < len(powers) and powers[i] < 0 else da
                   for i, da in enumerate(reading.currents_da))
    return MainsReading(reading.t, PhaseCurrents(signed))


class BudgetFeed:
    """The meter poller and the MQTT link of one master, serviced on the runtime's loop thread."""

    def __init__(self, master: BudgetInputs, *, meter: MeterSource | None = None,
                 link: LimitLink | None = None) -> None:
        self.master = master
        self.meter = meter
        self.link = link
        self._events: list[FeedEvent] = []
        self._published: tuple[int, LimitSource] | None = None
        self._running = False

    @classmethod
    def from_config(cls, master: BudgetInputs, config: Config,
                    clock: Callable[[], float] = time.monotonic) -> BudgetFeed:
        """The sources of the site file's ``[budget]`` (``clock``: the runtime's, so a reading's time is ``now``'s)."""
        budget = config.budget
        if budget is None:
            raise ValueError("a budget feed needs a site file with [budget]")
        meter = None if budget.meter is None else MeterClient(budget.meter, clock=clock)
        link = None if budget.mqtt is None else MqttBudgetLink(budget.mqtt, config.site_id,
                                                               default_ttl_s=budget.setpoint_ttl_s, clock=clock)
        return cls(master, meter=meter, link=link)

    # -- life cycle (the runtime's) -------------------------------------------------

    def start(self) -> None:
        """Start polling and connecting; returns at once, with or without a meter or broker."""
        if self._running:
            return
        self._running = True
        for source in self._sources():
            source.start()

    def stop(self) -> None:
        """Stop the poll thread and disconnect (idempotent)."""
        if not self._running:
            return
        self._running = False
        for source in self._sources():
            source.stop()

    def _sources(self) -> tuple[MeterSource | LimitLink, ...]:
        """The meter and the link this site has (either may be absent), in the order they start."""
        return tuple(source for source in (self.meter, self.link) if source is not None)

    # -- the loop thread ------------------------------------------------------------

    def service(self, now: float) -> list[Message]:
        """Hand what the threads queued to the master; publish the limit if it changed.  The frames to send now."""
        out: list[Message] = []
        master = self.master
        if self.meter is not None:
            for m in self.meter.drain():
                if isinstance(m, MeterReading):
                    out += master.mains_reading(mains_reading_of(m), now)
                else:
                    out += master.mains_failed(now, f"{m.kind.value}: {m.detail}")
        if self.link is not None:
            for e in self.link.drain():
                if isinstance(e, Setpoint):
                    out += master.setpoint(e.limit_da, e.ttl_s, now)
                elif isinstance(e, SetpointWithdrawn):
                    out += master.clear_setpoint(now)
                elif isinstance(e, SetpointRejected):
                    self._event(e.t, FeedEventKind.SETPOINT_REJECTED, f"{e.payload!r}: {e.reason}")
                elif isinstance(e, BrokerConnected):
                    self._event(e.t, FeedEventKind.BROKER_CONNECTED, f"MQTT broker {e.broker}: subscribed")
                elif isinstance(e, BrokerLost):
                    self._event(e.t, FeedEventKind.BROKER_LOST, f"{e.reason}; retrying (setpoints go stale meanwhile)")
        self.publish()
        return out

    def publish(self) -> None:
        """The retained limit, on every change of (limit, source); the link republishes the latest on reconnect."""
        b = self.master.budget
        key = (b.limit_da, b.source)
        if key != self._published:
            self._published = key
            if self.link is not None:
                self.link.publish_limit(b.limit_da, b.source)

    def _event(self, t: float, kind: FeedEventKind, detail: str) -> None:
        self._events.append(FeedEvent(t, kind, detail))

    def drain_events(self) -> list[FeedEvent]:
        events, self._events = self._events, []
        return events

    def status(self) -> dict[str, object]:
        """The budget in force, for the runtime's status record (docs/JSON.md)."""
        b = self.master.budget
        rec: dict[str, object] = {"limit_a": b.limit_da / 10, "source": b.source.value, "degraded": b.degraded}
        if b.headroom_da is not None:
            rec["headroom_a"] = b.headroom_da / 10
        if b.house_da is not None:
            rec["house_a"] = b.house_da / 10
        if self.link is not None:
            rec["broker"] = "connected" if self.link.connected else "away"
        return rec
