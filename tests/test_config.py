"""The installation config: defaults, parsing, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busshare.config import Config, ConfigError, ServantConfig, Timing, load_config, parse_config, validate

ROOT = Path(__file__).resolve().parents[1]


def site(servants: str = "", site_extra: str = "", timing: str = "", breaker: str = "breaker_a = 80") -> str:
    if not servants:
        servants = "".join(f"[[servant]]\naddress = {a}\nmax_a = 32\n" for a in (1, 2, 3, 4))
    return f"[site]\n{breaker}\n{site_extra}\n[timing]\n{timing}\n{servants}"


def error(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    msg = str(exc.value)
    assert "\n" not in msg, "a config error is one line"
    return msg


def test_example_site_loads_with_the_project_defaults() -> None:
    cfg = load_config(ROOT / "examples" / "site.toml")
    assert cfg.limit_da == 640  # 80 % of 80 A
    assert [s.address for s in cfg.servants] == [1, 2, 3, 4]
    assert cfg.timing == Timing()
    assert cfg.servants[3].has_meter is False


def test_default_timing_fails_safe_within_two_seconds() -> None:
    t = Timing()
    assert (t.heartbeat_period, t.failsafe_timeout, t.tick_period, t.reaction_allowance) == (0.2, 1.5, 0.05, 5.0)
    assert t.failsafe_timeout + t.tick_period < 2.0


def test_limit_defaults_to_80_percent_of_the_breaker_and_amps_become_deciamps() -> None:
    cfg = parse_config(site("[[servant]]\naddress = 7\nmax_a = 16.5\nmin_a = 8\nfailsafe_a = 0\npriority = 3\n"
                            "serial = 0x1234\nmeter = false\n", breaker="breaker_a = 40"))
    assert cfg.limit_da == 320
    assert cfg.servants == (ServantConfig(7, min_da=80, max_da=165, priority=3, failsafe_da=0, serial=0x1234,
                                          has_meter=False),)


def test_explicit_lower_limit_is_kept() -> None:
    assert parse_config(site(site_extra="limit_a = 50")).limit_da == 500


def test_limit_above_80_percent_of_breaker() -> None:
    assert error(site(site_extra="limit_a = 65")) == "limit 65.0 A is above 80 % of the 80 A breaker (64.0 A)"


def test_min_below_6_a() -> None:
    assert error(site("[[servant]]\naddress = 3\nmax_a = 32\nmin_a = 5\n")) == "servant 3: min 5.0 A is below 6 A"


def test_max_above_80_a() -> None:
    assert error(site("[[servant]]\naddress = 2\nmax_a = 81\n")) == "servant 2: max 81.0 A is above 80 A"


def test_min_above_max() -> None:
    assert error(site("[[servant]]\naddress = 2\nmax_a = 10\nmin_a = 16\n")) == \
        "servant 2: min 16.0 A is above max 10.0 A"


def test_duplicate_addresses() -> None:
    text = site("[[servant]]\naddress = 5\nmax_a = 16\n[[servant]]\naddress = 5\nmax_a = 32\n")
    assert error(text) == "servant 5: duplicate address"


def test_sum_of_standalone_failsafe_above_limit() -> None:
    servants = "".join(f"[[servant]]\naddress = {a}\nmax_a = 32\nfailsafe_a = 6\n" for a in range(1, 13))
    msg = error(site(servants))  # 12 x 6 A = 72 A on a 64 A limit
    assert msg.startswith("standalone failsafe currents sum to 72.0 A, above the limit 64.0 A")


def test_twelve_evses_fit_when_some_pause_on_failsafe() -> None:
    servants = "".join(f"[[servant]]\naddress = {a}\nmax_a = 32\nfailsafe_a = {6 if a <= 10 else 0}\n"
                       for a in range(1, 13))
    assert sum(s.failsafe_da for s in parse_config(site(servants)).servants) == 600


def test_heartbeat_not_well_below_failsafe_timeout() -> None:
    msg = error(site(timing="heartbeat_period = 0.6\nfailsafe_timeout = 1.5"))
    assert msg.startswith("timing: heartbeat_period 0.6 s is not well below failsafe_timeout 1.5 s")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[site]\nbreaker_a = 80\n", "no servants configured: add at least one [[servant]]"),
        ("[site]\n[[servant]]\naddress = 1\nmax_a = 16\n", "site: give breaker_a (limit = 80 % of it) or limit_a"),
        (site("[[servant]]\naddress = 63\nmax_a = 16\n"), "servant 63: address must be 1-62"),
        (site("[[servant]]\naddress = 1\n"), "servant 1: missing max_a (the unit's rated current)"),
        (site("[[servant]]\naddress = 1\nmax_a = 16\nfailsafe_a = 20\n"),
         "servant 1: failsafe 20.0 A must be 0 (pause) or 6 A up to max 16.0 A"),
        (site("[[servant]]\naddress = 1\nmax_a = 16\nmax_current = 3\n"),
         "servant 1: unknown key 'max_current' (known: address, failsafe_a, max_a, meter, min_a, priority, serial, "
         "tolerance_a)"),
        (site("[[servant]]\naddress = 1\nmax_a = '16'\n"), "servant 1: max_a: '16' is not a current in A"),
        (site("[[servant]]\naddress = 1\nmax_a = 16.25\n"),
         "servant 1: max_a: 16.25 A has more than one decimal (0.1 A resolution)"),
        (site("[[servant]]\naddress = 1\nmax_a = 16\npriority = 300\n"), "servant 1: priority 300 must be 0-255"),
        (site(timing="failsafe_timeout = -1"), "timing.failsafe_timeout: -1.0 must be a positive number of seconds"),
        (site(timing="hearbeat_period = 0.1").replace("\n[[servant]]", "\n[[servant]]", 1),
         "timing: unknown key 'hearbeat_period' (known: ack_timeout, conflict_hold, failsafe_hold, failsafe_timeout, "
         "heard_timeout, heartbeat_period, reaction_allowance, reclaim_after, rotation_interval, servant_silent_after, "
         "silent_margin, status_period, tick_period)"),
        (site(site_extra="limit_a = 4"), "limit 4.0 A is below 6 A: no EV could ever charge"),
        ("[site\n", "not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 6)"),
    ],
)
def test_other_mistakes_are_one_clear_line(text: str, expected: str) -> None:
    assert error(text) == expected


def test_load_config_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.toml")
    assert str(exc.value) == f"{tmp_path / 'nope.toml'}: cannot read config: No such file or directory"


def test_load_config_prefixes_the_path(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(site(site_extra="limit_a = 70"))
    with pytest.raises(ConfigError, match=r"bad\.toml: limit 70\.0 A is above 80 %"):
        load_config(p)


def test_validate_checks_configs_built_in_code() -> None:
    with pytest.raises(ConfigError, match="servant 1: min 4.0 A is below 6 A"):
        validate(Config(limit_da=320, servants=(ServantConfig(1, min_da=40, max_da=160),)))


@given(st.text(max_size=300))
def test_any_text_gives_a_config_or_one_line_error(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)
