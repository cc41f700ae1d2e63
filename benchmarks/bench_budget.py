"""The budget policy: computation time from an overload reading to the new limit, and changes per hour.

1. A settled policy is handed a mains reading that shows an overload, with the EV estimate
   of N servants; the time of that call (the new effective limit is its result) is measured,
   against the 50 ms tick the master runs at.
2. The policy with the default tuning is fed a steady house load with noise, read every
   second for 24 simulated hours: effective-limit changes in the first hour (the ramp from
   the fallback) and per hour after it, against ``steady_change_bound``; then a house with
   appliances switching, for contrast.

Run: python benchmarks/bench_budget.py
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from busshare.core.budget import BudgetPolicy  # noqa: E402
from busshare.core.budget import EvDraw  # noqa: E402
from busshare.core.budget import MainsReading  # noqa: E402
from busshare.core.budget import steady_change_bound  # noqa: E402
from busshare.core.budget_config import BudgetConfig  # noqa: E402
from busshare.core.config import Timing
from busshare.core.currents import PhaseCurrents  # noqa: E402
from busshare.sim.house import HouseLoad  # noqa: E402
from busshare.sim.house import appliance_house  # noqa: E402
from busshare.sim.house import flat_house  # noqa: E402

CFG = BudgetConfig(fallback_da=240, main_limit_da=800, margin_da=20)
STATIC = 630
TIMING = Timing()


def settled(servants: int) -> tuple[BudgetPolicy, list[EvDraw], float]:
    p = BudgetPolicy(CFG, STATIC, TIMING, 0.0, meter_timeout_s=5.0)
    ev = [EvDraw(a, 60, a % 2 == 0, -100.0) for a in range(1, servants + 1)]
    t = 0.0
    for _ in range(120):
        aligned = [EvDraw(d.address, d.draw_da, d.metered, t if d.metered else d.at) for d in ev]
        p.meter(MainsReading(t, PhaseCurrents((300 + 60 * servants, 200, 250))), aligned, t + 0.05)
        t += 1.0
    assert p.budget.limit_da == 470, p.budget
    return p, ev, t


def overload_latency(servants: int, runs: int = 2000) -> list[float]:
    """Microseconds per call that lowers the limit."""
    out = []
    p, ev, t = settled(servants)
    extra = CFG.deadband_da  # the settled limit leaves the deadband free
    for _ in range(runs):
        extra += CFG.resolution_da  # more house load each time: every call is a lowering by the full overshoot
        if extra > 300:
            p, ev, t = settled(servants)
            extra = CFG.deadband_da + CFG.resolution_da
        ev_now = [EvDraw(d.address, d.draw_da, d.metered, t if d.metered else d.at) for d in ev]
        reading = MainsReading(t, PhaseCurrents((300 + 60 * servants + extra, 200, 250)))
        before = p.budget.limit_da
        t0 = time.perf_counter_ns()
        b = p.meter(reading, ev_now, t + 0.05)
        out.append((time.perf_counter_ns() - t0) / 1000)
        assert b.limit_da < before
        t += 1.0
    return out


def changes(house: HouseLoad, hours: float) -> list[float]:
    p = BudgetPolicy(CFG, STATIC, TIMING, 0.0, meter_timeout_s=5.0)
    times = []
    limit = p.budget.limit_da
    for k in range(int(hours * 3600)):
        t = float(k)
        b = p.meter(MainsReading(t, PhaseCurrents.single(house.at(t))), [], t + 0.05)
        if b.limit_da != limit:
            times.append(t)
            limit = b.limit_da
    return times


def main() -> None:
    print(f"1. overload reading -> new effective limit (one BudgetPolicy.meter call), tick "
          f"{TIMING.tick_period * 1000:.0f} ms")
    print(f"{'servants':>8} {'median us':>10} {'p99 us':>8} {'max us':>8} {'of a tick':>10}")
    for n in (4, 16, 62):
        us = sorted(overload_latency(n))
        p99 = us[int(len(us) * 0.99)]
        print(f"{n:>8} {statistics.median(us):>10.1f} {p99:>8.1f} {us[-1]:>8.1f} "
              f"{p99 / (TIMING.tick_period * 1e6):>9.3%}")
    print()
    span = STATIC
    print(f"2. effective-limit changes, default tuning (hold {CFG.raise_hold_s:g} s, step {CFG.raise_step_da / 10:g} A, "
          f"deadband {CFG.deadband_da / 10:g} A, resolution {CFG.resolution_da / 10:g} A), a reading per second, 24 h")
    print(f"   steady-stretch bound (steady_change_bound, span {span / 10:g} A): {steady_change_bound(CFG, span)}")
    print(f"{'house':>34} {'first hour':>11} {'per hour after':>15} {'total':>6}  proven bound applies")
    for p2p in (0, 2, 5, 20):
        h = flat_house(300, noise_da=p2p, seed=p2p)
        ts = changes(h, 24.0)
        first = sum(1 for t in ts if t < 3600)
        proven = "yes" if p2p + CFG.resolution_da <= CFG.deadband_da else "no (noise + resolution > deadband)"
        print(f"{f'steady 30 A, noise {p2p / 10:.1f} A p-p':>34} {first:>11} {(len(ts) - first) / 23:>15.2f} "
              f"{len(ts):>6}  {proven}")
    h = appliance_house(random.Random(1), 24 * 3600.0, 800 - 240 - 20, noise_da=3)
    ts = changes(h, 24.0)
    first = sum(1 for t in ts if t < 3600)
    steps = len(h.steps_up())
    print(f"{f'appliances ({steps} steps up in 24 h)':>34} {first:>11} {(len(ts) - first) / 23:>15.2f} {len(ts):>6}")


if __name__ == "__main__":
    main()
