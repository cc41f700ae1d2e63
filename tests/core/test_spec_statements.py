"""The statements of docs/PROTOCOL.md that issue 12 found left to guess, each checked against the nodes.

One test per statement, named after it; the section it backs is in each docstring.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from busshare.core.config import Config
from busshare.core.config import parse_config
from busshare.core.events import EventKind
from busshare.frames import PROTOCOL_VERSION
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
from busshare.master import Master
from busshare.protocol.pilot import PilotState
from tests.support.core_harness import Car
from tests.support.core_harness import Net
from tests.support.servant_steps import C
from tests.support.servant_steps import T
from tests.support.servant_steps import following
from tests.support.servant_steps import hb
from tests.support.servant_steps import make
from tests.support.servant_steps import of

SITE = """
[site]
breaker_a = 80
""" + "".join(f"[[servant]]\naddress = {a}\nmax_a = 80\nserial = {0x100 + a}\n" for a in (1, 2))


def site() -> Config:
    return parse_config(SITE)


# -- 8.5: the master's cut-acked time counts from the first send -------------------------------------


def test_cut_acked_counts_from_the_first_send_not_the_last_resend() -> None:
    """A cut re-sent while its car follows is acked "after" the time since the cut was first sent."""
    net = Net(site())
    net.run(1.0)
    net.plug(1, Car(react=2.0))
    net.run(1.0)
    assert net.master is not None
    mark, events_mark = len(net.sent), len(net.events)  # (the net drains every node's events into net.events)
    net.plug(2, Car(react=2.0))
    net.run(6.0)
    cuts = [(t, m) for t, who, m in net.sent[mark:]
            if who == "master" and isinstance(m, SetLimit) and m.address == 1]
    first_t, cut = cuts[0]
    assert cut.limit_da == 320 and sum(m == cut for _, m in cuts) >= 2, "the cut was re-sent before its ack"
    acked = [e for who, e in net.events[events_mark:] if who == "master" and e.kind is EventKind.CUT_ACKED and e.address == 1]
    found = re.search(r"after ([0-9.]+) s", acked[0].detail)
    assert found is not None
    assert float(found.group(1)) == pytest.approx(acked[0].t - first_t, abs=0.006)


# -- 5.7 / 7: when a STATUS is sent at once ----------------------------------------------------------------


def test_status_at_once_on_a_pilot_state_change_not_on_an_offer_change() -> None:
    s = following()
    s.tick(0.2)
    assert of(Status, s.observe(PilotState.B, 0, 0.25)), "pilot state changed: STATUS at once"
    s = following()
    s.tick(0.2)
    assert not of(Status, s.receive(SetLimit(1, 2, 160, 60, 7), 0.25)), "offer changed: next periodic STATUS"
    assert not of(Status, s.observe(C, 150, 0.3)), "meter reading changed: next periodic STATUS"


def test_status_at_once_on_failsafe_entry_and_on_a_new_master() -> None:
    """A monitor sees the failsafe within the bound: the STATUS goes out in the step the failsafe starts."""
    s = following()
    out: list[Message] = []
    t = 0.1
    while not s.in_failsafe:
        t = round(t + T.tick_period, 3)
        out = s.tick(t)
    assert t <= 0.1 + T.failsafe_timeout + T.tick_period
    status = of(Status, out)
    assert status and status[0].failsafe, "STATUS with the failsafe flag in the very step"
    s = following()
    s.tick(0.2)
    out = s.receive(hb(epoch=8), 0.25)
    assert of(Status, out) and of(Join, out), "a new master: JOIN and STATUS at once"


# -- 5.8: the JOIN version ----------------------------------------------------------------------------------


def test_a_join_of_another_version_is_taken_like_any_join_and_never_nacked() -> None:
    m = Master(site(), 0.0, epoch=7)
    out = m.receive(Join(1, 0x101, 800, version=PROTOCOL_VERSION + 1), 0.1)
    assert not of(Nack, out)
    out = m.receive(Status(1, 0x101, PilotState.A, 0, 0, 0), 0.2)
    assert not of(Nack, out)


# -- 5.1 / 8.2 rule 1: which fields a repeat must match ---------------------------------------------------------


def test_a_repeat_is_the_same_txn_limit_failsafe_and_epoch() -> None:
    """The repeat test compares the four body fields (the alive counter and CRC always differ)."""
    s = following(limit=320)
    assert of(Ack, s.receive(SetLimit(1, 1, 320, 60, 7), 0.2)) == [Ack(1, 1, 320, 0, AckHow.IMMEDIATE)]
    # same txn, another limit: not a repeat, applied as new (the txn order cannot tell it from one)
    out = s.receive(SetLimit(1, 1, 160, 60, 7), 0.3)
    assert s.limit_da == 160 and not of(Nack, out)


# -- 8.2 rule 4: a SET_LIMIT of another epoch, or before any heartbeat ---------------------------------------------


def test_a_set_limit_before_any_heartbeat_or_of_another_epoch_is_ignored_silently() -> None:
    s = make()
    s.observe(C, 0, 0.05)
    out = s.receive(SetLimit(1, 1, 320, 60, 7), 0.1)
    assert not of(Ack, out) and not of(Nack, out) and s.limit_da == 0
    s.receive(hb(epoch=7), 0.2)
    out = s.receive(SetLimit(1, 1, 320, 60, 9), 0.25)
    assert not of(Ack, out) and not of(Nack, out) and s.limit_da == 0
    # the set-limit has no master id: the epoch alone says whose it is
    assert of(Ack, s.receive(SetLimit(1, 1, 320, 60, 7), 0.3))


# -- 8.4: when a REQUEST is sent ----------------------------------------------------------------------------------


def test_request_only_when_demand_rises_from_none_not_again_to_a_new_master_nor_on_a_drop() -> None:
    s = make()
    s.receive(hb(), 0.1)
    assert of(Request, s.observe(C, 0, 0.15)) == [Request(1, 320, 60, 0)]
    assert not of(Request, s.tick(0.2))
    assert not of(Request, s.receive(hb(epoch=8), 0.25)), "a new master learns demand from STATUS"
    assert not of(Request, s.observe(PilotState.A, 0, 0.3)), "a drop: STATUS requested_da 0, and RELEASE"
    assert of(Request, s.observe(C, 0, 0.35)) == [Request(1, 320, 60, 0)]


# -- 5.5 / 8.4: RELEASE when nothing was held, and in failsafe ----------------------------------------------------------


def test_release_on_unplug_is_sent_even_when_nothing_was_held() -> None:
    s = make()
    s.receive(hb(), 0.1)
    s.observe(C, 0, 0.15)
    assert s.limit_da == 0
    assert of(Release, s.observe(PilotState.A, 0, 0.2)) == [Release(1, 0, ReleaseReason.UNPLUGGED)]


def test_release_in_failsafe_gives_back_the_failsafe_offer() -> None:
    s = following(limit=320)
    t = 0.1
    while not s.in_failsafe:
        t = round(t + T.tick_period, 3)
        s.tick(t)
    assert s.offer_da == 60
    assert of(Release, s.observe(PilotState.A, 0, t + 0.05)) == [Release(1, 60, ReleaseReason.UNPLUGGED)]


# -- 5.4: the NACK rules ------------------------------------------------------------------------------------------


def test_ev_overdraw_names_the_cut_it_ends_or_txn_0_outside_a_cut() -> None:
    s = following(limit=320)
    out = s.receive(SetLimit(1, 2, 160, 60, 7), 0.2)
    out = []
    t = 0.2
    while not s.ev_stopped:
        t = round(t + T.tick_period, 3)
        out = s.observe(C, 320, t) + s.tick(t)
        if t % 0.2 < 0.05:
            s.receive(hb(), t)
    nacks = of(Nack, out)
    assert nacks == [Nack(1, NackCode.EV_OVERDRAW, 1, 2, 320)]
    assert of(Ack, out) == [Ack(1, 2, 160, 320, AckHow.TIMED)], "then the ack: the cut has taken effect"
    s = following(limit=160)  # no cut: the car draws more than offered
    t = 0.1
    out = []
    while not s.ev_stopped:
        t = round(t + T.tick_period, 3)
        out = s.observe(C, 320, t)
        if t % 0.2 < 0.05:
            s.receive(hb(), t)
    assert of(Nack, out) == [Nack(1, NackCode.EV_OVERDRAW, 1, 0, 320)]


def test_a_set_limit_above_the_unit_maximum_is_clamped_and_acked_never_bad_limit() -> None:
    """Rule 7: clamp and ack the value applied; BAD_LIMIT is never sent (the codec rejects an invalid offer)."""
    s = make(max_da=160)
    s.receive(hb(), 0.1)
    s.observe(C, 0, 0.1)
    out = s.receive(SetLimit(1, 1, 320, 320, 7), 0.2)
    assert of(Ack, out) == [Ack(1, 1, 160, 0, AckHow.IMMEDIATE)] and not of(Nack, out)
    assert s.armed_failsafe_da == 160


def test_faults_are_a_release_and_the_status_flag_never_a_nack() -> None:
    """HARDWARE_FAULT, NOT_READY and UNSUPPORTED_VERSION are defined but not sent by this implementation."""
    s = following()
    out = s.observe(PilotState.F, 0, 0.2)
    assert of(Release, out) == [Release(1, 320, ReleaseReason.FAULT)]
    assert not of(Nack, out) and of(Status, out)[0].fault


# -- 5.4 / rule 6: twins NACK once per conflict ----------------------------------------------------------------------


def test_twin_nacks_are_bounded_one_per_unit_per_conflict() -> None:
    """Two units on one address: each NACKs once, then not again while the other is heard within conflict_hold."""
    a, b = following(), following()
    sent = {"a": 0, "b": 0}
    queue: list[tuple[str, Message]] = [("a", Status(1, 0x123, C, 320, 0, 320))]
    t = 0.2
    for _ in range(200):
        if not queue:
            break
        who, msg = queue.pop(0)
        other, node = ("b", b) if who == "a" else ("a", a)
        for m in node.receive(msg, t):
            if isinstance(m, Nack):
                sent[other] += 1
            queue.append((other, m))
        t = round(t + 0.01, 3)
    assert not queue, "the NACKs stop"
    assert sent == {"a": 1, "b": 1}
    assert a.offer_da == 0 and b.offer_da == 0


# -- 5.7: STATUS offered_da while the EV is stopped ----------------------------------------------------------------------


def test_status_offers_the_limit_while_the_ev_is_stopped() -> None:
    """``offered_da`` stays the pilot's offer; ``ev_stopped`` says the contactor is open, so the car draws nothing."""
    s = following(limit=160)
    t = 0.1
    while not s.ev_stopped:
        t = round(t + T.tick_period, 3)
        s.observe(C, 320, t)
        if t % 0.2 < 0.05:
            s.receive(hb(), t)
    status = of(Status, s.observe(PilotState.B, 0, t + 0.05))[0]
    assert isinstance(status, Status)
    assert status.ev_stopped and status.offered_da == 160 and status.requested_da == 0


# -- 5.4: the NACK table says who sends which code ---------------------------------------------------------------


def test_the_nack_table_names_exactly_the_codes_each_node_sends() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    lines = doc[doc.index("<!-- nack rules"):].splitlines()[3:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    rows = rows[:len(NackCode)]
    assert [r[0] for r in rows] == [c.name for c in NackCode]
    package = Path(__file__).resolve().parents[2] / "busshare"
    for node in ("servant", "master"):
        source = (package / f"{node}.py").read_text()
        sent = set(re.findall(r"Nack\([^()]*NackCode\.([A-Z_]+)", source))
        assert sent == {r[0] for r in rows if node in r[1]}, node
    # nothing else in the package makes a NACK
    codecs = (package / "frames.py", package / "protocol" / "spec.py")  # (they decode NACKs, they do not send them)
    others = [p for p in package.rglob("*.py") if p.name not in ("servant.py", "master.py") and p not in codecs
              and re.search(r"\bNack\(", p.read_text())]
    assert others == []


# -- 7: a STATUS sent at once adds at most one frame per event --------------------------------------------------------


def test_a_status_at_once_adds_at_most_one_frame_per_event() -> None:
    s = following()
    count, events, t = 0, 0, 0.1
    pilots = itertools.cycle([PilotState.B, C])
    while t < 30.0:
        t = round(t + T.tick_period, 3)
        if round(t * 1000) % 200 == 0:
            s.receive(hb(), t)
        if round(t * 1000) % 1700 == 0:  # a pilot change every 1.7 s
            events += 1
            count += len(of(Status, s.observe(next(pilots), 0, t)))
        count += len(of(Status, s.tick(t)))
    assert not s.in_failsafe
    assert count <= 30.0 / T.status_period + 1 + events


# -- 8.2 rule 6: the second-master algorithm ---------------------------------------------------------------------------


def test_servant_two_masters_is_a_b_a_within_conflict_hold_a_restart_is_a_b() -> None:
    s = following()
    out = s.receive(hb(epoch=9, master_id=2), 0.3)  # B: a restart, followed
    assert of(Join, out) and not of(Nack, out) and not s.in_failsafe
    out = s.receive(hb(epoch=7, master_id=1), 0.5)  # A again, B heard just now: two masters
    assert of(Nack, out) == [Nack(0, NackCode.SECOND_MASTER, 1)] and s.in_failsafe
    assert not of(Join, out), "it does not follow A"
    assert not of(Nack, s.receive(hb(epoch=9, master_id=2), 0.6)), "once per episode"
    assert not of(Ack, s.receive(SetLimit(1, 5, 320, 60, 9), 0.7)), "no SET_LIMIT taken during the episode"
    # B alone, A not heard for conflict_hold: the episode ends and B's SET_LIMITs are taken again
    t = 0.6
    while t < 0.5 + T.conflict_hold + 0.5:
        t = round(t + 0.2, 3)
        s.receive(hb(epoch=9, master_id=2), t)
        s.tick(t)
    assert of(Ack, s.receive(SetLimit(1, 6, 320, 60, 9), t + 0.05))


def test_servant_a_master_not_heard_for_conflict_hold_is_a_restart_not_a_second_master() -> None:
    s = following()
    s.receive(hb(epoch=9, master_id=2), 0.3)
    t = 0.3
    while t < 0.3 + T.conflict_hold + 0.3:
        t = round(t + 0.2, 3)
        s.receive(hb(epoch=9, master_id=2), t)
    out = s.receive(hb(epoch=7, master_id=1), t + 0.1)
    assert not of(Nack, out) and of(Join, out), "A again, after conflict_hold: followed as a restart"


def test_master_second_master_episode_one_nack_conflict_flag_no_grants_then_reconfirm() -> None:
    net = Net(site())
    net.run(1.0)
    assert net.master is not None
    mark = len(net.sent)
    net.inject("second-master", Heartbeat(2, 9, 640))
    net.run(0.4)
    net.inject("second-master", Heartbeat(2, 9, 640, seq=2))
    net.plug(1, Car())
    net.run(1.0)
    sent = [m for _, who, m in net.sent[mark:] if who == "master"]
    assert of(Nack, sent) == [Nack(0, NackCode.SECOND_MASTER, 0)]
    assert all(m.second_master for m in of(Heartbeat, sent))
    # only strict cuts while the second master is heard (here the idle units' failsafes, 6 A -> 0): no grant to the car
    assert all(m.limit_da == 0 and m.failsafe_da == 0 for m in of(SetLimit, sent))
    # the episode over (the servants, which heard the second master too, follow the master again): the car gets its grant
    net.run_until(lambda: net.offers()[1] > 0, limit=2 * T.conflict_hold + T.failsafe_hold)
