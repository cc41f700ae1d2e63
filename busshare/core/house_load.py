"""The house behind a mains meter, as both the simulator and the meter emulator model it (pure).

Two things are shared so that a house in the simulator and a house served by the meter
emulator are the same house: the appliances' currents per phase (with the oven's thermostat),
and the CSV load format.  Each side keeps its own schedule: the emulator a day of seeded runs
per phase, the simulator random runs on the worst phase with explicit steps for its checks.

A load CSV is ``time,L1`` or ``time,L1,L2,L3`` rows: seconds and amps (+ import, - export),
a header line and ``#`` comments allowed, times increasing.  Each row holds until the next; the
first also holds before it, the last for ever.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ApplianceRating:
    """What an appliance draws while on, per phase, and its thermostat (on s, off s) if it has one."""

    name: str
    amps: tuple[float, float, float]
    duty: tuple[float, float] | None = None

    @property
    def worst_da(self) -> int:
        """On its most loaded phase, in 0.1 A."""
        return round(max(self.amps) * 10)


# a three-phase house on the order of the field notes' (docs/BUDGET.md: the sources)
FRIDGE = ApplianceRating("fridge", (0.7, 0.0, 0.0))
HEAT_PUMP = ApplianceRating("heat pump", (4.5, 4.5, 4.5))
OVEN = ApplianceRating("oven", (8.5, 8.5, 0.0), duty=(150.0, 90.0))
DRYER = ApplianceRating("dryer", (0.0, 10.5, 0.0))
KETTLE = ApplianceRating("kettle", (0.0, 0.0, 9.5))

LoadRow = tuple[float, tuple[float, ...]]


def parse_load_csv(text: str, name: str) -> tuple[LoadRow, ...]:
    """The rows of a load CSV; ValueError, one line naming ``name`` and the line, for anything wrong."""
    rows: list[LoadRow] = []
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        try:
            numbers = [float(c) for c in cells]
        except ValueError:
            if not rows and n == 1:
                continue  # a header
            raise ValueError(f"{name}:{n}: {','.join(cells)!r} is not numbers") from None
        if len(numbers) not in (2, 4):
            raise ValueError(f"{name}:{n}: want time,L1 or time,L1,L2,L3, got {len(numbers)} columns")
        if not all(math.isfinite(x) for x in numbers):
            raise ValueError(f"{name}:{n}: not a finite number")
        if rows and len(numbers) - 1 != len(rows[0][1]):
            raise ValueError(f"{name}:{n}: {len(numbers)} columns, the first row has {len(rows[0][1]) + 1}")
        if rows and numbers[0] <= rows[-1][0]:
            raise ValueError(f"{name}:{n}: time {numbers[0]:g} s does not increase (the row before: "
                             f"{rows[-1][0]:g} s)")
        rows.append((numbers[0], tuple(numbers[1:])))
    if not rows:
        raise ValueError(f"{name}: no rows")
    return tuple(rows)
