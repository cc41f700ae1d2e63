"""Control pilot: J1772 / IEC 61851-1 duty cycle <-> current, at every band edge."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.protocol.pilot import MAX_CURRENT_A
from busshare.protocol.pilot import MIN_CURRENT_A
from busshare.protocol.pilot import PilotError
from busshare.protocol.pilot import PilotState
from busshare.protocol.pilot import clamp_current
from busshare.protocol.pilot import clamp_da
from busshare.protocol.pilot import current_for_duty
from busshare.protocol.pilot import duty_for_current


@pytest.mark.parametrize(
    ("amps", "duty"),
    [
        (0, 100.0),  # nothing offered
        (6, 10.0),  # minimum
        (12, 20.0),
        (16, 26.0 + 2 / 3),
        (30, 50.0),
        (51, 85.0),  # top of the low band: A / 0.6
        (52.5, 85.0),  # upper band formula A / 2.5 + 64 meets 85 % here
        (60, 88.0),
        (80, 96.0),  # maximum
    ],
)
def test_duty_for_current(amps: float, duty: float) -> None:
    assert math.isclose(duty_for_current(amps), duty, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("duty", "amps"),
    [
        (100, 0.0),
        (10, 6.0),
        (50, 30.0),
        (85, 51.0),  # 85 % itself belongs to the low band
        (85.2, 53.0),  # just above: (duty - 64) * 2.5
        (88, 60.0),
        (96, 80.0),
    ],
)
def test_current_for_duty(duty: float, amps: float) -> None:
    assert math.isclose(current_for_duty(duty), amps, abs_tol=1e-9)


@pytest.mark.parametrize("amps", [5.99, 1, -6, 80.01, 100, math.inf, math.nan])
def test_currents_outside_the_bands_are_errors(amps: float) -> None:
    with pytest.raises(PilotError, match="6-80 A"):
        duty_for_current(amps)


@pytest.mark.parametrize("duty", [0, 9.99, 96.01, 99.9, 100.01, 4.9, 5.1, math.nan])
def test_duties_outside_the_bands_are_errors(duty: float) -> None:
    with pytest.raises(PilotError, match="10-96 %"):
        current_for_duty(duty)


def test_five_percent_means_digital_communication() -> None:
    with pytest.raises(PilotError, match="digital communication"):
        current_for_duty(5)


def test_pilot_error_is_a_value_error() -> None:
    assert issubclass(PilotError, ValueError)


@settings(deadline=None)
@given(st.floats(MIN_CURRENT_A, 51.0) | st.floats(52.501, MAX_CURRENT_A))
def test_current_round_trip(amps: float) -> None:
    assert math.isclose(current_for_duty(duty_for_current(amps)), amps, rel_tol=1e-9)


@settings(deadline=None)
@given(st.floats(51.0, 52.5, exclude_min=True))
def test_between_the_band_formulas_the_car_reads_less(amps: float) -> None:
    """51-52.5 A: the upper formula gives a duty at or below 85 %, which the car reads with the lower one.

    The car is offered slightly less than asked (never more): the safe side of the band edge.
    """
    duty = duty_for_current(amps)
    assert duty <= 85.0
    read = current_for_duty(duty)
    assert 50.6 <= read < amps


@settings(deadline=None)
@given(st.floats(10.0, 96.0))
def test_duty_round_trip(duty: float) -> None:
    assert math.isclose(duty_for_current(current_for_duty(duty)), duty, rel_tol=1e-9)


@settings(deadline=None)
@given(st.floats(MIN_CURRENT_A, MAX_CURRENT_A), st.floats(MIN_CURRENT_A, MAX_CURRENT_A))
def test_duty_rises_with_current_within_a_band(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    if hi <= 51.0 or lo > 51.0:
        assert duty_for_current(lo) <= duty_for_current(hi)


def test_duties_stay_inside_10_to_96() -> None:
    for deci in range(60, 801):
        assert 10.0 <= duty_for_current(deci / 10) <= 96.0


@pytest.mark.parametrize(
    ("amps", "local_max", "expected"),
    [
        (32, 80, 32),
        (100, 80, 80),
        (100, 40, 40),
        (6, 80, 6),
        (5.9, 80, 0),  # below the minimum: pause rather than an invalid offer
        (0, 80, 0),
        (-3, 80, 0),
        (40, 5, 0),  # a local maximum below 6 A can only pause
        (40, 120, 40),
        (100, 120, 80),  # never above 80 A
    ],
)
def test_clamp_current(amps: float, local_max: float, expected: float) -> None:
    assert clamp_current(amps, local_max) == expected
    assert clamp_da(int(amps * 10), int(local_max * 10)) == int(expected * 10)


@settings(deadline=None)
@given(st.integers(-1000, 2000), st.integers(0, 2000))
def test_clamped_values_are_always_offerable(deci_amps: int, local_max_da: int) -> None:
    out = clamp_da(deci_amps, local_max_da)
    assert out == 0 or 60 <= out <= 800
    assert out <= max(deci_amps, 0) and out <= local_max_da
    duty_for_current(out / 10)  # never raises


@settings(deadline=None)
@given(st.floats(-100, 200), st.floats(0, 200))
def test_clamped_currents_are_always_offerable(amps: float, local_max: float) -> None:
    out = clamp_current(amps, local_max)
    assert out == 0 or MIN_CURRENT_A <= out <= MAX_CURRENT_A
    assert out <= max(amps, 0) and out <= local_max
    duty_for_current(out)


def test_pilot_states() -> None:
    assert [s.name for s in PilotState] == list("ABCDEF")
    assert [int(s) for s in PilotState] == list(range(6))  # the wire encoding
    assert PilotState.A.voltage == "+12 V" and PilotState.F.voltage == "-12 V"
    assert PilotState.C.meaning == "charging"
    assert PilotState.D.meaning == "charging, ventilation required"
    assert [s.vehicle_present for s in PilotState] == [False, True, True, True, False, False]
    assert [s.charging for s in PilotState] == [False, False, True, True, False, False]
    for s in PilotState:
        assert s.meaning and s.voltage.endswith("V")
