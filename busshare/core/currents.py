"""Currents per phase, as one value: what a mains meter measures and, later, what a budget allows.

Integers in 0.1 A like the rest of the core.  A one-phase site has one value, a
three-phase site three (L1, L2, L3).  Signed where the direction matters: a
mains reading is + import, - export.

Today the budget works on the worst phase (``worst``), as SmartEVSE and evcc do.
The value type is here so the per-phase budget of the next issue ("Three phases
and sub-circuits") changes arithmetic, not signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

PHASE_COUNTS = (1, 3)


@dataclass(frozen=True)
class PhaseCurrents:
    """Per-phase currents in 0.1 A, L1 first."""

    da: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.da) not in PHASE_COUNTS:
            raise ValueError(f"{len(self.da)} phases: a site has 1 or 3")
        if any(isinstance(x, bool) or not isinstance(x, int) for x in self.da):
            raise ValueError(f"phase currents {self.da!r} must be integers in 0.1 A")

    @classmethod
    def single(cls, da: int) -> PhaseCurrents:
        return cls((da,))

    @property
    def phases(self) -> int:
        return len(self.da)

    @property
    def worst(self) -> int:
        """The most loaded phase: the one a worst-phase budget is taken on."""
        return max(self.da)

    def __str__(self) -> str:
        return "/".join(f"{x / 10:.1f}" for x in self.da) + " A"
