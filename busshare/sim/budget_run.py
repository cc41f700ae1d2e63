"""The budget world in a run: meter polls, faults and setpoints into the master, samples out, the six checks.

``BudgetRun`` is attached to a ``World`` whose installation has a ``[budget]`` (docs/BUDGET.md 7):

* every ``poll_s`` the meter is polled with the true mains current (the house at ``t`` plus what every
  EVSE draws, one phase); ``latency_s`` later the master is handed the reading
  (``mains_reading(MainsReading(t, ...))``) or the failure (``mains_failed``), or nothing (a stale
  meter); setpoints and withdrawals go to ``setpoint`` / ``clear_setpoint`` when they are due.  What
  the master returns goes on the bus like any node output.
* after each master call and each EVSE change it records, on change only, what the checks of
  ``budget_checks`` judge: the budget and the rule-1 count, the site's load, supply and demand.
* ``check(end)`` runs the six checks over the record; the world reports what they find through its
  normal violation path (the seed and the trace), once per violation.

While the effective limit is below the static one, the budget counts as a fault for the static
limit's service checks (waste, starvation judge a fixed limit): ``budget-waste`` judges that time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.allocation import Demand
from ..core.budget import BudgetPolicy
from ..core.budget import MainsReading
from ..core.budget import steady_change_bound
from ..core.budget_config import BudgetConfig
from ..core.currents import PhaseCurrents
from ..core.node import BudgetMaster
from ..frames import Heartbeat
from ..frames import Message
from ..frames import SetLimit
from .budget_checks import BudgetSample
from .budget_checks import MeterDelivery
from .budget_checks import SetLimitSent
from .budget_checks import SetpointDelivery
from .budget_checks import SiteSample
from .budget_checks import SupplySample
from .budget_checks import check_announced
from .budget_checks import check_chatter
from .budget_checks import check_compliance
from .budget_checks import check_fallback
from .budget_checks import check_site
from .budget_checks import check_waste
from .budget_checks import stale_intervals
from .house import BudgetWorld
from .house import PollKind
from .house import SetpointEvent
from .house import SimMeter
from .invariants import Violation
from .procs import MasterProc
from .procs import ServantProc

if TYPE_CHECKING:
    from .world import World

INF = float("inf")
BUDGET_FAULT = "budget"  # the world's fault name while the limit is below the static one


@dataclass
class BudgetFigures:
    """The budget part of a run's summary (``busshare sim --json``: ``budget`` and ``site``)."""

    changes: int
    lowest_da: int
    fallbacks: int
    longest_over_budget_s: float
    bound_s: float
    main_limit_da: int | None
    peak_site_da: int
    over_main_s: float


class BudgetRun:
    """One run's budget world: see the module docstring."""

    def __init__(self, world: World, bw: BudgetWorld, cfg: BudgetConfig) -> None:
        self.w = world
        self.bw = bw
        self.cfg = cfg
        self.static_da = world.config.limit_da
        self.timing = world.config.timing
        self.metered = cfg.meter is not None
        self.meter: SimMeter | None = bw.meter() if self.metered else None
        self.window_s = self.timing.budget_compliance_bound
        self.site_window_s = bw.poll_s + bw.latency_s + self.window_s
        self.samples: list[BudgetSample] = []
        self.site: list[SiteSample] = []
        self.supply: list[SupplySample] = []
        self.meter_deliveries: list[MeterDelivery] = []
        self.setpoint_deliveries: list[SetpointDelivery] = []
        self.limit_changes: list[float] = []
        self.offer_changes: dict[str, list[float]] = {}  # per servant: when its pilot offer changed
        self.disturbed: list[float] = []  # cars arriving, leaving, changing demand; faults; setpoints
        self.fault_ends: list[float] = []  # a master start or a meter fault's end: the site check's window
        self._demands: dict[str, Demand] = {}
        self._demand_key: dict[str, tuple[int, bool, bool]] = {}
        self._offers: dict[str, int] = {}
        self._site_ev = 0
        self._last_limit: int | None = None
        self._reported: set[tuple[float, str, str]] = set()
        self.policies: list[BudgetPolicy] = []
        self.quiet_spans: list[tuple[float, float]] = []  # when no fault was in effect (a steady stretch's room)
        self._quiet_from: float | None = None
        self._masters_of: list[MasterProc] | None = None  # the world's master list _masters_now was read from
        self._masters_len = 0
        self._masters_now: list[tuple[MasterProc, BudgetMaster]] = []
        self.set_limits: list[SetLimitSent] = []  # every set-limit a master sent, with what it had announced
        # per master process (hashed by identity, and kept: a restart is a new process that has announced nothing)
        self._announced: dict[MasterProc, int] = {}  # the limit its last heartbeat carried
        q = world.queue
        if self.metered:
            q.push_script(0.0, self._poll, None)
            for f in bw.faults:
                self.disturbed += [f.start, f.start + f.duration_s]
                self.fault_ends.append(f.start + f.duration_s)
                q.push_script(f.start, self._meter_mark, ("meter-fault", f"{f.kind.value} for {f.duration_s:g} s"))
                q.push_script(f.start + f.duration_s, self._meter_mark, ("meter-fault-end", f.kind.value))
        for sp in bw.setpoints:
            q.push_script(sp.at, self._setpoint, sp)
            self.disturbed.append(sp.at)
        for t in bw.house.times[1:]:
            q.push_script(t, self._house_step, None)
        if world.record:
            world.timeline.main_limit_da = cfg.main_limit_da if self.metered else None

    @property
    def limit_da(self) -> int | None:
        """The effective limit in force (None before the first master took its budget)."""
        return self._last_limit

    # -- the master's policy -------------------------------------------------------------------------

    def policy(self, now: float) -> BudgetPolicy:
        """A new master's budget policy: it starts degraded, at the fallback, until its first reading."""
        p = BudgetPolicy.from_config(self.w.config, now)
        assert p is not None  # (a BudgetRun is made for an installation with a [budget] only)
        self.policies.append(p)
        self.fault_ends.append(now)
        if self.setpoint_deliveries and self.setpoint_deliveries[-1].ttl_s is not None:
            # a new master knows no setpoint (it has the next renewal): for it, the last one was never sent
            self.setpoint_deliveries.append(SetpointDelivery(now, None))
        return p

    def _masters(self) -> list[tuple[MasterProc, BudgetMaster]]:
        """The running masters that take a live limit, in start order.

        Asked after every master step, so kept until the world's master list changes: a master joins it
        by an append and leaves it (stopped, ``alive`` false) by a new list (``World._stop_master``), and a
        process never changes its node.
        """
        ms = self.w.masters
        if ms is not self._masters_of or len(ms) != self._masters_len:
            self._masters_of, self._masters_len = ms, len(ms)
            self._masters_now = [(m, node) for m in ms if m.alive and (node := _budget_master(m.node)) is not None]
        return self._masters_now

    # -- inputs: the meter and the energy manager --------------------------------------------------------

    def _poll(self, _: None, t: float) -> None:
        assert self.meter is not None
        ev = sum(p.evse.draw_da for p in self.w.servants)
        house = self.bw.house.at(t)
        self._site(t, house, ev)
        got = self.meter.poll(t, house + ev)
        at = t + self.bw.latency_s
        if got.kind is PollKind.READING:
            self.w.queue.push_script(at, self._reading, (t, got.mains_da))
        elif got.kind is PollKind.FAILED:
            self.w.queue.push_script(at, self._failed, got.why)
        self.w.queue.push_script(t + self.bw.poll_s, self._poll, None)

    def _reading(self, what: tuple[float, int], now: float) -> None:
        measured, mains = what

        def give(m: MasterProc, node: BudgetMaster, first: bool, t: float) -> None:
            self.w._master_after(m, node.mains_reading(MainsReading(measured, PhaseCurrents.single(mains)), t), t)
            if first:
                self.meter_deliveries.append(MeterDelivery(measured, t))

        self._give(give, now)

    def _failed(self, why: str, now: float) -> None:
        self._give(lambda m, node, first, t: self.w._master_after(m, node.mains_failed(t, why), t), now)

    def _setpoint(self, sp: SetpointEvent, now: float) -> None:
        ttl = None if sp.limit_da is None else (sp.ttl_s if sp.ttl_s is not None else self.cfg.setpoint_ttl_s)

        def give(m: MasterProc, node: BudgetMaster, first: bool, t: float) -> None:
            out = (node.clear_setpoint(t) if sp.limit_da is None else node.setpoint(sp.limit_da, sp.ttl_s, t))
            self.w._master_after(m, out, t)
            if first:
                self.setpoint_deliveries.append(SetpointDelivery(t, ttl))

        self._give(give, now)

    def _give(self, give: Callable[[MasterProc, BudgetMaster, bool, float], None], now: float) -> None:
        """An input of the feed, to each running master (``first``: the one the checks follow, whose deliveries
        they record). A master standing still takes it at its resume, after its tick (``Faults.master_resume``:
        the runtime's feed queues it for the loop)."""
        for i, (m, node) in enumerate(self._masters()):
            if m.stalled:
                m.held.append(functools.partial(give, m, node, i == 0))
            else:
                give(m, node, i == 0, now)

    def _meter_mark(self, what: tuple[str, str], t: float) -> None:
        self.w._mark(t, None, what[0], what[1])

    def _house_step(self, _: None, t: float) -> None:
        self._site(t, self.bw.house.at(t), self._site_ev)
        if self.w.record:
            self.w._mark(t, None, "house", f"{self.bw.house.base(t) / 10:.1f} A {self.bw.house.label(t)}".rstrip())

    # -- the record -------------------------------------------------------------------------------------

    def _site(self, t: float, house: int, ev: int) -> None:
        self._site_ev = ev
        quiet = self.w.quiet_except_budget and (self.meter is None or self.meter.fault_at(t) is None)
        s = SiteSample(t, house, ev, quiet)
        if self._site_differs(s):
            if self.w.record and self.metered and (not self.site or self.site[-1].house_da != house):
                self.w.timeline.house.append((t, house))
            self.site.append(s)

    def _site_differs(self, s: SiteSample) -> bool:
        if not self.site:
            return True
        last = self.site[-1]
        return (last.house_da, last.ev_da, last.quiet) != (s.house_da, s.ev_da, s.quiet)

    def _node_of(self, m: MasterProc) -> BudgetMaster | None:
        """The node of master process ``m``, if it runs and takes a live limit.

        (A loop, not next() over a generator: asked after every master step that sends, a heartbeat included.)
        """
        for mm, node in self._masters():
            if mm is m:
                return node
        return None

    def master_sent(self, m: MasterProc, out: Sequence[Message], t: float) -> None:
        """What a master sends, in order: the limit each heartbeat announces, each set-limit against it."""
        node = self._node_of(m)
        if node is None:
            return
        for msg in out:
            if isinstance(msg, Heartbeat):
                self._announced[m] = msg.limit_da
            elif isinstance(msg, SetLimit):
                self.set_limits.append(SetLimitSent(t, m.name, msg.address, node.budget.limit_da,
                                                    self._announced.get(m)))

    def after_master(self, t: float) -> None:
        """After any call into a master: the budget and the count, the supply."""
        masters = self._masters()
        if not masters:
            self._unjudged(t)
            return
        node = masters[0][1]
        b = node.budget
        limit = b.limit_da
        counted = node.committed_da(t)
        exempt = node.unreachable_da(t) if counted > limit else 0
        w = self.w
        quiet = w.quiet_except_budget and t >= w.quiet_since and len(masters) == 1  # (recovered from a fault)
        last = self.samples[-1] if self.samples else None
        # (compared field by field before a sample is built: this runs after every master step)
        if last is None or last.limit_da != limit or last.counted_da != counted or last.exempt_da != exempt or (
                last.degraded != b.degraded or last.quiet != quiet):
            self.samples.append(BudgetSample(t, limit, counted, exempt, b.degraded, quiet))
        if limit != self._last_limit:
            self._limit_changed(limit, t)

    def quiet_changed(self, t: float) -> None:
        """A fault began or ended: the samples in force are judged, or not, from now on."""
        if self.w.quiet_except_budget:
            self._quiet_from = t
        elif self._quiet_from is not None:
            self.quiet_spans.append((self._quiet_from, t))
            self._quiet_from = None
        self.after_master(t)
        self._supply(t)
        if self.site:
            self._site(t, self.site[-1].house_da, self._site_ev)

    def recovers_at(self, at: float) -> None:
        """The master may take until ``at`` to recover (a fault and its late copies, a master start): its count
        and supply are not judged before."""
        self.w.queue.push_script(at, self._resample, None)

    def _resample(self, _: None, t: float) -> None:
        if t >= self.w.quiet_since:
            self.after_master(t)
            self._supply(t)

    def master_stopped(self, t: float) -> None:
        if not self._masters():
            self._unjudged(t)

    def _unjudged(self, t: float) -> None:
        """No master: the budget is nobody's (the failsafe rules hold the servants)."""
        if self.samples and self.samples[-1].quiet:
            last = self.samples[-1]
            self.samples.append(BudgetSample(t, last.limit_da, last.counted_da, 0, last.degraded, False))

    def _limit_changed(self, limit: int, t: float) -> None:
        if self._last_limit is not None:
            self.limit_changes.append(t)
        self._last_limit = limit
        if self.w.record:
            self.w.timeline.budget.append((t, limit))
        w = self.w
        below = limit < self.static_da
        if below != (BUDGET_FAULT in w.faults):
            if below:
                w.faults[BUDGET_FAULT] = t
            else:
                del w.faults[BUDGET_FAULT]
            w._disturb(t)
        self._supply(t)

    def after_sync(self, p: ServantProc, t: float) -> None:
        """An EVSE changed: its demand, its offer, the site's EV load."""
        ev = p.evse
        name = p.name
        # a paused car (in B while offered, PROTOCOL.md 8.5) is owed only its minimum from leftovers (BUDGET.md 6.6)
        parked = p.paused_at < INF
        key = (min(ev.wants_da, p.cfg.max_da) if p.alive and not p.twin and not ev.stopped else 0, p.alive, parked)
        changed = False
        if self._demand_key.get(name) != key:
            self._demand_key[name] = key
            self.disturbed.append(t)
            if key[0] > 0:
                self._demands[name] = Demand(p.address, key[0], p.cfg.min_da, p.cfg.priority, parked=parked)
            else:
                self._demands.pop(name, None)
            changed = True
        if self._offers.get(name, 0) != ev.offer_da:
            self._offers[name] = ev.offer_da
            self.offer_changes.setdefault(name, []).append(t)
            changed = True
        if changed:
            self._supply(t)
        draw = sum(q.evse.draw_da for q in self.w.servants)
        if draw != self._site_ev:
            self._site(t, self.bw.house.at(t), draw)

    def _supply(self, t: float) -> None:
        if self._last_limit is None:
            return
        w = self.w
        s = SupplySample(t, self._last_limit, sum(self._offers.values()), tuple(self._demands.values()),
                         w.quiet_except_budget and t >= w.quiet_since and len(self._masters()) == 1, w.quiet_since)
        last = self.supply[-1] if self.supply else None
        if last is None or (last.limit_da, last.offered_da, last.demands, last.quiet, last.since) != (
                s.limit_da, s.offered_da, s.demands, s.quiet, s.since):
            self.supply.append(s)

    def disturbed_at(self, t: float) -> None:
        """The world restarted its service clocks (a plug-in, an unplug, a fault): a sample says so."""
        self._supply(t)

    # -- the checks --------------------------------------------------------------------------------------

    def steady_stretches(self, end: float) -> list[tuple[float, float]]:
        """The house's steady stretches, cut where anything else moved, at least ``raise_hold_max_s`` long."""
        if self.bw.house.noise_da + self.cfg.resolution_da > self.cfg.deadband_da:
            return []  # outside the proven condition (docs/BUDGET.md 4.3.1)
        cuts = sorted(set(self.disturbed) | set(self.fault_ends))
        quiet = [*self.quiet_spans, *([] if self._quiet_from is None else [(self._quiet_from, end)])]
        out: list[tuple[float, float]] = []
        for h0, h1 in self.bw.house.steady(self.cfg.raise_hold_max_s, end):
            for q0, q1 in quiet:  # only while no fault is in effect
                a, b = max(h0, q0), min(h1, q1)
                if b <= a:
                    continue
                start = a
                for c in cuts:
                    if a < c < b:
                        out.append((start, c))
                        start = c
                out.append((start, b))
        return [(a, b) for a, b in out if b - a >= self.cfg.raise_hold_max_s]

    def check(self, end: float) -> list[Violation]:
        """The six checks over the record up to ``end``; each violation is returned once per run."""
        cfg = self.cfg
        found = check_compliance(self.samples, self.window_s, end)
        if self.metered and cfg.main_limit_da is not None:
            steps = [*self.bw.house.steps_up(), *self.fault_ends]
            found += check_site(self.site, cfg.main_limit_da, self.site_window_s, steps, end)
        stale = stale_intervals(0.0, self.meter_deliveries if self.metered else None, self.setpoint_deliveries,
                                self.bw.timeout_s, end)
        found += check_fallback(self.samples, stale, cfg.fallback_da, float(self.timing.tick_period), end)
        if self.metered:
            stretches = self.steady_stretches(end)
            bound = steady_change_bound(cfg, self.static_da)
            found += check_chatter(self.limit_changes, stretches, bound)
            for name, times in self.offer_changes.items():  # a change of the limit: at most one set-limit each
                found += check_chatter(times, stretches, bound, f"{name}'s offer (its set-limits)")
        found += check_waste(self.supply, self.w.bounds.settle_s, end)
        found += check_announced(self.set_limits)
        new = []
        for v in sorted(found, key=lambda v: v.t):
            key = (v.t, v.check, v.detail)
            if key not in self._reported:
                self._reported.add(key)
                new.append(v)
        return new

    def figures(self, end: float) -> BudgetFigures:
        stats = [p.stats for p in self.policies]
        lowest = min((s.lowest_da for s in stats if s.lowest_da is not None), default=self.static_da)
        return BudgetFigures(
            changes=sum(s.changes for s in stats), lowest_da=lowest, fallbacks=sum(s.fallbacks for s in stats),
            longest_over_budget_s=round(longest_over(self.samples, end), 3), bound_s=round(self.window_s, 3),
            main_limit_da=self.cfg.main_limit_da,
            peak_site_da=max((s.house_da + s.ev_da for s in self.site), default=0),
            over_main_s=round(over_main(self.site, self.cfg.main_limit_da, end), 3),
        )


def _budget_master(node: object) -> BudgetMaster | None:
    return node if isinstance(node, BudgetMaster) else None


def longest_over(samples: list[BudgetSample], end: float) -> float:
    """The longest time the count stayed above the limit after a lowering (judged samples only)."""
    longest = 0.0
    since: float | None = None
    for s in samples:
        over = s.counted_da > max(s.limit_da, s.exempt_da) and s.quiet
        if over and since is None:
            since = s.t
        elif not over and since is not None:
            longest = max(longest, s.t - since)
            since = None
    if since is not None:
        longest = max(longest, end - since)
    return longest


def over_main(site: list[SiteSample], main_da: int | None, end: float) -> float:
    """How long house + EVs were above the main service limit in all."""
    if main_da is None:
        return 0.0
    total = 0.0
    for i, s in enumerate(site):
        stop = site[i + 1].t if i + 1 < len(site) else end
        if s.house_da + s.ev_da > main_da:
            total += max(0.0, stop - s.t)
    return total
