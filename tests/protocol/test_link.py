"""The link layer: alive counters out, E2E classification in; bad frames are counted, never delivered."""

from __future__ import annotations

import uuid

import can
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.frames import Heartbeat
from busshare.frames import Join
from busshare.frames import Message
from busshare.frames import Request
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import decode
from busshare.frames import encode
from busshare.frames import offset_of
from busshare.protocol.canid import IdScheme
from busshare.protocol.e2e import E2EStatus
from busshare.protocol.link import STREAM_MEMORY_S
from busshare.protocol.link import Link
from busshare.protocol.link import Restart
from busshare.protocol.pilot import PilotState
from tests.support.frame_strategies import messages

HB = Heartbeat(master_id=1, epoch=7, limit_da=640)
STATUS = Status(3, 0x1234, PilotState.C, 320, 315, 320)


def test_encode_advances_the_counter_per_stream() -> None:
    link = Link()
    counters = [decode(*link.encode(HB))[1] for _ in range(17)]
    assert counters == list(range(16)) + [0]
    assert decode(*link.encode(STATUS))[1] == 0  # another stream starts at 0
    assert link.encode(STATUS)[0] == offset_of(STATUS)


@settings(deadline=None)
@given(st.lists(messages, min_size=1, max_size=40))
def test_every_message_crosses_the_link(msgs: list[Message]) -> None:
    tx, rx = Link(), Link()
    for msg in msgs:
        got = rx.receive(*tx.encode(msg), 0.0)
        assert got.accepted and got.message == msg
        assert got.status in (E2EStatus.OK, E2EStatus.OK_SOME_LOST, E2EStatus.WRONG_SEQUENCE)
    assert rx.dropped == 0


def test_duplicate_is_dropped_and_counted() -> None:
    tx, rx = Link(), Link()
    frame = tx.encode(HB)
    assert rx.receive(*frame, 0.0).accepted
    again = rx.receive(*frame, 0.0)
    assert not again.accepted
    assert again.message is None and again.status is E2EStatus.REPEATED
    assert rx.dropped == 1
    assert rx.stats()["e2e_repeated"] == 1


def test_losses_are_classified_but_delivered() -> None:
    tx, rx = Link(), Link()
    frames = [tx.encode(HB) for _ in range(10)]
    assert rx.receive(*frames[0], 0.0).status is E2EStatus.OK
    assert rx.receive(*frames[3], 0.0).status is E2EStatus.OK_SOME_LOST  # two lost
    got = rx.receive(*frames[9], 0.0)  # five lost: a resync, still acted on
    assert got.status is E2EStatus.WRONG_SEQUENCE and got.accepted
    assert rx.stats()["e2e_ok-some-lost"] == 1 and rx.stats()["e2e_wrong-sequence"] == 1


def test_corrupted_frame_is_dropped_and_counted() -> None:
    tx, rx = Link(), Link()
    offset, data = tx.encode(STATUS)
    bad = bytes((data[0] ^ 1,)) + data[1:]
    got = rx.receive(offset, bad, 0.0)
    assert not got.accepted and got.status is E2EStatus.WRONG_CRC
    assert got.error is not None and got.error.kind == "crc"
    assert rx.last_error is got.error
    assert rx.dropped == 1 and rx.stats()["e2e_wrong-crc"] == 1
    assert rx.receive(offset, data, 0.0).accepted  # the genuine frame still gets through


def test_misrouted_frame_is_dropped() -> None:
    tx, rx = Link(), Link()
    offset, data = tx.encode(STATUS)
    got = rx.receive(offset + 1, data, 0.0)  # as if sent by servant 4
    assert not got.accepted and got.status is E2EStatus.WRONG_CRC


def test_malformed_frames_are_counted_by_kind() -> None:
    rx = Link()
    assert rx.receive(0x183, b"\x00", 0.0).error.kind == "length"  # type: ignore[union-attr]
    assert rx.receive(0x999, bytes(8), 0.0).error.kind == "type"  # type: ignore[union-attr]
    got = rx.receive(0x183, b"", 0.0)
    assert got.status is None and not got.accepted
    assert rx.malformed == {"length": 2, "type": 1}
    assert rx.stats()["malformed_length"] == 2
    assert rx.dropped == 3


@settings(deadline=None)
@given(st.integers(-10, 600), st.binary(max_size=12))
def test_garbage_never_raises(offset: int, data: bytes) -> None:
    rx = Link()
    got = rx.receive(offset, data, 0.0)
    assert got.accepted == (got.message is not None)
    assert rx.dropped == (0 if got.accepted else 1)


def test_max_delta_is_passed_to_the_checker() -> None:
    assert Link(max_delta=5).checker.max_delta == 5


def test_two_links_over_a_python_can_virtual_bus() -> None:
    """The link plus IdScheme is all a transport needs: bytes and ids on a real python-can bus."""
    channel = f"busshare-link-{uuid.uuid4()}"
    scheme = IdScheme(0x200)
    a = can.Bus(interface="virtual", channel=channel)
    b = can.Bus(interface="virtual", channel=channel, can_filters=scheme.can_filters())
    try:
        tx, rx = Link(), Link()
        sent = [HB, STATUS, Join(3, 0xDEADBEEF, 320), HB]
        for msg in sent:
            offset, data = tx.encode(msg)
            a.send(can.Message(arbitration_id=scheme.base + offset, is_extended_id=False, data=data))
        a.send(can.Message(arbitration_id=0x100, is_extended_id=False, data=bytes(8)))  # not ours: filtered
        got = []
        while (frame := b.recv(timeout=0)) is not None:
            result = rx.receive(scheme.require_offset(frame.arbitration_id, frame.is_extended_id), frame.data, 0.0)
            got.append(result.message)
        assert got == sent
    finally:
        a.shutdown()
        b.shutdown()


def test_encoded_bytes_match_the_codec() -> None:
    offset, data = Link().encode(STATUS)
    assert (offset, data) == (0x183, encode(STATUS, 0))


# -- the stream rules of PROTOCOL.md 6.3: when a receiver forgets a stream --------------------------------

SL = SetLimit(5, 0, 320, 60, 7)  # a set-limit carries the epoch, not the master id


def frames_of(*msgs: Message) -> list[tuple[int, bytes]]:
    """Each message as a freshly booted sender sends it first: alive counter 0."""
    return [Link().encode(m) for m in msgs]


def test_a_duplicate_within_the_stream_memory_is_dropped() -> None:
    rx, frame = Link(), Link().encode(STATUS)
    assert rx.receive(*frame, 10.0).status is E2EStatus.OK
    assert rx.receive(*frame, 10.0 + STREAM_MEMORY_S).status is E2EStatus.REPEATED  # not *more* than 1 s
    assert rx.restarts == {}


@settings(deadline=None)
@given(st.floats(0.0, 100.0), st.floats(STREAM_MEMORY_S + 1e-6, 100.0), st.integers(0, 15))
def test_a_stream_silent_longer_than_its_memory_starts_afresh(t0: float, gap: float, counter: int) -> None:
    """Whatever the counter after the silence, it is the stream's first frame again (ok)."""
    rx, tx = Link(), Link()
    frames = [tx.encode(STATUS) for _ in range(16)]
    assert rx.receive(*frames[0], t0).accepted
    got = rx.receive(*frames[counter], t0 + gap)
    assert got.status is E2EStatus.OK and got.accepted
    assert rx.restarts == {Restart.SILENCE: 1}


def test_silence_is_per_stream() -> None:
    rx = Link()
    status4 = Status(4, 0x99, PilotState.C, 320, 315, 320)
    a, b = Link().encode(STATUS), Link().encode(status4)
    rx.receive(*a, 0.0)
    rx.receive(*b, 0.0)
    rx.receive(*b, 0.9)  # servant 4's stream stays fresh, servant 3's goes silent
    assert rx.receive(*b, 1.5).status is E2EStatus.REPEATED
    assert rx.receive(*a, 1.5).status is E2EStatus.OK


def test_a_frame_that_fails_the_checks_does_not_refresh_its_stream() -> None:
    rx, frame = Link(), Link().encode(STATUS)
    rx.receive(*frame, 0.0)
    offset, data = frame
    rx.receive(offset, bytes((data[0] ^ 1,)) + data[1:], 0.9)  # wrong CRC: not a frame of the stream
    assert rx.receive(*frame, 1.5).status is E2EStatus.OK


def test_a_join_restarts_every_stream_its_servant_sends_the_join_included() -> None:
    """A servant rebooted within the stream memory: its first frames equal its previous life's, counter 0
    and same bytes; after its JOIN none of them is a duplicate. Other servants' streams are untouched."""
    join, request = Join(3, 0xDEADBEEF, 320), Request(3, 320, 60, 0)
    status4 = Status(4, 0x99, PilotState.C, 320, 315, 320)
    rx = Link()
    first_life = frames_of(join, request, STATUS, status4)
    for frame in first_life:
        assert rx.receive(*frame, 0.0).status is E2EStatus.OK
    second_life = frames_of(join, request, STATUS)
    assert second_life == first_life[:3]  # byte for byte
    for frame in second_life:
        assert rx.receive(*frame, 0.5).status is E2EStatus.OK
    assert rx.receive(*first_life[3], 0.5).status is E2EStatus.REPEATED  # servant 4 did not rejoin
    assert rx.restarts == {Restart.JOIN: 2}


def test_a_new_master_restarts_the_heartbeat_and_every_set_limit_stream() -> None:
    rx = Link()
    hb_b = Heartbeat(master_id=2, epoch=7, limit_da=640)
    old = frames_of(HB, SL)
    assert [rx.receive(*f, 0.0).status for f in old] == [E2EStatus.OK, E2EStatus.OK]
    assert rx.receive(*old[1], 0.1).status is E2EStatus.REPEATED  # a duplicate from the same master
    new = frames_of(hb_b, SL)  # another master id, same epoch: its first set-limit is byte-identical
    assert [rx.receive(*f, 0.2).status for f in new] == [E2EStatus.OK, E2EStatus.OK]
    assert rx.master == (2, 7)
    assert rx.restarts == {Restart.NEW_MASTER: 1}


def test_the_same_master_restarts_nothing() -> None:
    rx, tx = Link(), Link()
    for i in range(5):
        rx.receive(*tx.encode(HB), i * 0.2)
    assert rx.restarts == {} and rx.master == (1, 7)
    assert rx.stats()["e2e_ok"] == 5


def test_restarts_are_counted_in_the_stats() -> None:
    rx = Link()
    rx.receive(*Link().encode(Join(3, 1, 320)), 0.0)
    rx.receive(*Link().encode(STATUS), 0.0)
    rx.receive(*Link().encode(STATUS), 2.0)
    assert rx.stats()["restart_join"] == 1 and rx.stats()["restart_silence"] == 1
