"""The simulator's world for a moving budget: a house, its mains meter's faults and setpoint events, as data.

* ``HouseLoad``: the house's net current on the worst phase (0.1 A, + import,
  - export) as piecewise-constant steps plus bounded noise.  The steps are explicit,
  so a check knows when the house load stepped up; the noise is a pure function of
  (seed, time) with a known peak-to-peak.  Build one from appliances switching
  (``appliance_house``: oven with its thermostat, heat pump, dryer, kettle, fridge,
  optionally solar), from a CSV file (``house_from_csv``), or by hand.
* ``MeterFault``: a window in which the mains meter is stale (nothing reaches the
  master), frozen (the same value, until the meter client notices after
  ``frozen_s``), returns garbage or is disconnected (failed reads).  ``SimMeter``
  turns a poll at ``t`` into what the master is handed: a reading, a failure, or
  nothing.
* ``SetpointEvent``: what an energy manager sends; ``demand_response`` builds a
  drop renewed until it ends, then withdrawn or left to expire.
* ``BudgetWorld`` bundles them; ``random_world`` draws one from a seeded rng for
  the chaos sweep.

Everything is deterministic from its seed.  Nothing here drives a simulation: the
runner polls ``SimMeter`` every ``poll_s`` and feeds the master (docs/BUDGET.md,
"Wiring the simulator").
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..core.house_load import DRYER
from ..core.house_load import FRIDGE
from ..core.house_load import HEAT_PUMP
from ..core.house_load import KETTLE
from ..core.house_load import OVEN
from ..core.house_load import ApplianceRating
from ..core.house_load import parse_load_csv

_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64: a fast, well-spread hash (noise must not cost a Random per sample)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@dataclass(frozen=True)
class HouseLoad:
    """The house's net load on the worst phase: ``base_da[i]`` from ``times[i]`` on, plus noise.

    Noise is an integer in [-(noise_da // 2), noise_da - noise_da // 2]: ``noise_da`` peak to
    peak, constant over each ``noise_step_s`` (a meter's measurement window).
    """

    times: tuple[float, ...]
    base_da: tuple[int, ...]
    labels: tuple[str, ...] = ()  # what is switched on in each segment (for plots and traces)
    noise_da: int = 0
    noise_step_s: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.times or len(self.times) != len(self.base_da) or self.times[0] != 0.0:
            raise ValueError("a house load needs segments starting at t=0, one base value each")
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError("house load segment times must increase")
        if self.labels and len(self.labels) != len(self.times):
            raise ValueError("one label per segment")
        if self.noise_da < 0 or self.noise_step_s <= 0:
            raise ValueError("noise must be >= 0 A with a positive step")

    def _index(self, t: float) -> int:
        return max(0, bisect.bisect_right(self.times, t) - 1)

    def base(self, t: float) -> int:
        return self.base_da[self._index(t)]

    def noise(self, t: float) -> int:
        if not self.noise_da:
            return 0
        k = math.floor(t / self.noise_step_s)
        return _mix((self.seed << 32) ^ (k & 0xFFFFFFFF)) % (self.noise_da + 1) - self.noise_da // 2

    def at(self, t: float) -> int:
        """The house's net current at ``t``, in 0.1 A."""
        return self.base(t) + self.noise(t)

    def label(self, t: float) -> str:
        return self.labels[self._index(t)] if self.labels else ""

    @property
    def peak_da(self) -> int:
        """The most the house ever draws, noise included."""
        return max(self.base_da) + self.noise_da - self.noise_da // 2

    def steps_up(self, min_da: int = 1) -> list[float]:
        """When the base load rises by at least ``min_da``: the steps the budget must react to."""
        return [t for t, a, b in zip(self.times[1:], self.base_da, self.base_da[1:], strict=False) if b - a >= min_da]

    def steady(self, min_s: float, until: float) -> list[tuple[float, float]]:
        """Stretches of at least ``min_s`` (up to ``until``) in which only the noise moves."""
        ends = [*self.times[1:], until]
        return [(a, min(b, until)) for a, b in zip(self.times, ends, strict=True) if min(b, until) - a >= min_s]


def flat_house(base_da: int, noise_da: int = 0, seed: int = 0) -> HouseLoad:
    """A steady house: one level and its noise."""
    return HouseLoad((0.0,), (base_da,), ("base",), noise_da, seed=seed)


def stepped_house(steps: Sequence[tuple[float, int]], noise_da: int = 0, seed: int = 0) -> HouseLoad:
    """A house given as (time, load) steps, the first at t=0."""
    return HouseLoad(tuple(float(t) for t, _ in steps), tuple(v for _, v in steps), (), noise_da, seed=seed)


# ---------------------------------------------------------------------------
# appliances


@dataclass(frozen=True)
class Appliance:
    name: str
    amps_da: int  # on the worst phase while on
    run_s: tuple[float, float]  # (min, max) length of one run
    per_hour: float  # runs started per hour, on average
    duty: tuple[float, float] | None = None  # thermostat (on s, off s) during a run


def _worst_phase(rating: ApplianceRating, run_s: tuple[float, float], per_hour: float) -> Appliance:
    return Appliance(rating.name, rating.worst_da, run_s, per_hour, rating.duty)


# The meter emulator's house (core.house_load), on its worst phase, switching at random.
APPLIANCES = (
    _worst_phase(FRIDGE, (600.0, 900.0), 1.6),
    _worst_phase(HEAT_PUMP, (1200.0, 1800.0), 1.2),
    _worst_phase(OVEN, (2400.0, 3600.0), 0.15),
    _worst_phase(DRYER, (3000.0, 3900.0), 0.12),
    _worst_phase(KETTLE, (120.0, 180.0), 0.8),
)


def _runs(rng: random.Random, a: Appliance, duration_s: float) -> list[tuple[float, float]]:
    """(on, off) intervals: runs at random times, a thermostat cutting each into cycles."""
    out: list[tuple[float, float]] = []
    t = rng.expovariate(a.per_hour / 3600.0)
    while t < duration_s:
        length = rng.uniform(*a.run_s)
        if a.duty is None:
            out.append((t, t + length))
        else:
            on_s, off_s = a.duty
            c = t
            while c < t + length:
                out.append((c, min(c + on_s, t + length)))
                c += on_s + off_s
        t += length + rng.expovariate(a.per_hour / 3600.0)
    return out


def _solar(rng: random.Random, duration_s: float, peak_da: int) -> list[tuple[float, int]]:
    """Net solar export per minute (<= 0): a sine over the run, passing clouds cut it to 30 %."""
    clouds = [(s, s + rng.uniform(120.0, 900.0)) for s in sorted(rng.uniform(0, duration_s) for _ in range(4))]
    out = []
    for k in range(math.ceil(duration_s / 60.0)):
        t = k * 60.0
        sun = peak_da * math.sin(math.pi * min(1.0, t / max(duration_s, 1.0)))
        if any(a <= t < b for a, b in clouds):
            sun *= 0.3
        out.append((t, -round(sun)))
    return out


def appliance_house(rng: random.Random, duration_s: float, max_da: int, *, base_da: tuple[int, int] = (8, 25),
                    solar_da: int = 0, noise_da: int = 3, appliances: Sequence[Appliance] = APPLIANCES) -> HouseLoad:
    """A house whose appliances switch at random (from ``rng``), never above ``max_da`` in total.

    A run that would take the house over ``max_da`` does not start (as if its owner waited):
    ``max_da`` is the house's design maximum, the load the fallback is sized against.
    """
    base = rng.randint(*base_da)
    if base + noise_da > max_da:
        raise ValueError(f"a base load of {base / 10:.1f} A does not fit under {max_da / 10:.1f} A")
    edges: dict[float, int] = {0.0: base}
    names: dict[float, list[tuple[str, int]]] = {}
    accepted: list[tuple[float, float, int, str]] = []
    for a in appliances:
        for on, off in _runs(rng, a, duration_s):
            overlap = sum(x[2] for x in accepted if x[0] < off and on < x[1])  # an upper bound of what is on
            if base + overlap + a.amps_da + noise_da - noise_da // 2 <= max_da:
                accepted.append((on, off, a.amps_da, a.name))
    for on, off, amps, name in accepted:
        edges[on] = edges.get(on, 0) + amps
        edges[off] = edges.get(off, 0) - amps
        names.setdefault(on, []).append((name, 1))
        names.setdefault(off, []).append((name, -1))
    if solar_da:
        prev = 0
        for t, v in _solar(rng, duration_s, solar_da):
            edges[t] = edges.get(t, 0) + v - prev
            prev = v
    times: list[float] = []
    levels: list[int] = []
    labels: list[str] = []
    level = 0
    running: list[str] = []
    for t in sorted(edges):
        level += edges[t]
        for name, d in names.get(t, []):
            if d > 0:
                running.append(name)
            else:
                running.remove(name)
        if t >= duration_s and times:
            break
        if times and levels[-1] == level:
            continue
        times.append(t)
        levels.append(level)
        labels.append(", ".join(running) or "base")
    return HouseLoad(tuple(times), tuple(levels), tuple(labels), noise_da, seed=rng.getrandbits(32))


def house_from_csv(path: str | Path) -> HouseLoad:
    """A load CSV (``core.house_load``: ``time,L1[,L2,L3]``, the meter emulator's format), worst phase taken.

    Each row holds until the next, the first from t=0.  ValueError, one line naming the file (and the line), for
    anything wrong.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    rows = parse_load_csv(text, str(path))
    rows = rows[max((i for i, (t, _) in enumerate(rows) if t <= 0.0), default=0):]  # the row in force at t=0 on
    return HouseLoad((0.0, *(t for t, _ in rows[1:])), tuple(round(max(amps) * 10) for _, amps in rows))


# ---------------------------------------------------------------------------
# the mains meter and its faults


class MeterFaultKind(StrEnum):
    STALE = "stale"  # nothing reaches the master (a hung client, a lost gateway): only time tells
    FROZEN = "frozen"  # the same value every poll; the client reports a failure after frozen_s
    GARBAGE = "garbage"  # impossible values (NaN, negative): failed reads
    DISCONNECTED = "disconnected"  # no answer: failed reads


@dataclass(frozen=True)
class MeterFault:
    start: float
    duration_s: float
    kind: MeterFaultKind

    def covers(self, t: float) -> bool:
        return self.start <= t < self.start + self.duration_s


class PollKind(StrEnum):
    READING = "reading"
    FAILED = "failed"
    NOTHING = "nothing"


@dataclass(frozen=True)
class PollOutcome:
    """What the master is handed for one poll: a reading of ``mains_da``, a failure (``why``), or nothing."""

    kind: PollKind
    mains_da: int = 0
    why: str = ""


class SimMeter:
    """A mains meter read every poll, with fault windows.  ``poll`` is given the true mains current."""

    def __init__(self, faults: Sequence[MeterFault] = (), frozen_s: float = 60.0) -> None:
        self.faults = tuple(sorted(faults, key=lambda f: f.start))
        self.frozen_s = frozen_s
        self._frozen: tuple[MeterFault, int] | None = None  # the frozen window and its value

    def fault_at(self, t: float) -> MeterFault | None:
        for f in self.faults:
            if f.covers(t):
                return f
        return None

    def poll(self, t: float, mains_da: int) -> PollOutcome:
        f = self.fault_at(t)
        if f is None:
            return PollOutcome(PollKind.READING, mains_da)
        if f.kind is MeterFaultKind.STALE:
            return PollOutcome(PollKind.NOTHING)
        if f.kind is MeterFaultKind.GARBAGE:
            return PollOutcome(PollKind.FAILED, why="impossible value: L1 current NaN")
        if f.kind is MeterFaultKind.DISCONNECTED:
            return PollOutcome(PollKind.FAILED, why="timeout: no response")
        if self._frozen is None or self._frozen[0] is not f:
            self._frozen = (f, mains_da)
        if t >= f.start + self.frozen_s:
            return PollOutcome(PollKind.FAILED, why=f"frozen: registers unchanged for {t - f.start:.1f} s")
        return PollOutcome(PollKind.READING, self._frozen[1])  # looks good: the client cannot tell yet


# ---------------------------------------------------------------------------
# setpoints


@dataclass(frozen=True)
class SetpointEvent:
    """An energy manager's message: ``limit_da`` for ``ttl_s`` (None: the site default); ``limit_da`` None withdraws."""

    at: float
    limit_da: int | None
    ttl_s: float | None = None


class DrEnd(StrEnum):
    WITHDRAW = "withdraw"  # the manager lifts the limit: back to the other sources, in steps
    EXPIRE = "expire"  # the manager stops renewing: the setpoint goes stale, the budget falls back


def demand_response(start: float, duration_s: float, drop_da: int, *, renew_s: float = 30.0,
                    ttl_s: float = 60.0, end: DrEnd = DrEnd.WITHDRAW) -> tuple[SetpointEvent, ...]:
    """A demand-response drop to ``drop_da``, renewed every ``renew_s`` for ``duration_s``, then its end."""
    if not 0 < renew_s < ttl_s:
        raise ValueError("a renewed setpoint must be renewed within its time-to-live")
    n = max(1, math.ceil(duration_s / renew_s))
    events = [SetpointEvent(start + i * renew_s, drop_da, ttl_s) for i in range(n)]
    if end is DrEnd.WITHDRAW:
        events.append(SetpointEvent(start + duration_s, None))
    return tuple(events)


# ---------------------------------------------------------------------------
# one world


@dataclass(frozen=True)
class BudgetWorld:
    """A house behind a main service, its meter and an energy manager, for one simulated run."""

    house: HouseLoad
    faults: tuple[MeterFault, ...] = ()
    setpoints: tuple[SetpointEvent, ...] = ()
    poll_s: float = 1.0  # the meter client's poll period
    latency_s: float = 0.05  # from the start of a poll to the reading reaching the master
    timeout_s: float = 5.0  # [budget.meter] timeout_s
    frozen_s: float = 60.0  # the meter client's frozen-value detection

    def meter(self) -> SimMeter:
        return SimMeter(self.faults, self.frozen_s)


def random_world(rng: random.Random, duration_s: float, *, main_da: int, fallback_da: int,
                 margin_da: int = 20) -> BudgetWorld:
    """A world for the chaos sweep: a house that never needs more than main - fallback (so the fallback is
    always safe, as its definition promises), 0-2 meter faults and at most one demand-response event."""
    house = appliance_house(rng, duration_s, max(30, main_da - fallback_da - margin_da),
                            solar_da=rng.choice((0, 0, 70)), noise_da=rng.randint(0, 4))
    faults = []
    for _ in range(rng.randint(0, 2)):
        start = rng.uniform(60.0, max(61.0, duration_s - 60.0))
        faults.append(MeterFault(start, rng.uniform(2.0, 120.0), rng.choice(list(MeterFaultKind))))
    setpoints: tuple[SetpointEvent, ...] = ()
    if rng.random() < 0.5:
        start = rng.uniform(60.0, max(61.0, duration_s / 2))
        setpoints = demand_response(start, rng.uniform(60.0, 900.0), rng.randint(0, fallback_da),
                                    end=rng.choice(list(DrEnd)))
    return BudgetWorld(house, tuple(sorted(faults, key=lambda f: f.start)), setpoints,
                       frozen_s=rng.choice((10.0, 60.0)))
