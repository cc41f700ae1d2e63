"""Modbus RTU framing: CRC, length rules, finding frames by CRC and by gaps."""

from __future__ import annotations

import pytest
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.transport.modbus import rtu

regs = st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=20)
device = st.integers(1, 247)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["read", "read-reply", "write", "write-reply", "rw", "exc"]))
    dev = draw(device)
    if kind == "read":
        return rtu.read_request(dev, draw(st.integers(0, 0xFFFF)), draw(st.integers(1, 125)))
    if kind == "read-reply":
        return rtu.read_response(dev, rtu.READ_HOLDING, draw(regs))
    if kind == "write":
        return rtu.write_multiple_request(dev, draw(st.integers(0, 0xFFFF)), draw(regs))
    if kind == "write-reply":
        return rtu.write_multiple_response(dev, draw(st.integers(0, 0xFFFF)), draw(st.integers(1, 123)))
    if kind == "rw":
        return rtu.read_write_request(dev, 0x100, draw(st.integers(1, 125)), 0x200, draw(regs))
    return rtu.exception_response(dev, rtu.READ_HOLDING, draw(st.integers(1, 4)))


def test_crc16_modbus_known_answers() -> None:
    assert rtu.add_crc(bytes.fromhex("010300000001")) == bytes.fromhex("01030000000184 0A".replace(" ", ""))
    assert rtu.crc16(b"123456789") == 0x4B37  # the CRC-16/MODBUS check value


def test_crc_is_sent_low_byte_first() -> None:
    frame = rtu.read_request(1, 0, 1)
    assert frame[-2:] == bytes((rtu.crc16(frame[:-2]) & 0xFF, rtu.crc16(frame[:-2]) >> 8))


@given(frames())
def test_every_frame_built_parses_back(frame: bytes) -> None:
    assert rtu.crc_ok(frame)
    pdu = rtu.parse(frame)
    assert pdu.raw == frame
    assert pdu.device == frame[0]
    assert len(frame) in rtu.candidate_lengths(frame)


@given(frames(), st.data())
def test_any_single_bit_error_is_caught(frame: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    bad = bytearray(frame)
    bad[bit // 8] ^= 1 << (bit % 8)
    assert not rtu.crc_ok(bytes(bad))
    with pytest.raises(rtu.RtuError):
        rtu.parse(bytes(bad))


def test_function_23_request_and_reply_are_told_apart() -> None:
    req = rtu.read_write_request(3, 0x100, 11, 0x200, [0x1234])
    rep = rtu.read_response(3, rtu.READ_WRITE_MULTIPLE, range(11))
    p, r = rtu.parse(req), rtu.parse(rep)
    assert (p.kind, p.read_start, p.read_count, p.write_start, p.values) == ("request", 0x100, 11, 0x200, (0x1234,))
    assert (r.kind, r.values) == ("response", tuple(range(11)))


def test_unsupported_function_and_runts_are_errors_not_crashes() -> None:
    with pytest.raises(rtu.RtuError, match="function code 8"):
        rtu.parse(rtu.add_crc(bytes((1, 8, 0, 0, 0, 0))))
    with pytest.raises(rtu.RtuError, match="runt"):
        rtu.parse(b"\x01\x03")


@given(st.lists(frames(), min_size=1, max_size=6), st.lists(st.binary(min_size=0, max_size=5), min_size=7, max_size=7))
@settings(max_examples=200)
def test_split_by_crc_finds_every_frame_between_garbage(fs: list[bytes], junk: list[bytes]) -> None:
    # a frame whose shorter reading also passes the CRC (1 in 65536) is split at it, and garbage whose
    # reading runs into the next frame and passes the CRC takes that frame's first bytes: see the tests below
    assume(not any(_shadowed(f) for f in fs))
    stream = b"".join(j + f for j, f in zip(junk, fs, strict=False)) + junk[-1]
    assume(not _garbage_runs_into_a_frame(stream, junk, fs))
    found = [c.data for c in rtu.split_by_crc(stream) if c.ok]
    # every real frame is found, in order (garbage may by chance contain an extra valid frame)
    it = iter(found)
    assert all(any(f == g for g in it) for f in fs)


def _shadowed(frame: bytes) -> bool:
    return any(n < len(frame) and rtu.crc_ok(frame[:n]) for n in rtu.candidate_lengths(frame))


def _garbage_runs_into_a_frame(stream: bytes, junk: list[bytes], fs: list[bytes]) -> bool:
    """A CRC-valid reading that starts in a run of garbage and ends past the frame after it."""
    at = 0
    for j, f in zip(junk, fs, strict=False):
        frame_at = at + len(j)
        for p in range(at, frame_at):
            if any(frame_at < p + n <= len(stream) and rtu.crc_ok(stream[p:p + n])
                   for n in rtu.candidate_lengths(stream, p) if n >= rtu.MIN_FRAME):
                return True
        at = frame_at + len(f)
    return False


def test_an_untimed_split_takes_the_shortest_crc_valid_reading_and_the_gaps_settle_it() -> None:
    # a function-3 read response whose first 8 bytes are also a CRC-valid read request (found by hypothesis)
    reply = bytes.fromhex("e0030401700027" "4b00")
    assert rtu.crc_ok(reply) and rtu.crc_ok(reply[:8]) and _shadowed(reply)
    assert [(c.ok, c.data) for c in rtu.split_by_crc(reply)] == [(True, reply[:8]), (False, reply[8:])]
    assert [(c.ok, c.data) for c in rtu.split_by_gaps([(0.0, reply)], 19200)] == [(True, reply)]


def test_an_untimed_split_takes_garbage_whose_reading_runs_into_a_frame_and_the_gaps_settle_it() -> None:
    # "03 fb": device 3, an exception reading (5 bytes) that with the next frame's first 3 bytes passes the
    # CRC (found by hypothesis, about 1 in 65536 per garbage byte that reads as a header)
    junk, frame = bytes.fromhex("03fb"), rtu.exception_response(0x43, rtu.READ_HOLDING, 1)
    assert not _shadowed(frame) and _garbage_runs_into_a_frame(junk + frame, [junk, b""], [frame])
    assert [(c.ok, c.data) for c in rtu.split_by_crc(junk + frame)] == [(True, (junk + frame)[:5]),
                                                                         (False, frame[3:])]
    assert [(c.ok, c.data) for c in rtu.split_by_gaps([(0.0, junk), (1.0, frame)], 19200)] == [(False, junk),
                                                                                                (True, frame)]


def test_split_by_crc_reports_garbage_with_a_reason() -> None:
    good = rtu.read_request(5, 0, 10)
    chunks = rtu.split_by_crc(b"\xde\xad\xbe\xef" + good)
    assert [c.ok for c in chunks] == [False, True]
    assert chunks[0].data == b"\xde\xad\xbe\xef" and "garbage" in chunks[0].reason


def test_split_by_gaps_uses_the_silence_and_falls_back_to_the_crc() -> None:
    baud = 19200
    a, b = rtu.read_request(1, 0, 2), rtu.read_response(1, 3, [7, 8])
    c = rtu.wire_time(len(a), baud)
    gap = rtu.gap_time(baud)
    # a, then b after a proper gap, then a corrupted copy of a, then a and b glued with no gap
    bad = bytearray(a)
    bad[3] ^= 0x10
    timed = [(0.0, a), (c + gap, b), (1.0, bytes(bad)), (2.0, a), (2.0 + c, b)]
    chunks = list(rtu.split_by_gaps(timed, baud))
    assert [(x.ok, x.data) for x in chunks] == [(True, a), (True, b), (False, bytes(bad)), (True, a), (True, b)]
    assert chunks[2].reason == "bad CRC"
    assert chunks[1].t == pytest.approx(c + gap)


def test_split_by_gaps_joins_a_frame_spread_over_several_reads() -> None:
    baud = 9600
    f = rtu.read_write_request(2, 0x100, 11, 0x200, [1, 2, 3, 4, 5, 6])
    ch = rtu.char_time(baud)
    pieces = [(0.0, f[:5]), (5 * ch, f[5:12]), (12 * ch + ch / 2, f[12:])]
    assert [(x.ok, x.data) for x in rtu.split_by_gaps(pieces, baud)] == [(True, f)]


def test_gap_is_three_and_a_half_characters_and_fixed_above_19200() -> None:
    assert rtu.gap_time(9600) == pytest.approx(3.5 * 11 / 9600)
    assert rtu.gap_time(19200) == pytest.approx(3.5 * 11 / 19200)
    assert rtu.gap_time(115200) == 0.00175


def test_stream_parser_yields_a_frame_the_moment_its_last_byte_arrives() -> None:
    p = rtu.StreamParser()
    f = rtu.read_write_request(4, 0x100, 11, 0x200, [9])
    for byte in f[:-1]:
        assert p.feed(bytes((byte,))) == []
    assert p.feed(f[-1:]) == [f]
    assert p.drain_junk() == []


def test_stream_parser_resynchronises_after_garbage_at_the_next_silence() -> None:
    p = rtu.StreamParser()
    # garbage that looks like the start of a long frame keeps the parser waiting...
    assert p.feed(b"\x07\x17\x01\x00\x00\x0b\x02\x00\x00\x40\xf0") == []
    p.idle()  # ...until the line falls silent
    assert p.drain_junk() == [b"\x07\x17\x01\x00\x00\x0b\x02\x00\x00\x40\xf0"]
    f = rtu.read_request(1, 0, 1)
    assert p.feed(f) == [f]


@given(st.binary(max_size=300))
def test_stream_parser_never_crashes_and_keeps_every_byte(data: bytes) -> None:
    p = rtu.StreamParser()
    got = p.feed(data)
    p.idle()
    assert sum(map(len, got)) + sum(map(len, p.drain_junk())) == len(data)
    assert all(rtu.crc_ok(f) for f in got)
