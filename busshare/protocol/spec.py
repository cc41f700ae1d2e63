"""The layout of record: the ``construct`` declaration of every frame, and a codec built on it.

``busshare.frames`` encodes and decodes with ``struct`` (the fast path) and comes here only for a frame
it does not take as it is (so its errors are worded alike) and for the tests, which prove the two agree
byte for byte.  ``fields``/``head`` derive each field's position from the declaration by parsing one
set bit at a time; ``tests/protocol/test_layout.py`` proves that ``protocol/layout.py`` names the same.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

import construct as c

from ..frames import _NOT_SERVANT_BITS
from ..frames import ACK_MEASURED_UNKNOWN
from ..frames import BROADCAST_ADDRESS
from ..frames import FRAME_LENGTH
from ..frames import STATUS_MEASURED_UNKNOWN
from ..frames import Ack
from ..frames import AckHow
from ..frames import FrameError
from ..frames import Heartbeat
from ..frames import Join
from ..frames import Message
from ..frames import MsgType
from ..frames import Nack
from ..frames import NackCode
from ..frames import Release
from ..frames import ReleaseReason
from ..frames import Request
from ..frames import SetLimit
from ..frames import Status
from ..frames import _check_uint
from ..frames import offset_of
from ..frames import split_offset
from .e2e import frame_crc
from .layout import BODY_FROM
from .layout import BODY_LENGTH
from .layout import CRC_BYTE
from .layout import HEAD_BYTE
from .layout import HEARTBEAT_FLAGS
from .layout import PROTECTED_FROM
from .layout import STATUS_FLAGS
from .layout import Field
from .pilot import PilotState

Head = c.BitStruct("flags" / c.Nibble, "counter" / c.Nibble)

SPEC: dict[MsgType, c.Construct] = {
    MsgType.SET_LIMIT: c.Struct(
        "txn" / c.Int8ul, "limit_da" / c.Int16ul, "failsafe_da" / c.Int16ul, "epoch" / c.Int8ul
    ),
    MsgType.HEARTBEAT: c.Struct(
        # byte 2: bits 0-3 master id, bits 4-6 heard page, bit 7 reserved
        "idp" / c.BitStruct("reserved" / c.Bit, "page" / c.BitsInteger(3), "master_id" / c.BitsInteger(4)),
        "epoch" / c.Int8ul,
        "heard" / c.Int8ul,
        # 24-bit little-endian word: bits 0-13 limit, bits 14-23 seq
        "ls" / c.ByteSwapped(c.BitStruct("seq" / c.BitsInteger(10), "limit_da" / c.BitsInteger(14))),
    ),
    MsgType.ACK: c.Struct(
        "txn" / c.Int8ul, "applied_da" / c.Int16ul, "measured_da" / c.Int16ul, "how" / c.Int8ul
    ),
    MsgType.NACK: c.Struct(
        "txn" / c.Int8ul, "code" / c.Int8ul, "reporter" / c.Int8ul, "detail" / c.Int16ul, "reserved" / c.Int8ul
    ),
    MsgType.RELEASE: c.Struct("released_da" / c.Int16ul, "reason" / c.Int8ul, "reserved" / c.Bytes(3)),
    MsgType.REQUEST: c.Struct(
        "requested_da" / c.Int16ul, "min_da" / c.Int16ul, "priority" / c.Int8ul, "reserved" / c.Int8ul
    ),
    MsgType.STATUS: c.Struct(
        # 48-bit little-endian word, bit 0 first
        "bits"
        / c.ByteSwapped(
            c.BitStruct(
                "serial_tag" / c.BitsInteger(15),
                "requested_da" / c.BitsInteger(10),
                "measured_da" / c.BitsInteger(10),
                "offered_da" / c.BitsInteger(10),
                "pilot" / c.BitsInteger(3),
            )
        ),
    ),
    MsgType.JOIN: c.Struct("serial" / c.Int32ul, "max_da" / c.Int16ul),
}

# flag bits in the high nibble of byte 1 (bit 0 of the nibble = bit 4 of the byte): layout.HEARTBEAT_FLAGS,
# layout.STATUS_FLAGS

FrameSpec = c.Struct("crc" / c.Int8ul, "head" / Head, "body" / c.Bytes(BODY_LENGTH))
for _t, _s in SPEC.items():
    assert _s.sizeof() == BODY_LENGTH, (_t, _s.sizeof())


def _leaves(container: Any) -> dict[str, Any]:
    """The leaf values of a parsed construct container, by leaf name."""
    out: dict[str, Any] = {}
    for key, value in container.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            out.update(_leaves(value))
        else:
            out[key] = value
    return out


def _probe(con: c.Construct, length: int, first_bit: int) -> tuple[Field, ...]:
    """Where ``con`` keeps each field: parse one set bit at a time and see which field gets which bit."""
    base = _leaves(con.parse(bytes(length)))
    bits: dict[str, list[tuple[int, int]]] = {}
    for bit in range(length * 8):
        changed = [(k, v) for k, v in _leaves(con.parse((1 << bit).to_bytes(length, "little"))).items()
                   if v != base[k]]
        if len(changed) != 1:
            raise ValueError(f"bit {bit} is in {len(changed)} fields: {changed}")
        name, value = changed[0]
        n = int.from_bytes(value, "little") if isinstance(value, bytes) else int(value)
        if not n or n & (n - 1):
            raise ValueError(f"bit {bit} sets {n:#x} in {name}: not one bit")
        bits.setdefault(name, []).append((first_bit + bit, n.bit_length() - 1))
    fields = []
    for name, pairs in bits.items():
        start = pairs[0][0]
        if any(frame_bit != start + i for i, (frame_bit, _) in enumerate(pairs)) or any(
                value_bit != i for i, (_, value_bit) in enumerate(pairs)):
            raise ValueError(f"{name} is not little-endian and contiguous: {pairs}")  # value bit i at start + i
        fields.append(Field(name, start, len(pairs)))
    return tuple(sorted(fields, key=lambda f: f.start))


@functools.cache
def fields(t: MsgType) -> tuple[Field, ...]:
    """The body fields of type ``t``, derived from the construct declaration (the layout of record)."""
    return _probe(SPEC[t], BODY_LENGTH, BODY_FROM * 8)


@functools.cache
def head() -> tuple[Field, ...]:
    """The CRC, alive counter and flag nibble, derived from the construct declaration of the frame."""
    crc = Field("crc", CRC_BYTE * 8, 8)
    return (crc, *_probe(Head, 1, HEAD_BYTE * 8))



def _flags_to_nibble(msg: Any, names: tuple[str, ...]) -> int:
    return sum(1 << i for i, name in enumerate(names) if getattr(msg, name))


def _body_fields(msg: Message) -> tuple[int, dict[str, Any]]:
    """(flags nibble, construct body dict) for one message."""
    t = msg.TYPE
    if isinstance(msg, Heartbeat):
        return _flags_to_nibble(msg, HEARTBEAT_FLAGS), {
            "idp": {"reserved": 0, "page": msg.page, "master_id": msg.master_id},
            "epoch": msg.epoch,
            "heard": msg.heard,
            "ls": {"seq": msg.seq, "limit_da": msg.limit_da},
        }
    if isinstance(msg, SetLimit):
        return 0, {"txn": msg.txn, "limit_da": msg.limit_da, "failsafe_da": msg.failsafe_da, "epoch": msg.epoch}
    if isinstance(msg, Ack):
        measured = ACK_MEASURED_UNKNOWN if msg.measured_da is None else msg.measured_da
        return 0, {"txn": msg.txn, "applied_da": msg.applied_da, "measured_da": measured, "how": int(msg.how)}
    if isinstance(msg, Nack):
        return 0, {
            "txn": msg.txn, "code": int(msg.code), "reporter": msg.reporter, "detail": msg.detail, "reserved": 0
        }
    if isinstance(msg, Release):
        return 0, {"released_da": msg.released_da, "reason": int(msg.reason), "reserved": bytes(3)}
    if isinstance(msg, Request):
        return 0, {"requested_da": msg.requested_da, "min_da": msg.min_da, "priority": msg.priority, "reserved": 0}
    if isinstance(msg, Status):
        measured = STATUS_MEASURED_UNKNOWN if msg.measured_da is None else msg.measured_da
        return _flags_to_nibble(msg, STATUS_FLAGS), {
            "bits": {
                "serial_tag": msg.serial_tag,
                "requested_da": msg.requested_da,
                "measured_da": measured,
                "offered_da": msg.offered_da,
                "pilot": int(msg.pilot),
            }
        }
    if isinstance(msg, Join):
        return msg.version, {"serial": msg.serial, "max_da": msg.max_da}
    raise FrameError("type", f"not a protocol message: {t!r}")


def _enum(enum_cls: type[enum.IntEnum], value: int, what: str) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        raise FrameError("enum", f"{what} {value} unknown") from None


def _message_from_fields(t: MsgType, address: int, flags: int, f: Any) -> Message:
    """Build a message from parsed construct fields, rejecting reserved values."""
    if t is MsgType.HEARTBEAT:
        if flags & 0b1000:
            raise FrameError("reserved", "heartbeat: reserved flag bit set")
        if f.idp.reserved:
            raise FrameError("reserved", "heartbeat: reserved bit 7 of byte 2 set")
        if f.heard & _NOT_SERVANT_BITS[f.idp.page]:
            raise FrameError("reserved", "heartbeat: heard bit set for address 0 or 63")
        return Heartbeat(
            f.idp.master_id, f.epoch, f.ls.limit_da, f.idp.page, f.heard, f.ls.seq,
            bool(flags & 1), bool(flags & 2), bool(flags & 4),
        )
    if t is MsgType.JOIN:
        return Join(address, f.serial, f.max_da, flags)
    if flags and t is not MsgType.STATUS:
        raise FrameError("reserved", f"{t.name.lower()}: reserved flag bits set")
    if t is MsgType.SET_LIMIT:
        return SetLimit(address, f.txn, f.limit_da, f.failsafe_da, f.epoch)
    if t is MsgType.ACK:
        measured = None if f.measured_da == ACK_MEASURED_UNKNOWN else f.measured_da
        return Ack(address, f.txn, f.applied_da, measured, _enum(AckHow, f.how, "ack how"))
    if t is MsgType.NACK:
        if f.reserved or f.reporter > BROADCAST_ADDRESS:
            raise FrameError("reserved", "nack: reserved bits set")
        return Nack(address, _enum(NackCode, f.code, "nack code"), f.reporter, f.txn, f.detail)
    if t is MsgType.RELEASE:
        if f.reserved != bytes(3):
            raise FrameError("reserved", "release: reserved bytes set")
        return Release(address, f.released_da, _enum(ReleaseReason, f.reason, "release reason"))
    if t is MsgType.REQUEST:
        if f.reserved:
            raise FrameError("reserved", "request: reserved byte set")
        return Request(address, f.requested_da, f.min_da, f.priority)
    assert t is MsgType.STATUS
    b = f.bits
    if b.pilot > PilotState.F:
        raise FrameError("enum", f"pilot state {b.pilot} unknown")
    measured = None if b.measured_da == STATUS_MEASURED_UNKNOWN else b.measured_da
    return Status(
        address, b.serial_tag, PilotState(b.pilot), b.offered_da, measured, b.requested_da,
        bool(flags & 1), bool(flags & 2), bool(flags & 4), bool(flags & 8),
    )


def spec_encode(msg: Message, counter: int) -> bytes:
    """Encode through the construct declaration (the layout of record)."""
    _check_uint("counter", counter, 4)
    flags, body = _body_fields(msg)
    raw_body = SPEC[msg.TYPE].build(body)
    tail: bytes = Head.build({"flags": flags, "counter": counter}) + raw_body
    return bytes((frame_crc(offset_of(msg), tail),)) + tail


def spec_decode(offset: int, data: bytes) -> tuple[Message, int]:
    """Decode through the construct declaration.  Returns (message, counter)."""
    if len(data) != FRAME_LENGTH:
        raise FrameError("length", f"wrong length: {len(data)} bytes, expected {FRAME_LENGTH}")
    t, address = split_offset(offset)
    frame = FrameSpec.parse(data)
    if frame.crc != frame_crc(offset, data[PROTECTED_FROM:]):
        raise FrameError("crc", f"bad CRC {frame.crc:#04x} for {t.name} address {address}")
    fields = SPEC[t].parse(frame.body)
    return _message_from_fields(t, address, frame.head.flags, fields), frame.head.counter


