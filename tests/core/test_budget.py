"""The budget policy on a virtual clock: each test is one rule of docs/BUDGET.md (section 4).

Currents in 0.1 A.  The default site: main 80 A, margin 2 A, fallback 24 A, static
circuit limit 63 A, meter timeout 5 s, raise hold 15 s, step 6 A, deadband 1 A,
resolution 0.5 A.  A house drawing 30 A leaves 80 - 2 - 30 = 48 A of headroom.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from busshare.core.budget import BudgetPolicy
from busshare.core.budget import EvDraw
from busshare.core.budget import MainsReading
from busshare.core.budget import steady_change_bound
from busshare.core.budget_config import BudgetConfig
from busshare.core.config import Timing
from busshare.core.currents import PhaseCurrents
from busshare.core.events import EventKind
from busshare.core.setpoint import LimitSource

INF = float("inf")
CFG = BudgetConfig(fallback_da=240, main_limit_da=800, margin_da=20)
STATIC = 630


def policy(meter: bool = True, now: float = 0.0, **changes: Any) -> BudgetPolicy:
    return BudgetPolicy(dataclasses.replace(CFG, **changes), STATIC, Timing(), now,
                        meter_timeout_s=5.0 if meter else None)


def mains(t: float, *phases: int) -> MainsReading:
    return MainsReading(t, PhaseCurrents(tuple(phases)))


def feed(p: BudgetPolicy, t0: float, t1: float, house: int, ev: tuple[EvDraw, ...] = (), period: float = 1.0) -> None:
    """Good readings every ``period`` from t0 to t1 (excluded), each delivered 0.1 s after it was measured."""
    t = t0
    while t < t1:
        load = house + sum(d.draw_da for d in ev)
        p.meter(mains(t, load), [dataclasses.replace(d, at=t) if d.metered else d for d in ev], t + 0.1)
        t += period


def kinds(p: BudgetPolicy) -> list[EventKind]:
    return [e.kind for e in p.drain_events()]


def settled(house: int = 300) -> BudgetPolicy:
    """A policy that has ramped up to the room a steady ``house`` load leaves, long enough ago (t=400)
    that a lowering now is not a bounce."""
    p = policy()
    feed(p, 0.0, 400.0, house)
    p.drain_events()
    return p


# -- sources and the effective limit ------------------------------------------------------------


def test_static_only_is_the_static_limit_and_needs_no_tick() -> None:
    p = policy(meter=False)
    b = p.tick(1000.0)
    assert (b.limit_da, b.source, b.degraded) == (STATIC, LimitSource.STATIC, False)
    assert p.next_deadline() == INF
    assert p.drain_events() == []


def test_a_meter_not_read_yet_starts_at_the_fallback() -> None:
    p = policy()
    b = p.budget
    assert (b.limit_da, b.source, b.degraded) == (240, LimitSource.FALLBACK, True)
    assert kinds(p) == [EventKind.BUDGET_FALLBACK]
    assert p.stats.changes == 0 and p.stats.fallbacks == 0  # starting up is not a fault


def test_headroom_is_main_minus_margin_minus_house_on_the_worst_phase() -> None:
    p = policy()
    ev = (EvDraw(1, 100, True, 0.0), EvDraw(2, 160, False, -100.0))
    b = p.meter(mains(0.0, 300 + 260, 200, 250), ev, 0.1)  # L1 is the worst phase
    assert b.house_da == 300 and b.headroom_da == 800 - 20 - 300
    assert b.unmetered_da == 160  # the meterless servant's offer stands in for its draw
    assert b.ceiling_da == 480 - 10  # a raise leaves the deadband unused
    assert not b.degraded and b.limit_da == 240  # ... and comes in steps, after a hold


def test_recovery_from_the_fallback_is_in_steps_after_each_hold() -> None:
    p = policy()
    raises = []
    t = 0.0
    while t < 120.0:
        before = p.budget.limit_da
        b = p.meter(mains(t, 300), [], t + 0.1)
        if b.limit_da != before:
            raises.append((t + 0.1, b.limit_da))
        t += 1.0
    # first good reading at 0.1 starts the hold; a raise every 15 s, 6 A at a time, up to 48 - 1 A
    assert raises == [(15.1, 300), (30.1, 360), (45.1, 420), (60.1, 470)]
    assert p.budget.source is LimitSource.METER


def test_a_setpoint_only_site_raises_on_tick_at_the_hold_deadline() -> None:
    p = policy(meter=False)
    p.setpoint(200, 600.0, 0.0)
    assert p.budget.limit_da == 200 and p.budget.source is LimitSource.SETPOINT
    p.setpoint(400, 600.0, 10.0)
    assert p.budget.limit_da == 200  # a higher setpoint is a raise: held and stepped
    assert p.next_deadline() == 25.0
    assert p.tick(25.0).limit_da == 260
    assert p.next_deadline() == 40.0
    assert p.tick(40.0).limit_da == 320


# -- lowering --------------------------------------------------------------------------------------


def test_a_house_step_lowers_at_once_by_the_full_overshoot() -> None:
    p = settled(300)
    assert p.budget.limit_da == 470
    b = p.meter(mains(400.0, 300 + 95 + 470), [EvDraw(1, 470, True, 400.0)], 400.1)  # a 9.5 A kettle
    # headroom 80 - 2 - 39.5 = 38.5 A: at once, on the 0.5 A grid, at or below it
    assert b.limit_da == 385 and b.headroom_da == 385
    assert kinds(p) == [EventKind.BUDGET_LOWERED]


def test_lowering_rounds_down_to_the_resolution_grid_never_up() -> None:
    p = settled(300)
    b = p.meter(mains(400.0, 300 + 3), [], 400.1)  # headroom 47.7 A
    assert b.limit_da == 470  # still fits
    b = p.meter(mains(401.0, 300 + 14), [], 401.1)  # headroom 46.6 A
    assert b.limit_da == 465


def test_an_overloaded_house_takes_everything_but_never_below_zero() -> None:
    p = settled(300)
    assert p.meter(mains(400.0, 900), [], 400.1).limit_da == 0


def test_a_misaligned_reading_still_lowers() -> None:
    p = settled(300)
    stale_ev = EvDraw(1, 0, True, 150.0)  # measured 50 s before the mains reading
    assert p.meter(mains(400.0, 500), [stale_ev], 400.1).limit_da == 280


# -- raising -----------------------------------------------------------------------------------


def test_a_misaligned_reading_restarts_the_raise_hold() -> None:
    p = policy()
    feed(p, 0.0, 10.0, 300)  # hold started at 0.1
    p.meter(mains(10.0, 300 + 100), [EvDraw(1, 100, True, 5.0)], 10.1)  # its STATUS is 5 s old
    feed(p, 11.0, 25.0, 300)  # the hold restarts at 11.1: no raise at 15.1
    assert p.budget.limit_da == 240
    feed(p, 25.0, 27.0, 300)
    assert p.budget.limit_da == 300  # at 26.1


def test_a_failed_read_restarts_the_raise_hold() -> None:
    p = policy()
    feed(p, 0.0, 10.0, 300)  # hold started at 0.1
    p.meter_failed(10.5, "timeout")  # nothing rises on data that may be old: the hold restarts
    feed(p, 11.0, 25.0, 300)
    assert p.budget.limit_da == 240
    assert p.next_deadline() == 25.5
    assert p.tick(25.5).limit_da == 300


def test_a_meterless_offer_that_just_changed_does_not_justify_a_raise() -> None:
    p = policy()
    feed(p, 0.0, 5.0, 300)
    fresh = EvDraw(1, 160, False, 4.0)  # its car may still be ramping up to the new offer
    p.meter(mains(5.0, 300 + 40), [fresh], 5.1)
    assert p.budget.limit_da == 240 and p.next_deadline() == 10.0  # hold dropped: only the meter deadline
    settled_ev = EvDraw(1, 160, False, -10.0)
    p.meter(mains(6.0, 300 + 160), [settled_ev], 6.1)
    assert p.next_deadline() == 11.0  # the hold (21.1) is later than the meter's 6 + 5 s


def test_noise_inside_the_deadband_never_lowers_after_a_raise() -> None:
    noise = [0, 3, -2, 1, -1, 2, 0, -3, 1, 2]  # 0.6 A peak to peak
    p = policy(deadband_da=15)  # 0.6 A + the 0.5 A grid fit in it
    assert max(noise) - min(noise) + p.cfg.resolution_da <= p.cfg.deadband_da
    for i in range(3600):
        p.meter(mains(float(i), 300 + noise[i % len(noise)]), [], i + 0.1)
    assert p.stats.lowerings == 0
    assert p.stats.changes <= steady_change_bound(p.cfg, 480 - 240)


def test_a_raise_never_goes_above_the_lowest_room_seen_in_its_hold() -> None:
    p = policy()
    dips = {3: 60, 9: 40}  # momentary, inside the hold: 6 A and 4 A more house load
    for i in range(16):
        p.meter(mains(float(i), 300 + dips.get(i, 0)), [], i + 0.1)
    # the dips lowered nothing (the limit is at the fallback), but bound the first raise: 48 - 6 - 1 = 41 A
    # ... which is further than one step: 24 + 6 A
    assert p.budget.limit_da == 300
    q = policy(raise_step_da=400)
    for i in range(16):
        q.meter(mains(float(i), 300 + dips.get(i, 0)), [], i + 0.1)
    assert q.budget.limit_da == 410


# -- bounces -----------------------------------------------------------------------------------


def test_a_lowering_soon_after_a_raise_doubles_the_hold_and_a_standing_raise_halves_it() -> None:
    p = settled(300)  # at 47 A since t=60.1
    assert p.hold_s == 15.0
    p.meter(mains(400.0, 350), [], 400.1)  # +5 A: 43 A headroom -> 43 A, not a bounce
    assert p.hold_s == 15.0 and kinds(p) == [EventKind.BUDGET_LOWERED]
    feed(p, 401.0, 430.0, 300)  # raised back at 415.1
    assert p.budget.limit_da == 470
    p.meter(mains(430.0, 350), [], 430.1)  # lowered 15 s after that raise: a bounce
    assert p.hold_s == 30.0
    assert kinds(p) == [EventKind.BUDGET_RAISED, EventKind.BUDGET_BACKOFF, EventKind.BUDGET_LOWERED]
    feed(p, 431.0, 461.0, 300)
    assert p.budget.limit_da == 430  # a 15 s hold is no longer enough
    feed(p, 461.0, 462.0, 300)
    assert p.budget.limit_da == 470  # raised at 461.1, after 30 s
    feed(p, 462.0, 800.0, 300)  # that raise stands for raise_hold_max_s (300 s) ...
    p.meter(mains(800.0, 350), [], 800.1)
    feed(p, 801.0, 840.0, 300)
    assert p.hold_s == 15.0  # ... so the next raise halves the hold back
    assert p.budget.limit_da == 470


def test_a_new_load_or_a_setpoint_after_a_raise_is_not_a_bounce() -> None:
    p = settled(300)
    p.meter(mains(400.0, 350), [], 400.1)
    feed(p, 401.0, 420.0, 300)  # raised 43 -> 47 A at 415.1
    p.meter(mains(420.0, 395), [], 420.1)  # a 9.5 A kettle: lower than before that raise
    assert p.hold_s == 15.0 and p.budget.limit_da == 385
    feed(p, 421.0, 460.0, 300)  # raised at 436.1 and 451.1
    p.setpoint(300, 60.0, 460.0)  # an energy manager's order
    assert p.hold_s == 15.0 and EventKind.BUDGET_BACKOFF not in kinds(p)


def test_the_hold_stops_doubling_at_its_maximum() -> None:
    p = settled(300)
    t = 400.0
    for _ in range(8):  # an oven thermostat faster than any hold: on 40 s, off until raised
        p.meter(mains(t, 300 + 85), [], t + 0.1)
        feed(p, t + 1, t + 40, 300 + 85)
        t += 40
        feed(p, t, t + p.hold_s + 2, 300)
        t += p.hold_s + 2
    assert p.hold_s == CFG.raise_hold_max_s


# -- stale and failed sources ---------------------------------------------------------------------


def test_a_silent_meter_drops_to_the_fallback_exactly_at_its_timeout() -> None:
    p = settled(300)
    p.meter(mains(400.0, 300), [], 400.4)
    assert p.next_deadline() == 405.0  # measured at 400.0: its age counts from then
    assert not p.tick(404.99).degraded
    b = p.tick(405.0)
    assert (b.limit_da, b.source, b.degraded) == (240, LimitSource.FALLBACK, True)
    assert kinds(p) == [EventKind.BUDGET_FALLBACK, EventKind.BUDGET_LOWERED]
    assert p.stats.fallbacks == 1


def test_failed_reads_do_not_change_the_limit_until_the_timeout() -> None:
    p = settled(300)
    p.meter(mains(400.0, 300), [], 400.1)
    for t in (401.0, 402.0, 403.0, 404.0):
        assert p.meter_failed(t, "timeout").limit_da == 470
    assert kinds(p) == [EventKind.METER_FAILED]  # once per run of failures
    assert p.stats.meter_failures == 4
    assert p.meter_failed(405.0, "timeout").limit_da == 240


def test_a_stale_source_never_raises_a_limit_already_below_the_fallback() -> None:
    p = settled(650)  # 80 - 2 - 65 = 13 A
    assert p.budget.limit_da == 130
    b = p.tick(500.0)
    assert b.degraded and b.limit_da == 130


def test_after_an_outage_the_limit_recovers_in_steps() -> None:
    p = settled(300)
    p.tick(500.0)
    assert p.budget.limit_da == 240
    p.meter(mains(500.0, 300), [], 500.1)
    assert kinds(p) == [EventKind.BUDGET_FALLBACK, EventKind.BUDGET_LOWERED, EventKind.METER_BACK,
                        EventKind.BUDGET_RECOVERED]
    assert p.budget.limit_da == 240 and not p.budget.degraded
    feed(p, 501.0, 600.0, 300)
    assert p.budget.limit_da == 470 and p.stats.raises == 8


def test_a_reading_already_too_old_on_arrival_does_not_end_the_fallback() -> None:
    p = settled(300)
    p.tick(500.0)
    b = p.meter(mains(490.0, 300), [], 500.0)
    assert b.degraded


def test_an_older_reading_is_ignored_and_reported() -> None:
    p = settled(300)
    p.meter(mains(398.0, 900), [], 400.5)
    assert p.budget.limit_da == 470
    assert kinds(p) == [EventKind.BUDGET_INPUT_IGNORED]


def test_an_expired_setpoint_falls_back_and_a_new_one_recovers() -> None:
    p = policy(meter=False)
    p.setpoint(400, None, 0.0)  # default time-to-live: 60 s
    assert p.next_deadline() == 60.0
    b = p.tick(60.0)
    assert (b.limit_da, b.degraded, b.source) == (240, True, LimitSource.FALLBACK)
    assert EventKind.SETPOINT_EXPIRED in kinds(p)
    b = p.setpoint(400, 60.0, 70.0)
    assert not b.degraded and b.limit_da == 240  # back up in steps
    assert p.tick(85.0).limit_da == 300


def test_a_withdrawn_setpoint_is_not_a_failure() -> None:
    p = policy(meter=False)
    p.setpoint(200, 30.0, 0.0)
    p.clear_setpoint(10.0)
    assert not p.tick(100.0).degraded
    assert p.budget.source is LimitSource.STATIC


def test_a_setpoint_lowers_at_once_below_the_meter() -> None:
    p = settled(300)
    b = p.setpoint(160, 60.0, 400.0)  # a demand-response order: 16 A
    assert (b.limit_da, b.source) == (160, LimitSource.SETPOINT)


# -- inputs that are programming errors ------------------------------------------------------


def test_bad_api_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        policy().setpoint(-1, 60.0, 0.0)
    with pytest.raises(ValueError):
        policy().setpoint(100, float("nan"), 0.0)
    with pytest.raises(ValueError):
        policy(meter=False).meter(mains(0.0, 0), [], 0.0)
    with pytest.raises(ValueError):
        BudgetPolicy(BudgetConfig(fallback_da=0), STATIC, Timing(), 0.0, meter_timeout_s=5.0)


def test_the_compliance_window_is_reaction_plus_one_resend_plus_a_tick() -> None:
    assert Timing().budget_compliance_bound == pytest.approx(5.0 + 1.0 + 0.05)
