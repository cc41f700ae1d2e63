"""``HeartbeatOrder.fresh`` repeats ``newer``'s predicate (a call cost too much there): the two must agree.

Random heartbeats (ahead, behind, repeated, after a long silence, across the seq wrap): before every ``fresh``,
``newer`` must say what ``fresh`` then does, and take nothing itself.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.heartbeat_order import FORGET_AFTER_S
from busshare.core.heartbeat_order import HALF
from busshare.core.heartbeat_order import HeartbeatOrder
from busshare.frames import HEARTBEAT_SEQ_MODULO

steps = st.lists(st.tuples(
    st.sampled_from([0.0, 0.2, 0.2, 1.0, FORGET_AFTER_S - 0.1, FORGET_AFTER_S, FORGET_AFTER_S + 1.0]),
    st.one_of(st.sampled_from([1, 1, 1, 0, -1, -5, 2, HALF - 1, HALF, HALF + 1]),
              st.integers(0, HEARTBEAT_SEQ_MODULO - 1)),
), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(0, HEARTBEAT_SEQ_MODULO - 1))
def test_fresh_takes_exactly_what_newer_says(heartbeats: list[tuple[float, int]], first: int) -> None:
    order = HeartbeatOrder(0.2)
    now, seq = 0.0, first
    for dt, step in heartbeats:
        now += dt
        seq = (seq + step) % HEARTBEAT_SEQ_MODULO
        before = (order.newest, order.at)
        said = order.newer(seq, now)
        assert (order.newest, order.at) == before, "newer takes nothing"
        assert order.fresh(seq, now) == said
        assert (order.newest, order.at) == ((seq, now) if said else before)
