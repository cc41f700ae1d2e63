"""Simulator speed: simulated seconds per wall second, and the master's tick cost per servant.

    python benchmarks/bench_sim.py            # about two minutes
    python benchmarks/bench_sim.py --quick

For 4, 16 and 62 (the protocol's maximum) servants, half of them with a car
charging, the real Master and Servants run on the simulated bus with every
invariant checked; the figure is simulated seconds per wall second (the issue
asks for >= 1000x with 4 servants).  Then ``Master.tick`` is timed alone on a
master that has learned its servants, and divided by the number of servants.
Last, the CPU seconds one chaos-sweep installation-hour costs (the CI sweep
runs 1000 of them over two cores), over the first seeds of the sweep.
Nothing is asserted: figures only (the machine is shared and noisy).

    python benchmarks/bench_sim.py --baseline a2aa3ed  # against another revision
    python benchmarks/bench_sim.py --no-baseline       # this tree only (half the time)
    python benchmarks/bench_sim.py --compiled          # this tree's mypyc build against its source

Every figure is also measured, in the same run, for the previous version of the simulator, and printed
with the ratio: how many times faster (speeds) or cheaper (costs) this tree is. The previous version is
the last commit's ``busshare/`` when the tree has changes there, else the one before the last commit
that changed it (``--baseline REV``: git revision ``REV``; ``--compiled``: this tree's mypyc build, as the
chaos sweep runs it, against this tree's source: tools/mypyc_build.py). Each is exported to a temporary directory
and measured in its own process, the two alternating round by round so both see the same machine load.
Outside a git checkout the figures are printed alone, with a line saying why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# --package-root DIR: measure the busshare package found there (a --baseline revision's export)
_PKG = sys.argv[sys.argv.index("--package-root") + 1] if "--package-root" in sys.argv[:-1] else str(ROOT)
sys.path.insert(0, _PKG)

from busshare.core.config import Config  # noqa: E402
from busshare.core.config import ServantConfig  # noqa: E402
from busshare.core.config import Timing  # noqa: E402
from busshare.core.config import validate  # noqa: E402
from busshare.sim.chaos import chaos_scenario  # noqa: E402
from busshare.sim.ev import EvProfile  # noqa: E402
from busshare.sim.runner import Simulation  # noqa: E402
from busshare.sim.scenario import CarPlan  # noqa: E402
from busshare.sim.scenario import Scenario  # noqa: E402


def installation(n: int) -> Config:
    breaker = max(80, 8 * n)  # about 6.4 A per EVSE, at least 64 A
    limit = breaker * 8
    budget = limit
    servants = []
    for i in range(n):
        fs = 60 if budget >= 60 * (n - i) else 0
        budget -= fs
        servants.append(ServantConfig(address=i + 1, max_da=320, failsafe_da=fs, serial=0x100 + i))
    cfg = Config(limit_da=limit, servants=tuple(servants), timing=Timing(), breaker_a=float(breaker))
    validate(cfg)
    return cfg


def scenario(n: int, seconds: float) -> Scenario:
    cars = tuple(CarPlan(a, 1.0 + a * 0.5, None, EvProfile(need_kwh=200.0)) for a in range(1, n + 1, 2))
    return Scenario(name=f"bench-{n}", config=installation(n), duration_s=seconds, cars=cars)


def sim_speed(n: int, seconds: float, rounds: int) -> tuple[float, int, int]:
    """Best simulated-s per wall-s; violations are collected (not stopping the run) and counted."""
    best = 0.0
    steps = violations = 0
    for _ in range(rounds):
        sim = Simulation(scenario(n, seconds), seed=1, record=False, stop_on_violation=False)
        t0 = time.perf_counter()
        sim.run()
        wall = time.perf_counter() - t0
        best = max(best, seconds / wall)
        steps = sim.steps
        violations = len(sim.violations)
    return best, steps, violations


def tick_cost(n: int, calls: int) -> float:
    """Seconds per Master.tick call on a master that has been running with n servants."""
    sim = Simulation(scenario(n, 120.0), seed=1, record=False, stop_on_violation=False)
    sim.run()
    master = sim.masters[0].node
    now = sim.now
    period = sim.timing.tick_period
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(calls):
            master.tick(now + i * period)
        best = min(best, (time.perf_counter() - t0) / calls)
        now += calls * period
    return best


def chaos_cost(seeds: range) -> tuple[float, float]:
    """(CPU s per installation-hour, mean servants) over chaos seeds, as tests/sim/test_sim_chaos.py runs them."""
    cpu = 0.0
    hours = 0.0
    servants = 0
    for seed in seeds:
        sc = chaos_scenario(seed)  # (the hours the sweep draws: half an hour for 16 or 32 servants)
        t0 = time.process_time()
        Simulation(sc, seed, record=False, stop_on_violation=False).run()
        cpu += time.process_time() - t0
        hours += sc.duration_s / 3600.0
        servants += len(sc.config.servants)
    return cpu / hours, servants / len(seeds)


SIZES = {4: 600.0, 16: 300.0, 62: 120.0}
Figures = dict[str, float]


def measure(quick: bool, rounds: int) -> Figures:
    """Every figure once (best of ``rounds``): ``speed:N``, ``steps:N``, ``violations:N``, ``tick:N`` (s per
    Master.tick), ``chaos`` (CPU s per installation-hour), ``chaos_servants``."""
    fig: Figures = {}
    for n, secs in SIZES.items():
        secs = secs / 4 if quick else secs
        fig[f"speed:{n}"], steps, violations = sim_speed(n, secs, rounds)
        fig[f"steps:{n}"], fig[f"violations:{n}"], fig[f"seconds:{n}"] = steps, violations, secs
    for n in SIZES:
        fig[f"tick:{n}"] = tick_cost(n, 500 if quick else 2000)
    seeds = range(1000, 1004 if quick else 1016)
    fig["chaos"], fig["chaos_servants"] = chaos_cost(seeds)
    fig["chaos_seeds"] = len(seeds)
    return fig


def print_figures(fig: Figures, base: Figures | None = None, rev: str = "", ours: str = "this tree") -> None:
    def ratio(key: str, faster: bool) -> str:
        if base is None:
            return ""
        r = fig[key] / base[key] if faster else base[key] / fig[key]
        return f" {base[key] if faster else base[key] * 1e6:>11.{0 if faster else 1}f}{'x' if faster else ' us'} {r:>6.2f}"

    print(f"{'servants':>8} {'simulated s':>12} {'steps':>8} {'sim s / wall s':>15} {'violations':>11}"
          + (f" {rev[:10]:>12} {'ratio':>6}" if base else ""))
    for n in SIZES:
        print(f"{n:>8} {fig[f'seconds:{n}']:>12.0f} {fig[f'steps:{n}']:>8.0f} {fig[f'speed:{n}']:>14.0f}x "
              f"{fig[f'violations:{n}']:>11.0f}" + ratio(f"speed:{n}", True))
    print()
    print(f"{'servants':>8} {'Master.tick':>14} {'per servant':>14}" + (f" {rev[:10]:>14} {'ratio':>6}" if base else ""))
    for n in SIZES:
        cost = fig[f"tick:{n}"]
        print(f"{n:>8} {cost * 1e6:>11.1f} us {cost / n * 1e6:>11.2f} us" + ratio(f"tick:{n}", False))
    print()
    per_hour, n_seeds = fig["chaos"], int(fig["chaos_seeds"])
    print(f"chaos sweep: {per_hour:.2f} CPU s per installation-hour ({n_seeds} seeds, {fig['chaos_servants']:.1f} "
          f"servants on average): 1000 hours = {per_hour * 1000 / 60:.0f} CPU minutes, "
          f"{per_hour * 1000 / 120:.1f} min over 2 cores")
    if base is not None:
        print(f"  {rev}: {base['chaos']:.2f} CPU s per installation-hour; {ours} is {base['chaos'] / per_hour:.2f}x "
              f"as fast")


def export(rev: str, into: Path) -> None:
    """``busshare/`` as it is at git revision ``rev``, unpacked under ``into``."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "busshare"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")


def child(package_root: str, quick: bool) -> Figures:
    """One round of every figure, in a fresh process importing busshare from ``package_root``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--json", "--package-root", package_root, "--rounds", "1"]
    out = subprocess.run(cmd + (["--quick"] if quick else []), check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": package_root}).stdout
    figures: Figures = json.loads(out)
    return figures


def best(runs: list[Figures]) -> Figures:
    """Per figure, the best round: the fastest speed, the cheapest cost (the least disturbed by other load)."""
    out = dict(runs[0])
    for fig in runs[1:]:
        for key, value in fig.items():
            if key.startswith("speed:"):
                out[key] = max(out[key], value)
            elif key.startswith("tick:") or key == "chaos":
                out[key] = min(out[key], value)
    return out


def git(*args: str) -> str | None:
    """``git -C ROOT args`` output, stripped; None when it fails (no git, not a checkout, no such revision)."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def previous_version() -> tuple[str | None, str]:
    """(revision, why): the simulator this tree is compared with by default, or None and the reason."""
    if git("rev-parse", "--is-inside-work-tree") != "true":
        return None, "not a git checkout"
    if git("diff", "--quiet", "HEAD", "--", "busshare") is None:  # (exit 1: busshare/ has changes)
        return git("rev-parse", "--short", "HEAD"), "the last commit (busshare/ has changes)"
    last = git("rev-list", "-1", "HEAD", "--", "busshare")
    before = git("rev-parse", "--short", f"{last}~1") if last else None
    if before is None:
        return None, "no commit before the one that made busshare/"
    return before, f"the commit before {last[:7] if last else ''}, the last that changed busshare/"


def compare(rev: str, quick: bool, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        export(rev, Path(tmp))
        print_figures(*alternate(str(ROOT), tmp, quick, rounds), rev)


def alternate(ours_root: str, theirs_root: str, quick: bool, rounds: int) -> tuple[Figures, Figures]:
    """The best figures of each package root, measured in rounds that alternate which goes first (same load)."""
    ours: list[Figures] = []
    theirs: list[Figures] = []
    for i in range(rounds):
        if i % 2:
            ours.append(child(ours_root, quick))
        theirs.append(child(theirs_root, quick))
        if not i % 2:
            ours.append(child(ours_root, quick))
    return best(ours), best(theirs)


def compare_compiled(quick: bool, rounds: int) -> None:
    """This tree's mypyc build (built, or reused from .cache/mypyc) against this tree's source."""
    from tools import mypyc_build  # (only here: a child measuring a package root has no tools/ beside it)

    try:
        build = mypyc_build.build()
    except mypyc_build.BuildError as exc:
        sys.exit(f"bench_sim: {exc}")
    print(f"the {build.line()}, against this tree's source")
    print_figures(*alternate(str(build.root), str(ROOT), quick, rounds), "source", "the build")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--baseline", metavar="REV",
                    help="measure against busshare/ at this git revision (default: the previous version)")
    ap.add_argument("--no-baseline", action="store_true", help="measure this tree only")
    ap.add_argument("--compiled", action="store_true",
                    help="measure this tree's mypyc build (tools/mypyc_build.py) against this tree's source")
    ap.add_argument("--rounds", type=int, help="rounds per figure (default 3, 1 with --quick)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--package-root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    if args.json:
        print(json.dumps(measure(args.quick, rounds)))
        return
    if args.compiled:
        compare_compiled(args.quick, rounds)
        return
    rev, why = (args.baseline, "given") if args.baseline else (None, "--no-baseline") if args.no_baseline \
        else previous_version()
    if rev is None:
        print_figures(measure(args.quick, rounds))
        if not args.no_baseline:
            print(f"(no ratio: no previous version to measure, {why})")
        return
    if not args.baseline:
        print(f"against {rev}: {why}")
    compare(rev, args.quick, rounds)


if __name__ == "__main__":
    main()
