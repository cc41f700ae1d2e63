"""The live budget: what the EVSE circuit may take now, from a static limit, a mains meter and setpoints.

A sans-IO state machine.  It is driven by inputs that carry their time
(``meter``, ``meter_failed``, ``setpoint``, ``clear_setpoint``) and by
``tick(now)`` at ``next_deadline()``; it never reads a clock.  Every call
returns the ``Budget`` in force after it.  Currents are ints in 0.1 A.

The effective limit is min(static limit, meter headroom, fresh setpoint):

* **meter headroom** = main limit - margin - house load, on the worst phase;
  house load = mains reading - what the EVs draw at that time, as the master
  knows it: a metered servant's measured draw, a meterless one's counted offer
  while its car charges (docs/BUDGET.md 4.2.1: why, and what it costs).
  Rounded down to ``resolution_da``.
* **lowering** is at once, by at least the full overshoot, on any reading
  (aligned or not: a mains reading that shows an overload is an overload).
* **raising** needs the room to hold: every aligned meter reading for
  ``hold`` seconds must leave ``deadband_da`` above the new limit; the limit then
  rises by at most ``raise_step_da``, to the lowest room seen in the hold.  A
  meter reading that lowers the limit back to where the meter last lowered it,
  less than ``raise_hold_max_s`` after a raise (a bounce: a load cycling faster
  than the hold), doubles the hold, up to ``raise_hold_max_s``; a raise that
  stands that long halves it.
* **a stale or failed source never raises anything**: a meter without a good
  reading for its timeout (or not read yet), or a setpoint past its time-to-live,
  makes the budget *degraded*: the limit drops to min(itself, fallback) and does
  not rise until every source is fresh again, then it recovers in steps.

Under a steady load whose noise (peak to peak) plus ``resolution_da`` stays
within ``deadband_da``, the limit changes at most ``steady_change_bound`` times
however long the load stays steady (proof in docs/BUDGET.md 4.3.1).

This is one node of a future tree of sub-circuits: a child would take its
parent's share as one more source; nothing here assumes it is the root.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from .budget_config import BudgetConfig
from .config import Config
from .config import Timing
from .currents import PhaseCurrents
from .events import EventKind
from .setpoint import LimitSource

INF = float("inf")


class SourceState(StrEnum):
    ABSENT = "absent"  # not configured (meter) / none received or cleared (setpoint)
    WAITING = "waiting"  # configured, no good reading yet: degraded
    FRESH = "fresh"
    STALE = "stale"  # past its timeout / time-to-live: degraded


@dataclass(frozen=True)
class BudgetEvent:
    """What the policy reports; the master moves it into its event log (``kind`` is a budget ``EventKind``)."""

    t: float
    kind: EventKind
    detail: str

    def __str__(self) -> str:
        return f"{self.t:10.3f} {self.kind.value:<16} {self.detail}"


@dataclass(frozen=True)
class MainsReading:
    """One good mains meter reading: per-phase currents (+ import, - export) measured at ``t``."""

    t: float  # when it was measured (the poll's start: its age is never underestimated)
    currents: PhaseCurrents


@dataclass(frozen=True)
class EvDraw:
    """What one servant's EV draws at the time of a mains reading, as the master knows it.

    ``metered``: ``draw_da`` is its meter's measurement, taken at ``at``.  Otherwise
    ``draw_da`` is the offer it is counted at while its car charges (0 when the pilot
    is not C/D: a car in B draws nothing), unchanged since ``at``.
    """

    address: int
    draw_da: int
    metered: bool
    at: float


@dataclass(frozen=True)
class Budget:
    """The budget in force: hand ``limit_da`` to the allocation."""

    limit_da: int  # the effective limit
    source: LimitSource
    degraded: bool  # a source is stale or failed: the limit is at most the fallback and does not rise
    ceiling_da: int  # what the limit may rise to now (it gets there in steps)
    headroom_da: int | None  # the last meter reading's headroom (None: no meter or none yet)
    house_da: int | None  # the house load behind it
    unmetered_da: int  # part of that reading's EV estimate that is meterless offers, not measurements


@dataclass
class BudgetStats:
    changes: int = 0
    lowerings: int = 0
    raises: int = 0
    fallbacks: int = 0  # entries into the degraded state
    meter_failures: int = 0
    ignored: int = 0
    lowest_da: int | None = None


def steady_change_bound(cfg: BudgetConfig, span_da: int) -> int:
    """Most effective-limit changes over one steady stretch, however long (docs/BUDGET.md 4.3.1).

    Holds when the house load is constant plus noise whose peak-to-peak plus ``resolution_da``
    is at most ``deadband_da``, every source stays fresh, and the limit starts within
    ``span_da`` of where it settles: ramp raises, then at most ceil(deadband / resolution) + 1
    lowerings into the noise band and as many raises inside it.
    """
    cells = -(-cfg.deadband_da // cfg.resolution_da)
    return -(-max(0, span_da) // cfg.raise_step_da) + 2 * (cells + 1)


def _floor_to(da: int, grid: int) -> int:
    return (da // grid) * grid


class BudgetPolicy:
    """One budget node: sources in, the effective limit out.  See the module docstring."""

    def __init__(self, config: BudgetConfig, static_da: int, timing: Timing, now: float, *,
                 meter_timeout_s: float | None = None) -> None:
        if meter_timeout_s is not None and config.main_limit_da is None:
            raise ValueError("a mains meter needs main_limit_da")
        if meter_timeout_s is not None and not (math.isfinite(meter_timeout_s) and meter_timeout_s > 0):
            raise ValueError(f"meter timeout {meter_timeout_s!r} must be a positive number of seconds")
        self.cfg = config
        self.static_da = static_da
        self.timing = timing
        self.meter_timeout_s = meter_timeout_s
        self.stats = BudgetStats()
        self._events: list[BudgetEvent] = []
        self._now = now
        # the meter
        self._meter = SourceState.ABSENT if meter_timeout_s is None else SourceState.WAITING
        self._meter_t = -INF  # measurement time of the last good reading
        self._trigger_m = 0  # its headroom on the resolution grid: the limit must stay at or below it
        self._headroom: int | None = None
        self._house: int | None = None
        self._unmetered = 0
        self._fail_run = 0
        # the setpoint
        self._sp = SourceState.ABSENT
        self._sp_da = 0
        self._sp_until = INF
        # the output and its raise hold
        self._degraded = False
        self._limit = static_da
        self._hold_s = config.raise_hold_s
        self._hold_start: float | None = None
        self._held = 0  # the lowest ceiling seen since the hold started
        self._last_raise: float | None = None
        self._last_low: int | None = None  # where the meter last lowered the limit to
        if self._meter is SourceState.WAITING:  # nothing known yet: start at the floor, not as a fault
            self._degraded = True
            self._event(now, EventKind.BUDGET_FALLBACK, f"waiting for the first mains reading: at most the "
                        f"fallback {config.fallback_da / 10:.1f} A")
        self._limit = self._trigger()
        self.stats.lowest_da = self._limit
        self._budget = self._fresh_budget()  # ``budget``: built again at the end of every ``_update``
        self._deadline = INF
        self._still = False
        self._note_deadline()

    @classmethod
    def from_config(cls, config: Config, now: float) -> BudgetPolicy | None:
        """The policy of a site file's ``[budget]`` (None without one: a fixed limit, as before).

        The one place that maps a ``Config`` onto the policy, for the runtime, the simulator and embedders:
        the static limit is the site's, the meter timeout its ``[budget.meter] timeout_s``.
        """
        b = config.budget
        if b is None:
            return None
        return cls(b, config.limit_da, config.timing, now, meter_timeout_s=None if b.meter is None else b.meter.timeout_s)

    # -- inputs ------------------------------------------------------------------------

    def meter(self, reading: MainsReading, ev: Sequence[EvDraw], now: float) -> Budget:
        """A good mains reading, with the EV draws the master knew of when it arrived."""
        now = self._advance(now)
        if self._meter is SourceState.ABSENT:
            raise ValueError("meter reading given to a budget configured without a meter")
        t = min(reading.t, now)  # never from the future
        if t <= self._meter_t:
            self._ignore(now, f"mains reading from t={t:.3f} is not newer than t={self._meter_t:.3f}")
            return self._update(now, None)
        cfg = self.cfg
        assert cfg.main_limit_da is not None
        ev_da = sum(d.draw_da for d in ev)
        self._unmetered = sum(d.draw_da for d in ev if not d.metered)
        self._house = reading.currents.worst - ev_da
        self._headroom = cfg.main_limit_da - cfg.margin_da - self._house
        self._trigger_m = max(0, _floor_to(self._headroom, cfg.resolution_da))
        was = self._meter
        self._meter_t = t
        self._meter = SourceState.FRESH if now < t + self._timeout() else SourceState.STALE
        if self._meter is SourceState.FRESH and (was is not SourceState.FRESH or self._fail_run):
            self._event(now, EventKind.METER_BACK, f"good mains reading {reading.currents}"
                        + (f" after {self._fail_run} failed" if self._fail_run else ""))
            self._fail_run = 0
        return self._update(now, self._aligned(t, ev))

    def meter_failed(self, now: float, why: str) -> Budget:
        """A failed read (error, timeout, frozen or impossible values): not a reading.

        It never changes the limit by itself: the meter goes stale its timeout after the
        last good reading.  It does restart the raise hold (nothing rises on old data).
        """
        now = self._advance(now)
        self.stats.meter_failures += 1
        if self._fail_run == 0:
            self._event(now, EventKind.METER_FAILED, why)
        self._fail_run += 1
        self._hold_start = None
        return self._update(now, None)

    def setpoint(self, limit_da: int, ttl_s: float | None, now: float) -> Budget:
        """An external setpoint received at ``now``: at most ``limit_da`` until now + ttl (default from config)."""
        now = self._advance(now)
        ttl = self.cfg.setpoint_ttl_s if ttl_s is None else ttl_s
        if isinstance(limit_da, bool) or not isinstance(limit_da, int) or limit_da < 0:
            raise ValueError(f"setpoint {limit_da!r} must be a non-negative int in 0.1 A")
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"setpoint time-to-live {ttl!r} must be a positive number of seconds")
        self._sp, self._sp_da, self._sp_until = SourceState.FRESH, limit_da, now + ttl
        self._event(now, EventKind.SETPOINT, f"{limit_da / 10:.1f} A for {ttl:g} s")
        return self._update(now, None)

    def clear_setpoint(self, now: float) -> Budget:
        """The energy manager withdraws its setpoint: no longer a source (not a failure)."""
        now = self._advance(now)
        if self._sp is not SourceState.ABSENT:
            self._sp = SourceState.ABSENT
            self._sp_until = INF
            self._event(now, EventKind.SETPOINT_CLEARED, "setpoint withdrawn")
        return self._update(now, None)

    def tick(self, now: float) -> Budget:
        now = self._advance(now)
        if self._still and now < self._deadline:
            return self.budget  # nothing due, and no raise hold to start: ``_update`` would change nothing
        return self._update(now, None)

    # -- outputs -----------------------------------------------------------------------

    @property
    def budget(self) -> Budget:
        """The budget in force, as the last input or slow tick left it (``_update``: nothing in it depends on the
        time but through those; the master reads it after every call)."""
        return self._budget

    def _fresh_budget(self) -> Budget:
        return Budget(self._limit, self._source(), self._degraded, self._ceiling(), self._headroom, self._house,
                      self._unmetered)

    def next_deadline(self) -> float:
        """Latest time ``tick`` must next be called: a source going stale, or a raise hold ending.

        (Worked out at the end of every input and tick, the only calls that change what it reads: the master
        asks after every call into it.)"""
        return self._deadline

    def _fresh_deadline(self) -> float:
        d = INF
        if self._meter is SourceState.FRESH:
            d = self._meter_t + self._timeout()
        if self._sp is SourceState.FRESH and self._sp_until < d:
            d = self._sp_until
        if self._hold_start is not None and not self._degraded:
            d = min(d, self._hold_start + self._hold_s)
        return d

    def drain_events(self) -> list[BudgetEvent]:
        out, self._events = self._events, []
        return out

    @property
    def hold_s(self) -> float:
        """The raise hold in force (raise_hold_s, doubled after bounces)."""
        return self._hold_s

    # -- internals ---------------------------------------------------------------------

    def _advance(self, now: float) -> float:
        if now > self._now:
            self._now = now
        return self._now

    def _timeout(self) -> float:
        return INF if self.meter_timeout_s is None else self.meter_timeout_s

    def _event(self, t: float, kind: EventKind, detail: str) -> None:
        self._events.append(BudgetEvent(t, kind, detail))

    def _ignore(self, now: float, why: str) -> None:
        self.stats.ignored += 1
        self._event(now, EventKind.BUDGET_INPUT_IGNORED, why)

    def _aligned(self, t: float, ev: Sequence[EvDraw]) -> bool:
        """Can this reading justify a raise?  The EV estimate must describe the moment it was taken.

        A metered draw measured more than ``align_s`` away from the mains reading, or a meterless
        offer that changed less than a reaction allowance before it (its car may still be ramping
        up or following a cut), makes the house estimate unreliable: such a reading may lower
        the limit but restarts the raise hold.
        """
        settle = self.timing.reaction_allowance
        for d in ev:
            if d.metered:
                if abs(d.at - t) > self.cfg.align_s:
                    return False
            elif d.at > t - settle:
                return False
        return True

    def _expire(self, now: float) -> None:
        if self._meter is SourceState.FRESH and now >= self._meter_t + self._timeout():
            self._meter = SourceState.STALE
        if self._sp is SourceState.FRESH and now >= self._sp_until:
            self._sp = SourceState.STALE
            self._event(now, EventKind.SETPOINT_EXPIRED, f"setpoint {self._sp_da / 10:.1f} A not renewed")

    def _stale_sources(self) -> list[str]:
        out = []
        if self._meter is SourceState.WAITING:
            out.append("no mains reading yet")
        elif self._meter is SourceState.STALE:
            out.append(f"no good mains reading for {self._now - self._meter_t:.1f} s")
        if self._sp is SourceState.STALE:
            out.append(f"setpoint expired {self._now - self._sp_until:.1f} s ago")
        return out

    def _trigger(self) -> int:
        """The limit must be at or below this now (lowering is at once)."""
        x = self.static_da
        if self._meter is SourceState.FRESH:
            x = min(x, self._trigger_m)
        if self._sp is SourceState.FRESH:
            x = min(x, self._sp_da)
        if self._degraded:
            x = min(x, self.cfg.fallback_da)
        return x

    def _ceiling(self) -> int:
        """The limit may rise to this (in steps, after a hold); the deadband keeps noise out."""
        x = self._trigger()
        if self._meter is SourceState.FRESH:
            x = min(x, max(0, self._trigger_m - self.cfg.deadband_da))
        return x

    def _source(self) -> LimitSource:
        if self._degraded:
            return LimitSource.FALLBACK
        best, src = self.static_da, LimitSource.STATIC
        if self._meter is SourceState.FRESH and self._trigger_m <= best:
            best, src = self._trigger_m, LimitSource.METER
        if self._sp is SourceState.FRESH and self._sp_da <= best:
            src = LimitSource.SETPOINT
        return src

    def _update(self, now: float, aligned: bool | None) -> Budget:
        """Apply everything due at ``now``.  ``aligned``: a meter reading just came (None: another input)."""
        self._expire(now)
        stale = self._stale_sources()
        if stale and not self._degraded:
            self._degraded = True
            self._hold_start = None
            self.stats.fallbacks += 1
            self._event(now, EventKind.BUDGET_FALLBACK, "; ".join(stale) + f": at most the fallback "
                        f"{self.cfg.fallback_da / 10:.1f} A, nothing rises")
        elif not stale and self._degraded:
            self._degraded = False
            self._event(now, EventKind.BUDGET_RECOVERED, f"every source fresh: {self._limit / 10:.1f} A recovers "
                        f"in steps of {self.cfg.raise_step_da / 10:.1f} A")
        trigger = self._trigger()
        if trigger < self._limit:
            self._lower(now, trigger)
        elif not self._degraded:
            self._raise_hold(now, aligned)
        self._note_deadline()
        self._budget = self._fresh_budget()
        return self._budget

    def _note_deadline(self) -> None:
        """After every change: the next deadline, and whether a tick before it would change nothing (no source
        can go stale, no hold end, and no hold would start: one starts at the first call that finds the limit
        below its ceiling with none running)."""
        self._deadline = self._fresh_deadline()
        self._still = self._degraded or self._hold_start is not None or self._ceiling() <= self._limit

    def _lower(self, now: float, to: int) -> None:
        if self._last_raise is not None:
            if now >= self._last_raise + self.cfg.raise_hold_max_s:
                self._raise_stood()
            elif self._bounce(to) and self._hold_s < self.cfg.raise_hold_max_s:
                self._hold_s = min(self.cfg.raise_hold_max_s, self._hold_s * 2)
                self._event(now, EventKind.BUDGET_BACKOFF, f"the meter gave back a raise {now - self._last_raise:.1f} s "
                            f"after it: raise hold now {self._hold_s:g} s")
        self._last_raise = None
        self._last_low = to if self._meter_lowers(to) else None
        old = self._limit
        self._set(now, to)
        self.stats.lowerings += 1
        self._hold_start = None
        self._event(now, EventKind.BUDGET_LOWERED, f"{old / 10:.1f} A -> {to / 10:.1f} A ({self._why()})")

    def _raise_hold(self, now: float, aligned: bool | None) -> None:
        ceiling = self._ceiling()
        if aligned is False or ceiling <= self._limit:
            self._hold_start = None
            return
        if self._hold_start is None:
            self._hold_start, self._held = now, ceiling
            return
        self._held = min(self._held, ceiling)
        if now < self._hold_start + self._hold_s:
            return
        to = min(self._limit + self.cfg.raise_step_da, self._held)
        if to <= self._limit:
            self._hold_start = None
            return
        if self._last_raise is not None and now >= self._last_raise + self.cfg.raise_hold_max_s:
            self._raise_stood()
        old = self._limit
        self._set(now, to)
        self.stats.raises += 1
        self._last_raise = now
        self._event(now, EventKind.BUDGET_RAISED, f"{old / 10:.1f} A -> {to / 10:.1f} A after {self._hold_s:g} s "
                    f"hold ({self._why()})")
        self._hold_start, self._held = (now, ceiling) if ceiling > to else (None, 0)

    def _meter_lowers(self, to: int) -> bool:
        return not self._degraded and self._meter is SourceState.FRESH and to == self._trigger_m

    def _bounce(self, to: int) -> bool:
        """Does this lowering give back a recent raise (a load that comes and goes faster than the hold)?

        Only the meter can say so, by lowering again to about where it lowered last time: the load
        came back.  A new load (a kettle after a good raise), a setpoint or a stale source is no
        sign of a premature raise.
        """
        return (self._meter_lowers(to) and self._last_low is not None
                and abs(to - self._last_low) <= self.cfg.deadband_da)

    def _raise_stood(self) -> None:
        """The last raise was not undone for raise_hold_max_s: it was right, trust the room sooner."""
        self._hold_s = max(self.cfg.raise_hold_s, self._hold_s / 2)

    def _set(self, now: float, to: int) -> None:
        self._limit = to
        self.stats.changes += 1
        if self.stats.lowest_da is None or to < self.stats.lowest_da:
            self.stats.lowest_da = to

    def _why(self) -> str:
        parts = [f"static {self.static_da / 10:.1f} A"]
        if self._meter is SourceState.FRESH and self._headroom is not None and self._house is not None:
            parts.append(f"meter headroom {self._headroom / 10:.1f} A, house {self._house / 10:.1f} A")
        if self._sp is SourceState.FRESH:
            parts.append(f"setpoint {self._sp_da / 10:.1f} A")
        if self._degraded:
            parts.append(f"fallback {self.cfg.fallback_da / 10:.1f} A")
        return ", ".join(parts)
