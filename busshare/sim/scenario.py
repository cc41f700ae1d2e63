"""Scenarios as data: a TOML file says which installation, which cars, which faults.

The ``[installation]`` table has exactly the keys of an installation config
file (it is handed to ``busshare.config.parse_config``), so a scenario runs a
real, validated configuration.  See docs/SIM.md for the format.  Built-in
scenarios live in ``busshare/sim/scenarios/*.toml``; ``story`` (the seed's
story) is the default.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from .bus import BusFaults
from .ev import EvProfile

DEFAULT_SCENARIO = "story"
FAULT_KINDS = (
    "master_crash", "master_restart", "master_shutdown", "second_master", "servant_crash",
    "servant_restart", "partition", "bus", "twin",
)
_EV_FIELDS = {f.name for f in fields(EvProfile)}
_BUS_FIELDS = {f.name for f in fields(BusFaults)}


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message is one line naming the problem."""


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
    bus: dict[str, float] = field(default_factory=dict)
    car: EvProfile | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    config: Any  # busshare.config.Config
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


def builtin_names() -> list[str]:
    root = resources.files("busshare.sim") / "scenarios"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():  # (a directory named like a built-in one does not hide it)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{path}: {exc.strerror or exc}") from None
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
        raise ScenarioError(f"{where}: not valid TOML: {exc}") from None
    try:
        return _build(data, default_name)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _num(d: dict[str, Any], key: str, default: float | None, what: str, minimum: float = 0.0) -> float | None:
    v = d.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < minimum:
        raise ScenarioError(f"{what}{key} must be a number >= {minimum:g}, got {v!r}")
    return float(v)


def _unknown(d: dict[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise ScenarioError(f"{what}unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _profile(d: dict[str, Any], defaults: dict[str, Any], what: str) -> EvProfile:
    values = {**defaults, **{k: v for k, v in d.items() if k in _EV_FIELDS}}
    try:
        return EvProfile(**values)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{what}{exc}") from None


def _build(data: dict[str, Any], default_name: str) -> Scenario:
    from ..config import parse_config

    top = {"name", "description", "duration_s", "seed", "settle_s", "watchdog_s", "filter", "check_waste",
           "check_starvation", "first_epoch", "installation", "bus", "car_defaults", "car", "fault"}
    _unknown(data, top, "")
    if "installation" not in data or not isinstance(data["installation"], dict):
        raise ScenarioError("needs an [installation] table (the installation config)")
    try:
        config = parse_config(dump_toml(data["installation"]))
    except ValueError as exc:
        raise ScenarioError(f"[installation]: {str(exc).splitlines()[0]}") from None
    duration = _num(data, "duration_s", None, "")
    if duration is None or duration <= 0:
        raise ScenarioError("duration_s must be given and > 0")
    bus_d = data.get("bus", {})
    _unknown(bus_d, _BUS_FIELDS, "[bus] ")
    try:
        bus = BusFaults(**bus_d)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"[bus] {exc}") from None
    defaults = data.get("car_defaults", {})
    _unknown(defaults, _EV_FIELDS, "[car_defaults] ")
    addresses = {s.address for s in config.servants}
    cars = []
    for i, c in enumerate(data.get("car", [])):
        what = f"[[car]] #{i + 1}: "
        _unknown(c, _EV_FIELDS | {"evse", "at", "leave", "twin"}, what)
        evse = c.get("evse")
        if evse not in addresses:
            raise ScenarioError(f"{what}evse {evse!r} is not a servant address of the installation")
        at = _num(c, "at", 0.0, what)
        leave = _num(c, "leave", None, what)
        assert at is not None
        if leave is not None and leave <= at:
            raise ScenarioError(f"{what}leave must be after at")
        cars.append(CarPlan(evse, at, leave, _profile(c, defaults, what), bool(c.get("twin", False))))
    faults = []
    for i, f in enumerate(data.get("fault", [])):
        what = f"[[fault]] #{i + 1}: "
        _unknown(f, {"at", "kind", "address", "duration_s", "direction", "master_id", "hold_s", "serial", "car"}
                 | _BUS_FIELDS, what)
        kind = f.get("kind")
        if kind not in FAULT_KINDS:
            raise ScenarioError(f"{what}kind {kind!r} unknown (one of: {', '.join(FAULT_KINDS)})")
        address = f.get("address")
        if kind in ("servant_crash", "servant_restart", "partition", "twin") and address not in addresses:
            raise ScenarioError(f"{what}{kind} needs address = one of the servant addresses")
        direction = f.get("direction", "both")
        if direction not in ("in", "out", "both"):
            raise ScenarioError(f"{what}direction must be 'in', 'out' or 'both'")
        car = f.get("car")
        faults.append(FaultPlan(
            at=_num(f, "at", 0.0, what) or 0.0, kind=kind, address=address,
            duration_s=_num(f, "duration_s", None, what), direction=direction,
            master_id=int(f.get("master_id", 2)), hold_s=_num(f, "hold_s", None, what),
            serial=f.get("serial"), bus={k: v for k, v in f.items() if k in _BUS_FIELDS},
            car=_profile(car, defaults, what + "car: ") if isinstance(car, dict) else None,
        ))
        if kind == "bus":
            try:
                BusFaults(**{**vars(bus), **faults[-1].bus})
            except (TypeError, ValueError) as exc:
                raise ScenarioError(f"{what}{exc}") from None
    return Scenario(
        name=str(data.get("name", default_name)), description=str(data.get("description", "")),
        config=config, duration_s=duration, seed=int(data.get("seed", 1)), bus=bus, cars=tuple(cars),
        faults=tuple(faults), settle_s=_num(data, "settle_s", None, ""),
        watchdog_s=_num(data, "watchdog_s", 1.0, "") or 0.0, filter=bool(data.get("filter", True)),
        check_waste=bool(data.get("check_waste", True)), check_starvation=bool(data.get("check_starvation", True)),
        first_epoch=int(data.get("first_epoch", 0)),
    )


# ---------------------------------------------------------------------------
# a minimal TOML writer, so the [installation] table goes through the real config parser


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    raise ScenarioError(f"cannot write {v!r} as TOML")


def dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    scalars, tables, arrays = [], [], []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            scalars.append(f"{k} = {_value(v)}")
    out = "\n".join(scalars) + ("\n" if scalars else "")
    for k, v in tables:
        name = f"{prefix}{k}"
        out += f"\n[{name}]\n" + dump_toml(v, name + ".")
    for k, items in arrays:
        name = f"{prefix}{k}"
        for item in items:
            out += f"\n[[{name}]]\n" + dump_toml(item, name + ".")
    return out
