"""The simulated car behind an EVSE: it follows the pilot the way the standard allows, no better."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.hardware import EvseHardware
from busshare.protocol.pilot import PilotState
from busshare.sim.ev import INF
from busshare.sim.ev import VOLTAGE_V
from busshare.sim.ev import EvProfile
from busshare.sim.ev import SimEvse


def run_until(evse: SimEvse, t: float) -> list[tuple[float, int, PilotState]]:
    """Advance through every change the car makes by itself up to ``t``; return (t, draw, pilot)."""
    out = []
    while evse.next_change() <= t:
        at = evse.next_change()
        evse.advance(at)
        out.append((at, evse.draw_da, evse.pilot()))
    evse.advance(t)
    return out


def offered(profile: EvProfile, offer_da: int) -> SimEvse:
    """An EVSE whose car (``profile``) plugs in at 0 s and is offered ``offer_da`` at once."""
    evse = SimEvse()
    evse.plug(profile, 0.0)
    evse.apply(offer_da, False, 0.0)
    return evse


def test_implements_the_hardware_interface() -> None:
    assert isinstance(SimEvse(), EvseHardware)


def test_no_car_state_a_and_nothing_drawn() -> None:
    evse = SimEvse()
    evse.apply(320, False, 0.0)
    assert evse.read(10.0) == (PilotState.A, 0)
    assert evse.next_change() == INF


def test_without_meter_reads_none() -> None:
    evse = SimEvse(meter=False)
    evse.plug(EvProfile(), 0.0)
    assert evse.read(0.0) == (PilotState.B, None)


def test_plugged_car_waits_in_b_until_offered_then_ramps_to_the_offer() -> None:
    evse = SimEvse()
    evse.plug(EvProfile(start_delay_s=1.0, ramp_a_per_s=20, ramp_step_s=0.5), 0.0)
    assert evse.read(5.0) == (PilotState.B, 0)
    evse.apply(320, False, 5.0)
    assert evse.pilot() is PilotState.C
    steps = run_until(evse, 20.0)
    assert steps[0] == (6.0, 100, PilotState.C)  # start delay, then the first 10 A step
    assert [d for _, d, _ in steps] == [100, 200, 300, 320]
    assert evse.read(20.0) == (PilotState.C, 320)


def test_car_never_draws_more_than_it_can() -> None:
    evse = offered(EvProfile(max_a=16), 640)
    run_until(evse, 30.0)
    assert evse.draw_da == 160


@given(st.integers(0, 2**32 - 1), st.floats(0.0, 5.0), st.floats(0.0, 5.0))
@settings(max_examples=60)
def test_compliant_car_follows_a_cut_within_its_reaction_delay(seed: int, a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    evse = SimEvse(rng=random.Random(seed))
    evse.plug(EvProfile(reaction_min_s=lo, reaction_max_s=hi), 0.0)
    evse.apply(320, False, 0.0)
    run_until(evse, 30.0)
    assert evse.draw_da == 320
    evse.apply(160, False, 30.0)
    changes = run_until(evse, 60.0)
    assert evse.draw_da == 160
    drop = next(t for t, d, _ in changes if d <= 160)
    assert 30.0 + lo <= drop <= 30.0 + hi + 1e-9


def test_non_compliant_car_ignores_cuts_but_not_an_open_contactor() -> None:
    evse = offered(EvProfile(compliant=False), 320)
    run_until(evse, 30.0)
    evse.apply(60, False, 30.0)
    run_until(evse, 100.0)
    assert evse.draw_da == 320
    assert evse.over_since == 30.0
    evse.apply(60, True, 100.0)  # the servant opens the contactor
    assert evse.draw_da == 0
    assert evse.over_since == INF


def test_power_reset_stops_the_draw_at_once() -> None:
    evse = offered(EvProfile(), 320)
    run_until(evse, 30.0)
    evse.power_reset(31.0)
    assert (evse.draw_da, evse.offer_da) == (0, 0)


def test_taper_then_full_returns_to_b_and_energy_is_counted_at_230_v() -> None:
    evse = offered(EvProfile(need_kwh=2.0, taper_kwh=0.5, taper_floor_a=6), 320)
    changes = run_until(evse, 4 * 3600.0)
    draws = [d for _, d, _ in changes]
    assert max(draws) == 320
    tail = draws[draws.index(320, 3):]
    assert tail == sorted(tail, reverse=True)  # the taper only goes down
    assert 60 in draws  # ... down to its floor
    assert evse.full and evse.draw_da == 0 and evse.pilot() is PilotState.B
    assert abs(evse.session_wh - 2000.0) < 1.0
    assert VOLTAGE_V == 230.0


def test_energy_integrates_current_times_voltage() -> None:
    evse = offered(EvProfile(need_kwh=100.0, start_delay_s=0.0, ramp_a_per_s=1000), 100)
    run_until(evse, 1.0)
    assert evse.draw_da == 100
    e0 = evse.energy_wh
    evse.advance(3601.0)
    assert abs((evse.energy_wh - e0) - 10 * 230.0) < 1e-6  # 10 A for one hour at 230 V


def test_unplug_stops_everything() -> None:
    evse = offered(EvProfile(), 320)
    run_until(evse, 30.0)
    evse.unplug(31.0)
    assert evse.read(31.0) == (PilotState.A, 0)
    assert evse.next_change() == INF


def test_same_seed_same_car() -> None:
    def trace(seed: int) -> list[tuple[float, int, PilotState]]:
        evse = SimEvse(rng=random.Random(seed))
        evse.plug(EvProfile(), 0.0)
        evse.apply(320, False, 0.0)
        out = run_until(evse, 20.0)
        evse.apply(60, False, 20.0)
        return out + run_until(evse, 40.0)

    assert trace(7) == trace(7)
    assert trace(7) != trace(8)


LATE = EvProfile(reaction_min_s=4.0, reaction_max_s=4.0, start_delay_s=1.0, ramp_a_per_s=20, ramp_step_s=0.5,
                 sees_pilot_late=True)


def test_a_car_that_sees_the_pilot_late_climbs_only_once_it_has_seen_the_raise() -> None:
    evse = SimEvse()
    evse.plug(LATE, 0.0)
    evse.apply(160, False, 1.0)
    assert evse.pilot() is PilotState.B, "it has not seen the offer yet"
    assert run_until(evse, 4.9) == []
    steps = run_until(evse, 10.0)
    assert steps[0] == (5.0, 100, PilotState.C), "its first step when it sees the raise (no start delay on top)"
    assert evse.draw_da == 160


def test_a_grant_then_a_cut_within_its_reaction_time_still_makes_it_climb() -> None:
    """Issue 10, finding 3: the shape the servant's rule 2 must survive."""
    evse = offered(LATE, 100)
    run_until(evse, 10.0)
    assert evse.draw_da == 100
    evse.apply(160, False, 10.0)  # a grant...
    evse.apply(100, False, 10.5)  # ...and the cut half a second later
    steps = run_until(evse, 20.0)
    assert steps == [(14.0, 160, PilotState.C), (14.5, 100, PilotState.C)]


def test_pilot_changes_are_seen_in_order_and_never_later_than_the_reaction_delay() -> None:
    evse = SimEvse(rng=random.Random(3))
    evse.plug(EvProfile(reaction_min_s=0.2, reaction_max_s=5.0, sees_pilot_late=True), 0.0)
    t = 0.0
    for offer in (320, 60, 200, 0, 160, 100):
        t += 0.3
        evse.apply(offer, False, t)
        assert evse.seen_at <= t + 5.0 + 1e-9
    run_until(evse, t + 5.0)
    assert evse.seen_da == 100 and evse.draw_da <= 100


# -- cars on their own schedule: pauses and start timers (docs/BUDGET.md 6.6) ------------------------------


def test_a_car_pauses_itself_at_its_offsets_and_resumes_only_on_a_pwm_offer() -> None:
    car = EvProfile(need_kwh=50.0, taper_kwh=0.0, start_delay_s=1.0, pauses=((10.0, 30.0), (60.0, 5.0)))
    evse = offered(car, 160)
    run_until(evse, 5.0)
    assert evse.pilot() is PilotState.C and evse.draw_da == 160 and evse.started_at == 0.0
    run_until(evse, 10.0 + 1e-6)  # 10 s after charging started: its own pause
    assert evse.pilot() is PilotState.B and evse.draw_da == 0 and evse.wants_da == 0
    run_until(evse, 39.9)
    assert evse.pilot() is PilotState.B and evse.draw_da == 0
    evse.apply(0, False, 39.95)  # no PWM when its pause ends (B1): it cannot resume
    run_until(evse, 50.0)
    assert evse.pilot() is PilotState.B and evse.draw_da == 0 and evse.wants_da == 800
    evse.apply(60, False, 50.0)  # a parked offer: it resumes on it
    assert evse.pilot() is PilotState.C
    run_until(evse, 55.0)
    assert evse.draw_da == 60
    run_until(evse, 60.0 + 1e-6)  # the second pause, 60 s after charging started
    assert evse.pilot() is PilotState.B and evse.draw_da == 0
    run_until(evse, 66.0)
    assert evse.pilot() is PilotState.C and evse.draw_da == 60


def test_a_car_on_a_start_timer_waits_in_b_then_starts_when_the_time_comes_and_a_pwm_is_offered() -> None:
    car = EvProfile(need_kwh=50.0, start_after_s=100.0, start_delay_s=1.0)
    evse = offered(car, 320)
    run_until(evse, 99.0)
    assert evse.pilot() is PilotState.B and evse.draw_da == 0 and evse.wants_da == 0
    assert evse.next_change() == 100.0  # its pilot changes then: the simulator must look
    run_until(evse, 100.0)
    assert evse.pilot() is PilotState.C and evse.wants_da == 800
    run_until(evse, 110.0)
    assert evse.draw_da == 320
    late = offered(car, 0)
    run_until(late, 200.0)
    assert late.pilot() is PilotState.B and late.draw_da == 0  # no PWM: B1, it cannot start
    late.apply(60, False, 200.0)
    run_until(late, 210.0)
    assert late.pilot() is PilotState.C and late.draw_da == 60


def test_pauses_must_be_in_order_with_a_duration() -> None:
    with pytest.raises(ValueError):
        EvProfile(pauses=((10.0, 5.0), (5.0, 5.0)))
    with pytest.raises(ValueError):
        EvProfile(pauses=((10.0, 0.0),))
    with pytest.raises(ValueError):
        EvProfile(start_after_s=-1.0)
