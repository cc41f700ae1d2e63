"""A multi-drop RS-485 line emulated with pseudo-terminals, for tests, benchmarks and demos.

Each of N ports is a pty whose path a program opens like a USB-RS485 adapter
(pyserial, mbpoll, socat...).  Every byte written on one port reaches every
other port (never the writer: a half-duplex transceiver does not hear itself),
paced at the baud rate: a burst of k bytes written at t occupies the line
until t + k * 11 / baud and is delivered when its last byte is through, so
character times, 3.5-character gaps and poll cycles are what a real line gives.

Faults: two ports whose bursts overlap in time collide (the overlapping bytes
are garbled for everyone, as two drivers fighting would do), bursts can be
corrupted (one bit flipped) or lost (never reach the line) at random or on
demand, and the line can be captured as timestamped hex lines::

    0.104719 00 10 03 00 00 05 0a 12 41 ...   # from 0
    0.124337 03 17 16 00 01 ...               # from 3 collision

    python -m busshare.cli.rs485 --ports 5 --baud 19200 --capture line.txt
"""

from __future__ import annotations

import errno
import os
import random
import select
import threading
import time
import tty
from dataclasses import dataclass
from dataclasses import field
from typing import TextIO

from ..core.counters import Counts
from ..transport.modbus.rtu import char_time


@dataclass
class _Burst:
    src: int
    start: float
    end: float  # when its last byte is through
    data: bytearray
    flags: set[str] = field(default_factory=set)


@dataclass
class LineStats(Counts):
    bursts: int = 0
    bytes: int = 0
    collisions: int = 0
    corrupted: int = 0
    dropped: int = 0
    overflows: int = 0  # bytes a port with no reader could not take


class Rs485Bus:
    """The line: ``ports`` ptys joined as one half-duplex multi-drop bus at ``baud``."""

    def __init__(
        self,
        ports: int,
        baud: int = 19200,
        capture: TextIO | None = None,
        corrupt_rate: float = 0.0,
        drop_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if not 2 <= ports <= 250:
            raise ValueError(f"ports must be 2-250, got {ports}")
        if baud <= 0:
            raise ValueError(f"baud must be positive, got {baud}")
        self.baud = baud
        self.char = char_time(baud)
        self.capture = capture
        self.corrupt_rate = corrupt_rate
        self.drop_rate = drop_rate
        self.rng = random.Random(seed)
        self.stats = LineStats()
        self._lock = threading.Lock()
        self._masters: list[int] = []
        self.paths: list[str] = []
        for _ in range(ports):
            m, s = os.openpty()
            tty.setraw(s)  # no echo, no line discipline: bytes pass as they are
            os.set_blocking(m, False)
            self._masters.append(m)
            self.paths.append(os.ttyname(s))
            # not kept open: a port nobody has open must drop what the line carries (as a closed
            # tty does), or the next program to open it would first read stale traffic
            os.close(s)
        self._open = [False] * ports  # whether some program has the port open (seen from the master side)
        self._next_probe = 0.0
        self._tx_end = [0.0] * ports  # when each port's latest burst leaves the line
        self._burst_of: list[_Burst | None] = [None] * ports  # the burst a port is still talking in
        self._pending: list[_Burst] = []  # on the line, not delivered yet
        self._drop_next = [0] * ports
        self._corrupt_next = [0] * ports
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()

    # ------------------------------------------------------------------ faults

    def drop_next(self, port: int, bursts: int = 1) -> None:
        """The next ``bursts`` bursts from ``port`` never reach the line (a lost reply)."""
        with self._lock:
            self._drop_next[port] += bursts

    def corrupt_next(self, port: int, bursts: int = 1) -> None:
        """Flip one bit in each of the next ``bursts`` bursts from ``port``."""
        with self._lock:
            self._corrupt_next[port] += bursts

    def clear_faults(self, port: int) -> None:
        """Cancel the drops and corruptions still pending for ``port``."""
        with self._lock:
            self._drop_next[port] = self._corrupt_next[port] = 0

    def now(self) -> float:
        """Seconds since the line started (the capture's time base)."""
        return time.monotonic() - self._t0

    # ------------------------------------------------------------------ run

    def start(self) -> Rs485Bus:
        if self.capture is not None:
            self.capture.write(f"# rs485 line: {len(self.paths)} ports, {self.baud} baud, "
                               f"t = time.monotonic() - {self._t0:.6f}\n")
        self._thread = threading.Thread(target=self.run, name="rs485", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        self.stop()
        for fd in (*self._masters, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Rs485Bus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self) -> None:
        index = {fd: i for i, fd in enumerate(self._masters)}
        while not self._stop.is_set():
            now = self.now()
            self._deliver_due(now)
            if now >= self._next_probe:
                self._probe_closed_ports()
                self._next_probe = now + 0.02
            timeout = 0.02
            if self._pending:
                timeout = max(0.0, min(timeout, min(b.end for b in self._pending) - now))
            fds = [fd for i, fd in enumerate(self._masters) if self._open[i]] + [self._wake_r]
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                continue
            for fd in ready:
                if fd == self._wake_r:
                    os.read(fd, 64)
                    continue
                self._read_port(index[fd])
        self._deliver_due(float("inf"))

    def _read_port(self, port: int) -> None:
        try:
            data = os.read(self._masters[port], 4096)
        except BlockingIOError:
            self._open[port] = True
            return
        except OSError as exc:  # EIO: the last program that had the port open closed it
            if exc.errno != errno.EIO:
                raise
            self._open[port] = False
            return
        self._open[port] = True
        if data:
            self._transmit(port, data, self.now())

    def _probe_closed_ports(self) -> None:
        for port, is_open in enumerate(self._open):
            if not is_open:
                self._read_port(port)

    def _transmit(self, src: int, data: bytes, now: float) -> None:
        with self._lock:
            cont = self._burst_of[src] is not None and now <= self._tx_end[src] + self.char
            start = max(now, self._tx_end[src])
            end = start + len(data) * self.char
            self._tx_end[src] = end
            burst = _Burst(src, start, end, bytearray(data))
            self.stats.bytes += len(data)
            if not cont:
                self.stats.bursts += 1
                if self._drop_next[src] or (self.drop_rate and self.rng.random() < self.drop_rate):
                    self._drop_next[src] = max(0, self._drop_next[src] - 1)
                    burst.flags.add("dropped")
                elif self._corrupt_next[src] or (self.corrupt_rate and self.rng.random() < self.corrupt_rate):
                    self._corrupt_next[src] = max(0, self._corrupt_next[src] - 1)
                    burst.flags.add("corrupted")
                    i = self.rng.randrange(len(burst.data))
                    burst.data[i] ^= 1 << self.rng.randrange(8)
                    self.stats.corrupted += 1
            else:
                prev = self._burst_of[src]
                assert prev is not None
                if "dropped" in prev.flags:
                    burst.flags.add("dropped")
            self._burst_of[src] = burst
            if "dropped" in burst.flags:
                self.stats.dropped += len(data)
                self._log_comment(start, f"dropped {len(data)} bytes from port {src}")
                return
            for other in self._pending:
                if other.src != src and other.start < end and start < other.end:
                    self._collide(burst, other)
            self._pending.append(burst)

    def _collide(self, a: _Burst, b: _Burst) -> None:
        """Garble the bytes of ``a`` and ``b`` that were on the line at the same time."""
        lo, hi = max(a.start, b.start), min(a.end, b.end)
        self.stats.collisions += 1
        for burst in (a, b):
            burst.flags.add("collision")
            first = int((lo - burst.start) / self.char)
            last = min(len(burst.data), int((hi - burst.start) / self.char) + 1)
            for i in range(max(0, first), last):
                burst.data[i] = self.rng.randrange(256)

    def _deliver_due(self, now: float) -> None:
        with self._lock:
            due = [b for b in self._pending if b.end <= now]
            if not due:
                return
            self._pending = [b for b in self._pending if b.end > now]
        for burst in sorted(due, key=lambda b: b.start):
            data = bytes(burst.data)
            for port, fd in enumerate(self._masters):
                if port == burst.src:
                    continue
                if not self._open[port]:
                    self._read_port(port)  # opened since the last probe?
                    if not self._open[port]:
                        continue  # a closed port drops what the line carries
                try:
                    os.write(fd, data)
                except BlockingIOError:
                    self.stats.overflows += len(data)
                except OSError:
                    self.stats.overflows += len(data)
            if self.capture is not None:
                tag = f"from {burst.src}" + "".join(f" {f}" for f in sorted(burst.flags))
                self.capture.write(f"{burst.start:.6f} {data.hex(' ')}  # {tag}\n")
        with self._lock:
            for src, b in enumerate(self._burst_of):
                if b is not None and self._tx_end[src] + self.char < now:
                    self._burst_of[src] = None
        if self.capture is not None:
            self.capture.flush()

    def _log_comment(self, t: float, text: str) -> None:
        if self.capture is not None:
            self.capture.write(f"# {t:.6f} {text}\n")
