"""The servant's Modbus RTU edge: a Modbus server at device id = its protocol address.

RTU framing is our own (``rtu.StreamParser``), not pymodbus's server: on a
multi-drop line every servant hears the other servants' requests and replies,
and pymodbus's RTU server finds frame ends by the 3.5-character gap, which it
cannot time reliably (pymodbus issue 2539); a USB adapter or a pty blurs that
timing further.  Here frames are found by their length rules and CRC, so a
servant follows the whole line byte for byte, answers only a valid request
with its own device id, never answers a broadcast, and resynchronises after
garbage at the next silence.

``ModbusServer`` is sans-IO (bytes in, reply bytes out); ``ModbusServantTransport``
moves it over a serial port and is a ``busshare.transport.base.Transport`` (like the
CAN transport) for ``busshare.io.runtime.Runtime``: ``recv`` yields the protocol frames the master wrote (inbox and
broadcast box), ``send`` queues the servant's frames in its outbox.
"""

from __future__ import annotations

import errno
import os
import select
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import serial

from ...core.counters import Counts
from ...errors import UserError
from ...frames import FRAME_LENGTH
from ...frames import MsgType
from ...protocol.pilot import PilotState
from ..base import BusEvent
from ..base import BusEventKind
from ..base import RxFrame
from . import registers as mm
from . import rtu

OUTBOX_LIMIT = 32  # frames; the oldest status goes first when full


@dataclass
class ServerStats(Counts):
    frames_ok: int = 0  # valid RTU frames heard (any device)
    bad_frames: int = 0  # junk runs
    answered: int = 0
    exceptions: int = 0
    broadcasts: int = 0
    for_others: int = 0
    twins: int = 0  # replies heard from another unit with our address
    sent: int = 0  # protocol frames handed to the master
    received: int = 0  # protocol frames the master wrote


@dataclass
class Snapshot:
    """What the plain registers show, filled in by whoever owns the node and the hardware."""

    pilot: int = int(PilotState.A)
    offered_da: int = 0
    measured_da: int | None = None
    requested_da: int = 0
    granted_da: int = 0
    failsafe: bool = True
    fault: bool = False
    ev_stopped: bool = False
    twin: bool = False  # a twin was heard (ERRORS bit 2)
    serial: int = 0
    max_da: int = 0
    min_da: int = 0
    priority: int = 0
    failsafe_da: int = 0
    e2e_drops: int = 0


class ModbusServer:
    """The register map of one servant, answering RTU frames.  No I/O, no clock."""

    def __init__(self, address: int, now: float, failsafe_timeout: float = 1.5) -> None:
        if not 1 <= address <= 62:
            raise ValueError(f"servant address {address} is not 1-62")
        self.address = address
        self.started = now
        self.failsafe_timeout = failsafe_timeout
        self.parser = rtu.StreamParser()
        self.stats = ServerStats()
        self.snapshot = Snapshot()
        self.outbox: deque[tuple[int, bytes]] = deque()
        self.batch = mm.OutboxBatch(seq=int.from_bytes(os.urandom(1), "big"), more=0, frames=())
        self.inbound: deque[tuple[int, bytes]] = deque()  # protocol frames for the node
        self.events: list[BusEvent] = []
        self.last_master: float | None = None  # last valid request or broadcast from the master
        # the last poll whose reply the master has confirmed (by acking its batch in the next poll):
        # a servant whose replies never get through (a twin colliding, a dead driver) knows from this
        self.link_ok = now
        self._batch_sent_at: float | None = None
        self.unlocked_until = float("-inf")
        self.config_writes: list[tuple[int, int]] = []  # (register, value) accepted while unlocked
        self._last_request: rtu.Pdu | None = None  # the latest request seen on the line (any device)
        self._junk_unreported = 0
        self._junk_example: bytes | None = None
        self._junk_next_report = float("-inf")

    # -- the outbox ---------------------------------------------------------------

    def queue(self, offset: int, data: bytes) -> None:
        """A frame for the master.  Only the newest status and request are kept: older ones are stale."""
        t = offset >> 6
        if t in (MsgType.STATUS, MsgType.REQUEST):
            for i, (o, _) in enumerate(self.outbox):
                if o == offset:
                    del self.outbox[i]
                    break
        if len(self.outbox) >= OUTBOX_LIMIT:
            self.outbox.popleft()
        self.outbox.append((offset, data))

    def _next_batch(self) -> None:
        frames = tuple(self.outbox.popleft() for _ in range(min(mm.MAILBOX_SLOTS, len(self.outbox))))
        self.batch = mm.OutboxBatch((self.batch.seq + 1) & 0xFF, len(self.outbox), frames)

    def link_lost(self, now: float) -> bool:
        """A master is on the line but none of our replies has reached it for ``failsafe_timeout``: count it
        as no master.  A silent line (no poll nor broadcast for half that) is the heartbeat rule's business:
        the servant fails safe failsafe_timeout after the last heartbeat either way, and says why."""
        if self.last_master is None or now - self.last_master > self.failsafe_timeout / 2:
            return False
        return now - self.link_ok > self.failsafe_timeout

    # -- bytes in, replies out ----------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """Bytes heard on the line -> replies to transmit (at most one per request for us)."""
        replies = []
        for frame in self.parser.feed(data):
            reply = self.handle(frame, now)
            if reply is not None:
                replies.append(reply)
        self._count_junk(now)
        return replies

    def idle(self, now: float | None = None) -> None:
        """The line fell silent for 3.5 characters: drop a partial frame."""
        self.parser.idle()
        self._count_junk(now)

    def _count_junk(self, now: float | None = None) -> None:
        for junk in self.parser.drain_junk():
            self.stats.bad_frames += 1
            self._junk_unreported += 1
            if self._junk_example is None:
                self._junk_example = junk
        if self._junk_unreported and (now is None or now >= self._junk_next_report):
            # at most one report a second: a collision storm must not become a log storm
            ex = self._junk_example or b""
            more = f" (and {self._junk_unreported - 1} more runs)" if self._junk_unreported > 1 else ""
            self.events.append(BusEvent(BusEventKind.LINE_GARBAGE,
                                        f"{len(ex)} bytes not a valid frame: {ex[:16].hex(' ')}{more}"))
            self._junk_unreported, self._junk_example = 0, None
            self._junk_next_report = (now or 0.0) + 1.0

    def handle(self, frame: bytes, now: float) -> bytes | None:
        """One CRC-valid frame heard on the line -> our reply, or None."""
        self.stats.frames_ok += 1
        if self._is_reply(frame):
            if frame[0] == self.address:  # we never hear ourselves: another unit has our address
                self.stats.twins += 1
                self.snapshot.twin = True
                self.events.append(BusEvent(BusEventKind.TWIN, f"another unit answered as device {self.address}"))
                self._twin_frames(frame)
            self._last_request = None
            return None
        try:
            pdu = rtu.parse(frame)
        except rtu.RtuError:
            return None
        if pdu.kind != "request":
            self._last_request = None
            return None
        self._last_request = pdu
        if pdu.device == rtu.BROADCAST_ID:
            self.stats.broadcasts += 1
            self._broadcast(pdu, now)
            return None  # never answer a broadcast
        if pdu.device != self.address:
            self.stats.for_others += 1
            return None
        reply = self._serve(pdu, now)
        self.stats.answered += 1
        if reply[1] & 0x80:
            self.stats.exceptions += 1
        return reply

    def _twin_frames(self, frame: bytes) -> None:
        """Hand the twin's protocol frames to the node, as CAN would: its twin rules then apply."""
        req = self._last_request
        if req is None or req.function != rtu.READ_WRITE_MULTIPLE or req.read_start != mm.OUTBOX:
            return
        try:
            batch = mm.unpack_outbox(rtu.parse(frame, "response").values)
        except (rtu.RtuError, ValueError):
            return
        self.inbound.extend(batch.frames)

    def _is_reply(self, frame: bytes) -> bool:
        """Whether ``frame`` is a valid answer to the latest request heard (from whichever unit)."""
        req = self._last_request
        if req is None or req.device == rtu.BROADCAST_ID or frame[0] != req.device or frame[1] & 0x7F != req.function:
            return False
        if frame[1] & 0x80:
            return len(frame) == 5
        if req.function in (rtu.READ_HOLDING, rtu.READ_INPUT, rtu.READ_WRITE_MULTIPLE):
            return len(frame) == 5 + 2 * req.read_count and frame[2] == 2 * req.read_count
        if req.function == rtu.WRITE_MULTIPLE:
            return len(frame) == 8
        return False  # a write-single echo looks like a retry of the request: not evidence

    def _broadcast(self, pdu: rtu.Pdu, now: float) -> None:
        if pdu.function != rtu.WRITE_MULTIPLE or pdu.write_start != mm.BROADCAST_BOX \
                or len(pdu.values) % mm.SLOT_REGS:
            return
        self.last_master = now
        for i in range(0, len(pdu.values), mm.SLOT_REGS):
            slot = mm.regs_slot(pdu.values[i:i + mm.SLOT_REGS])
            if slot is not None:
                self.inbound.append(slot)
                self.stats.received += 1

    def _serve(self, pdu: rtu.Pdu, now: float) -> bytes:
        dev, fc = self.address, pdu.function
        if fc in (rtu.READ_HOLDING, rtu.READ_INPUT):
            values = self.read(pdu.read_start, pdu.read_count, now)
            if values is None:
                return rtu.exception_response(dev, fc, rtu.ILLEGAL_ADDRESS)
            return rtu.read_response(dev, fc, values)
        if fc == rtu.READ_WRITE_MULTIPLE:
            # the mailbox transaction: write the inbox, then read the outbox
            if pdu.write_start != mm.INBOX or pdu.read_start != mm.OUTBOX or pdu.read_count != mm.OUTBOX_REGS:
                return rtu.exception_response(dev, fc, rtu.ILLEGAL_ADDRESS)
            try:
                ack, frames = mm.unpack_inbox(pdu.values)
            except ValueError:
                return rtu.exception_response(dev, fc, rtu.ILLEGAL_VALUE)
            self.last_master = now  # only the master polls the mailbox (a tool reading registers is not it)
            for f in frames:
                self.inbound.append(f)
                self.stats.received += 1
            if ack == self.batch.seq and self._batch_sent_at is not None:
                self.link_ok = max(self.link_ok, self._batch_sent_at)  # our last reply got through
                self._next_batch()
            # else the master missed our last reply: the same batch again, same seq
            self._batch_sent_at = now
            self.stats.sent += len(self.batch.frames)
            return rtu.read_response(dev, fc, mm.pack_outbox(self.batch))
        if fc in (rtu.WRITE_SINGLE, rtu.WRITE_MULTIPLE):
            code = self.write(pdu.write_start, pdu.values, now)
            if code:
                return rtu.exception_response(dev, fc, code)
            if fc == rtu.WRITE_SINGLE:
                return rtu.write_single_response(dev, pdu.write_start, pdu.values[0])
            return rtu.write_multiple_response(dev, pdu.write_start, len(pdu.values))
        return rtu.exception_response(dev, fc, rtu.ILLEGAL_FUNCTION)

    # -- registers ----------------------------------------------------------------

    def plain(self, now: float) -> mm.PlainView:
        s = self.snapshot
        silent = now - self.last_master if self.last_master is not None else now - self.started
        errors = mm.ErrorFlag(0)
        if s.fault:
            errors |= mm.ErrorFlag.FAULT
        if s.ev_stopped:
            errors |= mm.ErrorFlag.EV_STOPPED
        if s.twin:
            errors |= mm.ErrorFlag.TWIN
        if self.last_master is None or silent > self.failsafe_timeout:
            errors |= mm.ErrorFlag.MASTER_SILENT
        if now < self.unlocked_until:
            errors |= mm.ErrorFlag.CONFIG_UNLOCKED
        return mm.PlainView(
            self.address, s.serial, s.pilot, s.offered_da, s.measured_da, s.requested_da, s.granted_da,
            s.failsafe, errors, int(silent * 10), self.stats.frames_ok, self.stats.bad_frames,
            s.e2e_drops, self.stats.answered, self.stats.broadcasts, int(now - self.started),
            s.max_da, s.min_da, s.priority, s.failsafe_da,
        )

    def read(self, start: int, count: int, now: float) -> list[int] | None:
        """Registers [start, start+count) of the plain or configuration block, or None (illegal address)."""
        if count < 1 or count > 125:
            return None
        if start + count <= mm.PLAIN_COUNT:
            return self.plain(now).registers()[start:start + count]
        if mm.Cfg.UNLOCK <= start and start + count <= mm.Cfg.FAILSAFE_CURRENT + 1:
            s = self.snapshot
            cfg = [int(now < self.unlocked_until), s.max_da, s.min_da, s.priority, s.failsafe_da]
            return cfg[start - mm.Cfg.UNLOCK:start - mm.Cfg.UNLOCK + count]
        return None

    def write(self, start: int, values: tuple[int, ...], now: float) -> int:
        """Write registers; 0 on success, else a Modbus exception code."""
        if not values or not (mm.Cfg.UNLOCK <= start and start + len(values) <= mm.Cfg.FAILSAFE_CURRENT + 1):
            return rtu.ILLEGAL_ADDRESS  # plain registers and mailboxes are not written this way
        pending = dict(zip(range(start, start + len(values)), values, strict=True))
        if mm.Cfg.UNLOCK in pending:
            code = pending.pop(mm.Cfg.UNLOCK)
            if code == mm.UNLOCK_CODE:
                self.unlocked_until = now + mm.UNLOCK_SECONDS
                self.events.append(BusEvent(BusEventKind.CONFIG_UNLOCKED, f"for {mm.UNLOCK_SECONDS:.0f} s"))
            elif code == 0:
                self.unlocked_until = float("-inf")
            else:
                return rtu.ILLEGAL_VALUE
        if not pending:
            return 0
        if now >= self.unlocked_until:
            self.events.append(BusEvent(BusEventKind.CONFIG_REFUSED, "configuration write while locked"))
            return rtu.ILLEGAL_ADDRESS
        s = self.snapshot
        new = {mm.Cfg.MAX: s.max_da, mm.Cfg.MIN: s.min_da, mm.Cfg.PRIORITY: s.priority,
               mm.Cfg.FAILSAFE_CURRENT: s.failsafe_da}
        new.update({mm.Cfg(k): v for k, v in pending.items()})
        if not (60 <= new[mm.Cfg.MIN] <= new[mm.Cfg.MAX] <= 800 and new[mm.Cfg.PRIORITY] <= 255
                and (new[mm.Cfg.FAILSAFE_CURRENT] == 0 or 60 <= new[mm.Cfg.FAILSAFE_CURRENT] <= 800)):
            return rtu.ILLEGAL_VALUE
        for k, v in pending.items():
            self.config_writes.append((k, v))
        self.events.append(BusEvent(BusEventKind.CONFIG_WRITTEN, ", ".join(f"{mm.Cfg(k).name.lower()}={v}" for k, v in pending.items())))
        s.max_da, s.min_da = new[mm.Cfg.MAX], new[mm.Cfg.MIN]
        s.priority, s.failsafe_da = new[mm.Cfg.PRIORITY], new[mm.Cfg.FAILSAFE_CURRENT]
        return 0


# ---------------------------------------------------------------------------
# the serial edge


def open_serial(port: str, baud: int) -> serial.Serial:
    """The port, locked for this process (flock): a second busshare on one line is refused, not interleaved."""
    try:
        return serial.Serial(port, baud, timeout=0, write_timeout=1.0, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        code = getattr(exc, "errno", None)
        if code in (errno.EAGAIN, errno.EBUSY):
            raise UserError(f"cannot open {port}: port busy (another process has it open)") from None
        why = os.strerror(code).lower() if isinstance(code, int) else str(exc).splitlines()[0]
        raise UserError(f"cannot open {port}: {why}") from None


class ModbusServantTransport:
    """A servant on a serial port, a ``base.Transport`` like ``CanTransport``, for ``Runtime``.

    ``bus_off`` is True while a master is on the line but none of our replies
    has reached it for the failsafe timeout: the runtime then calls the
    servant's ``link_down``, so a servant the master cannot hear fails safe
    like one that cannot hear the master (the master's silent-servant rules
    assume exactly that).
    """

    def __init__(self, port: serial.Serial, address: int, baud: int, failsafe_timeout: float = 1.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.baud = baud
        self.clock = clock
        self.gap = rtu.gap_time(baud)
        self.server = ModbusServer(address, clock(), failsafe_timeout)
        self.stats = self.server.stats
        self.refresh: Callable[[Snapshot, float], None] | None = None  # fills the plain registers
        self._last_rx = 0.0
        self._lost = False
        self._hung_up = False
        self._fd = port.fileno()

    @property
    def bus_off(self) -> bool:
        lost = self.server.link_lost(self.clock())
        if lost != self._lost:
            self._lost = lost
            self.server.events.append(BusEvent(
                BusEventKind.LINK_LOST if lost else BusEventKind.LINK_BACK,
                "no reply of ours confirmed by the master: failing safe" if lost else "the master hears us again"))
        return lost

    #: What ``bus_off`` means here, in RS-485 words: the master polls and broadcasts, but confirms none of
    #: our replies (it cannot hear us: a dead driver, a twin colliding with us).  A silent line is not it.
    link_down_words = "replies unconfirmed"

    def send(self, offset: int, data: bytes) -> bool:
        if len(data) != FRAME_LENGTH:
            return False
        self.server.queue(offset, data)
        return True

    def recv(self, timeout: float) -> RxFrame | None:
        deadline = self.clock() + max(0.0, timeout)
        while True:
            if self.server.inbound:
                offset, data = self.server.inbound.popleft()
                return RxFrame(offset, data, self.clock(), offset)
            now = self.clock()
            wait = deadline - now
            if self.server.parser.buf:
                wait = min(wait, max(0.0, self._last_rx + self.gap - now))
            if wait <= 0 and not (self.server.parser.buf and now < self._last_rx + self.gap):
                if self.server.parser.buf and now >= self._last_rx + self.gap:
                    self.server.idle(self.clock())
                if now >= deadline:
                    return None
            ready, _, _ = select.select([self._fd], [], [], max(0.0, wait))
            if not ready:
                if self.server.parser.buf and self.clock() >= self._last_rx + self.gap:
                    self.server.idle(self.clock())
                if self.clock() >= deadline:
                    return None
                continue
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                data, why = b"", str(exc)
            else:
                why = "end of file: the port hung up (adapter unplugged?)"
            if not data:  # the port is gone: report once, and do not spin; the failsafe runs on ticks
                if not self._hung_up:
                    self._hung_up = True
                    self.server.events.append(BusEvent(BusEventKind.RECV_FAILED, why))
                time.sleep(min(0.05, max(0.0, deadline - self.clock())))
                if self.clock() >= deadline:
                    return None
                continue
            self._hung_up = False
            now = self.clock()
            self._last_rx = now
            if self.refresh is not None:
                self.refresh(self.server.snapshot, now)
            for reply in self.server.feed(data, now):
                # the master needs 3.5 characters of silence after its request before we talk
                pause = self._last_rx + self.gap - self.clock()
                if pause > 0:
                    time.sleep(pause)
                try:
                    self.port.write(reply)
                except (serial.SerialException, OSError) as exc:
                    self.server.events.append(BusEvent(BusEventKind.SEND_FAILED, str(exc)))

    def drain_events(self) -> list[BusEvent]:
        out, self.server.events = self.server.events, []
        return out

    def shutdown(self) -> None:
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass
