"""Properties of the budget policy, against an independent model of its sources.

Random sites (fallback, hold, step, deadband, resolution) get random input sequences
(mains readings with EV estimates, failed reads, setpoints, withdrawals, ticks) at random
times.  After every call:

* the limit never exceeds the static limit, nor a fresh source (the meter's headroom on
  its grid, a setpoint): a lowering takes effect in the call that brought it;
* while a source is stale (or the meter not read yet) the limit is at most the fallback
  and never rises;
* a rise is at most one step, at least ``raise_hold_s`` after anything that restarts the
  hold (a change, a failed read, a misaligned reading, recovery), and stays under the
  ceiling (the headroom less the deadband);

and under a steady noisy load the number of changes stays within ``steady_change_bound``.
"""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.budget import BudgetPolicy
from busshare.core.budget import EvDraw
from busshare.core.budget import MainsReading
from busshare.core.budget import steady_change_bound
from busshare.core.budget_config import BudgetConfig
from busshare.core.currents import PhaseCurrents
from tests.support.budget_inputs import INF
from tests.support.budget_inputs import MAIN
from tests.support.budget_inputs import MARGIN
from tests.support.budget_inputs import STATIC
from tests.support.budget_inputs import TIMEOUT
from tests.support.budget_inputs import TIMING
from tests.support.budget_inputs import Action
from tests.support.budget_inputs import Clear
from tests.support.budget_inputs import Fail
from tests.support.budget_inputs import Read
from tests.support.budget_inputs import SetPoint
from tests.support.budget_inputs import configs
from tests.support.budget_inputs import reads
from tests.support.budget_inputs import steps


class Model:
    """What the inputs say, kept without the policy's help."""

    def __init__(self, cfg: BudgetConfig) -> None:
        self.cfg = cfg
        self.meter_t = -INF
        self.meter_trigger = 0
        self.sp: tuple[int, float] | None = None  # (limit, expires)
        self.sp_stale = False
        self.reset_at = 0.0  # last event that restarts a raise hold
        self.was_degraded = True

    def meter_fresh(self, now: float) -> bool:
        return now < self.meter_t + TIMEOUT

    def sp_fresh(self, now: float) -> bool:
        return self.sp is not None and now < self.sp[1]

    def degraded(self, now: float) -> bool:
        if self.sp is not None and now >= self.sp[1]:
            self.sp_stale = True
        return not self.meter_fresh(now) or self.sp_stale

    def ceiling(self, now: float) -> int:
        x = STATIC
        if self.meter_fresh(now):
            x = min(x, self.meter_trigger - self.cfg.deadband_da)
        if self.sp_fresh(now):
            assert self.sp is not None
            x = min(x, self.sp[0])
        return x


def run(cfg: BudgetConfig, script: list[tuple[float, Action]]) -> None:
    p = BudgetPolicy(cfg, STATIC, TIMING, 0.0, meter_timeout_s=TIMEOUT)
    m = Model(cfg)
    now, limit = 0.0, p.budget.limit_da
    assert limit == min(STATIC, cfg.fallback_da)
    for dt, act in script:
        now += dt
        if isinstance(act, Read):
            t = now - act.late
            ev = [EvDraw(i, d, met, t + at) for i, (d, met, at) in enumerate(act.ev)]
            worst = act.house + sum(d for d, _, _ in act.ev)
            phases = (worst,) if act.phases == (0, 0) else (worst, worst - act.phases[0], worst - act.phases[1])
            b = p.meter(MainsReading(t, PhaseCurrents(phases)), ev, now)
            if t > m.meter_t:
                m.meter_t = t
                headroom = MAIN - MARGIN - act.house
                m.meter_trigger = max(0, headroom // cfg.resolution_da * cfg.resolution_da)
                aligned = all(abs(at) <= cfg.align_s if met else at <= -TIMING.reaction_allowance
                              for _, met, at in act.ev)
                if not aligned:
                    m.reset_at = now
        elif isinstance(act, Fail):
            b = p.meter_failed(now, "timeout")
            m.reset_at = now
        elif isinstance(act, SetPoint):
            b = p.setpoint(act.limit, act.ttl, now)
            m.sp, m.sp_stale = (act.limit, now + (cfg.setpoint_ttl_s if act.ttl is None else act.ttl)), False
        elif isinstance(act, Clear):
            b = p.clear_setpoint(now)
            m.sp, m.sp_stale = None, False
        else:
            b = p.tick(now)
        degraded = m.degraded(now)
        assert b.degraded == degraded
        assert b.limit_da <= STATIC
        if m.meter_fresh(now):
            assert b.limit_da <= m.meter_trigger, "a fresh meter's headroom is exceeded"
        if m.sp_fresh(now):
            assert m.sp is not None and b.limit_da <= m.sp[0], "a fresh setpoint is exceeded"
        if degraded:
            assert b.limit_da <= cfg.fallback_da and b.limit_da <= limit, "a stale source raised the limit"
        elif m.was_degraded:
            m.reset_at = now  # recovery starts a hold
        if b.limit_da > limit:
            assert b.limit_da - limit <= cfg.raise_step_da
            assert now >= m.reset_at + cfg.raise_hold_s - 1e-9, f"raised {now - m.reset_at:.3f} s after a reset"
            assert b.limit_da <= m.ceiling(now)
        if b.limit_da != limit:
            m.reset_at = now
        m.was_degraded = degraded
        limit = b.limit_da
    assert p.stats.changes == p.stats.lowerings + p.stats.raises


@settings(max_examples=300)
@given(configs(), steps)
def test_the_limit_respects_every_source_and_rises_only_by_the_rules(cfg: BudgetConfig,
                                                                      script: list[tuple[float, Action]]) -> None:
    run(cfg, script)


@settings(max_examples=100)
@given(configs(), st.lists(st.tuples(st.floats(0.0, 3.0), reads), min_size=30, max_size=200))
def test_with_only_a_meter_read_often_the_rules_hold_too(cfg: BudgetConfig, script: list[tuple[float, Read]]) -> None:
    run(cfg, list(script))


# -- steady noisy load ------------------------------------------------------------------------------


@st.composite
def steady(draw: st.DrawFn) -> tuple[BudgetConfig, int, list[int], int, float]:
    cfg = draw(configs())
    cfg = dataclasses.replace(cfg, deadband_da=max(cfg.deadband_da, cfg.resolution_da + 1))
    p2p = draw(st.integers(0, cfg.deadband_da - cfg.resolution_da))  # the documented condition
    house = draw(st.integers(0, 750))
    before = draw(st.integers(-100, 900))  # the house before the steady stretch: any limit to start from
    noise = draw(st.lists(st.integers(0, p2p), min_size=1, max_size=50))
    period = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return cfg, house, noise, before, period


@settings(max_examples=60)
@given(steady())
def test_a_steady_noisy_load_changes_the_limit_a_bounded_number_of_times(
        case: tuple[BudgetConfig, int, list[int], int, float]) -> None:
    cfg, house, noise, before, period = case
    p = BudgetPolicy(cfg, STATIC, TIMING, 0.0, meter_timeout_s=TIMEOUT)
    t = 0.0
    while t < 120.0:  # some other load first
        p.meter(MainsReading(t, PhaseCurrents.single(before)), [], t + 0.05)
        t += period
    changes, raises = p.stats.changes, p.stats.raises
    for i in range(math.ceil(3 * 3600 / period)):  # three steady hours
        lowerings = p.stats.lowerings
        p.meter(MainsReading(t, PhaseCurrents.single(house + noise[i % len(noise)])), [], t + 0.05)
        if p.stats.raises > raises:
            assert p.stats.lowerings == lowerings, "lowered after a raise under a steady load"
        t += period
    assert p.stats.changes - changes <= steady_change_bound(cfg, STATIC)
