"""`busshare monitor`: live decode of a bus, one line per frame, anomalies flagged as they happen.

On CAN it listens through the CAN transport; with ``--modbus PORT`` it sniffs
a Modbus RTU line (the port is only read, never written).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

from ...analysis.decode import Unreadable
from ...analysis.describe import Describer
from ...analysis.describe import bad_frame_line
from ...analysis.describe import bad_frame_record
from ...analysis.describe import received_record
from ...analysis.modbus_capture import Extractor
from ...analysis.modbus_capture import LiveSplitter
from ...analysis.modbus_capture import line_watcher
from ...analysis.watch import SAFETY_KINDS
from ...analysis.watch import BusWatcher
from ...analysis.watch import Flag
from ...analysis.watch import flag_line
from ...analysis.watch import summary_line
from ...frames import FrameError
from ...protocol.e2e import E2EStatus
from ...protocol.kinds import CanKind
from ...protocol.link import Link
from ...protocol.link import Received
from ...report.records import TimeBase
from ...report.records import TimeMode
from ...transport.modbus import rtu
from ..transports import Role
from ..transports import add_bus_arguments
from ..transports import on_modbus
from ..transports import open_can
from ..transports import open_line
from . import _options as opt
from . import command_parser
from ._common import add_time_argument


def add_parser(subparsers: Any) -> None:
    p = command_parser(
        subparsers, "monitor",
        "Print every protocol frame on the bus as one readable line and flag anomalies "
        "(E2E failures, heartbeat gaps, two masters, twin servants, unacked cuts, grants over the limit) "
        "as they happen.  Without -i the bus is udp_multicast (python-can's CAN_INTERFACE or ~/can.conf win if set).",
    )
    add_bus_arguments(p, Role.MONITOR)
    p.add_argument("--json", action="store_true",
                   help="JSON lines: one record per frame or flag, then the summary (docs/JSON.md)")
    add_time_argument(p)
    p.add_argument("--anomalies-only", action="store_true", help="print flags only, not every frame")
    p.add_argument("--duration", type=opt.duration, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--reaction-allowance", type=opt.seconds(), default=5.0, metavar="S",
                   help="EV reaction allowance used to call a cut unacked (default 5 s)")
    p.add_argument("--strict", action="store_true",
                   help="stop and exit 1 at the first safety finding: grants over the limit, a cut never acked, "
                        "a missing failsafe, a second master, two units on one address")
    p.set_defaults(func=run)


class _Printer:
    """What both monitors do with a frame the link took or refused and with a flag: print it, count it,
    and under --strict stop the watch at the first safety finding."""

    def __init__(self, args: argparse.Namespace, watcher: BusWatcher, times: TimeBase, stop: threading.Event) -> None:
        self.args, self.watcher, self.times, self.stop = args, watcher, times, stop
        self.out = sys.stdout
        self.describer = Describer()
        self.frames = 0
        self.rejected: Counter[str] = Counter()
        self.found: list[Flag] = []

    def flags(self, flags: list[Flag]) -> None:
        for f in flags:
            self.out.write(flag_line(f, self.args.json, self.times) + "\n")
            if self.args.strict and f.kind in SAFETY_KINDS and not self.found:
                self.found.append(f)  # --strict: the first safety finding ends the watch
                self.stop.set()

    def not_protocol(self, t: float, can_id: int, data: bytes, kind: CanKind) -> None:
        """A remote, FD or DLC-not-8 frame with one of the protocol's ids: no protocol frame, counted and shown as
        ``decode`` does (no anomaly: the protocol never acts on one)."""
        self.frames += 1
        self.rejected[kind.value] += 1
        if self.args.anomalies_only:
            return
        if self.args.json:
            self.out.write(json.dumps(bad_frame_record(self.times(t), can_id, data, kind.value, kind.reason)) + "\n")
        else:
            self.out.write(bad_frame_line(self.times(t), can_id, data, FrameError(kind.value, kind.reason)) + "\n")

    def received(self, t: float, offset: int, can_id: int, data: bytes, got: Received) -> None:
        """One frame through the link: its line (or JSON record) unless --anomalies-only, then its flags."""
        args, out, times, describer = self.args, self.out, self.times, self.describer
        self.frames += 1
        if got.message is None:
            why: FrameError | E2EStatus = got.error or got.status or E2EStatus.WRONG_CRC
            self.rejected[why.kind if isinstance(why, FrameError) else why.value] += 1
            if not args.anomalies_only:
                if args.json:
                    out.write(json.dumps(received_record(describer, times(t), offset, can_id, data, got)) + "\n")
                else:
                    out.write(bad_frame_line(times(t), can_id, data, why) + "\n")
            self.flags(self.watcher.rejected(t, can_id, why))
            return
        assert got.status is not None
        if args.anomalies_only:
            describer.remember(got.message)
        elif args.json:
            out.write(json.dumps(received_record(describer, times(t), offset, can_id, data, got)) + "\n")
        else:
            out.write(describer.line(times(t), got.message, status=got.status) + "\n")
        self.flags(self.watcher.frame(t, got.message, got.status))


def run(args: argparse.Namespace) -> int:
    if on_modbus(args):
        return _run_modbus(args)
    transport = open_can(args)
    link = Link()
    watcher = BusWatcher(reaction_allowance=args.reaction_allowance)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    out = sys.stdout
    start = time.monotonic()
    times = TimeBase.since_start(TimeMode.choose(args.time, args.json), time.time())  # t counts from start
    printer = _Printer(args, watcher, times, stop)
    try:
        while not stop.is_set():
            now = time.monotonic()
            t = now - start
            if args.duration is not None and t >= args.duration:
                break
            frame = transport.recv(0.1)
            t = time.monotonic() - start
            for ev in transport.drain_events():
                printer.flags([Flag(t, ev.kind, ev.detail)])
            if frame is not None and frame.kind is not CanKind.DATA:
                printer.not_protocol(t, frame.can_id, frame.data, frame.kind)
            elif frame is not None:
                printer.received(t, frame.offset, frame.can_id, frame.data, link.receive(frame.offset, frame.data, t))
            printer.flags(watcher.tick(t))
            out.flush()
    finally:
        transport.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    errors = transport.stats.error_frames
    out.write(summary_line(printer.frames, printer.rejected, watcher.counts, as_json=args.json,
                           link={"error_frames": errors}, link_text=f"error frames: {errors}",
                           start_t=times(0.0), duration_s=time.monotonic() - start) + "\n")
    out.flush()
    return 1 if printer.found else 0


def _run_modbus(args: argparse.Namespace) -> int:
    """Listen on the line, never talk: every protocol frame as one line, anomalies flagged as they happen.

    The serial port is only read.  Frames are split at 3.5-character gaps as
    bytes arrive (CRC fallback), so the adapter's timing is what limits it.
    """
    port = open_line(args)
    fd = port.fileno()
    link = Link()
    watcher = line_watcher(args.baud, args.reaction_allowance)
    splitter, stats = LiveSplitter(args.baud), Counter[str]()
    ex = Extractor(stats)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    out = sys.stdout
    start = time.monotonic()
    times = TimeBase.since_start(TimeMode.choose(args.time, args.json), time.time())
    quiet_after = max(rtu.gap_time(args.baud), 0.002)
    printer = _Printer(args, watcher, times, stop)

    def show(chunks: list[rtu.Chunk]) -> None:
        for c in chunks:
            for rec in ex.chunk(c):
                t = c.t if c.t is not None else time.monotonic() - start
                if isinstance(rec, Unreadable):
                    printer.rejected["rtu"] += 1
                    printer.flags([Flag(t, "rtu-bad", rec.reason)])
                    continue
                printer.received(t, rec.can_id, rec.can_id, rec.data, link.receive(rec.can_id, rec.data, t))

    try:
        while not stop.is_set():
            now = time.monotonic() - start
            if args.duration is not None and now >= args.duration:
                break
            ready, _, _ = select.select([fd], [], [], quiet_after if splitter.buf else 0.1)
            t = time.monotonic() - start
            if ready:
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    data = b""
                if data:
                    # the bytes ended arriving now: their first one was on the line len * char earlier
                    show(splitter.feed(t - rtu.wire_time(len(data), args.baud), data))
            elif splitter.buf:
                show(splitter.flush())
            printer.flags(watcher.tick(t))
            out.flush()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        show(splitter.flush())
        port.close()
    out.write(summary_line(printer.frames, printer.rejected, watcher.counts, as_json=args.json,
                           link={"modbus": dict(stats)},
                           link_text=f"RTU frames {stats['rtu-frames']}, other Modbus {stats['modbus-other']}",
                           start_t=times(0.0), duration_s=time.monotonic() - start)
              + "\n")
    out.flush()
    return 1 if printer.found else 0
