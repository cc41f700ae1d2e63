"""The moving budget in the simulator: how fast the count complies after a drop, and how much of the room is used.

Runs the built-in ``mains`` scenario and the first chaos seeds that draw a moving budget (a mains meter
behind a house, meter faults, demand response; ``--seeds N``, default 8), with the real master, and
reads what the run recorded (``sim.budget_run``):

1. **compliance time**: for every lowering of the effective limit that left the counted sum above it
   (judged stretches only), the time until the count fit again, against the bound
   (``Timing.budget_compliance_bound``, PROTOCOL.md rule 9): median, 90th percentile and worst.
2. **delivered share of the available headroom**: the current the pilots offered, integrated over
   time, over what the budget made available to the cars (min(effective limit, what the cars
   want, and no more than the allocation can give: a limit below a car's minimum gives nothing));
   once over the whole judged time, and once in steady state (a settle time after the limit
   or the demands last changed, where the budget-waste check asks for 95 %).

Run: python benchmarks/bench_budget_sim.py [--seeds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from busshare.core.allocation import allocate  # noqa: E402
from busshare.frames import MAX_EVSE_DA  # noqa: E402
from busshare.frames import MIN_OFFER_DA  # noqa: E402
from busshare.sim.budget_checks import BudgetSample  # noqa: E402
from busshare.sim.budget_checks import SupplySample  # noqa: E402
from busshare.sim.budget_run import BudgetRun  # noqa: E402
from busshare.sim.chaos import chaos_scenario  # noqa: E402
from busshare.sim.runner import Simulation  # noqa: E402
from busshare.sim.scenario import Scenario  # noqa: E402
from busshare.sim.scenario import load_scenario  # noqa: E402


def compliance_times(samples: list[BudgetSample]) -> list[float]:
    """Seconds from each lowering that left the count above the limit to the first sample where it fits."""
    out: list[float] = []
    for i in range(1, len(samples)):
        s, prev = samples[i], samples[i - 1]
        if s.limit_da >= prev.limit_da or not s.quiet or s.counted_da <= max(s.limit_da, s.exempt_da):
            continue
        for later in samples[i + 1:]:
            if not later.quiet:
                break
            if later.limit_da < s.limit_da:
                break  # lowered again: that lowering is timed on its own
            if later.counted_da <= max(later.limit_da, later.exempt_da):
                out.append(later.t - s.t)
                break
    return out


def _available(s: SupplySample) -> int:
    """What the budget lets the cars have: min(limit, what they want), and no more than the allocation can
    give at all (a limit below a car's minimum gives it nothing)."""
    wanted = sum(min(d.want_da, MAX_EVSE_DA) for d in s.demands if d.want_da >= MIN_OFFER_DA)
    if wanted <= s.limit_da:
        return wanted
    return min(s.limit_da, sum(allocate(s.limit_da, s.demands).values()))


def delivered(supply: list[SupplySample], end: float, settle_s: float) -> tuple[float, float, float, float]:
    """(offered, available) current x seconds over the judged time, and the same in steady state."""
    off = avail = off_steady = avail_steady = 0.0
    changed = -1e9
    key: object = None
    for i, s in enumerate(supply):
        stop = supply[i + 1].t if i + 1 < len(supply) else end
        k = (s.limit_da, s.demands)
        if k != key or not s.quiet:
            changed = s.t
        key = k
        if not s.quiet or stop <= s.t:
            continue
        a = _available(s)
        off += min(s.offered_da, a) * (stop - s.t)
        avail += a * (stop - s.t)
        steady_from = max(s.t, changed + settle_s)
        if stop > steady_from:
            off_steady += min(s.offered_da, a) * (stop - steady_from)
            avail_steady += a * (stop - steady_from)
    return off, avail, off_steady, avail_steady


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole > 0 else "-"  # (no car wanted current while judged)


def budget_seeds(n: int, first: int = 1000) -> list[int]:
    out: list[int] = []
    seed = first
    while len(out) < n:
        if chaos_scenario(seed).budget_world is not None:
            out.append(seed)
        seed += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8, help="chaos seeds with a moving budget to run (default 8)")
    args = ap.parse_args()
    runs: list[tuple[str, Scenario, int]] = [("mains", load_scenario("mains"), 1)]
    runs += [(f"chaos {s}", chaos_scenario(s), s) for s in budget_seeds(args.seeds)]
    times: list[float] = []
    off = avail = off_s = avail_s = 0.0
    hours = 0.0
    bound = 0.0
    started = time.process_time()
    print("run           hours  lowerings timed  median s  worst s  offered/available  steady")
    for name, sc, seed in runs:
        sim = Simulation(sc, seed, record=False, stop_on_violation=False)
        result = sim.run()
        br = sim.budget_run
        assert isinstance(br, BudgetRun)
        bound = br.window_s
        t = compliance_times(br.samples)
        o, a, os_, as_ = delivered(br.supply, result.summary.sim_seconds, sim.bounds.settle_s)
        times += t
        off, avail, off_s, avail_s = off + o, avail + a, off_s + os_, avail_s + as_
        hours += result.summary.sim_seconds / 3600
        med = f"{statistics.median(t):8.2f}" if t else "       -"
        worst = f"{max(t):7.2f}" if t else "      -"
        print(f"{name:<12} {result.summary.sim_seconds / 3600:6.2f}  {len(t):15d}  {med}  {worst}  "
              f"{_share(o, a):>18}  {_share(os_, as_):>7}"
              + (f"  ({len(result.violations)} violations)" if result.violations else ""))
    cpu = time.process_time() - started
    print()
    print(f"1. compliance time after a budget drop that left the count above the new limit "
          f"({len(times)} drops, {hours:.1f} installation-hours)")
    if times:
        q = statistics.quantiles(times, n=10) if len(times) >= 2 else [times[0]] * 9
        print(f"   median {statistics.median(times):.2f} s, 90th percentile {q[8]:.2f} s, worst {max(times):.2f} s; "
              f"bound {bound:.2f} s (worst / bound {max(times) / bound:.2f})")
    print("2. delivered share of the available headroom (offered / min(effective limit, what the cars want))")
    print(f"   over the judged time {100 * off / max(avail, 1):.1f} %, in steady state {100 * off_s / max(avail_s, 1):.1f} %"
          " (the budget-waste check asks for 95 %)")
    print(f"({cpu:.1f} s CPU, {cpu / hours:.2f} s per simulated installation-hour with a moving budget)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
