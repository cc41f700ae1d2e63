"""``python -m busshare.cli.chaos``: replay chaos-sweep seeds (busshare.sim.chaos), one summary or violation each."""

from __future__ import annotations

import argparse

from ..sim.chaos import GENERATOR
from ..sim.chaos import MIXES
from ..sim.chaos import chaos_scenario
from ..sim.failure import SimulationFailed
from ..sim.runner import Simulation


def main(argv: list[str] | None = None) -> int:
    """Replay chaos seeds: ``python -m busshare.cli.chaos --seed 17 [--hours 1]``."""
    ap = argparse.ArgumentParser(prog="python -m busshare.cli.chaos", description=main.__doc__)
    ap.add_argument("--seed", type=int, nargs="+", required=True)
    ap.add_argument("--hours", type=float, default=None, help="simulated hours (default: as the sweep draws it)")
    ap.add_argument("--servants", type=int, default=None)
    ap.add_argument("--mix", choices=MIXES, default=None)
    ap.add_argument("--generator", type=int, choices=(1, 2), default=GENERATOR,
                    help="1: the generator before the compound fault shapes (seeds found with it, e.g. issue 10's)")
    args = ap.parse_args(argv)
    status = 0
    for seed in args.seed:
        sc = chaos_scenario(seed, args.hours, args.servants, args.mix, args.generator)
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
