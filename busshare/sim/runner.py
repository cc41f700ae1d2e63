"""The simulation loop: real Master and Servant objects on a simulated bus, in virtual time.

Event-driven: the loop jumps to the next frame delivery, node deadline
(``next_deadline()``), car change or scripted action; nothing happens in
between, so idle time costs nothing.  Everything random comes from
``random.Random`` streams derived from the seed, ties are broken by insertion
order, and no set of objects is ever iterated: the same scenario and seed give
the same run, frame for frame.

The loop never sleeps.  ``on_step(sim)`` is called after every event, so a
caller can draw a live view and pace the run against a wall clock.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypedDict, Unpack

from ..core.config import Config, ServantConfig, Timing
from ..core.driver import settle, settle_servant
from ..core.events import Event, EventKind
from ..core.heartbeat_order import HeartbeatOrder
from ..core.node import MasterNode, Node, ServantNode
from ..frames import Ack, FrameError, Heartbeat, Message, SetLimit, decode
from ..protocol.pilot import PilotState
from ..report.timeline import Mark, Sample, Timeline
from .bus import DELIVER, BusFaults, Port, SimBus
from .clock import EventQueue
from .ev import VOLTAGE_V, EvProfile, SimEvse
from .invariants import (
    MODEST_LOSS,
    Bounds,
    Invariants,
    SimulationFailed,
    Violation,
    default_settle,
    recovery_after,
)
from .procs import MasterProc, ServantProc
from .scenario import CarPlan, FaultPlan, Scenario

INF = float("inf")
NODE, EV, SCRIPT, CHECK = 1, 2, 3, 4
TRACE_LEN = 400


@dataclass
class Summary:
    scenario: str
    seed: int
    sim_seconds: float
    limit_da: int
    peak_offered_da: int
    peak_drawn_da: int
    voltage_v: float
    energy_kwh: dict[str, float]
    failsafe_episodes: int
    violations: list[Violation]
    frames: int
    lost: int
    corrupted: int
    duplicated: int
    rejected: int  # frames dropped by the receivers' Links (E2E, malformed, duplicates)
    steps: int

    def text(self) -> str:
        lines = [
            f"scenario {self.scenario}, seed {self.seed}: {self.sim_seconds:.1f} s simulated in {self.steps} steps",
            f"limit {self.limit_da / 10:.1f} A; peak offered {self.peak_offered_da / 10:.1f} A; "
            f"peak drawn {self.peak_drawn_da / 10:.1f} A",
            f"energy at {self.voltage_v:.0f} V: " + ", ".join(f"{k} {v:.2f} kWh" for k, v in self.energy_kwh.items()),
            f"failsafe episodes: {self.failsafe_episodes}",
            f"frames: {self.frames} sent, {self.lost} lost, {self.corrupted} corrupted, {self.duplicated} duplicated, "
            f"{self.rejected} rejected by receivers",
            f"invariant violations: {len(self.violations)}",
        ]
        lines += [f"  {v}" for v in self.violations]
        return "\n".join(lines)


@dataclass
class SimResult:
    summary: Summary
    timeline: Timeline
    capture: list[tuple[float, int, bytes]] = field(default_factory=list)

    @property
    def violations(self) -> list[Violation]:
        return self.summary.violations

    @property
    def ok(self) -> bool:
        return not self.summary.violations


class MasterFactory(Protocol):
    """What builds a master (``Master`` itself, or a test's subclass)."""

    def __call__(self, config: Config, now: float, master_id: int | None = ..., epoch: int = ...) -> MasterNode: ...


class ServantFactory(Protocol):
    """What builds a servant (``Servant`` itself, or a test's subclass)."""

    def __call__(self, config: ServantConfig, timing: Timing, now: float) -> ServantNode: ...


def _load_nodes() -> tuple[MasterFactory, ServantFactory]:
    from ..master import Master
    from ..servant import Servant

    return Master, Servant


class Simulation:
    """One installation in virtual time.  Drive it with ``run`` or ``run_until`` and the fault methods."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        *,
        record: bool = True,
        stop_on_violation: bool = True,
        on_step: Callable[[Simulation], None] | None = None,
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
        self.on_step = on_step
        base = f"busshare-sim:{self.seed}"
        self.rng_bus = random.Random(f"{base}:bus")
        self.rng_ev = random.Random(f"{base}:ev")
        self.rng_misc = random.Random(f"{base}:misc")
        self.queue = EventQueue(0.0)
        self.bus = SimBus(self.queue, self.rng_bus, BusFaults(**vars(scenario.bus)))
        self._bus_base: dict[str, Any] = dict(vars(scenario.bus))  # the bus without the running episodes
        self._bus_episodes: list[dict[str, float]] = []
        if not record:
            self.bus.capture = _NullList()
        self.filter = scenario.filter
        tick = float(self.timing.tick_period)
        self.bounds = Bounds(
            limit_da=self.config.limit_da,
            failsafe_bound_s=float(self.timing.failsafe_timeout) + tick,
            unheard_bound_s=self.timing.unheard_bound,
            leaving_bound_s=tick,
            cutoff_bound_s=float(self.timing.reaction_allowance) + tick,
            settle_s=scenario.settle_s if scenario.settle_s is not None else default_settle(self.timing),
            rotation_s=self.timing.rotation_interval,
            waste_slack_da=10 + len(self.config.servants),
            retry_s=float(self.timing.ack_timeout),
        )
        self.hold_s = self.timing.failsafe_hold + tick
        priorities = {s.priority for s in self.config.servants}
        self.inv = Invariants(self, self.bounds, len(priorities) == 1,
                              max((s.min_da for s in self.config.servants), default=60))
        self.checks_waste = scenario.check_waste
        self.checks_starvation = scenario.check_starvation
        self.timeline = Timeline(self.config.limit_da)
        self.trace: deque[tuple[float, str, str, int, bytes]] = deque(maxlen=TRACE_LEN)  # frames sent
        self.notes: deque[tuple[float, str, str]] = deque(maxlen=TRACE_LEN)  # everything else
        self.violations: list[Violation] = []
        self.masters: list[MasterProc] = []
        self.servants: list[ServantProc] = []
        self.by_address: dict[int, list[ServantProc]] = {}
        self.epoch = scenario.first_epoch
        self.steps = 0
        self.failsafe_episodes = 0
        self.faults: dict[str, float] = {}  # active fault name -> since
        self.quiet_since = 0.0
        self.quiet = False
        self.energy_done: dict[str, float] = {}
        self._sample_keys: dict[str, tuple[int, int, PilotState]] = {}
        self._dead_ports: list[Port] = []
        # build the installation
        for cfg in self.config.servants:
            self._add_servant(cfg, twin=False, now=0.0)
        self._start_master(self.config.master_id, 0.0)
        for car in scenario.cars:
            self._plan_car(car)
        for fault in scenario.faults:
            self.queue.push(fault.at, SCRIPT, self._apply_fault, fault)
        self._update_quiet(0.0)

    # ------------------------------------------------------------------ running

    @property
    def now(self) -> float:
        return self.queue.now

    def run(self, until: float | None = None) -> SimResult:
        self.run_until(self.scenario.duration_s if until is None else until)
        return self.result()

    def run_until(self, t_end: float) -> None:
        heap = self.queue.heap
        q = self.queue
        pop = heapq.heappop
        on_step = self.on_step
        deliver = self._deliver
        try:
            while heap and heap[0][0] <= t_end:
                t, _, kind, a, b = pop(heap)
                if t > q.now:
                    q.now = t
                if kind == DELIVER:
                    deliver(t, a, b)
                elif kind == NODE:
                    if a.is_master:
                        self._master_due(a, t)
                    else:
                        self._servant_due(a, t)
                elif kind == EV:
                    self._ev_due(a, t)
                elif kind == SCRIPT:
                    a(b, t)
                else:
                    self._check_due(a, b, t)
                self.steps += 1
                if on_step is not None:
                    on_step(self)
        except SimulationFailed:
            raise
        except Exception as exc:  # a node (or the simulator) crashed: report it like a violation
            import traceback

            frames = traceback.extract_tb(exc.__traceback__)
            nodes = [f for f in frames if "/sim/" not in f.filename and not f.filename.endswith("frames.py")
                     and not f.filename.startswith("<")]
            where = (nodes or frames)[-1]
            v = Violation(q.now, "node-exception", f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")
            self.violations.append(v)
            self._trace(q.now, "EXCEPTION", str(v))
            raise SimulationFailed(v, self.seed, self.scenario.name, self.trace_lines(), self.scenario.origin) from exc
        if t_end > q.now:
            q.now = t_end

    def result(self) -> SimResult:
        t = self.now
        energy: dict[str, float] = {}
        for p in self.servants:
            p.evse.advance(t)
            energy[p.name] = round((p.evse.energy_wh + self.energy_done.get(p.name, 0.0)) / 1000.0, 3)
        rejected = sum(port.link.dropped for port in self._all_ports())
        summary = Summary(
            scenario=self.scenario.name, seed=self.seed, sim_seconds=t, limit_da=self.config.limit_da,
            peak_offered_da=self.inv.peak_offered, peak_drawn_da=self.inv.peak_drawn, voltage_v=VOLTAGE_V,
            energy_kwh=energy, failsafe_episodes=self.failsafe_episodes, violations=list(self.violations),
            frames=self.bus.frames, lost=self.bus.lost, corrupted=self.bus.corrupted,
            duplicated=self.bus.duplicated, rejected=rejected, steps=self.steps,
        )
        capture = list(self.bus.capture) if self.record else []
        return SimResult(summary, self.timeline, capture)

    def _all_ports(self) -> list[Port]:
        return self._dead_ports + list(self.bus.ports)

    # ------------------------------------------------------------------ failures

    def fail(self, t: float, check: str, detail: str) -> None:
        v = Violation(t, check, detail)
        self.violations.append(v)
        self._trace(t, "VIOLATION", str(v))
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

    def offers_text(self) -> str:
        return ", ".join(f"{p.name}={p.offer / 10:.1f}" for p in self.servants if p.offer)

    def draws_text(self) -> str:
        return ", ".join(f"{p.name}={p.draw / 10:.1f}{'' if p.evse.compliant else '(nc)'}"
                         for p in self.servants if p.draw)

    def schedule_check(self, t: float, what: str, p: ServantProc | None) -> None:
        self.queue.push(t, CHECK, p, what)

    def contested(self, address: int) -> bool:
        procs = self.by_address.get(address)
        return procs is not None and len(procs) > 1 and sum(1 for p in procs if p.alive) > 1

    # ------------------------------------------------------------------ nodes

    def _start_master(self, master_id: int, now: float) -> MasterProc:
        epoch = self.epoch % 256
        self.epoch += 1
        node = self.master_cls(self.config, now, master_id=master_id, epoch=epoch)
        name = "master" if not self.masters else f"master{master_id}"
        proc = MasterProc(name, node, None, master_id, epoch, now)
        proc.port = self.bus.attach(name, 0, proc, None)
        proc.host = MasterHost(self, proc)
        self.masters.append(proc)
        self._mark(now, None, "master-start", f"{name} id {master_id} epoch {epoch}")
        self._master_after(proc, [], now)
        self._disturb(now, "master-start")
        return proc

    def _stop_master(self, proc: MasterProc, now: float, graceful: bool) -> None:
        if graceful:
            out = proc.node.shutdown(now)
            self._send(proc.port, out, now)
            self._marks(proc, proc.node.drain_events(), now)
        proc.alive = False
        if proc.port is not None:
            self.bus.detach(proc.port)
            self._dead_ports.append(proc.port)
        self.masters = [m for m in self.masters if m is not proc]
        self._mark(now, None, "master-stop", f"{proc.name} {'shut down' if graceful else 'crashed'}")

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
        p.node = self.servant_cls(p.cfg, self.timing, now)
        p.alive = True
        p.booted = now
        p.watchdog_at = INF
        accept = frozenset((0, p.address, 63)) if self.filter else None
        p.port = self.bus.attach(p.name, p.address, p, accept)
        p.a_offer = -1
        p.a_stop = False
        p.r_pilot = None
        p.r_measured = None
        p.grant_fs = p.grant_epoch = p.hb_key = None
        p.followed = None
        p.masters_seen = {}
        p.hb_orders = {}
        p.second_master_until = -INF
        p.fs_da = p.cfg.failsafe_da
        p.last_hb = -INF
        p.hb_deadline = p.heard_deadline = INF
        self._arm_failsafe(p, now + self.bounds.failsafe_bound_s)
        self._servant_after(p, [], now, True)

    def _kill_servant(self, p: ServantProc, now: float, hold_s: float | None) -> None:
        """The process dies; its pilot holds the last offer until the hardware watchdog resets it."""
        if not p.alive:
            return
        p.alive = False
        p.node = None
        if p.port is not None:
            self.bus.detach(p.port)
            self._dead_ports.append(p.port)
        p.port = None
        p.node_sched = INF
        p.fs_deadline = p.hb_deadline = p.heard_deadline = INF
        p.hold_deadline = INF
        if hold_s is None or hold_s <= 0:
            p.evse.power_reset(now)
        else:
            p.watchdog_at = now + hold_s
            self.queue.push(p.watchdog_at, SCRIPT, self._watchdog, p)
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

    # ------------------------------------------------------------------ the hot path

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
            if isinstance(msg, SetLimit | Ack):  # the frames a settle waits for: count those the bus spoils
                before = bus.lost + bus.corrupted
                send(port, offset, data, t)
                spoiled = bus.lost + bus.corrupted - before
                if spoiled:
                    self.inv.control_spoiled(t, spoiled)
            else:
                send(port, offset, data, t)

    def _deliver(self, t: float, offset: int, targets: list[tuple[Port, bytes, bool]]) -> None:
        for port, data, bad in targets:
            if port.deaf or not port.attached:
                continue
            got = port.link.receive(offset, data, t)  # the production receive policy (PROTOCOL.md 6.3)
            msg = got.message
            if msg is None:
                continue
            if bad:
                self.fail(t, "rule8-integrity", f"{port.name} accepted a corrupted frame {offset:#05x} [{data.hex(' ')}]")
            proc = port.owner
            if isinstance(proc, MasterProc):
                self._master_after(proc, proc.node.receive(msg, t), t)
                continue
            node = proc.node
            assert node is not None  # (a dead process's port is detached)
            if offset == 0x40:
                assert isinstance(msg, Heartbeat)
                self._heartbeat_seen(proc, msg, t)
            elif offset < 0x40 and (offset & 0x3F) == proc.address and self._accepts(proc, msg, t):
                assert isinstance(msg, SetLimit)
                out = node.receive(msg, t)
                # only a set-limit the servant applied: not one it rightly ignores (another epoch, a second master
                # hold, a late copy older than the newest it applied, a repeat it only re-acks)
                if node.last_set_limit is msg:
                    proc.grant_fs = msg.failsafe_da
                    proc.grant_epoch = msg.epoch
                    proc.fs_da = self._failsafe_of(proc)
                    # a set-limit from a master is a grant: rule 4 lets it end the failsafe
                    proc.last_hb = t
                    self._arm_failsafe(proc, t + self.bounds.failsafe_bound_s)
                self._servant_after(proc, out, t)
                continue
            self._servant_after(proc, node.receive(msg, t), t)

    def _accepts(self, p: ServantProc, msg: Message, t: float) -> bool:
        """Whether the spec lets the servant act on this SET_LIMIT (rules 4 and 6).

        Only one of the master it follows (same epoch), and none while it holds off two masters. Worked
        out here from the heartbeats it accepted, not read from the servant under test.
        """
        assert isinstance(msg, SetLimit)
        return p.followed is not None and msg.epoch == p.followed[1] and t >= p.second_master_until

    def _follow(self, p: ServantProc, hb: Heartbeat, t: float) -> None:
        """Which master the servant follows, by rule 6: a new (id, epoch) is a restart, followed at once;
        two (id, epoch) pairs interleaved within conflict_hold, or a heartbeat flagged ``second_master``, are
        two masters: it follows neither's SET_LIMITs until conflict_hold after the last sign."""
        hold = float(self.timing.conflict_hold)
        key = (hb.master_id, hb.epoch)
        before = p.masters_seen.get(key)
        p.masters_seen[key] = t
        if len(p.masters_seen) > 4:  # (restarts add keys: forget those long gone)
            p.masters_seen = {k: v for k, v in p.masters_seen.items() if t - v <= hold or k == p.followed}
        if hb.second_master:
            p.second_master_until = t + hold
        if key == p.followed:
            return
        ours = p.masters_seen.get(p.followed) if p.followed is not None else None
        if before is not None and t - before <= hold and ours is not None and t - ours <= hold:
            p.second_master_until = t + hold  # a master it had left behind, heard again while its own is alive
            return
        p.followed = key

    def _heartbeat_seen(self, p: ServantProc, hb: Heartbeat, t: float) -> None:
        self._follow(p, hb, t)
        key = (hb.master_id, hb.epoch)
        order = p.hb_orders.get(key)
        if order is None:
            order = p.hb_orders[key] = HeartbeatOrder(self.timing.heartbeat_period)
        if not hb.leaving and not order.fresh(hb.seq, t):
            return  # a late copy of an old heartbeat restarts no rule-4 clock (PROTOCOL.md 5.2, fresh heartbeats)
        if key != p.hb_key or hb.hears(p.address):
            # a master it did not follow yet gets heard_timeout to hear it; after that only a heartbeat
            # saying it hears the servant keeps the servant out of failsafe (rule 4)
            p.hb_key = key
            p.heard_deadline = t + self.bounds.unheard_bound_s
        if hb.leaving:
            self._arm_failsafe(p, t + self.bounds.leaving_bound_s, leaving=True)
        else:
            p.last_hb = t
            self._arm_failsafe(p, t + self.bounds.failsafe_bound_s)

    def _failsafe_of(self, p: ServantProc) -> int:
        """The failsafe current a servant must fall to, from the frames it accepted (rule 4).

        The one sent with its last set-limit (from whichever master); without one, its standalone one.
        """
        if p.grant_fs is not None:
            return p.grant_fs
        return int(p.cfg.failsafe_da)

    def _arm_failsafe(self, p: ServantProc, deadline: float, leaving: bool = False) -> None:
        if leaving:
            if deadline < p.hb_deadline:
                p.hb_deadline = deadline
        else:
            p.hb_deadline = deadline
        p.fs_deadline = p.hb_deadline if p.hb_deadline < p.heard_deadline else p.heard_deadline
        if p.fs_deadline < p.fs_check_sched:
            p.fs_check_sched = p.fs_deadline
            self.queue.push(p.fs_deadline, CHECK, p, "failsafe")
        p.hold_deadline = p.fs_deadline + self.hold_s
        if p.hold_deadline < p.hold_sched:
            p.hold_sched = p.hold_deadline
            self.queue.push(p.hold_deadline, CHECK, p, "hold")

    def _servant_due(self, p: ServantProc, t: float) -> None:
        if t != p.node_sched or not p.alive:
            return
        p.node_sched = INF
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
        settle_servant(node, host, out, t)

    def _sync(self, p: ServantProc, t: float) -> None:
        """An EVSE changed: the invariants check it and the timeline records it (the plot draws what they saw)."""
        self.inv.sync(p, t)
        if self.record:
            self._sample(p, t)

    def _sample(self, p: ServantProc, t: float) -> None:
        ev = p.evse
        pilot = ev.pilot()
        key = (ev.offer_da, ev.draw_da, pilot)
        if self._sample_keys.get(p.name) != key:
            self._sample_keys[p.name] = key
            self.timeline.samples.append(Sample(t, p.address, ev.offer_da, ev.draw_da if ev.meter else None, pilot))
        p.pilot = pilot

    def _ev_due(self, p: ServantProc, t: float) -> None:
        if t != p.ev_sched:
            return
        p.ev_sched = INF
        if p.alive:
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
            self.queue.push(c, EV, p)

    def _node_resched(self, p: ServantProc | MasterProc, deadline: float) -> None:
        d = max(deadline, self.queue.now)
        if d < p.node_sched:
            p.node_sched = d
            self.queue.push(d, NODE, p)

    def _master_due(self, m: MasterProc, t: float) -> None:
        if t != m.node_sched or not m.alive:
            return
        m.node_sched = INF
        if m.node.next_deadline() <= t:
            out = m.node.tick(t)
            if m.node.next_deadline() <= t:
                self._stuck(m, m.node, t)
            self._master_after(m, out, t)
        else:
            self._node_resched(m, m.node.next_deadline())

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
        settle(m.node, m.host, out, t)

    def _marks(self, proc: ServantProc | MasterProc, events: list[Event], t: float) -> None:
        """A node's events, as timeline marks (a servant's carry its address)."""
        for ev in events:
            address = ev.address
            if address is None and isinstance(proc, ServantProc):
                address = proc.address
            self._mark(t, address, ev.kind, f"{proc.name}: {ev.detail}")

    def _check_due(self, p: ServantProc | None, what: str, t: float) -> None:
        if what == "failsafe":
            assert p is not None
            if p.fs_check_sched == t and p.alive:
                self.inv.check_failsafe(p, t)
        elif what == "hold":
            assert p is not None
            if p.hold_sched == t and p.alive:
                self.inv.check_hold(p, t)
        elif what == "cutoff":
            assert p is not None
            if p.cutoff_sched == t:
                self.inv.check_cutoff(p, t)
        elif what == "waste":
            if self.inv.waste_sched == t:
                self.inv.check_waste(t)
        elif what == "starve":
            assert p is not None
            if p.starve_sched == t:
                self.inv.check_starvation(p, t)
        elif what == "quiet":
            self.inv.rearm_all(t)

    # ------------------------------------------------------------------ quiet conditions

    def _disturb(self, t: float, recovery: str | None = None) -> None:
        """Demand or topology changed at ``t``: the service checks restart their clocks."""
        at = t + (recovery_after(self.timing, recovery) if recovery else 0.0)
        if at > self.quiet_since:
            self.quiet_since = at
        self._update_quiet(t)

    def _update_quiet(self, t: float) -> None:
        quiet = (
            not self.faults
            and len(self.masters) == 1
            and self.bus.faults.loss <= MODEST_LOSS
            and not self.bus.faults.late
            and not self.bus.faults.jitter_s
            and not self.bus.faults.echo_s  # a second path replays old frames: safety holds, service waits
            and all(p.alive for p in self.servants)
        )
        if quiet and not self.quiet:
            self.quiet_since = max(self.quiet_since, t)
        self.quiet = quiet
        if quiet:
            self.queue.push(self.quiet_since + self.bounds.settle_s, CHECK, None, "quiet")
            self.inv.rearm_all(t)

    # ------------------------------------------------------------------ cars

    def _plan_car(self, car: CarPlan) -> None:
        self.queue.push(car.at, SCRIPT, self._car_in, car)
        if car.leave is not None:
            self.queue.push(car.leave, SCRIPT, self._car_out, car)

    def _procs_at(self, address: int, twin: bool = False) -> list[ServantProc]:
        return [p for p in self.by_address.get(address, []) if p.twin == twin]

    def _car_in(self, car: CarPlan, t: float) -> None:
        for p in self._procs_at(car.evse, car.twin)[:1]:
            self.plug(p, car.profile, t)

    def _car_out(self, car: CarPlan, t: float) -> None:
        for p in self._procs_at(car.evse, car.twin)[:1]:
            self.unplug(p, t)

    def plug(self, p: ServantProc, profile: EvProfile, t: float | None = None) -> None:
        t = self.now if t is None else t
        if p.evse.plugged:
            self.unplug(p, t)
        p.evse.plug(profile, t)
        self._mark(t, p.address, "plug-in", f"{p.name}: car wants {profile.need_kwh:.1f} kWh, max "
                   f"{profile.max_a:.0f} A{'' if profile.compliant else ', NON-COMPLIANT'}")
        self._hardware_changed(p, t)
        self._disturb(t)

    def unplug(self, p: ServantProc, t: float | None = None) -> None:
        t = self.now if t is None else t
        if not p.evse.plugged:
            return
        p.evse.advance(t)
        self.energy_done[p.name] = self.energy_done.get(p.name, 0.0)
        p.evse.unplug(t)
        self._mark(t, p.address, "unplug", f"{p.name}: {p.evse.session_wh / 1000:.2f} kWh delivered")
        self._hardware_changed(p, t)
        self._disturb(t)

    def _hardware_changed(self, p: ServantProc, t: float) -> None:
        if p.alive:
            self._servant_after(p, [], t, True)
        else:
            self._sync(p, t)
            self._ev_resched(p)

    # ------------------------------------------------------------------ faults

    def _apply_fault(self, f: FaultPlan, t: float) -> None:
        kind = f.kind
        if kind == "master_crash":
            self.master_crash(t)
        elif kind == "master_restart":
            self.master_restart(t)
        elif kind == "master_shutdown":
            self.master_shutdown(t)
        elif kind == "second_master":
            self.second_master(t, f.master_id, f.duration_s)
        elif kind == "servant_crash":
            self.servant_crash(self._one(f), t, f.hold_s, f.duration_s)
        elif kind == "servant_restart":
            self.servant_restart(self._one(f), t)
        elif kind == "partition":
            self.partition(self._one(f), f.direction, t, f.duration_s)
        elif kind == "bus":
            self.bus_faults(t, f.duration_s, **f.bus)
        elif kind == "twin":
            self.add_twin(f.address or 1, t, f.serial, f.duration_s, f.car)
        else:  # pragma: no cover - scenario validation rejects unknown kinds
            raise ValueError(f"unknown fault kind {kind!r}")

    def _one(self, f: FaultPlan) -> ServantProc:
        procs = self._procs_at(f.address or 1)
        if not procs:
            raise ValueError(f"fault {f.kind}: no servant at address {f.address}")
        return procs[0]

    def _fault_on(self, name: str, t: float) -> None:
        self.faults[name] = t
        self._disturb(t, "fault")

    def _fault_off(self, name: str, t: float) -> None:
        self.faults.pop(name, None)
        self._disturb(t, "fault")

    def master_crash(self, t: float | None = None) -> None:
        t = self.now if t is None else t
        if self.masters:
            self._stop_master(self.masters[0], t, graceful=False)
        self._disturb(t, "fault")

    def master_shutdown(self, t: float | None = None) -> None:
        t = self.now if t is None else t
        if self.masters:
            self._stop_master(self.masters[0], t, graceful=True)
        self._disturb(t, "fault")

    def master_restart(self, t: float | None = None) -> None:
        t = self.now if t is None else t
        if not any(m.master_id == self.config.master_id for m in self.masters):
            self._start_master(self.config.master_id, t)
        self._disturb(t, "fault")

    def second_master(self, t: float | None = None, master_id: int = 2, duration_s: float | None = None) -> None:
        t = self.now if t is None else t
        proc = self._start_master(master_id, t)
        self._disturb(t, "fault")
        if duration_s is not None:
            self.queue.push(t + duration_s, SCRIPT, self._end_second_master, proc)

    def _end_second_master(self, proc: MasterProc, t: float) -> None:
        if proc.alive:
            self._stop_master(proc, t, graceful=False)
        self._disturb(t, "fault")

    def servant_crash(self, p: ServantProc, t: float | None = None, hold_s: float | None = None,
                      duration_s: float | None = None) -> None:
        """Crash a servant process; it holds its pilot for ``hold_s`` (default: the scenario's watchdog)."""
        t = self.now if t is None else t
        hold = self.scenario.watchdog_s if hold_s is None else hold_s
        self._mark(t, p.address, "servant-crash", f"{p.name} (pilot held {hold:.2f} s)")
        self._kill_servant(p, t, hold)
        self._fault_on(f"crash:{p.name}", t)
        if duration_s is not None:
            self.queue.push(t + duration_s, SCRIPT, self._restart_cb, p)

    def _restart_cb(self, p: ServantProc, t: float) -> None:
        self.servant_restart(p, t)

    def servant_restart(self, p: ServantProc, t: float | None = None) -> None:
        t = self.now if t is None else t
        if p.alive:
            self._kill_servant(p, t, 0.0)
        elif p.watchdog_at < INF:  # rebooting resets the hardware too
            p.watchdog_at = INF
            p.evse.power_reset(t)
        self._mark(t, p.address, "servant-boot", p.name)
        self._boot_servant(p, t)
        self._fault_off(f"crash:{p.name}", t)

    def partition(self, p: ServantProc, direction: str, t: float | None = None,
                  duration_s: float | None = None) -> None:
        """Cut ``p`` off the bus: 'in' (deaf), 'out' (mute) or 'both'."""
        t = self.now if t is None else t
        if p.port is not None:
            p.port.deaf = direction in ("in", "both")
            p.port.mute = direction in ("out", "both")
        self._mark(t, p.address, "partition", f"{p.name} {direction}")
        self._fault_on(f"partition:{p.name}", t)
        if duration_s is not None:
            self.queue.push(t + duration_s, SCRIPT, self._heal_cb, p)

    def _heal_cb(self, p: ServantProc, t: float) -> None:
        self.heal(p, t)

    def heal(self, p: ServantProc, t: float | None = None) -> None:
        t = self.now if t is None else t
        if p.port is not None:
            p.port.deaf = p.port.mute = False
        self._mark(t, p.address, "heal", p.name)
        self._fault_off(f"partition:{p.name}", t)

    def bus_faults(self, t: float | None = None, duration_s: float | None = None, **changes: float) -> None:
        """Change the bus's fault rates, for ``duration_s`` (None: for good).

        Episodes may overlap: the bus is always the base with every running episode's changes applied in
        the order they started, so one ending never undoes (or brings back) another.
        """
        t = self.now if t is None else t
        if duration_s is None:
            self._bus_base.update(changes)
        else:
            episode = dict(changes)
            self._bus_episodes.append(episode)
            self.queue.push(t + duration_s, SCRIPT, self._bus_restore, episode)
        self._bus_apply()
        self._mark(t, None, "bus", ", ".join(f"{k}={v}" for k, v in changes.items()))
        self._disturb(t, "fault")

    def _bus_restore(self, episode: dict[str, float], t: float) -> None:
        self._bus_episodes = [e for e in self._bus_episodes if e is not episode]
        self._bus_apply()
        self._mark(t, None, "bus", "restored" if not self._bus_episodes else "episode over")
        # late copies still on their way are part of the fault: the recovery runs from the last one
        self._disturb(max(t, self.bus.late_until), "fault")

    def _bus_apply(self) -> None:
        merged = dict(self._bus_base)
        for episode in self._bus_episodes:
            merged.update(episode)
        self.bus.faults = BusFaults(**merged)

    def add_twin(self, address: int, t: float | None = None, serial: int | None = None,
                 duration_s: float | None = None, car: EvProfile | None = None) -> ServantProc:
        """A second servant process configured with the same address (a commissioning mistake)."""
        t = self.now if t is None else t
        base = self._procs_at(address)
        if not base:
            raise ValueError(f"twin: no servant at address {address}")
        cfg = base[0].cfg
        twin_cfg = replace(cfg, serial=serial if serial is not None else (cfg.serial ^ 0x5A5A5A5A) & 0xFFFFFFFF)
        p = self._add_servant(twin_cfg, twin=True, now=t)
        self._mark(t, address, EventKind.TWIN, f"{p.name} serial {twin_cfg.serial:#x}")
        self._fault_on(f"twin:{address}", t)
        if car is not None:
            self.plug(p, car, t)
        if duration_s is not None:
            self.queue.push(t + duration_s, SCRIPT, self._twin_off, p)
        return p

    def _twin_off(self, p: ServantProc, t: float) -> None:
        self._kill_servant(p, t, 0.0)
        if p.evse.plugged:
            p.evse.unplug(t)
            self._sync(p, t)
        self._mark(t, p.address, EventKind.TWIN_GONE, p.name)
        self._fault_off(f"twin:{p.address}", t)


class MasterHost:
    """A simulated master process as the node driver's host: its bus port and its event queue entry."""

    __slots__ = ("sim", "m")

    def __init__(self, sim: Simulation, m: MasterProc) -> None:
        self.sim = sim
        self.m = m

    def apply(self, now: float) -> None:
        pass  # a master has no pilot

    def send(self, msgs: list[Message], now: float) -> None:
        self.sim._send(self.m.port, msgs, now)

    def record(self, events: list[Event], now: float) -> None:
        if events:
            self.sim._marks(self.m, events, now)

    def schedule(self, deadline: float, now: float) -> None:
        m = self.m
        d = deadline if deadline > now else now
        if d < m.node_sched:
            m.node_sched = d
            self.sim.queue.push(d, NODE, m)


class ServantHost:
    """A simulated servant process as the node driver's host: its EVSE (readings fed back at once), its bus
    port, the invariants and its event queue entries.

    ``changed``: the EVSE was touched during this call (by the offer, or before it by a car or a reboot),
    so its readings may have changed; set by the caller before each ``settle_servant``.
    """

    __slots__ = ("sim", "p", "changed")

    def __init__(self, sim: Simulation, p: ServantProc) -> None:
        self.sim = sim
        self.p = p
        self.changed = False

    def apply(self, now: float) -> None:
        p = self.p
        node = p.node
        assert node is not None  # (only a running process is driven)
        offer = node.offer_da
        stopped = node.ev_stopped
        if offer != p.a_offer or stopped != p.a_stop:
            p.a_offer = offer
            p.a_stop = stopped
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

    def record(self, events: list[Event], now: float) -> None:
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
            sim._mark(now, p.address, EventKind.FAILSAFE if fs else EventKind.FAILSAFE_END, f"{p.name} offers {p.offer / 10:.1f} A")
        if events:
            sim._marks(p, events, now)

    def schedule(self, deadline: float, now: float) -> None:
        p, queue = self.p, self.sim.queue
        d = deadline if deadline > now else now
        if d < p.node_sched:
            p.node_sched = d
            queue.push(d, NODE, p)
        if self.changed:  # (an untouched car keeps the change it has scheduled already)
            c = p.evse.next_change()
            if c < now:
                c = now
            if c < p.ev_sched:
                p.ev_sched = c
                queue.push(c, EV, p)


def _frame_text(offset: int, data: bytes) -> str:
    try:
        msg, counter = decode(offset, data)
    except FrameError as exc:
        return f"undecodable {data.hex()}: {exc}"
    return f"{msg!r} ctr {counter}"


class _NullList(list[tuple[float, int, bytes]]):
    """A capture that keeps nothing (chaos runs do not need the frames)."""

    def append(self, item: tuple[float, int, bytes]) -> None:
        pass


class SimOptions(TypedDict, total=False):
    """The keyword options of ``Simulation``, for ``run_scenario``."""

    record: bool
    stop_on_violation: bool
    on_step: Callable[[Simulation], None] | None
    master_cls: MasterFactory | None
    servant_cls: ServantFactory | None


def run_scenario(scenario: Scenario, seed: int | None = None, **options: Unpack[SimOptions]) -> SimResult:
    """Run ``scenario`` to its end; raises ``SimulationFailed`` on the first violation."""
    return Simulation(scenario, seed, **options).run()
