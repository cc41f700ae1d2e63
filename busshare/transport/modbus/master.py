"""The master's Modbus RTU edge: a Modbus client polling its servants round-robin.

One transaction per servant per cycle: function 23 writes the servant's inbox
(the acknowledged outbox batch and any frames for it, usually none) and reads
its outbox (its latest status and any request, ack, release or join) in one
request and one reply.  Heartbeats and broadcast NACKs go to device id 0 with
function 16 and get no reply.  Frames for a servant wait for its next poll;
a servant with frames waiting (or more frames to give) is polled next.

A transaction that fails (no reply in time, bad CRC, wrong reply) is retried
once when it carried frames; otherwise the cycle moves on.  After three
failures in a row a servant is marked silent and polled only every
``SILENT_EVERY`` cycles, so one dead unit does not slow the line; the master
core sees its statuses stop, exactly as on CAN, and applies the same rules.
Repeated garbled replies from one address while the others answer cleanly
are reported as a suspected duplicate address.

A ``busshare.transport.base.Transport``, like ``CanTransport``, for ``busshare.io.runtime.Runtime``.  The RTU client
is our own (``rtu.py``), not pymodbus's: it keeps to the bytes-on-the-wire
bound (the reply is recognised as soon as its CRC checks, no timer waits) and
shares one parser with the servant and the capture decoder.  pymodbus's client
and mbpoll are used as interop peers in the tests.
"""

from __future__ import annotations

import os
import select
import time
from collections import Counter
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field

import serial

from ...core.counters import Counts
from ...frames import BROADCAST_ADDRESS
from ...frames import FRAME_LENGTH
from ...frames import MASTER_ADDRESS
from ...frames import MsgType
from ..base import BusEvent
from ..base import BusEventKind
from ..base import RxFrame
from . import registers as mm
from . import rtu

SILENT_AFTER = 3  # failed transactions in a row
SILENT_EVERY = 5  # cycles between polls of a silent servant
SUSPECT_DUPLICATE_AFTER = 3  # garbled replies in a row


@dataclass
class MasterStats(Counts):
    polls: int = 0
    replies: int = 0
    timeouts: int = 0
    bad_replies: int = 0
    exceptions: int = 0
    retries: int = 0
    broadcasts: int = 0
    frames_in: int = 0
    frames_out: int = 0
    duplicates: int = 0  # outbox batches seen twice (our ack was lost)
    cycles: int = 0


@dataclass
class _Peer:
    address: int
    inbox: deque[tuple[int, bytes]] = field(default_factory=deque)
    acked: int = 0  # last outbox batch seq received
    seen: bool = False
    failures: int = 0
    garbled: int = 0
    silent: bool = False
    more: bool = False  # it has frames queued behind its last batch
    suspect: bool = False


@dataclass(frozen=True)
class Outcome:
    ok: bool
    why: str = ""  # timeout, bad-crc, exception N, wrong reply


class ModbusMasterTransport:
    """The Modbus client side of the line, a ``base.Transport`` like ``CanTransport``."""

    bus_off = False  # the master always reaches the line it drives
    link_down_words = "line down"

    def __init__(
        self,
        port: serial.Serial,
        baud: int,
        addresses: Iterable[int],
        *,
        reply_timeout: float = mm.DEFAULT_REPLY_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.baud = baud
        self.clock = clock
        self.reply_timeout = reply_timeout
        self.gap = rtu.gap_time(baud)
        self.peers = {a: _Peer(a) for a in sorted(set(addresses))}
        if not self.peers:
            raise ValueError("no servant addresses to poll")
        self.order = list(self.peers)
        self.stats = MasterStats()
        self.cycle_times: deque[float] = deque(maxlen=1000)
        self.bad_kinds: Counter[str] = Counter()
        self._rx: deque[RxFrame] = deque()
        self._broadcasts: deque[tuple[int, bytes]] = deque()
        self._events: list[BusEvent] = []
        self._next = 0  # index in order
        self._cycle_no = 0
        self._cycle_start: float | None = None
        self._line_free = 0.0  # earliest time we may start the next request
        self._fd = port.fileno()
        self._parser = rtu.StreamParser()

    # -- the runtime's side -------------------------------------------------------

    def send(self, offset: int, data: bytes) -> bool:
        """Queue a frame: heartbeats and frames for everyone are broadcast, the rest go to one inbox."""
        if len(data) != FRAME_LENGTH:
            return False
        t, address = offset >> 6, offset & 0x3F
        if t == MsgType.HEARTBEAT or address in (MASTER_ADDRESS, BROADCAST_ADDRESS):
            if t == MsgType.HEARTBEAT:
                # only the newest heartbeat matters; never queue two
                self._broadcasts = deque(b for b in self._broadcasts if b[0] >> 6 != MsgType.HEARTBEAT)
                self._broadcasts.appendleft((offset, data))
            else:
                self._broadcasts.append((offset, data))
            return True
        peer = self.peers.get(address)
        if peer is None:
            self._events.append(BusEvent(BusEventKind.SEND_FAILED, f"address {address} is not polled (not in the config)"))
            return False
        peer.inbox.append((offset, data))
        return True

    def recv(self, timeout: float) -> RxFrame | None:
        """Run transactions until a servant frame arrives or ``timeout`` passes (a transaction is not cut short)."""
        deadline = self.clock() + max(0.0, timeout)
        while True:
            if self._rx:
                return self._rx.popleft()
            if self._broadcasts:  # a heartbeat queued by the last tick goes before anything else
                self._broadcast(self._broadcasts.popleft())
                continue
            if self.clock() >= deadline:
                return None
            self._poll_next()

    def drain_events(self) -> list[BusEvent]:
        out, self._events = self._events, []
        return out

    def shutdown(self) -> None:
        # the leaving heartbeat the runtime queued on shutdown goes out before we close
        while self._broadcasts:
            self._broadcast(self._broadcasts.popleft())
        try:
            self.port.flush()
            self.port.close()
        except (serial.SerialException, OSError):
            pass

    # -- scheduling ------------------------------------------------------------------

    def _choose(self) -> _Peer | None:
        # frames waiting jump the queue, except for a silent servant: it gets them on its own turn,
        # or one dead unit would stall the line with timeouts
        urgent = [p for p in self.peers.values() if (p.inbox or p.more) and not p.silent]
        if urgent:
            return min(urgent, key=lambda p: (not p.inbox, p.address))
        for _ in range(len(self.order)):
            if self._next == 0:
                now = self.clock()
                if self._cycle_start is not None:
                    self.cycle_times.append(now - self._cycle_start)
                    self.stats.cycles += 1
                self._cycle_start = now
                self._cycle_no += 1
            peer = self.peers[self.order[self._next]]
            self._next = (self._next + 1) % len(self.order)
            if not peer.silent or self._cycle_no % SILENT_EVERY == 0:
                return peer
        return None

    def _poll_next(self) -> None:
        peer = self._choose()
        if peer is None:  # every servant silent and not due: let the line rest a tick
            time.sleep(min(0.05, self.reply_timeout))
            return
        frames = list(peer.inbox)[:mm.MAILBOX_SLOTS]
        out = self._poll(peer, frames)
        if not out.ok and frames and not peer.silent:
            self.stats.retries += 1
            out = self._poll(peer, frames)
        if out.ok:
            for _ in frames:
                peer.inbox.popleft()
            self.stats.frames_out += len(frames)
        self._account(peer, out)

    def _account(self, peer: _Peer, out: Outcome) -> None:
        if out.ok:
            if peer.silent:
                self._events.append(BusEvent(BusEventKind.SERVANT_BACK, f"address {peer.address} answers again"))
            peer.failures = peer.garbled = 0
            peer.silent = False
            return
        peer.more = False
        peer.failures += 1
        self.bad_kinds[out.why.split(" ")[0]] += 1
        if out.why == "bad-crc":
            peer.garbled += 1
            if peer.garbled >= SUSPECT_DUPLICATE_AFTER and not peer.suspect:
                peer.suspect = True
                self._events.append(BusEvent(
                    BusEventKind.SUSPECT_DUPLICATE,
                    f"address {peer.address}: {peer.garbled} garbled replies in a row (two units on one address, "
                    "or a wiring fault)"))
        else:
            peer.garbled = 0
        if peer.failures >= SILENT_AFTER and not peer.silent:
            peer.silent = True
            self._events.append(BusEvent(
                BusEventKind.SERVANT_SILENT, f"address {peer.address}: {peer.failures} failed polls ({out.why}); "
                f"polling it every {SILENT_EVERY} cycles"))

    # -- transactions ------------------------------------------------------------------

    def _wait_line(self) -> None:
        pause = self._line_free - self.clock()
        if pause > 0:
            time.sleep(pause)

    def _write(self, frame: bytes) -> float:
        self._wait_line()
        self._drain_input()
        try:
            self.port.write(frame)
        except (serial.SerialException, OSError) as exc:
            self._events.append(BusEvent(BusEventKind.SEND_FAILED, str(exc)))
        start = self.clock()
        end = start + rtu.wire_time(len(frame), self.baud)
        self._line_free = end + self.gap
        return end

    def _broadcast(self, item: tuple[int, bytes]) -> None:
        offset, data = item
        self._write(rtu.write_multiple_request(rtu.BROADCAST_ID, mm.BROADCAST_BOX, mm.slot_regs(offset, data)))
        self.stats.broadcasts += 1

    def _poll(self, peer: _Peer, frames: list[tuple[int, bytes]]) -> Outcome:
        request = rtu.read_write_request(peer.address, mm.OUTBOX, mm.OUTBOX_REGS, mm.INBOX,
                                         mm.pack_inbox(peer.acked, frames))
        self.stats.polls += 1
        sent_end = self._write(request)
        reply_len = 5 + 2 * mm.OUTBOX_REGS
        deadline = sent_end + self.reply_timeout + rtu.wire_time(reply_len, self.baud)
        got = self._await_reply(peer.address, rtu.READ_WRITE_MULTIPLE, deadline)
        if isinstance(got, Outcome):
            return got
        try:
            batch = mm.unpack_outbox(rtu.parse(got, "response").values)
        except (rtu.RtuError, ValueError) as exc:
            self.stats.bad_replies += 1
            return Outcome(False, f"wrong-reply {exc}")
        self.stats.replies += 1
        peer.more = batch.more > 0
        if peer.seen and batch.seq == peer.acked:
            if batch.frames:
                self.stats.duplicates += 1  # we saw this batch; our ack was lost
            return Outcome(True)
        peer.seen = True
        peer.acked = batch.seq
        now = self.clock()
        for offset, data in batch.frames:
            self.stats.frames_in += 1
            self._rx.append(RxFrame(offset, data, now, offset))
        return Outcome(True)

    def _drain_input(self) -> None:
        """Bytes left on the line (a late reply, garbage) are not the answer to what we send next."""
        while True:
            ready, _, _ = select.select([self._fd], [], [], 0)
            if not ready:
                break
            try:
                junk = os.read(self._fd, 4096)
            except OSError:
                break
            if not junk:
                break
            self.bad_kinds["stray"] += 1
        self._parser = rtu.StreamParser()

    def _await_reply(self, device: int, function: int, deadline: float) -> bytes | Outcome:
        garbled = False
        silence = max(2 * self.gap, 0.005)  # a reply is one burst: a pause this long inside one ends it
        last_rx: float | None = None
        while True:
            now = self.clock()
            if now >= deadline or (self._parser.buf and last_rx is not None and now >= last_rx + silence):
                break
            wait = deadline - now
            if self._parser.buf and last_rx is not None:
                wait = min(wait, last_rx + silence - now)
            ready, _, _ = select.select([self._fd], [], [], max(0.0, wait))
            if not ready:
                continue
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                self._events.append(BusEvent(BusEventKind.RECV_FAILED, str(exc)))
                time.sleep(max(0.0, deadline - self.clock()))  # the port is gone: the poll just times out
                break
            if not data:
                self._events.append(BusEvent(BusEventKind.RECV_FAILED, "end of file: the port hung up"))
                time.sleep(max(0.0, deadline - self.clock()))
                break
            last_rx = self.clock()
            for frame in self._parser.feed(data):
                if frame[0] != device or frame[1] & 0x7F != function:
                    continue  # not ours (a late reply from someone else): keep waiting
                self._line_free = self.clock() + self.gap
                if frame[1] & 0x80:
                    self.stats.exceptions += 1
                    return Outcome(False, f"exception {frame[2]}")
                return frame
            if self._parser.drain_junk():
                garbled = True
        self._line_free = self.clock() + self.gap
        if garbled or self._parser.buf:
            self.stats.bad_replies += 1
            return Outcome(False, "bad-crc")
        self.stats.timeouts += 1
        return Outcome(False, "timeout")
