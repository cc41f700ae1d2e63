"""A scenario's budget world: [house], [[meter_fault]], [[setpoint]], [[demand_response]] and [meter] are read,
each mistake a one-line error naming its key, and the meter's timers come from the installation's meter."""

from __future__ import annotations

from pathlib import Path

import pytest

from busshare.sim.house import MeterFaultKind
from busshare.sim.scenario import ScenarioError
from busshare.sim.scenario import load_scenario
from busshare.sim.scenario import parse_scenario
from tests.support.site_files import scenario_servants

BASE = """
duration_s = 600.0
[installation.site]
limit_a = 32
[installation.budget]
main_limit_a = 63.0
fallback_a = 12.0
{meter}
""" + scenario_servants(1, 2, failsafe_a=6)
METER = """[installation.budget.meter]
kind = "sdm120"
tcp = "127.0.0.1:5020"
poll_s = 2.0
timeout_s = 7.0
frozen_s = 20.0
"""


def scenario(extra: str, meter: str = METER) -> str:
    return BASE.format(meter=meter) + extra


def test_the_world_is_read_with_the_meters_timers_from_the_installation() -> None:
    sc = parse_scenario(scenario("""
[house]
kind = "steps"
noise_a = 0.4
steps = [[0, 10.0], [100, 25.5]]
[meter]
latency_s = 0.2
[[meter_fault]]
at = 50.0
duration_s = 10.0
kind = "frozen"
[[setpoint]]
at = 20.0
limit_a = 16.0
ttl_s = 30.0
[[setpoint]]
at = 40.0
[[demand_response]]
at = 200.0
duration_s = 60.0
limit_a = 6.0
end = "expire"
"""))
    w = sc.budget_world
    assert w is not None
    assert (w.poll_s, w.timeout_s, w.frozen_s, w.latency_s) == (2.0, 7.0, 20.0, 0.2)
    assert w.house.times == (0.0, 100.0) and w.house.base_da == (100, 255) and w.house.noise_da == 4
    assert [(f.start, f.duration_s, f.kind) for f in w.faults] == [(50.0, 10.0, MeterFaultKind.FROZEN)]
    sp = [(s.at, s.limit_da, s.ttl_s) for s in w.setpoints]
    assert sp[:2] == [(20.0, 160, 30.0), (40.0, None, None)]
    assert sp[2:] == [(200.0, 60, 60.0), (230.0, 60, 60.0)]  # renewed every 30 s, then left to expire


def test_an_appliance_house_is_the_same_for_the_same_seed_and_fits_its_maximum() -> None:
    text = scenario('[house]\nkind = "appliances"\nseed = 4\nmax_a = 30\n')
    a, b = parse_scenario(text).budget_world, parse_scenario(text).budget_world
    assert a is not None and b is not None and a.house == b.house
    assert a.house.peak_da <= 300


def test_a_csv_house_is_read_relative_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "load.csv").write_text("time,L1\n0,5.0\n60,20.0\n", encoding="utf-8")
    (tmp_path / "s.toml").write_text(scenario('[house]\nkind = "csv"\npath = "load.csv"\n'), encoding="utf-8")
    w = load_scenario(tmp_path / "s.toml").budget_world
    assert w is not None and w.house.base_da == (50, 200)


@pytest.mark.parametrize(("extra", "meter", "message"), [
    ('[house]\nkind = "flat"\nbase_a = 5\n', "", "house: needs a mains meter"),
    ('[house]\nkind = "oven"\n', METER, "house.kind"),
    ('[house]\nkind = "steps"\nsteps = [[5, 1.0]]\n', METER, "house.steps"),
    ('[house]\nkind = "flat"\nbase_a = 5\ncolour = 1\n', METER, "house.colour: unknown key"),
    ('[house]\nkind = "flat"\nbase_a = 5\n[[meter_fault]]\nat = 1\nduration_s = 2\nkind = "melted"\n', METER,
     "meter_fault[0].kind"),
    ('[house]\nkind = "flat"\nbase_a = 5\n[[setpoint]]\nat = 1\nlimit_a = -3\n', METER, "setpoint[0].limit_a"),
    ('[[demand_response]]\nat = 1\nduration_s = 20\nlimit_a = 6\nrenew_s = 90\n', "",
     "demand_response[0].renew_s"),
    ('[[meter_fault]]\nat = 1\nduration_s = 2\nkind = "stale"\n', "", "meter_fault[0]: needs a mains meter"),
])
def test_a_mistake_is_one_line_naming_its_key(extra: str, meter: str, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(scenario(extra, meter), where="s.toml")
    text = str(err.value)
    assert "\n" not in text and text.startswith("s.toml: ") and message in text, text


def test_a_meter_without_a_house_gets_the_built_in_appliance_house() -> None:
    """A site file simulated as it is (`busshare sim` on a scenario wrapping it) runs with a house to read."""
    world = parse_scenario(scenario("", METER), where="s.toml").budget_world
    written = parse_scenario(scenario('[house]\nkind = "appliances"\n', METER), where="s.toml").budget_world
    assert world is not None and world == written


def test_world_keys_need_a_budget() -> None:
    text = BASE.format(meter="").replace("[installation.budget]\nmain_limit_a = 63.0\nfallback_a = 12.0\n", "")
    with pytest.raises(ScenarioError, match=r"s.toml: setpoint: needs an \[installation.budget\]"):
        parse_scenario(text + "[[setpoint]]\nat = 1\n", where="s.toml")
    assert parse_scenario(text).budget_world is None


def test_the_builtin_mains_scenario_holds_every_event_the_issue_asks_for() -> None:
    sc = load_scenario("mains")
    w = sc.budget_world
    assert w is not None and sc.config.budget is not None and sc.config.budget.meter is not None
    assert w.house.steps_up(100)  # a step of 10 A or more: cuts
    assert any(s.limit_da is None for s in w.setpoints) and any(s.limit_da is not None for s in w.setpoints)
    assert w.faults
    assert any(b - a >= 300 for a, b in w.house.steady(300, sc.duration_s))
