"""What each EVSE offered and drew over time: the shared shape of a run.

The simulator produces a ``Timeline``; the capture decoder builds the same
structure from a recorded bus log, so one plotting helper serves both.
Samples are recorded on change only (a step function: a sample holds until
the next sample for the same address).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field

from ..protocol.pilot import PilotState


@dataclass(frozen=True, slots=True)
class Sample:
    """From ``t`` on, EVSE ``address`` offers ``offered_da`` and its car draws ``drawn_da``."""

    t: float
    address: int
    offered_da: int
    drawn_da: int | None  # None: not known (no meter, or not in the capture)
    pilot: PilotState


@dataclass(frozen=True, slots=True)
class Mark:
    """Something notable at ``t`` (plug-in, fault, failsafe...); ``address`` None = whole bus."""

    t: float
    address: int | None
    kind: str
    detail: str = ""


@dataclass
class Timeline:
    limit_da: int
    samples: list[Sample] = field(default_factory=list)
    events: list[Mark] = field(default_factory=list)
    # a moving budget (the simulator's budget world): on change only, each holding until the next
    budget: list[tuple[float, int]] = field(default_factory=list)  # the effective limit
    house: list[tuple[float, int]] = field(default_factory=list)  # the house's load on the main service
    main_limit_da: int | None = None  # the main service's limit

    def addresses(self) -> list[int]:
        return sorted({s.address for s in self.samples})

    def series(self, address: int) -> list[Sample]:
        return [s for s in self.samples if s.address == address]

    def at(self, address: int, t: float) -> Sample | None:
        """The sample in force for ``address`` at time ``t`` (None before the first)."""
        found: Sample | None = None
        for s in self.samples:
            if s.address == address:
                if s.t > t:
                    break
                found = s
        return found

    def total_offered_at(self, t: float) -> int:
        return sum(s.offered_da for s in self._in_force(t))

    def total_drawn_at(self, t: float) -> int:
        return sum(s.drawn_da or 0 for s in self._in_force(t))

    def _in_force(self, t: float) -> Iterator[Sample]:
        latest: dict[int, Sample] = {}
        for s in self.samples:
            if s.t > t:
                break
            latest[s.address] = s
        return iter(latest.values())

    def marks(self, kind: str) -> list[Mark]:
        return [m for m in self.events if m.kind == kind]
