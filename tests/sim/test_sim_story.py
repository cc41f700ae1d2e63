"""Acceptance test: the seed's story, run by the real Master and Servants on the simulated bus.

Four EVSEs on an 80 A breaker (64 A continuous):
1. one car alone gets 64 A;
2. a second car plugs in: the first is cut to 32 A and acks, and only then does the second get 32 A;
3. the first is full (B while offered, like a pause): it keeps its share for the grace, then is
   parked from leftovers (none), and the second goes back to 64 A; the first leaves (RELEASE);
4. the master falls silent: every servant is at its failsafe current within the timeout.

Everything is read back from what a sniffer on the bus recorded (the capture) and
from the timeline of offered and drawn currents, not from the nodes' insides.
"""

from __future__ import annotations

import pytest

from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import Release
from busshare.frames import ReleaseReason
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import decode
from busshare.protocol.pilot import PilotState
from busshare.sim import load_scenario
from busshare.sim import run_scenario
from busshare.sim.runner import SimResult

CAR2_PLUGS = 40.0
CAR1_LEAVES = 170.0
MASTER_DIES = 200.0


@pytest.fixture(scope="module")
def story() -> SimResult:
    return run_scenario(load_scenario("story"))


@pytest.fixture(scope="module")
def wire(story: SimResult) -> list[tuple[float, Message]]:
    out = []
    for t, can_id, data in story.capture:
        msg, _ = decode(can_id, data)
        out.append((t, msg))
    return out


def first(wire: list[tuple[float, Message]], after: float, pred: object) -> tuple[float, Message]:
    for t, m in wire:
        if t >= after and pred(m):  # type: ignore[operator]
            return t, m
    raise AssertionError("no such frame on the bus")


def test_the_story_runs_with_no_invariant_violation(story: SimResult) -> None:
    assert story.ok, story.summary.text()
    assert story.summary.peak_offered_da <= 640
    assert story.summary.peak_drawn_da <= 640


def test_one_car_alone_gets_the_whole_64_a(story: SimResult, wire: list[tuple[float, Message]]) -> None:
    sample = story.timeline.at(1, CAR2_PLUGS - 0.01)
    assert sample is not None and sample.offered_da == 640
    assert sample.drawn_da == 640  # and the car really draws it
    grants = [m for t, m in wire if t < CAR2_PLUGS and isinstance(m, SetLimit) and m.address == 1]
    assert grants and grants[-1].limit_da == 640


def test_second_car_first_is_cut_and_acks_and_only_then_the_second_gets_32_a(
    story: SimResult, wire: list[tuple[float, Message]]
) -> None:
    t_cut, cut = first(wire, CAR2_PLUGS, lambda m: isinstance(m, SetLimit) and m.address == 1 and m.limit_da < 640)
    assert isinstance(cut, SetLimit) and cut.limit_da == 320
    t_ack, ack = first(wire, t_cut, lambda m: isinstance(m, Ack) and m.address == 1 and m.txn == cut.txn)
    assert isinstance(ack, Ack) and ack.applied_da == 320
    assert ack.how is AckHow.MEASURED and ack.measured_da is not None and ack.measured_da <= 320 + 10
    t_grant, grant = first(wire, CAR2_PLUGS, lambda m: isinstance(m, SetLimit) and m.address == 2 and m.limit_da > 0)
    assert isinstance(grant, SetLimit) and grant.limit_da == 320
    assert t_cut < t_ack < t_grant  # cut, then its ack, and only then the grant
    # the first car really came down before the ack went out
    s1 = story.timeline.at(1, t_ack)
    assert s1 is not None and s1.drawn_da is not None and s1.drawn_da <= 320
    # and both end up sharing equally
    for address in (1, 2):
        s = story.timeline.at(address, t_grant + 1.0)
        assert s is not None and s.offered_da == 320


def test_first_finishes_is_parked_after_the_grace_then_the_second_goes_back_to_64_a(
    story: SimResult, wire: list[tuple[float, Message]]
) -> None:
    """Full looks like a pause on the pilot (B while offered): no RELEASE; the car keeps its share for the
    grace (reclaim_after), then is parked at its minimum from leftovers, of which the second car, able to use
    all 64 A, leaves none: cut to 0, acked, and only then the second goes back to 64 A."""
    assert not [m for t, m in wire if isinstance(m, Release) and m.address == 1 and t < CAR1_LEAVES]
    t_full, _ = first(wire, CAR2_PLUGS, lambda m: isinstance(m, Status) and m.address == 1 and m.pilot is PilotState.B)
    grace = load_scenario("story").config.timing.reclaim_after
    t_cut, cut = first(wire, t_full, lambda m: isinstance(m, SetLimit) and m.address == 1 and m.limit_da < 320)
    assert isinstance(cut, SetLimit) and cut.limit_da == 0 and cut.failsafe_da == 0
    assert t_full + grace <= t_cut < t_full + grace + 1.0
    t_ack, _ = first(wire, t_cut, lambda m: isinstance(m, Ack) and m.address == 1 and m.txn == cut.txn)
    t_up, _ = first(wire, t_cut, lambda m: isinstance(m, SetLimit) and m.address == 2 and m.limit_da == 640)
    assert t_cut < t_ack < t_up < CAR1_LEAVES
    _, rel = first(wire, CAR1_LEAVES, lambda m: isinstance(m, Release) and m.address == 1)
    assert isinstance(rel, Release) and rel.reason is ReleaseReason.UNPLUGGED and rel.released_da == 0
    s2 = story.timeline.at(2, MASTER_DIES - 0.01)
    assert s2 is not None and s2.offered_da == 640
    s1 = story.timeline.at(1, MASTER_DIES - 0.01)
    assert s1 is not None and s1.offered_da == 0 and s1.drawn_da == 0


def test_master_silent_every_servant_at_its_failsafe_within_the_timeout(
    story: SimResult, wire: list[tuple[float, Message]]
) -> None:
    heartbeats = [t for t, m in wire if isinstance(m, Heartbeat)]
    last_hb = heartbeats[-1]
    assert MASTER_DIES - 0.3 < last_hb <= MASTER_DIES + 0.01
    bound = last_hb + 1.5 + 0.05  # failsafe timeout + one tick
    for address in (1, 2, 3, 4):
        grants = [m for t, m in wire if isinstance(m, SetLimit) and m.address == address]
        failsafe = grants[-1].failsafe_da if grants else 60
        s = story.timeline.at(address, bound)
        assert s is not None and s.offered_da <= failsafe, (address, s, failsafe)
    # the charging servant says so on the bus: every status after the bound carries the failsafe flag
    status = [m for t, m in wire if t > bound and isinstance(m, Status) and m.address == 2]
    assert status and all(m.failsafe for m in status)
    assert story.summary.failsafe_episodes >= 1


def test_a_held_master_assigned_failsafe_falls_to_the_standalone_one(
    story: SimResult, wire: list[tuple[float, Message]]
) -> None:
    """The master may arm a high failsafe (here 64 A: the only car); after failsafe_hold it is min(armed, own)."""
    timing = load_scenario("story").config.timing
    last_hb = [t for t, m in wire if isinstance(m, Heartbeat)][-1]
    later = last_hb + timing.failsafe_timeout + timing.tick_period + timing.failsafe_hold + timing.tick_period
    assert later < story.summary.sim_seconds
    for address in (1, 2, 3, 4):
        s = story.timeline.at(address, later)
        assert s is not None and s.offered_da <= 60, (address, s)
