"""The servant's Modbus register map: protocol mailboxes plus plain registers.

Holding registers (function 3; function 4 reads the same map), 0-based:

    0x0000-0x0015  plain registers: anyone can read them (mbpoll, a PLC)
    0x0040-0x0044  configuration: read any time, write only after unlocking
    0x0100-0x010A  outbox: the servant's protocol frames, read by the master
    0x0200-0x020A  inbox: protocol frames the master writes to this servant
    0x0300-0x0304  broadcast box: frames the master writes to device id 0

A mailbox *slot* is 5 registers: the frame's id offset (type << 6 | address,
0xFFFF = empty) then its 8 bytes, two per register, first byte in the high
half, so the frame's bytes appear on the wire in their own order and the
E2E check and capture decoding are the same as on CAN.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass

from ...core.config import Timing
from ...core.config import validate_timing
from ...frames import FRAME_LENGTH
from ...frames import HEARD_PAGES

MAP_VERSION = 1
SLOT_REGS = 1 + FRAME_LENGTH // 2
EMPTY = 0xFFFF
MAILBOX_SLOTS = 2

OUTBOX = 0x0100  # read: control word, then MAILBOX_SLOTS slots
INBOX = 0x0200  # write: control word, then up to MAILBOX_SLOTS slots
BROADCAST_BOX = 0x0300  # write to device id 0: one slot
OUTBOX_REGS = 1 + MAILBOX_SLOTS * SLOT_REGS
INBOX_MAX_REGS = 1 + MAILBOX_SLOTS * SLOT_REGS

CONFIG = 0x0040
UNLOCK_CODE = 0x5AA5  # written to CFG_UNLOCK: configuration writable for UNLOCK_SECONDS
UNLOCK_SECONDS = 60.0


class Plain(enum.IntEnum):
    """Plain registers (address = value).  Units in the table in docs/MODBUS.md."""

    MAP_VERSION = 0  # this layout's version (1)
    ADDRESS = 1  # Modbus device id = protocol address (1-62)
    SERIAL_HI = 2  # unit serial, high 16 bits
    SERIAL_LO = 3  # unit serial, low 16 bits
    PILOT = 4  # pilot state 0=A 1=B 2=C 3=D 4=E 5=F
    OFFERED = 5  # current the pilot offers now, 0.1 A
    MEASURED = 6  # measured current, 0.1 A (0xFFFF: no meter)
    REQUESTED = 7  # current the EV wants, 0.1 A
    GRANTED = 8  # limit last set by the master, 0.1 A
    FAILSAFE = 9  # 1 while offering the failsafe current
    ERRORS = 10  # error flags, see ErrorFlag
    MASTER_SILENT = 11  # time since the master was last heard, 0.1 s (saturates at 65535)
    FRAMES_OK = 12  # valid RTU frames heard on the line (wraps at 65536)
    BAD_FRAMES = 13  # runs of bytes that were not a valid frame (bad CRC, garbage)
    E2E_DROPS = 14  # protocol frames dropped by the E2E check
    ANSWERED = 15  # requests this servant answered
    BROADCASTS = 16  # broadcasts heard
    UPTIME = 17  # seconds since start (saturates)
    MAX = 18  # configured maximum, 0.1 A
    MIN = 19  # configured minimum, 0.1 A
    PRIORITY = 20  # configured priority
    FAILSAFE_CURRENT = 21  # configured failsafe current, 0.1 A


PLAIN_COUNT = len(Plain)


class Cfg(enum.IntEnum):
    """Configuration registers: writable only while unlocked."""

    UNLOCK = 0x0040  # write 0x5AA5 to unlock for 60 s, 0 to lock; reads 1 while unlocked
    MAX = 0x0041  # 0.1 A, 60-800
    MIN = 0x0042  # 0.1 A, 60-800, <= MAX
    PRIORITY = 0x0043  # 0-255
    FAILSAFE_CURRENT = 0x0044  # 0.1 A: 0 or 60-800


class ErrorFlag(enum.IntFlag):
    FAULT = 1  # hardware fault (pilot E/F, GFCI...)
    EV_STOPPED = 2  # the EV ignored a lowered pilot and was stopped
    TWIN = 4  # a twin: another unit answers on this address
    MASTER_SILENT = 8  # no master heard within the failsafe timeout
    CONFIG_UNLOCKED = 16  # configuration writes are enabled


# ---------------------------------------------------------------------------
# slots


def slot_regs(offset: int, data: bytes) -> list[int]:
    """One frame as 5 registers."""
    if len(data) != FRAME_LENGTH:
        raise ValueError(f"a mailbox frame is {FRAME_LENGTH} bytes, not {len(data)}")
    return [offset] + [(data[i] << 8) | data[i + 1] for i in range(0, FRAME_LENGTH, 2)]


def regs_slot(regs: Sequence[int]) -> tuple[int, bytes] | None:
    """5 registers -> (offset, 8 bytes), or None for an empty slot."""
    if len(regs) != SLOT_REGS or regs[0] == EMPTY:
        return None
    data = b"".join(r.to_bytes(2, "big") for r in regs[1:])
    return regs[0], data


def _slots(regs: Sequence[int], count: int) -> list[tuple[int, bytes]]:
    """The frames in the first ``count`` slots after a mailbox's control register (empty slots skipped)."""
    frames = []
    for i in range(count):
        s = regs_slot(regs[1 + i * SLOT_REGS:1 + (i + 1) * SLOT_REGS])
        if s is not None:
            frames.append(s)
    return frames


def empty_slot() -> list[int]:
    return [EMPTY] * SLOT_REGS


def pack_inbox(ack_seq: int, frames: Iterable[tuple[int, bytes]]) -> list[int]:
    """The master's write to a servant: control word (acked outbox batch, count) then slots."""
    fr = list(frames)
    if len(fr) > MAILBOX_SLOTS:
        raise ValueError(f"at most {MAILBOX_SLOTS} frames per write")
    regs = [((ack_seq & 0xFF) << 8) | len(fr)]
    for offset, data in fr:
        regs += slot_regs(offset, data)
    return regs


def unpack_inbox(regs: Sequence[int]) -> tuple[int, list[tuple[int, bytes]]]:
    """(acked outbox batch, frames) from an inbox write; raises ValueError when inconsistent."""
    if not regs:
        raise ValueError("empty inbox write")
    ack, count = regs[0] >> 8, regs[0] & 0xFF
    if count > MAILBOX_SLOTS or len(regs) != 1 + count * SLOT_REGS:
        raise ValueError(f"inbox control says {count} frames but {len(regs) - 1} registers follow")
    return ack, _slots(regs, count)


@dataclass(frozen=True)
class OutboxBatch:
    seq: int  # batch number 0-255, acked by the master's next write
    more: int  # frames still queued behind this batch (saturates at 15)
    frames: tuple[tuple[int, bytes], ...]


def pack_outbox(batch: OutboxBatch) -> list[int]:
    regs = [((batch.seq & 0xFF) << 8) | (min(batch.more, 15) << 4) | len(batch.frames)]
    for offset, data in batch.frames:
        regs += slot_regs(offset, data)
    while len(regs) < OUTBOX_REGS:
        regs += empty_slot()
    return regs


def unpack_outbox(regs: Sequence[int]) -> OutboxBatch:
    if len(regs) != OUTBOX_REGS:
        raise ValueError(f"outbox read of {len(regs)} registers, expected {OUTBOX_REGS}")
    seq, more, count = regs[0] >> 8, (regs[0] >> 4) & 0xF, regs[0] & 0xF
    if count > MAILBOX_SLOTS:
        raise ValueError(f"outbox control says {count} frames, at most {MAILBOX_SLOTS}")
    return OutboxBatch(seq, more, tuple(_slots(regs, count)))


# ---------------------------------------------------------------------------
# plain registers


@dataclass(frozen=True)
class PlainView:
    """The plain registers as values (what mbpoll shows, decoded)."""

    address: int
    serial: int
    pilot: int
    offered_da: int
    measured_da: int | None
    requested_da: int
    granted_da: int
    failsafe: bool
    errors: ErrorFlag
    master_silent_ds: int
    frames_ok: int
    bad_frames: int
    e2e_drops: int
    answered: int
    broadcasts: int
    uptime_s: int
    max_da: int
    min_da: int
    priority: int
    failsafe_da: int

    def registers(self) -> list[int]:
        def u16(v: int) -> int:
            return max(0, min(0xFFFF, v))

        regs = [
            MAP_VERSION, self.address, (self.serial >> 16) & 0xFFFF, self.serial & 0xFFFF, self.pilot,
            self.offered_da, EMPTY if self.measured_da is None else u16(self.measured_da), self.requested_da,
            self.granted_da, int(self.failsafe), int(self.errors), u16(self.master_silent_ds),
            self.frames_ok & 0xFFFF, self.bad_frames & 0xFFFF, self.e2e_drops & 0xFFFF, self.answered & 0xFFFF,
            self.broadcasts & 0xFFFF, u16(self.uptime_s), self.max_da, self.min_da, self.priority, self.failsafe_da,
        ]
        assert len(regs) == PLAIN_COUNT
        return regs

    @classmethod
    def from_registers(cls, regs: Sequence[int]) -> PlainView:
        if len(regs) < PLAIN_COUNT:
            raise ValueError(f"need {PLAIN_COUNT} plain registers, got {len(regs)}")
        r = list(regs)
        return cls(
            r[Plain.ADDRESS], (r[Plain.SERIAL_HI] << 16) | r[Plain.SERIAL_LO], r[Plain.PILOT], r[Plain.OFFERED],
            None if r[Plain.MEASURED] == EMPTY else r[Plain.MEASURED], r[Plain.REQUESTED], r[Plain.GRANTED],
            bool(r[Plain.FAILSAFE]), ErrorFlag(r[Plain.ERRORS]), r[Plain.MASTER_SILENT], r[Plain.FRAMES_OK],
            r[Plain.BAD_FRAMES], r[Plain.E2E_DROPS], r[Plain.ANSWERED], r[Plain.BROADCASTS], r[Plain.UPTIME],
            r[Plain.MAX], r[Plain.MIN], r[Plain.PRIORITY], r[Plain.FAILSAFE_CURRENT],
        )


# ---------------------------------------------------------------------------
# bytes on the wire and timing per baud rate

#: fixed parts of the frames of one poll (function 23 with an empty inbox) and of a heartbeat broadcast
POLL_REQUEST_BYTES = 13 + 2  # id fc rs(2) rc(2) ws(2) wc(2) bc, 1 control register, CRC counted in 13
POLL_REPLY_BYTES = 5 + 2 * OUTBOX_REGS
INBOX_FRAME_BYTES = 2 * SLOT_REGS  # each frame the master writes in a poll
BROADCAST_BYTES = 9 + 2 * SLOT_REGS  # function 16 to device id 0, one slot
FULL_SEGMENT = 32  # unit loads on one RS-485 segment: the failsafe timeout assumes a full line
DEFAULT_REPLY_TIMEOUT = 0.1  # s a servant has to start its reply (pty, USB adapters and busy hosts)


def poll_wire_time(baud: int, inbox_frames: int = 0) -> float:
    """Line time of one poll transaction: request, 3.5-char gap, reply, 3.5-char gap."""
    from .rtu import gap_time
    from .rtu import wire_time

    n = POLL_REQUEST_BYTES + inbox_frames * INBOX_FRAME_BYTES + POLL_REPLY_BYTES
    return wire_time(n, baud) + 2 * gap_time(baud)


def broadcast_wire_time(baud: int) -> float:
    from .rtu import gap_time
    from .rtu import wire_time

    return wire_time(BROADCAST_BYTES, baud) + gap_time(baud)


def heartbeat_period_for(baud: int) -> float:
    """0.2 s as on CAN while a broadcast costs under 10 % of the line; longer on slow lines."""
    return 0.2 if broadcast_wire_time(baud) <= 0.02 else 0.4


def cycle_wire_time(baud: int, servants: int) -> float:
    """The bytes-on-the-wire bound of one round-robin cycle, heartbeat broadcasts included."""
    polls = servants * poll_wire_time(baud)
    hb = heartbeat_period_for(baud)
    # broadcasts steal line time in proportion: cycle = polls + cycle * bc/hb
    return polls / (1 - broadcast_wire_time(baud) / hb)


def modbus_timing(baud: int, servants: int = 32, reply_timeout: float = DEFAULT_REPLY_TIMEOUT) -> Timing:
    """The protocol timing for a Modbus line (``config.Timing``), per baud rate.

    * heartbeat (a broadcast): every 0.2 s, or 0.4 s where a broadcast would
      take more than 10 % of the line (9600 baud);
    * failsafe timeout: the CAN 1.5 s, or more where the line needs it, rounded
      up to 0.5 s: at least five heartbeat periods plus the longest the poll
      loop can hold a heartbeat back (a transaction that times out and its
      retry), and at least three poll cycles of a full segment (32 unit loads)
      plus that stall, because a servant also fails safe when none of its
      replies has been confirmed by the master for this long (the next poll
      confirms a reply, so a healthy servant sees up to two cycles between
      confirmations).  It depends only on the baud rate, so every node of a
      line agrees on it without knowing how many servants there are;
    * what scales with the poll cycle of ``servants`` servants: the status
      period (a servant's status reaches the master once per cycle however
      often it is made), the time after which the master calls a servant
      silent (three cycles plus a stall) and the set-limit ack timeout (a
      set-limit goes out on one poll, its ack comes back on the next).
    """
    import dataclasses
    import math

    def up(x: float, step: float = 0.1) -> float:
        return round(math.ceil(x / step - 1e-9) * step, 3)

    base = Timing()
    hb = max(base.heartbeat_period, heartbeat_period_for(baud))
    stall = 2 * (poll_wire_time(baud, MAILBOX_SLOTS) + reply_timeout)
    cycle = cycle_wire_time(baud, max(1, servants))
    failsafe = max(base.failsafe_timeout, up(5 * hb + stall, 0.5), up(3 * cycle_wire_time(baud, FULL_SEGMENT) + stall, 0.5))
    timing = dataclasses.replace(
        base,
        heartbeat_period=hb,
        failsafe_timeout=failsafe,
        # two rounds of the heartbeat's heard pages at least (PROTOCOL.md 8.1)
        heard_timeout=max(base.heard_timeout, failsafe, up(2 * HEARD_PAGES * hb, 0.5)),
        status_period=max(base.status_period, up(cycle)),
        servant_silent_after=max(base.servant_silent_after, up(3 * cycle + stall)),
        ack_timeout=max(base.ack_timeout, up(2 * cycle + stall)),
    )
    validate_timing(timing)
    return timing
