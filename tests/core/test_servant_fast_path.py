"""The servant's fast paths (issue 12, Performance) leave it where it would be without them.

A routine heartbeat skips the step, and a STATUS that would say what the last one said is the last one
again. Two servants get the same random inputs: one takes the fast paths, the other (a subclass) runs its
whole step after every heartbeat and builds every STATUS afresh. After every call their outputs, events, offers, phases and deadlines must agree. A
status period longer than the heartbeat timers makes those timers the deadline, so a fast path that moved
them wrongly would show.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.config import ServantConfig
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.protocol.pilot import PilotState
from busshare.servant import INF
from busshare.servant import Servant
from tests.support.servant_steps import T

SLOW_STATUS = replace(T, status_period=8.0)


class FullStepServant(Servant):
    """Runs the whole step after every heartbeat, and builds every STATUS afresh, as before the fast paths."""

    def _on_heartbeat(self, hb: Heartbeat, now: float, at: float, out: list[Message]) -> bool:
        super()._on_heartbeat(hb, now, at, out)
        return False

    def _status(self) -> Status:
        self._last_status = None
        return super()._status()


@dataclass(frozen=True)
class Beat:
    hears: bool
    seq_step: int  # 1: fresh; 0 or less: a repeat or a late copy
    epoch: int  # 7: the master followed; 8: a restart
    leaving: bool


@dataclass(frozen=True)
class Grant:
    txn_step: int
    limit_da: int
    failsafe_da: int


@dataclass(frozen=True)
class Reading:
    pilot: PilotState
    measured_da: int | None


@dataclass(frozen=True)
class Tick:
    pass


Action = Beat | Grant | Reading | Tick

actions = st.tuples(
    st.floats(0.0, 2.0),
    st.one_of(
        st.builds(Beat, st.booleans(), st.sampled_from([1, 1, 1, 0, -3]), st.sampled_from([7, 7, 7, 8]),
                  st.booleans()),
        st.builds(Grant, st.integers(1, 6), st.sampled_from([0, 60, 100, 160, 320]), st.sampled_from([0, 60])),
        st.builds(Reading, st.sampled_from([PilotState.A, PilotState.B, PilotState.C]),
                  st.sampled_from([None, 0, 50, 100, 160, 330])),
        st.just(Tick()),
    ),
)


def call(s: Servant, action: Action, now: float, seq: int, txn: int) -> list[Message]:
    if isinstance(action, Beat):
        heard = 0xFE if action.hears else 0
        return s.receive(Heartbeat(1, action.epoch, 640, 0, heard, seq % 1024, leaving=action.leaving), now)
    if isinstance(action, Grant):
        return s.receive(SetLimit(1, txn, action.limit_da, action.failsafe_da, 7), now)
    if isinstance(action, Reading):
        return s.observe(action.pilot, action.measured_da, now)
    return s.tick(now)


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.lists(actions, min_size=1, max_size=60))
def test_a_servant_taking_the_fast_paths_ends_where_the_full_step_does(
        meter: bool, steps: list[tuple[float, Action]]) -> None:
    cfg = ServantConfig(1, max_da=320, failsafe_da=60, serial=0xABC, has_meter=meter)
    fast, full = Servant(cfg, SLOW_STATUS, 0.0), FullStepServant(cfg, SLOW_STATUS, 0.0)
    now = 0.0
    seq = 0
    txn = 0
    for delay, action in steps:
        now = round(now + delay, 3)
        if isinstance(action, Beat):
            seq = max(0, seq + action.seq_step)
        if isinstance(action, Grant):
            txn = (txn + action.txn_step) & 0xFF
        assert call(fast, action, now, seq, txn) == call(full, action, now, seq, txn)
        assert fast.drain_events() == full.drain_events()
        assert (fast.next_deadline(), fast.offer_da, fast.ev_stopped, fast.phase, fast.failsafe) == (
            full.next_deadline(), full.offer_da, full.ev_stopped, full.phase, full.failsafe)


def beat(s: Servant, seq: int, now: float, hears: bool) -> list[Message]:
    return s.receive(Heartbeat(1, 7, 640, 0, 0xFE if hears else 0, seq), now)


def test_a_routine_heartbeat_that_hears_it_again_moves_a_deadline_the_heard_clock_set() -> None:
    """The deadline kept after a routine heartbeat is only kept when neither rule-4 clock set it."""
    cfg = ServantConfig(1, max_da=320, failsafe_da=60, serial=0xABC)
    fast, full = Servant(cfg, SLOW_STATUS, 0.0), FullStepServant(cfg, SLOW_STATUS, 0.0)
    # followed at 0.1, then heartbeats that do not say it is heard: the heard clock (0.1 + 3.5) is the deadline
    for seq in range(1, 16):
        now = round(0.1 + 0.2 * (seq - 1), 3)
        assert beat(fast, seq, now, hears=seq == 1) == beat(full, seq, now, hears=seq == 1)
    assert fast.next_deadline() == full.next_deadline() == 0.1 + SLOW_STATUS.heard_timeout
    assert beat(fast, 16, 3.2, hears=True) == beat(full, 16, 3.2, hears=True)  # heard again: a later deadline
    assert fast.next_deadline() == full.next_deadline() == 3.2 + SLOW_STATUS.failsafe_timeout


class StuckTimer(Servant):
    """A servant with a timer stuck at ``stuck_at`` (already past), so its deadline is made up: now + tick_period."""

    stuck_at = INF

    def _failsafe_deadline(self, d: float) -> float:
        return min(super()._failsafe_deadline(d), self.stuck_at)


class FullStepStuckTimer(StuckTimer, FullStepServant):
    pass


def test_a_routine_heartbeat_moves_a_made_up_deadline() -> None:
    """A deadline made up after a step (no timer after now) is worked out again by a routine heartbeat."""
    cfg = ServantConfig(1, max_da=320, failsafe_da=60, serial=0xABC)
    fast, full = StuckTimer(cfg, SLOW_STATUS, 0.0), FullStepStuckTimer(cfg, SLOW_STATUS, 0.0)
    assert beat(fast, 1, 0.1, hears=True) == beat(full, 1, 0.1, hears=True)
    fast.stuck_at = full.stuck_at = 0.15
    assert fast.tick(0.2) == full.tick(0.2)
    assert fast.next_deadline() == full.next_deadline() == 0.2 + SLOW_STATUS.tick_period
    assert beat(fast, 2, 0.22, hears=True) == beat(full, 2, 0.22, hears=True)
    assert fast.next_deadline() == full.next_deadline() == 0.22 + SLOW_STATUS.tick_period
