"""Binds a sans-IO node to a transport (CAN or Modbus), its hardware and the monotonic clock.

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
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from types import FrameType
from typing import Any

from ..core.driver import overslept
from ..core.driver import settle
from ..core.events import Event
from ..core.hardware import EvseHardware
from ..core.node import MasterNode
from ..core.node import ServantNode
from ..frames import MASTER_ADDRESS
from ..frames import Heartbeat
from ..frames import Message
from ..protocol.e2e import E2EStatus
from ..protocol.kinds import CanKind
from ..protocol.link import Link
from ..report.records import RecordKind
from ..transport.base import RxFrame
from ..transport.base import Transport
from .budget_feed import BudgetFeed
from .servant_state import StateFile
from .servant_state import StateFileError

Record = dict[str, Any]
MIN_WAIT = 0.001  # s


@dataclass
class RuntimeStats:
    """What the node's loop counted; ``rejected_kinds`` names every frame not acted on by its kind, in the words
    of ``protocol.kinds`` (``remote``, ``fd``, ``dlc``: not a protocol frame; ``length``, ``crc``...: failed a check)."""

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
    """Drives one node.  ``on_record`` receives dicts: events, pilot changes and status.

    The runtime is the node's ``core.driver.Host``: after every call into the node,
    ``settle`` applies the offer to the hardware, sends through the transport,
    drains the node's events (printed at the end of the step, after the bus's)
    and sets when the loop wakes next.
    """

    def __init__(
        self,
        node: MasterNode | ServantNode,
        transport: Transport,
        *,
        hardware: EvseHardware | None = None,
        link: Link | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_record: Callable[[Record], None] | None = None,
        status_interval: float | None = None,
        tick_period: float = 0.05,
        feed: BudgetFeed | None = None,
        state: StateFile | None = None,
    ) -> None:
        self.node = node
        self.feed = feed  # a master's live budget sources: serviced here, started by run(), stopped by shutdown()
        self.state = state  # a servant's memory across restarts (PROTOCOL.md 8.4), kept after every call
        self._state_failed = False  # (reported once per run of failures)
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
        self.started: float | None = None
        self._recorded: list[Event] = []  # drained by settle(), printed at the end of the step
        self.node = node

    @property
    def node(self) -> MasterNode | ServantNode:
        return self._node

    @node.setter
    def node(self, node: MasterNode | ServantNode) -> None:
        """The node driven (a test may swap it): a servant also drives the hardware."""
        self._node = node
        self._servant: ServantNode | None = None
        self._master: MasterNode | None = None
        if isinstance(node, ServantNode):
            self._servant = node
        else:
            self._master = node
        self._deadline = node.next_deadline()

    # -- one step -----------------------------------------------------------------

    def pump(self, now: float, max_frames: int = 256) -> None:
        """Everything due at ``now`` without blocking: received frames, tick, hardware, status."""
        if self.started is None:
            self.started = now
        self._arrivals(self._queued(max_frames), now)

    def _queued(self, max_frames: int) -> Iterator[RxFrame]:
        """The frames waiting in the transport (up to ``max_frames``), taken one by one without blocking."""
        for _ in range(max_frames):
            frame = self.transport.recv(0.0)
            if frame is None:
                return
            yield frame

    def _arrivals(self, frames: Iterable[RxFrame], now: float) -> None:
        """Frames that arrived by ``now`` (``pump``: the queue's, ``run``: the one it waited for), then service.
        One rule for both loops: a servant whose loop stood still past its deadline serves it first
        (core.driver.overslept), before the frames that queued meanwhile are taken."""
        if self._overslept(now):
            self.service(now)
        for frame in frames:
            self._frame(frame, now)
        self.service(now)

    def _overslept(self, now: float) -> bool:
        """A servant's loop that stood still past its node's deadline (core.driver.overslept): it ticks first."""
        return self._servant is not None and overslept(self._deadline, now, self.tick_period)

    def service(self, now: float) -> None:
        """Tick if due, read and drive the hardware, report bus trouble and status."""
        for ev in self.transport.drain_events():
            self._emit(now, ev.kind, None, ev.detail)
        servant = self._servant
        if self.transport.bus_off and servant is not None:
            self._step(servant.link_down(now), now)
            if not self._link_was_down:
                self._emit(now, "link-down", None, f"{self._link_down_words()}: counting as no master")
            self._link_was_down = True
        else:
            self._link_was_down = False
        if self._last_tick is None or now >= self._deadline or now - self._last_tick >= self.tick_period:
            self._last_tick = now
            if self.hardware is not None and servant is not None:
                pilot, measured = self.hardware.read(now)
                self._step(servant.observe(pilot, measured, now), now)
            self._step(self.node.tick(now), now)
        news = []
        if self.feed is not None:  # the sources' threads only queued: the master is fed here, on the loop thread
            self._step(self.feed.service(now), now)
            news = self.feed.drain_events()
        self._events(now)
        for fe in news:  # the link's own news, as the loop took them: after what the master made of the inputs
            self._emit(now, fe.kind.value, None, fe.detail)
        if self.status_interval:
            if self._next_status is None:
                self._next_status = now + self.status_interval
            elif now >= self._next_status:
                self._next_status = now + self.status_interval
                self.on_record(self.status(now))

    def _frame(self, frame: RxFrame, now: float) -> None:
        self.stats.frames_in += 1
        offset, data, can_id = frame.offset, frame.data, frame.can_id
        if frame.kind is not CanKind.DATA:
            # a remote, FD or DLC-not-8 frame is no protocol frame (PROTOCOL.md 4.3), whatever its bytes: it never reaches the
            # link, so it neither acts on the node nor moves the stream's alive-counter state
            self._reject(offset, data, can_id, frame.kind.value, frame.kind.reason, now)
            return
        got = self.link.receive(offset, data, now)  # the stream rules of PROTOCOL.md 6.3 live in the link
        if got.message is None:
            why = got.error.kind if got.error is not None else (got.status or E2EStatus.WRONG_CRC).value
            self._reject(offset, data, can_id, why, None if got.error is None else str(got.error), now)
            return
        self.stats.accepted += 1
        msg = got.message
        if isinstance(msg, Heartbeat):
            self.last_heartbeat = now
        # a frame that waited in the queue (the loop stood still): a servant's rule-4 clocks count from its arrival
        self._step(self.node.receive(msg, now, now - frame.waited if frame.waited > 0.0 else None), now)

    def _reject(self, offset: int, data: bytes, can_id: int, why: str, words: str | None, now: float) -> None:
        """A frame not acted on: counted by kind and reported as a ``frame-rejected`` event."""
        self.stats.rejected += 1
        self.stats.rejected_kinds[why] = self.stats.rejected_kinds.get(why, 0) + 1
        detail = f"id {can_id:#05x} [{data.hex(' ')}] {why}" + (f": {words}" if words is not None else "")
        self._emit(now, "frame-rejected", offset & 0x3F, detail)

    def _step(self, msgs: list[Message], now: float) -> None:
        """After a state-machine call: the pilot first, then the frames (an ack follows the real change)."""
        settle(self.node, self, msgs, now)

    # -- the node's host (core.driver.Host) ----------------------------------------

    def apply(self, now: float) -> None:
        self._apply(now)

    def send(self, msgs: list[Message], now: float) -> None:
        self._send(msgs, now)

    def record(self, events: Sequence[Event], now: float) -> None:
        self._recorded += events

    def schedule(self, deadline: float, now: float) -> None:
        self._deadline = deadline

    def _send(self, msgs: list[Message], now: float) -> None:
        for msg in msgs:
            offset, data = self.link.encode(msg)
            if self.transport.send(offset, data):
                self.stats.sent += 1
            else:
                self.stats.send_failed += 1

    def _apply(self, now: float) -> None:
        servant = self._servant
        if servant is None:
            return
        if self.state is not None:  # first: nothing is sent (an ACK) for a txn the file does not hold yet
            self._keep_memory(servant, now)
        if self.hardware is None:
            return
        offer = servant.offer_da
        stopped = servant.ev_stopped
        self.hardware.apply(offer, stopped, now)
        failsafe = servant.in_failsafe
        if (offer, stopped, failsafe) != self._applied:
            self._applied = (offer, stopped, failsafe)
            rec = self._record(now, "offer", None, f"{offer / 10:.1f} A" + (" EV stopped" if stopped else "")
                               + (" (failsafe)" if failsafe else ""))
            rec.update(offer_a=offer / 10, ev_stopped=stopped, failsafe=failsafe, last_heartbeat=self.last_heartbeat,
                       last_heard=servant.heard_at)
            self.on_record(rec)

    def _keep_memory(self, servant: ServantNode, now: float) -> None:
        assert self.state is not None
        try:
            self.state.keep(servant.memory(now))
        except StateFileError as exc:
            if not self._state_failed:
                self._state_failed = True
                self._emit(now, "state-unwritable", None, f"{exc}; a restart of this process would forget its txn "
                           "and heartbeat orders (PROTOCOL.md 8.4)")
        else:
            self._state_failed = False

    def _events(self, now: float) -> None:
        events, self._recorded = [*self._recorded, *self.node.drain_events()], []
        for ev in events:
            rec = self._record(ev.t, ev.kind, ev.address, ev.detail)
            rec["last_heartbeat"] = self.last_heartbeat
            self.on_record(rec)

    def _record(self, t: float, kind: str, address: int | None, detail: str) -> Record:
        if address is None and self._servant is not None:
            address = self._servant.address  # a servant's records carry its address
        return event_record(t, kind, address, detail)

    def _emit(self, t: float, kind: str, address: int | None, detail: str) -> None:
        self.on_record(self._record(t, kind, address, detail))

    def _link_down_words(self) -> str:
        """The transport's name for a link that is down: bus-off on CAN, RS-485 words on Modbus."""
        return self.transport.link_down_words

    # -- status -------------------------------------------------------------------

    def status(self, now: float) -> Record:
        servant, master = self._servant, self._master
        rec: Record = {"record": RecordKind.STATUS.value, "t": round(now, 6),
                       "address": MASTER_ADDRESS if servant is None else servant.address}  # the node reporting
        if servant is not None:
            rec["offer_a"] = servant.offer_da / 10
            rec["failsafe"] = servant.in_failsafe
            rec["ev_stopped"] = servant.ev_stopped
        if master is not None:
            rec["committed_a"] = master.committed_da(now) / 10
            rec["limit_a"] = master.config.limit_da / 10
            if self.feed is not None:
                budget = self.feed.status()
                rec["limit_a"] = budget["limit_a"]
                rec["budget"] = budget
            rec["servants"] = {str(v.address): {"state": v.state, "committed_a": v.committed_da / 10}
                               for v in master.servants(now)}
        rec["last_heartbeat"] = self.last_heartbeat
        rec["heartbeat_age"] = None if self.last_heartbeat is None else round(now - self.last_heartbeat, 3)
        heard = None if servant is None else servant.heard_at
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
            if self.feed is not None:
                self.feed.start()
            start = self.clock()
            self.started = start
            self.service(start)
            while not self._stop.is_set():
                now = self.clock()
                if duration is not None and now - start >= duration:
                    break
                wake = min(self._deadline, (self._last_tick or now) + self.tick_period)
                if self._next_status is not None:
                    wake = min(wake, self._next_status)
                # at least 1 ms: a node whose deadline stays in the past must not spin a core
                frame = self.transport.recv(min(max(wake - now, MIN_WAIT), self.tick_period))
                now = self.clock()
                if frame is None:
                    self.service(now)
                else:
                    self._arrivals((frame,), now)
        finally:
            self.shutdown(self.clock())
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def shutdown(self, now: float) -> None:
        """Graceful exit: a master announces it is leaving; a servant's pilot goes off; the budget's sources stop."""
        self._send(self.node.shutdown(now), now)  # first: the servants must not wait for a meter read to end
        if self.feed is not None:
            self.feed.stop()
        self._events(now)
        if self.hardware is not None and self._servant is not None:
            self.hardware.apply(0, False, now)
            rec = self._record(now, "offer", None, "0.0 A (shutdown)")
            rec.update(offer_a=0.0, ev_stopped=False, failsafe=False, last_heartbeat=self.last_heartbeat)
            self.on_record(rec)
        self.on_record(self.stopped(now))
        self.transport.shutdown()

    def stopped(self, now: float) -> Record:
        """The run's last record: the transport's counters, then the frames the node did not act on, by kind
        (the words of its ``frame-rejected`` events), so a reader of the last line sees both."""
        parts = [f"{k} {v}" for k, v in self.transport.stats.as_dict().items() if v]
        kinds = self.stats.rejected_kinds
        if kinds:
            parts.append(f"rejected {self.stats.rejected} (" + ", ".join(f"{k} {n}" for k, n in kinds.items()) + ")")
        rec = self._record(now, "stopped", None, "; ".join(parts) or "no traffic")
        rec["rejected"] = self.stats.rejected
        if kinds:
            rec["rejected_kinds"] = dict(kinds)
        return rec
