"""Random installations, cars and fault mixes for the chaos sweep: one seed, one scenario.

Everything is drawn from ``random.Random(seed)``, so a failing seed reproduces
with ``busshare.sim.chaos.chaos_scenario(seed)`` (and the trace the violation
prints).
"""

from __future__ import annotations

import random

from ..config import Config, ServantConfig, Timing, validate
from .bus import BusFaults
from .ev import EvProfile
from .scenario import CarPlan, FaultPlan, Scenario

MIXES = ("calm", "master", "servants", "bus", "conflicts", "everything")


def chaos_scenario(seed: int, hours: float = 1.0, n_servants: int | None = None, mix: str | None = None) -> Scenario:
    rng = random.Random(f"busshare-chaos:{seed}")
    # fault shapes added later draw from their own stream, so every earlier draw (and seed) stays as it was
    late = random.Random(f"busshare-chaos-late:{seed}")
    asked = (n_servants, mix)
    drawn_n = rng.choice((2, 3, 4, 4, 4, 6, 8))
    drawn_mix = rng.choice(MIXES)
    n = n_servants or drawn_n
    mix = mix or drawn_mix
    breaker = rng.choice((32, 40, 50, 63, 80, 100))
    limit = breaker * 8  # 80 % in 0.1 A
    servants = []
    failsafe_budget = limit
    for i in range(n):
        max_da = rng.choice((160, 320, 320, 480, 800))
        min_da = rng.choice((60, 60, 60, 80, 100))
        min_da = min(min_da, max_da)
        fs = rng.choice((0, 60, 60, min_da))
        if fs > failsafe_budget or fs > max_da:
            fs = 0
        failsafe_budget -= fs
        servants.append(ServantConfig(
            address=i + 1, min_da=min_da, max_da=max_da, priority=0, failsafe_da=fs, serial=0x10000 + i,
            has_meter=rng.random() < 0.75,
        ))
    config = Config(limit_da=limit, servants=tuple(servants), timing=Timing(), breaker_a=float(breaker))
    validate(config)
    duration = hours * 3600.0
    cars = []
    for s in servants:
        t = rng.uniform(0, 600)
        while t < duration:
            stay = rng.uniform(600, 4 * 3600)
            metered = s.has_meter
            profile = EvProfile(
                max_a=rng.choice((10.0, 16.0, 32.0, 48.0, 80.0)),
                need_kwh=rng.uniform(0.5, 40.0),
                taper_kwh=rng.choice((0.0, 0.5, 2.0)),
                reaction_min_s=0.2,
                reaction_max_s=rng.choice((1.0, 3.0, 5.0)),
                ramp_a_per_s=rng.choice((5.0, 20.0, 50.0)),
                compliant=not (metered and rng.random() < 0.1),
                sees_pilot_late=late.random() < 0.3,  # raises seen late too: a grant then a cut (issue 10)
            )
            leave = t + stay
            cars.append(CarPlan(s.address, round(t, 3), round(leave, 3) if leave < duration else None, profile))
            t = leave + rng.uniform(60, 3600)
    faults: list[FaultPlan] = []
    n_faults = 0 if mix == "calm" else max(1, int(rng.uniform(2, 8) * hours))
    kinds = {
        "master": ("master_crash", "master_shutdown"),
        "servants": ("servant_crash", "partition"),
        "bus": ("bus",),
        "conflicts": ("second_master", "twin"),
    }.get(mix, ("master_crash", "master_shutdown", "servant_crash", "partition", "bus", "second_master", "twin"))
    for _ in range(n_faults):
        at = round(rng.uniform(60, max(61.0, duration - 300)), 3)
        kind = rng.choice(kinds)
        address = rng.randint(1, n)
        if kind in ("master_crash", "master_shutdown"):
            faults.append(FaultPlan(at=at, kind=kind))
            faults.append(FaultPlan(at=round(at + rng.uniform(0.5, 120), 3), kind="master_restart"))
        elif kind == "servant_crash":
            faults.append(FaultPlan(at=at, kind=kind, address=address, duration_s=rng.uniform(1, 300),
                                    hold_s=rng.choice((0.0, 0.5, 1.0))))
        elif kind == "partition":
            faults.append(FaultPlan(at=at, kind=kind, address=address, duration_s=rng.uniform(0.5, 120),
                                    direction=rng.choice(("in", "out", "both"))))
        elif kind == "bus":
            faults.append(FaultPlan(at=at, kind=kind, duration_s=rng.uniform(5, 600), bus={
                "loss": rng.choice((0.01, 0.05, 0.2, 0.5)), "duplicate": rng.choice((0.0, 0.01, 0.05)),
                "corrupt": rng.choice((0.0, 0.01, 0.05)),
                # late copies 1-30 s old (gateways, UDP, multi-mailbox drivers) and reordering (issue 10)
                "late": late.choice((0.0, 0.01, 0.05)), "jitter_s": late.choice((0.0, 0.0, 0.05))}))
        elif kind == "second_master":
            faults.append(FaultPlan(at=at, kind=kind, master_id=rng.randint(2, 9), duration_s=rng.uniform(1, 120)))
        else:
            car = EvProfile(max_a=32.0, need_kwh=rng.uniform(1, 20)) if rng.random() < 0.5 else None
            faults.append(FaultPlan(at=at, kind="twin", address=address, duration_s=rng.uniform(2, 300),
                                    serial=0x20000 + seed % 1000, car=car))
    base = BusFaults(loss=rng.choice((0.0, 0.0, 0.001, 0.01)), duplicate=rng.choice((0.0, 0.001)),
                     corrupt=rng.choice((0.0, 0.001)))
    return Scenario(
        name=f"chaos-{seed}", config=config, duration_s=duration, seed=seed,
        description=f"chaos seed {seed}: {n} servants, mix {mix}", bus=base, cars=tuple(cars),
        faults=tuple(sorted(faults, key=lambda f: f.at)), first_epoch=rng.randint(0, 255),
        origin=f"python -m busshare.sim.chaos --hours {hours:g}" + (f" --servants {asked[0]}" if asked[0] else "")
        + (f" --mix {asked[1]}" if asked[1] else ""),
    )


def main(argv: list[str] | None = None) -> int:
    """Replay chaos seeds: ``python -m busshare.sim.chaos --seed 17 [--hours 1]``."""
    import argparse

    from .invariants import SimulationFailed
    from .runner import Simulation

    ap = argparse.ArgumentParser(prog="python -m busshare.sim.chaos", description=main.__doc__)
    ap.add_argument("--seed", type=int, nargs="+", required=True)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--servants", type=int, default=None)
    ap.add_argument("--mix", choices=MIXES, default=None)
    args = ap.parse_args(argv)
    status = 0
    for seed in args.seed:
        sc = chaos_scenario(seed, args.hours, args.servants, args.mix)
        try:
            res = Simulation(sc, seed, record=False).run()
        except SimulationFailed as exc:
            print(exc)
            status = 1
            continue
        print(res.summary.text())
    return status


if __name__ == "__main__":
    raise SystemExit(main())
