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
from ...analysis.describe import Describer, bad_frame_line, received_record
from ...analysis.modbus_capture import Extractor, LiveSplitter, line_watcher
from ...analysis.watch import SAFETY_KINDS, BusWatcher, Flag, flag_line, summary_line
from ...frames import FrameError
from ...protocol.e2e import E2EStatus
from ...protocol.link import Link
from ...report.records import TimeBase, TimeMode
from ...transport.modbus import rtu
from ..transports import Role, add_bus_arguments, on_modbus, open_can, open_line
from . import SUMMARIES
from . import _options as opt
from ._common import add_time_argument


def add_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "monitor",
        help=SUMMARIES["monitor"],
        description="Print every protocol frame on the bus as one readable line and flag anomalies "
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


def run(args: argparse.Namespace) -> int:
    if on_modbus(args):
        return _run_modbus(args)
    transport = open_can(args)
    link = Link()
    describer = Describer()
    watcher = BusWatcher(reaction_allowance=args.reaction_allowance)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    out = sys.stdout
    start = time.monotonic()
    times = TimeBase.since_start(TimeMode.choose(args.time, args.json), time.time())  # t counts from start
    frames = 0
    rejected: Counter[str] = Counter()

    found: list[Flag] = []

    def emit_flags(flags: list[Flag]) -> None:
        for f in flags:
            out.write(flag_line(f, args.json, times) + "\n")
            if args.strict and f.kind in SAFETY_KINDS and not found:
                found.append(f)  # --strict: the first safety finding ends the watch
                stop.set()

    try:
        while not stop.is_set():
            now = time.monotonic()
            t = now - start
            if args.duration is not None and t >= args.duration:
                break
            frame = transport.recv(0.1)
            t = time.monotonic() - start
            for ev in transport.drain_events():
                emit_flags([Flag(t, ev.kind, ev.detail)])
            if frame is not None:
                frames += 1
                got = link.receive(frame.offset, frame.data, t)
                if got.message is None:
                    why: FrameError | E2EStatus
                    if got.error is not None:
                        why, reason = got.error, got.error.kind
                    else:
                        why = got.status or E2EStatus.WRONG_CRC
                        reason = why.value
                    rejected[reason] += 1
                    if not args.anomalies_only:
                        if args.json:
                            rec = received_record(describer, times(t), frame.offset, frame.can_id, frame.data, got)
                            out.write(json.dumps(rec) + "\n")
                        else:
                            out.write(bad_frame_line(times(t), frame.can_id, frame.data, why) + "\n")
                    emit_flags(watcher.rejected(t, frame.can_id, why))
                else:
                    assert got.status is not None
                    if not args.anomalies_only:
                        if args.json:
                            rec = received_record(describer, times(t), frame.offset, frame.can_id, frame.data, got)
                            out.write(json.dumps(rec) + "\n")
                        else:
                            out.write(describer.line(times(t), got.message, status=got.status) + "\n")
                    else:
                        describer.remember(got.message)
                    emit_flags(watcher.frame(t, got.message, got.status))
            emit_flags(watcher.tick(t))
            out.flush()
    finally:
        transport.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    errors = transport.stats.error_frames
    out.write(summary_line(frames, rejected, watcher.counts, as_json=args.json,
                           link={"error_frames": errors}, link_text=f"error frames: {errors}",
                           start_t=times(0.0), duration_s=time.monotonic() - start) + "\n")
    out.flush()
    return 1 if found else 0


def _run_modbus(args: argparse.Namespace) -> int:
    """Listen on the line, never talk: every protocol frame as one line, anomalies flagged as they happen.

    The serial port is only read.  Frames are split at 3.5-character gaps as
    bytes arrive (CRC fallback), so the adapter's timing is what limits it.
    """
    port = open_line(args)
    fd = port.fileno()
    link, describer = Link(), Describer()
    watcher = line_watcher(args.baud, args.reaction_allowance)
    splitter, stats = LiveSplitter(args.baud), Counter[str]()
    ex = Extractor(stats)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    out = sys.stdout
    start = time.monotonic()
    times = TimeBase.since_start(TimeMode.choose(args.time, args.json), time.time())
    frames = 0
    rejected: Counter[str] = Counter()
    quiet_after = max(rtu.gap_time(args.baud), 0.002)

    found: list[Flag] = []

    def flags(fl: list[Flag]) -> None:
        for f in fl:
            out.write(flag_line(f, args.json, times) + "\n")
            if args.strict and f.kind in SAFETY_KINDS and not found:
                found.append(f)  # --strict: the first safety finding ends the watch
                stop.set()

    def show(chunks: list[rtu.Chunk]) -> None:
        nonlocal frames
        for c in chunks:
            for rec in ex.chunk(c):
                t = c.t if c.t is not None else time.monotonic() - start
                if isinstance(rec, Unreadable):
                    rejected["rtu"] += 1
                    flags([Flag(t, "rtu-bad", rec.reason)])
                    continue
                frames += 1
                got = link.receive(rec.can_id, rec.data, t)
                if got.message is None:
                    why: FrameError | E2EStatus = got.error or got.status or E2EStatus.WRONG_CRC
                    rejected[got.error.kind if got.error else why.value if isinstance(why, E2EStatus) else "bad"] += 1
                    if not args.anomalies_only:
                        if args.json:
                            out.write(json.dumps(received_record(describer, times(t), rec.can_id, rec.can_id,
                                                                 rec.data, got)) + "\n")
                        else:
                            out.write(bad_frame_line(times(t), rec.can_id, rec.data, why) + "\n")
                    flags(watcher.rejected(t, rec.can_id, why))
                    continue
                assert got.status is not None
                if args.anomalies_only:
                    describer.remember(got.message)
                elif args.json:
                    out.write(json.dumps(received_record(describer, times(t), rec.can_id, rec.can_id, rec.data,
                                                         got)) + "\n")
                else:
                    out.write(describer.line(times(t), got.message, status=got.status) + "\n")
                flags(watcher.frame(t, got.message, got.status))

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
            flags(watcher.tick(t))
            out.flush()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        show(splitter.flush())
        port.close()
    out.write(summary_line(frames, rejected, watcher.counts, as_json=args.json, link={"modbus": dict(stats)},
                           link_text=f"RTU frames {stats['rtu-frames']}, other Modbus {stats['modbus-other']}",
                           start_t=times(0.0), duration_s=time.monotonic() - start)
              + "\n")
    out.flush()
    return 1 if found else 0
