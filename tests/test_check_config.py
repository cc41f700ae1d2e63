"""`busshare check-config`: every problem on its own line (exit 1); a valid installation explained (exit 0)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from busshare.commands.check_config import _dump, problems
from busshare.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[site]
breaker_a = 80

[[servant]]
address = 1
max_a = 32

[[servant]]
address = 2
max_a = 32
failsafe_a = 10
meter = false
"""


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
    'colour = "blue"': "config: unknown key 'colour'",
    "[site]\nbreaker_a = 80\nlimit_a = 70": "above 80 % of the 80 A breaker",
    "[timing]\nheartbeat_period = 1.0": "heartbeat_period",
    "[[servant]]\naddress = 0\nmax_a = 32": "servant 0: address must be 1-62",
    "[[servant]]\naddress = 2\nmax_a = 32\nmin_a = 5": "servant 2: min 5.0 A is below 6 A",
    "[[servant]]\naddress = 3\nmax_a = 32\nmin_a = 40": "servant 3: min 40.0 A is above max 32.0 A",
    "[[servant]]\naddress = 4\nmax_a = 90": "servant 4: max 90.0 A is above 80 A",
    "[[servant]]\naddress = 5\nmax_a = 32\ncolour = 1": "servant 5: unknown key 'colour'",
    "[[servant]]\naddress = 6": "servant 6: missing max_a",
    "[[servant]]\naddress = 7\nmax_a = 32\nfailsafe_a = 3": "servant 7: failsafe 3.0 A",
}


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    # the top-level key first, then the tables; servant 7 twice (a duplicate address)
    text = 'colour = "blue"\n' + "\n".join(k for k in PROBLEMS if not k.startswith("colour")) + (
        "\n[[servant]]\naddress = 7\nmax_a = 16\n")
    r = cli(str(write(tmp_path, text)))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    for needle in [*PROBLEMS.values(), "servant 7: duplicate address"]:
        assert sum(needle in line for line in lines) == 1, (needle, r.stdout)
    assert lines[-1].endswith(f"{len(PROBLEMS) + 1} problems")
    j = json.loads(cli("--json", str(write(tmp_path, text))).stdout)
    assert j["ok"] is False and len(j["problems"]) == len(PROBLEMS) + 1


@pytest.mark.parametrize("text,needle", [
    ("[site\n", "not valid TOML"),
    ("[site]\nbreaker_a = 80\n", "no servants configured"),
    ("[site]\nlimit_a = 20\n" + "".join(f"[[servant]]\naddress = {a}\nmax_a = 32\nfailsafe_a = 10\n" for a in (1, 2, 3)),
     "standalone failsafe currents sum to 30.0 A"),
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
documents = st.fixed_dictionaries(
    {},
    optional={
        "site": st.fixed_dictionaries({}, optional={"breaker_a": st.integers(0, 200), "limit_a": st.integers(0, 200),
                                                   "master_id": st.integers(-1, 300)}),
        "timing": st.fixed_dictionaries({}, optional={"heartbeat_period": st.floats(0.01, 2),
                                                     "failsafe_timeout": st.floats(0.01, 5)}),
        "servant": st.lists(servant_tables, max_size=5),
    },
)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_problems_agree_with_the_validator_and_are_one_line_each(doc: dict) -> None:  # type: ignore[type-arg]
    text = _dump(doc)
    found = problems(text)
    try:
        parse_config(text)
        valid = True
    except ConfigError as exc:
        valid = False
        assert found, f"validator says {exc} but check-config found nothing"
    if valid:
        assert found == []
    assert all("\n" not in p and p for p in found)


def test_several_problems_in_one_servant_are_all_reported(tmp_path: Path) -> None:
    text = "[site]\nbreaker_a = 80\n[[servant]]\naddress = 2\nmax_a = 90\nmin_a = 5\npriority = 999\ncolour = 1\n"
    r = cli(str(write(tmp_path, text)))
    assert r.returncode == 1
    for needle in ("servant 2: min 5.0 A is below 6 A", "servant 2: max 90.0 A is above 80 A",
                   "servant 2: priority 999", "servant 2: unknown key 'colour'"):
        assert needle in r.stdout, (needle, r.stdout)


def test_the_shipped_example_is_clean() -> None:
    """examples/site.toml is what users copy: it passes without a single note to explain away."""
    r = cli("examples/site.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("examples/site.toml: ok\n")
    assert "note:" not in r.stdout and r.stderr == "", r.stdout
