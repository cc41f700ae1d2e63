"""Where every field sits in the 8-byte frame, by name (docs/PROTOCOL.md sections 3-5).

The layout of record is the ``construct`` declaration ``busshare.protocol.spec.SPEC``;
this module names the same positions without importing construct, for the
codec's fast path and for anything else that must point into a frame.
``busshare.frames.spec_fields`` derives the positions from ``SPEC`` by parsing,
and ``tests/protocol/test_layout.py`` proves that they equal ``FIELDS`` here.

A position is a frame bit: ``byte * 8 + bit``, bit 0 the least significant,
multi-byte fields little-endian (so a field's bits are consecutive numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

# -- the identifier offset: (type << 6) | address (section 3)
TYPE_SHIFT = 6  # the type is in bits 6-8 of the offset
ADDRESS_MASK = (1 << TYPE_SHIFT) - 1  # the address is in bits 0-5
ID_OFFSETS = 8 << TYPE_SHIFT  # 512 offsets: 8 types of 64 addresses

# -- the common bytes (section 4)
FRAME_LENGTH = 8
CRC_BYTE = 0  # CRC-8 over the data ID and the protected bytes
HEAD_BYTE = 1  # alive counter (bits 0-3) and per-type flags (bits 4-7)
PROTECTED_FROM = 1  # the CRC covers bytes 1..7
BODY_FROM = 2  # the per-type body: bytes 2..7
BODY_LENGTH = FRAME_LENGTH - BODY_FROM
FLAGS_SHIFT = 4  # the flag nibble's place in the head byte
COUNTER_MASK = (1 << FLAGS_SHIFT) - 1


@dataclass(frozen=True)
class Field:
    """One field: ``length`` bits from frame bit ``start`` (the least significant bit)."""

    name: str
    start: int
    length: int

    @property
    def byte(self) -> int:
        """The byte holding the field's least significant bit."""
        return self.start >> 3

    @property
    def mask(self) -> int:
        return (1 << self.length) - 1

    def get(self, data: bytes) -> int:
        """The field's value in an 8-byte frame (a reference, not the fast path)."""
        return int.from_bytes(data, "little") >> self.start & self.mask


CRC = Field("crc", CRC_BYTE * 8, 8)
COUNTER = Field("counter", HEAD_BYTE * 8, FLAGS_SHIFT)
FLAGS = Field("flags", HEAD_BYTE * 8 + FLAGS_SHIFT, 4)

#: the flag bits of the head byte, per type number (section 4.1); a JOIN's nibble is its version
HEARTBEAT_FLAGS = ("leaving", "learning", "second_master")  # nibble bit 3 reserved
STATUS_FLAGS = ("failsafe", "fault", "ev_stopped", "twin")


def _f(name: str, byte: int, bit: int, length: int) -> Field:
    return Field(name, byte * 8 + bit, length)


#: the body fields of each type, by type number (``MsgType`` value), in frame order (section 5)
FIELDS: dict[int, tuple[Field, ...]] = {
    0: (  # SET_LIMIT
        _f("txn", 2, 0, 8), _f("limit_da", 3, 0, 16), _f("failsafe_da", 5, 0, 16), _f("epoch", 7, 0, 8),
    ),
    1: (  # HEARTBEAT: byte 2 id and page, then a 24-bit word of limit and seq
        _f("master_id", 2, 0, 4), _f("page", 2, 4, 3), _f("reserved", 2, 7, 1), _f("epoch", 3, 0, 8),
        _f("heard", 4, 0, 8), _f("limit_da", 5, 0, 14), _f("seq", 6, 6, 10),
    ),
    2: (  # ACK
        _f("txn", 2, 0, 8), _f("applied_da", 3, 0, 16), _f("measured_da", 5, 0, 16), _f("how", 7, 0, 8),
    ),
    3: (  # NACK
        _f("txn", 2, 0, 8), _f("code", 3, 0, 8), _f("reporter", 4, 0, 8), _f("detail", 5, 0, 16),
        _f("reserved", 7, 0, 8),
    ),
    4: (  # RELEASE
        _f("released_da", 2, 0, 16), _f("reason", 4, 0, 8), _f("reserved", 5, 0, 24),
    ),
    5: (  # REQUEST
        _f("requested_da", 2, 0, 16), _f("min_da", 4, 0, 16), _f("priority", 6, 0, 8), _f("reserved", 7, 0, 8),
    ),
    6: (  # STATUS: one 48-bit word
        _f("pilot", 2, 0, 3), _f("offered_da", 2, 3, 10), _f("measured_da", 3, 5, 10),
        _f("requested_da", 4, 7, 10), _f("serial_tag", 6, 1, 15),
    ),
    7: (  # JOIN
        _f("serial", 2, 0, 32), _f("max_da", 6, 0, 16),
    ),
}


def field(type_number: int, name: str) -> Field:
    """The body field ``name`` of a type."""
    for f in FIELDS[type_number]:
        if f.name == name:
            return f
    raise KeyError(f"type {type_number} has no field {name!r}")


def id_offset(type_number: int, address: int) -> int:
    """The identifier offset (and data ID) of a (type, address) stream."""
    return (type_number << TYPE_SHIFT) | address


def split_id_offset(offset: int) -> tuple[int, int]:
    """(type number, address) of an identifier offset."""
    return offset >> TYPE_SHIFT, offset & ADDRESS_MASK
