"""Binds a sans-IO node to a CAN transport, its hardware and the monotonic clock.

One thread, no ``Notifier``: the loop waits in ``transport.recv`` for at most
the time left until the node's next deadline (and never longer than its tick
period), then feeds what arrived, ticks, reads the hardware and applies the
offer.  That behaves the same on every python-can interface, including
``virtual`` (no ``fileno``), and keeps an idle servant near 0 % CPU.

``pump(now)`` is the same step without blocking, so tests can drive a
runtime with a virtual clock.  ``run()`` adds SIGINT/SIGTERM handling: the
loop stops, a master sends its leaving heartbeat, a servant turns its pilot
off, and the bus is shut down.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from ..core.hardware import EvseHardware
from ..frames import FIRST_SERVANT, LAST_SERVANT, MASTER_ADDRESS, Heartbeat, Join, Message, MsgType
from ..protocol.e2e import E2EStatus
from ..protocol.link import Link
from ..report.records import RecordKind
from ..transport.can import CanTransport

Record = dict[str, Any]
MIN_WAIT = 0.001  # s
STREAM_MEMORY = 1.0  # s: alive-counter history of a stream silent this long is forgotten
_SET_LIMIT_STREAMS = [(int(MsgType.SET_LIMIT) << 6) | a for a in range(FIRST_SERVANT, LAST_SERVANT + 1)]
_SERVANT_TYPES = (MsgType.ACK, MsgType.RELEASE, MsgType.REQUEST, MsgType.STATUS)


class Node(Protocol):
    def receive(self, msg: Message, now: float) -> list[Message]: ...
    def tick(self, now: float) -> list[Message]: ...
    def next_deadline(self) -> float: ...
    def drain_events(self) -> list[Any]: ...


@dataclass
class RuntimeStats:
    frames_in: int = 0
    accepted: int = 0
    rejected: int = 0
    sent: int = 0
    send_failed: int = 0
    rejected_kinds: dict[str, int] = field(default_factory=dict)


def event_record(t: float, kind: str, address: int | None, detail: str) -> Record:
    """An ``event`` record (docs/JSON.md), in the node's own clock (the printer maps it to the chosen base)."""
    return {"record": RecordKind.EVENT.value, "t": round(t, 6), "event": kind, "address": address, "detail": detail}


class Runtime:
    """Drives one node.  ``on_record`` receives dicts: events, pilot changes and status."""

    def __init__(
        self,
        node: Node,
        transport: CanTransport,
        *,
        hardware: EvseHardware | None = None,
        link: Link | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_record: Callable[[Record], None] | None = None,
        status_interval: float | None = None,
        tick_period: float = 0.05,
    ) -> None:
        self.node = node
        self.transport = transport
        self.hardware = hardware
        self.link = link or Link()
        self.clock = clock
        self.on_record = on_record or (lambda rec: None)
        self.status_interval = status_interval
        self.tick_period = tick_period
        self.stats = RuntimeStats()
        self.last_heartbeat: float | None = None  # when this node last accepted a master heartbeat
        self._stop = threading.Event()
        self._last_tick: float | None = None
        self._next_status: float | None = None
        self._applied: tuple[int, bool, bool] | None = None
        self._link_was_down = False
        self._master_seen: tuple[int, int] | None = None
        self._stream_seen: dict[int, float] = {}  # offset -> when a frame of that stream last arrived
        self.started: float | None = None

    # -- one step -----------------------------------------------------------------

    def pump(self, now: float, max_frames: int = 256) -> None:
        """Everything due at ``now`` without blocking: received frames, tick, hardware, status."""
        if self.started is None:
            self.started = now
        for _ in range(max_frames):
            frame = self.transport.recv(0.0)
            if frame is None:
                break
            self._frame(frame.offset, frame.data, frame.can_id, now)
        self.service(now)

    def service(self, now: float) -> None:
        """Tick if due, read and drive the hardware, report bus trouble and status."""
        for ev in self.transport.drain_events():
            self._emit(now, ev.kind, None, ev.detail)
        if self.transport.bus_off and hasattr(self.node, "link_down"):
            self._step(self.node.link_down(now), now)
            if not self._link_was_down:
                self._emit(now, "link-down", None, f"{self._link_down_words()}: counting as no master")
            self._link_was_down = True
        else:
            self._link_was_down = False
        due = self.node.next_deadline()
        if self._last_tick is None or now >= due or now - self._last_tick >= self.tick_period:
            self._last_tick = now
            if self.hardware is not None and hasattr(self.node, "observe"):
                pilot, measured = self.hardware.read(now)
                self._step(self.node.observe(pilot, measured, now), now)
            self._step(self.node.tick(now), now)
        self._events(now)
        if self.status_interval:
            if self._next_status is None:
                self._next_status = now + self.status_interval
            elif now >= self._next_status:
                self._next_status = now + self.status_interval
                self.on_record(self.status(now))

    def _frame(self, offset: int, data: bytes, can_id: int, now: float) -> None:
        self.stats.frames_in += 1
        last = self._stream_seen.get(offset)
        if last is not None and now - last > STREAM_MEMORY:
            # A duplicate arrives within milliseconds; after a silence this long the sender may have
            # rebooted with its alive counters at 0 again, and its first frames (JOIN, REQUEST, a new
            # master's set-limit) must not be dropped as repeats of its previous life's.
            self.link.checker.forget(offset)
        self._stream_seen[offset] = now
        got = self.link.receive(offset, data)
        if got.message is None:
            self.stats.rejected += 1
            why = got.error.kind if got.error is not None else (got.status or E2EStatus.WRONG_CRC).value
            self.stats.rejected_kinds[why] = self.stats.rejected_kinds.get(why, 0) + 1
            detail = f"id {can_id:#05x} [{data.hex(' ')}] {why}"
            if got.error is not None:
                detail += f": {got.error}"
            self._emit(now, "frame-rejected", offset & 0x3F, detail)
            return
        self.stats.accepted += 1
        msg = got.message
        if isinstance(msg, Heartbeat):
            self.last_heartbeat = now
            if (msg.master_id, msg.epoch) != self._master_seen:
                if self._master_seen is not None:
                    self._forget(_SET_LIMIT_STREAMS)  # a new master counts its set-limits from 0 again
                self._master_seen = (msg.master_id, msg.epoch)
        elif isinstance(msg, Join):
            # a (re)booted servant starts its alive counters afresh: its first REQUEST must not
            # be dropped as a repeat of the last one its previous life sent
            self._forget([(int(t) << 6) | msg.address for t in _SERVANT_TYPES])
        self._step(self.node.receive(msg, now), now)

    def _forget(self, streams: list[int]) -> None:
        for did in streams:
            self.link.checker.forget(did)

    def _step(self, msgs: list[Message], now: float) -> None:
        """After a state-machine call: the pilot first, then the frames (an ack follows the real change)."""
        self._apply(now)
        self._send(msgs, now)

    def _send(self, msgs: list[Message], now: float) -> None:
        for msg in msgs:
            offset, data = self.link.encode(msg)
            if self.transport.send(offset, data):
                self.stats.sent += 1
            else:
                self.stats.send_failed += 1

    def _apply(self, now: float) -> None:
        if self.hardware is None or not hasattr(self.node, "offer_da"):
            return
        offer = int(self.node.offer_da)
        stopped = bool(getattr(self.node, "ev_stopped", False))
        self.hardware.apply(offer, stopped, now)
        failsafe = bool(getattr(self.node, "in_failsafe", False))
        if (offer, stopped, failsafe) != self._applied:
            self._applied = (offer, stopped, failsafe)
            rec = self._record(now, "offer", None, f"{offer / 10:.1f} A" + (" EV stopped" if stopped else "")
                               + (" (failsafe)" if failsafe else ""))
            rec.update(offer_a=offer / 10, ev_stopped=stopped, failsafe=failsafe, last_heartbeat=self.last_heartbeat,
                       last_heard=getattr(self.node, "heard_at", None))
            self.on_record(rec)

    def _events(self, now: float) -> None:
        for ev in self.node.drain_events():
            rec = self._record(getattr(ev, "t", now), str(getattr(ev, "kind", ev)), getattr(ev, "address", None),
                               str(getattr(ev, "detail", "")))
            rec["last_heartbeat"] = self.last_heartbeat
            self.on_record(rec)

    def _record(self, t: float, kind: str, address: int | None, detail: str) -> Record:
        if address is None:
            address = getattr(self.node, "address", None)  # a servant's records carry its address
        return event_record(t, kind, address, detail)

    def _emit(self, t: float, kind: str, address: int | None, detail: str) -> None:
        self.on_record(self._record(t, kind, address, detail))

    def _link_down_words(self) -> str:
        """The transport's name for a link that is down: bus-off on CAN, RS-485 words on Modbus."""
        return str(getattr(self.transport, "link_down_words", "bus-off"))

    # -- status -------------------------------------------------------------------

    def status(self, now: float) -> Record:
        node = self.node
        rec: Record = {"record": RecordKind.STATUS.value, "t": round(now, 6),
                       "address": getattr(node, "address", MASTER_ADDRESS)}  # the node reporting
        if hasattr(node, "offer_da"):
            rec["offer_a"] = node.offer_da / 10
            rec["failsafe"] = bool(getattr(node, "in_failsafe", False))
            rec["ev_stopped"] = bool(getattr(node, "ev_stopped", False))
        if hasattr(node, "committed_da"):
            rec["committed_a"] = node.committed_da(now) / 10
            limit = getattr(getattr(node, "config", None), "limit_da", None)
            if limit is not None:
                rec["limit_a"] = limit / 10
        if hasattr(node, "servants") and callable(node.servants):
            rec["servants"] = {str(v.address): {"state": v.state, "committed_a": v.committed_da / 10}
                               for v in node.servants(now)}
        rec["last_heartbeat"] = self.last_heartbeat
        rec["heartbeat_age"] = None if self.last_heartbeat is None else round(now - self.last_heartbeat, 3)
        heard = getattr(node, "heard_at", None)
        if heard is not None:  # a servant: how long since the master last said it hears us (PROTOCOL.md 5.2)
            rec["heard_age"] = round(now - heard, 3)
        rec.update(frames_in=self.stats.frames_in, rejected=self.stats.rejected, sent=self.stats.sent,
                   send_failed=self.stats.send_failed, bus_off=self.transport.bus_off)
        if rec["bus_off"]:
            rec["link_down"] = self._link_down_words()
        if self.stats.rejected_kinds:
            rec["rejected_kinds"] = dict(self.stats.rejected_kinds)
        return rec

    # -- the real loop ------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self, duration: float | None = None, handle_signals: bool = True) -> None:
        """Run until SIGINT/SIGTERM, ``stop()`` or ``duration`` seconds; then shut down gracefully."""
        previous: dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            start = self.clock()
            self.started = start
            self.service(start)
            while not self._stop.is_set():
                now = self.clock()
                if duration is not None and now - start >= duration:
                    break
                wake = min(self.node.next_deadline(), (self._last_tick or now) + self.tick_period)
                if self._next_status is not None:
                    wake = min(wake, self._next_status)
                # at least 1 ms: a node whose deadline stays in the past must not spin a core
                frame = self.transport.recv(min(max(wake - now, MIN_WAIT), self.tick_period))
                now = self.clock()
                if frame is not None:
                    self._frame(frame.offset, frame.data, frame.can_id, now)
                self.service(now)
        finally:
            self.shutdown(self.clock())
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def shutdown(self, now: float) -> None:
        """Graceful exit: a master announces it is leaving; a servant's pilot goes off."""
        if hasattr(self.node, "shutdown"):
            self._send(self.node.shutdown(now), now)
            self._events(now)
        if self.hardware is not None and hasattr(self.node, "offer_da"):
            self.hardware.apply(0, False, now)
            rec = self._record(now, "offer", None, "0.0 A (shutdown)")
            rec.update(offer_a=0.0, ev_stopped=False, failsafe=False, last_heartbeat=self.last_heartbeat)
            self.on_record(rec)
        self._emit(now, "stopped", None, "; ".join(f"{k} {v}" for k, v in self.transport.stats.as_dict().items() if v))
        self.transport.shutdown()
