"""What a run that broke an invariant raises: the violation, the seed and the trace to reproduce it.

A module of its own: an exception class stays a Python class where the simulator's event path is compiled
(tools/mypyc_build.py: mypyc builds no class on AssertionError).
"""

from __future__ import annotations

from .invariants import Violation


class SimulationFailed(AssertionError):
    """An invariant broke: carries the seed and the trace to reproduce it."""

    def __init__(self, violation: Violation, seed: int, scenario: str, trace: list[str], origin: str = "") -> None:
        self.violation = violation
        self.seed = seed
        self.scenario = scenario
        self.trace = trace
        how = origin or f"busshare sim --scenario {scenario}"
        lines = [
            f"invariant violated in scenario {scenario}, seed {seed}: {violation}",
            f"reproduce: {how} --seed {seed}",
            f"last {len(trace)} trace entries:",
            *("  " + t for t in trace),
        ]
        super().__init__("\n".join(lines))
