"""The frame codec: known answers, fast path == construct spec, and bad input -> FrameError only."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.frames import FIRST_SERVANT
from busshare.frames import HEARD_BITS
from busshare.frames import LAST_SERVANT
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import CachedDecoder
from busshare.frames import FrameError
from busshare.frames import Heartbeat
from busshare.frames import Join
from busshare.frames import Message
from busshare.frames import MsgType
from busshare.frames import Nack
from busshare.frames import NackCode
from busshare.frames import Release
from busshare.frames import ReleaseReason
from busshare.frames import Request
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import decode
from busshare.frames import encode
from busshare.frames import heard_bit
from busshare.frames import heard_page
from busshare.frames import offset_of
from busshare.frames import serial_tag
from busshare.frames import spec_decode
from busshare.frames import spec_encode
from busshare.frames import split_offset
from busshare.protocol.canid import EXT_MAX
from busshare.protocol.canid import IdScheme
from busshare.protocol.e2e import frame_crc
from busshare.protocol.pilot import PilotState
from tests.support.frame_strategies import BY_TYPE
from tests.support.frame_strategies import counters
from tests.support.frame_strategies import messages


def reference_crc8(data: bytes) -> int:
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


def sealed(offset: int, tail: bytes) -> bytes:
    """A frame with bytes 1..7 = ``tail`` and a correct CRC, to reach the checks behind the CRC."""
    assert len(tail) == 7
    return bytes((frame_crc(offset, tail),)) + tail


# (message, counter, id offset, bytes): bit layouts worked out by hand, see docs/PROTOCOL.md.
KNOWN_ANSWERS: list[tuple[Message, int, int, str]] = [
    # id 1 | page 0 << 4; heard servants 1-4 = 0x1e; limit 640 | seq 42 << 14 = 0x0A8280
    (Heartbeat(master_id=1, epoch=7, limit_da=640, page=0, heard=0x1E, seq=42), 0, 0x040, "da 00 01 07 1e 80 82 0a"),
    # flags leaving (bit 4) + second_master (bit 6); id 15 | page 7 << 4 = 0x7f; heard servants 56-62 = 0x7f;
    # 16383 | 1023 << 14 = 0xFFFFFF
    (
        Heartbeat(15, 0xFE, 16383, 7, 0x7F, 1023, leaving=True, learning=False, second_master=True),
        15,
        0x040,
        "0b 5f 7f fe 7f ff ff ff",
    ),
    (SetLimit(address=2, txn=17, limit_da=320, failsafe_da=60, epoch=7), 3, 0x002, "70 03 11 40 01 3c 00 07"),
    (Ack(address=2, txn=17, applied_da=320, measured_da=301, how=AckHow.MEASURED), 3, 0x082, "08 03 11 40 01 2d 01 00"),
    (Ack(address=4, txn=200, applied_da=0, measured_da=None, how=AckHow.TIMED), 9, 0x084, "22 09 c8 00 00 ff ff 01"),
    (
        Nack(address=5, code=NackCode.TWIN, reporter=0, txn=0, detail=0x1234),
        1,
        0x0C5,
        "93 01 00 02 00 34 12 00",
    ),
    (Release(address=3, released_da=160, reason=ReleaseReason.EV_DONE), 5, 0x103, "30 05 a0 00 00 00 00 00"),
    (Request(address=3, requested_da=320, min_da=60, priority=1), 2, 0x143, "85 02 40 01 3c 00 01 00"),
    # 2 | 320 << 3 | 315 << 13 | 320 << 23 | 0x1234 << 33 = 0x2468_A027_6A02
    (
        Status(address=3, serial_tag=0x1234, pilot=PilotState.C, offered_da=320, measured_da=315, requested_da=320),
        11,
        0x183,
        "40 0b 02 6a 27 a0 68 24",
    ),
    # 1 | 0 << 3 | 1023 (unknown) << 13 | 800 << 23 | 0x7FFF << 33 = 0xFFFF_907F_E001; flags failsafe + ev_stopped
    (
        Status(62, 0x7FFF, PilotState.B, 0, None, 800, failsafe=True, ev_stopped=True),
        0,
        0x1BE,
        "2f 50 01 e0 7f 90 ff ff",
    ),
    # version 2 in the flag nibble
    (Join(address=3, serial=0xDEADBEEF, max_da=320), 0, 0x1C3, "1a 20 ef be ad de 40 01"),
]


def test_known_answers_cover_every_type() -> None:
    assert {msg.TYPE for msg, *_ in KNOWN_ANSWERS} == set(MsgType)


@pytest.mark.parametrize(("msg", "counter", "offset", "hexdata"), KNOWN_ANSWERS)
def test_known_answer(msg: Message, counter: int, offset: int, hexdata: str) -> None:
    data = bytes.fromhex(hexdata)
    assert offset_of(msg) == offset
    assert encode(msg, counter) == data
    assert spec_encode(msg, counter) == data
    assert decode(offset, data) == (msg, counter)
    assert spec_decode(offset, data) == (msg, counter)
    # the CRC byte is CRC-8 J1850 over the data ID (low byte, high byte) and bytes 1..7
    assert data[0] == reference_crc8(bytes((offset & 0xFF, offset >> 8)) + data[1:])
    assert data[1] & 0x0F == counter


@pytest.mark.parametrize("msg_type", list(MsgType))
def test_fast_path_equals_spec_path(msg_type: MsgType) -> None:
    @settings(deadline=None)
    @given(BY_TYPE[msg_type], counters)
    def check(msg: Message, counter: int) -> None:
        data = encode(msg, counter)
        assert data == spec_encode(msg, counter)
        assert len(data) == 8
        fast = decode(offset_of(msg), data)
        assert fast == spec_decode(offset_of(msg), data) == (msg, counter)
        # the fast path builds objects without __init__: they must be indistinguishable
        decoded = fast[0]
        assert type(decoded) is type(msg)
        assert hash(decoded) == hash(msg)
        assert dataclasses.replace(decoded) == msg  # re-validates every field
        for f in dataclasses.fields(msg):
            assert type(getattr(decoded, f.name)) is type(getattr(msg, f.name)), f.name
        with pytest.raises(dataclasses.FrozenInstanceError):
            decoded.txn = 1  # type: ignore[misc, union-attr]

    check()


@settings(deadline=None)
@given(messages, counters)
def test_round_trip(msg: Message, counter: int) -> None:
    assert decode(offset_of(msg), encode(msg, counter)) == (msg, counter)


def _outcome(fn: object, offset: int, data: bytes) -> tuple[str, object]:
    try:
        return "ok", fn(offset, data)  # type: ignore[operator]
    except FrameError as exc:
        assert str(exc), "a FrameError must say what is wrong"
        return "error", (exc.kind, str(exc))


def _agree(offset: int, data: bytes) -> tuple[str, object]:
    """decode and spec_decode return the same message or raise the same FrameError, nothing else."""
    fast = _outcome(decode, offset, data)
    spec = _outcome(spec_decode, offset, data)
    assert fast == spec
    if fast[0] == "error":
        kind, _ = fast[1]  # type: ignore[misc]
        assert kind in {"length", "type", "address", "crc", "reserved", "range", "enum"}
    return fast


offsets = st.one_of(st.integers(0, 511), st.integers(-(2**40), 2**40))


@settings(deadline=None, max_examples=500)
@given(offsets, st.binary(max_size=64))
def test_fuzz_random_bytes(offset: int, data: bytes) -> None:
    _agree(offset, data)


SCHEMES = (IdScheme(), IdScheme(0x600), IdScheme(0x18DA0000, extended=True))


@settings(deadline=None, max_examples=500)
@given(st.integers(-1, EXT_MAX + 1) | st.sampled_from([0x183, 0x783, 0x18DA0183]), st.booleans(), st.binary(max_size=12))
def test_fuzz_random_can_ids(can_id: int, extended: bool, data: bytes) -> None:
    """From a raw (CAN ID, frame format, payload) to a message: a message or FrameError, nothing else."""
    for scheme in SCHEMES:
        try:
            offset = scheme.require_offset(can_id, extended)
        except FrameError as exc:
            assert exc.kind == "type"
            continue
        _agree(offset, data)


@settings(deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 511), st.binary(min_size=7, max_size=7))
def test_fuzz_random_bodies_with_valid_crc(offset: int, tail: bytes) -> None:
    """Past the CRC every field check must agree between the two paths."""
    outcome = _agree(offset, sealed(offset, tail))
    if outcome[0] == "ok":
        msg, counter = outcome[1]  # type: ignore[misc]
        assert encode(msg, counter) == sealed(offset, tail)  # accepted frames are canonical


@settings(deadline=None)
@given(messages, counters, st.integers(0, 63), st.integers(0, 255))
def test_fuzz_mutated_valid_frames(msg: Message, counter: int, index: int, value: int) -> None:
    data = bytearray(encode(msg, counter))
    data[index % 8] = value
    _agree(offset_of(msg), bytes(data))
    _agree(offset_of(msg), bytes(data[:-1]))
    _agree(offset_of(msg) ^ (1 << (index % 9)), encode(msg, counter))


def _error(offset: int, data: bytes) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode(offset, data)
    with pytest.raises(FrameError) as spec_info:
        spec_decode(offset, data)
    assert (info.value.kind, str(info.value)) == (spec_info.value.kind, str(spec_info.value))
    assert isinstance(info.value, ValueError)
    return info.value


STATUS_3 = 0x183


ERROR_CASES: list[tuple[int, bytes, str, str]] = [
        (STATUS_3, b"", "length", "wrong length: 0 bytes"),
        (STATUS_3, bytes(9), "length", "wrong length: 9 bytes"),
        (512, bytes(8), "type", "outside the protocol"),
        (-1, bytes(8), "type", "outside the protocol"),
        (0x045, sealed(0x045, bytes(7)), "address", "heartbeat must come from address 0"),
        (0x180, sealed(0x180, bytes(7)), "address", "not a servant address"),
        (0x1BF, sealed(0x1BF, bytes(7)), "address", "not a servant address"),
        (STATUS_3, bytes(8), "crc", "bad CRC"),
        (0x040, sealed(0x040, bytes.fromhex("80 01 07 2a 80 02 0f")), "reserved", "heartbeat: reserved flag"),
        (0x002, sealed(0x002, bytes.fromhex("10 11 40 01 3c 00 07")), "reserved", "set_limit: reserved flag"),
        (0x143, sealed(0x143, bytes.fromhex("00 40 01 3c 00 01 01")), "reserved", "request: reserved byte"),
        (0x103, sealed(0x103, bytes.fromhex("00 a0 00 00 00 01 00")), "reserved", "release: reserved bytes"),
        (0x0C5, sealed(0x0C5, bytes.fromhex("00 00 02 00 34 12 01")), "reserved", "nack: reserved"),
        (0x0C5, sealed(0x0C5, bytes.fromhex("00 00 02 40 34 12 00")), "reserved", "nack: reserved"),  # reporter 64
        (0x002, sealed(0x002, bytes.fromhex("00 11 32 00 3c 00 07")), "range", "limit 5.0 A out of range"),
        (0x002, sealed(0x002, bytes.fromhex("00 11 40 01 21 03 07")), "range", "failsafe 80.1 A out of range"),
        (0x143, sealed(0x143, bytes.fromhex("00 40 01 00 00 01 00")), "range", "min 0.0 A out of range"),
        (0x1C3, sealed(0x1C3, bytes.fromhex("10 ef be ad de 3b 00")), "range", "max 5.9 A out of range"),
        (STATUS_3, sealed(STATUS_3, bytes.fromhex("00 00 01 00 00 00 00")), "range", "offered 3.2 A out of range"),
        (STATUS_3, sealed(STATUS_3, bytes.fromhex("00 00 00 00 01 00 00")), "range", "requested 0.2 A out of range"),
        (STATUS_3, sealed(STATUS_3, bytes.fromhex("00 06 00 00 00 00 00")), "enum", "pilot state 6 unknown"),
        (0x082, sealed(0x082, bytes.fromhex("00 11 40 01 2d 01 03")), "enum", "ack how 3 unknown"),
        (0x0C5, sealed(0x0C5, bytes.fromhex("00 00 00 00 00 00 00")), "enum", "nack code 0 unknown"),
        (0x0C5, sealed(0x0C5, bytes.fromhex("00 00 09 00 00 00 00")), "enum", "nack code 9 unknown"),
        (0x103, sealed(0x103, bytes.fromhex("00 a0 00 04 00 00 00")), "enum", "release reason 4 unknown"),
]


@pytest.mark.parametrize(("offset", "data", "kind", "words"), ERROR_CASES)
def test_every_error_kind_is_reachable_and_readable(offset: int, data: bytes, kind: str, words: str) -> None:
    exc = _error(offset, data)
    assert exc.kind == kind
    assert words in str(exc)


def test_error_kinds_all_covered() -> None:
    assert {case[2] for case in ERROR_CASES} == {"length", "type", "address", "crc", "reserved", "range", "enum"}


@pytest.mark.parametrize("counter", [-1, 16])
def test_encode_rejects_bad_counter(counter: int) -> None:
    msg = Join(3, 1, 160)
    for fn in (encode, spec_encode):
        with pytest.raises(FrameError) as info:
            fn(msg, counter)
        assert info.value.kind == "range"
        assert "counter" in str(info.value)


@pytest.mark.parametrize(
    ("make", "kind", "words"),
    [
        (lambda: Heartbeat(1, 1, 16384), "range", "limit 1638.4 A out of range"),
        (lambda: Heartbeat(1, 256, 640), "range", "epoch 256 out of range"),
        (lambda: SetLimit(0, 1, 160, 60, 1), "address", "address 0 is not a servant address"),
        (lambda: SetLimit(63, 1, 160, 60, 1), "address", "address 63"),
        (lambda: SetLimit(3, 1, 59, 60, 1), "range", "limit 5.9 A out of range"),
        (lambda: Ack(3, 1, 160, 0xFFFF, AckHow.MEASURED), "range", "measured 65535"),
        (lambda: Ack(3, 1, 160, None, 0), "enum", "ack how 0 unknown"),
        (lambda: Nack(64, NackCode.BAD_LIMIT, 0), "range", "address 64"),
        (lambda: Nack(3, 1, 0), "enum", "nack code 1 unknown"),
        (lambda: Release(3, 160, 0), "enum", "release reason"),
        (lambda: Request(3, 160, 59, 0), "range", "min 5.9 A"),
        (lambda: Status(3, 0x8000, PilotState.A, 0, None, 0), "range", "serial_tag 32768"),
        (lambda: Status(3, 1, 2, 0, None, 0), "enum", "pilot state 2 unknown"),
        (lambda: Status(3, 1, PilotState.A, 0, 1023, 0), "range", "measured 1023"),
        (lambda: Join(3, 1 << 32, 160), "range", "serial"),
        (lambda: Join(3, 1, 801), "range", "max 80.1 A"),
        (lambda: Join(3, 1, 160, version=16), "range", "version 16"),
    ],
)
def test_messages_validate_on_construction(make: object, kind: str, words: str) -> None:
    with pytest.raises(FrameError) as info:
        make()  # type: ignore[operator]
    assert info.value.kind == kind
    assert words in str(info.value)


def _heartbeat_fields_fit(master_id: int, epoch: int, limit_da: int, page: int, heard: int, seq: int) -> bool:
    """The heartbeat's field widths (PROTOCOL.md 5.2), each on its own; no heard bit for address 0 or 63."""
    reserved = (page == 0 and heard & 1) or (page == 7 and heard & 0x80)
    return (0 <= master_id < 1 << 4 and 0 <= epoch < 1 << 8 and 0 <= limit_da < 1 << 14 and 0 <= page < 1 << 3
            and 0 <= heard < 1 << 8 and 0 <= seq < 1 << 10 and not reserved)


@settings(max_examples=400)
@given(st.integers(-1, 16), st.integers(-1, 256), st.sampled_from([-1, 0, 640, 16383, 16384]), st.integers(-1, 8),
       st.sampled_from([-1, 0, 1, 0x7E, 0x80, 0xFF, 0x100]), st.sampled_from([-1, 0, 1023, 1024]))
def test_a_heartbeat_is_refused_exactly_when_a_field_does_not_fit(master_id: int, epoch: int, limit_da: int,
                                                                  page: int, heard: int, seq: int) -> None:
    """Its validation takes the common case, every field in range, in one expression before the checks that say
    which field is wrong: the two must agree."""
    fits = _heartbeat_fields_fit(master_id, epoch, limit_da, page, heard, seq)
    try:
        Heartbeat(master_id, epoch, limit_da, page, heard, seq)
    except FrameError as exc:
        assert not fits, exc
        assert exc.kind in ("range", "reserved")
    else:
        assert fits


def test_unknown_sentinels() -> None:
    """Measured current 'unknown' travels as all ones and decodes to None."""
    ack = Ack(3, 1, 160, None, AckHow.TIMED)
    assert encode(ack, 0)[5:7] == b"\xff\xff"
    status = Status(3, 1, PilotState.A, 0, None, 0)
    word = int.from_bytes(encode(status, 0)[2:], "little")
    assert (word >> 13) & 0x3FF == 1023
    assert decode(offset_of(status), encode(status, 0))[0].measured_da is None  # type: ignore[union-attr]


def test_split_offset() -> None:
    assert split_offset(0x183) == (MsgType.STATUS, 3)
    assert split_offset(0x0FF) == (MsgType.NACK, 63)  # nack may concern everyone
    assert split_offset(0x0C0) == (MsgType.NACK, 0)
    with pytest.raises(FrameError):
        split_offset(0x041)


def test_serial_tag_is_the_low_15_bits() -> None:
    assert serial_tag(0xDEADBEEF) == 0x3EEF
    assert serial_tag(0x7FFF) == 0x7FFF


def test_arbitration_order_of_types() -> None:
    order = [MsgType.SET_LIMIT, MsgType.HEARTBEAT, MsgType.ACK, MsgType.NACK, MsgType.RELEASE,
             MsgType.REQUEST, MsgType.STATUS, MsgType.JOIN]
    assert sorted(MsgType) == order


# --------------------------------------------------------------------------- CachedDecoder


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 511), st.binary(min_size=7, max_size=9)), max_size=30))
def test_cached_decoder_behaves_like_decode(frames: list[tuple[int, bytes]]) -> None:
    cached = CachedDecoder(max_entries=8)
    for offset, tail in frames * 2:  # every frame twice: a miss, then (maybe) a hit
        data = sealed(offset, tail) if len(tail) == 7 else tail
        assert _outcome(cached, offset, data) == _outcome(decode, offset, data)


@settings(deadline=None)
@given(messages, counters)
def test_cached_decoder_returns_the_same_message(msg: Message, counter: int) -> None:
    cached = CachedDecoder()
    data = encode(msg, counter)
    first = cached(offset_of(msg), data)
    second = cached(offset_of(msg), data)
    assert first == second == (msg, counter)
    assert first[0] is second[0]


def test_cached_decoder_reraises_errors() -> None:
    cached = CachedDecoder()
    for _ in range(2):
        with pytest.raises(FrameError) as info:
            cached(STATUS_3, bytes(8))
        assert info.value.kind == "crc"


def test_cached_decoder_accepts_bytearray() -> None:
    """python-can hands out ``Message.data`` as a bytearray."""
    msg = Join(3, 1, 160)
    data = bytearray(encode(msg, 2))
    cached = CachedDecoder()
    assert cached(offset_of(msg), data) == (msg, 2)
    assert decode(offset_of(msg), data) == (msg, 2)


def test_cached_decoder_stays_bounded() -> None:
    cached = CachedDecoder(max_entries=4)
    for seq in range(100):
        msg = Heartbeat(1, 1, 640)
        assert cached(0x40, encode(msg, seq % 16)) == (msg, seq % 16)
    assert len(cached._memo) <= 4


def test_cached_decoder_errors_do_not_grow() -> None:
    """A malformed frame repeating on the bus is re-raised from the memo without piling up tracebacks."""
    cached = CachedDecoder()
    depths = []
    for _ in range(50):
        with pytest.raises(FrameError) as info:
            cached(STATUS_3, bytes(8))
        tb, depth = info.value.__traceback__, 0
        while tb is not None:
            depth, tb = depth + 1, tb.tb_next
        depths.append(depth)
    assert max(depths) == min(depths)


def test_a_heartbeat_with_one_heard_bit_set_hears_that_servant_and_no_other() -> None:
    """``heard_bit`` (``HEARD_BITS``) is the one place of the heard-bit layout: hears, the servant and the
    simulator's oracle read it there."""
    for a in range(FIRST_SERVANT, LAST_SERVANT + 1):
        page, mask = heard_bit(a)
        assert HEARD_BITS[a] == (page, mask) and page == heard_page(a)
        hb = Heartbeat(1, 0, 100, page, mask, 0)
        assert [b for b in range(64) if hb.hears(b)] == [a]
