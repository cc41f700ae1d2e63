"""The live budget's settings: ``[budget]`` of the site file (with its ``[budget.meter]`` and ``[budget.mqtt]``).

Read like every table of the site file, with the one ``Reader`` of ``core.problems``:
``read_budget`` turns ``[budget]`` into a ``BudgetConfig`` (placeholders where a value cannot be
read, each such value a ``Problem``), and ``budget_problems`` checks the typed budget against
the rest of the installation (the static limit, the servants' standalone failsafe currents, the
timing), so a budget built in code meets the same rules.  ``busshare.core.config`` calls both; a
``Config`` carries the result as ``config.budget`` (None: a fixed limit, as before).

Currents are amps in the file and ints in 0.1 A here, times are float seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..frames import MAX_CIRCUIT_DA
from .problems import Problem
from .problems import Reader
from .problems import Table
from .problems import amps_text
from .problems import deciamps
from .problems import key_path
from .problems import number
from .problems import seconds_text
from .setpoint import MAX_TTL_S
from .source_settings import MeterSettings
from .source_settings import MqttSettings
from .source_settings import meter_problems
from .source_settings import mqtt_problems
from .source_settings import read_meter
from .source_settings import read_mqtt

if TYPE_CHECKING:  # busshare.core.config imports this module: its Timing is only an annotation here
    from .config import Timing

MAX_HOLD_S = 3600.0
MAX_ALIGN_S = 10.0

# keys of [budget] exactly as issue 13 names them, then the tuning keys (defaults in BudgetConfig)
BUDGET_KEYS = ("main_limit_a", "margin_a", "fallback_a", "setpoint_ttl_s", "raise_hold_s", "raise_hold_max_s",
               "raise_step_a", "deadband_a", "resolution_a", "align_s", "meter", "mqtt")


@dataclass(frozen=True)
class BudgetConfig:
    """``[budget]``: the main service, the fallback floor, how the limit may move, and its sources."""

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
    meter: MeterSettings | None = None  # [budget.meter]: a mains meter
    mqtt: MqttSettings | None = None  # [budget.mqtt]: setpoints in, the effective limit out


def read_budget(r: Reader, t: Table, path: str = "budget") -> BudgetConfig:
    """``[budget]`` -> BudgetConfig, every problem of a value on its own added to ``r``.

    Valid only with ``budget_problems`` of the result (merged by ``r``) empty too.
    """
    r.unknown(t, path, BUDGET_KEYS)
    meter_t, mqtt_t = r.optional_table(t, "meter", path), r.optional_table(t, "mqtt", path)
    d = BudgetConfig
    main = r.get(t, "main_limit_a", path, deciamps, None)
    margin = r.get(t, "margin_a", path, deciamps, d.margin_da)
    fallback = r.require(t, "fallback_a", path, deciamps, 0,
                         "the current the EVSE circuit may always take, used while a source is stale")
    ttl = r.get(t, "setpoint_ttl_s", path, number, d.setpoint_ttl_s)
    hold = r.get(t, "raise_hold_s", path, number, d.raise_hold_s)
    return BudgetConfig(
        fallback_da=fallback,
        main_limit_da=main,
        margin_da=margin,
        setpoint_ttl_s=ttl,
        raise_hold_s=hold,
        raise_hold_max_s=r.get(t, "raise_hold_max_s", path, number, max(d.raise_hold_max_s, hold)),
        raise_step_da=r.get(t, "raise_step_a", path, deciamps, d.raise_step_da),
        deadband_da=r.get(t, "deadband_a", path, deciamps, d.deadband_da),
        resolution_da=r.get(t, "resolution_a", path, deciamps, d.resolution_da),
        align_s=r.get(t, "align_s", path, number, d.align_s),
        meter=None if meter_t is None else read_meter(r, meter_t, key_path(path, "meter")),
        mqtt=None if mqtt_t is None else read_mqtt(r, mqtt_t, key_path(path, "mqtt")),
    )


class _Problems:
    """The problems found so far, and the keys already out of range (a rule on them would only add noise)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.out: list[Problem] = []
        self.bad: set[str] = set()

    def add(self, key: str, value: str, message: str, *others: str) -> None:
        """A problem of ``key`` that also involves ``others``, unless one of them is already out of range."""
        if key not in self.bad and not self.bad & set(others):
            self.out.append(Problem(key_path(self.path, key), message, value,
                                    frozenset(o if "." in o else key_path(self.path, o) for o in others)))

    def out_of_range(self, key: str, value: str, message: str) -> None:
        self.add(key, value, message)
        self.bad.add(key)


def budget_problems(b: BudgetConfig, *, limit_da: int, failsafes: Sequence[tuple[str, int]], timing: Timing,
                    path: str = "budget", limit_key: str = "site.limit_a") -> list[Problem]:
    """Every problem of a budget in its installation, key paths ``<path>.<key>``.

    ``limit_da`` is the static circuit limit (``limit_key`` in the file), ``failsafes`` the
    servants' standalone failsafe currents with their key paths (``servant[0].failsafe_a``):
    the fallback must fit between them.
    """
    p = _Problems(path)
    _range_problems(b, p)
    _service_problems(b, p, limit_da, failsafes, limit_key)
    _tuning_problems(b, p, timing)
    # the sources
    if b.meter is not None:
        p.out += meter_problems(b.meter, key_path(path, "meter"))
    if b.mqtt is not None:
        p.out += mqtt_problems(b.mqtt, key_path(path, "mqtt"))
    return p.out


def _range_problems(b: BudgetConfig, p: _Problems) -> None:
    """Each value on its own: currents, the resolution and the times in their ranges."""
    currents = {"main_limit_a": b.main_limit_da, "margin_a": b.margin_da, "fallback_a": b.fallback_da,
                "raise_step_a": b.raise_step_da, "deadband_a": b.deadband_da}
    for key, da in currents.items():
        lowest = 1 if key == "main_limit_a" else 0
        if da is not None and not lowest <= da <= MAX_CIRCUIT_DA:
            p.out_of_range(key, amps_text(da), f"must be a current {'above' if lowest else 'of at least'} 0 and at "
                                               f"most {amps_text(MAX_CIRCUIT_DA)} A")
    if not 1 <= b.resolution_da <= 100:
        p.out_of_range("resolution_a", amps_text(b.resolution_da), "must be 0.1-10 A")
    for key, value, high in (("setpoint_ttl_s", b.setpoint_ttl_s, MAX_TTL_S), ("raise_hold_s", b.raise_hold_s, MAX_HOLD_S),
                             ("raise_hold_max_s", b.raise_hold_max_s, MAX_HOLD_S), ("align_s", b.align_s, MAX_ALIGN_S)):
        if not 0 < value <= high:
            p.out_of_range(key, seconds_text(value), f"must be a number of seconds above 0 and at most {high:g}")


def _service_problems(b: BudgetConfig, p: _Problems, limit_da: int, failsafes: Sequence[tuple[str, int]],
                      limit_key: str) -> None:
    """The main service, and the fallback between the standalone failsafes and the static limit."""
    main, margin, fallback = b.main_limit_da, b.margin_da, b.fallback_da
    if main is None and b.meter is not None:
        p.out.append(Problem(key_path(p.path, "main_limit_a"), "is missing: a mains meter ([budget.meter]) needs the "
                             "main service's continuous limit (per phase)"))
    if main is not None and margin >= main:
        p.add("margin_a", amps_text(margin), f"is not below main_limit_a {amps_text(main)} A: nothing would be left",
              "main_limit_a")
    elif main is not None and fallback > main - margin:
        p.add("fallback_a", amps_text(fallback), f"does not fit under main_limit_a - margin_a "
              f"({amps_text(main - margin)} A): even an idle house would overload the main service",
              "main_limit_a", "margin_a")
    if fallback > limit_da:
        p.add("fallback_a", amps_text(fallback), f"is above the site's limit {amps_text(limit_da)} A: the fallback is "
              "part of what the EVSE circuit may take", limit_key)
    total = sum(da for _, da in failsafes)
    if total > fallback:
        p.add("fallback_a", amps_text(fallback), f"is below the servants' standalone failsafe currents, which sum to "
              f"{amps_text(total)} A: servants without a master could take more than the fallback; lower some "
              "failsafe_a (0 = pause) or raise fallback_a", *(fp for fp, _ in failsafes))


def _tuning_problems(b: BudgetConfig, p: _Problems, timing: Timing) -> None:
    """How the limit may move: the raise hold against the compliance window, steps against the resolution."""
    window = timing.budget_compliance_bound
    if b.raise_hold_s < window:
        p.add("raise_hold_s", seconds_text(b.raise_hold_s), f"s is shorter than the compliance window "
              f"{seconds_text(window)} s (reaction_allowance + ack_timeout + tick_period): a raise could come before "
              "the last cut has taken effect", "timing.reaction_allowance", "timing.ack_timeout", "timing.tick_period")
    if b.raise_hold_max_s < b.raise_hold_s:
        p.add("raise_hold_max_s", seconds_text(b.raise_hold_max_s),
              f"s is below raise_hold_s {seconds_text(b.raise_hold_s)} s", "raise_hold_s")
    if b.raise_step_da < b.resolution_da:
        p.add("raise_step_a", amps_text(b.raise_step_da), f"is below resolution_a {amps_text(b.resolution_da)} A: a "
              "raise could not move the limit", "resolution_a")
    if b.deadband_da < b.resolution_da:
        p.add("deadband_a", amps_text(b.deadband_da), f"is below resolution_a {amps_text(b.resolution_da)} A: meter "
              "noise would make the limit chatter", "resolution_a")
