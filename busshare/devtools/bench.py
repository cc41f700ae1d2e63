"""Bench ``EvseHardware`` for a desk, a demo or a test: no car, no relay.

``BenchHardware``: the pilot state is fixed (default C, a car charging), the
meter reading is fixed or absent, and every change of the offered current is
written as one line with the duty cycle the pilot would carry.
``FileControlledHardware``: the pilot state is read from a file, so a test can
plug and unplug a car (``busshare servant --pilot-file``).
"""

from __future__ import annotations

from collections.abc import Callable

from ..protocol.pilot import PilotState
from ..protocol.pilot import duty_for_current


class BenchHardware:
    """Implements ``busshare.core.hardware.EvseHardware``; logs pilot changes through ``log``."""

    def __init__(
        self,
        pilot: PilotState = PilotState.C,
        measured_da: int | None = None,
        log: Callable[[str], None] = print,
        origin: float = 0.0,
    ) -> None:
        self.pilot = pilot
        self.measured_da = measured_da
        self.log = log
        self.origin = origin  # printed times are ``now - origin``
        self.offer_da: int | None = None
        self.ev_stopped = False
        self.changes = 0

    def apply(self, offer_da: int, ev_stopped: bool, now: float) -> None:
        if offer_da == self.offer_da and ev_stopped == self.ev_stopped:
            return
        self.offer_da, self.ev_stopped = offer_da, ev_stopped
        self.changes += 1
        duty = duty_for_current(offer_da / 10) if not ev_stopped else 100.0
        stop = " EV STOPPED (contactor open)" if ev_stopped else ""
        self.log(f"{now - self.origin:9.3f} pilot: offer {offer_da / 10:.1f} A, duty {duty:.1f} %{stop}")

    def read(self, now: float) -> tuple[PilotState, int | None]:
        return self.pilot, self.measured_da


class FileControlledHardware:
    """Bench hardware whose pilot state is read from a file (one letter, A-F) on every tick.

    Lets a test or a demo plug and unplug a car without a car: ``echo C > ev3``.
    The simulated meter follows the offer at once while the car charges.
    """

    def __init__(self, path: str, log: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.offer_da = 0
        self.ev_stopped = False
        self.log = log
        self._pilot = PilotState.A

    def apply(self, offer_da: int, ev_stopped: bool, now: float) -> None:
        if self.log is not None and (offer_da, ev_stopped) != (self.offer_da, self.ev_stopped):
            self.log(f"{now:.3f} pilot: offer {offer_da / 10:.1f} A" + (" EV STOPPED" if ev_stopped else ""))
        self.offer_da, self.ev_stopped = offer_da, ev_stopped

    def read(self, now: float) -> tuple[PilotState, int | None]:
        try:
            with open(self.path, encoding="ascii") as f:
                text = f.read().strip().upper()[:1]
            self._pilot = PilotState[text] if text else PilotState.A
        except (OSError, KeyError, UnicodeDecodeError):
            pass  # keep the last good reading
        charging = self._pilot.charging and not self.ev_stopped
        return self._pilot, (self.offer_da if charging else 0)
