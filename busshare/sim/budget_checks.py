"""The six promises of a moving budget, as pure functions: observations in, violations out.

The simulator records what happened (samples taken after each step, piecewise
constant until the next sample, in time order); these functions judge it.  They
never call back into a simulation, so each can be tested on a hand-made trace.

``budget-compliance``  what the master counts (rule 1) fits the effective limit, except
                       within ``Timing.budget_compliance_bound`` after each lowering;
``budget-site``        house + EVs stay within the main service limit, except within the
                       reaction window after a house-load step, wherever the house alone fits;
``budget-fallback``    a stale or failed source puts the limit at or below the fallback
                       (and keeps it from rising) within its timeout plus a tick;
``budget-chatter``     in a steady stretch the limit (or a servant's set-limit) changes at
                       most a bounded number of times (``core.budget.steady_change_bound``);
``budget-waste``       in steady state with demand above supply the EVs are offered at least
                       95 % of the effective limit (or all the allocation rules can give);
``budget-announced``   a master sends a set-limit only after its own heartbeat carrying the limit
                       it shares then (rule 9: a changed limit is announced before it is used, so
                       a monitor never sees room granted above the limit in force).

Samples marked ``quiet=False`` are not judged: the runner marks them so when a fault
outside a check's bound is in effect (a crashed node, a partition, lost frames in an
exchange being timed), as the existing invariants do.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core.allocation import Demand
from ..core.allocation import allocate
from ..frames import MAX_EVSE_DA
from ..frames import MIN_OFFER_DA
from .invariants import Violation

INF = float("inf")
WASTE_SHARE = 0.95


@dataclass(frozen=True)
class BudgetSample:
    """The master's budget and rule-1 count after a step."""

    t: float
    limit_da: int  # the effective limit
    counted_da: int  # Master.committed_da()
    exempt_da: int = 0  # counted for servants it cannot reach (silent, unanswering, contested): rule 3 holds them
    degraded: bool = False
    quiet: bool = True


@dataclass(frozen=True)
class SiteSample:
    """What the main service carries."""

    t: float
    house_da: int
    ev_da: int  # what the cars really draw
    quiet: bool = True


@dataclass(frozen=True)
class SupplySample:
    """Supply and demand after a step."""

    t: float
    limit_da: int
    offered_da: int  # the sum of what the pilots offer
    demands: tuple[Demand, ...]  # what each car could use now
    quiet: bool = True
    # when the world last restarted its service clocks (a plug-in, an unplug, a fault: ``World._disturb``): a car
    # that wants nothing yet (on its own timer) looks to the master like one that waits, and it cuts the others
    # for it, so a plug-in starts the settle time again here too, as in the static waste check
    since: float = -INF


@dataclass(frozen=True)
class MeterDelivery:
    """A good mains reading: measured at ``measured``, handed to the master at ``delivered``."""

    measured: float
    delivered: float


@dataclass(frozen=True)
class SetpointDelivery:
    """A setpoint handed to the master at ``at``, valid ``ttl_s``; ``ttl_s`` None: withdrawn."""

    at: float
    ttl_s: float | None


@dataclass(frozen=True)
class SetLimitSent:
    """A set-limit a master sent: the limit it shared then, and the last one its own heartbeats carried
    (None: none sent yet)."""

    t: float
    master: str
    address: int
    limit_da: int  # the master's effective limit when it sent the set-limit
    announced_da: int | None


class _Timed(Protocol):
    @property
    def t(self) -> float: ...


def _pieces(samples: Sequence[_Timed], end: float | None) -> Iterator[tuple[int, float, float]]:
    """(index, start, end) of each sample's piece; the last one lasts until ``end`` (or is an instant)."""
    n = len(samples)
    for i, s in enumerate(samples):
        nxt = samples[i + 1].t if i + 1 < n else (s.t if end is None else max(s.t, end))
        yield i, s.t, nxt


def _first_bad(start: float, stop: float, excused_until: float) -> float | None:
    """The first instant of [start, stop] after the excuse ends (an instant piece: start itself)."""
    at = max(start, excused_until)
    if at < stop or (at == start and stop == start):
        return at
    return None


class _Episodes:
    """One violation per episode: a run of bad pieces is reported once, at its first bad instant."""

    def __init__(self, check: str) -> None:
        self.check = check
        self.out: list[Violation] = []
        self._bad = False

    def starts(self, at: float | None) -> float | None:
        """``at`` when a bad piece (``at`` not None) starts a new episode, else None."""
        new = at if at is not None and not self._bad else None
        self._bad = at is not None
        return new

    def add(self, at: float, detail: str) -> None:
        self.out.append(Violation(at, self.check, detail))


def check_compliance(samples: Sequence[BudgetSample], window_s: float, end: float | None = None) -> list[Violation]:
    """Counted <= max(limit, exempt) except within ``window_s`` after the latest lowering.

    Two more moments start the window, as a lowering does: a change of the exempt count (a unit the
    master cannot reach is held at what it had, rule 3, and the others must be cut to make room; or it
    is back, and must be cut to fit) and the end of an unjudged stretch (a fault outside the bound
    ended: cuts lost in it are sent again).
    """
    found = _Episodes("budget-compliance")
    lowered = -INF
    prev: BudgetSample | None = None
    for i, start, stop in _pieces(samples, end):
        s = samples[i]
        if prev is not None and (s.limit_da < prev.limit_da or s.exempt_da != prev.exempt_da
                                 or (s.quiet and not prev.quiet)):
            lowered = s.t
        prev = s
        over = s.quiet and s.counted_da > max(s.limit_da, s.exempt_da)
        at = found.starts(_first_bad(start, stop, lowered + window_s) if over else None)
        if at is not None:
            found.add(at, f"counted {s.counted_da / 10:.1f} A > limit {s.limit_da / 10:.1f} A "
                          f"{at - lowered:.2f} s after the last lowering (window {window_s:.2f} s)")
    return found.out


def check_site(samples: Sequence[SiteSample], main_da: int, window_s: float, steps_up: Sequence[float],
               end: float | None = None) -> list[Violation]:
    """House + EVs <= main, except within ``window_s`` after a house step, wherever the house alone fits."""
    found = _Episodes("budget-site")
    steps = sorted(steps_up)
    k = 0
    for i, start, stop in _pieces(samples, end):
        s = samples[i]
        while k < len(steps) and steps[k] <= start:
            k += 1
        last_step = steps[k - 1] if k else -INF
        site = s.house_da + s.ev_da
        over = s.quiet and site > main_da and s.house_da <= main_da
        at = found.starts(_first_bad(start, stop, last_step + window_s) if over else None)
        if at is not None:
            since = "" if last_step == -INF else f", {at - last_step:.2f} s after the house stepped up"
            found.add(at, f"site {site / 10:.1f} A (house {s.house_da / 10:.1f} A + EVs {s.ev_da / 10:.1f} A) > "
                          f"main {main_da / 10:.1f} A{since} (window {window_s:.2f} s)")
    return found.out


def stale_intervals(start: float, meter: Sequence[MeterDelivery] | None, setpoints: Sequence[SetpointDelivery],
                    timeout_s: float, until: float) -> list[tuple[float, float, str]]:
    """(from, to, why) where a source is stale: the meter (if configured) or an expired setpoint."""
    out: list[tuple[float, float, str]] = []
    if meter is not None:
        fresh_until = start  # not read yet: stale from the start
        last = -INF
        for d in sorted(meter, key=lambda d: d.delivered):
            if d.measured <= last:
                continue  # not newer than one taken: ignored
            last = d.measured
            if d.measured + timeout_s <= d.delivered:
                continue  # too old on arrival: it does not end the staleness
            if d.delivered > fresh_until:
                out.append((fresh_until, d.delivered, "meter"))
            fresh_until = d.measured + timeout_s
        if fresh_until < until:
            out.append((fresh_until, until, "meter"))
    expires: float | None = None
    for sp in sorted(setpoints, key=lambda s: s.at):
        if expires is not None and expires < sp.at:
            out.append((expires, sp.at, "setpoint"))
        expires = None if sp.ttl_s is None else sp.at + sp.ttl_s
    if expires is not None and expires < until:
        out.append((expires, until, "setpoint"))
    return [x for x in out if x[1] > x[0]]


def check_fallback(samples: Sequence[BudgetSample], stale: Sequence[tuple[float, float, str]], fallback_da: int,
                   tick_s: float, end: float | None = None) -> list[Violation]:
    """Within each stale interval, from a tick after it starts: limit <= fallback, degraded, and no rise."""
    out: list[Violation] = []
    pieces = list(_pieces(samples, end))
    for s0, s1, why in stale:
        check_from = s0 + tick_s
        prev: int | None = None
        for i, start, stop in pieces:
            if stop < s0 or start >= s1:
                continue
            s = samples[i]
            if prev is not None and s.limit_da > prev and s.quiet:
                out.append(Violation(s.t, "budget-fallback", f"limit rose {prev / 10:.1f} -> {s.limit_da / 10:.1f} A "
                                     f"while the {why} was stale (since t={s0:.3f})"))
                break
            prev = s.limit_da
            if not s.quiet or (s.limit_da <= fallback_da and s.degraded):
                continue
            at = _first_bad(start, min(stop, s1), check_from)
            if at is not None:
                out.append(Violation(at, "budget-fallback", f"limit {s.limit_da / 10:.1f} A "
                                     f"({'degraded' if s.degraded else 'not degraded'}) {at - s0:.3f} s after the "
                                     f"{why} went stale; fallback {fallback_da / 10:.1f} A within {tick_s:g} s"))
                break
    return out


def check_chatter(changes: Sequence[float], stretches: Sequence[tuple[float, float]], max_changes: int,
                  what: str = "the effective limit") -> list[Violation]:
    """At most ``max_changes`` changes (times given) inside each steady stretch [start, end)."""
    out: list[Violation] = []
    times = sorted(changes)
    for a, b in stretches:
        inside = [t for t in times if a <= t < b]
        if len(inside) > max_changes:
            out.append(Violation(inside[max_changes], "budget-chatter",
                                 f"{what} changed {len(inside)} times in a steady stretch of {b - a:.0f} s "
                                 f"(t={a:.1f}-{b:.1f}); at most {max_changes}"))
    return out


def check_announced(sent: Sequence[SetLimitSent]) -> list[Violation]:
    """Every set-limit went out after a heartbeat of its master carrying the limit that master shared."""
    return [Violation(s.t, "budget-announced", f"{s.master} sent a set-limit to servant {s.address} sharing "
                      f"{s.limit_da / 10:.1f} A while its last heartbeat carried "
                      f"{'nothing' if s.announced_da is None else f'{s.announced_da / 10:.1f} A'}")
            for s in sent if s.announced_da != s.limit_da]


def _wanted(demands: Sequence[Demand]) -> int:
    return sum(min(d.want_da, MAX_EVSE_DA) for d in demands if d.want_da >= MIN_OFFER_DA)


def check_waste(samples: Sequence[SupplySample], settle_s: float, end: float | None = None,
                share: float = WASTE_SHARE) -> list[Violation]:
    """In steady state (``settle_s`` after the limit or the demands last changed), with demand above supply,
    offered >= min(share x limit, what the allocation can give at all).

    A shortfall is judged ``settle_s`` after it began, too: the allocation moves current between cars on its
    own (rotation, reclaim) by a cut then a grant, and that dip must heal within the settle time like any
    other change (the static waste check's rule).
    """
    found = _Episodes("budget-waste")
    changed = -INF
    short_since = INF  # when the current shortfall began
    key: tuple[int, tuple[Demand, ...]] | None = None
    for i, start, stop in _pieces(samples, end):
        s = samples[i]
        k = (s.limit_da, s.demands)
        if k != key or not s.quiet:
            changed = s.t
        elif s.since > changed:  # (a quiet sample's since is not after it)
            changed = s.since
        key = k
        need = 0
        if s.quiet and _wanted(s.demands) > s.limit_da:
            need = min(math.ceil(share * s.limit_da), sum(allocate(s.limit_da, s.demands).values()))
        short = s.offered_da < need
        if not short:
            short_since = INF
        elif short_since == INF:
            short_since = s.t
        at = found.starts(_first_bad(start, stop, max(changed, short_since) + settle_s) if short else None)
        if at is not None:
            found.add(at, f"offered {s.offered_da / 10:.1f} A of a {s.limit_da / 10:.1f} A limit while cars want "
                          f"more (need {need / 10:.1f} A) for {at - max(changed, short_since):.2f} s")
    return found.out
