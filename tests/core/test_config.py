"""The installation config: defaults, parsing, and one clear line for every mistake (key path, value as written)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busshare.core.config import Config
from busshare.core.config import ConfigError
from busshare.core.config import ServantConfig
from busshare.core.config import Timing
from busshare.core.config import config_from_mapping
from busshare.core.config import load_config
from busshare.core.config import parse_config
from busshare.core.config import problems
from busshare.core.config import validate

ROOT = Path(__file__).resolve().parents[2]


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
    assert error(site(site_extra="limit_a = 65")) == "site.limit_a: 65 is above 80 % of breaker_a 80 A (64 A)"


def test_min_below_6_a() -> None:
    assert error(site("[[servant]]\naddress = 3\nmax_a = 32\nmin_a = 5\n")) == \
        "servant[0].min_a: 5 is below 6 A (a pilot offers 6-80 A)"


def test_max_above_80_a() -> None:
    assert error(site("[[servant]]\naddress = 2\nmax_a = 81\n")) == \
        "servant[0].max_a: 81 is above 80 A (a pilot offers 6-80 A)"


def test_min_above_max() -> None:
    assert error(site("[[servant]]\naddress = 2\nmax_a = 10\nmin_a = 16\n")) == \
        "servant[0].min_a: 16 is above max_a 10"


def test_duplicate_addresses() -> None:
    text = site("[[servant]]\naddress = 5\nmax_a = 16\n[[servant]]\naddress = 5\nmax_a = 32\n")
    assert error(text) == "servant[1].address: 5 is also the address of servant[0]"


def test_sum_of_standalone_failsafe_above_limit() -> None:
    servants = "".join(f"[[servant]]\naddress = {a}\nmax_a = 32\nfailsafe_a = 6\n" for a in range(1, 13))
    msg = error(site(servants))  # 12 x 6 A = 72 A on a 64 A limit
    assert msg.startswith("servant: the standalone failsafe currents (failsafe_a) sum to 72 A, above the limit 64 A")


def test_twelve_evses_fit_when_some_pause_on_failsafe() -> None:
    servants = "".join(f"[[servant]]\naddress = {a}\nmax_a = 32\nfailsafe_a = {6 if a <= 10 else 0}\n"
                       for a in range(1, 13))
    assert sum(s.failsafe_da for s in parse_config(site(servants)).servants) == 600


def test_heartbeat_not_well_below_failsafe_timeout() -> None:
    msg = error(site(timing="heartbeat_period = 0.6\nfailsafe_timeout = 1.5"))
    assert msg.startswith("timing.heartbeat_period: 0.6 s is not well below failsafe_timeout 1.5 s")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[site]\nbreaker_a = 80\n", "servant: no servants: add at least one [[servant]] table"),
        ("", "the installation is empty: no [site] and no servants (see examples/site.toml)"),
        ("[site]\n[[servant]]\naddress = 1\nmax_a = 16\n", "site: give breaker_a (the limit is 80 % of it) or limit_a"),
        (site("[[servant]]\naddress = 63\nmax_a = 16\n"), "servant[0].address: 63 must be 1-62"),
        (site("[[servant]]\naddress = true\nmax_a = 16\n"), "servant[0].address: true is not an integer"),
        (site("[[servant]]\naddress = 1\n"), "servant[0].max_a: is missing (the unit's rated current)"),
        (site("[[servant]]\naddress = 1\nmax_a = 16\nfailsafe_a = 20\n"),
         "servant[0].failsafe_a: 20 must be 0 (pause) or 6 A up to max_a (16 A)"),
        (site("[[servant]]\naddress = 1\nmax_a = 16\nmax_current = 3\n"),
         "servant[0].max_current: unknown key (known: address, failsafe_a, max_a, meter, min_a, priority, serial, "
         "tolerance_a)"),
        (site("[[servant]]\naddress = 1\nmax_a = '16'\n"), 'servant[0].max_a: "16" is not a current in A'),
        (site("[[servant]]\naddress = 1\nmax_a = 16.25\n"),
         "servant[0].max_a: 16.25 has more than one decimal (0.1 A resolution)"),
        (site("[[servant]]\naddress = 1\nmax_a = 16\npriority = 300\n"), "servant[0].priority: 300 must be 0-255"),
        (site(timing="failsafe_timeout = -1"),
         "timing.failsafe_timeout: -1 must be a number of seconds 0.001-86400"),
        (site(timing="hearbeat_period = 0.1").replace("\n[[servant]]", "\n[[servant]]", 1),
         "timing.hearbeat_period: unknown key (known: ack_timeout, conflict_hold, failsafe_hold, failsafe_timeout, "
         "heard_timeout, heartbeat_period, reaction_allowance, reclaim_after, rotation_interval, servant_silent_after, "
         "silent_margin, status_period, tick_period)"),
        (site(site_extra="limit_a = 4"), "site.limit_a: 4 is below 6 A: no EV could ever charge"),
        (site(breaker="breaker_a = 5"), "site.breaker_a: 5 gives a limit of 4 A (80 %), which is below 6 A: no EV "
         "could ever charge"),
        ("[site\n", "not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 6)"),
    ],
)
def test_other_mistakes_are_one_clear_line(text: str, expected: str) -> None:
    assert error(text) == expected


def test_load_config_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.toml")
    assert str(exc.value) == f"{tmp_path / 'nope.toml'}: cannot read config: No such file or directory"


def test_load_config_names_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "latin1.toml"
    p.write_bytes(site().encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value).startswith(f"{p}: the file is not UTF-8 text (byte 0xe9 at offset")


def test_load_config_prefixes_the_path(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(site(site_extra="limit_a = 70"))
    with pytest.raises(ConfigError, match=r"bad\.toml: site\.limit_a: 70 is above 80 %"):
        load_config(p)


def test_validate_checks_configs_built_in_code() -> None:
    with pytest.raises(ConfigError, match=r"servant\[0\]\.min_a: 4 is below 6 A"):
        validate(Config(limit_da=320, servants=(ServantConfig(1, min_da=40, max_da=160),)))


@given(st.text(max_size=300))
def test_any_text_gives_a_config_or_one_line_error(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)


# ---------------------------------------------------------------------------
# issue 11: every number checked (finite, sane), named by file and key, shown as written

SITE_NUMBERS = ["breaker_a", "limit_a", "master_id", "reclaim_margin_a", "reclaim_threshold_a"]
SERVANT_NUMBERS = ["address", "min_a", "max_a", "priority", "failsafe_a", "serial", "tolerance_a"]
TIMING_NUMBERS = [f.name for f in dataclasses.fields(Timing)]
BAD_NUMBERS = {"nan": "nan", "inf": "inf", "-inf": "-inf", "1e308": "1e+308", "-6": "-6", "true": "true",
               "99999999999999999": "99999999999999999", '"big"': '"big"'}


def numbered_site(table: str, key: str, value: str) -> str:
    base = {"site": "breaker_a = 80\n", "servant": "address = 1\nmax_a = 32\n", "timing": ""}
    lines = {t: "\n".join(x for x in text.splitlines() if not x.startswith(f"{key} ")) for t, text in base.items()}
    lines[table] += f"\n{key} = {value}"
    return f"[site]\n{lines['site']}\n[timing]\n{lines['timing']}\n[[servant]]\n{lines['servant']}\n"


@pytest.mark.parametrize("value", list(BAD_NUMBERS))
@pytest.mark.parametrize(("table", "key", "path"), [
    *(("site", k, f"site.{k}") for k in SITE_NUMBERS),
    *(("servant", k, f"servant[0].{k}") for k in SERVANT_NUMBERS),
    *(("timing", k, f"timing.{k}") for k in TIMING_NUMBERS),
])
def test_a_bad_number_anywhere_is_one_line_naming_the_file_the_key_and_the_value(
        tmp_path: Path, table: str, key: str, path: str, value: str) -> None:
    p = tmp_path / "site.toml"
    p.write_text(numbered_site(table, key, value))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}: {path}: {BAD_NUMBERS[value]} "), msg


def test_the_problems_of_a_mapping_are_all_listed_with_their_key_paths() -> None:
    doc = {"site": {"breaker_a": -80}, "timing": {"tick_period": float("nan")},
           "servant": [{"address": 1, "max_a": 32, "min_a": -6, "serial": 5},
                       {"address": True, "max_a": "big", "serial": 5},
                       {"address": 3, "max_a": 16, "serial": 5}]}
    found = [str(p) for p in problems(doc)]
    assert found == [
        "site.breaker_a: -80 must be a current above 0 and at most 10000 A",
        "timing.tick_period: nan is not a finite number",
        "servant[0].min_a: -6 is below 6 A (a pilot offers 6-80 A)",
        "servant[1].address: true is not an integer",
        'servant[1].max_a: "big" is not a current in A',
        "servant[1].serial: 5 is also the serial of servant[0]",
        "servant[2].serial: 5 is also the serial of servant[0]",
    ]
    with pytest.raises(ConfigError) as exc:
        config_from_mapping(doc, "x.toml")
    assert str(exc.value) == "x.toml: site.breaker_a: -80 must be a current above 0 and at most 10000 A"
    assert (exc.value.key, exc.value.path) == ("site.breaker_a", "x.toml")


def test_a_mapping_becomes_the_same_config_as_its_text() -> None:
    doc = {"site": {"breaker_a": 40}, "servant": [{"address": 7, "max_a": 16.5, "min_a": 8, "failsafe_a": 0,
                                                   "priority": 3, "serial": 0x1234, "meter": False}]}
    assert config_from_mapping(doc) == parse_config(
        "[site]\nbreaker_a = 40\n[[servant]]\naddress = 7\nmax_a = 16.5\nmin_a = 8\nfailsafe_a = 0\npriority = 3\n"
        "serial = 0x1234\nmeter = false\n")


toml_scalars = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(), st.text(max_size=4))
any_servant = st.dictionaries(st.sampled_from(["address", "min_a", "max_a", "priority", "failsafe_a", "serial",
                                               "meter", "tolerance_a", "colour"]),
                              st.one_of(toml_scalars, st.integers(0, 70)), max_size=6)
any_document = st.fixed_dictionaries({}, optional={
    "site": st.dictionaries(st.sampled_from(SITE_NUMBERS), st.one_of(toml_scalars, st.integers(0, 200))),
    "timing": st.dictionaries(st.sampled_from(TIMING_NUMBERS), toml_scalars, max_size=3),
    "servant": st.one_of(st.lists(any_servant, max_size=4), toml_scalars),
})


@given(any_document)
def test_any_mapping_gives_a_config_or_its_problems_never_an_exception(doc: dict[str, object]) -> None:
    found = problems(doc)
    try:
        cfg = config_from_mapping(doc)
    except ConfigError as exc:
        assert found and str(exc) == str(found[0])
    else:
        assert found == []
        validate(cfg)  # what was built from a mapping passes the rules for configs built in code
    assert all(str(p) and "\n" not in str(p) for p in found)
    assert len({str(p) for p in found}) == len(found), "one problem, one line"
