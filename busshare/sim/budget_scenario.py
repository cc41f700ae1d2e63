"""A scenario's budget world: ``[house]``, ``[[meter_fault]]``, ``[[setpoint]]``, ``[[demand_response]]``, ``[meter]``.

Read with the scenario's ``Reader`` (every problem names its key), into a ``house.BudgetWorld``.  The
meter's ``poll_s``, ``timeout_s`` and ``frozen_s`` come from ``[installation.budget.meter]``, so one
key is never set in two places (docs/BUDGET.md 7).  A scenario whose installation has a meter and no
``[house]`` gets the built-in appliance house; a house, meter faults or setpoints need an
``[installation.budget]`` to act on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from ..core.config import Config
from ..core.problems import Invalid
from ..core.problems import Reader
from ..core.problems import Table
from ..core.problems import integer
from ..core.problems import key_path
from ..core.problems import number
from ..core.problems import one_of
from ..core.problems import string
from ..core.problems import within
from ..frames import MAX_CIRCUIT_DA
from .house import BudgetWorld
from .house import DrEnd
from .house import HouseLoad
from .house import MeterFault
from .house import MeterFaultKind
from .house import SetpointEvent
from .house import appliance_house
from .house import demand_response
from .house import flat_house
from .house import house_from_csv
from .house import stepped_house

WORLD_KEYS = ("house", "meter_fault", "setpoint", "demand_response", "meter")
HOUSE_KINDS = ("appliances", "flat", "steps", "csv")
_HOUSE = ("kind", "seed", "max_a", "base_a", "noise_a", "solar_a", "steps", "path")
_FAULT = ("at", "duration_s", "kind")
_SETPOINT = ("at", "limit_a", "ttl_s")
_DR = ("at", "duration_s", "limit_a", "end", "renew_s", "ttl_s")
MAX_HOUSE_A = MAX_CIRCUIT_DA / 10

_seconds = within(number, 0.0, unit="s")
_positive_s = within(number, 0.0, low_open=True, unit="s")
_house_amps = within(number, 0.0, MAX_HOUSE_A, unit="A")
_noise_amps = within(number, 0.0, 10.0, unit="A")
_limit_amps = within(number, 0.0, MAX_CIRCUIT_DA / 10, unit="A")


def _da(a: float) -> int:
    return round(a * 10)


def _steps(value: object) -> list[tuple[float, int]]:
    """``steps = [[t_s, amps], ...]``: the first at 0, times increasing."""
    if not isinstance(value, list) or not value:
        raise Invalid("must be a list of [time_s, amps] pairs, the first at 0")
    out: list[tuple[float, int]] = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise Invalid("must be a list of [time_s, amps] pairs, the first at 0")
        t, a = _seconds(item[0]), _house_amps(item[1])
        if out and t <= out[-1][0]:
            raise Invalid(f"times must increase ({t:g} s after {out[-1][0]:g} s)")
        out.append((t, _da(a)))
    if out[0][0] != 0.0:
        raise Invalid("the first step must be at 0 s")
    return out


def _house(r: Reader, t: Table, config: Config, duration_s: float, seed: int, base_dir: Path | None) -> HouseLoad:
    r.unknown(t, "house", _HOUSE)
    kind = r.require(t, "kind", "house", one_of(HOUSE_KINDS), "flat")
    noise = _da(r.get(t, "noise_a", "house", _noise_amps, 0.3 if kind == "appliances" else 0.0))
    house_seed = r.get(t, "seed", "house", integer, seed)
    if kind == "flat":
        return flat_house(_da(r.require(t, "base_a", "house", _house_amps, 0.0)), noise, seed=house_seed)
    if kind == "steps":
        return stepped_house(r.require(t, "steps", "house", _steps, [(0.0, 0)]), noise, seed=house_seed)
    if kind == "csv":
        path = Path(r.require(t, "path", "house", string, ""))
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            return house_from_csv(path)
        except ValueError as exc:
            r.add(key_path("house", "path"), str(exc))
            return flat_house(0)
    budget = config.budget
    main = budget.main_limit_da if budget is not None and budget.main_limit_da is not None else config.limit_da
    fallback = budget.fallback_da if budget is not None else 0
    margin = budget.margin_da if budget is not None else 0
    default_max = max(30, main - fallback - margin) / 10
    max_da = _da(r.get(t, "max_a", "house", _house_amps, default_max))
    solar = _da(r.get(t, "solar_a", "house", _house_amps, 0.0))
    try:
        return appliance_house(random.Random(house_seed), duration_s, max_da, solar_da=solar, noise_da=noise)
    except ValueError as exc:
        r.add(key_path("house", "max_a"), str(exc))
        return flat_house(0)


def _each(r: Reader, data: Table, key: str, known: tuple[str, ...]) -> list[tuple[str, Table]]:
    found = r.tables(data, key, "")
    for path, t in found:
        r.unknown(t, path, known)
    return found


def read_world(r: Reader, data: Table, config: Config, duration_s: float, seed: int,
               base_dir: Path | None = None) -> BudgetWorld | None:
    """The scenario's budget world (None: the installation has no ``[budget]``), its problems added to ``r``."""
    budget = config.budget
    present = [k for k in WORLD_KEYS if k in data]
    if budget is None:
        for k in present:
            r.add(k, "needs an [installation.budget] to act on")
        return None
    meter = budget.meter
    house_t = r.optional_table(data, "house", "")
    if meter is not None and house_t is None:
        house_t = {"kind": "appliances"}  # a site file simulated as it is: the built-in house behind its meter
    if meter is None and "house" in data:
        r.add("house", "needs a mains meter ([installation.budget.meter]) to be seen")
    if meter is None and "meter" in data:
        r.add("meter", "needs a mains meter ([installation.budget.meter])")
    house = flat_house(0) if house_t is None else _house(r, house_t, config, duration_s, seed, base_dir)
    meter_t = r.table(data, "meter", "")
    r.unknown(meter_t, "meter", ("latency_s",))
    latency = r.get(meter_t, "latency_s", "meter", within(number, 0.0, 10.0, unit="s"), 0.05)
    faults = []
    for path, f in _each(r, data, "meter_fault", _FAULT):
        if meter is None:
            r.add(path, "needs a mains meter ([installation.budget.meter])")
        kind = r.require(f, "kind", path, one_of([k.value for k in MeterFaultKind]), "stale")
        faults.append(MeterFault(r.get(f, "at", path, _seconds, 0.0),
                                 r.require(f, "duration_s", path, _positive_s, 1.0), MeterFaultKind(kind)))
    setpoints: list[SetpointEvent] = []
    ttl: Callable[[object], float] = within(number, 0.0, 86400.0, low_open=True, unit="s")
    for path, s in _each(r, data, "setpoint", _SETPOINT):
        limit = r.get(s, "limit_a", path, _limit_amps, None)
        setpoints.append(SetpointEvent(r.get(s, "at", path, _seconds, 0.0), None if limit is None else _da(limit),
                                       r.get(s, "ttl_s", path, ttl, None)))
    for path, d in _each(r, data, "demand_response", _DR):
        at = r.get(d, "at", path, _seconds, 0.0)
        length = r.require(d, "duration_s", path, _positive_s, 1.0)
        limit = _da(r.require(d, "limit_a", path, _limit_amps, 0.0))
        end = DrEnd(r.get(d, "end", path, one_of([e.value for e in DrEnd]), DrEnd.WITHDRAW.value))
        renew = r.get(d, "renew_s", path, _positive_s, 30.0)
        life = r.get(d, "ttl_s", path, ttl, 60.0)
        try:
            setpoints.extend(demand_response(at, length, limit, renew_s=renew, ttl_s=life, end=end))
        except ValueError as exc:
            r.add(key_path(path, "renew_s"), str(exc))
    return BudgetWorld(
        house, tuple(sorted(faults, key=lambda f: f.start)), tuple(sorted(setpoints, key=lambda s: s.at)),
        poll_s=meter.poll_s if meter is not None else 1.0, latency_s=latency,
        timeout_s=meter.timeout_s if meter is not None else 5.0,
        frozen_s=meter.frozen_s if meter is not None and meter.frozen_s > 0 else float("inf"),
    )
