"""The safety and service promises, checked at every simulated step.

Every bound here is derived from the configured timing; none is tuned to make
a run pass.  The checks (names as reported):

``rule1-offered``  sum over every live servant process (twins and crashed
                   processes whose pilot still offers included) of the offered
                   current <= limit, at every instant.
``rule7-local-max`` every pilot offer <= that EVSE's configured maximum.
``drawn``          sum of currents actually drawn <= limit, counting a
                   non-compliant car only up to what its pilot offers.
``ev-cutoff``      a non-compliant car drawing more than offer + tolerance is
                   cut off (draws 0) within reaction_allowance + tick_period
                   (after a process restart the EVSE did not see, from that
                   restart: the new process cannot know how long it drew).
``rule4-failsafe`` a servant that accepted no valid master heartbeat (nor a
                   set-limit addressed to it: a grant ends the failsafe) for
                   failsafe_timeout + tick_period (or tick_period after a
                   ``leaving`` heartbeat, or since boot) offers at most its
                   failsafe current: the one sent with its last set-limit,
                   else the heartbeat's, else its standalone one.  Only
                   set-limits the spec lets it accept count (the followed
                   master's epoch, no two-master hold; oracle.FailsafeOracle).
``rule4-failsafe-hold`` failsafe_hold (config.Timing) later still, at most
                   min(assigned failsafe, standalone failsafe).
``rule8-integrity`` a frame the bus corrupted is never accepted by a Link.
``node-exception`` a node raised (e.g. built an invalid frame): the run stops.
``waste``          with one master up, no fault and bus loss <= 1 %, capacity
                   may not sit unused for longer than ``settle_s`` while a car
                   wants more (tolerance: 1 A + 0.1 A per servant, rounding);
                   ``settle_s`` covers one lost frame, each further SET_LIMIT
                   or ACK the bus spoiled adds one ack_timeout.
``starvation``     under the same quiet conditions, with one priority class,
                   no car waits (offer 0 while it wants current) longer than
                   rotation_interval * ceil(N / K) + settle_s, N = cars
                   wanting, K = cars that fit at their minimum.
``pause-offer``, ``pause-leftovers``, ``resume-share``: cars that pause
                   themselves, under the same quiet conditions (with the
                   waste check): see ``pause_checks.py``.

The service clocks restart at a plug-in, an unplug, a car stopped by its
servant, the master counting a unit silent (its STATUS frames lost), and (after
the master's recovery time) a fault or a master start.
Collecting (``stop_on_violation=False``), a lasting waste or wait is reported
again once per bound.

The checks return what they found (``Violation`` or ``None``, or a list); the simulation decides
whether a violation stops the run or is collected.  They read the installation through the narrow
``Installation`` view and ask for a later look through ``schedule``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core.config import Timing
from ..protocol.pilot import PilotState
from .loop import Check
from .oracle import Schedule
from .pause_checks import PauseChecks
from .procs import ServantProc
from .settle import Episode

INF = float("inf")
MODEST_LOSS = 0.01


@dataclass(frozen=True)
class Violation:
    t: float
    check: str
    detail: str

    def __str__(self) -> str:
        return f"t={self.t:.3f} s {self.check}: {self.detail}"


@dataclass(frozen=True)
class Bounds:
    """The numbers every check uses, computed once from the timing and installation."""

    limit_da: int
    failsafe_bound_s: float  # failsafe_timeout + tick_period
    unheard_bound_s: float  # heard_timeout + tick_period: no heartbeat saying the master hears it this long
    leaving_bound_s: float  # tick_period
    cutoff_bound_s: float  # reaction_allowance + tick_period
    settle_s: float
    rotation_s: float
    waste_slack_da: int
    retry_s: float  # ack_timeout: a lost SET_LIMIT or ACK is replaced this much later
    grace_s: float = 60.0  # reclaim_after: a paused car keeps its allocation this long, then is parked


def default_settle(timing: Timing) -> float:
    """Longest honest time from a change in demand to full allocation, with the master up.

    A cut waits for the car's reaction (<= reaction_allowance), may be retried
    once after ack_timeout if a frame is lost, plus one second of frame and
    tick latency.  Faults and master starts push the start of this window back
    by the master's own documented recovery times (see ``recovery_after``).
    """
    return timing.reaction_allowance + timing.ack_timeout + 1.0


def recovery_after(timing: Timing, what: str) -> float:
    """How long the master may take to be back to normal after ``what`` ('fault' or 'master-start')."""
    if what == "master-start":
        return timing.learning_timeout
    return timing.silent_count_after


class Installation(Protocol):
    """What the checks read of the simulated installation."""

    @property
    def servants(self) -> Sequence[ServantProc]: ...

    @property
    def quiet(self) -> bool: ...  # the service checks apply (one master, no fault, modest loss)

    @property
    def quiet_since(self) -> float: ...  # when the service clocks may start

    def contested(self, address: int) -> bool: ...  # two live processes share the address


@dataclass(frozen=True)
class Service:
    """Which service checks a scenario asks for."""

    waste: bool
    starvation: bool
    single_priority: bool  # starvation has a bound only with one priority class
    max_min_da: int  # the largest minimum current: how many cars fit at once


def offers_text(servants: Sequence[ServantProc]) -> str:
    return ", ".join(f"{p.name}={p.offer / 10:.1f}" for p in servants if p.offer)


def draws_text(servants: Sequence[ServantProc]) -> str:
    return ", ".join(f"{p.name}={p.draw / 10:.1f}{'' if p.evse.compliant else '(nc)'}" for p in servants if p.draw)


class Invariants:
    def __init__(self, sim: Installation, bounds: Bounds, service: Service, schedule: Schedule,
                 first_only: bool = False) -> None:
        self.sim = sim
        self.schedule = schedule
        # the run stops at the first violation: ``sync`` returns at once, leaving the totals as they were then
        self.first_only = first_only
        self.checks_waste = service.waste
        self.checks_starvation = service.starvation
        self.b = bounds
        self.limit = bounds.limit_da
        self.total_offered = 0
        self.total_drawn = 0
        self.peak_offered = 0
        self.peak_drawn = 0
        self.n_unmet = 0
        self.waste = Episode(bounds.settle_s, bounds.retry_s)
        self.spoiled_at: list[float] = []  # when the bus lost or corrupted a SET_LIMIT or ACK (non-decreasing)
        self.spoiled_control = 0
        self.single_priority = service.single_priority
        self.fit = max(1, bounds.limit_da // max(1, service.max_min_da))
        self.pause = PauseChecks(bounds.grace_s, bounds.settle_s, bounds.retry_s, bounds.waste_slack_da)

    # -- called after every change to a servant process's hardware --------------

    def sync(self, p: ServantProc, t: float) -> list[Violation]:
        """The EVSE of ``p`` may have changed: the safety checks on what it offers and draws, then the
        service bookkeeping.  Returns the violations found (in the order they were found; with
        ``first_only``, as soon as there is one)."""
        ev = p.evse
        offer = ev.offer_da
        draw = ev.draw_da
        found: list[Violation] = []
        if offer != p.offer:
            self._offer_changed(p, offer, t, found)
            if found and self.first_only:
                return found
        p.draw = draw  # (before the check below: its message lists every unit's draw, this one's included)
        if ev.compliant:
            counted = draw
        else:
            cap = 0 if ev.stopped else offer
            counted = draw if draw < cap else cap
        if counted != p.counted:
            self.total_drawn += counted - p.counted
            p.counted = counted
            if self.total_drawn > self.peak_drawn:
                self.peak_drawn = self.total_drawn
            if self.total_drawn > self.limit:
                found.append(Violation(t, "drawn", f"total drawn {self.total_drawn / 10:.1f} A > limit "
                                       f"{self.limit / 10:.1f} A ({draws_text(self.sim.servants)})"))
                if self.first_only:
                    return found
        if not ev.compliant and ev.over_since < INF and p.cutoff_sched == INF:
            p.cutoff_sched = max(ev.over_since, p.cutoff_from) + self.b.cutoff_bound_s
            self.schedule(p.cutoff_sched, Check.CUTOFF, p)
        self._service(p, offer, t)
        return found

    def _offer_changed(self, p: ServantProc, offer: int, t: float, found: list[Violation]) -> None:
        """Rules 1, 7 and 4 on a new pilot offer."""
        self.total_offered += offer - p.offer
        p.offer = offer
        if self.total_offered > self.peak_offered:
            self.peak_offered = self.total_offered
        if offer > p.cfg.max_da:
            found.append(Violation(t, "rule7-local-max", f"{p.name} offers {offer / 10:.1f} A > its maximum "
                                   f"{p.cfg.max_da / 10:.1f} A"))
        if self.total_offered > self.limit:
            found.append(Violation(t, "rule1-offered", f"total offered {self.total_offered / 10:.1f} A > limit "
                                   f"{self.limit / 10:.1f} A ({offers_text(self.sim.servants)})"))
        if t >= p.hold_deadline and offer > min(p.fs_da, p.cfg.failsafe_da):
            found.append(Violation(t, "rule4-failsafe-hold", f"{p.name} raised to {offer / 10:.1f} A > min(failsafe "
                                   f"{p.fs_da / 10:.1f} A, standalone {p.cfg.failsafe_da / 10:.1f} A) with no valid "
                                   f"master heartbeat since t={p.last_hb:.3f}"))
        if t >= p.fs_deadline and offer > p.fs_da:
            found.append(Violation(t, "rule4-failsafe", f"{p.name} raised to {offer / 10:.1f} A > failsafe "
                                   f"{p.fs_da / 10:.1f} A ({self.why_failsafe(p)})"))

    def _service(self, p: ServantProc, offer: int, t: float) -> None:
        """Waste and starvation bookkeeping: is the car unmet, is it waiting."""
        ev = p.evse
        again = self.pause.note(p, offer, t, self.sim.quiet_since)
        if again is not None and self.checks_waste:
            self.schedule(again, Check.PAUSE, None)  # its grace ends then: look again
        wants = ev.wants_da
        demand = wants if wants < p.cfg.max_da else p.cfg.max_da
        eligible = p.alive and not p.twin and not ev.stopped and not self.sim.contested(p.address)
        unmet = eligible and demand > offer
        if unmet != p.unmet:
            self.n_unmet += 1 if unmet else -1
            p.unmet = unmet
        # (a paused car, parked, is served from leftovers only: ``pause-offer`` is its promise, not rotation)
        if eligible and demand > 0 and offer == 0 and p.paused_at == INF:
            if p.waiting_since == INF:
                p.waiting_since = t
                self._arm_starvation(p, t)
        else:
            p.waiting_since = INF
            p.starve_reported = -INF
        if self.sim.quiet:
            self.update_waste(t)
            self.update_pause(t)

    # -- waste ---------------------------------------------------------------------

    def waste_now(self) -> str | None:
        """Why capacity is wasted right now, or None."""
        spare = self.limit - self.total_offered
        slack = self.b.waste_slack_da
        if self.n_unmet == 0 or spare < slack:
            return None
        for p in self.sim.servants:
            if not p.unmet:
                continue
            wants = p.evse.wants_da
            demand = min(wants, p.cfg.max_da)
            if p.offer == 0:
                if spare >= p.cfg.min_da:
                    return (f"{spare / 10:.1f} A unused while {p.name} waits (wants {demand / 10:.1f} A, "
                            f"min {p.cfg.min_da / 10:.1f} A)")
            elif demand - p.offer >= slack:
                return (f"{spare / 10:.1f} A unused while {p.name} gets {p.offer / 10:.1f} A "
                        f"of the {demand / 10:.1f} A its car wants")
        return None

    def control_spoiled(self, t: float, n: int) -> None:
        """The bus lost or corrupted ``n`` copies of a SET_LIMIT or ACK sent at ``t``."""
        self.spoiled_at.extend([t] * n)
        self.spoiled_control += n

    @property
    def waste_sched(self) -> float:
        """When the waste episode's bound is looked at next (the world runs a WASTE check only then)."""
        return self.waste.sched

    def _schedule_waste(self, due: float) -> None:
        self.schedule(due, Check.WASTE, None)

    def update_waste(self, t: float) -> None:
        if not self.checks_waste:
            return
        self.waste.follow(self.waste_now() is not None, t, self.sim.quiet_since, self.spoiled_at, self._schedule_waste)

    def check_waste(self, t: float) -> Violation | None:
        self.waste.sched = INF
        if not self.sim.quiet:
            return None
        why = self.waste.judge(self.waste_now(), t, self.sim.quiet_since, self.spoiled_at, self._schedule_waste)
        return None if why is None else Violation(t, "waste", why)

    # -- cars that pause themselves ------------------------------------------------------

    def update_pause(self, t: float) -> None:
        if self.checks_waste:
            self.pause.update(self.sim.servants, self.limit - self.total_offered, t, self.sim.quiet_since,
                              self.spoiled_at, self._schedule_pause)

    def check_pause(self, t: float) -> Violation | None:
        """A grace ended or an episode's bound came due: report a promise broken for longer than its bound."""
        pc = self.pause
        if t == pc.sched:
            pc.sched = INF
        if not self.checks_waste or not self.sim.quiet:
            return None
        broken = pc.now(self.sim.servants, self.limit - self.total_offered, t)
        why = pc.judge(None if broken is None else broken[1], t, self.sim.quiet_since, self.spoiled_at,
                       self._schedule_pause)
        return None if why is None or broken is None else Violation(t, broken[0], why)

    def _schedule_pause(self, due: float) -> None:
        self.schedule(due, Check.PAUSE, None)

    # -- starvation -------------------------------------------------------------------

    def starve_bound(self) -> float:
        n = sum(1 for p in self.sim.servants if p.waiting_since < INF or (p.offer and p.evse.wants_da))
        return self.b.rotation_s * math.ceil(max(1, n) / self.fit) + self.b.settle_s

    def _starve_due(self, p: ServantProc) -> float:
        """When this wait breaks the bound (again, a bound after its last report)."""
        return max(p.waiting_since, self.sim.quiet_since, p.starve_reported) + self.starve_bound()

    def _arm_starvation(self, p: ServantProc, t: float) -> None:
        if not self.checks_starvation or not self.single_priority or self.b.rotation_s <= 0:
            return
        due = self._starve_due(p)
        if due < p.starve_sched or p.starve_sched <= t:
            p.starve_sched = due
            self.schedule(due, Check.STARVE, p)

    def check_starvation(self, p: ServantProc, t: float) -> Violation | None:
        p.starve_sched = INF
        if p.waiting_since == INF or not self.sim.quiet:
            return None
        due = self._starve_due(p)
        found = None
        if t + 1e-9 >= due:
            found = Violation(t, "starvation", f"{p.name} has waited {t - p.waiting_since:.1f} s for current "
                              f"(bound {self.starve_bound():.1f} s)")
            p.starve_reported = t  # (collecting: once more a bound later if it lasts, not at this instant again)
            due = self._starve_due(p)
        p.starve_sched = due
        self.schedule(due, Check.STARVE, p)
        return found

    def rearm_all(self, t: float) -> None:
        """After the quiet conditions changed: re-evaluate waste and pending waits."""
        if self.sim.quiet:
            self.update_waste(t)
            self.update_pause(t)
            for p in self.sim.servants:
                if p.waiting_since < INF:
                    self._arm_starvation(p, t)

    # -- rule 4 and the non-compliant car ----------------------------------------------

    def _still_ahead(self, p: ServantProc, deadline: float, t: float, check: Check) -> bool:
        """Whether ``deadline`` has not come at ``t``; ``check`` is then armed again for it (unless it is never)."""
        if deadline <= t + 1e-9:
            return False
        if deadline < INF:
            self.schedule(deadline, check, p)
        return True

    def check_failsafe(self, p: ServantProc, t: float) -> Violation | None:
        if self._still_ahead(p, p.fs_deadline, t, Check.FAILSAFE):
            p.fs_check_sched = p.fs_deadline
            return None
        p.fs_check_sched = INF
        if p.evse.offer_da <= p.fs_da:
            return None
        return Violation(t, "rule4-failsafe", f"{p.name} still offers {p.evse.offer_da / 10:.1f} A > failsafe "
                          f"{p.fs_da / 10:.1f} A at t={t:.3f}; {self.why_failsafe(p)}")

    def why_failsafe(self, p: ServantProc) -> str:
        """Which rule-4 clock ran out: the master's silence, or the master not hearing the servant."""
        if p.heard_deadline < p.hb_deadline:
            return f"no heartbeat saying the master heard it since t={p.heard_deadline - self.b.unheard_bound_s:.3f}"
        return f"last valid master heartbeat at t={p.last_hb:.3f}"

    def check_hold(self, p: ServantProc, t: float) -> Violation | None:
        """After failsafe_hold more, a master-assigned failsafe gives way to min(assigned, standalone)."""
        if self._still_ahead(p, p.hold_deadline, t, Check.HOLD):
            p.hold_sched = p.hold_deadline
            return None
        p.hold_sched = INF
        cap = min(p.fs_da, p.cfg.failsafe_da)
        if p.evse.offer_da <= cap:
            return None
        return Violation(t, "rule4-failsafe-hold", f"{p.name} still offers {p.evse.offer_da / 10:.1f} A > min(failsafe "
                          f"{p.fs_da / 10:.1f} A, standalone {p.cfg.failsafe_da / 10:.1f} A) at t={t:.3f}; last valid "
                          f"master heartbeat at t={p.last_hb:.3f}")

    def check_cutoff(self, p: ServantProc, t: float) -> Violation | None:
        p.cutoff_sched = INF
        ev = p.evse
        if ev.compliant or ev.over_since == INF:
            return None
        since = max(ev.over_since, p.cutoff_from)
        due = since + self.b.cutoff_bound_s
        cap = 0 if ev.stopped else ev.offer_da
        if self._still_ahead(p, due, t, Check.CUTOFF):
            p.cutoff_sched = due
            return None
        if ev.draw_da <= cap + ev.tolerance_da:
            return None
        return Violation(t, "ev-cutoff", f"non-compliant car on {p.name} still draws {ev.draw_da / 10:.1f} A "
                         f"over its {cap / 10:.1f} A offer since t={since:.3f} (bound "
                         f"{self.b.cutoff_bound_s:.2f} s)")


def pilot_char(p: PilotState) -> str:
    return p.name
