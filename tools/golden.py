"""Golden simulator traces: the guard that a refactor changed the code's shape, not its behaviour.

For the built-in scenarios and a dozen chaos seeds it runs the real simulator and keeps the sha256 of
every frame on the bus (time, identifier, bytes) plus the run's summary.  A step that is *meant* to change
what the simulator does regenerates them (``--record``) and says why in its commit message.

    python tools/golden.py            # compare with tests/golden/traces.json; exit 1 on a difference
    python tools/golden.py --record   # write them again
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from busshare.sim.chaos import chaos_scenario
from busshare.sim.runner import Simulation
from busshare.sim.scenario import Scenario
from busshare.sim.scenario import builtin_names
from busshare.sim.scenario import load_scenario

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "traces.json"
CHAOS_SEEDS = range(1000, 1012)


def cases() -> list[str]:
    """The names of the golden runs: ``scenario:NAME`` and ``chaos:SEED``."""
    return [f"scenario:{n}" for n in builtin_names()] + [f"chaos:{s}" for s in CHAOS_SEEDS]


def _scenario(case: str) -> Scenario:
    kind, _, name = case.partition(":")
    return load_scenario(name) if kind == "scenario" else chaos_scenario(int(name))


def trace(case: str) -> dict[str, object]:
    """Run one case to its end and reduce it to what must not change."""
    sim = Simulation(_scenario(case), record=True, stop_on_violation=False)
    result = sim.run()
    digest = hashlib.sha256()
    for t, ident, data in result.capture:
        digest.update(f"{t:.9f} {ident:x} {data.hex()}\n".encode())
    summary = dataclasses.asdict(result.summary)
    summary.pop("steps")  # how the loop gets there may change; where it gets to may not
    if summary.get("budget") is None:
        summary.pop("budget", None)  # (a scenario without a moving budget: as before the budget existed)
    summary["violations"] = [str(v) for v in result.summary.violations]
    summary["energy_kwh"] = {k: round(v, 9) for k, v in result.summary.energy_kwh.items()}
    return {"frames_sha256": digest.hexdigest(), "frames": len(result.capture), "summary": summary}


def load() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(GOLDEN.read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", action="store_true", help="write tests/golden/traces.json again")
    args = ap.parse_args(argv)
    now = {}
    for case in cases():
        now[case] = trace(case)
        print(f"{case}: {now[case]['frames']} frames, sha256 {str(now[case]['frames_sha256'])[:16]}", file=sys.stderr)
    if args.record:
        GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
        return 0
    old = load()
    changed = sorted(c for c in set(old) | set(now) if old.get(c) != now.get(c))
    for c in changed:
        print(f"changed: {c}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
