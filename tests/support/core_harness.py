"""A tiny fixed-step network for the core tests: one Master, N Servants, real Link encoding.

Not the simulator (busshare/sim): no loss model, no randomness.  Frames sent in
a step are delivered in that step, in order, to every other node, through
``Link.encode``/``Link.receive`` so the E2E checks run for real.  A toy EV
per servant follows its pilot after ``react`` seconds when lowered and at
once when raised.  Every step checks rule 1 on the pilots actually offered.

Nodes are driven like everywhere else, through ``busshare.core.driver.settle``:
the offer needs no applying here (the toy car reads it at each step), frames
are queued for delivery, events are drained into ``events`` (read them there:
``node.drain_events()`` finds them gone).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

from busshare.core.budget import BudgetPolicy
from busshare.core.config import Config
from busshare.core.driver import settle
from busshare.core.events import Event
from busshare.core.node import Node
from busshare.frames import Message
from busshare.master import Master
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from busshare.servant import Phase
from busshare.servant import Servant


@dataclass
class Car:
    max_da: int = 800
    react: float = 1.0  # seconds to follow a lowered pilot
    compliant: bool = True
    wants: int | None = None  # draws at most this (taper); None = as much as offered
    draw: int = 0
    lowered_at: float | None = None


@dataclass
class Unit:
    name: str
    node: Servant
    link: Link = field(default_factory=Link)
    pilot: PilotState = PilotState.A
    car: Car | None = None
    meter: bool = True
    up: bool = True  # False: crashed / unplugged from the bus
    deaf: bool = False  # hears nothing (one-way loss)
    mute: bool = False  # nothing it sends arrives
    lose: tuple[type, ...] = ()  # frames of these types it sends are lost (e.g. only its acks)


class _Host:
    """One node of the net as the node driver's host."""

    def __init__(self, net: Net, name: str) -> None:
        self.net = net
        self.name = name

    def apply(self, now: float) -> None:
        pass  # the toy car reads the offer at each step

    def send(self, msgs: list[Message], now: float) -> None:
        self.net._emit(self.name, msgs)

    def record(self, events: Sequence[Event], now: float) -> None:
        self.net.events += [(self.name, e) for e in events]

    def schedule(self, deadline: float, now: float) -> None:
        pass  # the net steps every tick period


class Net:
    def __init__(self, config: Config, *, epoch: int = 7, now: float = 0.0, budget: BudgetPolicy | None = None) -> None:
        self.config = config
        self.t = now
        self.dt = config.timing.tick_period
        self.master: Master | None = Master(config, now, epoch=epoch, budget=budget)
        self.master_link = Link()
        self.master_mute = False
        self.units: dict[int, Unit] = {}
        for s in config.servants:
            self.units[s.address] = Unit(f"s{s.address}", Servant(s, config.timing, now), meter=s.has_meter)
        self.log: list[tuple[float, str, Message]] = []  # every frame delivered: (t, sender, msg)
        self.sent: list[tuple[float, str, Message]] = []
        self.max_offered = 0
        self.max_committed = 0
        self.queue: deque[tuple[str, int, bytes]] = deque()
        self.events: list[tuple[str, Event]] = []  # every node event: (node, event)
        self._hosts: dict[str, _Host] = {}

    # -- wiring ------------------------------------------------------------------------

    def _settle(self, name: str, node: Node, out: list[Message]) -> None:
        """After a call into node ``name``: the one node driver."""
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(self, name)
        settle(node, host, out, self.t)

    def _emit(self, sender: str, msgs: list[Message]) -> None:
        for m in msgs:
            self.sent.append((self.t, sender, m))
            if sender == "master":
                if self.master_mute:
                    continue
                off, data = self.master_link.encode(m)
            else:
                u = self.units[int(sender[1:])]
                if u.mute or not u.up or isinstance(m, u.lose):
                    continue
                off, data = u.link.encode(m)
            self.queue.append((sender, off, data))

    def _deliver(self) -> None:
        while self.queue:
            sender, off, data = self.queue.popleft()
            got_any = False
            if sender != "master" and self.master is not None:
                r = self.master_link.receive(off, data, self.t)
                if r.message is not None:
                    got_any = True
                    self.log.append((self.t, sender, r.message))
                    self._settle("master", self.master, self.master.receive(r.message, self.t))
            for u in self.units.values():
                if u.name == sender or not u.up or u.deaf:
                    continue
                r = u.link.receive(off, data, self.t)
                if r.message is not None:
                    if not got_any:
                        self.log.append((self.t, sender, r.message))
                        got_any = True
                    self._settle(u.name, u.node, u.node.receive(r.message, self.t))

    def from_master(self, out: list[Message]) -> None:
        """Send what a call into the master outside ``step`` returned (a budget input's cuts)."""
        assert self.master is not None
        self._settle("master", self.master, out)
        self._deliver()

    def inject(self, sender: str, msg: Message, link: Link | None = None) -> None:
        """Put a frame from an extra node (a twin, a second master) on the bus."""
        off, data = (link or Link()).encode(msg)
        self.queue.append((sender, off, data))
        self._deliver()

    # -- physics -------------------------------------------------------------------------

    def _physics(self, u: Unit) -> None:
        car = u.car
        offer = 0 if u.node.ev_stopped else u.node.offer_da
        if car is None:
            return
        want = min(car.max_da, car.wants if car.wants is not None else 10_000)
        target = min(offer, want) if u.pilot is PilotState.C else 0
        if not car.compliant and u.pilot is PilotState.C and not u.node.ev_stopped:
            target = max(target, car.draw)
        if target >= car.draw:
            car.draw = target
            car.lowered_at = None
        else:
            if car.lowered_at is None:
                car.lowered_at = self.t
            if self.t - car.lowered_at >= car.react:
                car.draw = target
                car.lowered_at = None

    def plug(self, address: int, car: Car | None = None, pilot: PilotState = PilotState.C) -> None:
        u = self.units[address]
        u.car = car or Car()
        u.pilot = pilot
        self._observe(u)

    def unplug(self, address: int) -> None:
        u = self.units[address]
        u.car = None
        u.pilot = PilotState.A
        self._observe(u)

    def set_pilot(self, address: int, pilot: PilotState) -> None:
        u = self.units[address]
        u.pilot = pilot
        self._observe(u)

    def _observe(self, u: Unit) -> None:
        if not u.up:
            return
        draw = u.car.draw if u.car else 0
        self._settle(u.name, u.node, u.node.observe(u.pilot, draw if u.meter else None, self.t))
        self._deliver()

    # -- running ----------------------------------------------------------------------------

    def step(self) -> None:
        self.t = round(self.t + self.dt, 9)
        if self.master is not None:
            self._settle("master", self.master, self.master.tick(self.t))
            self._deliver()
        for u in self.units.values():
            if not u.up:
                continue
            self._physics(u)
            self._observe(u)
            self._settle(u.name, u.node, u.node.tick(self.t))
            self._deliver()
        self.check()

    def run(self, seconds: float) -> None:
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.step()

    def run_until(self, cond: object, limit: float = 120.0) -> float:
        end = self.t + limit
        while not cond():  # type: ignore[operator]
            if self.t >= end:
                raise AssertionError(f"condition not met within {limit} s (t={self.t:.2f})")
            self.step()
        return self.t

    def check(self) -> None:
        offered = self.offered_total()
        self.max_offered = max(self.max_offered, offered)
        assert offered <= self.config.limit_da, f"rule 1: offered {offered} > limit at t={self.t}"
        # the failsafe currents armed by set-limits of the master followed (a servant that rebooted arms its
        # standalone failsafe on its own; it offers 0 until a set-limit, see PROTOCOL.md 8.3)
        armed = sum(u.node.armed_failsafe_da for u in self.units.values() if u.up and u.node.phase is Phase.CONFIRMED)
        assert armed <= self.config.limit_da, f"rule 4: armed failsafe sum {armed} > limit at t={self.t}"
        if self.master is not None:
            c = self.master.committed_da(self.t)
            self.max_committed = max(self.max_committed, c)

    def offered_total(self) -> int:
        return sum(u.node.offer_da for u in self.units.values() if u.up and not u.node.ev_stopped)

    def offers(self) -> dict[int, int]:
        return {a: u.node.offer_da for a, u in self.units.items()}

    def drawn_total(self) -> int:
        return sum(u.car.draw for u in self.units.values() if u.car)

    def kill_master(self) -> None:
        self.master = None

    def start_master(self, epoch: int, budget: BudgetPolicy | None = None) -> Master:
        self.master = Master(self.config, self.t, epoch=epoch, budget=budget)
        self.master_link = Link()
        return self.master
