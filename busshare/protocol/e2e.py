"""End-to-end protection in the spirit of AUTOSAR E2E Profile 11.

Every frame carries a CRC-8 SAE J1850 in byte 0 and a 4-bit alive counter in
the low nibble of byte 1.  The CRC also covers a 2-byte *data ID* that is not
transmitted (the frame's type and address), so a frame that is misrouted or
carries the wrong address fails its check even though its bytes are intact.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field

import crcmod

from .layout import ID_OFFSETS
from .layout import TYPE_SHIFT
from .layout import id_offset

#: CRC-8 SAE J1850: poly 0x1D, init 0xFF, xor-out 0xFF, check("123456789") = 0x4B.
#: crcmod's ``initCrc`` is pre-xored with ``xorOut``, hence 0x00 here, not 0xFF.
crc8 = crcmod.mkCrcFun(0x11D, initCrc=0x00, rev=False, xorOut=0xFF)

COUNTER_MODULO = 16
DEFAULT_MAX_DELTA = 3


def data_id(msg_type: int, address: int) -> int:
    """The 9-bit data ID: the same value as the CAN ID's offset from the base."""
    return id_offset(msg_type, address)


def _data_id_prefix(did: int) -> bytes:
    return bytes((did & 0xFF, did >> 8))


# CRC state after feeding each data ID (crcmod can resume from a previous result),
# so checking a frame is a single C call over its 7 protected bytes.
_CRC_AFTER_ID: tuple[int, ...] = tuple(crc8(_data_id_prefix(d)) for d in range(ID_OFFSETS))


def frame_crc(did: int, body: bytes) -> int:
    """CRC over data ID (low byte, high byte) then bytes 1..7 of the frame."""
    crc: int = crc8(body, _CRC_AFTER_ID[did])
    return crc


class E2EStatus(enum.Enum):
    """Receiver-side classification of one frame (Profile 11 names in brackets)."""

    OK = "ok"  # [OK] counter advanced by exactly one, or first frame seen
    REPEATED = "repeated"  # [REPEATED] same counter as last time: a duplicate
    OK_SOME_LOST = "ok-some-lost"  # [OKSOMELOST] 2..max_delta: some frames lost
    WRONG_SEQUENCE = "wrong-sequence"  # [WRONGSEQUENCE] jump above max_delta
    WRONG_CRC = "wrong-crc"  # [ERROR] CRC mismatch: never acted on

    # members are singletons compared by identity: the C identity hash is correct and spares the
    # per-frame cost of Enum's Python-level __hash__ (every received frame is counted by status)
    __hash__ = object.__hash__

    @property
    def accepted(self) -> bool:
        """Whether a node may act on the frame (see PROTOCOL.md, rule 8)."""
        return self in ACCEPTED


#: the statuses a node may act on (``E2EStatus.accepted``), as a set for hot loops
ACCEPTED: frozenset[E2EStatus] = frozenset({E2EStatus.OK, E2EStatus.OK_SOME_LOST, E2EStatus.WRONG_SEQUENCE})
_REPEATED, _WRONG_SEQUENCE = E2EStatus.REPEATED, E2EStatus.WRONG_SEQUENCE


def classify(last: int | None, counter: int, max_delta: int = DEFAULT_MAX_DELTA,
             same_bytes: bool = True) -> E2EStatus:
    """The alive-counter table of PROTOCOL.md 6.3, the one place it is written.

    ``last`` is the stream's last counter (None: its first frame, or a stream
    forgotten by the link's stream rules); ``same_bytes`` whether the frame's 8
    bytes equal the last frame's (only a byte-identical repeat is a duplicate).
    """
    if last is None:
        return E2EStatus.OK
    delta = (counter - last) % COUNTER_MODULO
    if delta == 0:
        return E2EStatus.REPEATED if same_bytes else E2EStatus.WRONG_SEQUENCE
    if delta == 1:
        return E2EStatus.OK
    return E2EStatus.OK_SOME_LOST if delta <= max_delta else E2EStatus.WRONG_SEQUENCE


#: the row of a stream with no memory in ``status_table``: ``table[UNSEEN + counter]`` is its first frame
UNSEEN = COUNTER_MODULO * COUNTER_MODULO


def status_table(max_delta: int = DEFAULT_MAX_DELTA) -> tuple[E2EStatus, ...]:
    """``classify`` tabulated for hot loops: status = table[16 * last + counter] (``UNSEEN`` + counter for a
    stream with no memory), for a frame whose bytes repeat (a REPEATED entry becomes WRONG_SEQUENCE when they
    differ)."""
    rows = [*range(COUNTER_MODULO), None]
    return tuple(classify(last, counter, max_delta) for last in rows for counter in range(COUNTER_MODULO))


@dataclass
class AliveCounters:
    """Sender side: one 4-bit counter per message type (a node sends as one address)."""

    _next: dict[int, int] = field(default_factory=dict)

    def next(self, msg_type: int, address: int = 0) -> int:
        return self.next_at((msg_type << TYPE_SHIFT) | address)  # (id_offset, inline: once per frame sent)

    def next_at(self, offset: int) -> int:
        """``next`` of the stream at id offset ``offset`` (a link has it already: once per frame sent)."""
        value = self._next.get(offset, 0)
        self._next[offset] = (value + 1) % COUNTER_MODULO
        return value


#: streams are id offsets, (type << 6) | address: 512 of them
STREAMS = 512


@dataclass
class E2EChecker:
    """Receiver side: the memory of each (type, address) stream, classified by ``classify`` (as a table).

    Flat lists indexed by offset, not dicts: every frame every node receives passes here.
    """

    max_delta: int = DEFAULT_MAX_DELTA
    counts: dict[E2EStatus, int] = field(default_factory=lambda: {s: 0 for s in E2EStatus})
    table: tuple[E2EStatus, ...] = field(init=False, repr=False)
    #: per stream: 16 * its last counter, or UNSEEN; and its last 8 bytes (None: not given or not seen)
    last16: list[int] = field(init=False, repr=False)
    last_data: list[bytes | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.max_delta <= COUNTER_MODULO - 2:
            raise ValueError(f"max_delta must be 1..{COUNTER_MODULO - 2}, got {self.max_delta}")
        self.table = status_table(self.max_delta)
        self.last16 = [UNSEEN] * STREAMS
        self.last_data = [None] * STREAMS

    def check_counter(self, did: int, counter: int, data: bytes | None = None) -> E2EStatus:
        """Classify ``counter`` on stream ``did`` and remember it (whatever the status, PROTOCOL.md 6.3).

        With ``data`` given, a repeated counter is only REPEATED when the bytes
        repeat too: the same counter with other bytes is a second sender on the
        stream (twin servants on one address), which must stay visible, so it
        is classified WRONG_SEQUENCE rather than dropped as a duplicate.
        """
        last16 = self.last16  # (locals and module-level statuses: every frame every receiver gets comes here)
        status = self.table[last16[did] + counter]
        last16[did] = counter << 4
        last_data = self.last_data
        if status is _REPEATED:
            prev = last_data[did]
            if data is not None and prev is not None and data != prev:
                status = _WRONG_SEQUENCE
        last_data[did] = data
        self.counts[status] += 1
        return status

    def wrong_crc(self) -> E2EStatus:
        self.counts[E2EStatus.WRONG_CRC] += 1
        return E2EStatus.WRONG_CRC

    def forget(self, did: int) -> None:
        """Restart tracking of one stream: its next frame is a first frame (the link's stream rules)."""
        self.last16[did] = UNSEEN
        self.last_data[did] = None

    def forget_range(self, first: int, last: int) -> None:
        """``forget`` every stream from ``first`` to ``last`` inclusive, at once (e.g. all SET_LIMIT streams)."""
        n = last - first + 1
        self.last16[first:last + 1] = [UNSEEN] * n
        self.last_data[first:last + 1] = [None] * n
