"""The simulator's budget world: house loads, meter faults and setpoint events are deterministic data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from busshare.sim.house import DrEnd
from busshare.sim.house import HouseLoad
from busshare.sim.house import MeterFault
from busshare.sim.house import MeterFaultKind
from busshare.sim.house import PollKind
from busshare.sim.house import SetpointEvent
from busshare.sim.house import SimMeter
from busshare.sim.house import appliance_house
from busshare.sim.house import demand_response
from busshare.sim.house import flat_house
from busshare.sim.house import house_from_csv
from busshare.sim.house import random_world
from busshare.sim.house import stepped_house


def test_the_same_seed_gives_the_same_house_and_noise() -> None:
    a = appliance_house(random.Random(7), 7200.0, 400)
    b = appliance_house(random.Random(7), 7200.0, 400)
    assert a == b
    assert [a.at(t * 0.25) for t in range(400)] == [b.at(t * 0.25) for t in range(400)]
    assert a != appliance_house(random.Random(8), 7200.0, 400)


@pytest.mark.parametrize("seed", range(20))
def test_appliances_never_take_the_house_over_its_maximum(seed: int) -> None:
    h = appliance_house(random.Random(seed), 4 * 3600.0, 250, solar_da=70, noise_da=4)
    assert h.peak_da <= 250
    assert all(h.at(t * 0.5) <= 250 for t in range(0, 4 * 7200, 7))
    assert len(h.times) > 3  # something switched


def test_noise_stays_within_its_peak_to_peak_and_steps_are_explicit() -> None:
    h = stepped_house([(0, 100), (60, 195), (210, 100), (300, 130)], noise_da=4, seed=3)
    values = {h.noise(t * 0.1) for t in range(5000)}
    assert min(values) == -2 and max(values) == 2
    assert h.steps_up() == [60.0, 300.0]
    assert h.steps_up(min_da=50) == [60.0]
    assert h.steady(100.0, 1000.0) == [(60.0, 210.0), (300.0, 1000.0)]
    assert h.peak_da == 197


def test_a_flat_house_is_one_steady_stretch() -> None:
    h = flat_house(300, noise_da=3)
    assert h.steady(60.0, 3600.0) == [(0.0, 3600.0)] and h.steps_up() == []


def test_a_csv_house_takes_the_worst_phase(tmp_path: Path) -> None:
    f = tmp_path / "house.csv"
    f.write_text("time,L1,L2,L3\n# morning\n0,3.0,1.5,2.0\n60,3.0,12.5,2.0\n120,1.0,1.0,1.0\n")
    h = house_from_csv(f)
    assert h.times == (0.0, 60.0, 120.0) and h.base_da == (30, 125, 10)


def test_a_csv_house_is_the_emulators_format_the_first_row_holding_from_the_start(tmp_path: Path) -> None:
    f = tmp_path / "house.csv"
    f.write_text("-60,9.0\n-5,3.0\n30,12.5\n")
    assert (house_from_csv(f).times, house_from_csv(f).base_da) == ((0.0, 30.0), (30, 125))
    f.write_text("5,1\n65,2\n")
    assert (house_from_csv(f).times, house_from_csv(f).base_da) == ((0.0, 65.0), (10, 20))


@pytest.mark.parametrize("text, where", [
    ("0,1\n5\n", ":2: want time,L1"), ("0,1\nx,2\n", ":2: 'x,2' is not numbers"),
    ("0,1\n0,2\n", ":2: time 0 s does not increase"), ("0,1\n5,2,3,4\n", ":2: 4 columns, the first row has 2"),
    ("0,nan\n", ":1: not a finite number"), ("# nothing\n", ": no rows"),
])
def test_a_bad_csv_is_one_line_naming_the_line(tmp_path: Path, text: str, where: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ValueError) as info:
        house_from_csv(f)
    assert str(info.value).startswith(str(f)) and where in str(info.value) and "\n" not in str(info.value)


def test_a_missing_csv_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        house_from_csv(tmp_path / "nope.csv")


def test_meter_faults_turn_polls_into_readings_failures_or_nothing() -> None:
    m = SimMeter([MeterFault(10.0, 5.0, MeterFaultKind.STALE), MeterFault(20.0, 5.0, MeterFaultKind.GARBAGE),
                  MeterFault(30.0, 5.0, MeterFaultKind.DISCONNECTED), MeterFault(40.0, 20.0, MeterFaultKind.FROZEN)],
                 frozen_s=10.0)
    assert m.poll(9.0, 300).kind is PollKind.READING and m.poll(9.0, 300).mains_da == 300
    assert m.poll(10.0, 300).kind is PollKind.NOTHING
    assert m.poll(21.0, 300).kind is PollKind.FAILED and "impossible" in m.poll(21.0, 300).why
    assert m.poll(31.0, 300).kind is PollKind.FAILED and "timeout" in m.poll(31.0, 300).why
    # frozen: the value at the start, looking good, until the client notices
    assert m.poll(40.0, 310).mains_da == 310
    assert m.poll(49.0, 900) == m.poll(45.0, 10) == m.poll(40.0, 310)
    assert m.poll(50.0, 900).kind is PollKind.FAILED
    assert m.poll(60.0, 900).mains_da == 900


def test_a_demand_response_event_is_renewed_then_withdrawn_or_left_to_expire() -> None:
    ev = demand_response(100.0, 95.0, 160, renew_s=30.0, ttl_s=60.0)
    assert ev == (SetpointEvent(100.0, 160, 60.0), SetpointEvent(130.0, 160, 60.0), SetpointEvent(160.0, 160, 60.0),
                  SetpointEvent(190.0, 160, 60.0), SetpointEvent(195.0, None))
    assert demand_response(100.0, 95.0, 160, end=DrEnd.EXPIRE)[-1] == SetpointEvent(190.0, 160, 60.0)
    with pytest.raises(ValueError):
        demand_response(0.0, 10.0, 160, renew_s=60.0, ttl_s=60.0)


@pytest.mark.parametrize("seed", range(30))
def test_a_random_world_keeps_the_house_under_main_minus_fallback(seed: int) -> None:
    w = random_world(random.Random(seed), 3600.0, main_da=800, fallback_da=240)
    assert w.house.peak_da <= 800 - 240 - 20
    assert all(0.0 <= f.start and f.duration_s > 0 for f in w.faults)
    assert w == random_world(random.Random(seed), 3600.0, main_da=800, fallback_da=240)


def test_bad_house_data_is_refused() -> None:
    with pytest.raises(ValueError):
        HouseLoad((1.0,), (10,))
    with pytest.raises(ValueError):
        HouseLoad((0.0, 5.0, 5.0), (1, 2, 3))
    with pytest.raises(ValueError):
        appliance_house(random.Random(1), 60.0, 5)
