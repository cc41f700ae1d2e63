"""The base of the counters a transport, link or line emulator keeps and prints on exit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Counts:
    """Counters as ``int`` fields; ``as_dict`` gives them by name (per-kind tallies and other fields left out)."""

    def as_dict(self) -> dict[str, int]:
        return {name: value for name, value in vars(self).items() if isinstance(value, int)}
