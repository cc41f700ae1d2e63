"""The CAN edge: an adapter over any python-can ``BusABC``.

It only moves (id offset, 8 bytes) pairs; encoding, E2E checks and the
protocol live in the sans-IO core.  What it adds over a bare bus:

* receive filters for the protocol's 512 ids only (``IdScheme.can_filters``) in
  the kernel or the controller where the interface can, and the same check here
  for every frame (python-can's software filters would also drop error frames);
* send failures (timeouts, full queues, a downed interface) are counted and
  reported, never raised: a node must keep ticking to reach its failsafe;
* error frames are counted, and bus-off (an error frame saying so, a bus state
  of ERROR, or ENETDOWN from the driver) sets ``bus_off`` until the controller
  restarts or a good frame arrives, so a servant can count it as "no master".

No threads and no ``Notifier``: the runtime calls ``recv(timeout)`` with the
time left until its node's next deadline.  That works the same on ``virtual``
(which has no ``fileno``), socketcan, udp_multicast and vendor interfaces.
"""

from __future__ import annotations

import errno
import gc
import logging
import time
from collections import Counter
from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field

import can

from ..core.counters import Counts
from ..errors import UserError
from ..frames import FRAME_LENGTH
from ..protocol.canid import IdScheme
from ..protocol.kinds import CanKind
from .base import BusEvent
from .base import BusEventKind
from .base import RxFrame

#: Used when neither ``-i`` nor python-can's own config (CAN_INTERFACE, ~/can.conf) names an interface:
#: UDP multicast on the loopback works across processes on one machine, unlike ``virtual``.
DEFAULT_INTERFACE = "udp_multicast"
DEFAULT_SEND_TIMEOUT = 0.05  # s: a quarter of a heartbeat period

# socketcan error-frame classes (linux/can/error.h), carried in the id of an error frame
CAN_ERR_TX_TIMEOUT = 0x001
CAN_ERR_CRTL = 0x004
CAN_ERR_BUSOFF = 0x040
CAN_ERR_RESTARTED = 0x100
# data[1] of a CAN_ERR_CRTL error frame: the controller's error state (linux/can/error.h)
CRTL_STATES = ((0x01, "rx-overflow"), (0x02, "tx-overflow"), (0x04, "rx-warning"), (0x08, "tx-warning"),
               (0x10, "rx-error-passive"), (0x20, "tx-error-passive"), (0x40, "error-active-again"))

_ECHO_WINDOW = 2.0  # s: how long a sent frame is remembered to recognise its echo
_ECHO_MAX = 256
_STATE_POLL_PERIOD = 0.25  # s between reads of ``bus.state`` (a driver call on some interfaces)


@dataclass
class TransportStats(Counts):
    sent: int = 0
    received: int = 0
    foreign: int = 0  # frames outside the protocol's ids that got past the filter
    not_classic: int = 0  # remote, FD or DLC-not-8 frames with one of our ids (handed on, the runtime counts them)
    error_frames: int = 0
    echoes: int = 0  # our own frames looped back (udp_multicast), dropped
    bus_off_entries: int = 0
    send_timeouts: int = 0
    send_errors: int = 0
    recv_errors: int = 0
    send_error_kinds: Counter[str] = field(default_factory=Counter)


#: the longest a frame is taken to have waited in the receive queue (s): a timestamp further in the past (or in
#: the future) is of another clock (an interface counting from its own start), so the wait is unknown: 0
MAX_QUEUE_WAIT = 60.0


def queued_for(now_wall: float, timestamp: float) -> float:
    """How long a frame stamped ``timestamp`` by the interface (the kernel's receive time on socketcan) had waited
    when it was read at ``now_wall``; 0 when unknown.  A servant counts its failsafe from the frame's arrival, so
    a heartbeat that queued while its process stood still is no news of a master alive when it is read."""
    wait = now_wall - timestamp
    return wait if 0.0 < wait <= MAX_QUEUE_WAIT else 0.0


class CanTransport:
    """Moves protocol frames over a python-can bus; never raises on bus trouble (a ``base.Transport``)."""

    #: what a link that is down is called on CAN
    link_down_words = "bus-off"

    def __init__(
        self,
        bus: can.BusABC,
        ids: IdScheme | None = None,
        *,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        set_filters: bool = True,
        suppress_echo: bool | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.wall = wall  # the clock of python-can's timestamps (seconds since the epoch): a frame's age in the queue
        self.ids = ids or IdScheme()
        self.send_timeout = send_timeout
        self.stats = TransportStats()
        self.bus_off = False
        self.last_send_error: str | None = None
        self._events: list[BusEvent] = []
        self._next_state_poll = 0.0
        # udp_multicast loops every datagram back to its sender: a node must not hear itself
        # (a servant would take its own JOIN for a twin).  Frames we sent are remembered briefly
        # and their echo dropped.
        self.suppress_echo = type(bus).__name__ == "UdpMulticastBus" if suppress_echo is None else suppress_echo
        self._sent_recently: deque[tuple[float, int, bytes]] = deque()
        # Filters go to the kernel or the hardware where the interface can do that (socketcan,
        # kvaser, vector, ...): error frames bypass them there.  Where python-can would only filter
        # in software, its filter would also drop error frames whose class bits fall outside our
        # ids, so we leave the bus open and check ids ourselves in recv().
        self.hardware_filtering = type(bus)._apply_filters is not can.BusABC._apply_filters
        if set_filters and self.hardware_filtering:
            try:
                bus.set_filters(self.ids.can_filters())  # type: ignore[arg-type]
            except (can.CanError, NotImplementedError, OSError):
                self.hardware_filtering = False  # the check in recv() still applies

    # -- sending ------------------------------------------------------------------

    def send(self, offset: int, data: bytes) -> bool:
        """Put one frame on the bus.  False (and counted) when the bus refused it."""
        msg = can.Message(
            arbitration_id=self.ids.base + offset,
            is_extended_id=self.ids.extended,
            data=data,
            is_fd=False,
        )
        try:
            self.bus.send(msg, timeout=self.send_timeout)
        except can.CanTimeoutError as exc:
            self._send_failed("timeout", exc)
            return False
        except (can.CanError, OSError) as exc:
            code = _errno_of(exc)
            if code in (errno.ENOBUFS, errno.EAGAIN):
                self._send_failed("timeout", exc)  # tx queue full: the frame did not go out in time
            else:
                self._send_failed(errno.errorcode.get(code, "error") if code else "error", exc)
            if code == errno.ENETDOWN:
                self._set_bus_off(True, f"send: {exc}")
            return False
        self.stats.sent += 1
        if self.suppress_echo:
            now = time.monotonic()
            self._sent_recently.append((now, offset, bytes(data)))
            while self._sent_recently and (now - self._sent_recently[0][0] > _ECHO_WINDOW
                                           or len(self._sent_recently) > _ECHO_MAX):
                self._sent_recently.popleft()
        return True

    def _is_echo(self, offset: int, data: bytes) -> bool:
        for i, (_, off, sent) in enumerate(self._sent_recently):
            if off == offset and sent == data:
                del self._sent_recently[i]
                return True
        return False

    def _send_failed(self, kind: str, exc: BaseException) -> None:
        if kind == "timeout":
            self.stats.send_timeouts += 1
        else:
            self.stats.send_errors += 1
        self.stats.send_error_kinds[kind] += 1
        self.last_send_error = f"{kind}: {exc}"
        self._events.append(BusEvent(BusEventKind.SEND_FAILED, self.last_send_error))

    # -- receiving ----------------------------------------------------------------

    def recv(self, timeout: float) -> RxFrame | None:
        """The next protocol frame, or None when ``timeout`` passed (or the bus said something else).

        Bus trouble is recorded in ``stats``, ``bus_off`` and ``drain_events()``.
        """
        self._poll_state()
        try:
            msg = self.bus.recv(timeout=max(0.0, timeout))
        except (can.CanError, OSError, ValueError) as exc:
            # e.g. udp_multicast "could not unpack", socketcan ENETDOWN: count, don't spin
            self.stats.recv_errors += 1
            self._events.append(BusEvent(BusEventKind.RECV_FAILED, str(exc)))
            if _errno_of(exc) == errno.ENETDOWN:
                self._set_bus_off(True, f"recv: {exc}")
            time.sleep(min(max(timeout, 0.0), 0.01))
            return None
        if msg is None:
            return None
        if msg.is_error_frame:
            self._error_frame(msg)
            return None
        offset = self.ids.offset(msg.arbitration_id, msg.is_extended_id)
        if offset is None:
            self.stats.foreign += 1
            return None
        data = bytes(msg.data)
        if self._sent_recently and self._is_echo(offset, data):
            self.stats.echoes += 1
            return None
        self.stats.received += 1
        if msg.is_remote_frame or msg.is_fd or msg.dlc != FRAME_LENGTH:
            self.stats.not_classic += 1
        if self.bus_off:
            self._set_bus_off(False, "a frame was received")
        kind = CanKind.of(error=False, remote=msg.is_remote_frame, fd=msg.is_fd, dlc=msg.dlc, length=len(data))
        return RxFrame(offset, data, msg.timestamp, msg.arbitration_id, kind,
                       queued_for(self.wall(), msg.timestamp))

    def _error_frame(self, msg: can.Message) -> None:
        self.stats.error_frames += 1
        cls = msg.arbitration_id
        names = [n for bit, n in ((CAN_ERR_TX_TIMEOUT, "tx-timeout"), (CAN_ERR_CRTL, "controller"),
                                  (CAN_ERR_BUSOFF, "bus-off"), (CAN_ERR_RESTARTED, "restarted")) if cls & bit]
        if cls & CAN_ERR_CRTL and len(msg.data) > 1:
            # reported, not acted on: an error-passive controller still sends (its frames may simply not be
            # acknowledged); the heartbeat's heard bit tells the servant whether they reach the master
            names += [n for bit, n in CRTL_STATES if msg.data[1] & bit]
        detail = f"class {cls:#x}" + (f" ({', '.join(names)})" if names else "")
        self._events.append(BusEvent(BusEventKind.ERROR_FRAME, detail))
        if cls & CAN_ERR_BUSOFF:
            self._set_bus_off(True, "error frame: bus-off")
        elif cls & CAN_ERR_RESTARTED:
            self._set_bus_off(False, "error frame: controller restarted")

    def _poll_state(self) -> None:
        now = time.monotonic()
        if now < self._next_state_poll:
            return
        self._next_state_poll = now + _STATE_POLL_PERIOD
        try:
            state = self.bus.state
        except (NotImplementedError, can.CanError, OSError):
            return
        if state is can.BusState.ERROR:
            self._set_bus_off(True, "bus state ERROR")

    def _set_bus_off(self, off: bool, why: str) -> None:
        if off == self.bus_off:
            return
        self.bus_off = off
        if off:
            self.stats.bus_off_entries += 1
        self._events.append(BusEvent(BusEventKind.BUS_OFF if off else BusEventKind.BUS_RECOVERED, why))

    # -- the rest -------------------------------------------------------------------

    def drain_events(self) -> list[BusEvent]:
        out, self._events = self._events, []
        return out

    def shutdown(self) -> None:
        try:
            self.bus.shutdown()
        except (can.CanError, OSError):
            pass


def _errno_of(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None) or getattr(exc, "error_code", None)
    if isinstance(code, int):
        return code
    cause = exc.__cause__ or exc.__context__
    return _errno_of(cause) if cause is not None and cause is not exc else None


# -- opening a bus ----------------------------------------------------------------------


def open_bus(config: Mapping[str, object] | None = None) -> can.BusABC:
    """The bus python-can's keyword arguments name (interface, channel, bitrate, ...).

    ``udp_multicast`` when nothing names an interface; python-can's config
    (CAN_INTERFACE/CAN_CHANNEL environment, ~/can.conf) is honoured before that
    default.  Any failure is one line for the user.
    """
    config = dict(config or {})
    if "interface" not in config:
        try:
            can.util.load_config(config={k: v for k, v in config.items() if k == "channel"})
        except can.CanInterfaceNotImplementedError:
            config["interface"] = DEFAULT_INTERFACE
    message: str | None = None
    held = _HeldLog()
    can_log = logging.getLogger("can")
    can_log.addHandler(held)
    can_log.propagate = False
    try:
        try:
            bus = can.Bus(**config)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - drivers raise anything; the user gets one line
            where = f"{config.get('interface', 'configured interface')}"
            if "channel" in config:
                where += f" channel {config['channel']}"
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            message = f"cannot open CAN bus ({where}): {first}{install_hint(str(config.get('interface')), exc)}"
        # the exception is gone, and with it the half-built bus of a constructor that failed half-way: its
        # __del__ logs "UdpMulticastBus was not properly shut down" about a bus nobody ever had
        gc.collect()
    finally:
        can_log.removeHandler(held)
        can_log.propagate = True
    if message is not None:  # python-can's log lines of a failed open (a driver's missing library...) say
        raise UserError(message)  # what our one line says: they are dropped
    for record in held.records:  # an open bus keeps its driver's warnings (timestamps relative to boot...)
        logging.getLogger(record.name).handle(record)
    return bus


class _HeldLog(logging.Handler):
    """python-can's log records while a bus is being opened, held back until we know whether it opened."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


#: python-can interfaces that need an optional package, and the python-can extra that brings it
INTERFACE_EXTRAS = {
    "udp_multicast": "multicast", "serial": "serial", "slcan": "serial", "robotell": "serial",
    "seeedstudio": "seeedstudio", "neovi": "neovi", "canalystii": "canalystii", "cantact": "cantact",
    "gs_usb": "gs-usb", "nixnet": "nixnet", "pcan": "pcan", "remote": "remote", "sontheim": "sontheim",
    "canine": "canine", "zlgcan": "zlgcan", "candle": "candle", "cvector": "cvector",
}


def install_hint(interface: str, exc: BaseException) -> str:
    """``: install it with ...`` when opening a bus failed for want of a package, else ``""``."""
    chain = [exc, exc.__cause__, exc.__context__]
    missing = any(isinstance(e, ImportError) for e in chain) or "not installed" in str(exc).lower()
    if not missing or interface not in INTERFACE_EXTRAS:
        return ""
    return f" (install it with: pip install 'python-can[{INTERFACE_EXTRAS[interface]}]')"
