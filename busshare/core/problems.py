"""One problem found in a site file: its key path and what is wrong, in one line.

``check-config`` prints every problem, a program starting up prints the first; both
name the key (``budget.fallback_a``) so an installer finds the line to change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """``key`` is the dotted path from the site file's root; ``message`` says what is wrong."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"
