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

The seeds run on a mypyc build of this tree when one can be made here (``tools/mypyc_build.py``: the
same source compiled, about 3x faster), after a check that the build reproduces every golden trace of
the source; else on the source itself, saying why.  ``BUSSHARE_SWEEP_BUILD=pure`` asks for the source,
``=compiled`` for the build or a failure (CI), ``=auto`` (the default) for the build where it can be made.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

import pytest

from busshare.sim.chaos import STATED_SHARE
from busshare.sim.chaos import chaos_scenario
from busshare.sim.chaos import shapes_in
from busshare.sim.failure import SimulationFailed
from busshare.sim.runner import Simulation
from tests.support.sim_findings import known_finding
from tools import golden
from tools import mypyc_build

DEFAULT_HOURS = 1000.0  # per CI run (the floor): minutes over both cores, see docs/SIM.md, Speed
FIRST_SEED = 1000
# A hang guard, not a timing assertion: 1000 hours take about 4-5 minutes on two cores on the mypyc
# build, 12-17 on the source, and 40-50 minutes on the source on a loaded shared machine (600
# installations in 1500 s, 40 in 120 s were seen); 4 h is about 5x that.
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


BUILDS = ("auto", "compiled", "pure")


def sweep_build(environ: Mapping[str, str], make: Callable[[], mypyc_build.Build] = mypyc_build.build,
                ) -> tuple[Path | None, str]:
    """Which code the sweep's processes run: a mypyc build of this tree (its root) or the source (None), and a
    line saying which and why (``BUSSHARE_SWEEP_BUILD``: auto, compiled or pure)."""
    want = environ.get("BUSSHARE_SWEEP_BUILD", "auto")
    if want not in BUILDS:
        pytest.fail(f"BUSSHARE_SWEEP_BUILD={want!r}: one of {', '.join(BUILDS)}", pytrace=False)
    if want == "pure":
        return None, "chaos sweep: on the source (BUSSHARE_SWEEP_BUILD=pure)"
    try:
        build = make()
    except mypyc_build.BuildError as exc:
        if want == "compiled":
            pytest.fail(f"BUSSHARE_SWEEP_BUILD=compiled: {exc}", pytrace=False)
        return None, f"chaos sweep: on the source, about 3x slower: no mypyc build here ({exc})"
    return build.root, f"chaos sweep: on the {build.line()}"


@pytest.fixture(scope="module")
def build_root() -> Path | None:
    """The sweep's build (made once per run, or reused from .cache/mypyc), its line printed."""
    root, line = sweep_build(os.environ)
    print(f"\n{line}", flush=True)
    return root


T = TypeVar("T")
R = TypeVar("R")


def run_all(fn: Callable[[T], R], items: list[T], workers: int, stack: ExitStack, root: Path | None = None,
            ) -> Iterator[R]:
    """``fn`` of each item in order: in a process pool of ``workers`` (kept open by ``stack``), or here (0).

    ``root``: a mypyc build, which the pool's processes run: started afresh (spawn), each puts the build
    first on its path before anything imports busshare (``mypyc_build.use``, which checks it took)."""
    if not workers:
        return map(fn, items)
    if root is None:
        ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        # an executor, not a Pool: a worker that dies raises BrokenProcessPool instead of hanging the run
        pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=ctx))
    else:
        pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                       initializer=mypyc_build.use, initargs=(str(root),)))
    return pool.map(fn, items)


def run_seeds(seeds: list[int], workers: int, stack: ExitStack,
              root: Path | None = None) -> Iterator[tuple[int, float, str | None]]:
    """Each seed's result in order (``run_all``)."""
    return run_all(run_seed, seeds, workers, stack, root)


def cpu_used() -> float:
    """CPU seconds this process and its ended child processes have used (user and system)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def golden_trace(case: str) -> tuple[str, dict[str, object]]:
    return case, golden.trace(case)


@pytest.mark.chaos
@pytest.mark.slow
@pytest.mark.timeout(HANG_GUARD_S)
def test_the_sweeps_build_traces_every_golden_run_as_the_source_does(build_root: Path | None) -> None:
    """Before the sweep runs on a mypyc build: the build does what the source does, frame for frame, in every
    golden run (built-in scenarios and chaos seeds: tests/golden/traces.json, which the README's test command
    checks against the source)."""
    if build_root is None:
        pytest.skip("the sweep runs on the source")
    recorded = golden.load()
    workers, _ = sweep_workers(os.environ, os.cpu_count())
    with ExitStack() as stack:
        traced = dict(run_all(golden_trace, golden.cases(), max(1, workers), stack, build_root))
    differ = sorted(case for case in golden.cases() if traced[case] != recorded.get(case))
    assert not differ, f"the mypyc build at {build_root} traces these runs otherwise than the source: {differ}"


@pytest.mark.chaos
@pytest.mark.slow
@pytest.mark.timeout(HANG_GUARD_S)
def test_chaos_sweep_breaks_no_invariant(capsys: pytest.CaptureFixture[str], build_root: Path | None) -> None:
    target = float(os.environ.get("BUSSHARE_CHAOS_HOURS", DEFAULT_HOURS))
    first = int(os.environ.get("BUSSHARE_CHAOS_FIRST_SEED", FIRST_SEED))
    seeds = sweep_seeds(first, target)
    workers, note = sweep_workers(os.environ, os.cpu_count())
    if note is not None:  # (a worker's output does not reach the terminal: xdist shows warnings in its summary)
        warnings.warn(note, UserWarning, stacklevel=1)
    root = build_root if workers else None  # (in this process: the source, imported already)
    # progress on the terminal, past pytest's capture (this is the longest test: minutes)
    every = max(1, len(seeds) // 10)
    started, cpu_before = time.monotonic(), cpu_used()
    results: list[tuple[int, float, str | None]] = []
    with ExitStack() as stack:
        for result in run_seeds(seeds, workers, stack, root):
            results.append(result)
            if len(results) % every == 0:
                bad = sum(1 for r in results if r[2] is not None)
                with capsys.disabled():
                    print(f"\nchaos sweep: {len(results)}/{len(seeds)} installations, {bad} with a violation, "
                          f"{time.monotonic() - started:.0f} s", end="", flush=True)
    wall, cpu = time.monotonic() - started, cpu_used() - cpu_before  # (the pool's processes have ended)
    with capsys.disabled():
        # the CPU time says what the run takes on idle cores, where a shared host's wall time may not
        print(f"\nchaos sweep: {wall:.0f} s, {cpu:.0f} CPU s in its processes: {cpu / max(1, workers):.0f} s on "
              f"{max(1, workers)} idle core(s)", flush=True)
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


def test_the_sweep_runs_a_build_where_one_can_be_made_and_says_which_code_it_runs(tmp_path: Path) -> None:
    """Choice only (nothing is built here): BUSSHARE_SWEEP_BUILD auto, compiled, pure."""
    built = mypyc_build.Build(tmp_path, 34, 80.0, False)

    def fails() -> mypyc_build.Build:
        raise mypyc_build.BuildError("no C compiler (cc) on PATH")

    assert sweep_build({}, lambda: built) == (tmp_path, f"chaos sweep: on the {built.line()}")
    assert "built in 80 s" in built.line() and "34 modules" in built.line()
    root, line = sweep_build({"BUSSHARE_SWEEP_BUILD": "auto"}, fails)
    assert root is None and "on the source" in line and "no C compiler" in line
    assert sweep_build({"BUSSHARE_SWEEP_BUILD": "pure"}, lambda: built)[0] is None
    with pytest.raises(pytest.fail.Exception, match="compiled: no C compiler"):
        sweep_build({"BUSSHARE_SWEEP_BUILD": "compiled"}, fails)
    with pytest.raises(pytest.fail.Exception, match="one of auto, compiled, pure"):
        sweep_build({"BUSSHARE_SWEEP_BUILD": "fast"}, lambda: built)


def test_a_build_is_keyed_by_its_source_and_is_refused_once_the_source_runs(tmp_path: Path) -> None:
    """A changed file is another build (never a stale one), and a process that imported busshare already (this
    one) cannot switch to a build: it says so instead of running the source unnoticed."""
    (tmp_path / "busshare").mkdir()
    (tmp_path / "busshare" / "a.py").write_text("x = 1\n")
    key = mypyc_build.source_key(tmp_path)
    assert mypyc_build.source_key(tmp_path) == key
    (tmp_path / "busshare" / "a.py").write_text("x = 2\n")
    assert mypyc_build.source_key(tmp_path) != key
    with pytest.raises(mypyc_build.BuildError, match="imported already"):
        mypyc_build.use(str(tmp_path))
    assert str(tmp_path) not in sys.path


def test_a_new_build_removes_the_old_ones_but_never_one_being_made(tmp_path: Path) -> None:
    for name in ("new", "old", f"k.{os.getpid()}.tmp", "k.999999999.tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / "new" / ".complete").write_text("new\n")
    (tmp_path / "old" / ".complete").write_text("old\n")
    mypyc_build.tidy(tmp_path, tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["new", f"k.{os.getpid()}.tmp"])
