"""The installation config: a TOML file turned into a validated, frozen ``Config``.

Everything a wrong number could make unsafe is checked here, once, so the
state machines can trust their inputs.  Every problem is reported as a
``ConfigError`` whose text is one line naming the field and the rule, e.g.
``servant 3: min 5.0 A is below 6 A``.

Times are float seconds; currents are ints in 0.1 A (``_da``).  In the TOML
file currents are written in amps (``max_a = 32``) because that is what an
installer reads off a breaker.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .frames import FIRST_SERVANT, HEARD_PAGES, LAST_SERVANT, MAX_CIRCUIT_DA, MAX_EVSE_DA, MIN_OFFER_DA

CONTINUOUS_FRACTION = 0.8  # NEC 625.41 / common practice: continuous load <= 80 % of the breaker
MIN_HEARTBEAT_RATIO = 3.0  # failsafe timeout >= 3 heartbeat periods: two lost heartbeats are not a failsafe


class ConfigError(ValueError):
    """A config problem.  ``str(e)`` is one line naming the problem."""


@dataclass(frozen=True)
class Timing:
    """Protocol timing, in seconds.  The defaults are fixed project-wide (see docs/PROTOCOL.md section 8).

    With the defaults a servant fails safe at most failsafe_timeout + tick_period = 1.55 s after the
    last heartbeat it heard (< 2 s on CAN).
    """

    heartbeat_period: float = 0.2  # master -> all
    status_period: float = 0.5  # servant -> master (32 servants at 125 kbit/s stay < 10 % bus load)
    failsafe_timeout: float = 1.5  # servant: no valid heartbeat this long -> failsafe
    heard_timeout: float = 3.0  # servant: no heartbeat showing the master hears it this long -> failsafe
    tick_period: float = 0.05  # call tick() at least this often
    reaction_allowance: float = 5.0  # IEC 61851-1: an EV must follow a lowered pilot within 5 s
    ack_timeout: float = 1.0  # master: retransmit an unacked set-limit (same txn) after this
    rotation_interval: float = 900.0  # shortage: who waits changes every 15 min
    failsafe_hold: float = 10.0  # servant: a master-assigned failsafe is held this long, then min(armed, standalone)
    silent_margin: float = 1.5  # extra time before a silent servant or an unknown one is counted at its failsafe
    servant_silent_after: float = 1.5  # master: no frame from a servant this long -> it is silent
    conflict_hold: float = 3.0  # a twin / second master is considered present this long after last heard
    reclaim_after: float = 60.0  # a car drawing clearly less than offered this long gives the surplus back

    @property
    def unheard_bound(self) -> float:
        """Longest a servant the master cannot hear keeps its offer after the master last said it hears it.

        A servant fails safe heard_timeout after the last heartbeat whose heard bit for it was set (the
        master clears the bit once the servant is silent), within one tick (rule 4).
        """
        return self.heard_timeout + self.tick_period

    @property
    def silent_count_after(self) -> float:
        """Time after a servant went silent at which the master counts it at its failsafe current (rule 3).

        The servant needs failsafe_timeout to notice a dead link (it hears no master), or heard_timeout
        to notice the master no longer hears it (it hears the master: a mute transmitter, a one-way
        partition), and then its EV needs up to the reaction allowance to actually lower its draw.
        """
        return max(self.failsafe_timeout, self.heard_timeout) + self.reaction_allowance + self.silent_margin

    @property
    def learning_timeout(self) -> float:
        """Longest learning period of a new master (rule 5): after it, silent servants count at standalone failsafe.

        A servant that does not hear the new master is in failsafe within failsafe_timeout and at
        min(armed, standalone) failsafe_hold later; one that hears it but is not confirmed by a
        set-limit falls to min(offer, standalone) failsafe_hold after it first heard it.  Its EV then
        needs the reaction allowance.
        """
        return self.failsafe_timeout + self.failsafe_hold + self.reaction_allowance + self.silent_margin


@dataclass(frozen=True)
class ServantConfig:
    """One EVSE of the installation, as the master (and the servant itself) knows it."""

    address: int
    min_da: int = MIN_OFFER_DA  # lowest current worth offering its EV (>= 6 A)
    max_da: int = 320  # the unit's wiring/hardware rating: never offered more (rule 7)
    priority: int = 0  # 0-255, higher is served first under shortage
    failsafe_da: int = MIN_OFFER_DA  # standalone failsafe: 0 (pause) or min..max
    serial: int = 0  # unique unit serial; 0 = not pinned in the config
    has_meter: bool = True  # a current meter lets the servant ack cuts by measurement
    tolerance_da: int = 10  # a cut has taken effect when measured <= limit + this


@dataclass(frozen=True)
class Config:
    """A validated installation."""

    limit_da: int  # continuous circuit limit shared by all servants
    servants: tuple[ServantConfig, ...]
    timing: Timing = field(default_factory=Timing)
    breaker_a: float | None = None  # the breaker rating, when given
    master_id: int = 1
    reclaim_margin_da: int = 20  # a reclaimed car keeps draw + 2 A
    reclaim_threshold_da: int = 30  # "clearly less": drawing at least 3 A under its offer

    def servant(self, address: int) -> ServantConfig | None:
        for s in self.servants:
            if s.address == address:
                return s
        return None


# ---------------------------------------------------------------------------
# validation


def _a(da: int) -> str:
    return f"{da / 10:.1f} A"


def validate_timing(t: Timing) -> None:
    for f in fields(t):
        v = getattr(t, f.name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ConfigError(f"timing.{f.name}: {v!r} must be a positive number of seconds")
    if t.heartbeat_period * MIN_HEARTBEAT_RATIO > t.failsafe_timeout:
        raise ConfigError(
            f"timing: heartbeat_period {t.heartbeat_period:g} s is not well below failsafe_timeout "
            f"{t.failsafe_timeout:g} s (need at least {MIN_HEARTBEAT_RATIO:g} heartbeats per timeout)"
        )
    if t.heard_timeout < t.failsafe_timeout or t.heard_timeout < 2 * HEARD_PAGES * t.heartbeat_period:
        raise ConfigError(
            f"timing: heard_timeout {t.heard_timeout:g} s must be at least failsafe_timeout {t.failsafe_timeout:g} s "
            f"and two rounds of the {HEARD_PAGES} heartbeat pages ({2 * HEARD_PAGES * t.heartbeat_period:g} s)"
        )
    if t.tick_period > t.heartbeat_period:
        raise ConfigError(f"timing: tick_period {t.tick_period:g} s is longer than heartbeat_period "
                          f"{t.heartbeat_period:g} s")
    if t.status_period * 2 > t.servant_silent_after:
        raise ConfigError(f"timing: servant_silent_after {t.servant_silent_after:g} s must be at least two "
                          f"status periods ({t.status_period:g} s)")
    if t.rotation_interval < t.reaction_allowance * 2:
        raise ConfigError(f"timing: rotation_interval {t.rotation_interval:g} s is too short (under twice the "
                          f"reaction allowance)")


def validate_servant(s: ServantConfig) -> None:
    who = f"servant {s.address}"
    if not FIRST_SERVANT <= s.address <= LAST_SERVANT:
        raise ConfigError(f"{who}: address must be {FIRST_SERVANT}-{LAST_SERVANT}")
    if s.min_da < MIN_OFFER_DA:
        raise ConfigError(f"{who}: min {_a(s.min_da)} is below 6 A")
    if s.max_da > MAX_EVSE_DA:
        raise ConfigError(f"{who}: max {_a(s.max_da)} is above 80 A")
    if s.min_da > s.max_da:
        raise ConfigError(f"{who}: min {_a(s.min_da)} is above max {_a(s.max_da)}")
    if s.failsafe_da != 0 and not MIN_OFFER_DA <= s.failsafe_da <= s.max_da:
        raise ConfigError(f"{who}: failsafe {_a(s.failsafe_da)} must be 0 (pause) or 6 A up to max {_a(s.max_da)}")
    if not 0 <= s.priority <= 255:
        raise ConfigError(f"{who}: priority {s.priority} must be 0-255")
    if not 0 <= s.serial < 1 << 32:
        raise ConfigError(f"{who}: serial {s.serial} must be a 32-bit number")
    if not 0 <= s.tolerance_da <= 100:
        raise ConfigError(f"{who}: tolerance {_a(s.tolerance_da)} must be 0-10 A")


def validate(cfg: Config) -> None:
    """Raise ConfigError (one line) for the first problem found."""
    validate_timing(cfg.timing)
    if not 0 < cfg.limit_da <= MAX_CIRCUIT_DA:
        raise ConfigError(f"limit {_a(cfg.limit_da)} must be above 0 and at most {_a(MAX_CIRCUIT_DA)}")
    if cfg.limit_da < MIN_OFFER_DA:
        raise ConfigError(f"limit {_a(cfg.limit_da)} is below 6 A: no EV could ever charge")
    if cfg.breaker_a is not None:
        if not math.isfinite(cfg.breaker_a) or cfg.breaker_a <= 0:
            raise ConfigError(f"breaker {cfg.breaker_a!r} A must be a positive current")
        top = math.floor(cfg.breaker_a * 10 * CONTINUOUS_FRACTION + 1e-6)
        if cfg.limit_da > top:
            raise ConfigError(f"limit {_a(cfg.limit_da)} is above 80 % of the {cfg.breaker_a:g} A breaker "
                              f"({_a(top)})")
    if not 0 <= cfg.master_id <= 255:
        raise ConfigError(f"master_id {cfg.master_id} must be 0-255")
    if not cfg.servants:
        raise ConfigError("no servants configured: add at least one [[servant]]")
    seen: dict[int, int] = {}
    serials: dict[int, int] = {}
    for s in cfg.servants:
        validate_servant(s)
        if s.address in seen:
            raise ConfigError(f"servant {s.address}: duplicate address")
        seen[s.address] = 1
        if s.serial:
            if s.serial in serials:
                raise ConfigError(f"servant {s.address}: serial {s.serial:#x} already used by servant "
                                  f"{serials[s.serial]}")
            serials[s.serial] = s.address
    total = sum(s.failsafe_da for s in cfg.servants)
    if total > cfg.limit_da:
        raise ConfigError(f"standalone failsafe currents sum to {_a(total)}, above the limit {_a(cfg.limit_da)} "
                          f"(lower some failsafe_a, 0 = pause)")
    if not 0 <= cfg.reclaim_margin_da <= 200 or not 10 <= cfg.reclaim_threshold_da <= 300:
        raise ConfigError("reclaim_margin_a must be 0-20 A and reclaim_threshold_a 1-30 A")


# ---------------------------------------------------------------------------
# TOML


_TIMING_KEYS = {f.name for f in fields(Timing)}
_SITE_KEYS = {"breaker_a", "limit_a", "master_id", "reclaim_margin_a", "reclaim_threshold_a"}
_SERVANT_KEYS = {"address", "min_a", "max_a", "priority", "failsafe_a", "serial", "meter", "tolerance_a"}


def _amps(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a current in A")
    da = round(value * 10)
    if abs(da - value * 10) > 1e-6:
        raise ConfigError(f"{where}: {value!r} A has more than one decimal (0.1 A resolution)")
    return da


def _int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {value!r} is not an integer")
    return value


def _unknown(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (known: {', '.join(sorted(allowed))})")


def _servant(i: int, t: Any) -> ServantConfig:
    if not isinstance(t, dict):
        raise ConfigError(f"servant #{i + 1}: must be a table")
    if "address" not in t:
        raise ConfigError(f"servant #{i + 1}: missing address")
    address = _int(f"servant #{i + 1}: address", t["address"])
    who = f"servant {address}"
    _unknown(who, t, _SERVANT_KEYS)
    if "max_a" not in t:
        raise ConfigError(f"{who}: missing max_a (the unit's rated current)")
    kw: dict[str, Any] = {"address": address, "max_da": _amps(f"{who}: max_a", t["max_a"])}
    if "min_a" in t:
        kw["min_da"] = _amps(f"{who}: min_a", t["min_a"])
    if "failsafe_a" in t:
        kw["failsafe_da"] = _amps(f"{who}: failsafe_a", t["failsafe_a"])
    if "tolerance_a" in t:
        kw["tolerance_da"] = _amps(f"{who}: tolerance_a", t["tolerance_a"])
    if "priority" in t:
        kw["priority"] = _int(f"{who}: priority", t["priority"])
    if "serial" in t:
        kw["serial"] = _int(f"{who}: serial", t["serial"])
    if "meter" in t:
        if not isinstance(t["meter"], bool):
            raise ConfigError(f"{who}: meter must be true or false")
        kw["has_meter"] = t["meter"]
    return ServantConfig(**kw)


def parse_config(text: str) -> Config:
    """TOML text -> validated Config.  Raises ConfigError (one line)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {str(exc).splitlines()[0]}") from None
    _unknown("config", doc, {"site", "timing", "servant"})
    site = doc.get("site", {})
    if not isinstance(site, dict):
        raise ConfigError("[site] must be a table")
    _unknown("site", site, _SITE_KEYS)
    breaker: float | None = None
    if "breaker_a" in site:
        b = site["breaker_a"]
        if isinstance(b, bool) or not isinstance(b, (int, float)):
            raise ConfigError(f"site: breaker_a {b!r} is not a current in A")
        breaker = float(b)
    if "limit_a" in site:
        limit = _amps("site: limit_a", site["limit_a"])
    elif breaker is not None:
        limit = math.floor(breaker * 10 * CONTINUOUS_FRACTION + 1e-6)
    else:
        raise ConfigError("site: give breaker_a (limit = 80 % of it) or limit_a")
    timing_t = doc.get("timing", {})
    if not isinstance(timing_t, dict):
        raise ConfigError("[timing] must be a table")
    _unknown("timing", timing_t, _TIMING_KEYS)
    for k, v in timing_t.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"timing.{k}: {v!r} is not a number of seconds")
    timing = Timing(**{k: float(v) for k, v in timing_t.items()})
    raw_servants = doc.get("servant", [])
    if not isinstance(raw_servants, list):
        raise ConfigError("servants are written as [[servant]] tables")
    servants = tuple(_servant(i, t) for i, t in enumerate(raw_servants))
    kw: dict[str, Any] = {}
    if "master_id" in site:
        kw["master_id"] = _int("site: master_id", site["master_id"])
    if "reclaim_margin_a" in site:
        kw["reclaim_margin_da"] = _amps("site: reclaim_margin_a", site["reclaim_margin_a"])
    if "reclaim_threshold_a" in site:
        kw["reclaim_threshold_da"] = _amps("site: reclaim_threshold_a", site["reclaim_threshold_a"])
    cfg = Config(limit_da=limit, servants=servants, timing=timing, breaker_a=breaker, **kw)
    validate(cfg)
    return cfg


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file.  Unreadable files are a ConfigError too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{path}: cannot read config: {reason}") from None
    try:
        return parse_config(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
