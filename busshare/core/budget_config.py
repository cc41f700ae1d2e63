"""The live budget's settings: ``[site] id`` and ``[budget]`` of the site file, as frozen data.

``budget_config_from_mapping`` takes the parsed site file (a plain mapping) and
returns the settings or every problem found, each naming its key path
(``budget.fallback_a``) in one line.  It needs what the rest of the site file
says about the circuit (its static limit, the servants' standalone failsafe
currents, the timing) because the fallback must fit both.

``[budget.meter]`` and ``[budget.mqtt]`` belong to the source modules
(``core.source_settings``); here they are only checked to be tables and kept
as they are, so the two parsers can be joined.

Currents are amps in the file and ints in 0.1 A here, times are float seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..config import Timing
from ..frames import MAX_CIRCUIT_DA
from .problems import Problem

DEFAULT_SITE_ID = "site"
MAX_SITE_ID_BYTES = 64  # one MQTT topic level, short enough to type
MAX_TTL_S = 86400.0  # a setpoint lives at most a day; an energy manager renews it
MAX_HOLD_S = 3600.0

# keys of [budget] exactly as issue 13 names them, then the tuning keys (defaults in BudgetConfig)
BUDGET_KEYS = ("main_limit_a", "margin_a", "fallback_a", "setpoint_ttl_s", "raise_hold_s", "raise_hold_max_s",
               "raise_step_a", "deadband_a", "resolution_a", "align_s", "meter", "mqtt")


def compliance_window_s(t: Timing) -> float:
    """Longest time the counted sum may stay above a lowered limit (PROTOCOL.md 8.2, the budget rule).

    The cut is sent in the step that lowered the limit; a car has the reaction allowance to
    follow it, one lost frame costs one re-send (``ack_timeout``), plus a tick of latency.
    Meant to become the derived property ``Timing.budget_compliance_bound`` (docs/BUDGET-POLICY.md).
    """
    return t.reaction_allowance + t.ack_timeout + t.tick_period


@dataclass(frozen=True)
class BudgetConfig:
    """``[budget]``: the main service, the fallback floor and how the limit may move."""

    fallback_da: int  # what the EVSE circuit may always take, even with the house at its maximum
    main_limit_da: int | None = None  # the main service's continuous limit per phase (needed with a meter)
    margin_da: int = 20  # kept free below the main limit: meter error, alignment, unmetered cars
    setpoint_ttl_s: float = 60.0  # default time-to-live of an external setpoint
    raise_hold_s: float = 15.0  # the room must hold this long before a raise
    raise_hold_max_s: float = 300.0  # the hold doubles after a bounce, up to this; a raise standing this long halves it
    raise_step_da: int = 60  # a raise adds at most this (one more car at 6 A)
    deadband_da: int = 10  # a raise leaves this much of the measured headroom unused (noise)
    resolution_da: int = 5  # meter headroom is rounded down to this grid
    align_s: float = 1.0  # a metered EV reading this far from the mains reading's time: not used to raise
    meter: Mapping[str, object] | None = None  # [budget.meter] as given, for core.source_settings
    mqtt: Mapping[str, object] | None = None  # [budget.mqtt] as given


@dataclass(frozen=True)
class SiteBudget:
    """What the site file says about the moving budget; ``budget`` None: a fixed limit, as before."""

    site_id: str = DEFAULT_SITE_ID
    budget: BudgetConfig | None = None


# ---------------------------------------------------------------------------
# reading values: each helper records a Problem and returns None when the value is bad


class _Reader:
    def __init__(self, table: Mapping[str, object], where: str) -> None:
        self.table = table
        self.where = where
        self.problems: list[Problem] = []

    def bad(self, key: str, message: str) -> None:
        self.problems.append(Problem(f"{self.where}.{key}", message))

    def amps(self, key: str, default: int | None) -> int | None:
        """Amps with at most one decimal -> 0.1 A; ``default`` when absent."""
        if key not in self.table:
            return default
        v = self.table[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.bad(key, f"{v!r} is not a current in A")
            return None
        if v < 0:
            self.bad(key, f"{v:g} A is negative")
            return None
        if v * 10 > MAX_CIRCUIT_DA:
            self.bad(key, f"{v:g} A is above {MAX_CIRCUIT_DA / 10:g} A")
            return None
        da = round(v * 10)
        if abs(da - v * 10) > 1e-6:
            self.bad(key, f"{v!r} A has more than one decimal (0.1 A resolution)")
            return None
        return da

    def seconds(self, key: str, default: float, hi: float) -> float | None:
        v = self.table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.bad(key, f"{v!r} is not a number of seconds")
            return None
        if not 0 < v <= hi:
            self.bad(key, f"{v:g} s must be above 0 and at most {hi:g} s")
            return None
        return float(v)


def _a(da: int) -> str:
    return f"{da / 10:.1f} A"


def site_id_problem(site_id: object) -> str | None:
    """Why ``site_id`` cannot be one MQTT topic level (``busshare/<id>/limit``), or None."""
    if not isinstance(site_id, str) or not site_id:
        return f"{site_id!r} must be a non-empty string"
    bad = sorted({c for c in site_id if c in "/+#" or not c.isprintable()})
    if bad:
        return f"{site_id!r} contains {', '.join(repr(c) for c in bad)} (it is one MQTT topic level)"
    if len(site_id.encode("utf-8")) > MAX_SITE_ID_BYTES:
        return f"{site_id!r} is longer than {MAX_SITE_ID_BYTES} bytes"
    return None


def _site_id(doc: Mapping[str, object], problems: list[Problem]) -> str:
    site = doc.get("site", {})
    if not isinstance(site, Mapping):
        problems.append(Problem("site", "must be a table ([site])"))
        return DEFAULT_SITE_ID
    if "id" not in site:
        return DEFAULT_SITE_ID
    why = site_id_problem(site["id"])
    if why is not None:
        problems.append(Problem("site.id", why))
        return DEFAULT_SITE_ID
    return str(site["id"])


def _tables(r: _Reader) -> tuple[Mapping[str, object] | None, Mapping[str, object] | None]:
    out: list[Mapping[str, object] | None] = []
    for key in ("meter", "mqtt"):
        t = r.table.get(key)
        if t is not None and not isinstance(t, Mapping):
            r.bad(key, f"must be a table ([budget.{key}])")
            t = None
        out.append(t)
    return out[0], out[1]


def _check_fallback(r: _Reader, fallback: int, main: int | None, margin: int, circuit_limit_da: int,
                    failsafes_da: Sequence[int]) -> None:
    if fallback > circuit_limit_da:
        r.bad("fallback_a", f"{_a(fallback)} is above the circuit limit {_a(circuit_limit_da)} (site limit_a)")
    total = sum(failsafes_da)
    if total > fallback:
        r.bad("fallback_a", f"{_a(fallback)} is below the servants' standalone failsafe currents, which sum to "
                            f"{_a(total)}: lower some failsafe_a (0 = pause) or raise fallback_a")
    if main is not None and fallback > main - margin:
        r.bad("fallback_a", f"{_a(fallback)} does not fit below main_limit_a - margin_a ({_a(main - margin)}): "
                            "even an idle house would overload the main service")


def _check_tuning(r: _Reader, hold: float | None, hold_max: float | None, step: int | None, deadband: int | None,
                  resolution: int | None, timing: Timing) -> None:
    window = compliance_window_s(timing)
    if hold is not None and hold < window:
        r.bad("raise_hold_s", f"{hold:g} s is shorter than the compliance window {window:g} s (reaction allowance "
                              "+ ack timeout + tick): a raise could come before the last cut has taken effect")
    if hold is not None and hold_max is not None and hold_max < hold:
        r.bad("raise_hold_max_s", f"{hold_max:g} s is below raise_hold_s {hold:g} s")
    if resolution is not None and not 1 <= resolution <= 100:
        r.bad("resolution_a", f"{_a(resolution)} must be 0.1 A to 10 A")
        resolution = None
    if step is not None and resolution is not None and step < resolution:
        r.bad("raise_step_a", f"{_a(step)} is below resolution_a {_a(resolution)}: a raise could not move the limit")
    if deadband is not None and resolution is not None and deadband < resolution:
        r.bad("deadband_a", f"{_a(deadband)} is below resolution_a {_a(resolution)}: meter noise would make "
                            "the limit chatter")


def budget_config_from_mapping(
    doc: Mapping[str, object], *, circuit_limit_da: int, failsafes_da: Sequence[int], timing: Timing | None = None
) -> tuple[SiteBudget | None, list[Problem]]:
    """The parsed site file -> (SiteBudget, []) or (None, every problem).

    ``circuit_limit_da`` is the static circuit limit (``[site] limit_a`` or 80 % of ``breaker_a``),
    ``failsafes_da`` the servants' standalone failsafe currents: the fallback must fit between them.
    """
    timing = timing or Timing()
    problems: list[Problem] = []
    site_id = _site_id(doc, problems)
    raw = doc.get("budget")
    if raw is None:
        return (None, problems) if problems else (SiteBudget(site_id), [])
    if not isinstance(raw, Mapping):
        return None, [*problems, Problem("budget", "must be a table ([budget])")]
    r = _Reader(raw, "budget")
    for key in sorted(set(raw) - set(BUDGET_KEYS)):
        r.bad(key, f"unknown key (known: {', '.join(BUDGET_KEYS)})")
    meter, mqtt = _tables(r)
    main = r.amps("main_limit_a", None)
    if main == 0:
        r.bad("main_limit_a", "0 A: the main service must carry something")
        main = None
    if "main_limit_a" not in raw and meter is not None:
        r.bad("main_limit_a", "missing: a mains meter needs the main service's continuous limit (per phase)")
    margin = r.amps("margin_a", BudgetConfig.margin_da)
    if main is not None and margin is not None and margin >= main:
        r.bad("margin_a", f"{_a(margin)} leaves nothing of main_limit_a {_a(main)}")
        margin = None
    fallback = r.amps("fallback_a", None)
    if "fallback_a" not in raw:
        r.bad("fallback_a", "missing: the current the EVSE circuit may always take, used while a source is stale")
    if fallback is not None and margin is not None:
        _check_fallback(r, fallback, main, margin, circuit_limit_da, failsafes_da)
    ttl = r.seconds("setpoint_ttl_s", BudgetConfig.setpoint_ttl_s, MAX_TTL_S)
    hold = r.seconds("raise_hold_s", BudgetConfig.raise_hold_s, MAX_HOLD_S)
    hold_max = r.seconds("raise_hold_max_s", max(BudgetConfig.raise_hold_max_s, hold or 0.0), MAX_HOLD_S)
    step = r.amps("raise_step_a", BudgetConfig.raise_step_da)
    deadband = r.amps("deadband_a", BudgetConfig.deadband_da)
    resolution = r.amps("resolution_a", BudgetConfig.resolution_da)
    align = r.seconds("align_s", BudgetConfig.align_s, 10.0)
    _check_tuning(r, hold, hold_max, step, deadband, resolution, timing)
    problems += r.problems
    if problems:
        return None, problems
    assert fallback is not None and margin is not None and ttl is not None and hold is not None
    assert hold_max is not None and step is not None and deadband is not None and resolution is not None
    assert align is not None
    return SiteBudget(site_id, BudgetConfig(
        fallback_da=fallback, main_limit_da=main, margin_da=margin, setpoint_ttl_s=ttl, raise_hold_s=hold,
        raise_hold_max_s=hold_max, raise_step_da=step, deadband_da=deadband, resolution_da=resolution,
        align_s=align, meter=meter, mqtt=mqtt,
    )), []
