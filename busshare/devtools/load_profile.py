"""House-load profiles for the meter emulator: a built-in house, or a CSV file.  Pure and deterministic.

A profile gives the net current per phase at a time ``t`` (seconds of the profile's day):
positive while the house imports, negative while solar exports more than the house uses.
The built-in house is a base load with noise plus appliances switching on a schedule drawn
from a seed: a fridge, a heat pump (three-phase), an oven (two phases, its thermostat cycling),
a dryer, a kettle, and optionally solar with passing clouds.  The same seed gives the same day.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..core.house_load import DRYER
from ..core.house_load import FRIDGE
from ..core.house_load import HEAT_PUMP
from ..core.house_load import KETTLE
from ..core.house_load import OVEN
from ..core.house_load import ApplianceRating
from ..core.house_load import LoadRow
from ..core.house_load import parse_load_csv

DAY_S = 86400.0
NOISE_STEP_S = 0.5  # the noise changes every half second, like a meter's measurement window


class LoadProfile(Protocol):
    phases: int

    def currents(self, t: float) -> tuple[float, ...]:
        """Net current per phase in A at ``t`` (+ import, - export)."""
        ...

    def active(self, t: float) -> list[str]:
        """What is switched on at ``t`` (for status lines)."""
        ...


@dataclass(frozen=True)
class Run:
    """An appliance on from ``start`` for ``duration`` seconds (within the day)."""

    start: float
    duration: float

    def on(self, t: float) -> bool:
        return self.start <= t < self.start + self.duration


@dataclass(frozen=True)
class Appliance:
    rating: ApplianceRating  # amps per phase while on, and the thermostat (on s, off s) while a run lasts
    runs: tuple[Run, ...]

    @property
    def name(self) -> str:
        return self.rating.name

    def draw(self, t: float) -> tuple[float, float, float] | None:
        for run in self.runs:
            if run.on(t):
                if self.rating.duty is not None:
                    on_s, off_s = self.rating.duty
                    if (t - run.start) % (on_s + off_s) >= on_s:
                        return None
                return self.rating.amps
        return None


def _runs(rng: random.Random, starts_h: Sequence[float], minutes: float, jitter_min: float = 20.0) -> tuple[Run, ...]:
    return tuple(Run(h * 3600 + rng.uniform(-jitter_min, jitter_min) * 60, minutes * 60) for h in starts_h)


def _cycles(rng: random.Random, on_min: float, off_min: float) -> tuple[Run, ...]:
    """A compressor's day: on for ``on_min``, off for ``off_min``, from a random phase."""
    period = (on_min + off_min) * 60
    t = -rng.uniform(0, period)
    out = []
    while t < DAY_S:
        out.append(Run(t, on_min * 60))
        t += period
    return tuple(out)


class HouseProfile:
    """A three-phase house (or the same loads on one phase: ``phases=1``), seeded."""

    def __init__(self, seed: int = 1, phases: int = 3, solar: bool = False) -> None:
        if phases not in (1, 3):
            raise ValueError(f"a house has 1 or 3 phases, not {phases}")
        self.seed = seed
        self.phases = phases
        self.solar = solar
        rng = random.Random(seed)
        self.base = tuple(0.6 + rng.uniform(0.0, 0.8) for _ in range(3))
        kettle_times = sorted(rng.uniform(6.5, 22.5) for _ in range(8))
        self.appliances = (
            Appliance(FRIDGE, _cycles(rng, 12, 25)),
            Appliance(HEAT_PUMP, _cycles(rng, 20, 25)),
            Appliance(OVEN, _runs(rng, (12.0, 17.5), 50)),
            Appliance(DRYER, _runs(rng, (10.0, 19.5), 60)),
            Appliance(KETTLE, tuple(Run(h * 3600, 150.0) for h in kettle_times)),
        )
        self.clouds = tuple(_runs(rng, [rng.uniform(8, 17) for _ in range(6)], rng.uniform(5, 30), 0))

    def _solar(self, t: float) -> float:
        """Solar current per phase (A, >= 0): a sine from 07:00 to 19:00, 7 A per phase at noon, clouds dim it."""
        hour = t / 3600
        if not self.solar or not 7 <= hour <= 19:
            return 0.0
        amps = 7.0 * math.sin(math.pi * (hour - 7) / 12)
        return amps * (0.3 if any(c.on(t) for c in self.clouds) else 1.0)

    def _noise(self, t: float, phase: int) -> float:
        step = math.floor(t / NOISE_STEP_S)
        return random.Random((self.seed << 40) ^ (phase << 36) ^ (step & 0xFFFFFFFFF)).uniform(-0.15, 0.15)

    def currents(self, t: float) -> tuple[float, ...]:
        day = t % DAY_S
        load = list(self.base)
        for appliance in self.appliances:
            draw = appliance.draw(day)
            if draw is not None:
                load = [a + b for a, b in zip(load, draw, strict=True)]
        sun = self._solar(day)
        net = [a - sun + self._noise(t, i) for i, a in enumerate(load)]
        if self.phases == 1:
            return (sum(net),)
        return tuple(net)

    def active(self, t: float) -> list[str]:
        day = t % DAY_S
        on = [a.name for a in self.appliances if a.draw(day) is not None]
        return on + (["solar"] if self._solar(day) > 0 else [])


class CsvProfile:
    """A load CSV (``core.house_load``): each row holds until the next, the first before it, the last for ever."""

    def __init__(self, rows: Sequence[LoadRow]) -> None:
        if not rows:
            raise ValueError("no rows")
        self.times = [t for t, _ in rows]
        self.values = [v for _, v in rows]
        self.phases = len(self.values[0])

    @classmethod
    def load(cls, path: str | Path) -> CsvProfile:
        """Read a CSV file; ValueError (one line, with the line number) for anything wrong, OSError if unreadable."""
        return cls(parse_load_csv(Path(path).read_text(encoding="utf-8"), str(path)))

    def _index(self, t: float) -> int:
        return max(0, bisect.bisect_right(self.times, t) - 1)

    def currents(self, t: float) -> tuple[float, ...]:
        return self.values[self._index(t)]

    def active(self, t: float) -> list[str]:
        return [f"csv row {self._index(t) + 1}"]
