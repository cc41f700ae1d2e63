"""Control-pilot PWM duty cycle <-> offered current (SAE J1772 / IEC 61851-1).

    6 A .. 51 A   duty % = A / 0.6          (10 % .. 85 %)
    51 A .. 80 A  duty % = A / 2.5 + 64     (85 % .. 96 %)
    100 %         no current offered (state B1/C1: PWM off or steady +12 V)
    5 %           digital communication required (ISO 15118)

SAE and IEC put the band edges at slightly different places, so busshare only
ever sends duty cycles computed from currents inside [6 A, 80 A].
"""

from __future__ import annotations

import enum

MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 80.0
LOW_BAND_TOP_A = 51.0
DUTY_NO_CURRENT = 100.0
DUTY_DIGITAL = 5.0
MIN_DUTY = MIN_CURRENT_A / 0.6  # 10 %
BAND_EDGE_DUTY = LOW_BAND_TOP_A / 0.6  # 85 %
MAX_DUTY = MAX_CURRENT_A / 2.5 + 64  # 96 %


class PilotError(ValueError):
    """A current or duty cycle outside the pilot's valid bands."""


class PilotState(enum.IntEnum):
    """Pilot states as the EVSE sees the line; the value is the wire encoding."""

    A = 0
    B = 1
    C = 2
    D = 3
    E = 4
    F = 5

    @property
    def voltage(self) -> str:
        return _STATE_INFO[self][0]

    @property
    def meaning(self) -> str:
        return _STATE_INFO[self][1]

    # (both read for every servant on every allocation pass and servant step: compared as the ints they are,
    # B = 1 to D = 3, rather than by membership in a tuple of members looked up on the class each time)

    @property
    def vehicle_present(self) -> bool:
        return 1 <= self <= 3  # B, C or D

    @property
    def charging(self) -> bool:
        return 2 <= self <= 3  # C or D


_STATE_INFO = {
    PilotState.A: ("+12 V", "no vehicle connected"),
    PilotState.B: ("+9 V", "vehicle connected, not charging"),
    PilotState.C: ("+6 V", "charging"),
    PilotState.D: ("+3 V", "charging, ventilation required"),
    PilotState.E: ("0 V", "short circuit or no power"),
    PilotState.F: ("-12 V", "EVSE fault"),
}


def duty_for_current(amps: float) -> float:
    """Duty cycle (%) that offers ``amps``; 0 A means PWM off (100 %)."""
    if amps == 0:
        return DUTY_NO_CURRENT
    if not MIN_CURRENT_A <= amps <= MAX_CURRENT_A:
        raise PilotError(f"{amps} A cannot be offered: the pilot range is 6-80 A (or 0 for none)")
    if amps <= LOW_BAND_TOP_A:
        return amps / 0.6
    return amps / 2.5 + 64


def current_for_duty(duty: float) -> float:
    """Current (A) a car may draw at ``duty`` %; 0 for 100 % (no current)."""
    if duty == DUTY_NO_CURRENT:
        return 0.0
    if abs(duty - DUTY_DIGITAL) < 1e-9:
        raise PilotError("5 % duty means digital communication (ISO 15118), not an analogue current")
    if MIN_DUTY <= duty <= BAND_EDGE_DUTY:
        return duty * 0.6
    if BAND_EDGE_DUTY < duty <= MAX_DUTY:
        return (duty - 64) * 2.5
    raise PilotError(f"{duty} % is outside the current-offering bands (10-96 %, or 100 % for none)")


def clamp_current(amps: float, local_max: float = MAX_CURRENT_A) -> float:
    """Largest offerable current <= ``amps`` and <= ``local_max``; below 6 A becomes 0 (pause)."""
    top = min(amps, local_max, MAX_CURRENT_A)
    return top if top >= MIN_CURRENT_A else 0.0


def clamp_da(deci_amps: int, local_max_da: int = 800) -> int:
    """``clamp_current`` in the protocol's 0.1 A units."""
    top = min(deci_amps, local_max_da, 800)
    return top if top >= 60 else 0
