"""The servant state machine, driven directly with a virtual clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busshare.core.events import EventKind
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Heartbeat
from busshare.frames import Join
from busshare.frames import Message
from busshare.frames import Nack
from busshare.frames import NackCode
from busshare.frames import Release
from busshare.frames import ReleaseReason
from busshare.frames import Request
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.protocol.pilot import PilotState
from busshare.servant import Servant
from tests.support.servant_steps import HEARS_1_TO_7
from tests.support.servant_steps import C
from tests.support.servant_steps import T
from tests.support.servant_steps import following
from tests.support.servant_steps import hb
from tests.support.servant_steps import make
from tests.support.servant_steps import of


def beat(s: Servant, start: float, end: float, step: float = 0.05, **obs: int | None) -> list[Message]:
    """Heartbeats every 0.2 s and ticks every 0.05 s from start to end; observe(C, measured) if given."""
    out: list[Message] = []
    t = start
    while t < end - 1e-9:
        t = round(t + step, 9)
        if abs(t / 0.2 - round(t / 0.2)) < 1e-6:
            out += s.receive(hb(), t)
        if "measured" in obs:
            out += s.observe(C, obs["measured"], t)
        out += s.tick(t)
    return out


# -- boot, status, join, request, release -----------------------------------------------


def test_boot_sends_join_and_status_and_requests_current_for_a_car() -> None:
    s = make()
    out = s.tick(0.0)
    assert of(Join, out) == [Join(1, 0xABC, 320)]
    assert of(Status, out)[0].offered_da == 0
    out = s.observe(PilotState.B, 0, 0.1)
    assert of(Request, out) == [Request(1, 320, 60, 0)]
    assert of(Status, out)[0].requested_da == 320  # pilot change: status at once


def test_status_every_status_period() -> None:
    s = make()
    times = [t / 100 for t in range(0, 301, 5) if of(Status, s.tick(t / 100))]
    assert times == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def test_a_car_going_to_b_while_offered_pauses_it_keeps_offer_and_demand_and_releases_only_when_unplugged() -> None:
    """C -> B while offered is a pause, not the end (PROTOCOL.md 8.4): a J1772 car resumes only on a PWM
    offer, so the pilot keeps it and the demand stays; the master decides when to park it. Unplugged: RELEASE."""
    s = following(limit=320)
    beat(s, 0.1, 6.0)  # (offered for more than a reaction allowance: B now is the car's own doing)
    out = s.observe(PilotState.B, 0, 6.0)
    assert of(Release, out) == []
    assert s.offer_da == 320 and s.requested_da == 320
    assert of(Status, out)[0].pilot is PilotState.B and of(Status, out)[0].requested_da == 320
    assert [e.kind for e in s.drain_events()].count(EventKind.EV_PAUSED) == 1
    out = s.observe(PilotState.A, 0, 7.0)
    assert of(Release, out) == [Release(1, 320, ReleaseReason.UNPLUGGED)]
    assert s.offer_da == 0 and s.requested_da == 0


def test_a_paused_car_is_never_taken_as_finished_and_resumes_on_the_offer_it_kept() -> None:
    """However long it stays in B (a car on a 01:00 timer), no RELEASE and no timer ends the pause: it resumes
    on the PWM it kept. Also right after a pause (0 A) of ours, which the car may still be following."""
    s = following(limit=320)
    beat(s, 0.1, 6.0)
    s.receive(SetLimit(1, 2, 0, 0, 7), 6.0)  # paused by the master...
    s.receive(SetLimit(1, 3, 320, 60, 7), 7.0)  # ...and offered 32 A again a second later
    out = s.observe(PilotState.B, 0, 7.5)
    out += beat(s, 7.5, 7.0 + T.reaction_allowance + 60.0)
    assert of(Release, out) == [] and s.offer_da == 320 and s.requested_da == 320
    assert all(st.requested_da == 320 for st in of(Status, out))
    out = s.observe(C, 100, 70.0)
    assert of(Release, out) == [] and s.offer_da == 320
    assert of(Status, out)[0].pilot is C


def test_graceful_shutdown_turns_the_pilot_off_and_releases_without_acking_a_pending_cut() -> None:
    # its car may still draw 32 A for a reaction allowance: the cut to 16 A has not taken effect,
    # so it is not acked; the RELEASE(SHUTDOWN) tells the master to keep counting the old current
    s = following(limit=320)
    s.observe(C, 320, 0.2)
    out = s.receive(SetLimit(1, 2, 160, 60, 7), 0.3)
    assert of(Ack, out) == [] and s.offer_da == 160
    out = s.shutdown(0.4)
    assert out == [Release(1, 320, ReleaseReason.SHUTDOWN)]
    assert s.offer_da == 0


# -- rule 2: a cut is acked only when it has taken effect ---------------------------------


def test_cut_lowers_the_pilot_at_once_and_acks_when_the_meter_agrees() -> None:
    s = following(limit=320)
    s.observe(C, 318, 0.2)
    out = s.receive(SetLimit(1, 2, 160, 60, 7), 0.3)
    assert s.offer_da == 160, "pilot lowered at once"
    assert of(Ack, out) == []
    assert of(Ack, s.observe(C, 200, 1.0)) == [], "still above 16 A"
    assert of(Ack, s.observe(C, 165, 1.2)) == [], "within the meter tolerance is not yet proof"
    out = s.observe(C, 158, 1.5)
    assert of(Ack, out) == [Ack(1, 2, 160, 158, AckHow.MEASURED)]


def test_a_car_settling_within_the_tolerance_band_is_acked_after_the_allowance_not_stopped() -> None:
    s = following(limit=320)
    s.observe(C, 300, 0.2)
    s.receive(SetLimit(1, 2, 160, 60, 7), 1.0)
    out = beat(s, 1.0, 6.05, measured=168)  # 16.8 A: above 16 A, within 1 A tolerance (meter error)
    assert of(Ack, out) == [Ack(1, 2, 160, 168, AckHow.TIMED)]
    assert not s.ev_stopped


def test_cut_without_a_meter_is_acked_after_the_reaction_allowance() -> None:
    s = following(meter=False, limit=320)
    s.receive(SetLimit(1, 2, 160, 60, 7), 1.0)
    assert s.offer_da == 160
    out = beat(s, 1.0, 5.95)
    assert of(Ack, out) == []
    out = beat(s, 5.95, 6.05)
    assert of(Ack, out) == [Ack(1, 2, 160, None, AckHow.TIMED)]


def test_a_shallower_cut_replacing_an_unacked_one_is_still_a_cut_not_a_raise() -> None:
    # 32 A -> 21.4 A (car still drawing 32 A) -> 26 A: the offer rises, but the car may still draw
    # 32 A, so an immediate "raise" ack would let the master give the difference away (chaos seed 1242)
    s = following(limit=320)
    s.observe(C, 320, 0.2)
    s.receive(SetLimit(1, 2, 214, 0, 7), 0.3)
    out = s.receive(SetLimit(1, 3, 260, 0, 7), 0.4)
    assert s.offer_da == 260
    assert of(Ack, out) == [], "not acked while the car still draws 32 A"
    assert of(Ack, s.observe(C, 259, 1.0)) == [Ack(1, 3, 260, 259, AckHow.MEASURED)]


def test_a_shallower_cut_without_a_meter_runs_on_the_clock_of_the_lowering_it_covers() -> None:
    s = following(meter=False, limit=320)
    beat(s, 0.1, 1.0)
    s.receive(SetLimit(1, 2, 250, 60, 7), 1.0)  # pilot at 25 A from t=1
    beat(s, 1.0, 3.0)
    s.receive(SetLimit(1, 3, 60, 60, 7), 3.0)  # deeper, from t=3 (silent: cut to its failsafe)
    beat(s, 3.0, 3.5)
    out = s.receive(SetLimit(1, 4, 250, 60, 7), 3.5)  # back: 25 A is enough after all
    assert s.offer_da == 250 and of(Ack, out) == []
    # the pilot has been at or below 25 A since t=1: the allowance runs from there, not from t=3.5
    assert of(Ack, beat(s, 3.5, 5.95)) == []
    assert of(Ack, beat(s, 5.95, 6.05)) == [Ack(1, 4, 250, None, AckHow.TIMED)]


def test_a_set_limit_just_after_the_failsafe_lowered_the_pilot_is_a_cut_not_a_raise() -> None:
    # the failsafe took the pilot from 10 A to 6 A while the car draws 10 A; the master's 7.8 A then
    # raises the pilot, but the car may still draw 10 A: acking it at once would free current the car
    # still draws (chaos seed 1372)
    s = following(limit=100)
    s.observe(C, 100, 0.2)
    s.tick(1.6)
    assert s.in_failsafe and s.offer_da == 60
    out = s.receive(SetLimit(1, 2, 78, 60, 7), 1.9)
    assert s.offer_da == 78 and not s.in_failsafe
    assert of(Ack, out) == [], "the car still draws 10 A"
    assert of(Ack, s.observe(C, 75, 2.5)) == [Ack(1, 2, 78, 75, AckHow.MEASURED)]


def test_the_same_set_limit_long_after_the_lowering_is_acked_at_once() -> None:
    s = following(meter=False, limit=100)
    s.tick(1.6)
    assert s.offer_da == 60
    beat(s, 1.6, 1.6 + T.reaction_allowance)  # (heartbeats again; the failsafe holds until a set-limit)
    out = s.receive(SetLimit(1, 2, 78, 60, 7), 1.6 + T.reaction_allowance)
    assert of(Ack, out) == [Ack(1, 2, 78, None, AckHow.IMMEDIATE)]


# -- rule 2 for a car that may be on its way up (issue 10, finding 3) ------------------------------------

R = T.reaction_allowance


def steady(limit: int, draw: int, meter: bool = True) -> Servant:
    """Granted ``limit`` at t=0.1, its car drawing ``draw`` steadily since t=0.2; now is t=10."""
    s = following(meter=meter, limit=limit)
    s.observe(C, draw if meter else None, 0.2)
    beat(s, 0.2, 10.0, **({"measured": draw} if meter else {}))
    return s


def test_a_cut_just_after_a_grant_is_not_proven_by_a_meter_reading_the_old_draw() -> None:
    """The car drew 10 A; granted 16 A at t=10 and cut back to 10 A at t=10.5, it may not have seen the
    grant yet and still climb to 16 A: a meter at 10 A proves nothing until the grant is an allowance old."""
    s = steady(100, 100)
    s.receive(SetLimit(1, 2, 160, 60, 7), 10.0)
    out = s.receive(SetLimit(1, 3, 100, 60, 7), 10.5)
    assert s.offer_da == 100 and of(Ack, out) == []
    assert of(Ack, beat(s, 10.5, 10.0 + R - 0.05, measured=100)) == []
    assert of(Ack, beat(s, 10.0 + R - 0.05, 10.0 + R + 0.05, measured=100)) == [
        Ack(1, 3, 100, 100, AckHow.MEASURED)], "the grant is an allowance old and the draw never rose"


def test_a_car_that_climbed_to_the_grant_and_came_down_has_seen_the_cut() -> None:
    """Pilot changes are seen in order: a car that went above the old pilot saw the grant, and one that
    then came down below the cut saw the cut, the last change: it cannot climb again."""
    s = steady(100, 100)
    s.receive(SetLimit(1, 2, 160, 60, 7), 10.0)
    s.receive(SetLimit(1, 3, 100, 60, 7), 10.5)
    out = beat(s, 10.5, 13.0, measured=100)
    out += s.observe(C, 160, 13.0)  # it saw the grant: 16 A
    out += beat(s, 13.0, 14.0, measured=160)
    assert of(Ack, out) == []
    assert of(Ack, s.observe(C, 100, 14.0)) == [Ack(1, 3, 100, 100, AckHow.MEASURED)]


def test_a_car_steadily_drawing_less_than_its_offer_is_acked_at_once() -> None:
    s = steady(160, 80)
    out = s.receive(SetLimit(1, 2, 100, 60, 7), 10.0)
    assert of(Ack, out) == [Ack(1, 2, 100, 80, AckHow.MEASURED)]


def test_a_car_coming_down_after_a_cut_is_acked_when_it_is_down() -> None:
    s = steady(160, 160)
    assert of(Ack, s.receive(SetLimit(1, 2, 100, 60, 7), 10.0)) == []
    assert of(Ack, s.observe(C, 98, 12.0)) == [Ack(1, 2, 100, 98, AckHow.MEASURED)]


def test_a_car_that_already_drew_its_grant_has_seen_it() -> None:
    """Granted 32 A and at 31.8 A, it has seen the grant; coming down after the cut it has seen that too."""
    s = following(limit=320)  # granted at t=0.1
    s.observe(C, 318, 0.5)
    assert of(Ack, s.receive(SetLimit(1, 2, 160, 60, 7), 1.0)) == []
    assert of(Ack, s.observe(C, 158, 2.0)) == [Ack(1, 2, 160, 158, AckHow.MEASURED)]


def test_a_car_still_ramping_toward_an_older_grant_is_not_proven_by_the_meter() -> None:
    """Granted 32 A long ago, it ramps slowly and reads 12 A when cut to 16 A: it may not have seen the cut
    and go on to 32 A. Stopping at 16 A it may only be pausing: the allowance decides (TIMED)."""
    s = following(limit=320)
    t, draw, out = 0.1, 0, []
    while draw < 120:  # 2 A every second
        t, draw = round(t + 1.0, 9), draw + 20
        out += s.observe(C, draw, t)
        beat(s, t, t + 0.95, measured=draw)
    assert t > R
    out = s.receive(SetLimit(1, 2, 160, 60, 7), t + 0.5)
    assert of(Ack, out) == []
    out = s.observe(C, 140, t + 1.0)  # still climbing (it has not seen the cut)
    out += s.observe(C, 160, t + 2.0)  # now it has: it stops at 16 A
    out += beat(s, t + 2.0, t + 0.5 + R - 0.05, measured=160)
    assert of(Ack, out) == []
    assert of(Ack, beat(s, t + 0.5 + R - 0.05, t + 0.5 + R + 0.05, measured=160)) == [
        Ack(1, 2, 160, 160, AckHow.TIMED)]


def test_a_meterless_unit_with_a_car_not_yet_charging_waits_for_a_grant_it_may_still_see() -> None:
    s = make(meter=False)
    s.receive(hb(), 0.1)
    s.observe(PilotState.B, None, 0.1)
    s.receive(SetLimit(1, 1, 160, 60, 7), 0.2)  # the car (state B) may start on it any moment
    out = s.receive(SetLimit(1, 2, 0, 0, 7), 0.5)
    assert s.offer_da == 0 and of(Ack, out) == []
    assert of(Ack, beat(s, 0.5, 0.2 + R + 0.05)) == [Ack(1, 2, 0, None, AckHow.IMMEDIATE)]


def test_a_car_stopped_by_its_contactor_cannot_climb() -> None:
    """Granted, then cut to 0 at once: with its contactor open the car draws nothing and cannot climb, so the
    meter proves the cut without waiting for the grant to age (chaos seed 1526: 13.4 A held unused)."""
    s = steady(160, 160)
    s.receive(SetLimit(1, 2, 100, 60, 7), 10.0)
    beat(s, 10.0, 10.0 + R + 0.05, measured=160)  # it ignores the cut: stopped
    assert s.ev_stopped
    s.observe(PilotState.B, 0, 15.2)
    s.receive(SetLimit(1, 3, 160, 60, 7), 15.3)
    out = s.receive(SetLimit(1, 4, 0, 0, 7), 15.4)
    assert of(Ack, out) == [Ack(1, 4, 0, 0, AckHow.MEASURED)]


def test_an_ev_that_ignores_the_cut_is_stopped_reported_and_then_the_cut_is_acked() -> None:
    s = following(limit=320)
    s.observe(C, 300, 0.9)
    s.receive(SetLimit(1, 2, 100, 60, 7), 1.0)
    out = beat(s, 1.0, 5.95, measured=300)
    assert not s.ev_stopped and of(Ack, out) == []
    out = beat(s, 5.95, 6.05, measured=300)
    assert s.ev_stopped
    assert of(Nack, out) == [Nack(1, NackCode.EV_OVERDRAW, 1, 2, 300)]
    assert of(Ack, out) == [Ack(1, 2, 100, 300, AckHow.TIMED)]
    assert out.index(of(Nack, out)[0]) < out.index(of(Ack, out)[0])
    assert of(Status, s.tick(7.0))[0].ev_stopped
    s.observe(PilotState.A, 0, 8.0)
    assert not s.ev_stopped, "unplugging clears the stop"


def test_an_ev_overdrawing_without_a_cut_is_stopped_after_the_allowance() -> None:
    s = following(limit=160)
    beat(s, 0.1, 5.0, measured=250)
    assert not s.ev_stopped
    beat(s, 5.0, 5.2, measured=250)
    assert s.ev_stopped


def test_raise_is_applied_at_once_and_acked_immediate() -> None:
    s = following(limit=160)
    out = s.receive(SetLimit(1, 2, 320, 60, 7), 0.5)
    assert s.offer_da == 320
    assert of(Ack, out) == [Ack(1, 2, 320, 0, AckHow.IMMEDIATE)]


def test_a_repeated_txn_is_acked_again_not_applied_twice() -> None:
    s = following(limit=160)
    first = of(Ack, s.receive(SetLimit(1, 2, 320, 60, 7), 0.5))
    s.observe(C, 100, 0.6)  # the car changes nothing about txn 2
    again = of(Ack, s.receive(SetLimit(1, 2, 320, 60, 7), 1.5))
    assert again == first


def test_an_older_txn_is_never_applied_however_the_numbers_wrap() -> None:
    """txns are ordered modulo 256 (PROTOCOL 5.1): 1-127 ahead of the newest applied is newer, 128-255 older.

    A late copy of an old grant (issue 10, finding 2) is refused and reported, never applied again."""
    s = following(limit=160)  # txn 1
    for txn, limit in ((100, 200), (200, 240), (44, 100)):  # 44 is 100 ahead of 200: newer, across the wrap
        s.receive(SetLimit(1, txn, limit, 60, 7), 0.5)
        assert s.limit_da == limit
    s.observe(C, 90, 0.6)
    for old, limit in ((200, 240), (1, 320), (43, 320), (172, 320)):  # 100, 43, 1 and 128 behind txn 44
        out = s.receive(SetLimit(1, old, limit, 60, 7), 0.7)
        assert s.limit_da == 100 and s.offer_da == 100
        assert out == [Nack(1, NackCode.OLD_TXN, 1, old, 44)]
    out = s.receive(SetLimit(1, 171, 320, 60, 7), 0.8)  # 127 ahead of 44: newer
    assert s.limit_da == 320 and of(Ack, out)


def test_a_repeat_in_failsafe_ends_it_but_never_raises_the_offer() -> None:
    """Issue 10, finding 4: the re-sent grant finds the servant in failsafe. Its cached ACK ("8 A applied")
    would be a lie; it is applied again (rule 4: a SET_LIMIT of the master followed ends the failsafe), but
    no higher than the offer now, since a repeat may be a late copy; the ACK says what was applied."""
    s = following(limit=100)  # txn 1: 10 A, failsafe 6 A
    s.observe(C, 100, 0.2)
    s.tick(1.6)
    assert s.in_failsafe and s.offer_da == 60
    out = s.receive(SetLimit(1, 1, 100, 60, 7), 1.7)  # the master re-sends txn 1 (our ack was lost)
    assert not s.in_failsafe and s.offer_da == 60 and s.limit_da == 60
    assert of(Ack, out) == [], "the car may still draw 10 A: acked as a cut, by rule 2"
    assert of(Ack, s.observe(C, 58, 2.5)) == [Ack(1, 1, 60, 58, AckHow.MEASURED)]
    out = s.receive(SetLimit(1, 1, 100, 60, 7), 3.0)  # once it stands where its ack said, it re-acks
    assert of(Ack, out) == [Ack(1, 1, 60, 58, AckHow.MEASURED)] and s.offer_da == 60


def test_a_repeat_after_the_car_left_is_acked_at_what_it_offers() -> None:
    s = following(limit=160)
    s.observe(PilotState.A, 0, 0.5)  # unplugged: released, offers 0
    out = s.receive(SetLimit(1, 1, 160, 60, 7), 1.0)
    assert s.offer_da == 0 and of(Ack, out) == [Ack(1, 1, 0, 0, AckHow.MEASURED)]


def test_set_limit_of_another_epoch_is_ignored() -> None:
    s = following(limit=160)
    assert s.receive(SetLimit(1, 9, 320, 60, 8), 0.5) == [] or s.offer_da == 160
    assert s.offer_da == 160


# -- rule 7: local limits --------------------------------------------------------------------


@given(st.integers(0, 800), st.integers(0, 800))
def test_never_offers_more_than_its_own_maximum(limit: int, failsafe: int) -> None:
    limit = 0 if limit < 60 else limit
    failsafe = 0 if failsafe < 60 else failsafe
    s = following(limit=60, max_da=160)
    out = s.receive(SetLimit(1, 3, limit, failsafe, 7), 0.5)
    assert s.offer_da <= 160
    assert all(a.applied_da <= 160 for a in of(Ack, out))
    beat(s, 0.5, 3.0)  # and in failsafe too
    assert s.offer_da <= 160


# -- rule 4: master silent -> failsafe, only ever lower -----------------------------------------


def test_failsafe_after_the_timeout_lowers_to_the_armed_failsafe() -> None:
    s = following(limit=320)
    s.receive(hb(), 1.0)
    s.tick(2.45)
    assert not s.in_failsafe and s.offer_da == 320
    s.tick(2.5)
    assert s.in_failsafe and s.offer_da == 60
    assert of(Status, s.tick(3.0))[0].failsafe


@pytest.mark.parametrize("last", [254.60110399999408, 0.1 + 1e-12, 1e6 / 3])
def test_failsafe_engages_at_its_own_deadline_whatever_the_float_rounding(last: float) -> None:
    # 256.10110399999405 - 254.60110399999408 is 1.4999999999999716 in binary floating point: the
    # servant must still fail safe when tick() is called at the deadline it announced (chaos seed 1178)
    s = following(limit=320)
    s.receive(hb(), last)
    due = last + T.failsafe_timeout  # what next_deadline() announces once the status deadlines are past
    while s.next_deadline() < due:
        s.tick(s.next_deadline())
    assert s.next_deadline() == due and not s.in_failsafe
    s.tick(due)
    assert s.in_failsafe and s.offer_da == 60


def test_failsafe_counts_from_a_heartbeats_arrival_not_from_when_it_is_read() -> None:
    """PROTOCOL.md 8.2 rule 4, a stalled process: a heartbeat that arrived at 1.0 and waited in the receive queue
    until 1.4 proves the master alive at 1.0 only."""
    s = following(limit=320)
    s.receive(hb(), 1.4, arrived=1.0)
    s.tick(2.45)
    assert not s.in_failsafe and s.offer_da == 320
    s.tick(2.5)
    assert s.in_failsafe and s.offer_da == 60


def test_a_heartbeat_read_after_its_arrivals_deadline_holds_nothing_up() -> None:
    s = following(limit=320)  # the last heartbeat read at 0.1: the failsafe is due at 1.6
    s.receive(hb(), 1.7, arrived=0.15)
    assert s.in_failsafe and s.offer_da == 60


def test_a_set_limit_read_late_proves_the_master_alive_at_its_arrival_only() -> None:
    s = following(limit=320)
    s.receive(SetLimit(1, 2, 160, 60, 7), 1.4, arrived=1.0)  # a cut to 16 A that waited in the queue
    s.tick(2.45)
    assert not s.in_failsafe
    s.tick(2.5)
    assert s.in_failsafe and s.offer_da == 60


def test_a_grant_read_after_its_arrivals_failsafe_deadline_raises_nothing_and_acks_the_truth() -> None:
    """PROTOCOL.md 8.2 rule 4, a stalled process: a raise that waited in the receive queue past the failsafe
    deadline of its own arrival proves the master alive at its arrival only. It is taken as a repeat: never
    above the offer now, the failsafe goes on, and the ACK says what the unit offers, not the grant."""
    s = following(limit=100)  # 10 A, armed at 6 A; the last heartbeat read at 0.1
    s.tick(1.6)
    assert s.in_failsafe and s.offer_da == 60
    s.drain_events()
    out = s.receive(SetLimit(1, 2, 320, 60, 7), 3.3, arrived=1.0)  # a raise to 32 A, read 2.3 s after it arrived
    assert s.in_failsafe and s.offer_da == 60
    kinds = [e.kind for e in s.drain_events()]
    assert EventKind.FAILSAFE_END not in kinds and EventKind.GRANT not in kinds
    out += s.tick(1.6 + T.reaction_allowance)  # acked as the cut the failsafe made, once it has taken effect
    assert [(a.txn, a.applied_da) for a in of(Ack, out)] == [(2, 60)]


def test_failsafe_never_raises() -> None:
    s = following(limit=60)
    s.receive(SetLimit(1, 2, 60, 160, 7), 0.2)  # armed 16 A above a 6 A grant
    s.tick(2.0)
    assert s.in_failsafe and s.offer_da == 60


def test_armed_failsafe_above_standalone_is_held_then_lowered() -> None:
    s = following(limit=320)
    s.receive(SetLimit(1, 2, 320, 200, 7), 0.2)
    s.tick(1.7)
    assert s.in_failsafe and s.offer_da == 200
    s.tick(1.7 + T.failsafe_hold - 0.05)
    assert s.offer_da == 200
    s.tick(1.7 + T.failsafe_hold)
    assert s.offer_da == 60


def test_a_servant_that_never_heard_a_master_uses_its_standalone_failsafe() -> None:
    s = make(failsafe_da=100)
    s.tick(1.45)
    assert s.offer_da == 0 and not s.in_failsafe
    s.tick(1.5)
    assert s.in_failsafe and s.offer_da == 0, "in failsafe within the timeout, still offering nothing"
    # only once a master that cannot hear it has reserved it, and others have dropped held failsafes
    s.tick(T.learning_timeout - 0.05)
    assert s.offer_da == 0
    s.tick(T.learning_timeout)
    assert s.in_failsafe and s.offer_da == 100
    assert s.next_deadline() > T.learning_timeout


@pytest.mark.parametrize("news", [
    pytest.param(lambda s: s.receive(hb(leaving=True), 0.5), id="a-leaving-heartbeat"),
    pytest.param(lambda s: s.link_down(0.3), id="link-down-counts-as-hearing-no-master"),
    pytest.param(lambda s: s.receive(hb(second_master=True), 0.3), id="a-master-flagging-a-second-master"),
])
def test_failsafe_at_once_on(news: Callable[[Servant], object]) -> None:
    s = following(limit=320)
    news(s)
    assert s.in_failsafe and s.offer_da == 60


def test_link_down_returns_its_frames_like_every_other_call() -> None:
    """Its step produces the STATUS that shows the failsafe at once; it was dropped before."""
    s = following(limit=320)
    out = s.link_down(0.3)
    assert [m for m in out if isinstance(m, Status) and m.failsafe and m.offered_da == 60]


def test_a_set_limit_proves_the_master_alive_like_a_heartbeat() -> None:
    # after a partition the first frame back may be a set-limit: it ends the failsafe, and the
    # stale heartbeat timer must not start it again at once (chaos seed 1428)
    s = following(limit=320)
    s.receive(hb(), 97.0)  # the master heard us then
    s.tick(97.0 + T.failsafe_timeout)
    assert s.in_failsafe
    s.receive(SetLimit(1, 2, 320, 60, 7), 99.0)
    s.tick(97.0 + T.heard_timeout - 0.05)
    assert not s.in_failsafe and s.offer_da == 320
    s.tick(97.0 + T.heard_timeout)
    assert s.in_failsafe, "and with no heartbeat saying it hears us, it fails safe again on time"


def test_a_grant_waits_until_a_heartbeat_shows_the_master_hears_us() -> None:
    # the master sends cuts to servants it does not hear: a set-limit alone does not prove the link works
    # both ways, so after a long partition a grant waits (no ack) for the first heartbeat that hears us
    s = following(limit=320)
    s.tick(100.0)
    assert s.in_failsafe and s.offer_da == 60
    assert s.receive(SetLimit(1, 2, 320, 60, 7), 100.0) == []
    assert s.in_failsafe and s.offer_da == 60
    out = s.receive(hb(), 100.1)
    assert of(Ack, out) == [Ack(1, 2, 320, 0, AckHow.IMMEDIATE)]
    assert not s.in_failsafe and s.offer_da == 320


def test_a_cut_while_unheard_is_applied_and_acked_and_the_failsafe_goes_on() -> None:
    s = following(limit=320)
    s.tick(100.0)
    out = s.receive(SetLimit(1, 2, 0, 0, 7), 100.0)
    assert of(Ack, out) == [Ack(1, 2, 0, 0, AckHow.MEASURED)]
    assert s.in_failsafe and s.offer_da == 0 and s.armed_failsafe_da == 0


def test_a_servant_the_master_does_not_hear_fails_safe_within_the_unheard_bound() -> None:
    """Rule 4: heartbeats keep coming, but none says the master hears us (a mute transmitter)."""
    s = following(limit=320)  # heard at 0.1 (following), never again
    t = 0.1
    while t < 0.1 + T.heard_timeout - 0.05:
        deaf_to_us = hb(heard=HEARS_1_TO_7 & ~(1 << 1))
        s.receive(deaf_to_us, t)
        s.tick(t)
        assert not s.in_failsafe and s.offer_da == 320, t
        t = round(t + 0.05, 3)
    s.receive(hb(heard=HEARS_1_TO_7 & ~(1 << 1)), 0.1 + T.heard_timeout)
    assert s.in_failsafe and s.offer_da == 60
    assert s.next_deadline() > 0.1 + T.heard_timeout  # and no spin on the expired timer


def test_a_heartbeat_that_hears_us_or_another_page_keeps_the_servant_up() -> None:
    s = following(limit=320)
    for i in range(1, 200):
        t = 0.1 + i * 0.05
        other_page = hb(page=1, heard=0xFF)  # says nothing about address 1
        s.receive(hb() if i % 40 == 0 else other_page, t)  # our page every 2 s only
        s.tick(t)
    assert not s.in_failsafe and s.offer_da == 320
    # a new master starts the clock afresh: it needs time to hear us
    t = 20.0
    while t < 20.0 + T.heard_timeout:
        s.receive(hb(epoch=9, master_id=2, page=1, heard=0xFF), t)
        assert not s.in_failsafe, t
        t = round(t + 0.2, 3)
    s.tick(20.0 + T.heard_timeout)
    assert s.in_failsafe


def test_a_grant_ends_the_failsafe() -> None:
    s = following(limit=320)
    s.tick(2.0)
    assert s.in_failsafe
    s.receive(hb(), 2.1)
    assert s.in_failsafe, "a heartbeat alone does not end it"
    s.receive(SetLimit(1, 2, 200, 60, 7), 2.2)
    assert not s.in_failsafe and s.offer_da == 200


def test_next_deadline_covers_the_failsafe() -> None:
    s = following(limit=320)
    assert s.next_deadline() <= 0.1 + T.failsafe_timeout


# -- rule 5: a new master ------------------------------------------------------------------------


def test_a_new_master_epoch_disarms_the_failsafe_and_gets_a_join() -> None:
    s = following(limit=320)
    s.receive(SetLimit(1, 2, 320, 200, 7), 0.2)
    out = s.receive(hb(epoch=8), 0.4)
    assert of(Join, out) == [Join(1, 0xABC, 320)]
    assert s.armed_failsafe_da == 60
    assert s.offer_da == 320, "the grant stands until the new master has learned"


def test_an_unconfirmed_grant_falls_to_standalone_after_the_hold() -> None:
    s = following(limit=320)
    s.receive(hb(epoch=8), 0.4)
    t = 0.4
    while t < 0.4 + T.failsafe_hold - 0.3:
        t = round(t + 0.2, 9)
        s.receive(hb(epoch=8), t)
        s.tick(t)
    assert s.offer_da == 320
    s.tick(0.4 + T.failsafe_hold)
    assert s.offer_da == 60


def test_a_confirmed_grant_from_the_new_master_stays() -> None:
    s = following(limit=320)
    s.receive(hb(epoch=8), 0.4)
    s.receive(SetLimit(1, 1, 320, 60, 8), 0.5)
    s.tick(0.4 + T.failsafe_hold + 1)  # (it would be in failsafe now: no heartbeats fed)
    assert s.offer_da == 60 and s.in_failsafe
    s2 = following(limit=320)
    s2.receive(hb(epoch=8), 0.4)
    s2.receive(SetLimit(1, 1, 320, 60, 8), 0.5)
    for i in range(1, 80):
        s2.receive(hb(epoch=8), 0.5 + i * 0.2)
        s2.tick(0.5 + i * 0.2)
    assert s2.offer_da == 320 and not s2.in_failsafe


# -- rule 6: conflicts -----------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [
    Status(1, 0x123, C, 160, 150, 320),
    Join(1, 0x999, 320),
    Ack(1, 5, 160, None, AckHow.IMMEDIATE),
])
def test_hearing_its_own_address_means_a_twin_pause_and_report(frame: Message) -> None:
    s = following(limit=320)
    out = s.receive(frame, 0.5)
    assert Nack(1, NackCode.TWIN, 1) in out
    assert s.offer_da == 0
    assert of(Status, s.tick(0.6))[0].twin
    s.receive(SetLimit(1, 9, 320, 60, 7), 0.7)
    assert s.offer_da == 0, "no grant reaches a contested address"


def test_two_masters_make_the_servant_fail_safe() -> None:
    s = following(limit=320)
    s.receive(SetLimit(1, 2, 320, 200, 7), 0.2)
    s.receive(hb(epoch=9, master_id=2), 0.3)  # looks like a restart: follow it
    out = s.receive(hb(epoch=7), 0.4)  # ... but the first one is still there
    assert Nack(0, NackCode.SECOND_MASTER, 1) in out
    assert s.in_failsafe and s.offer_da == 60  # min(armed, standalone)
    s.receive(SetLimit(1, 3, 320, 60, 9), 0.5)
    assert s.offer_da == 60, "no master is obeyed while two are heard"


def test_a_same_numbered_txn_with_other_content_is_a_new_set_limit() -> None:
    """A master restarted with the same epoch numbers its txns from scratch: never re-ack a stale value."""
    s = following(limit=320)
    s.observe(C, 300, 0.2)
    out = s.receive(SetLimit(1, 1, 100, 60, 7), 0.3)  # txn 1 again, other limit
    assert s.offer_da == 100 and of(Ack, out) == []


def test_a_pilot_falling_to_b_while_paused_is_not_a_finished_charge() -> None:
    s = following(limit=320)
    s.receive(SetLimit(1, 2, 0, 0, 7), 0.2)  # paused (shortage)
    out = s.observe(PilotState.B, 0, 0.3)  # the car stops because the pilot offers nothing
    assert of(Release, out) == []
    assert s.requested_da == 320, "it still wants to charge when its turn comes"


def test_lowering_the_pilot_again_does_not_restart_an_overdrawing_evs_allowance() -> None:
    s = following(limit=320)
    s.observe(C, 300, 0.2)
    s.receive(SetLimit(1, 2, 200, 60, 7), 1.0)  # the EV keeps drawing 30 A
    beat(s, 1.0, 3.0, measured=300)
    s.receive(SetLimit(1, 3, 100, 60, 7), 3.0)  # a second cut while it still overdraws
    beat(s, 3.0, 5.95, measured=300)
    assert not s.ev_stopped
    beat(s, 5.95, 6.05, measured=300)
    assert s.ev_stopped, "stopped reaction_allowance after the first lowered pilot"


def test_the_masters_confirm_after_an_unplug_reads_as_a_confirmation_not_a_cut() -> None:
    """Unplugged at 32 A: the RELEASE already took the pilot to 0 A; the master's SET 0 A (confirm) leaves
    it there. The log must not read `cut: offer 0.0 A -> 0.0 A (the EV may still draw up to 32.0 A)`."""
    s = following(limit=320)
    s.observe(C, 320, 0.2)
    s.drain_events()
    out = s.observe(PilotState.A, 0, 0.5)
    assert of(Release, out) and s.offer_da == 0
    s.receive(SetLimit(1, 2, 0, 0, 7), 0.6)
    events = [(e.kind, e.detail) for e in s.drain_events()]
    assert (EventKind.CUT, "offer 0.0 A -> 0.0 A (the EV may still draw up to 32.0 A)") not in events, events
    confirm = [d for k, d in events if k is EventKind.CONFIRM]
    assert confirm == ["offer stays 0.0 A; acked once the draw has followed the lowering from 32.0 A"], events


# -- fresh heartbeats (PROTOCOL.md 5.2): a late copy of an old one proves nothing ------------------------


def test_a_late_copy_of_an_old_heartbeat_restarts_neither_clock() -> None:
    s = following(limit=320)
    old = hb()  # the master hears us, seq n
    s.receive(old, 0.2)
    t = 0.2
    while t < 10.0:  # the master goes on (seq n+1, n+2, ...) but says it no longer hears us
        t = round(t + 0.2, 3)
        s.receive(hb(heard=0), t)
        s.receive(old, t)  # and a gateway keeps delivering the old copy that said it did
        s.tick(t)
        if s.in_failsafe:
            break
    assert s.in_failsafe and t <= 0.2 + T.heard_timeout + 0.2  # (this loop ticks every 0.2 s)
    # and a dead master's late copies do not hold off the failsafe
    s2 = following(limit=320)
    last = hb()
    s2.receive(last, 0.2)
    s2.tick(0.2 + T.failsafe_timeout - 0.1)
    s2.receive(last, 0.2 + T.failsafe_timeout - 0.05)  # a copy of the last heartbeat, late
    s2.tick(0.2 + T.failsafe_timeout)
    assert s2.in_failsafe


def replay(s: Servant, frames: list[tuple[float, Heartbeat]], until: float) -> float | None:
    """Deliver timed heartbeats in time order, ticking every 0.05 s to ``until``; when the failsafe began."""
    frames = sorted(frames, key=lambda x: x[0])
    t, k = 0.1, 0
    while t < until:
        t = round(t + 0.05, 9)
        while k < len(frames) and frames[k][0] <= t:
            s.receive(frames[k][1], frames[k][0])
            k += 1
        s.tick(t)
        if s.in_failsafe:
            return t
    return None


def with_delayed_copies(originals: list[tuple[float, Heartbeat]], delay: float) -> list[tuple[float, Heartbeat]]:
    """Every heartbeat again ``delay`` later, in order and one period apart: a second path (a bridge, a UDP loop)."""
    return originals + [(round(t + delay, 9), m) for t, m in originals]


@pytest.mark.parametrize("delay", [2.0, 5.0, 20.0])
def test_a_dead_masters_heartbeats_delayed_in_order_do_not_hold_off_the_failsafe(delay: float) -> None:
    """A stream of late copies is as orderly as a live master: each copy one period after the last, seq
    by seq. Taken as fresh once the originals stop (a master restarted with the same epoch looks the
    same), it would hold off the failsafe by the path's delay; PROTOCOL.md 5.2 takes only a seq newer
    than the newest taken, so the failsafe comes failsafe_timeout after the last original."""
    s = following(limit=320)
    originals = [(round(0.2 * i, 9), hb()) for i in range(1, 150)]  # the master dies after t = 29.8
    fell = replay(s, with_delayed_copies(originals, delay), 60.0)
    assert fell is not None and fell <= originals[-1][0] + T.failsafe_timeout + T.tick_period


@pytest.mark.parametrize("delay", [5.0, 10.0])
def test_a_mute_servant_fed_an_ordered_stream_of_late_copies_fails_safe_within_the_unheard_bound(
        delay: float) -> None:
    """Issue 10, finding 1 with a second path: from t = 30 the master no longer hears servant 1 and the
    direct path loses two heartbeats in three; every heartbeat also arrives again ``delay`` later, in
    order, and for ``delay`` seconds those copies still say it is heard. Only fresh heartbeats count."""
    s = following(limit=320)
    frames: list[tuple[float, Heartbeat]] = []
    for i in range(1, 300):
        t = round(0.2 * i, 9)
        msg = hb(heard=HEARS_1_TO_7 if t < 30.0 else 0)
        if t < 30.0 or i % 3 == 0:
            frames.append((t, msg))
        frames.append((round(t + delay, 9), msg))
    fell = replay(s, frames, 60.0)
    assert fell is not None and 30.0 <= fell <= 30.0 + T.unheard_bound


def test_a_master_restarted_with_the_same_epoch_is_followed_once_the_newest_seq_is_forgotten() -> None:
    """Its seq starts again behind the newest taken: nothing tells it from late copies, so its heartbeats
    count again only once the newest seq is forgotten, 60 s without a fresh heartbeat (PROTOCOL.md 5.2);
    meanwhile the servant is in failsafe."""
    from busshare.core.heartbeat_order import FORGET_AFTER_S

    s = following(limit=320)
    for i in range(1, 6):
        last = hb()
        s.receive(last, i * 0.2)
    # it counts from 1 again: wherever that falls, behind the newest taken (here 500 behind, so that its
    # 300 heartbeats of the next minute stay behind too)
    t, seq = 1.0, (last.seq - 500) % 1024
    while t < 1.0 + FORGET_AFTER_S + 1.0:
        t, seq = round(t + 0.2, 9), (seq + 1) % 1024
        s.receive(Heartbeat(1, 7, 640, 0, HEARS_1_TO_7, seq), t)
        s.tick(t)
        if t < 1.0 + FORGET_AFTER_S - 0.2:
            assert t < 1.0 + T.failsafe_timeout or s.in_failsafe, f"a stale heartbeat kept it up at t={t}"
    s.tick(t + T.failsafe_timeout - 0.05)
    assert s.in_failsafe, "still in failsafe: a heartbeat alone does not end it (rule 4)"
    s.receive(SetLimit(1, 2, 160, 60, 7), t + T.failsafe_timeout - 0.05)  # its next set-limit ends the failsafe
    s.tick(t + T.failsafe_timeout)
    assert not s.in_failsafe and s.offer_da == 160, "its heartbeats count again: followed"


def _restarted(s: Servant, t: float) -> float:
    """Master (1, 7) stops at ``t``; (1, 8) takes over 0.5 s later and confirms 160 A; returns the time after."""
    t += 0.5
    s.receive(hb(epoch=8), t)
    s.receive(SetLimit(1, 1, 160, 60, 8), t + 0.05)
    for i in range(1, 30):  # 6 s: (1, 7) is long forgotten as a rival (conflict_hold)
        s.receive(hb(epoch=8), t + 0.05 + i * 0.2)
    return t + 0.05 + 29 * 0.2


def test_a_late_copy_of_a_heartbeat_of_the_master_it_left_is_not_followed() -> None:
    """PROTOCOL.md 5.2, rule 5: following it again would forget the newest txn applied, and a late copy of that
    master's old grant, right behind it, would be taken as new (rule 1). A gateway replaying a buffer does
    exactly that."""
    s = following(limit=320)
    old = hb()
    s.receive(old, 0.2)
    s.receive(hb(), 0.4)
    t = _restarted(s, 0.4)
    out = s.receive(old, t + 0.01)  # a copy of the old master's heartbeat, seconds late
    assert not of(Join, out) and s.offer_da == 160
    assert any(e.kind is EventKind.STALE_HEARTBEAT and "not followed" in e.detail for e in s.drain_events())
    out = s.receive(SetLimit(1, 1, 320, 60, 7), t + 0.02)  # and of its 320 A grant, txn 1 of epoch 7
    assert not of(Ack, out) and s.offer_da == 160, "a late copy must never raise anything (rule 1)"


def test_a_run_of_late_copies_of_the_master_it_left_is_a_second_master_sign() -> None:
    s = following(limit=320)
    copies = [hb(), hb()]
    for i, c in enumerate(copies):
        s.receive(c, 0.2 + i * 0.2)
    t = _restarted(s, 0.4)
    s.receive(copies[0], t + 0.01)
    s.receive(copies[1], t + 0.02)  # (1, 7) and (1, 8) both heard within conflict_hold: A, B, A
    out = s.receive(SetLimit(1, 2, 320, 60, 8), t + 0.03)
    assert not of(Ack, out), "two masters: it obeys neither"
    assert s.in_failsafe and s.offer_da == 60, "and fails safe (rule 6)"


def test_a_master_it_left_that_is_still_alive_is_followed_again_at_once() -> None:
    """Its heartbeats are newer than any it took from it (a rival it had left for went quiet)."""
    s = following(limit=320)
    t = _restarted(s, 0.2)
    out = s.receive(hb(epoch=7), t + 0.01)
    assert of(Join, out), "a live master: followed (disarmed, JOIN)"


def test_a_late_copy_of_a_master_it_left_is_followed_once_that_master_is_forgotten() -> None:
    """After FORGET_AFTER_S without a fresh heartbeat of it, as for a master restarted with the same epoch
    (PROTOCOL.md 8.7): that bounds the memory a servant keeps."""
    from busshare.core.heartbeat_order import FORGET_AFTER_S

    s = following(limit=320)
    old = hb()
    s.receive(old, 0.2)
    _restarted(s, 0.2)
    assert not of(Join, s.receive(old, 0.2 + FORGET_AFTER_S - 0.01))
    assert of(Join, s.receive(old, 0.2 + FORGET_AFTER_S + 0.01))


@given(st.integers(0, 1023), st.integers(1, 511))
def test_a_heartbeat_behind_the_newest_is_never_fresh(newest: int, behind: int) -> None:
    from busshare.core.heartbeat_order import HeartbeatOrder

    order = HeartbeatOrder(0.2)
    assert order.fresh(newest, 0.0)
    assert not order.fresh((newest - behind) % 1024, 0.1)
    assert not order.fresh(newest, 0.15), "the same one twice is not news either"
    assert order.fresh((newest + 1) % 1024, 0.2)


@given(st.integers(0, 1023), st.lists(st.tuples(st.integers(1, 511), st.floats(0.0, 59.9)), max_size=40))
def test_no_arrangement_of_late_copies_is_ever_fresh(newest: int, copies: list[tuple[int, float]]) -> None:
    """Copies behind the newest seq taken, arriving in any order and spacing (a steady run one period apart
    included) within the 60 s the newest is remembered, are never fresh (PROTOCOL.md 5.2)."""
    from busshare.core.heartbeat_order import HeartbeatOrder

    order = HeartbeatOrder(0.2)
    assert order.fresh(newest, 0.0)
    steady = [(i, round(0.2 * (31 - i), 9)) for i in range(30, 0, -1)]  # newest-30 ... newest-1, in order
    for behind, at in sorted(copies + steady, key=lambda x: x[1]):
        assert not order.fresh((newest - behind) % 1024, at)


# -- a process restarted under a charging car (tests/sim/test_hunt_shapes.py) ---------------------------------


@pytest.mark.parametrize("meter", [True, False])
def test_a_process_that_finds_its_car_charging_takes_a_set_limit_in_the_next_allowance_as_a_cut(meter: bool) -> None:
    # the old process offered 32 A and was cut to 16 A; the EVSE kept the pilot across the restart, so the new
    # process (offering 0 A) finds the car charging. The master's re-sent 16 A cut raises its pilot from 0, but
    # the car may still draw 32 A: an IMMEDIATE ack would let the master give 16 A away at once
    s = make(meter=meter)
    s.observe(C, 320 if meter else None, 0.0)
    s.receive(hb(), 0.1)
    out = s.receive(SetLimit(1, 3, 160, 60, 7), 0.2)
    assert s.offer_da == 160 and of(Ack, out) == [], "the car may still draw 32 A"
    if meter:  # (not before an allowance from its first look: see the next test)
        assert of(Ack, s.observe(C, 150, 3.0)) == []
        assert of(Ack, s.observe(C, 150, T.reaction_allowance + 0.1)) == [Ack(1, 3, 160, 150, AckHow.MEASURED)]
    else:
        assert of(Ack, s.tick(T.reaction_allowance)) == [Ack(1, 3, 160, None, AckHow.TIMED)]


def test_a_process_that_finds_its_car_charging_takes_no_low_reading_as_proof_for_an_allowance() -> None:
    # chaos seed 1263: the car, which sees raises late, may still climb toward a raise the old process sent (10.7
    # A, then cut to 8 A): a reading at the cut just after the restart proves nothing until an allowance passed
    s = make(meter=True)
    s.observe(C, 107, 0.0)
    s.receive(hb(), 0.1)
    s.observe(C, 80, 0.15)
    assert of(Ack, s.receive(SetLimit(1, 3, 80, 60, 7), 0.2)) == [], "it may still climb toward what it saw late"
    assert of(Ack, s.observe(C, 80, T.reaction_allowance + 0.1)) == [Ack(1, 3, 80, 80, AckHow.MEASURED)]


def test_a_process_that_finds_no_car_charging_acks_a_grant_at_once() -> None:
    s = make()
    s.observe(PilotState.B, 0, 0.0)
    s.receive(hb(), 0.1)
    assert of(Ack, s.receive(SetLimit(1, 3, 160, 60, 7), 0.2)) == [Ack(1, 3, 160, 0, AckHow.IMMEDIATE)]


# -- a late copy of a heartbeat of the master's previous epoch (tests/sim/test_hunt_shapes.py) -------------------


def test_a_master_followed_again_after_a_restart_keeps_its_txn_order() -> None:
    # granted 32 A (txn 2), cut to 16 A (txn 3) by master (1, 7); it restarts as (1, 8) and confirms 16 A. A
    # late copy of an old (1, 7) heartbeat, conflict_hold later, is a master not heard for that long: followed.
    # A late copy of the old 32 A grant arriving next must not be applied (16 A more on a full circuit)
    s = following(limit=0)
    s.receive(SetLimit(1, 2, 320, 60, 7), 0.2)
    s.observe(C, 320, 0.3)
    s.receive(SetLimit(1, 3, 160, 60, 7), 1.0)
    s.observe(C, 160, 2.0)
    s.receive(hb(epoch=8), 2.1)
    s.receive(SetLimit(1, 1, 160, 60, 8), 2.2)
    now = 2.2 + T.conflict_hold + 0.1
    s.receive(hb(epoch=8), now - 0.01)
    s.receive(hb(epoch=7), now)
    out = s.receive(SetLimit(1, 2, 320, 60, 7), now + 0.001)
    assert s.offer_da == 160
    assert of(Nack, out) == [Nack(1, NackCode.OLD_TXN, 1, 2, 3)]
    # its newest (txn 3) again is a repeat: applied never above what it offers now
    s.receive(SetLimit(1, 3, 160, 60, 7), now + 0.002)
    assert s.offer_da == 160


def test_a_grant_read_late_before_the_failsafe_was_served_enters_it_first() -> None:
    """The same, read before any tick served the deadline: the failsafe comes first, and the ACK is its offer."""
    s = following(limit=100)
    out = s.receive(SetLimit(1, 2, 320, 60, 7), 2.0, arrived=0.3)
    assert s.in_failsafe and s.offer_da == 60
    out += s.tick(2.0 + T.reaction_allowance)
    assert [(a.txn, a.applied_da) for a in of(Ack, out)] == [(2, 60)]
