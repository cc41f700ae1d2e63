"""Decoding captured bus traffic: python-can log files and candump text, with no configuration.

Every record of a capture ends up as exactly one of:

* a protocol message (with its E2E alive-counter classification), or
* a bad frame with a kind and a reason: ``foreign`` (id outside the protocol's
  range), ``remote``, ``error-frame``, ``fd``, ``dlc`` (a classic frame whose DLC is 9-15: the captures
  that keep the DLC, ``.asc``, ``.blf``, candump ``-L``'s ``_X``, plain candump ``-8``'s ``{X}``), a
  ``FrameError`` kind (``length``, ``type``, ``address``, ``reserved``, ``range``, ``enum``, ``crc``), or
  ``unreadable`` (a line or record that is not a frame at all).

Nothing in a capture is fatal: bad records are reported and counted.

Both paths check alive counters through one ``protocol.link.Link`` (its stream
rules and E2E classifier, PROTOCOL.md 6.3), as a node and the monitors do:

* ``CaptureDecoder.feed``: one frame at a time, for text output, ``--summary``
  and the formats python-can's ``LogReader`` reads;
* ``json_fast``: candump ``-L`` text straight to JSON lines.  Frames repeat a
  lot on a real bus, so the JSON text of each distinct (id, data) is built once
  and each line costs a regex match, a dict lookup and an alive-counter check
  (on the link's own stream memory and status table).

A frame a node acts on (``ok``, ``ok-some-lost``, ``wrong-sequence``) is good;
a ``repeated`` one is a duplicate, shown with its reason and counted bad.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import struct
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from math import inf
from typing import IO
from typing import TYPE_CHECKING
from typing import Any
from typing import BinaryIO
from typing import TextIO
from typing import cast

from ..errors import printable
from ..frames import FrameError
from ..frames import Heartbeat
from ..frames import Join
from ..frames import Message
from ..frames import Release
from ..frames import SetLimit
from ..frames import decode
from ..protocol.canid import IdScheme
from ..protocol.e2e import DEFAULT_MAX_DELTA
from ..protocol.e2e import E2EStatus
from ..protocol.kinds import E2E_KINDS
from ..protocol.kinds import FOREIGN_KINDS
from ..protocol.kinds import MALFORMED_KINDS
from ..protocol.kinds import CanKind
from ..protocol.link import STREAM_MEMORY_S
from ..protocol.link import Link
from ..protocol.link import Restart
from ..report.records import RecordKind
from ..report.records import TimeBase
from ..report.records import TimeMode
from .describe import Describer
from .describe import bad_frame_line
from .describe import bad_frame_record
from .describe import frame_record

if TYPE_CHECKING:
    import can


CAN_ERR_FLAG = 0x20000000
_NL = b"\n"
_READ_ERROR = b"<the file cannot be read past here: "


@dataclass(frozen=True, slots=True)
class Frame:
    """One record of a capture, before decoding."""

    t: float | None  # seconds, as in the capture; None when it has no timestamps
    can_id: int
    extended: bool
    data: bytes
    kind: CanKind = CanKind.DATA


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A line or record that is not a frame (garbage, truncation, bad hex)."""

    where: str
    reason: str


Record = Frame | Unreadable


# ---------------------------------------------------------------------------
# readers


_HEX = re.compile(rb"^[0-9A-Fa-f]*$")
# (ts) iface ID#DATA[_DLC] [R|T]   -- candump -L (``_C``: a classic 8-byte frame's DLC of 9-15), python-can's .log
_LOG_LINE = re.compile(
    rb"^\s*\((\d+(?:\.\d*)?)\)\s+(\S+)\s+([0-9A-Fa-f]{1,8})(##?)([0-9A-Fa-f]*|R\d*)(?:_([0-9A-Fa-f]))?(?:\s+[RT])?\s*$"
)
# [(ts)] iface [RX|TX F F] ID [LEN] DATA   -- plain candump (with or without -t a/d/z): ``[N]`` a classic frame's
# length (0-8, never more), ``[NN]`` a CAN FD frame's, and with -8 ``{X}`` a classic frame's raw DLC in hex
# (can-utils' lib.c snprintf_long_canframe: ``{C}`` before 8 bytes is DLC 12, on an interface in cc-len8-dlc
# mode).  candump -x adds after the interface the direction (``RX``, or ``TX`` for this host's own frames) and
# two flag columns (candump.c extra_fd_info: ``B``it rate switch and ``E``rror state indicator of a CAN FD frame,
# ``-`` when clear; ``S``/``R`` of a CAN XL frame, which busshare does not read): read past, the frame is the same
_PLAIN_LINE = re.compile(
    rb"^\s*(?:\((\d+(?:\.\d*)?)\)\s+)?(\S+)\s+(?:[RT]X\s+[-BS]\s+[-ER]\s+)?([0-9A-Fa-f]{1,8})\s+"
    rb"(?:\[(\d{1,2})\]|\{([0-9A-Fa-f])\})\s*(.*?)\s*$"
)
#: candump -S's data: the bytes last to first, a backtick between two (lib.c SWAP_DELIMITER), and with -a the
#: text column in backticks, last to first too
_SWAPPED = re.compile(rb"^([0-9A-Fa-f]{2}(?:`[0-9A-Fa-f]{2})*)(?:\s+`(.*)`)?$")


#: capture formats only CAN tools write (python-can's readers); .log and .csv are told by their lines
CAN_ONLY_SUFFIXES = (".asc", ".blf", ".trc", ".mf4", ".db")


def looks_like_can_capture(path: str) -> bool:
    """True for a file a CAN tool wrote: a CAN-only format by its name, or candump lines at its head."""
    name = path[:-3] if path.endswith(".gz") else path
    if name.lower().endswith(CAN_ONLY_SUFFIXES):
        return True
    try:
        with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError):
        return False
    lines = [ln for ln in head.splitlines()[:-1] or head.splitlines() if ln.strip() and not ln.startswith(b"#")]
    return bool(lines) and all(_LOG_LINE.match(ln) or _PLAIN_LINE.match(ln) for ln in lines[:8])


def _id_record(t: float | None, ident: bytes, data_text: bytes, fd: bool, remote: bool,
               dlc: int | None = None) -> Record:
    can_id = int(ident, 16)
    extended = len(ident) > 3
    if extended and can_id & CAN_ERR_FLAG:
        return Frame(t, can_id & 0x1FFFFFFF, True, b"", CanKind.ERROR_FRAME)
    if remote:
        return Frame(t, can_id, extended, b"", CanKind.REMOTE)
    if fd:
        data_text = data_text[1:]  # the FD flags nibble
    if len(data_text) % 2 or not _HEX.match(data_text):
        raise ValueError(f"bad hex data {data_text[:40]!r}")
    data = bytes.fromhex(data_text.decode("ascii"))
    return Frame(t, can_id, extended, data, CanKind.of(error=False, remote=False, fd=fd, dlc=dlc, length=len(data)))


def parse_line(line: bytes, where: str) -> Record | None:
    """One line of candump text (``-L`` or plain); None for a blank line."""
    if not line.strip():
        return None
    if line.startswith(_READ_ERROR):
        return Unreadable(where, line.strip().decode("ascii", "replace")[1:-1])
    try:
        m = _LOG_LINE.match(line)
        if m:
            t = float(m.group(1))
            dlc = None if m.group(6) is None else int(m.group(6), 16)
            return _id_record(t, m.group(3), m.group(5), m.group(4) == b"##", m.group(5).startswith(b"R"), dlc)
        m = _PLAIN_LINE.match(line)
        if m:
            return _plain_record(m)
    except ValueError as exc:
        return Unreadable(where, f"{exc}: {_show(line)}")
    return Unreadable(where, f"not a candump line: {_show(line)}")


def _plain_record(m: re.Match[bytes]) -> Record:
    """A plain candump line: ``[N]`` is a classic frame's length, ``[NN]`` (two digits) a CAN FD frame's, ``{X}``
    (candump -8) a classic frame's raw DLC: 9-15 only before 8 bytes (a ``dlc`` frame), else the length; candump -a
    adds the bytes as text in quotes (one character a byte, '.' for the unprintable), checked and left out;
    candump -S prints the bytes last to first (``88`77`...`11``): put back in the order they were on the bus."""
    t = float(m.group(1)) if m.group(1) else None
    ident, size, raw, body = m.group(3), m.group(4), m.group(5), m.group(6)
    if body.startswith(b"remote request"):
        return _id_record(t, ident, b"", False, True)
    if body.strip().upper().startswith(b"ERRORFRAME"):
        return Frame(t, int(ident, 16), len(ident) > 3, b"", CanKind.ERROR_FRAME)
    dlc = None if raw is None else int(raw, 16)
    shown_ascii = None
    swapped = _SWAPPED.match(body) if b"`" in body else None
    if swapped is not None:  # candump -S (a single byte reads the same either way, and has no backtick)
        body = b" ".join(swapped.group(1).split(b"`")[::-1])
        shown_ascii = None if swapped.group(2) is None else swapped.group(2)[::-1]
    elif body.endswith(b"'") and body.count(b"'") >= 2:  # candump -a: the bytes as text, 'a.b.', after the hex
        first = body.index(b"'")
        body, shown_ascii = body[:first].rstrip(), body[first + 1:-1]
    rec = _id_record(t, ident, body.replace(b" ", b""), False, False, dlc)
    if shown_ascii is not None and isinstance(rec, Frame) and len(shown_ascii) != len(rec.data):
        raise ValueError(f"the text column '{shown_ascii.decode('ascii', 'replace')}' does not match "
                         f"{len(rec.data)} data bytes")
    shown = f"[{size.decode()}]" if size is not None else f"{{{raw.decode()}}}"
    length = int(size) if size is not None else min(int(raw, 16), 8)
    if isinstance(rec, Frame) and rec.kind is not CanKind.ERROR_FRAME and length != len(rec.data):
        raise ValueError(f"{shown} does not match {len(rec.data)} data bytes")
    if isinstance(rec, Frame) and size is not None and len(size) == 2:  # candump writes an FD length as [NN]
        return Frame(t, rec.can_id, rec.extended, rec.data, CanKind.FD)
    return rec


def _show(line: bytes) -> str:
    text = printable(line.strip().decode("utf-8", "replace"))
    return text if len(text) <= 60 else text[:57] + "..."


def read_chunks(stream: IO[bytes], size: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """(first line number, whole lines) chunks; reads what is available, so pipes stream live."""
    read = getattr(stream, "read1", stream.read)
    rest = b""
    line_no = 1
    while True:
        try:
            block = read(size)
        except (OSError, EOFError) as exc:  # e.g. a truncated .gz: keep what was read, report the rest
            why = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
            rest += b"\n" + _READ_ERROR + why.encode(errors="replace") + b">\n"
            break
        if not block:
            break
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            rest = block
            if len(rest) > size * 4:  # one absurd line: hand it over as is
                yield line_no, rest
                line_no += 1
                rest = b""
            continue
        chunk, rest = block[:cut], block[cut:]
        yield line_no, chunk
        line_no += chunk.count(b"\n")
    if rest:
        yield line_no, rest


def text_records(stream: IO[bytes]) -> Iterator[Record]:
    """Every record of candump text (either format), line by line."""
    for first, chunk in read_chunks(stream):
        for i, line in enumerate(chunk.split(_NL)):
            rec = parse_line(line, f"line {first + i}")
            if rec is not None:
                yield rec


def logreader_records(path: str) -> Iterator[Record]:
    """Records of any format python-can's LogReader reads (.asc, .blf, .trc, .csv, .log, .gz...).

    A record it cannot read is reported and counted; in a text format the reading goes on after its line.
    """
    import can.io.generic  # lazily: importing python-can costs more than decoding a small capture

    try:
        reader = can.LogReader(path)
    except OSError as exc:  # (a directory, no permission): worded as every other capture that cannot be read
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # a header python-can cannot parse (empty or not that format)
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
        raise OSError(f"cannot read {path}: not a readable capture ({why})") from None
    n = 0
    dropped = _Dropped()
    lines = None
    reads = None
    if isinstance(reader, can.io.generic.TextIOMessageReader):  # .asc .csv .trc: read on past a bad line
        text_reader = type(reader)
        lines = _Lines(reader.file, _asc_meta if isinstance(reader, can.ASCReader) else None)
        reader.file = cast(TextIO, lines)
    elif isinstance(reader, can.BLFReader):  # a truncated .blf just ends: its short reads tell
        reads = _Reads(cast(BinaryIO, reader.file))
        reader.file = cast(BinaryIO, reads)
    try:
        with dropped:
            while True:
                try:
                    for msg in reader:
                        for reason in dropped.take():
                            yield Unreadable(_where(lines, n), reason)
                        if lines is not None:
                            yield from lines.take()
                            lines.record_read()
                        n += 1
                        yield _frame(msg)
                    break
                except _FileError:
                    raise
                except Exception as exc:
                    if lines is None or not lines.resumable():
                        raise
                    # one line python-can cannot read: report it, and a fresh reader takes over after it
                    yield Unreadable(_where(lines, n), f"{type(exc).__name__}: {exc}; {lines.shown()}")
                    reader = text_reader(cast(TextIO, lines.resume()))
            for reason in dropped.take():
                yield Unreadable(_where(lines, n), reason)
            if lines is not None:
                yield from lines.take()
            if reads is not None and (reads.short or bool(getattr(reader, "_tail", b""))):  # (bytes it could not use)
                yield Unreadable(_where(lines, n), "the file ends inside a record (truncated?): the rest is lost")
    except Exception as exc:  # a truncated or corrupt file: keep what was read, report the rest
        if isinstance(exc, _FileError):
            exc = exc.error
        for reason in dropped.take():  # (what python-can skipped before it failed: often why it failed)
            yield Unreadable(_where(lines, n), reason)
        yield Unreadable(_where(lines, n), f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
    finally:
        reader.stop()


def _frame(msg: can.Message) -> Frame:
    data = bytes(msg.data)
    kind = CanKind.of(error=msg.is_error_frame, remote=msg.is_remote_frame, fd=msg.is_fd, dlc=msg.dlc, length=len(data))
    return Frame(msg.timestamp, msg.arbitration_id, msg.is_extended_id, data, kind)


def _where(lines: _Lines | None, n: int) -> str:
    """Where a record python-can could not read is: its line in a text format, else how far the reading got."""
    return f"line {lines.number}" if lines is not None and lines.number else f"after record {n}"


class _FileError(Exception):
    """The file itself cannot be read on (not UTF-8, a truncated .gz): no line to skip, the reading ends."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


#: lines of an .asc that are no frame and no damage: blank, comments, the header, the trigger block's ends,
#: the start marker, and events (a timestamp, then a word that is no channel number, or a channel and "Word:")
_ASC_META = re.compile(
    r"\s*(?:$|//|date\s|base\s|(?:no\s+)?internal\s+events\s+logged|begin\s+triggerblock|end\s+triggerblock"
    r"|\d+(?:\.\d+)?\s+(?:start\s+of\s+measurement|(?!\d+\s|canfd\s)[A-Za-z]\S*|\d+\s+[A-Za-z]\S*:))",
    re.IGNORECASE,
)


def _asc_meta(line: str) -> bool:
    return _ASC_META.match(line) is not None


class _Reads:
    """A binary capture file (.blf) that remembers whether a read came back short: the file was cut.

    python-can's BLF reader takes a short object or container as the end of the file and says nothing.
    """

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.short = False

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        if 0 < len(data) < size:  # (an empty read where an object would start is the file's end)
            self.short = True
        return data

    def close(self) -> None:
        self.file.close()


class _Lines:
    """A text capture's lines, as python-can's text readers (.asc, .csv, .trc) iterate them.

    Such a reader stops for good at the first line it cannot parse (a bad hex byte, a short CSV row),
    and everything after it was lost.  Here the line it failed on is known (the last one handed out), and
    a fresh reader of the same kind takes over after it: it is given the header again (the lines before the
    first record: the base, the date, the column layout), then the rest of the file.

    The ASC reader also passes over, without a word, every line it does not know (a cut one, garbage): with
    ``meta`` (the lines that are no frame and no damage) each other line that gave no record is kept, for
    ``take`` to report.
    """

    def __init__(self, file: IO[str], meta: Callable[[str], bool] | None = None) -> None:
        self.file = file
        self.meta = meta
        self.pending = False  # the last line read gave no record (yet)
        self.skipped: list[Unreadable] = []
        self.number = 0  # of the last line read from the file
        self.last = ""
        self.head: list[str] | None = []  # the lines read before the first record; None once it came
        self.header: list[str] = []  # (then) the lines before the first record
        self.replay: list[str] = []  # the header again, for a fresh reader (last line first)
        self.resumed_at = -1  # the line a fresh reader last took over after

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.replay:
            return self.replay.pop()
        self._settle()
        try:
            line = next(self.file)
        except StopIteration:
            raise
        except Exception as exc:  # (UnicodeDecodeError, a truncated .gz)
            raise _FileError(exc) from None
        self.number += 1
        self.last = line
        self.pending = self.meta is not None
        if self.head is not None:
            self.head.append(line)
        return line

    def _settle(self) -> None:
        """The reader is past the last line: kept for ``take`` if it gave no record and is no meta line."""
        if self.pending and self.meta is not None and not self.meta(self.last):
            self.skipped.append(Unreadable(f"line {self.number}", f"not a frame python-can reads: {self.shown()}"))
        self.pending = False

    def take(self) -> list[Unreadable]:
        """The lines the reader passed over (to report before its next record, or at the end)."""
        taken, self.skipped = self.skipped, []
        return taken

    def record_read(self) -> None:
        """The reader produced a record: its line gave one; what came before it is the header."""
        self.pending = False
        if self.head is not None:
            self.header, self.head = self.head[:-1], None

    def resumable(self) -> bool:
        """Whether a fresh reader can take over: not when it failed on the header given again (no progress)."""
        return not self.replay and self.number != self.resumed_at

    def resume(self) -> _Lines:
        """The lines for a fresh reader: the header again, then the file after the line that failed."""
        if self.head is not None:  # before the first record: the lines so far but the failed one are the header
            self.header = self.head = self.head[:-1]
            self.head = list(self.header)
        self.replay = self.header[::-1]
        self.resumed_at = self.number
        self.pending = False  # (the line that failed is reported as such)
        return self

    def shown(self) -> str:
        text = printable(self.last.strip())
        return text if len(text) <= 60 else text[:57] + "..."

    def close(self) -> None:
        self.file.close()


class _Dropped(logging.Handler):
    """What python-can's readers skip and only log (a stray line on stderr, the record not counted), as reasons.

    The TRC reader skips lines it cannot parse or of a type it does not read; the BLF reader skips a whole
    LOG_CONTAINER whose compression method it does not know (every frame in it) and an object whose header
    version it does not know.  While a capture is read, those messages come here instead and each becomes an
    ``Unreadable`` record, counted like any other.
    """

    #: logger -> (message prefix, the prefix's replacement in the reason)
    SKIPS: dict[str, tuple[tuple[str, str], ...]] = {
        "can.io.trc": (("TRCReader: Failed to parse message", "Failed to parse message"),
                       ("TRCReader: Unsupported type", "Unsupported type")),
        "can.io.blf": (("Unknown compression method", "a container of unknown compression method"),
                       ("Unknown object header version", "an object of unknown header version")),
    }

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reasons: list[str] = []
        self.saved: dict[str, tuple[int, bool]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        for prefix, words in self.SKIPS.get(record.name, ()):
            if text.startswith(prefix) and record.args != ("",):  # (an empty file's missing first line is no record)
                reason = words + text.removeprefix(prefix)
                if record.name == "can.io.blf":
                    reason = reason.replace(" (", " ", 1).rstrip(")") + ": python-can skips it and what it holds"
                self.reasons.append(printable(reason)[:200])
                return

    def take(self) -> list[str]:
        taken, self.reasons = self.reasons, []
        return taken

    def __enter__(self) -> _Dropped:
        for name in self.SKIPS:
            log = logging.getLogger(name)
            self.saved[name] = (log.level, log.propagate)
            log.setLevel(logging.INFO)
            log.propagate = False
            log.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, (level, propagate) in self.saved.items():
            log = logging.getLogger(name)
            log.removeHandler(self)
            log.setLevel(level)
            log.propagate = propagate


# ---------------------------------------------------------------------------
# classification (pure, cached)


@dataclass(frozen=True, slots=True)
class Good:
    offset: int
    message: Message
    counter: int


@dataclass(frozen=True, slots=True)
class Bad:
    kind: str
    reason: str


def classify(scheme: IdScheme, can_id: int, extended: bool, kind: CanKind, data: bytes) -> Good | Bad:
    """What one frame is, independent of the frames around it."""
    if kind is not CanKind.DATA:
        return Bad(kind.value, kind.reason)
    offset = scheme.offset(can_id, extended)
    if offset is None:
        width = "29-bit" if extended else "11-bit"
        return Bad("foreign", f"{width} id {can_id:#x} outside the protocol's range")
    try:
        msg, counter = decode(offset, data)
    except FrameError as exc:
        return Bad(exc.kind, str(exc))
    return Good(offset, msg, counter)


# ---------------------------------------------------------------------------
# the decoder


@dataclass(frozen=True, slots=True)
class Decoded:
    """One frame after decoding, as handed to the sinks."""

    t: float | None
    can_id: int
    data: bytes
    message: Message | None
    counter: int | None
    status: E2EStatus | None  # E2E classification of a decoded message
    bad: Bad | None  # set when the frame is not acted on by a node (bad, or e2e failure)


Sink = Callable[[Decoded], None]


class CaptureDecoder:
    """Classifies each frame and the alive counter of its stream; counts everything."""

    def __init__(self, scheme: IdScheme | None = None, max_delta: int = DEFAULT_MAX_DELTA) -> None:
        self.scheme = scheme or IdScheme()
        self.max_delta = max_delta
        self.counts: Counter[str] = Counter()  # "decoded", E2E statuses, bad kinds
        self.records = 0
        self.unreadable: list[Unreadable] = []
        self.first_t: float | None = None
        self.last_t: float | None = None
        #: the earliest and latest timestamps: a reordered capture's span (its first and last record need not be)
        self.earliest_t: float | None = None
        self.latest_t: float | None = None
        #: a timestamp earlier than the one before (a merged or reordered capture): how often, by how much at
        #: most, and the first such record (1-based); the records are still taken in file order
        self.backwards = 0
        self.backwards_largest_s = 0.0
        self.backwards_first: int | None = None
        self._memo: dict[tuple[int, bool, str, bytes], Good | Bad] = {}
        #: the receive policy every node runs: stream memory, stream rules, E2E classification
        self.link = Link(max_delta=max_delta)

    def classify(self, frame: Frame) -> Good | Bad:
        key = (frame.can_id, frame.extended, frame.kind, frame.data)
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) > 1 << 18:
                self._memo.clear()
            hit = self._memo[key] = classify(self.scheme, frame.can_id, frame.extended, frame.kind, frame.data)
        return hit

    def _went_back(self, by_s: float) -> None:
        self.backwards += 1
        self.backwards_largest_s = max(self.backwards_largest_s, by_s)
        if self.backwards_first is None:
            self.backwards_first = self.records

    def spans(self, lo: float, hi: float) -> None:
        """Times from ``lo`` to ``hi`` were seen: the one place the span grows (``feed`` a record at a time, the
        fast path a chunk at a time), so both paths span a reordered capture alike."""
        if self.earliest_t is None or lo < self.earliest_t:
            self.earliest_t = lo
        if self.latest_t is None or hi > self.latest_t:
            self.latest_t = hi

    @property
    def span_s(self) -> float | None:
        """How long the capture lasts: its earliest to its latest timestamp (None without timestamps)."""
        if self.earliest_t is None or self.latest_t is None:
            return None
        return self.latest_t - self.earliest_t

    @property
    def now(self) -> float:
        """The capture's clock for the stream rules: the last timestamp seen (0 in an untimed capture,
        where no silence can be measured)."""
        return 0.0 if self.last_t is None else self.last_t

    def feed(self, rec: Record) -> Decoded | None:
        """Classify one record; None (and counted) for an unreadable one."""
        self.records += 1
        if isinstance(rec, Unreadable):
            self.counts["unreadable"] += 1
            self.unreadable.append(rec)
            return None
        if rec.t is not None:
            if self.first_t is None:
                self.first_t = rec.t
            elif self.last_t is not None and rec.t < self.last_t:
                self._went_back(self.last_t - rec.t)
            self.last_t = rec.t
            self.spans(rec.t, rec.t)
        c = self.classify(rec)
        if isinstance(c, Bad):
            self.counts[c.kind] += 1
            return Decoded(rec.t, rec.can_id, rec.data, None, None, None, c)
        status = self.link.check(c.offset, c.message, c.counter, bytes(rec.data), self.now)
        self.counts[status.value] += 1
        bad = None
        if not status.accepted:
            bad = Bad("repeated", f"alive counter {c.counter} repeated: a duplicate, not acted on")
        return Decoded(rec.t, rec.can_id, rec.data, c.message, c.counter, status, bad)

    # -- totals ---------------------------------------------------------------

    @property
    def bad_total(self) -> int:
        """Frames (and records) a strict reader rejects: not ours, malformed, E2E failures, unreadable."""
        kinds = (*E2E_KINDS, *MALFORMED_KINDS, *FOREIGN_KINDS, "unreadable")
        return sum(self.counts[k] for k in kinds)

    def totals(self) -> dict[str, Any]:
        c = self.counts
        return {
            "records": self.records,
            "good": c[E2EStatus.OK.value] + c[E2EStatus.OK_SOME_LOST.value] + c[E2EStatus.WRONG_SEQUENCE.value],
            "bad": self.bad_total,
            "e2e_errors": {k: c[k] for k in E2E_KINDS if c[k]},
            "some_lost": c[E2EStatus.OK_SOME_LOST.value],
            "wrong_sequence": c[E2EStatus.WRONG_SEQUENCE.value],
            "malformed": {k: c[k] for k in MALFORMED_KINDS if c[k]},
            "not_protocol": {k: c[k] for k in FOREIGN_KINDS if c[k]},
            "unreadable": c["unreadable"],
        }


def totals_line(totals: dict[str, Any], backwards: int = 0) -> str:
    """The closing line of a listing; ``backwards``: how often the capture's time went back (reordered)."""
    parts = [f"{totals['records']} records: {totals['good']} good, {totals['bad']} bad"]
    detail = []
    for group in ("e2e_errors", "malformed", "not_protocol"):
        detail += [f"{k} {n}" for k, n in totals[group].items()]
    if totals["unreadable"]:
        detail.append(f"unreadable {totals['unreadable']}")
    if totals["some_lost"]:
        detail.append(f"ok-some-lost {totals['some_lost']} (accepted)")
    if totals["wrong_sequence"]:
        detail.append(f"wrong-sequence {totals['wrong_sequence']} (accepted)")
    if detail:
        parts.append(f" ({', '.join(detail)})")
    if backwards:
        times = "once" if backwards == 1 else f"{backwards} times"
        parts.append(f"; reordered: the time goes back {times}")
    return "".join(parts)


# ---------------------------------------------------------------------------
# per-frame output


def _fmt_t(t: float | None) -> str:
    return "null" if t is None else f"{t:.6f}"


def first_frame_base() -> TimeBase:
    """Relative time for a capture: seconds since its first timestamped frame."""
    return TimeBase(TimeMode.RELATIVE, None)


class TextLines:
    """Per-frame readable lines (``describe.Describer``); time relative to the first frame unless told."""

    def __init__(self, write: Callable[[str], Any], times: TimeBase | None = None) -> None:
        self.write = write
        self.describer = Describer()
        self.times = times or first_frame_base()

    def frame(self, d: Decoded) -> None:
        t = 0.0 if d.t is None else self.times(d.t)
        if d.message is not None:
            line = self.describer.line(t, d.message, d.counter, d.status)
        else:
            assert d.bad is not None
            why: FrameError | E2EStatus
            why = E2EStatus.WRONG_CRC if d.bad.kind == "crc" else FrameError(d.bad.kind, d.bad.reason)
            line = bad_frame_line(t, d.can_id, d.data, why)
        self.write(line + "\n")

    def unreadable(self, u: Unreadable) -> None:
        self.write(f"UNREADABLE {u.where}: {printable(u.reason)}\n")

    def reordered(self, record: int, by_s: float) -> None:
        """Said once, before the first record whose time is earlier than the one before it: the times
        printed stay relative to the first frame's (as ``--summary`` counts them), so some are negative."""
        base = "relative to the first frame's" if self.times.mode is TimeMode.RELATIVE else "as the capture has them"
        self.write(f"REORDERED record {record}: the time goes back {by_s:.3f} s (a merged or reordered capture?); "
                   f"times stay {base}, records in file order\n")


class JsonLines:
    """Per-frame ``frame``, ``bad-frame`` and ``unreadable`` records (docs/JSON.md); absolute time unless told."""

    def __init__(self, write: Callable[[str], Any], times: TimeBase | None = None) -> None:
        self.write = write
        self.describer = Describer()
        self.times = times or TimeBase()

    def frame(self, d: Decoded) -> None:
        self.write(json_frame(self.describer, d, self.times) + "\n")

    def unreadable(self, u: Unreadable) -> None:
        self.write(json_unreadable(u) + "\n")

    def reordered(self, record: int, by_s: float) -> None:
        """(JSON lines carry each time as it is; ``--summary --json`` counts ``timestamps_backwards``.)"""


def json_unreadable(u: Unreadable) -> str:
    return json.dumps({"record": RecordKind.UNREADABLE.value, "t": None, "where": u.where, "reason": u.reason})


def json_frame(describer: Describer, d: Decoded, times: TimeBase | None = None) -> str:
    """One frame's JSON line; ``t`` to the microsecond as candump writes it (so both paths print the same)."""
    t = d.t if times is None else times.opt(d.t)
    rec: dict[str, Any]
    if d.message is None:
        assert d.bad is not None
        rec = bad_frame_record(None, d.can_id, d.data, d.bad.kind, d.bad.reason)
    else:
        assert d.status is not None and d.counter is not None
        rec = frame_record(describer, None, d.message, d.counter, d.can_id, d.status)
    kind = rec.pop("record")
    del rec["t"]
    return f'{{"record": "{kind}", "t": {_fmt_t(t)}, ' + json.dumps(rec)[1:]


# ---------------------------------------------------------------------------
# the fast path: candump -L to JSON lines

# one 8-byte data frame, the common case; anything else makes its chunk take the general path
_FAST_LINE = re.compile(
    rb"^\(0*(\d+\.\d+)\) [^ \n]+ ((?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{8})#[0-9A-Fa-f]{16})(?: [RT])?\r?$", re.M
)
_KEY = re.compile(rb"(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{8})#[0-9A-Fa-f]{16}")
_DIGITS = b"0123456789"
_HEAD = b'{"record": "frame", "t": '


def fixed_layout(chunk: bytes) -> struct.Struct | None:
    """A struct that cuts (timestamp, id#data) out of every line, when all lines have one width.

    candump and python-can write every frame of a log at the same width, so the
    chunk is a grid: checking its columns (C-speed slices) proves each line is
    ``(digits.digits) iface key[ R|T]``; ``struct.iter_unpack`` then cuts the
    fields without a regex.  The keys themselves are checked when first seen.
    """
    width = chunk.find(b"\n") + 1
    if width < 8 or len(chunk) % width or chunk[:1] != b"(" or chunk[width - 2:width - 1] == b"\r":
        return None  # CRLF lines take the regex path
    n = len(chunk) // width
    close = chunk.find(b") ", 0, width)
    dot = chunk.find(b".", 0, close)
    iface_end = chunk.find(b" ", close + 2, width)
    if close < 4 or not 1 < dot < close - 1 or iface_end < 0:
        return None
    key_at = iface_end + 1
    key_end = chunk.find(b" ", key_at, width)
    key_end = width - 1 if key_end < 0 else key_end
    tail = width - 1 - key_end
    column = chunk.__getitem__
    if column(slice(width - 1, None, width)) != b"\n" * n or column(slice(0, None, width)) != b"(" * n:
        return None
    if column(slice(close, None, width)) != b")" * n or column(slice(close + 1, None, width)) != b" " * n:
        return None
    if column(slice(iface_end, None, width)) != b" " * n or column(slice(dot, None, width)) != b"." * n:
        return None
    for k in range(1, close):
        if k != dot and column(slice(k, None, width)).translate(None, _DIGITS):
            return None
    if dot > 2 and b"0" in column(slice(1, None, width)):
        return None  # leading zeros are not JSON: the general path formats these
    if tail:
        if tail != 2 or column(slice(key_end, None, width)) != b" " * n:
            return None
        if column(slice(key_end + 1, None, width)).translate(None, b"RT"):
            return None
    return struct.Struct(f"x{close - 1}s{key_at - close}x{key_end - key_at}s{tail + 1}x")


def json_fast(chunks: Iterable[tuple[int, bytes]], dec: CaptureDecoder, out: IO[bytes],
              flush: bool = False) -> None:
    """Decode candump ``-L`` chunks to JSON lines on ``out``; other lines go through ``parse_line``.

    Times are written as the capture has them (absolute).  Output convention
    inside the loop: every piece written ends with the head of the next line
    (``{"record": "frame", "t": ``), so each frame costs one ``extend`` of
    (timestamp, the JSON text of its id#data, the E2E result and the next
    head); a line of another kind takes the head back and writes its own.
    """
    describer = Describer()
    link = dec.link  # its stream memory and status table, shared with the general path (dec.feed)
    statuses = link.checker.table
    table = tuple(_suffix(s) for s in statuses)
    last = link.checker.last16
    last_data = link.checker.last_data
    heard = link.heard
    repeated = tuple(st is E2EStatus.REPEATED for st in statuses)
    second_sender = _suffix(E2EStatus.WRONG_SEQUENCE)
    memo: dict[bytes, Entry] = {}
    hits = [0] * len(table)  # frames per (16 * last + counter): folded into E2E statuses at the end
    scheme = dec.scheme

    def slow_piece(d: Decoded | None, u: Unreadable | None) -> bytes:
        """A whole line (any kind) from the general path: the head already written is taken back."""
        buf[-1] = buf[-1][: -len(_HEAD)]
        line = json_unreadable(u) if u is not None else json_frame(describer, d) if d is not None else ""
        return line.encode() + b"\n" + _HEAD

    def entry(key: bytes) -> Entry:
        """(offset, counter, 16 * counter, JSON fragment after the timestamp, data, master); offset -1:
        general path for a well-formed frame, -2: for a key that is not a frame at all.  ``master`` is a
        heartbeat's (id, epoch), for the link's new-master rule."""
        if not _KEY.fullmatch(key):
            return -2, 0, 0, b"", b"", None
        ident, _, hex_data = key.partition(b"#")
        can_id = int(ident, 16)
        extended = len(ident) > 3
        if extended and can_id & CAN_ERR_FLAG:
            return -1, 0, 0, b"", b"", None  # an error frame: the general path words it
        data = bytes.fromhex(hex_data.decode())
        c = classify(scheme, can_id, extended, CanKind.DATA, data)
        if isinstance(c, Bad) or isinstance(c.message, SetLimit | Release | Join):
            return -1, 0, 0, b"", b"", None  # stateful text (CUT/GRANT), a reboot (JOIN) or bad: general path
        master = (c.message.master_id, c.message.epoch) if isinstance(c.message, Heartbeat) else None
        rec = frame_record(describer, None, c.message, c.counter, can_id, E2EStatus.OK)
        del rec["record"], rec["t"], rec["e2e"]
        text = json.dumps(rec)
        frag = (", " + text[1:-1] + ', "e2e": ').encode()
        return c.offset, c.counter, c.counter << 4, frag, data, master

    def general(chunk: bytes, first: int, ts: bytes, key: bytes, valid_key: bool) -> bytes:
        """One line the fast loop does not handle, through the general decoder."""
        dec.records -= 1  # already counted with its chunk
        r: Record | None
        if valid_key:  # a well-formed frame whose JSON depends on state (CUT/GRANT) or that is bad
            r = Frame(float(ts), *_frame_fields(key))
        else:  # not a frame: find its line number, scanning on from the previous one (rows come in order)
            unreadable_rows[0] += 1
            pos, line = scan
            at = chunk.find(b"(" + ts + b")", pos)
            if at >= 0:
                line += chunk.count(_NL, pos, at)
                scan[:] = [at, line]
            where = f"line {first + line}" if at >= 0 else "line ?"
            end = chunk.find(_NL, at)
            r = parse_line(chunk[at:end if end >= 0 else len(chunk)] if at >= 0 else b"(" + ts + b") - " + key, where)
        assert r is not None
        d = dec.feed(r)
        if d is None:
            assert isinstance(r, Unreadable)
            return slow_piece(None, r)
        return slow_piece(d, None)

    buf: list[bytes] = [_HEAD]
    ext = buf.extend
    get = memo.get
    scan = [0, 0]  # (offset, line) in the current chunk of the last line reported by number
    unreadable_rows = [0]  # in the current chunk: rows with a timestamp whose frame part is no frame
    try:
        for first, chunk in chunks:
            scan[:] = [0, 0]
            unreadable_rows[0] = 0
            layout = fixed_layout(chunk)
            rows: Iterable[tuple[bytes, bytes]] | None = None
            matches: list[tuple[bytes, bytes]] = []
            n_lines = len(chunk) // layout.size if layout is not None else chunk.count(b"\n") + (
                0 if chunk.endswith(b"\n") else 1)
            if layout is not None:
                rows = layout.iter_unpack(chunk)
                first_ts, first_key = layout.unpack_from(chunk)
            else:
                matches = _FAST_LINE.findall(chunk)
                if len(matches) == n_lines and matches:
                    rows, (first_ts, first_key) = matches, matches[0]
            if rows is not None:
                dec.records += n_lines
                # first_t and last_t as the general path sets them: from the first and last row that is a frame
                # (a row the general path takes, a SET_LIMIT, must not set first_t before the fast rows above it)
                first_open = dec.first_t is None
                if first_open and _KEY.fullmatch(first_key):
                    dec.first_t = float(first_ts)
                ts = first_ts
                lo, hi = inf, -inf  # the chunk's earliest and latest frame (a reordered capture: anywhere in it)
                for ts, key in rows:
                    e = get(key)
                    if e is None:
                        if len(memo) > 1 << 18:
                            memo.clear()
                        e = memo[key] = entry(key)
                    offset, counter, counter16, frag, data, master = e
                    if offset >= 0:
                        # Link.check, inlined: the silence rule, the new-master rule, then the status table (6.3)
                        t = float(ts)
                        if t < lo:
                            lo = t
                        if t > hi:
                            hi = t
                        if t - heard[offset] > STREAM_MEMORY_S:
                            link.forget((offset,), Restart.SILENCE)
                        heard[offset] = t
                        if master is not None and master != link.master:
                            link.heartbeat_from(master)
                        k = last[offset] + counter
                        last[offset] = counter16
                        prev = last_data[offset]
                        if repeated[k] and prev is not None and prev != data:  # same counter, other bytes: a twin
                            ext((ts, frag, second_sender))
                            dec.counts[E2EStatus.WRONG_SEQUENCE.value] += 1
                        else:
                            ext((ts, frag, table[k]))
                            hits[k] += 1
                        last_data[offset] = data
                    else:
                        ext((general(chunk, first, ts, key, offset != -2),))
                if unreadable_rows[0]:  # (rare) a row with a time but no frame: no time of the capture's
                    times = [t for t, key in rows_of(layout, chunk, matches) if _KEY.fullmatch(key)]
                    if times:
                        if first_open:
                            dec.first_t = float(times[0])
                        dec.last_t = float(times[-1])
                else:
                    dec.last_t = float(ts)
                if lo <= hi:  # (the lines the general path took widened the span in dec.feed)
                    dec.spans(lo, hi)
            else:
                for i, line in enumerate(chunk.split(_NL)):
                    r = parse_line(line, f"line {first + i}")
                    if r is None:
                        continue
                    d = dec.feed(r)
                    if d is None:
                        assert isinstance(r, Unreadable)
                        ext((slow_piece(None, r),))
                    else:
                        ext((slow_piece(d, None),))
            data = b"".join(buf)
            out.write(data[: -len(_HEAD)])
            if flush:
                out.flush()
            buf.clear()
            buf.append(_HEAD)
    finally:  # also when interrupted (Ctrl-C on a live pipe): the counts so far are the summary's
        for k, n in enumerate(hits):
            if n:
                dec.counts[statuses[k].value] += n


def rows_of(layout: struct.Struct | None, chunk: bytes, matches: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The chunk's (timestamp, key) rows again: cut by its fixed layout, or its regex matches."""
    return list(layout.iter_unpack(chunk)) if layout is not None else matches


#: a fast-path memo entry: (offset, counter, 16 * counter, JSON fragment, data, a heartbeat's (id, epoch))
Entry = tuple[int, int, int, bytes, bytes, tuple[int, int] | None]


def _frame_fields(key: bytes) -> tuple[int, bool, bytes, CanKind]:
    """(id, extended, data, kind) of a key already checked against ``_KEY``."""
    ident, _, hex_data = key.partition(b"#")
    can_id = int(ident, 16)
    extended = len(ident) > 3
    if extended and can_id & CAN_ERR_FLAG:
        return can_id & 0x1FFFFFFF, True, b"", CanKind.ERROR_FRAME
    return can_id, extended, bytes.fromhex(hex_data.decode()), CanKind.DATA


def _suffix(status: E2EStatus) -> bytes:
    return b'"' + status.value.encode() + b'"}\n' + _HEAD
