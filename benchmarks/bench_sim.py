"""Simulator speed: simulated seconds per wall second, and the master's tick cost per servant.

    python benchmarks/bench_sim.py            # about a minute
    python benchmarks/bench_sim.py --quick

For 4, 16 and 62 (the protocol's maximum) servants, half of them with a car
charging, the real Master and Servants run on the simulated bus with every
invariant checked; the figure is simulated seconds per wall second (the issue
asks for >= 1000x with 4 servants).  Then ``Master.tick`` is timed alone on a
master that has learned its servants, and divided by the number of servants.
Last, the CPU seconds one chaos-sweep installation-hour costs (the CI sweep
runs 1000 of them over two cores), over the first seeds of the sweep.
Nothing is asserted: figures only (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from busshare.core.config import Config, ServantConfig, Timing, validate  # noqa: E402
from busshare.sim.chaos import chaos_scenario  # noqa: E402
from busshare.sim.ev import EvProfile  # noqa: E402
from busshare.sim.runner import Simulation  # noqa: E402
from busshare.sim.scenario import CarPlan, Scenario  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seconds = {4: 600.0, 16: 300.0, 62: 120.0}
    rounds = 1 if args.quick else 3
    if args.quick:
        seconds = {k: v / 4 for k, v in seconds.items()}
    print(f"{'servants':>8} {'simulated s':>12} {'steps':>8} {'sim s / wall s':>15} {'violations':>11}")
    for n, secs in seconds.items():
        speed, steps, violations = sim_speed(n, secs, rounds)
        print(f"{n:>8} {secs:>12.0f} {steps:>8} {speed:>14.0f}x {violations:>11}")
    print()
    print(f"{'servants':>8} {'Master.tick':>14} {'per servant':>14}")
    for n in seconds:
        cost = tick_cost(n, 2000 if not args.quick else 500)
        print(f"{n:>8} {cost * 1e6:>11.1f} us {cost / n * 1e6:>11.2f} us")
    print()
    seeds = range(1000, 1004 if args.quick else 1016)
    per_hour, mean_n = chaos_cost(seeds)
    print(f"chaos sweep: {per_hour:.2f} CPU s per installation-hour ({len(seeds)} seeds, {mean_n:.1f} servants "
          f"on average): 1000 hours = {per_hour * 1000 / 60:.0f} CPU minutes, "
          f"{per_hour * 1000 / 120:.1f} min over 2 cores")


if __name__ == "__main__":
    main()
