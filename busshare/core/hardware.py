"""The servant's hardware side: what a product implements to embed busshare.

A product wires three things: the pilot PWM generator (and contactor), the
pilot-state detector, and optionally a current meter.  The runtime calls
``apply`` after every state-machine step and ``read`` every tick.
"""

from __future__ import annotations

from typing import Protocol
from typing import runtime_checkable

from ..protocol.pilot import PilotState


@runtime_checkable
class EvseHardware(Protocol):
    def apply(self, offer_da: int, ev_stopped: bool, now: float) -> None:
        """Offer ``offer_da`` (0.1 A) on the pilot; 0 means PWM off (no current).

        ``ev_stopped`` True means the EV ignored a lowered pilot: open the
        contactor / turn the pilot off until it is False again.
        Use ``pilot.duty_for_current(offer_da / 10)`` for the duty cycle.
        """
        ...

    def read(self, now: float) -> tuple[PilotState, int | None]:
        """(pilot state, measured current in 0.1 A or None when there is no meter)."""
        ...
