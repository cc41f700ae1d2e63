"""Polls a mains meter over Modbus TCP or Modbus RTU (pymodbus) and hands on readings or typed failures.

``MeterClient.poll_once()`` is one poll: every read block of the meter's map, each with the
request timeout, then ``MeterDecoder`` (sans-IO) turns the registers into a ``MeterReading`` or a
``MeterFailure``.  It never raises: a refused connection, a timeout, a Modbus exception or a
broken reply are failures like frozen or impossible values, and the budget policy treats them
alike (no good reading for ``timeout_s``: fall back).

``start()`` runs the polls every ``poll_s`` in a thread of their own: a blocking read waiting
for its timeout must never hold up the node's loop (``busshare.io.runtime`` is one thread that
must tick every 50 ms).  Events go to ``sink`` (called in the poll thread) or, without one, to
a queue the owner empties with ``drain()`` in its own loop.

Each event is stamped with the injected clock when its poll *started*: the values are at
least that fresh, so a reading's age is never underestimated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

from pymodbus.client import ModbusSerialClient
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.exceptions import ModbusIOException

from ..core.meter_maps import FailureKind
from ..core.meter_maps import Function
from ..core.meter_maps import MeterDecoder
from ..core.meter_maps import MeterEvent
from ..core.meter_maps import MeterFailure
from ..core.meter_maps import MeterReading
from ..core.meter_maps import words_of
from ..core.source_settings import MeterSettings
from ..core.source_settings import SerialLine
from .sink import EventSink

# pymodbus logs every timeout and refused connection itself; here each one is a typed event instead.
# A NullHandler keeps those records off stderr unless the application configures logging.
logging.getLogger("pymodbus").addHandler(logging.NullHandler())

Sink = Callable[[MeterEvent], None]
ModbusClient = ModbusTcpClient | ModbusSerialClient


@dataclass
class MeterStats:
    polls: int = 0
    readings: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"polls": self.polls, "readings": self.readings, "failures": dict(self.failures)}


def _client(settings: MeterSettings) -> ModbusClient:
    link = settings.link
    if isinstance(link, SerialLine):
        return ModbusSerialClient(link.port, baudrate=link.baud, bytesize=8, parity=link.parity.value,
                                  stopbits=link.stopbits, timeout=settings.request_timeout_s, retries=0)
    return ModbusTcpClient(link.host, port=link.port, timeout=settings.request_timeout_s, retries=0)


class MeterClient:
    """One meter, polled.  Thread-safe to ``drain()`` while the poll thread runs."""

    def __init__(self, settings: MeterSettings, *, clock: Callable[[], float] = time.monotonic,
                 sink: Sink | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.decoder = MeterDecoder(settings.meter_map, settings.frozen_s)
        self.blocks = settings.meter_map.blocks()
        self.stats = MeterStats()
        self._events: EventSink[MeterEvent] = EventSink(sink)
        self._client: ModbusClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one poll -----------------------------------------------------------------

    def poll_once(self) -> MeterEvent:
        """Read the meter once.  Never raises."""
        t = self.clock()
        try:
            event = self._poll(t)
        except ModbusIOException as exc:
            kind = FailureKind.TIMEOUT if "No response" in str(exc) else FailureKind.READ_ERROR
            event = MeterFailure(t, kind, _one_line(exc))
        except (ModbusException, OSError, ValueError) as exc:  # refused, reset, a broken reply, a serial error
            event = MeterFailure(t, FailureKind.READ_ERROR, _one_line(exc))
        except Exception as exc:  # noqa: BLE001 - the I/O edge: whatever a library raises is a failed read
            event = MeterFailure(t, FailureKind.READ_ERROR, f"{type(exc).__name__}: {_one_line(exc)}")
        if isinstance(event, MeterFailure) and event.kind in (FailureKind.READ_ERROR, FailureKind.TIMEOUT):
            self._disconnect()  # a late reply must never be taken for the next poll's: start afresh
        self.stats.polls += 1
        if isinstance(event, MeterReading):
            self.stats.readings += 1
        else:
            self.stats.failures[event.kind.value] = self.stats.failures.get(event.kind.value, 0) + 1
        return event

    def _poll(self, t: float) -> MeterEvent:
        if self._client is None:
            self._client = _client(self.settings)
        client = self._client
        if not client.connected and not client.connect():
            return MeterFailure(t, FailureKind.READ_ERROR, f"cannot connect to {self.settings.link}")
        replies: list[list[int]] = []
        for block in self.blocks:
            read = client.read_input_registers if block.function is Function.INPUT else client.read_holding_registers
            reply = read(block.address, count=block.count, device_id=self.settings.device_id)
            if reply.isError():
                code = getattr(reply, "exception_code", None)
                return MeterFailure(t, FailureKind.READ_ERROR,
                                    f"Modbus exception {code} reading {block.count} registers at {block.address:#06x}")
            if len(reply.registers) != block.count:
                return MeterFailure(t, FailureKind.READ_ERROR, f"{len(reply.registers)} registers in the reply, "
                                                               f"{block.count} asked at {block.address:#06x}")
            replies.append(list(reply.registers))
        return self.decoder.decode(words_of(self.blocks, replies), t)

    def _disconnect(self) -> None:
        if self._client is not None:
            try:
                self._client.close()  # type: ignore[no-untyped-call]  # pymodbus leaves it untyped
            except Exception:  # noqa: BLE001 - closing a broken link may fail in any way; it is gone either way
                pass
            self._client = None

    # -- the poll thread ----------------------------------------------------------

    def start(self) -> MeterClient:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="meter", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling; waits for a read in progress (at most the request timeout per block)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._disconnect()

    def drain(self) -> list[MeterEvent]:
        """Events since the last drain (when no sink was given)."""
        return self._events.drain()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self._events.emit(self.poll_once())
            due += self.settings.poll_s
            now = time.monotonic()
            if due < now:
                due = now  # a slow poll is not made up for with a burst
            self._stop.wait(due - now)

    def __enter__(self) -> MeterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
