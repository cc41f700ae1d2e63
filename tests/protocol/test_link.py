"""The link layer: alive counters out, E2E classification in; bad frames are counted, never delivered."""

from __future__ import annotations

import uuid

import can
from hypothesis import given, settings
from hypothesis import strategies as st

from busshare.frames import Heartbeat, Join, Message, Status, decode, encode, offset_of
from busshare.protocol.canid import IdScheme
from busshare.protocol.e2e import E2EStatus
from busshare.protocol.link import Link
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
        got = rx.receive(*tx.encode(msg))
        assert got.accepted and got.message == msg
        assert got.status in (E2EStatus.OK, E2EStatus.OK_SOME_LOST, E2EStatus.WRONG_SEQUENCE)
    assert rx.dropped == 0


def test_duplicate_is_dropped_and_counted() -> None:
    tx, rx = Link(), Link()
    frame = tx.encode(HB)
    assert rx.receive(*frame).accepted
    again = rx.receive(*frame)
    assert not again.accepted
    assert again.message is None and again.status is E2EStatus.REPEATED
    assert rx.dropped == 1
    assert rx.stats()["e2e_repeated"] == 1


def test_losses_are_classified_but_delivered() -> None:
    tx, rx = Link(), Link()
    frames = [tx.encode(HB) for _ in range(10)]
    assert rx.receive(*frames[0]).status is E2EStatus.OK
    assert rx.receive(*frames[3]).status is E2EStatus.OK_SOME_LOST  # two lost
    got = rx.receive(*frames[9])  # five lost: a resync, still acted on
    assert got.status is E2EStatus.WRONG_SEQUENCE and got.accepted
    assert rx.stats()["e2e_ok-some-lost"] == 1 and rx.stats()["e2e_wrong-sequence"] == 1


def test_corrupted_frame_is_dropped_and_counted() -> None:
    tx, rx = Link(), Link()
    offset, data = tx.encode(STATUS)
    bad = bytes((data[0] ^ 1,)) + data[1:]
    got = rx.receive(offset, bad)
    assert not got.accepted and got.status is E2EStatus.WRONG_CRC
    assert got.error is not None and got.error.kind == "crc"
    assert rx.last_error is got.error
    assert rx.dropped == 1 and rx.stats()["e2e_wrong-crc"] == 1
    assert rx.receive(offset, data).accepted  # the genuine frame still gets through


def test_misrouted_frame_is_dropped() -> None:
    tx, rx = Link(), Link()
    offset, data = tx.encode(STATUS)
    got = rx.receive(offset + 1, data)  # as if sent by servant 4
    assert not got.accepted and got.status is E2EStatus.WRONG_CRC


def test_malformed_frames_are_counted_by_kind() -> None:
    rx = Link()
    assert rx.receive(0x183, b"\x00").error.kind == "length"  # type: ignore[union-attr]
    assert rx.receive(0x999, bytes(8)).error.kind == "type"  # type: ignore[union-attr]
    got = rx.receive(0x183, b"")
    assert got.status is None and not got.accepted
    assert rx.malformed == {"length": 2, "type": 1}
    assert rx.stats()["malformed_length"] == 2
    assert rx.dropped == 3


@settings(deadline=None)
@given(st.integers(-10, 600), st.binary(max_size=12))
def test_garbage_never_raises(offset: int, data: bytes) -> None:
    rx = Link()
    got = rx.receive(offset, data)
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
            result = rx.receive(scheme.require_offset(frame.arbitration_id, frame.is_extended_id), frame.data)
            got.append(result.message)
        assert got == sent
    finally:
        a.shutdown()
        b.shutdown()


def test_encoded_bytes_match_the_codec() -> None:
    offset, data = Link().encode(STATUS)
    assert (offset, data) == (0x183, encode(STATUS, 0))
