"""PilotHistory: rule 2's memory of the last reaction allowance, on its own (the servant tests cover it in use)."""

from __future__ import annotations

from busshare.core.pilot_history import INF
from busshare.core.pilot_history import PilotHistory


def test_a_raise_counts_until_the_car_shows_it_has_seen_it() -> None:
    h = PilotHistory(allowance=5.0, tolerance_da=10)
    h.note_offer(100, 60, 0.0)  # a cut...
    h.note_offer(60, 160, 1.0)  # ...then a raise above both: the car may not have seen it yet
    assert h.raised_until(100) == 6.0 and h.climb_ends(100) == 6.0
    h.note_reading(60, 1.5)
    h.note_reading(120, 2.0)  # above every pilot of the allowance before the raise (+ tolerance): seen
    assert h.raised_until(100) == -INF


def test_a_rising_draw_holds_a_measured_ack_unless_it_came_down_again() -> None:
    h = PilotHistory(allowance=5.0, tolerance_da=10)
    h.note_reading(40, 0.0)
    h.note_reading(80, 1.0)  # up by more than the tolerance: a car ramping
    assert h.climb_ends(100) == 6.0
    h.note_reading(150, 2.0)  # above limit + tolerance since it rose: it came down from there, it saw a lower pilot
    assert h.climb_ends(100) == -INF


def test_lowerings_are_forgotten_after_the_allowance() -> None:
    h = PilotHistory(allowance=5.0, tolerance_da=10)
    h.note_offer(320, 160, 0.0)
    assert h.recent_lowerings(4.9) == [(0.0, 320)]
    assert h.recent_lowerings(5.0) == []
