"""End-to-end protection in the spirit of AUTOSAR E2E Profile 11.

Every frame carries a CRC-8 SAE J1850 in byte 0 and a 4-bit alive counter in
the low nibble of byte 1.  The CRC also covers a 2-byte *data ID* that is not
transmitted (the frame's type and address), so a frame that is misrouted or
carries the wrong address fails its check even though its bytes are intact.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import crcmod

from .layout import ID_OFFSETS, TYPE_SHIFT, id_offset

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
        return self in _ACCEPTED


_ACCEPTED = frozenset({E2EStatus.OK, E2EStatus.OK_SOME_LOST, E2EStatus.WRONG_SEQUENCE})


@dataclass
class AliveCounters:
    """Sender side: one 4-bit counter per message type (a node sends as one address)."""

    _next: dict[int, int] = field(default_factory=dict)

    def next(self, msg_type: int, address: int = 0) -> int:
        key = (msg_type << TYPE_SHIFT) | address  # (id_offset, inline: once per frame sent)
        value = self._next.get(key, 0)
        self._next[key] = (value + 1) % COUNTER_MODULO
        return value


@dataclass
class E2EChecker:
    """Receiver side: classifies the alive counter of each (type, address) stream."""

    max_delta: int = DEFAULT_MAX_DELTA
    _last: dict[int, tuple[int, bytes | None]] = field(default_factory=dict)
    counts: dict[E2EStatus, int] = field(default_factory=lambda: {s: 0 for s in E2EStatus})

    def __post_init__(self) -> None:
        if not 1 <= self.max_delta <= COUNTER_MODULO - 2:
            raise ValueError(f"max_delta must be 1..{COUNTER_MODULO - 2}, got {self.max_delta}")

    def check_counter(self, did: int, counter: int, data: bytes | None = None) -> E2EStatus:
        """Classify ``counter`` on stream ``did``.

        With ``data`` given, a repeated counter is only REPEATED when the bytes
        repeat too: the same counter with other bytes is a second sender on the
        stream (twin servants on one address), which must stay visible, so it
        is classified WRONG_SEQUENCE rather than dropped as a duplicate.
        """
        last = self._last.get(did)
        self._last[did] = (counter, data)
        if last is None:
            status = E2EStatus.OK
        else:
            delta = (counter - last[0]) % COUNTER_MODULO
            if delta == 0:
                same = data is None or last[1] is None or data == last[1]
                status = E2EStatus.REPEATED if same else E2EStatus.WRONG_SEQUENCE
            elif delta == 1:
                status = E2EStatus.OK
            elif delta <= self.max_delta:
                status = E2EStatus.OK_SOME_LOST
            else:
                status = E2EStatus.WRONG_SEQUENCE
        self.counts[status] += 1
        return status

    def wrong_crc(self) -> E2EStatus:
        self.counts[E2EStatus.WRONG_CRC] += 1
        return E2EStatus.WRONG_CRC

    def forget(self, did: int) -> None:
        """Restart tracking of one stream (e.g. after its sender rebooted)."""
        self._last.pop(did, None)
