"""The budget: computation time from an overload reading to the cuts, and changes per hour.

1. A settled policy is handed a mains reading that shows an overload, with the EV estimate
   of N servants; the time of that call (the new effective limit is its result) is measured,
   against the 50 ms tick the master runs at.
2. The policy with the default tuning is fed a steady house load with noise, read every
   second for 24 simulated hours: effective-limit changes in the first hour (the ramp from
   the fallback) and per hour after it, against ``steady_change_bound``; then a house with
   appliances switching, for contrast.
3. The same overload reading handed to a master (``Master.mains_reading``) whose N servants
   share the limit: the time of that call, which returns the cut SET_LIMITs to send in this
   step (rule 9), against the policy's own share (1.) measured in the same run.
4. Set-limits per servant per hour: a master with 4 stand-in servants (cars that want 32 A and
   draw what they are offered, every set-limit acked at once) under a steady noisy house, read
   every second for 4 simulated hours; the first hour (the ramp from the fallback) apart.

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
from busshare.core.config import Timing  # noqa: E402
from busshare.core.config import parse_config  # noqa: E402
from busshare.core.currents import PhaseCurrents  # noqa: E402
from busshare.frames import Ack  # noqa: E402
from busshare.frames import AckHow  # noqa: E402
from busshare.frames import Message  # noqa: E402
from busshare.frames import SetLimit  # noqa: E402
from busshare.frames import Status  # noqa: E402
from busshare.master import Master  # noqa: E402
from busshare.protocol.pilot import PilotState  # noqa: E402
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


class StandIns:
    """N servants on a stand-in bus: cars that want 32 A and draw what they are offered; acks at once."""

    def __init__(self, servants: int, limit_a: int, main_a: float, fallback_a: float, tuning: str = "") -> None:
        tables = "".join(f"[[servant]]\naddress = {a}\nmax_a = 32\nfailsafe_a = 0\n" for a in range(1, servants + 1))
        cfg = parse_config(f"[site]\nlimit_a = {limit_a}\n[budget]\nmain_limit_a = {main_a}\n"
                           f"fallback_a = {fallback_a}\n{tuning}[budget.meter]\nkind = \"sdm630\"\n"
                           f"tcp = \"127.0.0.1:5020\"\n{tables}")
        self.master = Master(cfg, 0.0, budget=BudgetPolicy.from_config(cfg, 0.0))
        self.offer = dict.fromkeys(range(1, servants + 1), 0)
        self.set_limits = dict.fromkeys(self.offer, 0)

    def deliver(self, out: list[Message], now: float) -> None:
        for m in out:
            if isinstance(m, SetLimit):
                self.set_limits[m.address] += 1
                how = AckHow.IMMEDIATE if m.limit_da >= self.offer[m.address] else AckHow.TIMED
                self.offer[m.address] = m.limit_da
                self.deliver(self.master.receive(Ack(m.address, m.txn, m.limit_da, None, how), now), now)

    def step(self, now: float, house_da: int | None) -> None:
        for a, o in self.offer.items():
            self.deliver(self.master.receive(Status(a, a, PilotState.C, o, None, 320), now), now)
        if house_da is not None:
            self.deliver(self.master.mains_reading(self.reading(now, house_da), now), now)
        self.deliver(self.master.tick(now), now)

    def reading(self, now: float, house_da: int) -> MainsReading:
        ev = sum(self.offer.values())
        return MainsReading(now, PhaseCurrents((house_da + ev, house_da // 2 + ev, house_da // 2 + ev)))


def master_overload_latency(servants: int, runs: int = 300) -> list[float]:
    """Microseconds per ``Master.mains_reading`` call that lowers the limit and returns its cuts."""
    out: list[float] = []
    while len(out) < runs:
        # the main service leaves the whole circuit over a 10 A house (margin 2 A, deadband 1 A); one raise of the whole span after 7 s
        site = StandIns(servants, 32 * servants, 32.0 * servants + 13, 6.0 * servants,
                        f"raise_hold_s = 7\nraise_step_a = {32 * servants}\n")
        now = 0.0
        for _ in range(60):  # settle: every servant granted, the limit up from the fallback
            now += 0.5
            site.step(now, 100)
        assert site.master.budget.limit_da == 320 * servants, site.master.budget
        for k in range(1, 20):
            now += 1.0
            reading = site.reading(now, 100 + 5 * servants * k)  # more house load each time: a lowering
            t0 = time.perf_counter_ns()
            cuts = site.master.mains_reading(reading, now)
            out.append((time.perf_counter_ns() - t0) / 1000)
            assert any(isinstance(m, SetLimit) for m in cuts), "an overload reading returns its cuts"
            site.deliver(cuts, now)
    return out


def set_limits_per_hour(noise_da: int, hours: int = 4) -> tuple[float, float]:
    """(per servant in the first hour, per servant per hour after it) under a steady noisy house."""
    site = StandIns(4, 64, 80.0, 24.0)
    house = flat_house(300, noise_da=noise_da, seed=noise_da)
    first = 0
    for k in range(1, hours * 7200 + 1):
        now = k * 0.5
        site.step(now, house.at(now) if k % 2 == 0 else None)
        if k == 7200:
            first = sum(site.set_limits.values())
    after = sum(site.set_limits.values()) - first
    return first / 4, after / 4 / (hours - 1)


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
    print()
    print(f"3. overload reading -> cuts returned (one Master.mains_reading call), tick {TIMING.tick_period * 1000:.0f} ms")
    print(f"{'servants':>8} {'median us':>10} {'p99 us':>8} {'max us':>8} {'of a tick':>10} {'x the policy':>13}")
    for n in (4, 16, 48):  # (48 x 32 A: near the largest limit a heartbeat carries)
        policy = statistics.median(overload_latency(n, runs=500))
        us = sorted(master_overload_latency(n))
        p99 = us[int(len(us) * 0.99)]
        print(f"{n:>8} {statistics.median(us):>10.1f} {p99:>8.1f} {us[-1]:>8.1f} "
              f"{p99 / (TIMING.tick_period * 1e6):>9.3%} {statistics.median(us) / policy:>12.1f}x")
    print()
    print("4. set-limits per servant, 4 servants wanting 32 A under a steady 30 A house (noise peak to peak), "
          "a reading per second, 4 h")
    print(f"{'house':>34} {'first hour':>11} {'per hour after':>15}")
    for p2p in (0, 2, 5):
        first_h, per_hour = set_limits_per_hour(p2p)
        print(f"{f'steady 30 A, noise {p2p / 10:.1f} A p-p':>34} {first_h:>11.1f} {per_hour:>15.2f}")


if __name__ == "__main__":
    main()
