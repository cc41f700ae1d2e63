"""``busshare decode FILE|-``: explain a capture, frame by frame or as a whole (``--summary``)."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
from collections.abc import Callable
from collections.abc import Iterator
from typing import IO
from typing import TYPE_CHECKING
from typing import Any
from typing import TextIO

from ...analysis.decode import CaptureDecoder
from ...analysis.decode import JsonLines
from ...analysis.decode import Record
from ...analysis.decode import TextLines
from ...analysis.decode import first_frame_base
from ...analysis.decode import json_fast
from ...analysis.decode import logreader_records
from ...analysis.decode import read_chunks
from ...analysis.decode import text_records
from ...analysis.decode import totals_line
from ...errors import UserError
from ...protocol.canid import IdScheme
from ...report.records import TimeBase
from ...report.records import TimeMode
from ...report.summaries import decode_summary
from . import _options as opt
from . import command_parser
from ._common import add_time_argument
from ._signals import sigterm_as_interrupt
from ._stdout import silence

if TYPE_CHECKING:
    from ...analysis.summary import CaptureSummary

TEXT_SUFFIXES = (".log", ".txt", ".candump")
READER_SUFFIXES = (".asc", ".blf", ".trc", ".csv", ".mf4", ".db")


def add_parser(subparsers: Any) -> None:
    p = command_parser(
        subparsers, "decode",
        "Decode captured bus traffic with no configuration. Frames that are not the protocol's or "
        "fail the E2E check are reported with their reason and counted, never fatal.",
    )
    p.add_argument("file", metavar="FILE|-", help="capture file, or - for candump text (-L or plain) on stdin")
    p.add_argument("--summary", action="store_true", help="reconstruct the installation instead of listing frames")
    p.add_argument("--json", action="store_true",
                   help="JSON lines: one record per frame, then the summary (docs/JSON.md)")
    add_time_argument(p, absolute="the capture's own timestamps", relative="since the first frame")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a record is bad or the capture shows a safety finding: grants over the limit, "
                        "a cut never acked, a missing failsafe, a second master, two units on one address")
    p.add_argument("--id-base", type=opt.id_base, default=0, help="first protocol CAN id (default 0x000)")
    p.add_argument("--extended", action="store_true", help="the protocol uses 29-bit ids")
    p.add_argument("--limit", type=opt.positive_amps(), default=None, metavar="A",
                   help="circuit limit to check against when the capture has no master heartbeat")
    p.add_argument("--modbus", action="store_true",
                   help="the capture is Modbus RTU (raw bytes, hex lines or timestamped hex lines), not CAN")
    p.add_argument("--baud", type=opt.modbus_baud, default=None,
                   help="Modbus baud rate, for 3.5-character gaps (default 19200)")
    p.add_argument("--plot", type=opt.plot_file, metavar="FILE.png",
                   help="also draw each EVSE's offered and drawn current against the limit (.png, .svg or .pdf)")
    p.set_defaults(func=run)


def _open_text(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _is_text(path: str) -> bool:
    name = path[:-3] if path.endswith(".gz") else path
    return path == "-" or name.lower().endswith(TEXT_SUFFIXES)


def _records(path: str, stream: IO[bytes] | None) -> Iterator[Record]:
    if stream is not None:
        return text_records(stream)
    return logreader_records(path)


def _check_readable(path: str) -> IO[bytes] | None:
    """Open text captures now, so that a missing file is one clear line; None for LogReader formats."""
    if _is_text(path):
        try:
            stream = _open_text(path)
            if path.endswith(".gz"):
                stream.peek(1)  # type: ignore[attr-defined]
        except (OSError, EOFError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise UserError(f"cannot read {path}: {why}") from None
        return stream
    if not os.path.exists(path):
        raise UserError(f"cannot read {path}: no such file")
    if not path.lower().endswith(READER_SUFFIXES) and not path.lower().endswith(tuple(s + ".gz" for s in READER_SUFFIXES)):
        raise UserError(f"cannot read {path}: unknown capture format (use .log .asc .blf .trc .csv, or - for stdin)")
    return None


class _Out:
    """stdout, for a capture whose reader may go away (`| head -1`).

    With ``--strict`` or ``--plot`` the capture is still read and judged to its end (the status, the picture),
    and what would have been printed goes nowhere; otherwise the ``BrokenPipeError`` stops the command (0).
    """

    def __init__(self, stream: TextIO, read_on: bool) -> None:
        self.stream, self.read_on, self.closed = stream, read_on, False

    def write(self, text: str) -> None:
        if not self.closed:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._gone()

    def flush(self) -> None:
        if not self.closed:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        if not self.read_on:
            raise BrokenPipeError
        self.closed = True
        silence(self.stream)  # (what is still buffered then goes to /dev/null too)


def _modbus_stream(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return _open_text(path)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    if getattr(args, "modbus", False):
        from ...analysis.decode import looks_like_can_capture
        from ...analysis.modbus_capture import modbus_records

        if args.file != "-" and os.path.isfile(args.file) and looks_like_can_capture(args.file):
            raise UserError(f"{args.file}: a CAN capture, not Modbus RTU? try: busshare decode {args.file}")
        mb_stream = _modbus_stream(args.file)

        def _modbus(path: str, stream: IO[bytes] | None) -> Iterator[Record]:
            return modbus_records(mb_stream, baud=args.baud)

        return _run(args, None, _modbus)
    stream = _check_readable(args.file)
    if stream is not None and args.file != "-":
        from ...analysis.modbus_capture import looks_like_modbus_capture

        if looks_like_modbus_capture(args.file):
            stream.close()
            raise UserError(f"{args.file} holds hex bursts, not CAN frames: a Modbus RTU capture? "
                            f"try: busshare decode --modbus {args.file}")
    return _run(args, stream, _records)


def _run(args: argparse.Namespace, stream: IO[bytes] | None,
         _records: Callable[[str, IO[bytes] | None], Iterator[Record]]) -> int:
    """The listing (or with ``--summary`` the reconstruction), then the closing line; ``--plot`` adds a picture."""
    try:
        scheme = IdScheme(base=args.id_base, extended=args.extended)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    dec = CaptureDecoder(scheme)
    out = _Out(sys.stdout, read_on=bool(args.strict or args.plot))
    live = args.file == "-" and not sys.stdin.isatty() and not os.path.isfile("/dev/stdin")
    mode = TimeMode.choose(args.time, args.json)
    times = TimeBase(mode) if mode is TimeMode.ABSOLUTE else first_frame_base()
    summary = None
    if args.summary or args.plot or args.strict:  # --strict judges the capture as the summary does
        from ...analysis.summary import CaptureSummary

        summary = CaptureSummary(limit_da=None if args.limit is None else round(args.limit * 10))
        if getattr(args, "modbus", False):
            from ...analysis.modbus_capture import line_watcher

            summary.watcher = line_watcher(args.baud)
    try:
        with sigterm_as_interrupt():
            _listing(args, out, stream, _records, dec, summary, times, live, fast=mode is TimeMode.ABSOLUTE)
        interrupted = False
    except KeyboardInterrupt:  # Ctrl-C, e.g. at the end of a live candump pipe: the closing lines of what was read
        interrupted = True
    result = None if summary is None else summary.result(dec, source=args.file)
    if args.plot:
        from ...report.plot import plot_timeline

        assert summary is not None
        plot_timeline(summary.timeline(), args.plot, title=f"busshare decode {os.path.basename(args.file)}",
                      t0=dec.first_t or 0.0, t_end=dec.last_t)
    if args.json:
        closing = decode_summary(dec.totals(), args.file, dec.first_t, dec.span_s, times,
                                 result if args.summary else None)
        out.write(json.dumps(closing) + "\n")
    elif args.summary:
        from ...analysis.summary import format_summary

        assert result is not None
        out.write(format_summary(result) + "\n")
    else:
        out.write(totals_line(dec.totals(), dec.backwards) + "\n")
    if stream is not None and stream is not sys.stdin.buffer:
        stream.close()
    out.flush()
    if interrupted:
        print(f"busshare decode: interrupted after {dec.records} records: the summary covers those", file=sys.stderr)
        return 130
    return _strict_status(args, dec, result)


def _listing(args: argparse.Namespace, out: _Out, stream: IO[bytes] | None,
             _records: Callable[[str, IO[bytes] | None], Iterator[Record]], dec: CaptureDecoder,
             summary: CaptureSummary | None, times: TimeBase, live: bool, fast: bool) -> None:
    """Every record through the decoder (and the summary), listed unless ``--summary``."""
    listing = not args.summary
    if listing and summary is None and args.json and stream is not None and fast:  # (nothing judged: no --strict)
        binary = out.stream.buffer if hasattr(out.stream, "buffer") else None
        if binary is None:  # redirected to a text-only stream (tests): same bytes through a buffer
            sink = io.BytesIO()
            try:
                json_fast(read_chunks(stream), dec, sink)
            finally:
                out.write(sink.getvalue().decode())
        else:
            out.flush()
            json_fast(read_chunks(stream), dec, binary, flush=live)
        return
    lines = (JsonLines(out.write, times) if args.json else TextLines(out.write, times)) if listing else None
    for rec in _records(args.file, stream):
        back = dec.backwards
        d = dec.feed(rec)
        if d is not None and summary is not None:
            summary.frame(d)
        if lines is not None:
            if dec.backwards and not back:  # the first time the capture's time goes back
                lines.reordered(dec.records, dec.backwards_largest_s)
            if d is None:
                lines.unreadable(dec.unreadable[-1])
            else:
                lines.frame(d)
            if live:
                out.flush()


def _strict_status(args: argparse.Namespace, dec: CaptureDecoder, result: dict[str, Any] | None) -> int:
    """--strict: 1 when a record is bad or the capture shows a safety finding (one stderr line says which)."""
    if not args.strict:
        return 0
    from ...analysis.summary import findings

    assert result is not None
    found = findings(result)
    if dec.bad_total:
        found["bad records"] = dec.bad_total
    if not found:
        return 0
    print(f"busshare decode: --strict: {', '.join(f'{k} {n}' for k, n in found.items())}", file=sys.stderr)
    return 1
