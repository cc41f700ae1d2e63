"""`busshare check-config`: every problem on its own line (exit 1); a valid installation explained (exit 0)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.config import ConfigError
from busshare.core.config import config_from_mapping
from busshare.core.config import problems
from tests.support.site_files import site_toml

ROOT = Path(__file__).resolve().parents[2]

GOOD = site_toml((1, 2), breaker_a=80, max_a=32) + "failsafe_a = 10\nmeter = false\n"  # servant 2's own keys


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "busshare", "check-config", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_a_valid_installation_is_explained(tmp_path: Path) -> None:
    r = cli(str(write(tmp_path, GOOD)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith(": ok")
    assert "limit 64.0 A (breaker 80 A)" in r.stdout
    assert "servant  2: 6.0-32.0 A, failsafe 10.0 A, priority 0, no meter" in r.stdout
    assert "failsafe currents sum to 16.0 A" in r.stdout
    j = json.loads(cli("--json", str(write(tmp_path, GOOD))).stdout)
    assert j["ok"] is True and j["problems"] == [] and j["limit_a"] == 64.0 and len(j["servants"]) == 2
    assert j["busload_125k_worst_percent"] < 10


# one file, each line a different problem: all of them must be reported
PROBLEMS = {
    'colour = "blue"': "colour: unknown key",
    "[site]\nbreaker_a = 80\nlimit_a = 70": "site.limit_a: 70 is above 80 % of breaker_a 80 A",
    "[timing]\nheartbeat_period = 1.0": "timing.heartbeat_period: 1.0 s is not well below",
    "[[servant]]\naddress = 0\nmax_a = 32": "servant[0].address: 0 must be 1-62",
    "[[servant]]\naddress = 2\nmax_a = 32\nmin_a = 5": "servant[1].min_a: 5 is below 6 A",
    "[[servant]]\naddress = 3\nmax_a = 32\nmin_a = 40": "servant[2].min_a: 40 is above max_a 32",
    "[[servant]]\naddress = 4\nmax_a = 90": "servant[3].max_a: 90 is above 80 A",
    "[[servant]]\naddress = 5\nmax_a = 32\ncolour = 1": "servant[4].colour: unknown key",
    "[[servant]]\naddress = 6": "servant[5].max_a: is missing",
    "[[servant]]\naddress = 7\nmax_a = 32\nfailsafe_a = 3": "servant[6].failsafe_a: 3 must be 0 (pause)",
}


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    # the top-level key first, then the tables; servant 7 twice (a duplicate address)
    text = 'colour = "blue"\n' + "\n".join(k for k in PROBLEMS if not k.startswith("colour")) + (
        "\n[[servant]]\naddress = 7\nmax_a = 16\n")
    r = cli(str(write(tmp_path, text)))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    # a 1 s heartbeat also leaves the default heard_timeout (3 s) under two rounds of the heard pages
    also = ["servant[7].address: 7 is also the address of servant[6]", "timing.heard_timeout: 3.5 s is under two rounds"]
    for needle in [*PROBLEMS.values(), *also]:
        assert sum(line.split(": ", 1)[1].startswith(needle) for line in lines) == 1, (needle, r.stdout)
    assert lines[-1].endswith(f"{len(PROBLEMS) + len(also)} problems")
    j = json.loads(cli("--json", str(write(tmp_path, text))).stdout)
    assert j["ok"] is False and len(j["problems"]) == len(PROBLEMS) + len(also)


@pytest.mark.parametrize("text,needle", [
    ("[site\n", "not valid TOML"),
    ("[site]\nbreaker_a = 80\n", "no servants"),
    ("", "no servants"),
    ("# nothing yet\n", "no servants"),
    ("[site]\nlimit_a = 20\n" + "".join(f"[[servant]]\naddress = {a}\nmax_a = 32\nfailsafe_a = 10\n" for a in (1, 2, 3)),
     "the standalone failsafe currents (failsafe_a) sum to 30 A"),
    ("[[servant]]\naddress = 1\nmax_a = 32\n", "give breaker_a"),
])
def test_whole_file_problems(tmp_path: Path, text: str, needle: str) -> None:
    r = cli(str(write(tmp_path, text)))
    assert r.returncode == 1
    assert needle in r.stdout and "Traceback" not in r.stderr


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    r = cli(str(tmp_path / "nope.toml"))
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "nope.toml" in r.stderr


scalars = st.one_of(st.integers(-5, 2000), st.floats(-10, 2000, allow_nan=False), st.booleans(),
                    st.text("ab", max_size=3))
servant_tables = st.fixed_dictionaries(
    {"address": st.integers(-1, 64)},
    optional={"max_a": st.one_of(st.integers(0, 100), scalars), "min_a": st.integers(0, 40),
              "failsafe_a": st.integers(0, 40), "priority": st.integers(-1, 300), "meter": st.booleans(),
              "tolerance_a": st.integers(0, 20), "colour": scalars},
)
budget_tables = st.fixed_dictionaries(
    {},
    optional={
        "main_limit_a": st.one_of(st.integers(0, 120), scalars), "margin_a": st.integers(-1, 90),
        "fallback_a": st.one_of(st.integers(0, 100), scalars), "setpoint_ttl_s": st.one_of(st.integers(-1, 100), scalars),
        "raise_hold_s": st.floats(0, 30), "resolution_a": st.sampled_from([0, 0.5, 1, 11]), "colour": scalars,
        "meter": st.fixed_dictionaries({"kind": st.sampled_from(["sdm630", "sdm120", "sdm9"])},
                                       optional={"tcp": st.sampled_from(["127.0.0.1:5020", "h:0"]),
                                                 "serial": st.just("/dev/ttyUSB0"), "poll_s": st.floats(0, 4),
                                                 "device_id": st.integers(-1, 300)}),
        "mqtt": st.fixed_dictionaries({}, optional={"broker": st.sampled_from(["127.0.0.1", "h:x"]),
                                                    "password": st.just("pw"), "keepalive_s": st.integers(0, 40)}),
    },
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "site": st.fixed_dictionaries({}, optional={"breaker_a": st.integers(0, 200), "limit_a": st.integers(0, 200),
                                                   "master_id": st.integers(-1, 300),
                                                   "id": st.sampled_from(["garage", "a/b", "", 7])}),
        "budget": budget_tables,
        "timing": st.fixed_dictionaries({}, optional={"heartbeat_period": st.floats(0.01, 2),
                                                     "failsafe_timeout": st.floats(0.01, 5)}),
        "servant": st.lists(servant_tables, max_size=5),
    },
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_problems_agree_with_the_validator_and_are_one_line_each(doc: dict) -> None:  # type: ignore[type-arg]
    found = problems(doc)
    try:
        config_from_mapping(doc)
        valid = True
    except ConfigError as exc:
        valid = False
        assert found, f"validator says {exc} but check-config found nothing"
        assert str(found[0]) == str(exc), "the first problem is the one the master refuses to start with"
    if valid:
        assert found == []
    assert all("\n" not in str(p) and str(p) for p in found)


def test_several_problems_in_one_servant_are_all_reported(tmp_path: Path) -> None:
    text = "[site]\nbreaker_a = 80\n[[servant]]\naddress = 2\nmax_a = 90\nmin_a = 5\npriority = 999\ncolour = 1\n"
    r = cli(str(write(tmp_path, text)))
    assert r.returncode == 1
    for needle in ("servant[0].min_a: 5 is below 6 A", "servant[0].max_a: 90 is above 80 A",
                   "servant[0].priority: 999 must be 0-255", "servant[0].colour: unknown key"):
        assert needle in r.stdout, (needle, r.stdout)


# issue 11: the values of issue 11, and their kin, each on its own line naming the key, never a traceback
@pytest.mark.parametrize(("text", "lines"), [
    ("[site]\nbreaker_a = 1e308\n[[servant]]\naddress = 1\nmax_a = 32\n",
     ["site.breaker_a: 1e+308 must be a current above 0 and at most 10000 A"]),
    ("[site]\nbreaker_a = nan\n[[servant]]\naddress = 1\nmax_a = 32\n", ["site.breaker_a: nan is not a finite current"]),
    ("[site]\nbreaker_a = -80\n[[servant]]\naddress = 1\nmax_a = 32\nmin_a = -6\n",
     ["site.breaker_a: -80 must be a current above 0 and at most 10000 A",
      "servant[0].min_a: -6 is below 6 A (a pilot offers 6-80 A)"]),
    ("[site]\nlimit_a = 64\n[[servant]]\naddress = 1\nmax_a = 32\nserial = 5\n[[servant]]\naddress = 2\nmax_a = 32\n"
     "serial = 5\nmin_a = 50\n",
     ["servant[1].min_a: 50 is above max_a 32", "servant[1].serial: 5 is also the serial of servant[0]"]),
    ("[site]\nlimit_a = 64\n[[servant]]\naddress = true\nmax_a = 32\n", ["servant[0].address: true is not an integer"]),
    ("[site]\nlimit_a = 64\n[timing]\nfailsafe_timeout = 1e308\n[[servant]]\naddress = 1\nmax_a = 32\n",
     ["timing.failsafe_timeout: 1e+308 must be a number of seconds 0.001-86400"]),
    ("[site]\nlimit_a = 1e308\n[[servant]]\naddress = 1\nmax_a = 32\n",
     ["site.limit_a: 1e+308 is above 1638.3 A, the largest limit a heartbeat carries"]),
])
def test_issue_11_values_are_listed_as_written(tmp_path: Path, text: str, lines: list[str]) -> None:
    path = write(tmp_path, text)
    r = cli(str(path))
    assert r.returncode == 1 and r.stderr == "", r.stderr
    assert r.stdout.splitlines() == [f"{path}: {line}" for line in lines] + [
        f"{path}: {len(lines)} problem{'s' if len(lines) > 1 else ''}"]


def test_a_key_with_control_characters_is_spelt_as_toml_quotes_it(tmp_path: Path) -> None:
    """An unknown key is named as written, quoted and escaped: no raw ESC or BEL reaches the terminal."""
    path = write(tmp_path, GOOD.replace("[site]\n", '[site]\n"\\u001b[2Jx\\u0007" = 1\n"two words" = 2\n'))
    r = cli(str(path))
    assert r.returncode == 1 and not any(ch in r.stdout for ch in "\x1b\x07"), repr(r.stdout)
    assert f'{path}: site."\\u001b[2Jx\\u0007": unknown key' in r.stdout, r.stdout
    assert f'{path}: site."two words": unknown key' in r.stdout, r.stdout


@pytest.mark.parametrize("key", ["tick_period", "status_period", "heartbeat_period"])
def test_a_timer_under_a_millisecond_is_a_problem(tmp_path: Path, key: str) -> None:
    """1e-300 s passed as "ok" (a busy loop, and a bus load printed with 300 digits)."""
    path = write(tmp_path, GOOD.replace("[[servant]]", f"[timing]\n{key} = 1e-300\n\n[[servant]]", 1))
    r = cli(str(path))
    assert r.returncode == 1, r.stdout
    assert f"{path}: timing.{key}: 1e-300 must be a number of seconds 0.001-86400" in r.stdout, r.stdout


def test_a_bus_load_above_100_percent_is_noted(tmp_path: Path) -> None:
    """busload warns when the bus cannot carry the traffic; check-config, which prints the load, says so too."""
    timing = "[timing]\nheartbeat_period = 0.002\nstatus_period = 0.002\ntick_period = 0.001\n\n[[servant]]"
    path = write(tmp_path, GOOD.replace("[[servant]]", timing, 1))
    r = cli(str(path))
    assert r.returncode == 0, r.stdout
    load = next(line for line in r.stdout.splitlines() if line.startswith("CAN bus load at 125 kbit/s: "))
    percent = float(load.split(": ")[1].split(" %")[0])
    assert percent > 100
    assert (f"note: at 125 kbit/s the worst case needs {percent:.0f} % of the bus: raise heartbeat_period and "
            "status_period, or use a faster bus") in r.stdout, r.stdout
    plain = cli("examples/site.toml")
    assert "of the bus" not in plain.stdout


def test_a_file_that_is_not_utf8_is_one_problem_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes(GOOD.encode() + b"# caf\xe9\n")
    r = cli(str(path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stdout.splitlines()[0].startswith(f"{path}: the file is not UTF-8 text (byte 0xe9")
def test_the_shipped_example_is_clean() -> None:
    """examples/site.toml is what users copy: it passes without a single note to explain away."""
    r = cli("examples/site.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("examples/site.toml: ok\n")
    assert "note:" not in r.stdout and r.stderr == "", r.stdout


# ---------------------------------------------------------------------------
# a moving budget (issue 13): validated with the rest, and explained in plain words

MAINS = ROOT / "examples" / "site-mains.toml"


def test_the_mains_example_is_clean_and_its_budget_explained() -> None:
    r = cli(str(MAINS))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "note:" not in r.stdout, "the example shows a clean installation"
    text = r.stdout
    for needle in [
        'moving budget (site id "garage"):',
        "the EVSEs share the least of the static limit 32.0 A, what the mains meter leaves and a fresh setpoint",
        "main service 63.0 A per phase, 2.0 A kept free: the EVSEs get at most 61.0 A minus what the house draws",
        "fallback 18.0 A: what the EVSE circuit may always take, even with the house at its maximum",
        "the standalone failsafe currents (18.0 A) fit under it",
        "mains meter: an Eastron SDM630 (three-phase) over Modbus TCP at 127.0.0.1:5020, device id 1, read every 1 s",
        "no good reading for 5 s: fall back to 18.0 A",
        "MQTT broker 127.0.0.1:1883 (no TLS, no login): setpoints in on busshare/garage/limit/set (valid 60 s",
        "the effective limit out, retained, on busshare/garage/limit",
        "within 6.05 s",
    ]:
        assert needle in text, (needle, text)
    j = json.loads(cli("--json", str(MAINS)).stdout)
    assert j["ok"] is True and j["notes"] == [] and j["site_id"] == "garage"
    b = j["budget"]
    assert (b["main_limit_a"], b["margin_a"], b["fallback_a"], b["setpoint_ttl_s"]) == (63.0, 2.0, 18.0, 60.0)
    assert b["meter"] == {"kind": "sdm630", "phases": 3, "tcp": "127.0.0.1:5020", "serial": None, "device_id": 1,
                          "poll_s": 1.0, "timeout_s": 5.0, "request_timeout_s": 1.0, "frozen_s": 60.0}
    assert (b["mqtt"]["setpoint_topic"], b["mqtt"]["limit_topic"]) == ("busshare/garage/limit/set",
                                                                       "busshare/garage/limit")
    assert [f"  {line}" for line in b["meaning"]] == text.splitlines()[-len(b["meaning"]):]  # the same words


def test_a_file_without_a_budget_says_nothing_of_one(tmp_path: Path) -> None:
    r = cli(str(write(tmp_path, GOOD)))
    assert "budget" not in "".join(r.stdout.splitlines(keepends=True)[1:])  # (the first line names the file)
    j = json.loads(cli("--json", str(write(tmp_path, GOOD))).stdout)
    assert (j["budget"], j["site_id"]) == (None, "site")


def test_a_serial_generic_meter_and_setpoints_alone_are_explained(tmp_path: Path) -> None:
    text = GOOD + """
[budget]
main_limit_a = 40
fallback_a = 16
[budget.meter]
kind = "generic"
serial = "/dev/ttyUSB0"
parity = "even"
device_id = 7
[[budget.meter.phase]]
current = { register = 0x0100, function = 3, type = "int32", word_order = "little", scale = 0.001 }
"""
    r = cli(str(write(tmp_path, text)))
    assert r.returncode == 0, r.stdout
    assert ("mains meter: a generic meter (1 phase, its registers from the site file) over Modbus RTU on "
            "/dev/ttyUSB0 at 9600 baud 8E1, device id 7") in r.stdout
    assert "setpoint" not in r.stdout
    setpoints = GOOD + '[budget]\nfallback_a = 16\n[budget.mqtt]\nbroker = "h"\n'
    r = cli(str(write(tmp_path, setpoints)))
    assert r.returncode == 0, r.stdout
    assert "the EVSEs share the least of the static limit 64.0 A and a fresh setpoint" in r.stdout
    assert "main service" not in r.stdout and "mains meter" not in r.stdout
    assert 'note: the site id is the default "site": give [site] id' in r.stdout


def test_a_budget_with_no_source_is_noted(tmp_path: Path) -> None:
    r = cli(str(write(tmp_path, GOOD + "[budget]\nfallback_a = 16\n")))
    assert r.returncode == 0
    assert "note: [budget] has no [budget.meter] and no [budget.mqtt]: the limit never moves" in r.stdout


def test_budget_problems_are_listed_with_their_key_paths(tmp_path: Path) -> None:
    text = MAINS.read_text().replace("fallback_a = 18.0", "fallback_a = 12.0").replace(
        'tcp = "127.0.0.1:5020"', 'tcp = "127.0.0.1:5020"\nbaud = 9600').replace(
        'id = "garage"', 'id = "garage/1"').replace("poll_s = 1.0", "poll_s = nan")
    path = write(tmp_path, text)
    r = cli(str(path))
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        f"{path}: site.id: \"garage/1\" contains '/' (the site id is one MQTT topic level)",
        f"{path}: budget.meter.baud: 9600 is only for a serial meter (serial = ...)",
        f"{path}: budget.meter.poll_s: nan is not a finite number",
        f"{path}: budget.fallback_a: 12.0 is below the servants' standalone failsafe currents, which sum to 18 A: "
        "servants without a master could take more than the fallback; lower some failsafe_a (0 = pause) or raise "
        "fallback_a",
        f"{path}: 4 problems",
    ]
    j = json.loads(cli("--json", str(path)).stdout)
    assert j["ok"] is False and len(j["problems"]) == 4 and "budget" not in j
