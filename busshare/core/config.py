"""The installation config: a TOML file turned into a validated, frozen ``Config``.

Everything a wrong number could make unsafe is checked here, once, so the
state machines can trust their inputs.  The file is data first: ``tomllib``
makes it a mapping, ``config_from_mapping`` makes that the frozen dataclasses,
and ``problems`` lists every problem with its key path and the value as
written, e.g. ``servant[2].min_a: 5 is below 6 A (a pilot offers 6-80 A)``.
``validate`` checks a ``Config`` built in code by the same rules.

The moving budget's tables (``[site] id``, ``[budget]``, ``[budget.meter]``,
``[budget.mqtt]``) are read and checked by ``core.budget_config`` and
``core.source_settings`` with the same ``Reader``, into ``Config.site_id`` and
``Config.budget``.

Times are float seconds; currents are ints in 0.1 A (``_da``).  In the TOML
file currents are written in amps (``max_a = 32``) because that is what an
installer reads off a breaker.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from functools import cached_property
from pathlib import Path

from ..errors import ConfigError
from ..frames import FIRST_SERVANT
from ..frames import HEARD_PAGES
from ..frames import LAST_SERVANT
from ..frames import MAX_CIRCUIT_DA
from ..frames import MAX_EVSE_DA
from ..frames import MAX_MASTER_ID
from ..frames import MIN_OFFER_DA
from .budget_config import BudgetConfig
from .budget_config import budget_problems
from .budget_config import read_budget
from .problems import Invalid
from .problems import Problem
from .problems import Reader
from .problems import Table
from .problems import amps
from .problems import amps_text as _a
from .problems import boolean
from .problems import deciamps
from .problems import integer
from .problems import number
from .problems import raise_first
from .problems import seconds_text as _s
from .problems import utf8
from .problems import written
from .setpoint import DEFAULT_SITE_ID
from .setpoint import site_id
from .setpoint import site_id_problem

__all__ = [
    "BudgetConfig", "Config", "ConfigError", "Problem", "ServantConfig", "Timing", "config_from_mapping",
    "config_problems", "load_config", "load_mapping", "mapping_from_bytes", "parse_config", "problems",
    "read_config", "validate", "validate_servant", "validate_timing",
]

CONTINUOUS_FRACTION = 0.8  # NEC 625.41 / common practice: continuous load <= 80 % of the breaker
MIN_HEARTBEAT_RATIO = 3.0  # failsafe timeout >= 3 heartbeat periods: two lost heartbeats are not a failsafe
MAX_TIMER_S = 86400.0  # no protocol timer is longer than a day: a larger one is a typo
MIN_TIMER_S = 0.001  # nor shorter than a millisecond (about one CAN frame at 125 kbit/s): a tick that short is a busy loop
MAX_BREAKER_A = 10000.0  # a feeder breaker above 10 kA is a typo


@dataclass(frozen=True)
class Timing:
    """Protocol timing, in seconds.  The defaults are fixed project-wide (see docs/PROTOCOL.md section 8).

    The bounds derived from them are worked out once per instance (the master reads ``silent_count_after``
    for every silent servant in every allocation pass).

    With the defaults a servant fails safe at most failsafe_timeout + tick_period = 1.55 s after the
    last heartbeat it heard (< 2 s on CAN).
    """

    heartbeat_period: float = 0.2  # master -> all
    status_period: float = 0.5  # servant -> master (32 servants at 125 kbit/s stay < 10 % bus load)
    failsafe_timeout: float = 1.5  # servant: no valid heartbeat this long -> failsafe
    heard_timeout: float = 3.5  # servant: no heartbeat showing the master hears it this long -> failsafe
    tick_period: float = 0.05  # call tick() at least this often
    reaction_allowance: float = 5.0  # IEC 61851-1: an EV must follow a lowered pilot within 5 s
    ack_timeout: float = 1.0  # master: retransmit an unacked set-limit (same txn) after this
    rotation_interval: float = 900.0  # shortage: who waits changes every 15 min
    failsafe_hold: float = 10.0  # servant: a master-assigned failsafe is held this long, then min(armed, standalone)
    silent_margin: float = 1.5  # extra time before a silent servant or an unknown one is counted at its failsafe
    servant_silent_after: float = 1.5  # master: no frame from a servant this long -> it is silent
    conflict_hold: float = 3.0  # a twin / second master is considered present this long after last heard
    reclaim_after: float = 60.0  # a car drawing clearly less than offered this long gives the surplus back;
    # a car paused this long (in B while offered) is parked at its minimum (PROTOCOL.md 8.5)

    @cached_property
    def unheard_bound(self) -> float:
        """Longest a servant the master cannot hear keeps its offer after the master last said it hears it.

        A servant fails safe heard_timeout after the last heartbeat whose heard bit for it was set (the
        master clears the bit once the servant is silent), within one tick (rule 4).
        """
        return self.heard_timeout + self.tick_period

    @cached_property
    def silent_count_after(self) -> float:
        """Time after a servant went silent at which the master counts it at its failsafe current (rule 3).

        The servant needs failsafe_timeout to notice a dead link (it hears no master), or heard_timeout
        to notice the master no longer hears it (it hears the master: a mute transmitter, a one-way
        partition), and then its EV needs up to the reaction allowance to actually lower its draw.
        """
        return max(self.failsafe_timeout, self.heard_timeout) + self.reaction_allowance + self.silent_margin

    @cached_property
    def learning_timeout(self) -> float:
        """Longest learning period of a new master (rule 5): after it, silent servants count at standalone failsafe.

        A servant that does not hear the new master is in failsafe within failsafe_timeout and at
        min(armed, standalone) failsafe_hold later; one that hears it but is not confirmed by a
        set-limit falls to min(offer, standalone) failsafe_hold after it first heard it.  Its EV then
        needs the reaction allowance.
        """
        return self.failsafe_timeout + self.failsafe_hold + self.reaction_allowance + self.silent_margin

    @cached_property
    def budget_compliance_bound(self) -> float:
        """Longest time the counted sum may stay above a lowered limit (PROTOCOL.md 8.2, rule 9).

        The cuts go out in the step that lowered the limit; a car has the reaction allowance to follow
        (a meterless unit acks then), one lost SET_LIMIT or ACK costs one re-send (``ack_timeout``), and a
        tick covers the latency.
        """
        return self.reaction_allowance + self.ack_timeout + self.tick_period


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
    site_id: str = DEFAULT_SITE_ID  # [site] id: the MQTT topics are busshare/<site_id>/...
    budget: BudgetConfig | None = None  # [budget]: a moving limit; None: the static limit, as before

    def servant(self, address: int) -> ServantConfig | None:
        for s in self.servants:
            if s.address == address:
                return s
        return None


# ---------------------------------------------------------------------------
# the rules, on the typed config: every problem, each with the key path the file would use


def timing_problems(t: Timing, path: str = "timing") -> list[Problem]:
    """Every problem of the protocol timing (key paths ``timing.<name>``)."""
    out: list[Problem] = []
    bad: set[str] = set()
    for f in fields(t):
        v = getattr(t, f.name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not MIN_TIMER_S <= v <= MAX_TIMER_S:
            out.append(Problem(f"{path}.{f.name}", f"must be a number of seconds {MIN_TIMER_S:g}-{MAX_TIMER_S:g}",
                               repr(v)))
            bad.add(f.name)

    def rule(key: str, other: str, message: str) -> None:
        if key not in bad and other not in bad:
            out.append(Problem(f"{path}.{key}", message, _s(getattr(t, key)), frozenset({f"{path}.{other}"})))

    if t.heartbeat_period * MIN_HEARTBEAT_RATIO > t.failsafe_timeout:
        rule("heartbeat_period", "failsafe_timeout",
             f"s is not well below failsafe_timeout {_s(t.failsafe_timeout)} s (need at least "
             f"{MIN_HEARTBEAT_RATIO:g} heartbeats per timeout)")
    if t.heard_timeout < t.failsafe_timeout:
        rule("heard_timeout", "failsafe_timeout", f"s is below failsafe_timeout {_s(t.failsafe_timeout)} s")
    elif t.heard_timeout < 2 * HEARD_PAGES * t.heartbeat_period:
        rule("heard_timeout", "heartbeat_period",
             f"s is under two rounds of the {HEARD_PAGES} heartbeat pages ({_s(2 * HEARD_PAGES * t.heartbeat_period)} s "
             f"at heartbeat_period {_s(t.heartbeat_period)} s)")
    if t.tick_period > t.heartbeat_period:
        rule("tick_period", "heartbeat_period", f"s is longer than heartbeat_period {_s(t.heartbeat_period)} s")
    if t.status_period * 2 > t.servant_silent_after:
        rule("servant_silent_after", "status_period",
             f"s must be at least two status periods (status_period {_s(t.status_period)} s)")
    if t.rotation_interval < t.reaction_allowance * 2:
        rule("rotation_interval", "reaction_allowance",
             f"s is under twice the reaction_allowance {_s(t.reaction_allowance)} s")
    return out


def servant_problems(s: ServantConfig, path: str = "servant") -> list[Problem]:
    """Every problem of one servant on its own (key paths ``<path>.<key>``, as written in a [[servant]])."""
    out: list[Problem] = []

    def add(key: str, value: str, message: str, *others: str) -> None:
        out.append(Problem(f"{path}.{key}", message, value, frozenset(f"{path}.{o}" for o in others)))

    if not FIRST_SERVANT <= s.address <= LAST_SERVANT:
        add("address", str(s.address), f"must be {FIRST_SERVANT}-{LAST_SERVANT}")
    min_ok = MIN_OFFER_DA <= s.min_da <= MAX_EVSE_DA
    max_ok = MIN_OFFER_DA <= s.max_da <= MAX_EVSE_DA
    for key, da, ok in (("min_a", s.min_da, min_ok), ("max_a", s.max_da, max_ok)):
        if not ok:
            where = "below 6 A" if da < MIN_OFFER_DA else f"above {_a(MAX_EVSE_DA)} A"
            add(key, _a(da), f"is {where} (a pilot offers 6-{_a(MAX_EVSE_DA)} A)")
    if min_ok and max_ok and s.min_da > s.max_da:
        add("min_a", _a(s.min_da), f"is above max_a {_a(s.max_da)}", "max_a")
    if s.failsafe_da != 0 and not MIN_OFFER_DA <= s.failsafe_da <= min(s.max_da, MAX_EVSE_DA):
        add("failsafe_a", _a(s.failsafe_da), f"must be 0 (pause) or 6 A up to max_a ({_a(s.max_da)} A)", "max_a")
    if not 0 <= s.priority <= 255:
        add("priority", str(s.priority), "must be 0-255")
    if not 0 <= s.serial <= 0xFFFFFFFF:
        add("serial", str(s.serial), "must be a 32-bit number (0-4294967295; 0 = not pinned)")
    if not 0 <= s.tolerance_da <= 100:
        add("tolerance_a", _a(s.tolerance_da), "must be 0-10 A")
    return out


def breaker_problem(breaker_a: float) -> str | None:
    """What is wrong with a breaker rating, if anything (shared by the reader, which derives the limit from it)."""
    if not math.isfinite(breaker_a) or not 0 < breaker_a <= MAX_BREAKER_A:
        return f"must be a current above 0 and at most {MAX_BREAKER_A:g} A"
    return None


def config_problems(cfg: Config, servant_paths: Sequence[str] | None = None) -> list[Problem]:
    """Every problem of a whole installation, in file order: site, timing, each servant, then the sums.

    ``servant_paths`` are the key paths of ``cfg.servants`` (default ``servant[i]``).
    """
    paths = list(servant_paths) if servant_paths is not None else [f"servant[{i}]" for i in range(len(cfg.servants))]
    out = _site_problems(cfg)
    out += timing_problems(cfg.timing)
    out += _servants_problems(cfg.servants, paths)
    total = sum(s.failsafe_da for s in cfg.servants)
    if cfg.servants and total > cfg.limit_da:
        out.append(Problem("servant", f"the standalone failsafe currents (failsafe_a) sum to {_a(total)} A, above "
                           f"the limit {_a(cfg.limit_da)} A: lower some failsafe_a (0 = pause)",
                           involves=frozenset({"site.limit_a", *(f"{p}.failsafe_a" for p in paths)})))
    if cfg.budget is not None:
        out += budget_problems(cfg.budget, limit_da=cfg.limit_da, timing=cfg.timing,
                               failsafes=[(f"{p}.failsafe_a", s.failsafe_da) for s, p in zip(cfg.servants, paths,
                                                                                             strict=True)])
    return out


def _site_problems(cfg: Config) -> list[Problem]:
    """``[site]``: the limit (against the breaker), the master id, the site id and the reclaim settings."""
    out: list[Problem] = []
    limit_ok = MIN_OFFER_DA <= cfg.limit_da <= MAX_CIRCUIT_DA
    if cfg.limit_da < MIN_OFFER_DA:
        out.append(Problem("site.limit_a", "is below 6 A: no EV could ever charge", _a(cfg.limit_da)))
    elif cfg.limit_da > MAX_CIRCUIT_DA:
        out.append(Problem("site.limit_a", f"is above {_a(MAX_CIRCUIT_DA)} A, the largest limit a heartbeat carries",
                           _a(cfg.limit_da)))
    if cfg.breaker_a is not None:
        why = breaker_problem(cfg.breaker_a)
        if why is not None:
            out.append(Problem("site.breaker_a", why, f"{cfg.breaker_a:g}"))
        elif limit_ok:
            top = math.floor(cfg.breaker_a * 10 * CONTINUOUS_FRACTION + 1e-6)
            if cfg.limit_da > top:
                out.append(Problem("site.limit_a", f"is above 80 % of breaker_a {cfg.breaker_a:g} A ({_a(top)} A)",
                                   _a(cfg.limit_da), frozenset({"site.breaker_a"})))
    if not 0 <= cfg.master_id <= MAX_MASTER_ID:
        out.append(Problem("site.master_id", f"must be 0-{MAX_MASTER_ID} (4 bits in the heartbeat)", str(cfg.master_id)))
    why = site_id_problem(cfg.site_id)
    if why is not None:
        out.append(Problem("site.id", why, written(cfg.site_id)))
    if not 0 <= cfg.reclaim_margin_da <= 200:
        out.append(Problem("site.reclaim_margin_a", "must be 0-20 A", _a(cfg.reclaim_margin_da)))
    if not 10 <= cfg.reclaim_threshold_da <= 300:
        out.append(Problem("site.reclaim_threshold_a", "must be 1-30 A", _a(cfg.reclaim_threshold_da)))
    return out


def _servants_problems(servants: Sequence[ServantConfig], paths: Sequence[str]) -> list[Problem]:
    """Each servant on its own, then addresses and pinned serials that two servants share."""
    out: list[Problem] = []
    if not servants:
        out.append(Problem("servant", "no servants: add at least one [[servant]] table"))
    first: dict[int, str] = {}
    serials: dict[int, str] = {}
    for s, path in zip(servants, paths, strict=True):
        out += servant_problems(s, path)
        if s.address in first:
            out.append(Problem(f"{path}.address", f"is also the address of {first[s.address]}", str(s.address),
                               frozenset({f"{first[s.address]}.address"})))
        else:
            first[s.address] = path
        if s.serial:
            if s.serial in serials:
                out.append(Problem(f"{path}.serial", f"is also the serial of {serials[s.serial]}", f"{s.serial:#x}",
                                   frozenset({f"{serials[s.serial]}.serial"})))
            else:
                serials[s.serial] = path
    return out


def validate_timing(t: Timing) -> None:
    """Raise ConfigError for the first problem of ``t``."""
    raise_first(timing_problems(t))


def validate_servant(s: ServantConfig, path: str = "servant") -> None:
    """Raise ConfigError for the first problem of one servant on its own."""
    raise_first(servant_problems(s, path))


def validate(cfg: Config) -> None:
    """Raise ConfigError (one line, with its key path) for the first problem found."""
    raise_first(config_problems(cfg))


# ---------------------------------------------------------------------------
# the mapping (a parsed TOML file) -> the typed config

_SITE_KEYS = ("id", "breaker_a", "limit_a", "master_id", "reclaim_margin_a", "reclaim_threshold_a")
_SERVANT_KEYS = ("address", "min_a", "max_a", "priority", "failsafe_a", "serial", "meter", "tolerance_a")
_TIMING_KEYS = tuple(f.name for f in fields(Timing))
_PLACEHOLDER_ADDRESS = 0  # a servant whose address cannot be read (never a valid one)


def _servant(r: Reader, path: str, t: Table) -> ServantConfig:
    r.unknown(t, path, _SERVANT_KEYS)
    default = ServantConfig(_PLACEHOLDER_ADDRESS)
    return ServantConfig(
        address=r.require(t, "address", path, integer, _PLACEHOLDER_ADDRESS),
        max_da=r.require(t, "max_a", path, deciamps, default.max_da, "the unit's rated current"),
        min_da=r.get(t, "min_a", path, deciamps, default.min_da),
        failsafe_da=r.get(t, "failsafe_a", path, deciamps, default.failsafe_da),
        tolerance_da=r.get(t, "tolerance_a", path, deciamps, default.tolerance_da),
        priority=r.get(t, "priority", path, integer, default.priority),
        serial=r.get(t, "serial", path, integer, default.serial),
        has_meter=r.get(t, "meter", path, boolean, default.has_meter),
    )


def read_config(doc: Table) -> tuple[Config, list[Problem]]:
    """The config a mapping describes (placeholders where it cannot be read) and every problem of it.

    The config is valid only when the list is empty.
    """
    r = Reader()
    if not doc:
        r.add("", "the installation is empty: no [site] and no servants (see examples/site.toml)")
        return Config(MAX_CIRCUIT_DA, ()), r.problems
    r.unknown(doc, "", ("site", "budget", "timing", "servant"))
    site = r.table(doc, "site", "")
    r.unknown(site, "site", _SITE_KEYS)
    breaker = r.get(site, "breaker_a", "site", amps, None)
    derived = False
    if "limit_a" in site:
        limit = r.get(site, "limit_a", "site", deciamps, MAX_CIRCUIT_DA)
    elif breaker is not None and breaker_problem(breaker) is None:
        limit, derived = math.floor(breaker * 10 * CONTINUOUS_FRACTION + 1e-6), True
    else:
        limit = MAX_CIRCUIT_DA  # placeholder: the breaker's own problem (or the next line) says why
        r.bad.add("site.limit_a")
        if "breaker_a" not in site:
            r.add("site", "give breaker_a (the limit is 80 % of it) or limit_a")
    timing_t = r.table(doc, "timing", "")
    r.unknown(timing_t, "timing", _TIMING_KEYS)
    seconds = {k: r.get(timing_t, k, "timing", number, getattr(Timing, k)) for k in _TIMING_KEYS if k in timing_t}
    servant_tables = r.tables(doc, "servant", "")
    budget_t = r.optional_table(doc, "budget", "")
    cfg = Config(
        limit_da=limit,
        servants=tuple(_servant(r, path, t) for path, t in servant_tables),
        timing=Timing(**seconds),
        breaker_a=breaker,
        master_id=r.get(site, "master_id", "site", integer, 1),
        reclaim_margin_da=r.get(site, "reclaim_margin_a", "site", deciamps, 20),
        reclaim_threshold_da=r.get(site, "reclaim_threshold_a", "site", deciamps, 30),
        site_id=r.get(site, "id", "site", site_id, DEFAULT_SITE_ID),
        budget=None if budget_t is None else read_budget(r, budget_t),
    )
    checks = config_problems(cfg, [path for path, _ in servant_tables])
    if derived:  # the file gives the breaker only: a limit problem is the breaker's
        checks = [Problem("site.breaker_a", f"gives a limit of {_a(limit)} A (80 %), which {p.message}",
                          f"{breaker:g}", p.involves - {"site.breaker_a"}) if p.key == "site.limit_a" else p
                  for p in checks]
    return cfg, sorted(r.merge(checks), key=_file_order)


def _file_order(p: Problem) -> tuple[int, int]:
    """Where a problem's key sits in a site file: the top, [site], [budget], [timing], each [[servant]], the whole."""
    section = p.key.partition(".")[0]
    if section.startswith("servant["):
        return 4, int(section[len("servant["):-1])
    return {"site": (1, 0), "budget": (2, 0), "timing": (3, 0), "servant": (5, 0)}.get(section, (0, 0))


def problems(doc: Table) -> list[Problem]:
    """Every problem of an installation given as a mapping (a parsed TOML file), in file order; [] if valid."""
    return read_config(doc)[1]


def config_from_mapping(doc: Table, path: str | None = None) -> Config:
    """The validated, frozen Config of a mapping; ConfigError (naming ``path`` and the key) for its first problem."""
    cfg, found = read_config(doc)
    raise_first(found, path)
    return cfg


def parse_config(text: str, path: str | None = None) -> Config:
    """TOML text -> validated Config.  Raises ConfigError (one line)."""
    return config_from_mapping(parse_toml(text, path), path)


def parse_toml(text: str, path: str | None = None) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {str(exc).splitlines()[0]}", path=path) from None


def mapping_from_bytes(data: bytes, path: str | None = None) -> dict[str, object]:
    """A config file's bytes as a mapping (no validation yet); ConfigError when it is not UTF-8 TOML."""
    try:
        text = utf8(data)
    except Invalid as exc:
        raise ConfigError(f"the file {exc}", path=path) from None
    return parse_toml(text, path)


def load_mapping(path: str | Path) -> dict[str, object]:
    """A config file as a mapping (no validation yet).  Unreadable files and bad TOML are a ConfigError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or type(exc).__name__}", path=str(path)) from None
    return mapping_from_bytes(data, str(path))


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file.  Every error names the file (and the key)."""
    return config_from_mapping(load_mapping(path), str(path))
