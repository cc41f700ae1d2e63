"""The simulated processes as the node driver's hosts (``core.driver.Host``): how a node's offer reaches its
EVSE, its frames the bus, its events the timeline, and its next deadline the event queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.events import Event
from ..core.events import EventKind
from ..frames import Message
from ..protocol.pilot import PilotState
from .procs import MasterProc
from .procs import ServantProc

if TYPE_CHECKING:
    from .world import World


class MasterHost:
    """A simulated master process as the node driver's host: its bus port and its event queue entry."""

    __slots__ = ("sim", "m")

    def __init__(self, sim: World, m: MasterProc) -> None:
        self.sim = sim
        self.m = m

    def apply(self, now: float) -> None:
        pass  # a master has no pilot

    def send(self, msgs: list[Message], now: float) -> None:
        self.sim._send(self.m.port, msgs, now)

    def record(self, events: Sequence[Event], now: float) -> None:
        if events:
            self.sim._marks(self.m, events, now)
            if any(e.kind is EventKind.SERVANT_SILENT for e in events):
                # its STATUS frames lost on the bus (or the unit gone): a fault, whose cost (the unit reserved,
                # the cuts and grants when it is back) the service checks do not judge; their clocks restart
                self.sim._disturb(now)

    def schedule(self, deadline: float, now: float) -> None:
        m = self.m
        d = deadline if deadline > now else now
        if d < m.node_sched:
            m.node_sched = d
            self.sim.queue.push_node(d, m)


class ServantHost:
    """A simulated servant process as the node driver's host: its EVSE (readings fed back at once), its bus
    port, the invariants and its event queue entries.

    ``changed``: the EVSE was touched during this call (by the offer, or before it by a car or a reboot),
    so its readings may have changed; set by the caller before each ``settle_servant``.
    """

    __slots__ = ("sim", "p", "changed", "offer_da", "ev_stopped")

    def __init__(self, sim: World, p: ServantProc) -> None:
        self.sim = sim
        self.p = p
        self.changed = False
        self.offer_da = -1  # what the process last applied to the EVSE (-1: nothing since it booted)
        self.ev_stopped = False

    def apply(self, now: float) -> None:
        p = self.p
        node = p.node
        assert node is not None  # (only a running process is driven)
        offer = node.offer_da
        stopped = node.ev_stopped
        if offer != self.offer_da or stopped != self.ev_stopped:
            self.offer_da = offer
            self.ev_stopped = stopped
            p.evse.apply(offer, stopped, now)
            self.changed = True

    def send(self, msgs: list[Message], now: float) -> None:
        self.sim._send(self.p.port, msgs, now)

    def reading(self, now: float) -> tuple[PilotState, int | None] | None:
        if not self.changed:
            return None  # the hardware was not touched: its readings cannot have changed
        p = self.p
        evse = p.evse
        pilot = evse.pilot()
        measured = evse.draw_da if evse.meter else None
        if pilot is p.r_pilot and measured == p.r_measured:
            return None
        p.r_pilot = pilot
        p.r_measured = measured
        return pilot, measured

    def record(self, events: Sequence[Event], now: float) -> None:
        """What the EVSE did is checked and drawn first, then failsafe changes and the node's events are marked."""
        sim, p = self.sim, self.p
        if self.changed:
            evse = p.evse
            stops = evse.stopped and evse.plugged and not p.ev_stopped
            p.ev_stopped = evse.stopped
            sim._sync(p, now)
            if stops:  # its servant stopped the car: its demand is gone, as at an unplug
                sim._disturb(now)
        node = p.node
        assert node is not None
        fs = node.in_failsafe
        if fs != p.in_failsafe:
            p.in_failsafe = fs
            if fs:
                sim.failsafe_episodes += 1
            sim._mark(now, p.address, EventKind.FAILSAFE if fs else EventKind.FAILSAFE_END,
                      f"{p.name} offers {p.offer / 10:.1f} A")
        if events:
            sim._marks(p, events, now)

    def schedule(self, deadline: float, now: float) -> None:
        p = self.p
        d = deadline if deadline > now else now
        if d < p.node_sched:
            p.node_sched = d
            self.sim.queue.push_node(d, p)
        if self.changed:  # (an untouched car keeps the change it has scheduled already)
            c = p.evse.next_change()
            if c < now:
                c = now
            if c < p.ev_sched:
                p.ev_sched = c
                self.sim.queue.push_ev(c, p)
