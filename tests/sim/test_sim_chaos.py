"""Seeded chaos sweep: random installations, cars and fault mixes, every invariant checked at every step.

Each seed is one installation running for the hours the generator draws for it
(``busshare.sim.chaos.chaos_scenario``: one hour, half an hour for 16 or 32
servants).  The sweep takes seeds from the first one on until they cover at
least ``BUSSHARE_CHAOS_HOURS`` installation-hours (default below), runs them
over both cores, prints the hours covered and how many seeds drew each fault
shape, and fails listing every seed that broke an invariant, each with its
reproduction command and trace.

It is marked ``chaos`` and so is not part of the default run (the README's
test command); it has its own command, and its own stage in ``.ci/run``:

    python -m pytest -m chaos                                          # 1000 hours, as in CI
    BUSSHARE_CHAOS_HOURS=100 python -m pytest -m chaos                 # a quick look
    BUSSHARE_CHAOS_FIRST_SEED=50000 python -m pytest -m chaos -s       # other installations

The default seeds are fixed so that CI is reproducible; a nightly job can move
``BUSSHARE_CHAOS_FIRST_SEED`` to explore new installations.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack

import pytest

from busshare.sim.chaos import STATED_SHARE
from busshare.sim.chaos import chaos_scenario
from busshare.sim.chaos import shapes_in
from busshare.sim.invariants import SimulationFailed
from busshare.sim.runner import Simulation
from tests.support.sim_findings import known_finding

DEFAULT_HOURS = 1000.0  # per CI run (the floor): minutes over both cores, see docs/SIM.md, Speed
FIRST_SEED = 1000
# A hang guard, not a timing assertion: 1000 hours take 11-14 minutes on two idle cores and 40-50
# minutes on a loaded shared machine (600 installations in 1500 s, 40 in 120 s were seen); 4 h is
# about 5x that.
HANG_GUARD_S = 4 * 3600
# The shapes issue 10 asks the sweep to draw, and the share of the CI seeds (the first 1000) that must
# hold each, counted from the plans (no simulation). Generator 1 drew the first four in under 1 % of them.
MIN_SHARE = STATED_SHARE


def sweep_seeds(first: int, hours: float) -> list[int]:
    """Seeds from ``first`` on until their drawn durations cover ``hours`` installation-hours."""
    seeds: list[int] = []
    covered = 0.0
    while covered < hours:
        seed = first + len(seeds)
        covered += chaos_scenario(seed).duration_s / 3600.0
        seeds.append(seed)
    return seeds


def test_the_generator_draws_every_shape_at_its_stated_rate() -> None:
    seeds = sweep_seeds(FIRST_SEED, DEFAULT_HOURS)[:1000]
    counts: Counter[str] = Counter()
    for seed in seeds:
        counts.update(shapes_in(chaos_scenario(seed)))
    short = {name: f"{counts[name]} of {len(seeds)}" for name, share in MIN_SHARE.items()
             if counts[name] < share * len(seeds)}
    assert not short, f"shapes drawn below their stated share: {short}"


def test_generator_1_still_replays_the_seeds_found_with_it() -> None:
    # issue 10's held-out seeds were found with generator 1: its base stream must stay untouched
    sc = chaos_scenario(802235, generator=1)
    assert sc.config.limit_da == 256 and len(sc.config.servants) == 4
    assert [f.kind for f in sc.faults][:3] == ["master_shutdown", "master_shutdown", "master_restart"]
    assert "--generator 1" in sc.origin and not shapes_in(sc) - {"tight-budget"}


def run_seed(seed: int) -> tuple[int, float, str | None]:
    sc = chaos_scenario(seed)
    try:
        result = Simulation(sc, seed, record=False).run()
    except SimulationFailed as exc:
        return seed, exc.violation.t / 3600.0, str(exc)
    return seed, result.summary.sim_seconds / 3600.0, None


def sweep_workers(environ: Mapping[str, str], cpus: int | None) -> tuple[int, str | None]:
    """How many processes of its own the sweep runs its seeds in (0: this one), and a line saying why not.

    Under a pytest-xdist worker (``python -m pytest -n auto -m chaos`` typed by hand; the CI command has no
    ``-n``) every worker is already a process per core: a pool of the sweep's own would fork that worker
    and put 3 or more CPU-bound processes on 2 cores.  There it runs the seeds in the worker, and says so."""
    worker = environ.get("PYTEST_XDIST_WORKER")
    if worker:
        return 0, (f"chaos sweep: running under pytest-xdist worker {worker}: the seeds run in this process, not "
                   "in a pool of the sweep's own (for both cores: python -m pytest -m chaos, without -n)")
    return min(2, cpus or 1), None


def run_seeds(seeds: list[int], workers: int, stack: ExitStack) -> Iterator[tuple[int, float, str | None]]:
    """Each seed's result in order: in a process pool of ``workers`` (kept open by ``stack``), or here (0)."""
    if not workers:
        return map(run_seed, seeds)
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    # an executor, not a Pool: a worker that dies raises BrokenProcessPool instead of hanging the run
    pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=ctx))
    return pool.map(run_seed, seeds)


@pytest.mark.chaos
@pytest.mark.slow
@pytest.mark.timeout(HANG_GUARD_S)
def test_chaos_sweep_breaks_no_invariant(capsys: pytest.CaptureFixture[str]) -> None:
    target = float(os.environ.get("BUSSHARE_CHAOS_HOURS", DEFAULT_HOURS))
    first = int(os.environ.get("BUSSHARE_CHAOS_FIRST_SEED", FIRST_SEED))
    seeds = sweep_seeds(first, target)
    workers, note = sweep_workers(os.environ, os.cpu_count())
    if note is not None:  # (a worker's output does not reach the terminal: xdist shows warnings in its summary)
        warnings.warn(note, UserWarning, stacklevel=1)
    # progress on the terminal, past pytest's capture (this is the longest test: minutes)
    every = max(1, len(seeds) // 10)
    started = time.monotonic()
    results: list[tuple[int, float, str | None]] = []
    with ExitStack() as stack:
        for result in run_seeds(seeds, workers, stack):
            results.append(result)
            if len(results) % every == 0:
                bad = sum(1 for r in results if r[2] is not None)
                with capsys.disabled():
                    print(f"\nchaos sweep: {len(results)}/{len(seeds)} installations, {bad} with a violation, "
                          f"{time.monotonic() - started:.0f} s", end="", flush=True)
    with capsys.disabled():
        print(flush=True)
    hours = sum(h for _, h, _ in results)
    failures = [(seed, text) for seed, _, text in results if text is not None]
    drawn: Counter[str] = Counter()
    for seed in seeds:
        drawn.update(shapes_in(chaos_scenario(seed)))
    print(f"\nchaos sweep: {len(seeds)} installations, {hours:.1f} simulated installation-hours, "
          f"{len(failures)} with a violation; seeds per shape: "
          + ", ".join(f"{name} {count}" for name, count in sorted(drawn.items())))
    known = {seed: known_finding(text) for seed, text in failures if known_finding(text)}
    other = [(seed, text) for seed, text in failures if seed not in known]
    assert not other, "\n\n".join(f"seed {seed}:\n{text[:4000]}" for seed, text in other)
    if known:
        pytest.xfail("open core findings: " + "; ".join(f"seed {s}: {f}" for s, f in known.items()))
    assert hours >= target


def test_under_an_xdist_worker_the_sweep_runs_its_seeds_in_process_and_says_so() -> None:
    """Detection only (the sweep itself is not run here): ``PYTEST_XDIST_WORKER`` is what pytest-xdist sets
    in each worker."""
    workers, note = sweep_workers({"PYTEST_XDIST_WORKER": "gw1", "PYTEST_XDIST_WORKER_COUNT": "2"}, 2)
    assert workers == 0 and note is not None and "pytest-xdist worker gw1" in note and "without -n" in note
    assert sweep_workers({}, 8) == (2, None)
    assert sweep_workers({}, 1) == (1, None)
    assert sweep_workers({}, None) == (1, None)
    assert list(run_seeds([], 0, ExitStack())) == []  # in process: no pool opened


def test_the_sweep_draws_late_copies_reordering_and_cars_that_see_raises_late() -> None:
    """Issue 10: late duplicates (1-30 s), reordering, and a grant followed by a cut within a car's
    reaction time are drawn regularly, not left to luck."""
    scenarios = [chaos_scenario(seed) for seed in range(FIRST_SEED, FIRST_SEED + 100)]
    buses = [f.bus for sc in scenarios for f in sc.faults if f.kind == "bus"]
    assert sum(1 for b in buses if b.get("late", 0.0) > 0) >= 20
    assert sum(1 for b in buses if b.get("jitter_s", 0.0) > 0) >= 10
    late_cars = [sum(c.profile.sees_pilot_late for c in sc.cars) for sc in scenarios]
    assert sum(1 for n in late_cars if n) >= 80


def test_the_old_replay_command_points_to_the_new_one() -> None:
    """Issue 10 gives its seeds as ``python -m busshare.sim.chaos --seed N``: since the replay moved to
    busshare.cli.chaos that ran nothing and exited 0, which reads as a pass."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "busshare.sim.chaos", "--seed", "800881"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0 and "python -m busshare.cli.chaos --seed" in run.stderr
