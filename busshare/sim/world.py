"""The simulated installation: node processes on the bus, their EVSEs, and what the checks are told.

``World`` owns the processes (a master or servant object, its bus port, its EVSE), starts, stops and
reboots them, and drives them: the frame deliveries, node deadlines and car changes the event loop
hands it (``loop.Handlers``).  Every accepted frame goes through the receiver's production ``Link``;
heartbeats and grants feed the failsafe oracle, every EVSE change feeds the invariants, and what
they find is reported here (``report``): stopping the run, or collected.
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from ..core.budget import BudgetPolicy
from ..core.config import Config
from ..core.config import ServantConfig
from ..core.config import Timing
from ..core.driver import settle
from ..core.driver import settle_servant
from ..core.events import Event
from ..core.node import MasterNode
from ..core.node import Node
from ..core.node import ServantNode
from ..core.servant_memory import ServantMemory
from ..frames import Ack
from ..frames import FrameError
from ..frames import Heartbeat
from ..frames import Message
from ..frames import SetLimit
from ..frames import decode
from ..protocol.e2e import ACCEPTED
from ..protocol.pilot import PilotState
from ..report.timeline import Mark
from ..report.timeline import Sample
from ..report.timeline import Timeline
from .budget_run import BudgetRun
from .bus import BusSettings
from .bus import Port
from .bus import SimBus
from .bus import bus_settings
from .clock import EventQueue
from .ev import SimEvse
from .failure import SimulationFailed
from .hosts import MasterHost
from .hosts import ServantHost
from .house import BudgetWorld
from .house import flat_house
from .invariants import MODEST_LOSS
from .invariants import Bounds
from .invariants import Installation
from .invariants import Invariants
from .invariants import Service
from .invariants import Violation
from .invariants import default_settle
from .invariants import recovery_after
from .loop import Check
from .oracle import FailsafeOracle
from .oracle import OracleBounds
from .procs import INF
from .procs import MasterProc
from .procs import ServantProc
from .scenario import Scenario

TRACE_LEN = 400
_CONTROL = (SetLimit, Ack)  # (a tuple: isinstance with a union is slower, and this runs for every frame sent)


class MasterFactory(Protocol):
    """What builds a master (``Master`` itself, or a test's subclass)."""

    def __call__(self, config: Config, now: float, master_id: int | None = None, epoch: int = 0, *,
                 budget: BudgetPolicy | None = None) -> MasterNode: ...


class ServantFactory(Protocol):
    """What builds a servant (``Servant`` itself, or a test's subclass)."""

    def __call__(self, config: ServantConfig, timing: Timing, now: float,
                 memory: ServantMemory | None = None) -> ServantNode: ...


def _load_nodes() -> tuple[MasterFactory, ServantFactory]:
    from ..master import Master
    from ..servant import Servant

    return Master, Servant


def bounds_of(scenario: Scenario) -> Bounds:
    """The checks' bounds, from the scenario's timing and installation."""
    config, timing = scenario.config, scenario.config.timing
    tick = float(timing.tick_period)
    return Bounds(
        limit_da=config.limit_da,
        failsafe_bound_s=float(timing.failsafe_timeout) + tick,
        unheard_bound_s=timing.unheard_bound,
        leaving_bound_s=tick,
        cutoff_bound_s=float(timing.reaction_allowance) + tick,
        settle_s=scenario.settle_s if scenario.settle_s is not None else default_settle(timing),
        rotation_s=timing.rotation_interval,
        waste_slack_da=10 + len(config.servants),
        retry_s=float(timing.ack_timeout),
        grace_s=float(timing.reclaim_after),
    )


def oracle_bounds(bounds: Bounds, timing: Timing) -> OracleBounds:
    return OracleBounds(
        failsafe_s=bounds.failsafe_bound_s,
        unheard_s=bounds.unheard_bound_s,
        leaving_s=bounds.leaving_bound_s,
        hold_s=timing.failsafe_hold + float(timing.tick_period),
        conflict_hold_s=float(timing.conflict_hold),
        heartbeat_period_s=timing.heartbeat_period,
    )


def service_of(scenario: Scenario) -> Service:
    servants = scenario.config.servants
    return Service(
        waste=scenario.check_waste,
        starvation=scenario.check_starvation,
        single_priority=len({s.priority for s in servants}) == 1,
        max_min_da=max((s.min_da for s in servants), default=60),
    )


class World:
    """The installation's processes in virtual time, and the bookkeeping the checks and the report need."""

    quiet_shortcut = True  # settle_servant's quiet shortcut (False: the tests' reference, the whole driver)
    shared_decode = True  # a frame decoded once per delivery (False: the tests' reference, each link decodes)

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        *,
        record: bool = True,
        stop_on_violation: bool = True,
        master_cls: MasterFactory | None = None,
        servant_cls: ServantFactory | None = None,
    ) -> None:
        default_master, default_servant = _load_nodes()
        self.master_cls = master_cls or default_master
        self.servant_cls = servant_cls or default_servant
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.config = scenario.config
        self.timing = scenario.config.timing
        self.record = record
        self.stop_on_violation = stop_on_violation
        base = f"busshare-sim:{self.seed}"
        self.rng_bus = random.Random(f"{base}:bus")
        self.rng_ev = random.Random(f"{base}:ev")
        self.rng_misc = random.Random(f"{base}:misc")
        self.queue = EventQueue(0.0)
        self.bus = SimBus(self.queue, self.rng_bus, dataclasses.replace(scenario.bus))
        if not record:
            self.bus.keeps_capture = False  # (chaos runs do not need the frames)
        self.filter = scenario.filter
        self.bounds = bounds_of(scenario)
        self.oracle = FailsafeOracle(oracle_bounds(self.bounds, self.timing), self.schedule_check)
        view: Installation = self
        self.inv = Invariants(view, self.bounds, service_of(scenario), self.schedule_check, stop_on_violation)
        self._init_state(scenario)
        budget = self.config.budget
        self.budget_run: BudgetRun | None = None  # the budget world: meter, setpoints, the six checks
        if budget is not None:
            self.budget_run = BudgetRun(self, scenario.budget_world or BudgetWorld(flat_house(0)), budget)
        for cfg in self.config.servants:
            self._add_servant(cfg, twin=False, now=0.0)
        self._start_master(self.config.master_id, 0.0)

    def _init_state(self, scenario: Scenario) -> None:
        self.timeline = Timeline(self.config.limit_da)
        self.trace: deque[tuple[float, str, str, int, bytes]] = deque(maxlen=TRACE_LEN)  # frames sent
        self.notes: deque[tuple[float, str, str]] = deque(maxlen=TRACE_LEN)  # everything else
        self.violations: list[Violation] = []
        self.masters: list[MasterProc] = []
        self.servants: list[ServantProc] = []
        self.by_address: dict[int, list[ServantProc]] = {}
        self.epoch = scenario.first_epoch
        self.failsafe_episodes = 0
        self.faults: dict[str, float] = {}  # active fault name -> since
        self.quiet_since = 0.0
        self.quiet = False
        self.quiet_except_budget = False  # quiet but for a budget below the static limit (the budget checks)
        self.energy_done: dict[str, float] = {}
        self._sample_keys: dict[str, tuple[int, int, PilotState]] = {}
        self._dead_ports: list[Port] = []
        # the bus without the running episodes: every BusFaults field
        self._bus_base: BusSettings = bus_settings(scenario.bus)
        self._bus_episodes: list[BusSettings] = []

    @property
    def now(self) -> float:
        return self.queue.now

    @property
    def steps(self) -> int:
        """Events handled so far."""
        return self.queue.steps

    def _all_ports(self) -> list[Port]:
        return self._dead_ports + list(self.bus.ports)

    # ------------------------------------------------------------------ failures and the record

    def report(self, v: Violation) -> None:
        """A check found ``v``: collect it, and stop the run unless only collecting."""
        self.violations.append(v)
        self._trace(v.t, "VIOLATION", str(v))
        if self.stop_on_violation:
            raise SimulationFailed(v, self.seed, self.scenario.name, self.trace_lines(), self.scenario.origin)

    def trace_lines(self) -> list[str]:
        """The last frames and the last notable events, merged in time order."""
        lines = [(t, f"{t:10.4f} {who} sends {_frame_text(offset, data)}") for t, _, who, offset, data in self.trace]
        lines += [(t, f"{t:10.4f} {kind} {text}") for t, kind, text in self.notes]
        lines.sort(key=lambda e: e[0])  # (stable: a frame before a note of the same instant)
        return [line for _, line in lines]

    def _trace(self, t: float, kind: str, text: str) -> None:
        self.notes.append((t, kind, text))

    def _mark(self, t: float, address: int | None, kind: str, detail: str = "") -> None:
        self._trace(t, kind, f"{'' if address is None else f'[{address}] '}{detail}")
        if self.record:
            self.timeline.events.append(Mark(t, address, kind, detail))

    def schedule_check(self, t: float, what: Check, p: ServantProc | None) -> None:
        self.queue.push_check(t, p, what)

    def contested(self, address: int) -> bool:
        procs = self.by_address.get(address)
        return procs is not None and len(procs) > 1 and sum(1 for p in procs if p.alive) > 1

    # ------------------------------------------------------------------ processes

    def _start_master(self, master_id: int, now: float) -> MasterProc:
        epoch = self.epoch % 256
        self.epoch += 1
        br = self.budget_run
        if br is None:
            node = self.master_cls(self.config, now, master_id=master_id, epoch=epoch)
        else:
            node = self.master_cls(self.config, now, master_id=master_id, epoch=epoch, budget=br.policy(now))
        name = "master" if not self.masters else f"master{master_id}"
        proc = MasterProc(name, node, None, master_id, epoch, now)
        proc.port = self.bus.attach(name, 0, proc, None)
        proc.host = MasterHost(self, proc)
        self.masters.append(proc)
        self._mark(now, None, "master-start", f"{name} id {master_id} epoch {epoch}")
        self._master_after(proc, [], now)
        self._disturb(now, "master-start")
        # a new master learns a paused car anew: its grace runs from when that master is back (8.5)
        self.inv.pause.restart(now + recovery_after(self.timing, "master-start"), self.servants)
        return proc

    def _stop_master(self, proc: MasterProc, now: float, graceful: bool) -> None:
        graceful = graceful and not proc.stalled  # (a process standing still cannot say goodbye: it dies as it stands)
        if graceful:
            out = proc.node.shutdown(now)
            self._send(proc.port, out, now)
            self._marks(proc, proc.node.drain_events(), now)
        proc.alive = False
        proc.unstall()  # (a process killed standing still: its queue with it, and its feed's)
        proc.held = []
        if proc.port is not None:
            self.bus.detach(proc.port)
            self._dead_ports.append(proc.port)
        self.masters = [m for m in self.masters if m is not proc]
        self._mark(now, None, "master-stop", f"{proc.name} {'shut down' if graceful else 'crashed'}")
        if self.budget_run is not None:
            self.budget_run.master_stopped(now)

    def _add_servant(self, cfg: ServantConfig, twin: bool, now: float) -> ServantProc:
        evse = SimEvse(meter=bool(cfg.has_meter), rng=random.Random(f"busshare-sim:{self.seed}:ev:{len(self.servants)}"),
                       now=now)
        evse.tolerance_da = cfg.tolerance_da
        name = f"s{cfg.address}" + ("-twin" if twin else "")
        proc = ServantProc(name, cfg, evse, twin)
        proc.host = ServantHost(self, proc)
        self.servants.append(proc)
        self.by_address.setdefault(cfg.address, []).append(proc)
        self._boot_servant(proc, now)
        return proc

    def _boot_servant(self, p: ServantProc, now: float) -> None:
        p.node = self.servant_cls(p.cfg, self.timing, now, p.memory)  # (its previous process's orders, if any)
        p.alive = True
        p.booted = now
        p.watchdog_at = INF
        accept = frozenset((0, p.address, 63)) if self.filter else None
        p.port = self.bus.attach(p.name, p.address, p, accept)
        p.wire(p.deaf, p.mute)  # (the wiring's partition, if any, on the new port)
        assert p.host is not None
        p.host.offer_da = -1
        p.host.ev_stopped = False
        p.r_pilot = None
        p.r_measured = None
        self.oracle.boot(p, now)
        self._servant_after(p, [], now, True)

    def _kill_servant(self, p: ServantProc, now: float, hold_s: float | None) -> None:
        """The process dies; its pilot holds the last offer until the hardware watchdog resets it."""
        if not p.alive:
            return
        p.alive = False
        assert p.node is not None
        p.memory = p.node.memory(now)  # kept as it was at the end (a store written on every change)
        p.node = None
        if p.port is not None:
            self.bus.detach(p.port)
            self._dead_ports.append(p.port)
        p.port = None
        p.node_sched = INF
        p.unstall()  # (a process killed standing still: its queue with it)
        self.oracle.stop(p)
        if hold_s is None or hold_s <= 0:
            p.evse.power_reset(now)
        else:
            p.watchdog_at = now + hold_s
            self.queue.push_script(p.watchdog_at, self._watchdog, p)
        self._sync(p, now)
        self._ev_resched(p)

    def _watchdog(self, p: ServantProc, t: float) -> None:
        if p.alive or p.watchdog_at != t:
            return
        p.watchdog_at = INF
        p.evse.power_reset(t)
        self._mark(t, p.address, "watchdog", f"{p.name}: hardware watchdog reset the pilot")
        self._sync(p, t)
        self._ev_resched(p)

    # ------------------------------------------------------------------ the hot path (loop.Handlers)

    def _send(self, port: Port | None, msgs: list[Message], t: float) -> None:
        if port is None:
            return
        link = port.link
        bus = self.bus
        send = bus.send
        trace = self.trace
        for msg in msgs:
            offset, data = link.encode(msg)
            trace.append((t, "tx", port.name, offset, data))
            if isinstance(msg, _CONTROL):  # the frames a settle waits for: count those the bus spoils
                before = bus.lost + bus.corrupted
                send(port, offset, data, t)
                spoiled = bus.lost + bus.corrupted - before
                if spoiled:
                    self.inv.control_spoiled(t, spoiled)
            else:
                send(port, offset, data, t)

    def deliver(self, t: float, offset: int, targets: list[tuple[Port, bytes, bool]],
                arrived: float | None = None) -> None:
        """A frame reaches its receivers: each one's Link, then the oracle, then the node and its driver.

        ``arrived``: a frame read at ``t`` that had arrived then (it waited in a stalled process's queue): the
        servant's rule-4 clocks, and the oracle's, count from its arrival."""
        oracle, shortcut = self.oracle, self.quiet_shortcut
        decoder = self.bus.decoder if self.shared_decode else None
        last: bytes | None = None  # the bytes decoded last in this delivery, and what they decoded to
        decoded: tuple[Message, int] | None = None
        for port, data, bad in targets:
            if not port.attached:
                # sent to a process that has since restarted: the copy is on the unit's wiring, the new one hears it
                reborn = port.owner.port
                if reborn is None or reborn is port:
                    continue
                port = reborn
            if port.deaf:
                continue
            if port.owner.stalled:  # it stands still: the frame waits in its queue until it resumes
                port.owner.backlog.append((t, offset, data, bad))
                continue
            link = port.link
            if data is not last and decoder is not None:
                last = data
                try:
                    decoded = decoder(offset, data)
                except FrameError:
                    decoded = None  # (the link's receive counts it, below)
            # the production receive policy (PROTOCOL.md 6.3), after the decode when the link's memo did it already
            if decoded is not None and link.decoder is decoder:
                msg = decoded[0] if link.check(offset, decoded[0], decoded[1], data, t) in ACCEPTED else None
            else:
                msg = link.receive(offset, data, t).message
            if msg is None:
                continue
            if bad:
                self.report(Violation(t, "rule8-integrity",
                                      f"{port.name} accepted a corrupted frame {offset:#05x} [{data.hex(' ')}]"))
            proc = port.owner
            if isinstance(proc, MasterProc):
                self._master_after(proc, proc.node.receive(msg, t, arrived), t)
                continue
            node, host = proc.node, proc.host
            assert node is not None and host is not None  # (a dead process's port is detached)
            if offset == 0x40:
                assert isinstance(msg, Heartbeat)
                oracle.heartbeat(proc, msg, t, arrived)
                before = node.last_set_limit
                out = node.receive(msg, t, arrived)
                held = node.last_set_limit  # a grant held while the master did not hear it, taken now (rule 4)
                if held is not before and held is not None and oracle.accepts(proc, held, t):
                    oracle.granted(proc, held, t, arrived)
            elif offset < 0x40 and (offset & 0x3F) == proc.address:
                assert isinstance(msg, SetLimit)
                out = node.receive(msg, t, arrived)
                # only a set-limit the servant may accept (oracle.accepts reads what the oracle saw, not the
                # servant) and applied: not one it rightly ignores (another epoch, a second master hold, a late
                # copy older than the newest it applied, a repeat it only re-acks)
                if oracle.accepts(proc, msg, t) and node.last_set_limit is msg:
                    oracle.granted(proc, msg, t, arrived)
            else:
                out = node.receive(msg, t, arrived)
            host.changed = False  # (a frame received touches no EVSE)
            settle_servant(node, host, out, t, shortcut)

    def servant_due(self, p: ServantProc, t: float) -> None:
        if t != p.node_sched or not p.alive:
            return
        p.node_sched = INF
        if p.stalled:
            return  # (its resume schedules it again)
        node = p.node
        assert node is not None
        if node.next_deadline() <= t:
            out = node.tick(t)
            if node.next_deadline() <= t:
                self._stuck(p, node, t)
            self._servant_after(p, out, t)
        else:
            self._node_resched(p, node.next_deadline())

    def _servant_after(self, p: ServantProc, out: list[Message], t: float, changed: bool = False) -> None:
        """After any call into a servant (or a change of its EVSE, ``changed``): the one node driver."""
        node, host = p.node, p.host
        assert node is not None and host is not None
        host.changed = changed
        settle_servant(node, host, out, t, self.quiet_shortcut)

    def _sync(self, p: ServantProc, t: float) -> None:
        """An EVSE changed: the invariants check it and the timeline records it (the plot draws what they saw)."""
        found = self.inv.sync(p, t)
        if found:
            for v in found:
                self.report(v)
        if self.record:
            self._sample(p, t)
        if self.budget_run is not None:
            self.budget_run.after_sync(p, t)

    def _sample(self, p: ServantProc, t: float) -> None:
        ev = p.evse
        pilot = ev.pilot()
        key = (ev.offer_da, ev.draw_da, pilot)
        if self._sample_keys.get(p.name) != key:
            self._sample_keys[p.name] = key
            self.timeline.samples.append(Sample(t, p.address, ev.offer_da, ev.draw_da if ev.meter else None, pilot))
        p.pilot = pilot

    def ev_due(self, p: ServantProc, t: float) -> None:
        if t != p.ev_sched:
            return
        p.ev_sched = INF
        if p.alive and not p.stalled:
            p.evse.advance(t)
            self._servant_after(p, [], t, True)
        else:
            p.evse.advance(t)
            self._sync(p, t)
            self._ev_resched(p)

    def _ev_resched(self, p: ServantProc) -> None:
        c = max(p.evse.next_change(), self.queue.now)
        if c < p.ev_sched:
            p.ev_sched = c
            self.queue.push_ev(c, p)

    def _node_resched(self, p: ServantProc | MasterProc, deadline: float) -> None:
        d = max(deadline, self.queue.now)
        if d < p.node_sched:
            p.node_sched = d
            self.queue.push_node(d, p)

    def master_due(self, m: MasterProc, t: float) -> None:
        if t != m.node_sched or not m.alive:
            return
        m.node_sched = INF
        if m.stalled:
            return  # (its resume ticks it)
        if m.node.next_deadline() <= t:
            self._master_tick(m, t)
        else:
            self._node_resched(m, m.node.next_deadline())

    def _master_tick(self, m: MasterProc, t: float) -> None:
        out = m.node.tick(t)
        if m.node.next_deadline() <= t:
            self._stuck(m, m.node, t)
        self._master_after(m, out, t)

    def _stuck(self, proc: ServantProc | MasterProc, node: Node, t: float) -> None:
        """A node whose deadline is still due right after tick(now) would make a real runtime spin.

        The run cannot go on (virtual time would never advance), so this stops it even when
        violations are only being collected.
        """
        v = Violation(t, "node-deadline", f"{proc.name}: next_deadline() = {node.next_deadline():.6f} is not "
                      f"after tick({t:.6f}); a runtime would busy-loop")
        self.violations.append(v)
        raise SimulationFailed(v, self.seed, self.scenario.name, self.trace_lines(), self.scenario.origin)

    def _master_after(self, m: MasterProc, out: list[Message], t: float) -> None:
        """After any call into a master: the one node driver."""
        assert m.host is not None
        if self.budget_run is not None and out:
            self.budget_run.master_sent(m, out, t)
        settle(m.node, m.host, out, t)
        if self.budget_run is not None:
            self.budget_run.after_master(t)

    def _marks(self, proc: ServantProc | MasterProc, events: Sequence[Event], t: float) -> None:
        """A node's events, as timeline marks (a servant's carry its address)."""
        for ev in events:
            address = ev.address
            if address is None and isinstance(proc, ServantProc):
                address = proc.address
            self._mark(t, address, ev.kind, f"{proc.name}: {ev.detail}")

    def check_due(self, p: ServantProc | None, what: Check, t: float) -> None:
        """A check came due: if it is still the one scheduled (not superseded), run it and report."""
        inv = self.inv
        found: Violation | None = None
        if what is Check.QUIET:
            inv.rearm_all(t)
        elif what is Check.WASTE:
            if inv.waste_sched == t:
                found = inv.check_waste(t)
        elif what is Check.PAUSE:
            found = inv.check_pause(t)
        else:
            assert p is not None
            if p.stalled and what is not Check.STARVE:
                # a process standing still cannot act: its rule-4 and cut-off bounds run to its resume, which
                # checks them (``Faults.servant_resume``: after serving the deadlines it slept past)
                if what is Check.FAILSAFE:
                    if p.fs_check_sched == t:
                        p.fs_check_sched = INF
                elif what is Check.HOLD:
                    if p.hold_sched == t:
                        p.hold_sched = INF
                elif p.cutoff_sched == t:
                    p.cutoff_sched = p.resume_at
                    self.queue.push_check(p.resume_at, p, Check.CUTOFF)
            elif what is Check.FAILSAFE:
                if p.fs_check_sched == t and p.alive:
                    found = inv.check_failsafe(p, t)
            elif what is Check.HOLD:
                if p.hold_sched == t and p.alive:
                    found = inv.check_hold(p, t)
            elif what is Check.CUTOFF:
                if p.cutoff_sched == t:
                    found = inv.check_cutoff(p, t)
            elif p.starve_sched == t:  # Check.STARVE
                found = inv.check_starvation(p, t)
        if found is not None:
            self.report(found)

    # ------------------------------------------------------------------ quiet conditions

    def _disturb(self, t: float, recovery: str | None = None) -> None:
        """Demand or topology changed at ``t``: the service checks restart their clocks."""
        at = t + (recovery_after(self.timing, recovery) if recovery else 0.0)
        if at > self.quiet_since:
            self.quiet_since = at
            if self.budget_run is not None:
                # its waste check's settle time starts again, as the static one's (sampled now: ``t`` may be ahead,
                # a fault's end scheduled with it, and the samples must stay in time order)
                self.budget_run.disturbed_at(self.queue.now)
                if at > t:  # its supply is judged again once the master recovered
                    self.budget_run.recovers_at(at)
        self._update_quiet(t)

    def _update_quiet(self, t: float) -> None:
        base = (
            len(self.masters) == 1
            and self.bus.faults.loss <= MODEST_LOSS
            and not self.bus.faults.late
            and not self.bus.faults.jitter_s
            and not self.bus.faults.echo_s  # a second path replays old frames: safety holds, service waits
            and all(p.alive for p in self.servants)
        )
        quiet = base and not self.faults
        quiet_b = base and all(k == "budget" for k in self.faults)
        if quiet_b != self.quiet_except_budget:
            self.quiet_except_budget = quiet_b
            if self.budget_run is not None:  # (None while the world is being built)
                self.budget_run.quiet_changed(t)
        if quiet and not self.quiet:
            self.quiet_since = max(self.quiet_since, t)
            # meanwhile the master may have restarted a paused car's grace (a late copy of an old STATUS
            # showing it charging, a silence): it runs from now at the latest
            self.inv.pause.restart(self.quiet_since, self.servants)
        self.quiet = quiet
        if quiet:
            self.queue.push_check(self.quiet_since + self.bounds.settle_s, None, Check.QUIET)
            self.inv.rearm_all(t)


def _frame_text(offset: int, data: bytes) -> str:
    try:
        msg, counter = decode(offset, data)
    except FrameError as exc:
        return f"undecodable {data.hex()}: {exc}"
    return f"{msg!r} ctr {counter}"
