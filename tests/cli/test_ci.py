"""The test commands fit a working day, and CI runs them honestly (issue 11, section 2).

The README's test command leaves out the sweeps that take minutes (marker
``chaos``); the README names a second command for them; ``.ci/run`` runs
both, each as its own timed stage, and a stage whose pytest collects nothing
fails.  The test command spreads the tests over every core (pytest-xdist
workers); the sweep, which runs a process pool of its own, and the vcan tests
run in one pytest process; tests running at once draw ports of their own.  The
hang guards are far above the expected times.  Nothing here measures a
duration.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.sim import test_sim_chaos
from tests.support import ports

ROOT = Path(__file__).resolve().parents[2]
SWEEP = "tests/sim/test_sim_chaos.py::test_chaos_sweep_breaks_no_invariant"
# before the sweep, on the build it runs: every golden trace as the source traces it
BUILD_CHECK = "tests/sim/test_sim_chaos.py::test_the_sweeps_build_traces_every_golden_run_as_the_source_does"
# the whole 1000-hour sweep on a loaded two-core machine: 600 installations took 1500 s (issue 11),
# 40 took 120 s while this was written
LOADED_SWEEP_S = 3000


def lib(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in bash with .ci/lib.sh sourced, in the repository."""
    return subprocess.run(["bash", "-c", f". .ci/lib.sh\n{script}"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def collected(*args: str) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    return [line for line in r.stdout.splitlines() if "::" in line]


def test_a_stage_whose_pytest_collects_nothing_fails() -> None:
    r = lib("stage nothing python -m pytest -q -p no:cacheprovider -k no_test_is_named_this tests/protocol/test_pilot.py")
    assert r.returncode != 0
    assert "== nothing FAILED after" in r.stdout and "pytest collected no test (exit 5)" in r.stdout


def test_a_stage_running_the_readmes_test_command_on_workers_fails_when_it_collects_nothing() -> None:
    pytest_cmd = lib('first_block_line "python -m pytest"').stdout.strip().split(" && ")[-1]
    assert "-n auto" in pytest_cmd
    r = lib(f"stage nothing {pytest_cmd} -q -p no:cacheprovider -k no_test_is_named_this tests/protocol/test_pilot.py")
    assert r.returncode != 0
    assert "== nothing FAILED after" in r.stdout and "pytest collected no test (exit 5)" in r.stdout


def test_only_the_readmes_test_command_runs_on_xdist_workers() -> None:
    """The sweep forks a pool of its own (one process per core): under xdist workers too, 2 cores would carry
    3 or more CPU-bound processes, and forks of a worker.  So no worker count in addopts, none in the sweep's
    command."""
    r = lib('first_block_line "python -m pytest"; testing_block_line "python -m pytest -m chaos"')
    test_cmd, chaos_cmd = r.stdout.splitlines()
    assert shlex.split(test_cmd)[-2:] == ["-n", "auto"]
    assert not {"-n", "--numprocesses", "--dist"} & set(shlex.split(chaos_cmd.split("#")[0]))
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert not {"-n", "--numprocesses", "--dist"} & set(shlex.split(ini["addopts"]))
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert any(d.startswith("pytest-xdist") for d in extra)


@pytest.mark.parametrize(("worker", "count"), [("gw0", "2"), ("gw1", "2"), ("gw2", "3")])
def test_each_xdist_worker_draws_ports_of_its_own_below_the_ephemeral_range(monkeypatch: pytest.MonkeyPatch,
                                                                            worker: str, count: str) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", count)
    drawn = [ports.free_port(kind) for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM) for _ in range(20)]
    assert len(set(drawn)) == len(drawn)
    assert {p % int(count) for p in drawn} == {int(worker[2:])}
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    assert all(1024 < p < low for p in drawn)


def test_without_xdist_ports_are_drawn_as_by_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert ports.worker() == (0, 1)


def test_a_stage_prints_its_time_and_fails_on_any_error() -> None:
    r = lib("stage fine true && stage broken false; echo after $?; stage_times")
    assert "== fine passed in " in r.stdout and "== broken FAILED after " in r.stdout and "(exit 1)" in r.stdout
    assert "after 1" in r.stdout
    assert r.stdout.splitlines()[-2:][0].endswith("s  fine") and r.stdout.splitlines()[-1].endswith("s  broken")


def test_ci_takes_both_test_commands_verbatim_from_the_readme() -> None:
    r = lib('first_block_line "python -m pytest"; testing_block_line "python -m pytest -m chaos"')
    test_cmd, chaos_cmd = r.stdout.splitlines()
    assert test_cmd == "pip install -e '.[test]' && python -m pytest -n auto"
    assert chaos_cmd.split("#")[0].strip() == "python -m pytest -m chaos"
    run = (ROOT / ".ci" / "run").read_text()
    assert 'stage "README test command: $test_cmd" eval "$test_cmd"' in run
    # the sweep as its own stage, which no environment variable may shorten, on the mypyc build or failing
    assert 'env -u BUSSHARE_CHAOS_HOURS -u BUSSHARE_CHAOS_FIRST_SEED \\\n  BUSSHARE_SWEEP_BUILD=compiled bash -c "$chaos_cmd"' in run
    assert 'stage "mypyc build of the sweep\'s hot path" python tools/mypyc_build.py' in run


def test_the_default_run_leaves_out_the_sweeps_and_the_chaos_command_runs_them() -> None:
    default = collected()
    assert default and SWEEP not in default and BUILD_CHECK not in default
    assert collected("-m", "chaos") == [BUILD_CHECK, SWEEP]


def test_the_sweep_covers_1000_installation_hours_under_a_generous_hang_guard() -> None:
    assert test_sim_chaos.DEFAULT_HOURS >= 1000
    marks = {m.name: m for m in test_sim_chaos.test_chaos_sweep_breaks_no_invariant.pytestmark}  # type: ignore[attr-defined]
    assert "chaos" in marks
    assert marks["timeout"].args[0] >= 3 * LOADED_SWEEP_S


def test_the_default_hang_guard_is_generous() -> None:
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert ini["timeout"] >= 600  # the slowest default test: about 30 s with both cores busy
    assert "-m 'not chaos'" in ini["addopts"]


@pytest.mark.parametrize("marker", ["chaos", "slow", "vcan"])
def test_every_marker_is_declared(marker: str) -> None:
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert any(m.startswith(f"{marker}:") for m in ini["markers"])
