"""Modbus RTU framing, done here rather than by pymodbus's server (see docs/MODBUS.md).

A frame is ``device id, function code, data, CRC-16/MODBUS (low byte first)``.
Frames are delimited on the wire by 3.5 character times of silence.  This
module knows the length rules of the function codes busshare uses, so it can
find frames in a byte stream from the CRC alone (no timing needed), which is
what makes a multi-drop servant reliable on a pty or a USB adapter whose
timing is blurred by buffering.  Pure functions and one incremental parser;
no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass

import crcmod.predefined

from ...errors import BusshareError

_crc16 = crcmod.predefined.mkPredefinedCrcFun("modbus")

BROADCAST_ID = 0
MIN_FRAME = 4  # id, function, CRC (2): an exception reply is 5
MAX_FRAME = 256
BITS_PER_CHAR = 11  # start, 8 data, parity (or 2nd stop), stop: the Modbus RTU character

# function codes
READ_HOLDING = 0x03
READ_INPUT = 0x04
WRITE_SINGLE = 0x06
WRITE_MULTIPLE = 0x10
READ_WRITE_MULTIPLE = 0x17

# exception codes
ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03
DEVICE_FAILURE = 0x04


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` (poly 0xA001 reflected, init 0xFFFF)."""
    value: int = _crc16(data)
    return value


def add_crc(payload: bytes) -> bytes:
    """``payload`` followed by its CRC, low byte first."""
    return payload + crc16(payload).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= MIN_FRAME and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


def char_time(baud: int) -> float:
    """Seconds one 11-bit RTU character occupies the line."""
    return BITS_PER_CHAR / baud


def gap_time(baud: int) -> float:
    """The 3.5-character inter-frame silence; fixed at 1.75 ms above 19200 baud (spec)."""
    return 0.00175 if baud > 19200 else 3.5 * char_time(baud)


def wire_time(n_bytes: int, baud: int) -> float:
    return n_bytes * char_time(baud)


# ---------------------------------------------------------------------------
# PDUs


class RtuError(BusshareError, ValueError):
    """A frame that is not valid Modbus RTU (bad CRC, bad length, unknown function)."""


@dataclass(frozen=True)
class Pdu:
    """One decoded frame.  ``kind`` is request, response or exception."""

    device: int
    function: int
    kind: str
    raw: bytes
    # request fields (those that apply to the function)
    read_start: int = 0
    read_count: int = 0
    write_start: int = 0
    values: tuple[int, ...] = ()  # registers written (request) or read (response)
    exception: int = 0

    @property
    def is_broadcast(self) -> bool:
        return self.device == BROADCAST_ID


def _regs(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(data) // 2}H", data)


def _pack_regs(values: Iterable[int]) -> bytes:
    vals = list(values)
    for v in vals:
        if not 0 <= v <= 0xFFFF:
            raise RtuError(f"register value {v} out of range 0-65535")
    return struct.pack(f">{len(vals)}H", *vals)


def read_request(device: int, start: int, count: int, function: int = READ_HOLDING) -> bytes:
    return add_crc(struct.pack(">BBHH", device, function, start, count))


def read_response(device: int, function: int, values: Iterable[int]) -> bytes:
    data = _pack_regs(values)
    return add_crc(struct.pack(">BBB", device, function, len(data)) + data)


def write_multiple_request(device: int, start: int, values: Iterable[int]) -> bytes:
    data = _pack_regs(values)
    return add_crc(struct.pack(">BBHHB", device, WRITE_MULTIPLE, start, len(data) // 2, len(data)) + data)


def write_multiple_response(device: int, start: int, count: int) -> bytes:
    return add_crc(struct.pack(">BBHH", device, WRITE_MULTIPLE, start, count))


def write_single_response(device: int, address: int, value: int) -> bytes:
    return add_crc(struct.pack(">BBHH", device, WRITE_SINGLE, address, value))


def read_write_request(device: int, read_start: int, read_count: int, write_start: int, values: Iterable[int]) -> bytes:
    data = _pack_regs(values)
    head = struct.pack(">BBHHHHB", device, READ_WRITE_MULTIPLE, read_start, read_count, write_start, len(data) // 2, len(data))
    return add_crc(head + data)


def exception_response(device: int, function: int, code: int) -> bytes:
    return add_crc(bytes((device, function | 0x80, code)))


def candidate_lengths(buf: bytes | bytearray, start: int = 0) -> tuple[int, ...]:
    """Possible frame lengths at ``buf[start:]`` from its header (request and response readings).

    Returns the lengths that can be computed from the bytes present; a length
    longer than what is buffered means "wait for more".  Empty when the
    function code is not one busshare or mbpoll uses.
    """
    n = len(buf) - start
    if n < 2:
        return ()
    fc = buf[start + 1]
    if fc & 0x80:
        return (5,)
    if fc in (READ_HOLDING, READ_INPUT):
        out = [8]  # request
        if n >= 3:
            out.append(5 + buf[start + 2])  # response: byte count
        return tuple(out)
    if fc == WRITE_SINGLE:
        return (8,)
    if fc == WRITE_MULTIPLE:
        out = [8]  # response
        if n >= 7:
            out.append(9 + buf[start + 6])
        return tuple(out)
    if fc == READ_WRITE_MULTIPLE:
        out = []
        if n >= 3:
            out.append(5 + buf[start + 2])  # response
        if n >= 11:
            out.append(13 + buf[start + 10])  # request
        return tuple(out) if out else (5,)  # (5,): need more bytes to know
    return ()


def parse(frame: bytes, expect: str | None = None) -> Pdu:
    """Decode one complete frame (CRC included).  ``expect`` is request/response to break ties."""
    if len(frame) < MIN_FRAME:
        raise RtuError(f"runt frame of {len(frame)} bytes")
    if len(frame) > MAX_FRAME:
        raise RtuError(f"frame of {len(frame)} bytes exceeds 256")
    if not crc_ok(frame):
        raise RtuError(f"bad CRC {frame[-2:].hex()} (expected {crc16(frame[:-2]).to_bytes(2, 'little').hex()})")
    dev, fc = frame[0], frame[1]
    body = frame[2:-2]
    n = len(frame)
    if fc & 0x80:
        if n != 5:
            raise RtuError("exception reply must be 5 bytes")
        return Pdu(dev, fc & 0x7F, "exception", frame, exception=body[0])
    if fc in (READ_HOLDING, READ_INPUT):
        if n == 8:  # a response of 8 bytes would carry an odd byte count
            start, count = struct.unpack(">HH", body)
            return Pdu(dev, fc, "request", frame, read_start=start, read_count=count)
        if body[0] != n - 5 or body[0] % 2:
            raise RtuError(f"function {fc}: byte count {body[0]} does not match frame length {n}")
        return Pdu(dev, fc, "response", frame, values=_regs(body[1:]))
    if fc == WRITE_SINGLE:
        if n != 8:
            raise RtuError("write-single frame must be 8 bytes")
        addr, value = struct.unpack(">HH", body)
        return Pdu(dev, fc, expect or "request", frame, write_start=addr, values=(value,))
    if fc == WRITE_MULTIPLE:
        if n == 8:
            start, count = struct.unpack(">HH", body)
            return Pdu(dev, fc, "response", frame, write_start=start, read_count=count)
        start, count, nbytes = struct.unpack(">HHB", body[:5])
        if nbytes != n - 9 or nbytes != 2 * count:
            raise RtuError(f"write-multiple: byte count {nbytes} / quantity {count} do not match frame length {n}")
        return Pdu(dev, fc, "request", frame, write_start=start, values=_regs(body[5:]))
    if fc == READ_WRITE_MULTIPLE:
        if n >= 13 and body[8] == n - 13 and expect != "response":
            rs, rc, ws, wc, nbytes = struct.unpack(">HHHHB", body[:9])
            if nbytes == 2 * wc:
                return Pdu(dev, fc, "request", frame, read_start=rs, read_count=rc, write_start=ws,
                           values=_regs(body[9:]))
        if body[0] == n - 5 and body[0] % 2 == 0:
            return Pdu(dev, fc, "response", frame, values=_regs(body[1:]))
        raise RtuError(f"function 23: lengths do not match a request or a response ({n} bytes)")
    raise RtuError(f"function code {fc} not supported")


# ---------------------------------------------------------------------------
# finding frames in a byte stream


@dataclass(frozen=True)
class Chunk:
    """Bytes found in a stream: a frame (``ok``) or bytes skipped, with the reason."""

    t: float | None
    data: bytes
    ok: bool
    reason: str = ""


def _find_frame(buf: bytes | bytearray, start: int) -> int | None:
    """Length of a CRC-valid frame at ``buf[start:]``, 0 if more bytes may make one, None if none can."""
    avail = len(buf) - start
    lens = candidate_lengths(buf, start)
    if not lens:
        return 0 if avail < 2 else None
    waiting = False
    for n in sorted(set(lens)):
        if n < MIN_FRAME or n > MAX_FRAME:
            continue
        if n > avail:
            waiting = True
            continue
        if crc_ok(bytes(buf[start:start + n])):
            return n
    # a 23 request's length needs 11 bytes; a 16 request's needs 7
    fc = buf[start + 1]
    if (fc == READ_WRITE_MULTIPLE and avail < 11) or (fc == WRITE_MULTIPLE and avail < 7) or \
            (fc in (READ_HOLDING, READ_INPUT) and avail < 3):
        waiting = True
    return 0 if waiting else None


def split_by_crc(data: bytes, t: float | None = None) -> list[Chunk]:
    """Frames in an untimed stream, found by the length rules and the CRC; junk is reported in runs.

    Without timing the shortest CRC-valid reading wins, so a frame whose first
    bytes also pass the CRC as a shorter frame (about 1 in 65536) is split there.
    """
    out: list[Chunk] = []
    i = 0
    junk_from: int | None = None
    while i < len(data):
        n = _find_frame(data, i)
        if n:
            if junk_from is not None:
                out.append(Chunk(t, data[junk_from:i], False, "no valid frame (garbage or corrupted bytes)"))
                junk_from = None
            out.append(Chunk(t, data[i:i + n], True))
            i += n
            continue
        if junk_from is None:
            junk_from = i
        i += 1
    if junk_from is not None:
        out.append(Chunk(t, data[junk_from:], False, "no valid frame (garbage, corrupted or truncated bytes)"))
    return out


def split_by_gaps(timed: Iterable[tuple[float, bytes]], baud: int) -> Iterator[Chunk]:
    """Frames in a timestamped stream: bursts separated by >= 3.5 characters of silence.

    Each input item is (time of its first byte, bytes).  A burst whose CRC
    fails is searched by CRC (two frames glued by a too-short gap) before it
    is reported bad.
    """
    gap = gap_time(baud)
    # a burst ends more than ~1.5 characters before the next starts: tolerate timestamp jitter
    tol = max(gap * 0.5, 1.5 * char_time(baud))
    cur = bytearray()
    cur_t = 0.0
    end = 0.0
    for t, data in timed:
        if not data:
            continue
        if cur and t - end >= tol:
            yield from _burst(cur_t, bytes(cur))
            cur = bytearray()
        if not cur:
            cur_t = t
            end = t
        cur += data
        end = max(end, t) + wire_time(len(data), baud)
    if cur:
        yield from _burst(cur_t, bytes(cur))


def _burst(t: float, data: bytes) -> Iterator[Chunk]:
    if crc_ok(data) and len(data) <= MAX_FRAME:
        yield Chunk(t, data, True)
        return
    parts = split_by_crc(data, t)
    if len(parts) == 1 and not parts[0].ok:
        why = "bad CRC" if len(data) >= MIN_FRAME else f"runt frame of {len(data)} bytes"
        yield Chunk(t, data, False, why)
        return
    yield from parts


class StreamParser:
    """Incremental frame finder for a live line (servant, master, monitor).

    Feed it bytes as they arrive; it yields CRC-valid frames as soon as their
    last byte is in, so a servant can answer without waiting for the 3.5-char
    silence.  ``idle()`` (called after a silence of at least 3.5 characters)
    flushes a partial frame as junk, which is how the line resynchronises
    after garbage.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.junk: list[bytes] = []  # skipped runs since last drained
        self._junk_run = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        frames: list[bytes] = []
        while self.buf:
            n = _find_frame(self.buf, 0)
            if n:
                self._flush_junk()
                frames.append(bytes(self.buf[:n]))
                del self.buf[:n]
                continue
            if n == 0:
                break  # wait for more bytes
            self._junk_run.append(self.buf[0])
            del self.buf[0]
        return frames

    def idle(self) -> None:
        """A silence: whatever is buffered can no longer become a frame."""
        if self.buf:
            self._junk_run += self.buf
            self.buf.clear()
        self._flush_junk()

    def _flush_junk(self) -> None:
        if self._junk_run:
            self.junk.append(bytes(self._junk_run))
            self._junk_run.clear()

    def drain_junk(self) -> list[bytes]:
        out, self.junk = self.junk, []
        return out
