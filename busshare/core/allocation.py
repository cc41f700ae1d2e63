"""Who gets how much: the allocation policy as one pure function.

``allocate`` takes the circuit limit and what each servant can use, and returns
the target limit of each.  It knows nothing of time, messages or acks: the
master turns targets into cut-then-grant steps (rule 1) and decides *when* to
reallocate (arrival, departure, rotation, reclaim), which is where hysteresis
lives.

Policy:

* Demands with ``want_da`` below 6 A get 0 (nothing to offer).
* **Admission.** Servants are taken by priority (higher first), then by
  ``rank`` (the master's rotation order, lower first), and admitted while
  their minimums fit in the limit.  A servant whose minimum does not fit is
  skipped, not a reason to stop: so under shortage the fewest EVSEs wait, and
  the ones that wait are the lowest priority and the latest in the rotation.
* **Share.** Every admitted servant gets its minimum; what is left is
  water-filled class by class (highest priority first): inside a class every
  servant gets the same level, capped at what it can use.  One car alone gets
  everything its EVSE allows.
* Nothing is wasted: the sum of targets is min(limit, sum of wants) whenever
  every active servant is admitted.
* **Parked** demands (a car paused past its grace, PROTOCOL.md 8.6) come after
  all of that, whatever their priority: each gets its minimum from what the
  others left, by priority then rank, or 0 when that does not fit.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from typing import NamedTuple

from ..frames import MAX_EVSE_DA
from ..frames import MIN_OFFER_DA


class Demand(NamedTuple):
    """What one servant can use now.  (A named tuple: the master builds one per servant per allocation pass,
    and a frozen dataclass costs several times as much to build.)"""

    address: int
    want_da: int  # the most it can use now (EVSE max, EV request, reclaim cap); < 6 A = nothing
    min_da: int = MIN_OFFER_DA  # below this it is not worth charging
    priority: int = 0  # higher is served first
    rank: int = 0  # rotation order inside a priority class: lower is admitted first
    parked: bool = False  # a paused car: its minimum, from leftovers only, after every other demand


def water_level(items: Sequence[tuple[int, int, int]], budget: int) -> int:
    """The largest level whose use fits ``budget``, for 0 <= lo <= hi <= MAX_EVSE_DA and budget < sum(hi).

    The use grows by one per level step for every item with lo <= level < hi: walk the points where that
    count changes (each lo and hi) instead of bisecting 0..MAX_EVSE_DA, which costs a sum per step.
    """
    points = sorted([(lo, 1) for _, lo, _ in items] + [(hi, -1) for _, _, hi in items])
    at = points[0][0]  # the lowest lo: every item uses its lo here
    used = sum(lo for _, lo, _ in items)
    if used > budget:
        return 0  # (no level fits: as the bisection, which never goes below 0)
    slope = 0
    for point, delta in points:
        if point > at:
            grown = used + slope * (point - at)
            if grown > budget:
                break
            used, at = grown, point
        slope += delta
    return at + (budget - used) // slope


def _waterfill(items: Sequence[tuple[int, int, int]], budget: int) -> dict[int, int]:
    """items: (address, lo, hi) in tie-break order, budget >= sum(lo).  Equal level, clamped to [lo, hi]."""

    def used(level: int) -> int:
        return sum(min(hi, max(lo, level)) for _, lo, hi in items)

    if used(MAX_EVSE_DA) <= budget:
        return {a: hi for a, _, hi in items}
    level = water_level(items, budget)
    out = {a: min(hi, max(lo, level)) for a, lo, hi in items}
    spare = budget - used(level)
    for a, lo, hi in items:  # the remainder (< one step per servant) goes by rank
        if spare <= 0:
            break
        if out[a] == level and level < hi and level >= lo:
            out[a] += 1
            spare -= 1
    return out


def allocate(limit_da: int, demands: Iterable[Demand]) -> dict[int, int]:
    """Target limit (0.1 A) for every demand's address; 0 = pause.  Sum <= limit_da."""
    targets: dict[int, int] = {}
    active: list[tuple[Demand, int, int]] = []  # (demand, lo, hi)
    parked: list[tuple[Demand, int, int]] = []
    for d in demands:
        hi = min(d.want_da, MAX_EVSE_DA)
        if hi < MIN_OFFER_DA:
            targets[d.address] = 0
            continue
        lo = max(MIN_OFFER_DA, min(d.min_da, hi))
        (parked if d.parked else active).append((d, lo, hi))
    active.sort(key=lambda x: (-x[0].priority, x[0].rank, x[0].address))
    admitted: list[tuple[Demand, int, int]] = []
    room = max(0, limit_da)
    for d, lo, hi in active:
        if lo <= room:
            admitted.append((d, lo, hi))
            room -= lo
        else:
            targets[d.address] = 0
    # room is what is left above the admitted minimums
    classes: dict[int, list[tuple[Demand, int, int]]] = {}
    for item in admitted:
        classes.setdefault(item[0].priority, []).append(item)
    for prio in sorted(classes, reverse=True):
        members = classes[prio]
        base = sum(lo for _, lo, _ in members)
        got = _waterfill([(d.address, lo, hi) for d, lo, hi in members], base + room)
        room -= sum(got.values()) - base
        targets.update(got)
    # parked cars: only what no other demand can use, each at its minimum (a PWM it can resume on)
    parked.sort(key=lambda x: (-x[0].priority, x[0].rank, x[0].address))
    for d, lo, _ in parked:
        if lo <= room:
            targets[d.address] = lo
            room -= lo
        else:
            targets[d.address] = 0
    return targets


def shortage(limit_da: int, demands: Iterable[Demand]) -> bool:
    """True when some active demand is paused because the minimums do not all fit (a parked one waits anyway)."""
    ds = list(demands)
    got = allocate(limit_da, ds)
    return any(min(d.want_da, MAX_EVSE_DA) >= MIN_OFFER_DA and got[d.address] == 0 and not d.parked for d in ds)
