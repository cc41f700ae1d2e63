"""``[site] id`` and ``[budget]`` of the site file: every problem named by its key path, in one line."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from busshare.config import Timing
from busshare.core.budget_config import BudgetConfig, SiteBudget, budget_config_from_mapping
from busshare.core.problems import Problem

ISSUE_EXAMPLE = """
[site]
id = "garage"              # MQTT topics: busshare/garage/...
[budget]
main_limit_a = 80.0        # the main service's continuous limit (per phase)
margin_a = 2.0             # kept free below it
fallback_a = 24.0          # what the EVSE circuit may always take; used when a source is stale
setpoint_ttl_s = 60        # default time-to-live of an external setpoint
[budget.meter]
kind = "sdm630"            # or "sdm120", or "generic" with a register table
tcp = "127.0.0.1:5020"     # Modbus TCP; or serial = "/dev/ttyUSB0" with baud = 9600
device_id = 1
poll_s = 1.0
timeout_s = 5.0            # no good reading for this long: fall back
[budget.mqtt]
broker = "127.0.0.1:1883"  # plus optional username, password, tls
"""


def parse(doc: dict[str, Any], limit: int = 630, failsafes: tuple[int, ...] = (60, 60, 60, 60),
          timing: Timing | None = None) -> tuple[SiteBudget | None, list[Problem]]:
    return budget_config_from_mapping(doc, circuit_limit_da=limit, failsafes_da=failsafes, timing=timing)


def problems(budget: dict[str, Any], **kw: Any) -> list[str]:
    got, probs = parse({"budget": budget}, **kw)
    assert (got is None) == bool(probs)
    return [str(p) for p in probs]


BASE = {"main_limit_a": 80.0, "fallback_a": 24.0}


def test_the_issue_example_parses_with_exactly_its_key_names() -> None:
    got, probs = parse(tomllib.loads(ISSUE_EXAMPLE))
    assert probs == []
    assert got is not None and got.site_id == "garage"
    b = got.budget
    assert b is not None
    assert (b.main_limit_da, b.margin_da, b.fallback_da, b.setpoint_ttl_s) == (800, 20, 240, 60.0)
    assert b.meter is not None and b.meter["kind"] == "sdm630" and b.meter["timeout_s"] == 5.0
    assert b.mqtt == {"broker": "127.0.0.1:1883"}
    # the tuning keys take their documented defaults
    d = BudgetConfig(fallback_da=0)
    assert (b.raise_hold_s, b.raise_step_da, b.deadband_da, b.resolution_da) == (
        d.raise_hold_s, d.raise_step_da, d.deadband_da, d.resolution_da)


def test_no_budget_table_is_a_fixed_limit_as_before() -> None:
    assert parse({}) == (SiteBudget("site", None), [])
    assert parse({"site": {"limit_a": 32, "id": "barn"}}) == (SiteBudget("barn", None), [])


@pytest.mark.parametrize("site_id, why", [
    ("", "non-empty"), ("a/b", "'/'"), ("a+b", "'+'"), ("#", "'#'"), ("x\n", "'\\n'"), ("é" * 40, "64 bytes"),
    (7, "non-empty string"),
])
def test_a_site_id_must_be_one_mqtt_topic_level(site_id: object, why: str) -> None:
    got, probs = parse({"site": {"id": site_id}})
    assert got is None and len(probs) == 1
    assert probs[0].key == "site.id" and why in probs[0].message


def test_every_problem_is_reported_with_its_key_path() -> None:
    got = problems({"main_limit_a": "80", "margin_a": -1, "fallback_a": 24.05, "setpoint_ttl_s": 0,
                    "raise_hold_s": True, "colour": "red", "meter": 5, "mqtt": []})
    assert got == [
        "budget.colour: unknown key (known: main_limit_a, margin_a, fallback_a, setpoint_ttl_s, raise_hold_s, "
        "raise_hold_max_s, raise_step_a, deadband_a, resolution_a, align_s, meter, mqtt)",
        "budget.meter: must be a table ([budget.meter])",
        "budget.mqtt: must be a table ([budget.mqtt])",
        "budget.main_limit_a: '80' is not a current in A",
        "budget.margin_a: -1 A is negative",
        "budget.fallback_a: 24.05 A has more than one decimal (0.1 A resolution)",
        "budget.setpoint_ttl_s: 0 s must be above 0 and at most 86400 s",
        "budget.raise_hold_s: True is not a number of seconds",
    ]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e9, None])
def test_currents_must_be_finite_and_sane(value: object) -> None:
    (p,) = problems({**BASE, "margin_a": value})
    assert p.startswith("budget.margin_a: ")


def test_the_fallback_is_required_and_fits_under_the_static_limit() -> None:
    assert problems({"main_limit_a": 80.0}) == [
        "budget.fallback_a: missing: the current the EVSE circuit may always take, used while a source is stale"]
    assert problems({**BASE, "fallback_a": 64.0}) == [
        "budget.fallback_a: 64.0 A is above the circuit limit 63.0 A (site limit_a)"]


def test_the_standalone_failsafes_fit_the_fallback() -> None:
    assert problems({**BASE, "fallback_a": 20.0}, failsafes=(60, 60, 60, 60)) == [
        "budget.fallback_a: 20.0 A is below the servants' standalone failsafe currents, which sum to 24.0 A: "
        "lower some failsafe_a (0 = pause) or raise fallback_a"]
    assert problems({**BASE, "fallback_a": 24.0}, failsafes=(60, 60, 60, 60)) == []
    assert problems({**BASE, "fallback_a": 0.0}, failsafes=(0, 0)) == []  # fallback 0: stop charging


def test_the_margin_is_below_the_main_limit_and_the_fallback_fits_under_both() -> None:
    assert problems({**BASE, "margin_a": 80.0}) == ["budget.margin_a: 80.0 A leaves nothing of main_limit_a 80.0 A"]
    assert problems({"main_limit_a": 25.0, "margin_a": 2.0, "fallback_a": 24.0}) == [
        "budget.fallback_a: 24.0 A does not fit below main_limit_a - margin_a (23.0 A): even an idle house would "
        "overload the main service"]
    assert problems({**BASE, "main_limit_a": 0}) == ["budget.main_limit_a: 0 A: the main service must carry something"]


def test_a_meter_needs_the_main_limit() -> None:
    assert problems({"fallback_a": 24.0, "meter": {"kind": "sdm630"}}) == [
        "budget.main_limit_a: missing: a mains meter needs the main service's continuous limit (per phase)"]
    assert problems({"fallback_a": 24.0, "mqtt": {"broker": "h"}}) == []  # setpoints alone: no main limit needed


def test_the_raise_hold_outlasts_the_compliance_window() -> None:
    assert problems({**BASE, "raise_hold_s": 6.0}) == [
        "budget.raise_hold_s: 6 s is shorter than the compliance window 6.05 s (reaction allowance + ack timeout "
        "+ tick): a raise could come before the last cut has taken effect"]
    slow_cars = Timing(reaction_allowance=20.0, rotation_interval=900.0)
    assert problems({**BASE}, timing=slow_cars)[0].startswith("budget.raise_hold_s: 15 s is shorter")
    assert problems({**BASE, "raise_hold_s": 60.0, "raise_hold_max_s": 30.0}) == [
        "budget.raise_hold_max_s: 30 s is below raise_hold_s 60 s"]
    assert problems({**BASE, "raise_hold_s": 600.0}) == []  # the maximum follows a long hold by default


def test_steps_and_the_deadband_are_not_finer_than_the_resolution() -> None:
    assert problems({**BASE, "resolution_a": 1.0, "raise_step_a": 0.5, "deadband_a": 0.5}) == [
        "budget.raise_step_a: 0.5 A is below resolution_a 1.0 A: a raise could not move the limit",
        "budget.deadband_a: 0.5 A is below resolution_a 1.0 A: meter noise would make the limit chatter",
    ]
    assert problems({**BASE, "resolution_a": 0.0}) == ["budget.resolution_a: 0.0 A must be 0.1 A to 10 A"]


def test_site_and_budget_must_be_tables() -> None:
    assert [str(p) for p in parse({"site": 3, "budget": 4})[1]] == [
        "site: must be a table ([site])", "budget: must be a table ([budget])"]
