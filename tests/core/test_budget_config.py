"""``[site] id`` and ``[budget]`` in the one site-file config: every problem names its key path and the value as written.

The budget is read by ``busshare.core.config`` like every other table: ``problems(doc)`` lists every
problem in file order, ``config_from_mapping`` stops at the first, ``validate`` applies the same
rules to a config built in code.  [budget.meter] and [budget.mqtt]: tests/core/test_source_settings.py.
"""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any

import pytest

from busshare.core.budget_config import BUDGET_KEYS
from busshare.core.budget_config import BudgetConfig
from busshare.core.config import Config
from busshare.core.config import ConfigError
from busshare.core.config import ServantConfig
from busshare.core.config import Timing
from busshare.core.config import config_from_mapping
from busshare.core.config import problems
from busshare.core.config import validate
from busshare.core.meter_maps import SDM630
from busshare.core.meter_maps import MeterKind
from busshare.core.source_settings import MeterSettings
from busshare.core.source_settings import MqttSettings
from busshare.core.source_settings import TcpEndpoint
from tests.support.site_files import BUDGET
from tests.support.site_files import ISSUE_SITE
from tests.support.site_files import site


def lines(doc: dict[str, Any]) -> list[str]:
    """Every problem of ``doc`` as check-config prints it; the first is the one config_from_mapping raises."""
    found = [str(p) for p in problems(doc)]
    if found:
        with pytest.raises(ConfigError) as exc:
            config_from_mapping(doc)
        assert str(exc.value) == found[0]
    else:
        config_from_mapping(doc)
    return found


def budget_lines(**budget: Any) -> list[str]:
    return lines(site({**BUDGET, **budget}))


def test_the_issue_site_file_as_written() -> None:
    cfg = config_from_mapping(tomllib.loads(ISSUE_SITE))
    assert cfg.site_id == "garage" and cfg.limit_da == 630
    b = cfg.budget
    assert b is not None
    assert (b.main_limit_da, b.margin_da, b.fallback_da, b.setpoint_ttl_s) == (800, 20, 240, 60.0)
    assert b.meter == MeterSettings(MeterKind.SDM630, TcpEndpoint("127.0.0.1", 5020), SDM630, device_id=1,
                                    poll_s=1.0, timeout_s=5.0, request_timeout_s=1.0, frozen_s=60.0)
    assert b.mqtt == MqttSettings(TcpEndpoint("127.0.0.1", 1883))
    # the tuning keys take their documented defaults
    d = BudgetConfig(fallback_da=0)
    assert (b.raise_hold_s, b.raise_hold_max_s, b.raise_step_da, b.deadband_da, b.resolution_da, b.align_s) == (
        d.raise_hold_s, d.raise_hold_max_s, d.raise_step_da, d.deadband_da, d.resolution_da, d.align_s)


def test_the_key_names_are_the_issues() -> None:
    assert BUDGET_KEYS[:4] == ("main_limit_a", "margin_a", "fallback_a", "setpoint_ttl_s")


def test_no_budget_table_is_a_fixed_limit_as_before() -> None:
    doc = site()
    del doc["budget"]
    cfg = config_from_mapping(doc)
    assert (cfg.budget, cfg.site_id) == (None, "site")
    doc["site"]["id"] = "barn"
    assert config_from_mapping(doc).site_id == "barn"


@pytest.mark.parametrize("site_id, shown, why", [
    ("", '""', "is empty"),
    ("a/b", '"a/b"', "contains '/'"),
    ("a+b", '"a+b"', "contains '+'"),
    ("#", '"#"', "contains '#'"),
    ("x\n", '"x\\n"', "contains '\\n'"),
    ("é" * 40, '"' + "é" * 40 + '"', "is longer than 64 bytes"),
    (7, "7", "is not a string"),
    (True, "true", "is not a string"),
])
def test_a_site_id_is_one_mqtt_topic_level(site_id: object, shown: str, why: str) -> None:
    (line,) = lines(site(id=site_id))
    assert line.startswith(f"site.id: {shown} {why}")


@pytest.mark.parametrize("key", ["main_limit_a", "margin_a", "fallback_a", "raise_step_a", "deadband_a",
                                 "resolution_a"])
@pytest.mark.parametrize("value, shown, why", [
    ("80", '"80"', "is not a current in A"),
    (True, "true", "is not a current in A"),
    (float("nan"), "nan", "is not a finite current"),
    (float("inf"), "inf", "is not a finite current"),
    (24.05, "24.05", "has more than one decimal (0.1 A resolution)"),
    ([1], "an array", "is not a current in A"),
])
def test_a_current_that_is_not_one(key: str, value: object, shown: str, why: str) -> None:
    assert budget_lines(**{key: value}) == [f"budget.{key}: {shown} {why}"]


@pytest.mark.parametrize("key", ["setpoint_ttl_s", "raise_hold_s", "raise_hold_max_s", "align_s"])
@pytest.mark.parametrize("value, shown, why", [
    ("60", '"60"', "is not a number"),
    (False, "false", "is not a number"),
    (float("nan"), "nan", "is not a finite number"),
    (float("-inf"), "-inf", "is not a finite number"),
])
def test_a_time_that_is_not_a_number(key: str, value: object, shown: str, why: str) -> None:
    assert budget_lines(**{key: value}) == [f"budget.{key}: {shown} {why}"]


@pytest.mark.parametrize("budget, expected", [
    ({"main_limit_a": 0}, "budget.main_limit_a: 0 must be a current above 0 and at most 1638.3 A"),
    ({"main_limit_a": 2000.0}, "budget.main_limit_a: 2000.0 must be a current above 0 and at most 1638.3 A"),
    ({"margin_a": -1}, "budget.margin_a: -1 must be a current of at least 0 and at most 1638.3 A"),
    ({"fallback_a": -6}, "budget.fallback_a: -6 must be a current of at least 0 and at most 1638.3 A"),
    ({"raise_step_a": 1e9}, "budget.raise_step_a: 1000000000.0 must be a current of at least 0 and at most 1638.3 A"),
    ({"resolution_a": 0}, "budget.resolution_a: 0 must be 0.1-10 A"),
    ({"resolution_a": 20}, "budget.resolution_a: 20 must be 0.1-10 A"),
    ({"setpoint_ttl_s": 0}, "budget.setpoint_ttl_s: 0 must be a number of seconds above 0 and at most 86400"),
    ({"setpoint_ttl_s": 1e308}, "budget.setpoint_ttl_s: 1e+308 must be a number of seconds above 0 and at most 86400"),
    ({"raise_hold_s": -15, "raise_hold_max_s": 300},
     "budget.raise_hold_s: -15 must be a number of seconds above 0 and at most 3600"),
    ({"raise_hold_max_s": 7200}, "budget.raise_hold_max_s: 7200 must be a number of seconds above 0 and at most 3600"),
    ({"align_s": 11}, "budget.align_s: 11 must be a number of seconds above 0 and at most 10"),
])
def test_out_of_range(budget: dict[str, Any], expected: str) -> None:
    assert budget_lines(**budget) == [expected]


def test_unknown_keys_and_sub_tables_that_are_not_tables() -> None:
    assert budget_lines(colour="red", meter=5, mqtt=[]) == [
        "budget.colour: unknown key (known: align_s, deadband_a, fallback_a, main_limit_a, margin_a, meter, mqtt, "
        "raise_hold_max_s, raise_hold_s, raise_step_a, resolution_a, setpoint_ttl_s)",
        "budget.meter: 5 must be a table",
        "budget.mqtt: an array must be a table",
    ]
    doc = site()
    doc["budget"] = 4
    assert lines(doc) == ["budget: 4 must be a table"]
    doc["site"]["ident"] = "garage"
    assert lines(doc)[0].startswith("site.ident: unknown key (known: breaker_a, id, limit_a, ")


def test_every_problem_is_reported_in_file_order() -> None:
    doc = site({"main_limit_a": "80", "margin_a": -1, "fallback_a": 24.05, "setpoint_ttl_s": 0,
                "raise_hold_s": True, "colour": "red"}, id="a/b")
    doc["timing"] = {"tick_period": 0}
    assert [line.split(":")[0] for line in lines(doc)] == [
        "site.id", "budget.colour", "budget.main_limit_a", "budget.fallback_a", "budget.raise_hold_s",
        "budget.margin_a", "budget.setpoint_ttl_s", "timing.tick_period"]


def test_the_fallback_is_required() -> None:
    assert lines(site({"main_limit_a": 80.0})) == [
        "budget.fallback_a: is missing (the current the EVSE circuit may always take, used while a source is stale)"]


def test_a_meter_needs_the_main_limit_and_setpoints_alone_do_not() -> None:
    meter = {"kind": "sdm630", "tcp": "127.0.0.1:5020"}
    assert lines(site({"fallback_a": 24.0}, meter=meter)) == [
        "budget.main_limit_a: is missing: a mains meter ([budget.meter]) needs the main service's continuous limit "
        "(per phase)"]
    assert lines(site({"fallback_a": 24.0}, mqtt={"broker": "127.0.0.1"})) == []


def test_the_fallback_fits_under_the_static_limit() -> None:
    assert budget_lines(fallback_a=64.0) == [
        "budget.fallback_a: 64.0 is above the site's limit 63 A: the fallback is part of what the EVSE circuit may take"]
    assert budget_lines(fallback_a=63) == []
    # a limit of 32 A, 80 % of the breaker
    assert lines(site({"main_limit_a": 80.0, "fallback_a": 33.0}) | {"site": {"breaker_a": 40}}) == [
        "budget.fallback_a: 33.0 is above the site's limit 32 A: the fallback is part of what the EVSE circuit may take"]


def test_the_standalone_failsafes_fit_the_fallback() -> None:
    assert budget_lines(fallback_a=20.0) == [
        "budget.fallback_a: 20.0 is below the servants' standalone failsafe currents, which sum to 24 A: servants "
        "without a master could take more than the fallback; lower some failsafe_a (0 = pause) or raise fallback_a"]
    assert budget_lines(fallback_a=24) == []
    doc = site({"main_limit_a": 80.0, "fallback_a": 0})
    for s in doc["servant"]:
        s["failsafe_a"] = 0
    assert lines(doc) == []  # fallback 0: cars pause while a source is stale


def test_a_failsafe_that_cannot_be_read_does_not_make_a_second_line() -> None:
    doc = site({**BUDGET, "fallback_a": 20.0})
    doc["servant"][0]["failsafe_a"] = "six"
    assert lines(doc) == ['servant[0].failsafe_a: "six" is not a current in A']


def test_the_margin_is_below_the_main_limit_and_the_fallback_fits_under_both() -> None:
    assert budget_lines(margin_a=80.0) == [
        "budget.margin_a: 80.0 is not below main_limit_a 80 A: nothing would be left"]
    assert lines(site({"main_limit_a": 25.0, "margin_a": 2.0, "fallback_a": 24.0})) == [
        "budget.fallback_a: 24.0 does not fit under main_limit_a - margin_a (23 A): even an idle house would overload "
        "the main service"]
    assert budget_lines(main_limit_a="80", margin_a=90) == ['budget.main_limit_a: "80" is not a current in A']


def test_the_raise_hold_outlasts_the_compliance_window() -> None:
    assert budget_lines(raise_hold_s=6.0) == [
        "budget.raise_hold_s: 6.0 s is shorter than the compliance window 6.05 s (reaction_allowance + ack_timeout + "
        "tick_period): a raise could come before the last cut has taken effect"]
    slow_cars = site()
    slow_cars["timing"] = {"reaction_allowance": 20.0}
    assert lines(slow_cars) == [
        "budget.raise_hold_s: 15 s is shorter than the compliance window 21.05 s (reaction_allowance + ack_timeout + "
        "tick_period): a raise could come before the last cut has taken effect"]
    slow_cars["timing"] = {"reaction_allowance": "twenty"}
    assert lines(slow_cars) == ['timing.reaction_allowance: "twenty" is not a number']
    assert budget_lines(raise_hold_s=60.0, raise_hold_max_s=30.0) == [
        "budget.raise_hold_max_s: 30.0 s is below raise_hold_s 60 s"]
    assert budget_lines(raise_hold_s=600.0) == []  # the maximum follows a long hold by default


def test_steps_and_the_deadband_are_not_finer_than_the_resolution() -> None:
    assert budget_lines(resolution_a=1.0, raise_step_a=0.5, deadband_a=0.5) == [
        "budget.raise_step_a: 0.5 is below resolution_a 1 A: a raise could not move the limit",
        "budget.deadband_a: 0.5 is below resolution_a 1 A: meter noise would make the limit chatter",
    ]
    assert budget_lines(resolution_a=0.0, raise_step_a=0.5) == ["budget.resolution_a: 0.0 must be 0.1-10 A"]


def test_a_config_built_in_code_meets_the_same_rules() -> None:
    servants = tuple(ServantConfig(a, failsafe_da=60) for a in (1, 2, 3, 4))
    good = Config(630, servants, budget=BudgetConfig(fallback_da=240, main_limit_da=800), site_id="garage")
    validate(good)
    for change, expected in [
        ({"fallback_da": 200}, "budget.fallback_a: 20 is below the servants' standalone failsafe currents"),
        ({"fallback_da": 700}, "budget.fallback_a: 70 is above the site's limit 63 A"),
        ({"raise_hold_s": 1.0}, "budget.raise_hold_s: 1 s is shorter than the compliance window"),
        ({"meter": MeterSettings(MeterKind.SDM630, TcpEndpoint("h", 502), SDM630), "main_limit_da": None},
         "budget.main_limit_a: is missing"),
        ({"meter": MeterSettings(MeterKind.SDM630, TcpEndpoint("h", 502), SDM630, poll_s=-1)},
         "budget.meter.poll_s: -1 must be a number of seconds above 0"),
    ]:
        assert good.budget is not None
        with pytest.raises(ConfigError, match="^" + expected.replace("(", r"\(").replace(")", r"\)")):
            validate(dataclasses.replace(good, budget=dataclasses.replace(good.budget, **change)))
    with pytest.raises(ConfigError, match="^site.id: \"a/b\" contains '/'"):
        validate(dataclasses.replace(good, site_id="a/b"))
    assert Timing().reaction_allowance == 5.0  # the window above: 5 + 1 + 0.05 s
