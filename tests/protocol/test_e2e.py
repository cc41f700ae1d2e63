"""End-to-end protection: CRC-8 SAE J1850, data ID, alive counters, receiver checker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.frames import Heartbeat
from busshare.frames import MsgType
from busshare.frames import SetLimit
from busshare.frames import decode
from busshare.frames import encode
from busshare.frames import offset_of
from busshare.protocol.e2e import COUNTER_MODULO
from busshare.protocol.e2e import DEFAULT_MAX_DELTA
from busshare.protocol.e2e import UNSEEN
from busshare.protocol.e2e import AliveCounters
from busshare.protocol.e2e import E2EChecker
from busshare.protocol.e2e import E2EStatus
from busshare.protocol.e2e import classify
from busshare.protocol.e2e import crc8
from busshare.protocol.e2e import data_id
from busshare.protocol.e2e import frame_crc
from busshare.protocol.e2e import status_table


def reference_crc8(data: bytes, crc: int = 0xFF) -> int:
    """Bit-by-bit CRC-8 SAE J1850 (poly 0x1D, init 0xFF, xor-out 0xFF), independent of crcmod."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


# AUTOSAR SWS CRC Library, CRC-8 SAE J1850 test vectors.
AUTOSAR_VECTORS = [
    ("00 00 00 00", 0x59),
    ("F2 01 83", 0x37),
    ("0F AA 00 55", 0x79),
    ("00 FF 55 11", 0xB8),
    ("33 22 55 AA BB CC DD EE FF", 0xCB),
    ("92 6B 55", 0x8C),
    ("FF FF FF FF", 0x74),
]


def test_check_value() -> None:
    assert crc8(b"123456789") == 0x4B
    assert reference_crc8(b"123456789") == 0x4B


@pytest.mark.parametrize(("hexdata", "expected"), AUTOSAR_VECTORS)
def test_autosar_vectors(hexdata: str, expected: int) -> None:
    data = bytes.fromhex(hexdata)
    assert crc8(data) == expected
    assert reference_crc8(data) == expected


def test_crcmod_init_pitfall() -> None:
    """crcmod pre-xors initCrc with xorOut: initCrc=0xFF gives a different (wrong) CRC."""
    import crcmod

    wrong = crcmod.mkCrcFun(0x11D, initCrc=0xFF, rev=False, xorOut=0xFF)
    assert wrong(b"123456789") != 0x4B


@settings(deadline=None)
@given(st.binary(max_size=64))
def test_crc8_matches_reference(data: bytes) -> None:
    assert crc8(data) == reference_crc8(data)


@settings(deadline=None)
@given(st.integers(0, 511), st.binary(min_size=7, max_size=7))
def test_frame_crc_covers_data_id_low_byte_first(did: int, body: bytes) -> None:
    expected = reference_crc8(bytes((did & 0xFF, did >> 8)) + body)
    assert frame_crc(did, body) == expected


def test_data_id_is_the_can_id_offset() -> None:
    assert data_id(MsgType.STATUS, 3) == 0x183
    assert data_id(MsgType.SET_LIMIT, 62) == 62
    assert data_id(MsgType.JOIN, 63) == 0x1FF
    msg = SetLimit(5, 1, 160, 60, 7)
    assert data_id(msg.TYPE, msg.address) == offset_of(msg)


#: The one data-ID difference an 8-bit CRC cannot see: 9 bits of data ID into 8 bits of CRC
#: must leave one nonzero pattern undetected.  It changes type AND address at once.
BLIND_DIFF = 0x183


def test_exactly_one_data_id_difference_is_invisible() -> None:
    body = bytes(7)
    invisible = [d for d in range(1, 512) if frame_crc(0, body) == frame_crc(d, body)]
    assert invisible == [BLIND_DIFF]


@settings(deadline=None)
@given(st.integers(0, 511), st.integers(0, 511), st.binary(min_size=7, max_size=7))
def test_other_data_ids_change_the_crc(a: int, b: int, body: bytes) -> None:
    """CRC-8 is linear: two data IDs collide for every body or for none."""
    same = frame_crc(a, body) == frame_crc(b, body)
    assert same == (a ^ b in (0, BLIND_DIFF))


def test_frame_moved_to_another_address_or_type_fails_crc() -> None:
    msg = SetLimit(address=5, txn=9, limit_da=320, failsafe_da=60, epoch=2)
    off = offset_of(msg)
    data = encode(msg, 4)
    assert decode(off, data)[0] == msg
    for address in range(64):  # same type, any other address
        if address != msg.address:
            assert data[0] != frame_crc((off & ~0x3F) | address, data[1:])
    for t in MsgType:  # same address, any other type
        if t is not msg.TYPE:
            assert data[0] != frame_crc((int(t) << 6) | msg.address, data[1:])


def test_counters_start_at_zero_and_wrap_at_16() -> None:
    counters = AliveCounters()
    seen = [counters.next(MsgType.STATUS, 3) for _ in range(2 * COUNTER_MODULO + 1)]
    assert seen == list(range(16)) + list(range(16)) + [0]


def test_counters_are_per_type_and_address() -> None:
    counters = AliveCounters()
    assert counters.next(MsgType.STATUS, 3) == 0
    assert counters.next(MsgType.STATUS, 3) == 1
    assert counters.next(MsgType.ACK, 3) == 0
    assert counters.next(MsgType.STATUS, 4) == 0
    assert counters.next(MsgType.STATUS, 3) == 2


def test_checker_first_frame_is_ok() -> None:
    assert E2EChecker().check_counter(0x183, 9) is E2EStatus.OK


@pytest.mark.parametrize(
    ("last", "counter", "expected"),
    [
        (4, 5, E2EStatus.OK),
        (4, 4, E2EStatus.REPEATED),
        (4, 6, E2EStatus.OK_SOME_LOST),
        (4, 7, E2EStatus.OK_SOME_LOST),  # delta 3 = default max_delta
        (4, 8, E2EStatus.WRONG_SEQUENCE),
        (4, 3, E2EStatus.WRONG_SEQUENCE),  # going back is a jump of 15
        (15, 0, E2EStatus.OK),  # wrap-around at 16
        (14, 1, E2EStatus.OK_SOME_LOST),
        (15, 2, E2EStatus.OK_SOME_LOST),
        (15, 3, E2EStatus.WRONG_SEQUENCE),
        (0, 0, E2EStatus.REPEATED),
    ],
)
def test_checker_classification(last: int, counter: int, expected: E2EStatus) -> None:
    checker = E2EChecker()
    checker.check_counter(0x40, last)
    assert checker.check_counter(0x40, counter) is expected
    assert checker.counts[expected] >= 1


def test_checker_streams_are_independent() -> None:
    checker = E2EChecker()
    checker.check_counter(0x183, 1)
    assert checker.check_counter(0x184, 7) is E2EStatus.OK  # a new stream
    assert checker.check_counter(0x183, 2) is E2EStatus.OK


def test_checker_forget_restarts_a_stream() -> None:
    checker = E2EChecker()
    checker.check_counter(0x40, 5)
    checker.forget(0x40)
    assert checker.check_counter(0x40, 12) is E2EStatus.OK
    checker.forget(0x99)  # unknown stream: nothing to do


def test_checker_counts() -> None:
    checker = E2EChecker()
    for counter in (0, 1, 1, 3, 10):
        checker.check_counter(0x40, counter)
    assert checker.wrong_crc() is E2EStatus.WRONG_CRC
    assert checker.counts == {
        E2EStatus.OK: 2,
        E2EStatus.REPEATED: 1,
        E2EStatus.OK_SOME_LOST: 1,
        E2EStatus.WRONG_SEQUENCE: 1,
        E2EStatus.WRONG_CRC: 1,
    }


def test_max_delta_is_configurable() -> None:
    checker = E2EChecker(max_delta=1)
    checker.check_counter(0x40, 0)
    assert checker.check_counter(0x40, 2) is E2EStatus.WRONG_SEQUENCE
    wide = E2EChecker(max_delta=14)
    wide.check_counter(0x40, 0)
    assert wide.check_counter(0x40, 14) is E2EStatus.OK_SOME_LOST
    assert wide.check_counter(0x40, 14) is E2EStatus.REPEATED


@pytest.mark.parametrize("bad", [0, 15, -1, 16])
def test_max_delta_bounds(bad: int) -> None:
    with pytest.raises(ValueError, match="max_delta"):
        E2EChecker(max_delta=bad)


def test_which_statuses_a_node_acts_on() -> None:
    """Rule 8: duplicates and corrupted frames are never acted on; a jump is a resync."""
    assert E2EStatus.OK.accepted
    assert E2EStatus.OK_SOME_LOST.accepted
    assert E2EStatus.WRONG_SEQUENCE.accepted
    assert not E2EStatus.REPEATED.accepted
    assert not E2EStatus.WRONG_CRC.accepted


def test_default_max_delta() -> None:
    assert DEFAULT_MAX_DELTA == 3
    assert E2EChecker().max_delta == 3


@settings(deadline=None)
@given(st.integers(0, 15), st.integers(1, 14), st.integers(0, 15))
def test_classification_depends_only_on_the_delta(last: int, max_delta: int, counter: int) -> None:
    checker = E2EChecker(max_delta=max_delta)
    checker.check_counter(1, last)
    status = checker.check_counter(1, counter)
    delta = (counter - last) % 16
    if delta == 0:
        assert status is E2EStatus.REPEATED
    elif delta == 1:
        assert status is E2EStatus.OK
    elif delta <= max_delta:
        assert status is E2EStatus.OK_SOME_LOST
    else:
        assert status is E2EStatus.WRONG_SEQUENCE


@settings(deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=100))
def test_sender_and_checker_agree_under_loss(delivered: list[bool]) -> None:
    """The checker sees exactly how many frames of a sender's stream were lost (modulo 16)."""
    counters = AliveCounters()
    checker = E2EChecker()
    lost = 0
    first = True
    for ok in delivered:
        counter = counters.next(MsgType.HEARTBEAT, 0)
        if not ok:
            lost += 1
            continue
        status = checker.check_counter(0x40, counter)
        delta = (lost + 1) % 16
        if first or delta == 1:
            assert status is E2EStatus.OK
        elif delta == 0:
            assert status is E2EStatus.REPEATED  # 15 lost in a row look like a duplicate
        elif delta <= DEFAULT_MAX_DELTA:
            assert status is E2EStatus.OK_SOME_LOST
        else:
            assert status is E2EStatus.WRONG_SEQUENCE
        first = False
        lost = 0


@settings(deadline=None)
@given(st.integers(0, 15), st.integers(0, 255), st.integers(0, 1023), st.integers(0, 15))
def test_any_single_bit_flip_is_detected(master_id: int, epoch: int, seq: int, counter: int) -> None:
    msg = Heartbeat(master_id, epoch, 640, seq=seq)
    data = encode(msg, counter)
    for bit in range(64):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert flipped[0] != frame_crc(offset_of(msg), bytes(flipped[1:]))


def test_same_counter_with_other_bytes_is_a_second_sender_not_a_duplicate():
    """Twin servants on one address must stay visible: only identical bytes count as repeated."""
    checker = E2EChecker()
    assert checker.check_counter(0x183, 4, b"\x01" * 8) is E2EStatus.OK
    assert checker.check_counter(0x183, 4, b"\x02" * 8) is E2EStatus.WRONG_SEQUENCE
    assert checker.check_counter(0x183, 4, b"\x02" * 8) is E2EStatus.REPEATED
    assert E2EStatus.WRONG_SEQUENCE.accepted


def test_link_lets_a_twins_frame_through_but_drops_a_true_duplicate():
    from busshare.frames import PilotState
    from busshare.frames import Status
    from busshare.protocol.link import Link

    a, twin, rx = Link(), Link(), Link()
    off, first = a.encode(Status(3, 100, PilotState.C, 320, None, 320))
    _, second = twin.encode(Status(3, 200, PilotState.B, 0, None, 0))  # same counter 0, other unit
    assert rx.receive(off, first, 0.0).accepted
    assert rx.receive(off, second, 0.1).accepted
    assert not rx.receive(off, second, 0.2).accepted  # the very same bytes again: a duplicate


# -- one classifier (PROTOCOL.md 6.3): the table every fast path uses is derived from it -------------------


@pytest.mark.parametrize("max_delta", range(1, 15))
def test_the_status_table_is_the_classifier_tabulated(max_delta: int) -> None:
    table = status_table(max_delta)
    assert len(table) == UNSEEN + COUNTER_MODULO
    for counter in range(COUNTER_MODULO):
        assert table[UNSEEN + counter] is classify(None, counter, max_delta) is E2EStatus.OK
        for last in range(COUNTER_MODULO):
            assert table[16 * last + counter] is classify(last, counter, max_delta)


@settings(deadline=None)
@given(st.one_of(st.none(), st.integers(0, 15)), st.integers(0, 15), st.integers(1, 14), st.booleans())
def test_the_classifier_is_the_table_of_6_3(last: int | None, counter: int, max_delta: int, same: bool) -> None:
    """Row by row as PROTOCOL.md 6.3 writes it, and which statuses are acted on."""
    status = classify(last, counter, max_delta, same_bytes=same)
    if last is None:
        assert status is E2EStatus.OK  # first frame of the stream
        return
    delta = (counter - last) % 16
    expected = (
        (E2EStatus.REPEATED if same else E2EStatus.WRONG_SEQUENCE) if delta == 0
        else E2EStatus.OK if delta == 1
        else E2EStatus.OK_SOME_LOST if delta <= max_delta
        else E2EStatus.WRONG_SEQUENCE
    )
    assert status is expected
    assert status.accepted is (status is not E2EStatus.REPEATED)  # wrong-sequence is acted on


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.binary(min_size=1, max_size=2)), max_size=40))
def test_the_checker_follows_the_classifier_frame_by_frame(frames: list[tuple[int, bytes]]) -> None:
    checker = E2EChecker()
    last: tuple[int, bytes] | None = None
    for counter, data in frames:
        expected = classify(None if last is None else last[0], counter,
                            same_bytes=last is None or last[1] == data)
        assert checker.check_counter(0x183, counter, data) is expected
        last = (counter, data)  # every frame that passed 4.3 updates last, whatever its status
