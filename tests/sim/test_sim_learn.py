"""A new master learning a unit whose car draws above its offer (PROTOCOL.md 8.2 rule 5; SIM.md finding 39).

The draw is counted above the offer, as an over-offer, and the unit is confirmed at its offer: anything more
is a raise, sent after the cuts. A master that confirms it at the draw (what main did before) raises its
pilot beside a cut still pending; the sweep's ``drawn`` check catches it on the seed that found it.
"""

from __future__ import annotations

import pytest

import busshare.sim.chaos
from busshare.frames import Status
from busshare.master import Master
from busshare.master import _Slot
from busshare.sim.chaos import chaos_scenario
from tests.support.sim_caught import caught

FOUND_ON = 1702  # the CI seed the sweep found it on


class ConfirmsAtDraw(Master):
    """Deliberately broken: learns a unit drawing above its offer at the draw, as its limit."""

    def _learn(self, slot: _Slot, st: Status, now: float) -> None:
        super()._learn(slot, st, now)
        if slot.over_offer and st.measured_da is not None:  # (a meterless unit's max is no draw: finding 44)
            slot.limit, slot.over_offer = slot.over_offer, 0


def test_a_master_confirming_a_learned_unit_at_its_draw_is_caught_by_the_sweep(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the seed as the sweep drew it when it found it: before the last SHAPES row (restart-at-meterless-cut, finding
    # 44) was appended, which adds a master restart to this seed's plan early on (appended last, it moved no
    # other draw, so leaving it out gives that plan back exactly)
    monkeypatch.setattr(busshare.sim.chaos, "SHAPES", busshare.sim.chaos.SHAPES[:-1])
    v = caught(chaos_scenario(FOUND_ON), FOUND_ON, master_cls=ConfirmsAtDraw,
               missed=f"chaos seed {FOUND_ON} no longer catches a master confirming a learned unit at its draw")
    assert v.check == "drawn", v
