"""The protocol's messages and their binary form.

Every message is one classic CAN frame of 8 bytes:

    byte 0      CRC-8 SAE J1850 over data ID + bytes 1..7   (see e2e.py)
    byte 1      bits 0-3 alive counter, bits 4-7 per-type flags
    bytes 2..7  per-type body, little-endian

The ``construct`` declarations in ``protocol/spec.py`` (``SPEC``) are the layout of record; the
``struct``-based fast path below must agree with them byte for byte (a
hypothesis test proves it).  ``protocol/layout.py`` names the same positions
without construct (``spec_fields`` derives them from ``SPEC``, and a test
proves the two equal); the fast path's formats and shifts are checked
against it when this module is imported.  Currents travel as integers in 0.1 A units
("deci-amps", suffix ``_da``).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from typing import TypeVar

from .errors import BusshareError
from .protocol import layout
from .protocol.e2e import crc8
from .protocol.e2e import frame_crc
from .protocol.layout import ADDRESS_MASK
from .protocol.layout import BODY_FROM
from .protocol.layout import COUNTER_MASK
from .protocol.layout import CRC_BYTE
from .protocol.layout import FLAGS_SHIFT
from .protocol.layout import HEAD_BYTE
from .protocol.layout import ID_OFFSETS
from .protocol.layout import PROTECTED_FROM
from .protocol.layout import TYPE_SHIFT
from .protocol.layout import Field
from .protocol.layout import id_offset
from .protocol.layout import split_id_offset
from .protocol.pilot import PilotState

# ---------------------------------------------------------------------------
# addresses, types and ranges

MASTER_ADDRESS = 0
FIRST_SERVANT = 1
LAST_SERVANT = 62
BROADCAST_ADDRESS = 63
MAX_SERVANTS = LAST_SERVANT - FIRST_SERVANT + 1
FRAME_LENGTH = layout.FRAME_LENGTH

MIN_OFFER_DA = 60  # 6.0 A: the lowest current a pilot can offer
MAX_EVSE_DA = 800  # 80.0 A: the highest current a pilot can offer
MAX_CIRCUIT_DA = (1 << 14) - 1  # 1638.3 A: width of the heartbeat limit field
STATUS_MEASURED_MAX_DA = 1022  # 102.2 A; 1023 means unknown
STATUS_MEASURED_UNKNOWN = 1023  # the sentinel: no meter
ACK_MEASURED_MAX_DA = 0xFFFE  # 6553.4 A; 0xFFFF means unknown
ACK_MEASURED_UNKNOWN = 0xFFFF  # the sentinel: no meter
PROTOCOL_VERSION = 2  # 2: the heartbeat says whom the master hears (PROTOCOL.md 5.2)


class MsgType(enum.IntEnum):
    """Frame types, in arbitration order: a lower value wins the bus."""

    SET_LIMIT = 0
    HEARTBEAT = 1
    ACK = 2
    NACK = 3
    RELEASE = 4
    REQUEST = 5
    STATUS = 6
    JOIN = 7


class AckHow(enum.IntEnum):
    """How a servant knows the applied limit has taken effect."""

    MEASURED = 0  # its meter reads at or below the new limit
    TIMED = 1  # no meter: the EV reaction allowance has elapsed
    IMMEDIATE = 2  # a raise (grant): nothing to wait for


class NackCode(enum.IntEnum):
    BAD_LIMIT = 1  # a set-limit the servant cannot apply as sent
    TWIN = 2  # two servants answer on one address (a twin, rule 6)
    SECOND_MASTER = 3  # two masters on the bus
    EV_OVERDRAW = 4  # the EV ignored a lowered pilot and was stopped
    HARDWARE_FAULT = 5  # GFCI trip, stuck contactor, pilot fault...
    NOT_READY = 6  # servant cannot take a grant yet (e.g. booting)
    UNSUPPORTED_VERSION = 7  # peer speaks another protocol version
    OLD_TXN = 8  # a set-limit older than the newest applied: not applied (detail = that newest txn)


class ReleaseReason(enum.IntEnum):
    EV_DONE = 0  # charge complete: pilot back to state B
    UNPLUGGED = 1  # state A
    FAULT = 2  # the EVSE stopped because of a fault
    SHUTDOWN = 3  # the servant is going down


class FrameError(BusshareError, ValueError):
    """Any reason a frame cannot be decoded or a message cannot be encoded.

    ``kind`` is one of: length, type, address, crc, reserved, range, enum.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------------
# messages


def _check_offer(name: str, value: int) -> None:
    if value != 0 and not MIN_OFFER_DA <= value <= MAX_EVSE_DA:
        raise FrameError("range", f"{name} {value / 10:.1f} A out of range (0 or 6.0-80.0 A)")


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise FrameError("range", f"{name} {value} out of range (0-{(1 << bits) - 1})")


def _check_enum(name: str, value: object, kind: type[enum.Enum]) -> None:
    if not isinstance(value, kind):
        raise FrameError("enum", f"{name} {value!r} unknown")


def _check_servant(address: int) -> None:
    if not FIRST_SERVANT <= address <= LAST_SERVANT:
        raise FrameError("address", f"address {address} is not a servant address ({FIRST_SERVANT}-{LAST_SERVANT})")


@dataclass(frozen=True)
class Heartbeat:
    """Master -> all, every heartbeat period.  Its silence triggers the failsafe.

    It also says which servants the master hears, one page of 8 addresses at a time: a servant that
    stops seeing its bit set cannot be heard (a mute transmitter) and fails safe (rule 4).  ``seq``
    lets a servant tell a fresh heartbeat from a late copy of an old one (PROTOCOL.md 5.2).
    """

    master_id: int  # 4 bits, configured identity of this master
    epoch: int  # u8, changes on every master boot
    limit_da: int  # circuit limit, 0.1 A, 14 bits
    page: int = 0  # 0-7: ``heard`` covers addresses 8 * page .. 8 * page + 7
    heard: int = 0  # bit i: the master hears servant 8 * page + i (the bits for addresses 0 and 63 are 0)
    seq: int = 0  # 10 bits, +1 per heartbeat, wraps 1023 -> 0
    leaving: bool = False  # graceful shutdown: fail safe now
    learning: bool = False  # just booted, not granting yet
    second_master: bool = False  # this master has heard a second master

    @property
    def TYPE(self) -> MsgType:  # (a property: see MESSAGE_TYPES)
        return MsgType.HEARTBEAT

    @property
    def address(self) -> int:  # (the master's, always)
        return MASTER_ADDRESS

    def __post_init__(self) -> None:
        if (0 <= self.master_id < 16 and 0 <= self.epoch < 256 and 0 <= self.limit_da <= MAX_CIRCUIT_DA
                and 0 <= self.page < 8 and 0 <= self.heard < 256 and 0 <= self.seq < HEARTBEAT_SEQ_MODULO
                and not self.heard & _NOT_SERVANT_BITS[self.page]):
            return  # (the checks below in one expression: a master builds five a second, and each is valid)
        _check_uint("master_id", self.master_id, 4)
        _check_uint("epoch", self.epoch, 8)
        if not 0 <= self.limit_da <= MAX_CIRCUIT_DA:
            raise FrameError("range", f"limit {self.limit_da / 10:.1f} A out of range (0-{MAX_CIRCUIT_DA / 10:.1f} A)")
        _check_uint("page", self.page, 3)
        _check_uint("heard", self.heard, 8)
        _check_uint("seq", self.seq, 10)
        if self.heard & _NOT_SERVANT_BITS[self.page]:
            raise FrameError("reserved", f"heard bit set for address {'0' if self.page == 0 else '63'}")

    def hears(self, address: int) -> bool:
        """Whether this heartbeat says the master hears ``address`` (False when another page is carried)."""
        page, mask = HEARD_BITS[address]
        return page == self.page and bool(self.heard & mask)


HEARD_PAGES = 8  # 62 servants in pages of 8 addresses
HEARD_PAGE_SIZE = 8
#: per heartbeat page, the ``heard`` bits that are not servants (address 0, the master; 63, broadcast)
_NOT_SERVANT_BITS = (1, 0, 0, 0, 0, 0, 0, 1 << 7)
HEARTBEAT_SEQ_MODULO = 1024
MAX_MASTER_ID = 15  # 4 bits in the heartbeat


def heard_page(address: int) -> int:
    """The heartbeat page that carries ``address``'s heard bit."""
    return address >> 3


def heard_bit(address: int) -> tuple[int, int]:
    """Where a heartbeat carries ``address``'s heard bit: (its page, the bit's mask in ``heard``)."""
    return heard_page(address), 1 << (address % HEARD_PAGE_SIZE)


#: ``heard_bit`` of every address, for the loops that read every heartbeat (the servant, the simulator's oracle)
HEARD_BITS: tuple[tuple[int, int], ...] = tuple(heard_bit(a) for a in range(64))


@dataclass(frozen=True)
class SetLimit:
    """Master -> servant: cut-to-X when lower than before, grant when higher."""

    address: int  # the servant addressed
    txn: int  # u8 transaction id, echoed by the ack
    limit_da: int  # new limit, 0 = pause
    failsafe_da: int  # what this servant falls to when the master goes silent
    epoch: int  # u8, the sending master's boot epoch

    @property
    def TYPE(self) -> MsgType:  # (a property: see MESSAGE_TYPES)
        return MsgType.SET_LIMIT

    def __post_init__(self) -> None:
        _check_servant(self.address)
        _check_uint("txn", self.txn, 8)
        _check_offer("limit", self.limit_da)
        _check_offer("failsafe", self.failsafe_da)
        _check_uint("epoch", self.epoch, 8)


@dataclass(frozen=True)
class Ack:
    """Servant -> master: the set-limit ``txn`` has taken effect at ``applied_da``."""

    address: int
    txn: int
    applied_da: int
    measured_da: int | None  # None: no meter
    how: AckHow

    @property
    def TYPE(self) -> MsgType:  # (a property: see MESSAGE_TYPES)
        return MsgType.ACK

    def __post_init__(self) -> None:
        _check_servant(self.address)
        _check_uint("txn", self.txn, 8)
        _check_offer("applied", self.applied_da)
        if self.measured_da is not None and not 0 <= self.measured_da <= ACK_MEASURED_MAX_DA:
            raise FrameError("range", f"measured {self.measured_da} out of range")
        _check_enum("ack how", self.how, AckHow)


@dataclass(frozen=True)
class Nack:
    """Error report, from either side; ``address`` is the node it concerns."""

    address: int  # 0 master, 1-62 servant, 63 everyone
    code: NackCode
    reporter: int  # address of the sender
    txn: int = 0  # the set-limit refused, if any
    detail: int = 0  # u16, code-specific (e.g. the current involved, 0.1 A)

    @property
    def TYPE(self) -> MsgType:  # (a property: see MESSAGE_TYPES)
        return MsgType.NACK

    def __post_init__(self) -> None:
        _check_uint("address", self.address, 6)
        _check_uint("reporter", self.reporter, 6)
        _check_uint("txn", self.txn, 8)
        _check_uint("detail", self.detail, 16)
        _check_enum("nack code", self.code, NackCode)


@dataclass(frozen=True)
class Release:
    """Servant -> master: I now offer 0 A; my share goes back to the pool."""

    address: int
    released_da: int  # the limit given back
    reason: ReleaseReason

    @property
    def TYPE(self) -> MsgType:  # (a property: see MESSAGE_TYPES)
        return MsgType.RELEASE

    def __post_init__(self) -> None:
        _check_servant(self.address)
        _check_offer("released", self.released_da)
        _check_enum("release reason", self.reason, ReleaseReason)


@dataclass(frozen=True)
class Request:
    """Servant -> master: my EV wants ``requested_da`` (and cannot use less than ``min_da``)."""

    address: int
    requested_da: int
    min_da: int
    priority: int  # u8, higher is served first under shortage

    @property
    def TYPE(self) -> MsgType:  # (a property: see MESSAGE_TYPES)
        return MsgType.REQUEST

    def __post_init__(self) -> None:
        _check_servant(self.address)
        _check_offer("requested", self.requested_da)
        if not MIN_OFFER_DA <= self.min_da <= MAX_EVSE_DA:
            raise FrameError("range", f"min {self.min_da / 10:.1f} A out of range (6.0-80.0 A)")
        _check_uint("priority", self.priority, 8)


@dataclass(frozen=True)
class Status:
    """Servant -> master, every status period (and on a pilot change): the servant's heartbeat."""

    address: int
    serial_tag: int  # low 15 bits of the unique serial
    pilot: PilotState
    offered_da: int  # what the pilot offers the car now
    measured_da: int | None  # None: no meter; saturates at 102.2 A
    requested_da: int
    failsafe: bool = False  # pilot is at the failsafe current
    fault: bool = False
    ev_stopped: bool = False  # EV overdrew and was stopped
    twin: bool = False  # heard a twin: another servant on this address

    @property
    def TYPE(self) -> MsgType:  # (a property: see MESSAGE_TYPES)
        return MsgType.STATUS

    def __post_init__(self) -> None:
        _check_servant(self.address)
        _check_uint("serial_tag", self.serial_tag, 15)
        _check_enum("pilot state", self.pilot, PilotState)
        _check_offer("offered", self.offered_da)
        if self.measured_da is not None and not 0 <= self.measured_da <= STATUS_MEASURED_MAX_DA:
            raise FrameError("range", f"measured {self.measured_da} out of range (0-1022)")
        _check_offer("requested", self.requested_da)


@dataclass(frozen=True)
class Join:
    """Servant -> master at boot and on a twin: claims an address with a unique serial."""

    address: int
    serial: int  # u32, unique per unit
    max_da: int  # the unit's hardware maximum
    version: int = PROTOCOL_VERSION  # 4 bits

    @property
    def TYPE(self) -> MsgType:  # (a property: see MESSAGE_TYPES)
        return MsgType.JOIN

    def __post_init__(self) -> None:
        _check_servant(self.address)
        _check_uint("serial", self.serial, 32)
        if not MIN_OFFER_DA <= self.max_da <= MAX_EVSE_DA:
            raise FrameError("range", f"max {self.max_da / 10:.1f} A out of range (6.0-80.0 A)")
        _check_uint("version", self.version, 4)


Message = Heartbeat | SetLimit | Ack | Nack | Release | Request | Status | Join
#: each message class by its type.  A message's ``TYPE`` (and a heartbeat's ``address``) is a property, not a
#: ClassVar with a value: mypyc, which compiles this module for the chaos sweep (tools/mypyc_build.py), takes
#: such a ClassVar of a dataclass for a field
MESSAGE_TYPES: dict[MsgType, type] = {
    MsgType.HEARTBEAT: Heartbeat, MsgType.SET_LIMIT: SetLimit, MsgType.ACK: Ack, MsgType.NACK: Nack,
    MsgType.RELEASE: Release, MsgType.REQUEST: Request, MsgType.STATUS: Status, MsgType.JOIN: Join,
}
_NATIVE = "__dict__" not in vars(Heartbeat)  # compiled by mypyc: its instances keep their fields in slots


def serial_tag(serial: int) -> int:
    return serial & 0x7FFF


# ---------------------------------------------------------------------------
# the layout of record: the construct declaration, in protocol/spec.py (imported on first use: the codec
# below does not need construct, only its errors and the tests do)


def spec_encode(msg: Message, counter: int) -> bytes:
    """Encode through the construct declaration (the layout of record)."""
    from .protocol import spec

    return spec.spec_encode(msg, counter)


def spec_decode(offset: int, data: bytes) -> tuple[Message, int]:
    """Decode through the construct declaration.  Returns (message, counter)."""
    from .protocol import spec

    return spec.spec_decode(offset, data)


def spec_fields(t: MsgType) -> tuple[Field, ...]:
    """The body fields of type ``t``, derived from the construct declaration (the layout of record)."""
    from .protocol import spec

    return spec.fields(t)


def spec_head() -> tuple[Field, ...]:
    """The CRC, alive counter and flag nibble, derived from the construct declaration of the frame."""
    from .protocol import spec

    return spec.head()


_STATUS_UNKNOWN = STATUS_MEASURED_UNKNOWN
_ACK_UNKNOWN = ACK_MEASURED_UNKNOWN


def _check_address(t: MsgType, address: int) -> None:
    if t is MsgType.HEARTBEAT:
        if address != MASTER_ADDRESS:
            raise FrameError("address", f"heartbeat must come from address 0, not {address}")
    elif t is not MsgType.NACK:
        _check_servant(address)


def split_offset(offset: int) -> tuple[MsgType, int]:
    """ID offset (0..511) -> (type, address), as laid out in canid.py."""
    if not 0 <= offset < ID_OFFSETS:
        raise FrameError("type", f"id offset {offset:#x} outside the protocol's {ID_OFFSETS} ids")
    type_number, address = split_id_offset(offset)
    t = MsgType(type_number)
    _check_address(t, address)
    return t, address


def offset_of(msg: Message) -> int:
    # (layout.id_offset, inline: once per frame sent; an IntEnum shifts to a plain int, no int() call needed)
    return (msg.TYPE << TYPE_SHIFT) | msg.address


# ---------------------------------------------------------------------------
# the fast path: struct, no construct, no __init__


_new = object.__new__
_set = object.__setattr__
_M = TypeVar("_M")


def _built(cls: type[_M], fields: dict[str, object]) -> _M:
    """A decoded message, built without ``__init__`` (the decoder checked its fields): its ``__dict__`` set
    whole.  In the chaos sweep's mypyc build (tools/mypyc_build.py) a message has no ``__dict__``: each
    field is set instead."""
    if _NATIVE:
        obj = cls.__new__(cls)
        for name, value in fields.items():
            _set(obj, name, value)
        return obj
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    return obj
# CRC after the data ID alone, per offset: the frame CRC resumes from it (one C call per frame).
_CRC_AFTER_ID = tuple(frame_crc(d, b"") for d in range(ID_OFFSETS))
# Unpack the whole frame, skipping the CRC byte; every field is a small int (no 48-bit word).
_SETLIMIT = struct.Struct("<xBBHHB")  # head txn limit failsafe epoch
_ACK = struct.Struct("<xBBHHB")  # head txn applied measured how
_NACK = struct.Struct("<xBBBBHB")  # head txn code reporter detail reserved
_RELEASE = struct.Struct("<xBHB3s")  # head released reason reserved
_REQUEST = struct.Struct("<xBHHBB")  # head requested min priority reserved
_JOIN = struct.Struct("<xBIH")  # head serial max
_HB = struct.Struct("<xBBBBHB")  # head (id | page << 4) epoch heard, then the 24-bit word as low16 high8
_STATUS = struct.Struct("<xBHHH")  # head, then the 48-bit word as bits 0-15, 16-31, 32-47
# The same layouts for bytes 1..7, for encoding.
_T_SETLIMIT = struct.Struct("<BBHHB")
_T_ACK = struct.Struct("<BBHHB")
_T_RELEASE = struct.Struct("<BHB3s")
_T_REQUEST = struct.Struct("<BHHBB")
_T_JOIN = struct.Struct("<BIH")
_T_HB = struct.Struct("<BBBBHB")
_T_STATUS = struct.Struct("<BHHH")
_ACK_HOWS = tuple(AckHow)
_NACK_CODES = (None, *NackCode)  # indexed by code 1..8
_REASONS = tuple(ReleaseReason)
_PILOTS = tuple(PilotState)
_FLAGS = tuple((bool(f & 1), bool(f & 2), bool(f & 4), bool(f & 8)) for f in range(16))
# The fast path spells the offer range as literals (a global lookup per check costs).
assert (MIN_OFFER_DA, MAX_EVSE_DA, _STATUS_UNKNOWN, _ACK_UNKNOWN) == (60, 800, 1023, 0xFFFF)
assert [int(v) for v in _ACK_HOWS] == [0, 1, 2] and [int(v) for v in _REASONS] == [0, 1, 2, 3]
assert [int(v) for v in NackCode] == list(range(1, 9)) and [int(v) for v in _PILOTS] == list(range(6))
# the offset of each type's address 0
_ID_SET_LIMIT, _ID_HEARTBEAT, _ID_ACK, _ID_NACK, _ID_RELEASE, _ID_REQUEST, _ID_STATUS, _ID_JOIN = (
    id_offset(int(t), 0) for t in MsgType)


def _struct_fields(fmt: struct.Struct, names: tuple[str, ...]) -> tuple[Field, ...]:
    """The fields a frame format unpacks (``x`` the CRC byte, then the head byte), as frame positions."""
    codes = re.findall(r"(\d*[a-zA-Z])", fmt.format.lstrip("<"))
    out, at = [], 0
    for code, name in zip(codes, ("crc", "head", *names), strict=True):
        size = struct.calcsize("<" + code)
        if name not in ("crc", "head"):
            out.append(Field(name, at * 8, size * 8))
        at += size
    return tuple(out)


def _check_fast_path() -> None:
    """The fast path's formats and shifts are the layout's (protocol/layout.py, bound to SPEC by a test)."""
    fields = layout.FIELDS
    for t, fmt in ((MsgType.SET_LIMIT, _SETLIMIT), (MsgType.ACK, _ACK), (MsgType.NACK, _NACK),
                   (MsgType.RELEASE, _RELEASE), (MsgType.REQUEST, _REQUEST), (MsgType.JOIN, _JOIN)):
        assert _struct_fields(fmt, tuple(f.name for f in fields[t])) == fields[t], t
    for dec, enc in ((_SETLIMIT, _T_SETLIMIT), (_ACK, _T_ACK), (_RELEASE, _T_RELEASE), (_REQUEST, _T_REQUEST),
                     (_JOIN, _T_JOIN), (_HB, _T_HB), (_STATUS, _T_STATUS)):
        assert dec.format == "<x" + enc.format.lstrip("<"), enc.format  # encoding packs what decoding unpacks
    # STATUS and HEARTBEAT are bit-packed: the shifts spelt in their decoders and encode(), as (start, length)
    status = {"pilot": (16, 3), "offered_da": (19, 10), "measured_da": (29, 10), "requested_da": (39, 10),
              "serial_tag": (49, 15)}
    heartbeat = {"master_id": (16, 4), "page": (20, 3), "reserved": (23, 1), "epoch": (24, 8), "heard": (32, 8),
                 "limit_da": (40, 14), "seq": (54, 10)}
    for t, spelt in ((MsgType.STATUS, status), (MsgType.HEARTBEAT, heartbeat)):
        assert {f.name: (f.start, f.length) for f in fields[t]} == spelt, t
    assert (CRC_BYTE, HEAD_BYTE, PROTECTED_FROM, BODY_FROM, FLAGS_SHIFT) == (0, 1, 1, 2, 4)


_check_fast_path()


def _slow(offset: int, data: bytes) -> tuple[Message, int]:
    """Anything unusual goes through the spec path, so errors are worded alike."""
    return spec_decode(offset, data)


# One decoder per type, picked by type number from ``_DECODERS``: each unpacks a frame whose length,
# offset and CRC ``decode`` has checked, repeats the dataclass's checks inline and fills the instance
# without ``__init__``; it returns None for anything it does not take, which ``decode`` then hands to
# the spec path.  (The type numbers are MsgType's; the literal shifts and masks are bound to the layout
# by ``_check_fast_path``.)
_Decoded = tuple[Message, int] | None


def _decode_set_limit(address: int, data: bytes) -> _Decoded:
    head, txn, limit, failsafe, epoch = _SETLIMIT.unpack(data)
    if (head > COUNTER_MASK or not 0 < address < 63 or (limit and not 60 <= limit <= 800)
            or (failsafe and not 60 <= failsafe <= 800)):
        return None
    obj = _built(SetLimit, {"address": address, "txn": txn, "limit_da": limit, "failsafe_da": failsafe, "epoch": epoch})
    return obj, head


def _decode_heartbeat(address: int, data: bytes) -> _Decoded:
    head, idp, epoch, heard, low, high = _HB.unpack(data)
    page = (idp >> 4) & 7
    if address or head & 0x80 or idp & 0x80 or heard & _NOT_SERVANT_BITS[page]:
        return None
    f = _FLAGS[head >> FLAGS_SHIFT]
    obj = _built(Heartbeat, {
        "master_id": idp & 15, "epoch": epoch, "limit_da": low & 0x3FFF, "page": page, "heard": heard,
        "seq": (low >> 14) | (high << 2), "leaving": f[0], "learning": f[1], "second_master": f[2],
    })
    return obj, head & COUNTER_MASK


def _decode_ack(address: int, data: bytes) -> _Decoded:
    head, txn, applied, measured, how = _ACK.unpack(data)
    if head > COUNTER_MASK or not 0 < address < 63 or (applied and not 60 <= applied <= 800) or how > 2:
        return None
    obj = _built(Ack, {
        "address": address, "txn": txn, "applied_da": applied,
        "measured_da": None if measured == 0xFFFF else measured, "how": _ACK_HOWS[how],
    })
    return obj, head


def _decode_nack(address: int, data: bytes) -> _Decoded:
    """The only type that may concern address 0 or 63."""
    head, txn, code, reporter, detail, reserved = _NACK.unpack(data)
    if head > COUNTER_MASK or reserved or reporter > 63 or not 0 < code < 9:
        return None
    obj = _built(Nack, {
        "address": address, "code": _NACK_CODES[code], "reporter": reporter, "txn": txn, "detail": detail
    })
    return obj, head


def _decode_release(address: int, data: bytes) -> _Decoded:
    head, released, reason, reserved = _RELEASE.unpack(data)
    if (head > COUNTER_MASK or not 0 < address < 63 or reserved != b"\0\0\0" or reason > 3
            or (released and not 60 <= released <= 800)):
        return None
    obj = _built(Release, {"address": address, "released_da": released, "reason": _REASONS[reason]})
    return obj, head


def _decode_request(address: int, data: bytes) -> _Decoded:
    head, requested, min_da, priority, reserved = _REQUEST.unpack(data)
    if (head > COUNTER_MASK or not 0 < address < 63 or reserved or (requested and not 60 <= requested <= 800)
            or not 60 <= min_da <= 800):
        return None
    obj = _built(Request, {"address": address, "requested_da": requested, "min_da": min_da, "priority": priority})
    return obj, head


def _decode_status(address: int, data: bytes) -> _Decoded:
    """The commonest frame: the 48-bit word as three 16-bit pieces."""
    head, low, mid, high = _STATUS.unpack(data)
    pilot = low & 7
    offered = (low >> 3) & 0x3FF
    requested = (mid >> 7) | ((high & 1) << 9)
    if (
        not 0 < address < 63 or pilot > 5 or (offered and not 60 <= offered <= 800)
        or (requested and not 60 <= requested <= 800)
    ):
        return None
    measured = (low >> 13) | ((mid & 0x7F) << 3)
    f = _FLAGS[head >> FLAGS_SHIFT]
    obj = _built(Status, {
        "address": address, "serial_tag": high >> 1, "pilot": _PILOTS[pilot], "offered_da": offered,
        "measured_da": None if measured == 1023 else measured, "requested_da": requested,
        "failsafe": f[0], "fault": f[1], "ev_stopped": f[2], "twin": f[3],
    })
    return obj, head & COUNTER_MASK


def _decode_join(address: int, data: bytes) -> _Decoded:
    """The flag nibble is the protocol version."""
    head, serial, max_da = _JOIN.unpack(data)
    if not 0 < address < 63 or not 60 <= max_da <= 800:
        return None
    obj = _built(Join, {"address": address, "serial": serial, "max_da": max_da, "version": head >> FLAGS_SHIFT})
    return obj, head & COUNTER_MASK


#: the fast decoder of each type, indexed by type number
_DECODERS = (_decode_set_limit, _decode_heartbeat, _decode_ack, _decode_nack, _decode_release, _decode_request,
             _decode_status, _decode_join)
assert [int(t) for t in MsgType] == list(range(len(_DECODERS)))


def decode(offset: int, data: bytes) -> tuple[Message, int]:
    """Decode 8 bytes received at ``offset`` (type << 6 | address).

    Returns (message, alive counter).  Raises FrameError, and nothing else,
    for any input that is not a valid frame.  Valid frames are decoded by
    their type's fast decoder (``struct``, no ``__init__``); anything else
    goes through ``spec_decode`` (``_slow``).
    """
    if len(data) != FRAME_LENGTH or not 0 <= offset < ID_OFFSETS:
        return _slow(offset, data)
    if data[CRC_BYTE] != crc8(data[PROTECTED_FROM:], _CRC_AFTER_ID[offset]):
        return _slow(offset, data)
    hit = _DECODERS[offset >> TYPE_SHIFT](offset & ADDRESS_MASK, data)
    return _slow(offset, data) if hit is None else hit


def encode(msg: Message, counter: int) -> bytes:
    """Encode a message with the given alive counter into its 8 bytes."""
    if not 0 <= counter <= 15:
        raise FrameError("range", f"counter {counter} out of range (0-15)")
    if isinstance(msg, Status):
        measured = _STATUS_UNKNOWN if msg.measured_da is None else msg.measured_da
        requested = msg.requested_da
        # the 48-bit word as three 16-bit pieces: see the bit table in docs/PROTOCOL.md
        low = msg.pilot | (msg.offered_da << 3) | ((measured & 7) << 13)
        mid = ((measured >> 3) | (requested << 7)) & 0xFFFF
        flags = msg.failsafe | (msg.fault << 1) | (msg.ev_stopped << 2) | (msg.twin << 3)
        tail = _T_STATUS.pack((flags << 4) | counter, low, mid, (requested >> 9) | (msg.serial_tag << 1))
        offset = _ID_STATUS | msg.address
    elif isinstance(msg, Heartbeat):
        flags = msg.leaving | (msg.learning << 1) | (msg.second_master << 2)
        w = msg.limit_da | (msg.seq << 14)
        tail = _T_HB.pack((flags << 4) | counter, msg.master_id | (msg.page << 4), msg.epoch, msg.heard, w & 0xFFFF,
                          w >> 16)
        offset = _ID_HEARTBEAT
    elif isinstance(msg, SetLimit):
        tail = _T_SETLIMIT.pack(counter, msg.txn, msg.limit_da, msg.failsafe_da, msg.epoch)
        offset = _ID_SET_LIMIT | msg.address
    elif isinstance(msg, Ack):
        measured = _ACK_UNKNOWN if msg.measured_da is None else msg.measured_da
        tail = _T_ACK.pack(counter, msg.txn, msg.applied_da, measured, msg.how)
        offset = _ID_ACK | msg.address
    elif isinstance(msg, Request):
        tail = _T_REQUEST.pack(counter, msg.requested_da, msg.min_da, msg.priority, 0)
        offset = _ID_REQUEST | msg.address
    elif isinstance(msg, Release):
        tail = _T_RELEASE.pack(counter, msg.released_da, msg.reason, b"")
        offset = _ID_RELEASE | msg.address
    elif isinstance(msg, Join):
        tail = _T_JOIN.pack((msg.version << 4) | counter, msg.serial, msg.max_da)
        offset = _ID_JOIN | msg.address
    else:
        return spec_encode(msg, counter)
    return bytes((crc8(tail, _CRC_AFTER_ID[offset]),)) + tail


# ---------------------------------------------------------------------------
# memoised decoding for captures and monitors: frames repeat a lot on a real bus


class CachedDecoder:
    """``decode`` with a bounded memo: messages are immutable, so sharing them is safe."""

    def __init__(self, max_entries: int = 1 << 16) -> None:
        self._memo: dict[tuple[int, bytes], tuple[Message, int] | FrameError] = {}
        self._max = max_entries

    def __call__(self, offset: int, data: bytes) -> tuple[Message, int]:
        if type(data) is not bytes:  # python-can's Message.data is an (unhashable) bytearray
            data = bytes(data)
        key = (offset, data)
        hit = self._memo.get(key)
        if hit is None:
            try:
                hit = decode(offset, data)
            except FrameError as exc:
                hit = exc
            if len(self._memo) >= self._max:
                self._memo.clear()
            self._memo[key] = hit
        if isinstance(hit, FrameError):
            raise hit.with_traceback(None)  # re-raising one instance would grow its traceback every time
        return hit
