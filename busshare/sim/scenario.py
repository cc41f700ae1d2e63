"""Scenarios as data: a TOML file says which installation, which cars, which faults.

The ``[installation]`` table has exactly the keys of an installation config
file (its mapping goes through ``busshare.core.config.config_from_mapping``), so a
scenario runs a real, validated configuration.  Every value is read with its
key path (``car[2].max_a``), so a mistake is one line naming the file, the
key and the value as written.  See docs/SIM.md for the format.  Built-in
scenarios live in ``busshare/sim/scenarios/*.toml``; ``story`` (the seed's
story) is the default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import cast

from ..core.config import Config
from ..core.config import read_config
from ..core.problems import Invalid
from ..core.problems import Problem
from ..core.problems import Reader
from ..core.problems import Table
from ..core.problems import boolean
from ..core.problems import integer
from ..core.problems import key_path
from ..core.problems import number
from ..core.problems import one_of
from ..core.problems import string
from ..core.problems import utf8
from ..core.problems import within
from ..errors import BusshareError
from ..frames import MAX_EVSE_DA
from ..frames import MAX_MASTER_ID
from .budget_scenario import WORLD_KEYS
from .budget_scenario import read_world
from .bus import BusFaults
from .bus import BusSettings
from .ev import EvProfile
from .house import BudgetWorld

DEFAULT_SCENARIO = "story"
FAULT_KINDS = (
    "master_crash", "master_restart", "master_shutdown", "second_master", "servant_crash",
    "servant_restart", "servant_respawn", "servant_stall", "partition", "bus", "twin", "replay", "master_stall",
)
NEEDS_ADDRESS = ("servant_crash", "servant_restart", "servant_respawn", "servant_stall", "partition", "twin")


class ScenarioError(BusshareError):
    """A scenario file that cannot be run; the message is one line naming the file, the key and the problem."""


@dataclass(frozen=True)
class CarPlan:
    evse: int  # servant address
    at: float  # plug-in time
    leave: float | None  # unplug time (None: stays)
    profile: EvProfile
    twin: bool = False  # plugged into the twin servant of that address


@dataclass(frozen=True)
class FaultPlan:
    at: float
    kind: str
    address: int | None = None
    duration_s: float | None = None
    direction: str = "both"
    master_id: int = 2
    hold_s: float | None = None
    serial: int | None = None
    bus: BusSettings = field(default_factory=BusSettings)
    car: EvProfile | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    config: Config
    duration_s: float
    seed: int = 1
    description: str = ""
    bus: BusFaults = field(default_factory=BusFaults)
    cars: tuple[CarPlan, ...] = ()
    faults: tuple[FaultPlan, ...] = ()
    settle_s: float | None = None  # None: derived from the timing (invariants.default_settle)
    watchdog_s: float = 1.0  # a crashed servant's pilot holds this long before its watchdog resets it
    filter: bool = True  # servants use CAN acceptance filters (master, own address, broadcast)
    check_waste: bool = True
    check_starvation: bool = True
    first_epoch: int = 0
    origin: str = ""  # how to rebuild it, e.g. "busshare sim --scenario story"; shown with a violation
    budget_world: BudgetWorld | None = None  # the house, meter faults and setpoints (with [installation.budget])


def builtin_names() -> list[str]:
    root = resources.files("busshare.sim") / "scenarios"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():  # (a directory named like a built-in one does not hide it)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ScenarioError(f"{path}: {exc.strerror or exc}") from None
        try:
            text = utf8(data)
        except Invalid as exc:
            raise ScenarioError(f"{path}: the file {exc}") from None
        sc = parse_scenario(text, default_name=path.stem, where=str(path))
        return replace(sc, origin=f"busshare sim --scenario {path}")
    name = str(name_or_path)
    res = resources.files("busshare.sim") / "scenarios" / f"{name}.toml"
    if not res.is_file():
        raise ScenarioError(f"no scenario {name!r}: built-in ones are {', '.join(builtin_names())}, or give a .toml path")
    sc = parse_scenario(res.read_text(encoding="utf-8"), default_name=name, where=name)
    return replace(sc, origin=f"busshare sim --scenario {name}")


def parse_scenario(text: str, default_name: str = "scenario", where: str = "scenario") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where}: not valid TOML: {str(exc).splitlines()[0]}") from None
    base = Path(where).parent if Path(where).is_file() else None  # a [house] csv path is relative to the file
    return scenario_from_mapping(data, default_name, where, base)


def scenario_from_mapping(data: Table, default_name: str = "scenario", where: str = "scenario",
                          base_dir: Path | None = None) -> Scenario:
    """The scenario a mapping (a parsed TOML file) describes; ScenarioError naming ``where`` and the key."""
    sc, found = _read(data, default_name, base_dir)
    if found or sc is None:
        first = found[0] if found else Problem("installation", "is missing")
        raise ScenarioError(f"{where}: {first}")
    return sc


# ---------------------------------------------------------------------------
# reading, key by key

_TOP = ("name", "description", "duration_s", "seed", "settle_s", "watchdog_s", "filter", "check_waste",
        "check_starvation", "first_epoch", "installation", "bus", "car_defaults", "car", "fault", *WORLD_KEYS)
_FAULT = ("at", "kind", "address", "duration_s", "direction", "master_id", "hold_s", "serial", "car")
_CAR = ("evse", "at", "leave", "twin")

seconds = within(number, 0.0, unit="s")
positive_seconds = within(number, 0.0, low_open=True, unit="s")
probability = within(number, 0.0, 1.0)

MAX_CAR_A = MAX_EVSE_DA / 10  # no pilot offers more: a car's current above it could never be drawn
MAX_RAMP_A_PER_S = 1000.0  # 0 to 80 A in 80 ms, faster than any car
MAX_RAMP_STEP_S = 3600.0

def pauses(value: object) -> tuple[tuple[float, float], ...]:
    """A car's own pauses: ``[[offset_s, duration_s], ...]``, offsets from when it started charging, in order."""
    if not isinstance(value, list):
        raise Invalid("is not a list of [offset_s, duration_s] pairs")
    out: list[tuple[float, float]] = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise Invalid("is not a list of [offset_s, duration_s] pairs")
        try:
            offset, duration = seconds(pair[0]), positive_seconds(pair[1])
        except Invalid as exc:
            raise Invalid(f"pause {i + 1}: needs an offset_s of at least 0 s and a duration_s above 0 s "
                          f"({exc})") from None
        if out and offset < out[-1][0]:
            raise Invalid("must list the pauses in order of their offset")
        out.append((offset, duration))
    return tuple(out)


#: how each EvProfile field is read (compliant and sees_pilot_late are booleans, pauses a
#: list of [offset_s, duration_s] pairs, every other field a number); the bounds keep
#: the car model's arithmetic finite, so a huge value is a problem with its key here, not an OverflowError later
_EV: dict[str, Callable[[object], object]] = {
    "max_a": within(number, 0.0, MAX_CAR_A, low_open=True, unit="A"), "need_kwh": within(number, 0.0, unit="kWh"),
    "taper_kwh": within(number, 0.0, unit="kWh"), "taper_floor_a": within(number, 0.0, MAX_CAR_A, unit="A"),
    "reaction_min_s": seconds, "reaction_max_s": seconds, "start_delay_s": seconds,
    "ramp_a_per_s": within(number, 0.0, MAX_RAMP_A_PER_S, low_open=True, unit="A/s"),
    "ramp_step_s": within(number, 0.0, MAX_RAMP_STEP_S, low_open=True, unit="s"),
    "compliant": boolean, "sees_pilot_late": boolean, "pauses": pauses, "start_after_s": seconds,
}
_BUS: dict[str, Callable[[object], object]] = {
    "bitrate": within(integer, 0, 10_000_000, low_open=True, unit="bit/s"), "latency_s": seconds,
    "loss": probability, "duplicate": probability, "corrupt": probability,
    "late": probability, "late_min_s": seconds, "late_max_s": seconds, "jitter_s": seconds, "echo_s": seconds,
}
assert set(_EV) == {f.name for f in fields(EvProfile)} and set(_BUS) == {f.name for f in fields(BusFaults)}


def _values(r: Reader, t: Table, path: str, spec: dict[str, Callable[[object], object]]) -> dict[str, object]:
    """The keys of ``t`` that ``spec`` knows, each read by its converter (the unreadable ones left out)."""
    out: dict[str, object] = {}
    for k, convert in spec.items():
        if k in t:
            bad = len(r.problems)
            v = r.get(t, k, path, convert, None)
            if len(r.problems) == bad:
                out[k] = v
    return out


def _profile(r: Reader, t: Table, path: str, defaults: dict[str, object]) -> EvProfile:
    try:
        return EvProfile(**{**defaults, **_values(r, t, path, _EV)})  # type: ignore[arg-type]
    except ValueError as exc:  # a rule between fields (reaction_min_s <= reaction_max_s)
        r.add(path, str(exc))
        return EvProfile()


def _bus(r: Reader, t: Table, path: str) -> BusSettings:
    # (each key read by its own converter in _BUS: bitrate an int, the rest numbers)
    return cast(BusSettings, _values(r, t, path, _BUS))


def _read(data: Table, default_name: str, base_dir: Path | None = None) -> tuple[Scenario | None, list[Problem]]:
    r = Reader()
    if "installation" not in data and ("site" in data or "servant" in data):  # `busshare sim site.toml`
        r.add("installation", "is missing, and this is an installation file ([site], [[servant]]): a scenario "
                              "holds one as [installation.site] and [[installation.servant]] (docs/SIM.md)")
        return None, r.problems
    r.unknown(data, "", _TOP)
    installation = data.get("installation")
    if not isinstance(installation, dict):
        r.add("installation", "is missing: a scenario needs an [installation] table (an installation config)")
        return None, r.problems
    config, found = read_config(installation)
    for p in found:
        r.problems.append(Problem(key_path("installation", p.key) if p.key else "installation", p.message, p.value))
    if r.problems:
        return None, r.problems
    addresses = {s.address for s in config.servants}
    duration = r.require(data, "duration_s", "", positive_seconds, 1.0)
    bus = _bus(r, r.table(data, "bus", ""), "bus")
    r.unknown(r.table(data, "bus", ""), "bus", _BUS)
    defaults_t = r.table(data, "car_defaults", "")
    r.unknown(defaults_t, "car_defaults", _EV)
    defaults = _values(r, defaults_t, "car_defaults", _EV)
    servant = one_of_int(addresses)
    cars = []
    for path, c in r.tables(data, "car", ""):
        r.unknown(c, path, (*_CAR, *_EV))
        evse = r.require(c, "evse", path, servant, 0, "the servant address it plugs into")
        at = r.get(c, "at", path, seconds, 0.0)
        leave = r.get(c, "leave", path, seconds, None)
        if leave is not None and leave <= at:
            r.add(key_path(path, "leave"), f"must be after at ({at:g} s)", r.written[key_path(path, "leave")])
        cars.append(CarPlan(evse, at, leave, _profile(r, c, path, defaults), r.get(c, "twin", path, boolean, False)))
    faults = []
    for path, f in r.tables(data, "fault", ""):
        r.unknown(f, path, (*_FAULT, *_BUS))
        kind = r.require(f, "kind", path, one_of(FAULT_KINDS), "bus")
        address = (r.require(f, "address", path, servant, 1, "one of the servant addresses") if kind in NEEDS_ADDRESS
                   else r.get(f, "address", path, servant, None))
        car_t = f.get("car")
        changes = _bus(r, f, path)
        faults.append(FaultPlan(
            at=r.get(f, "at", path, seconds, 0.0), kind=kind, address=address,
            duration_s=r.get(f, "duration_s", path, seconds, None),
            direction=r.get(f, "direction", path, one_of(("in", "out", "both")), "both"),
            master_id=r.get(f, "master_id", path, within(integer, 0, MAX_MASTER_ID), 2),
            hold_s=r.get(f, "hold_s", path, seconds, None),
            serial=r.get(f, "serial", path, within(integer, 0, 0xFFFFFFFF), None),
            bus=changes,
            car=_profile(r, r.table(f, "car", path), key_path(path, "car"), defaults) if car_t is not None else None,
        ))
        if kind == "replay" and faults[-1].duration_s is None:
            r.add(key_path(path, "duration_s"), "is required for a replay: how long the gateway keeps frames")
        stall = faults[-1].duration_s
        watchdog = r.get(data, "watchdog_s", "", seconds, 1.0)
        if kind == "servant_stall" and (stall is None or not 0 < stall < watchdog):
            r.add(key_path(path, "duration_s"), f"is required for a servant_stall, above 0 s and below watchdog_s "
                  f"({watchdog:g} s): a longer stall is the hardware watchdog's (a servant_crash)")
        if kind == "master_stall" and (stall is None or not stall > 0):
            r.add(key_path(path, "duration_s"), "is required for a master_stall, above 0 s: how long the master's "
                  "process stands still")
        if kind == "bus":
            try:
                BusFaults(**bus)
                merged: BusSettings = {**bus, **changes}
                BusFaults(**merged)
            except ValueError as exc:
                r.add(path, str(exc))
    seed = r.get(data, "seed", "", integer, 1)
    world = read_world(r, data, config, duration, seed, base_dir)
    sc = Scenario(
        name=r.get(data, "name", "", string, default_name),
        description=r.get(data, "description", "", string, ""),
        config=config, duration_s=duration,
        seed=seed,
        bus=BusFaults(**bus),
        cars=tuple(cars), faults=tuple(faults),
        settle_s=r.get(data, "settle_s", "", seconds, None),
        watchdog_s=r.get(data, "watchdog_s", "", seconds, 1.0),
        filter=r.get(data, "filter", "", boolean, True),
        check_waste=r.get(data, "check_waste", "", boolean, True),
        check_starvation=r.get(data, "check_starvation", "", boolean, True),
        first_epoch=r.get(data, "first_epoch", "", within(integer, 0, 255), 0),
        budget_world=world,
    )
    return sc, r.problems


def one_of_int(addresses: set[int]) -> Callable[[object], int]:
    """A servant address of the installation."""

    def check(value: object) -> int:
        a = integer(value)
        if a not in addresses:
            raise Invalid(f"is not a servant address of the installation ({', '.join(map(str, sorted(addresses)))})")
        return a

    return check
