"""The allocation policy: equal share, capped, priority classes, fewest paused under shortage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from busshare.core.allocation import Demand
from busshare.core.allocation import allocate
from busshare.core.allocation import shortage
from busshare.core.allocation import water_level
from busshare.frames import MAX_EVSE_DA


def test_one_car_alone_gets_everything_its_evse_allows() -> None:
    assert allocate(640, [Demand(1, 800), Demand(2, 0), Demand(3, 0)]) == {1: 640, 2: 0, 3: 0}
    assert allocate(640, [Demand(1, 320)]) == {1: 320}


def test_equal_share_capped_by_each_maximum() -> None:
    assert allocate(640, [Demand(1, 800), Demand(2, 800)]) == {1: 320, 2: 320}
    # the capped one's leftover goes to the others
    assert allocate(640, [Demand(1, 800), Demand(2, 100), Demand(3, 800)]) == {1: 270, 2: 100, 3: 270}


def test_remainder_of_an_uneven_split_is_not_wasted() -> None:
    got = allocate(641, [Demand(1, 800), Demand(2, 800), Demand(3, 800)])
    assert sum(got.values()) == 641 and max(got.values()) - min(got.values()) <= 1


def test_shortage_pauses_the_fewest_and_the_latest_in_rotation() -> None:
    ds = [Demand(a, 320, rank=a) for a in range(1, 13)]  # 12 cars, 6 A each would need 72 A
    got = allocate(640, ds)
    assert sum(1 for v in got.values() if v == 0) == 2
    assert got[11] == got[12] == 0
    assert shortage(640, ds)
    # the master rotates: the ones who waited get the lowest ranks next
    ds2 = [Demand(a, 320, rank=(a + 2) % 12) for a in range(1, 13)]
    got2 = allocate(640, ds2)
    assert got2[11] > 0 and got2[12] > 0 and got2[8] == got2[9] == 0


def test_priority_decides_who_waits_and_who_gets_the_surplus() -> None:
    ds = [Demand(1, 320, priority=0), Demand(2, 320, priority=5), Demand(3, 320, min_da=100, priority=0)]
    assert allocate(150, ds) == {2: 90, 1: 60, 3: 0}  # 3's minimum does not fit beside the others
    assert allocate(640, ds) == {2: 320, 1: 160, 3: 160}


def test_a_demand_below_6_a_gets_nothing() -> None:
    assert allocate(640, [Demand(1, 50), Demand(2, 800)]) == {1: 0, 2: 640}


demand_lists = st.lists(
    st.builds(
        Demand,
        address=st.integers(1, 62),
        want_da=st.integers(0, 800),
        min_da=st.integers(60, 160),
        priority=st.integers(0, 2),
        rank=st.integers(0, 62),
        parked=st.just(False),  # (a named tuple: builds would draw every field; parked cars: tests/core/test_pause.py)
    ),
    max_size=20,
    unique_by=lambda d: d.address,
)


@given(st.integers(0, 2000), demand_lists)
def test_properties(limit: int, ds: list[Demand]) -> None:
    got = allocate(limit, ds)
    assert set(got) == {d.address for d in ds}
    assert sum(got.values()) <= limit  # never over-commit
    for d in ds:
        v = got[d.address]
        assert v == 0 or 60 <= v <= min(d.want_da, 800)  # a pilot can offer it, never above what it can use
        if v:
            assert v >= min(d.min_da, d.want_da)
    active = [d for d in ds if d.want_da >= 60]
    if all(got[d.address] > 0 for d in active):
        # no wasted capacity: min(limit, sum of wants)
        assert sum(got.values()) == min(limit, sum(d.want_da for d in active))
    # equal share inside a class: a servant below another's level is at its own cap
    for a in active:
        for b in active:
            if a.priority == b.priority and got[a.address] and got[b.address] > got[a.address] + 1:
                assert got[a.address] >= min(a.want_da, 800) or got[b.address] == max(60, min(b.min_da, b.want_da))


@given(st.integers(60, 2000), demand_lists)
def test_a_paused_car_could_not_have_fitted(limit: int, ds: list[Demand]) -> None:
    got = allocate(limit, ds)
    used_min = sum(max(60, min(d.min_da, d.want_da)) for d in ds if got[d.address])
    for d in ds:
        if d.want_da >= 60 and got[d.address] == 0:
            assert used_min + max(60, min(d.min_da, d.want_da)) > limit


@given(st.lists(st.tuples(st.integers(60, 800), st.integers(60, 800)), min_size=1, max_size=8), st.integers(0, 800))
def test_the_water_level_is_the_highest_that_fits(bounds: list[tuple[int, int]], extra: int) -> None:
    """The level walk gives what a search of every level gives: the highest whose use fits the budget."""
    items = [(a, min(x, y), max(x, y)) for a, (x, y) in enumerate(bounds)]
    budget = sum(lo for _, lo, _ in items) + extra
    if sum(hi for _, _, hi in items) <= budget:
        return  # (everyone gets its maximum: no level to find)

    def used(level: int) -> int:
        return sum(min(hi, max(lo, level)) for _, lo, hi in items)

    assert water_level(items, budget) == max(v for v in range(MAX_EVSE_DA + 1) if used(v) <= budget)
