"""Modbus RTU captures -> the protocol's frames, for `busshare decode` and `busshare monitor --modbus`.

Reads what a sniffer on the RS-485 line records:

* timestamped hex lines, one burst per line, as the emulator writes them
  (``0.104719 03 17 01 00 ...  # from 0``) and as common sniffers do
  (``12:00:01.250 RX: 03 17 ...``, ``[2026-01-02 12:00:01.250] 0317...``);
  frames are split by 3.5-character gaps (so the baud rate matters);
* untimed hex text or a raw byte stream (``cat /dev/ttyUSB0 > line.bin``):
  frames are found by their length rules and CRC.

Each protocol frame carried in a mailbox becomes a ``decode.Frame`` whose
``can_id`` is the frame's id offset (the CAN id at base 0), so the CAN
decoder's E2E checks, ``--summary``, ``--json`` and ``--plot`` apply as they
are.  Bytes that are not a valid RTU frame become ``decode.Unreadable`` with
the reason.  Modbus traffic that is not the protocol's (mbpoll reading the
plain registers, exceptions) is counted in ``stats`` and not yielded.

    for rec in modbus_records(open("line.txt", "rb"), baud=19200, stats=counter):
        ...   # decode.Frame(t, offset, False, data) | decode.Unreadable(where, reason)
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterable
from collections.abc import Iterator
from datetime import datetime
from typing import IO

from ..frames import MsgType
from ..transport.modbus import registers as mm
from ..transport.modbus import rtu
from .decode import Frame
from .decode import Record
from .decode import Unreadable
from .watch import BusWatcher

DEFAULT_BAUD = 19200

_TIME = r"(?P<t>\d+(?:\.\d+)?|\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?|\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?)"
_TIMED = re.compile(
    rb"^\s*\[?" + _TIME.encode() + rb"\]?\s*(?:(?:RX|TX|rx|tx|<|>|<<|>>|R|T)\s*:?\s*)?(?P<hex>(?:[0-9A-Fa-f]{2}[\s:]*)+)"
)
_HEXLINE = re.compile(rb"^\s*(?:[0-9A-Fa-f]{2}[\s:]*)+$")


def _seconds(text: str) -> float:
    if ":" not in text:
        return float(text)
    text = text.replace(",", ".")
    if "-" in text:
        return datetime.fromisoformat(text.replace(" ", "T")).timestamp()
    h, m, s = text.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _hex(text: bytes) -> bytes:
    return bytes.fromhex(re.sub(rb"[\s:]", b"", text).decode())


class Extractor:
    """RTU frames -> protocol frames: pairs each function-23 reply with its request."""

    def __init__(self, stats: Counter[str] | None = None) -> None:
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self._pending: dict[int, rtu.Pdu] = {}  # device -> its latest request
        self._last_seq: dict[int, int] = {}

    def chunk(self, c: rtu.Chunk) -> Iterator[Record]:
        where = "stream" if c.t is None else f"t={c.t:.6f}"
        if not c.ok:
            self.stats["rtu-bad"] += 1
            yield Unreadable(where, f"{c.reason}: {c.data[:24].hex(' ')}{' ...' if len(c.data) > 24 else ''}")
            return
        self.stats["rtu-frames"] += 1
        dev, fc = c.data[0], c.data[1]
        req = self._pending.get(dev)
        is_reply = req is not None and fc & 0x7F == req.function and (
            fc & 0x80 or (fc in (rtu.READ_HOLDING, rtu.READ_INPUT, rtu.READ_WRITE_MULTIPLE)
                          and len(c.data) == 5 + 2 * req.read_count)
            or (fc == rtu.WRITE_MULTIPLE and len(c.data) == 8))
        try:
            pdu = rtu.parse(c.data, "response" if is_reply else None)
        except rtu.RtuError as exc:
            self.stats["rtu-bad"] += 1
            yield Unreadable(where, f"{exc}: {c.data[:24].hex(' ')}")
            return
        if is_reply:
            assert req is not None
            del self._pending[dev]
            if pdu.kind == "exception":
                self.stats["modbus-exception"] += 1
                return
            if req.function == rtu.READ_WRITE_MULTIPLE and req.read_start == mm.OUTBOX and pdu.kind == "response":
                try:
                    batch = mm.unpack_outbox(pdu.values)
                except ValueError as exc:
                    self.stats["rtu-bad"] += 1
                    yield Unreadable(where, f"outbox reply from {dev}: {exc}")
                    return
                if batch.frames and self._last_seq.get(dev) == batch.seq:
                    self.stats["outbox-resent"] += 1  # the master skips a batch it has seen
                    return
                self._last_seq[dev] = batch.seq
                for offset, data in batch.frames:
                    yield Frame(c.t, offset, False, data)
                return
            self.stats["modbus-other"] += 1
            return
        if pdu.kind != "request":
            self.stats["modbus-other"] += 1
            return
        if dev != rtu.BROADCAST_ID:
            self._pending[dev] = pdu
        if fc == rtu.WRITE_MULTIPLE and dev == rtu.BROADCAST_ID and pdu.write_start == mm.BROADCAST_BOX:
            for i in range(0, len(pdu.values) - mm.SLOT_REGS + 1, mm.SLOT_REGS):
                slot = mm.regs_slot(pdu.values[i:i + mm.SLOT_REGS])
                if slot is not None:
                    yield Frame(c.t, slot[0], False, slot[1])
            return
        if fc == rtu.READ_WRITE_MULTIPLE and pdu.write_start == mm.INBOX:
            try:
                _, frames = mm.unpack_inbox(pdu.values)
            except ValueError as exc:
                self.stats["rtu-bad"] += 1
                yield Unreadable(where, f"inbox write to {dev}: {exc}")
                return
            for offset, data in frames:
                yield Frame(c.t, offset, False, data)
            return
        self.stats["modbus-other"] += 1


class LiveSplitter:
    """Timed bytes as they arrive -> RTU chunks, split at 3.5-character gaps (for monitors)."""

    def __init__(self, baud: int) -> None:
        self.baud = baud
        self.tol = max(rtu.gap_time(baud) * 0.5, 1.5 * rtu.char_time(baud))
        self.buf = bytearray()
        self.t0 = 0.0
        self.end = 0.0

    def feed(self, t: float, data: bytes) -> list[rtu.Chunk]:
        out: list[rtu.Chunk] = []
        if self.buf and t - self.end >= self.tol:
            out = self.flush()
        if not self.buf:
            self.t0 = self.end = t
        self.buf += data
        self.end = max(self.end, t) + rtu.wire_time(len(data), self.baud)
        return out

    def flush(self) -> list[rtu.Chunk]:
        if not self.buf:
            return []
        data, self.buf = bytes(self.buf), bytearray()
        return list(rtu.split_by_gaps([(self.t0, data)], self.baud))


def _timed_lines(lines: Iterable[tuple[int, bytes]], bad: list[Unreadable]) -> Iterator[tuple[float, bytes]]:
    for no, line in lines:
        body = line.split(b"#", 1)[0].strip()
        if not body:
            continue
        m = _TIMED.match(body)
        if m is None:
            bad.append(Unreadable(f"line {no}", f"not a timestamped hex line: {body[:60]!r}"))
            continue
        try:
            yield _seconds(m.group("t").decode()), _hex(m.group("hex"))
        except ValueError as exc:
            bad.append(Unreadable(f"line {no}", f"{exc}: {body[:60]!r}"))


def detect(head: bytes) -> str:
    """'timed', 'hex' or 'raw' from the first bytes of a capture."""
    lines = [ln.split(b"#", 1)[0].strip() for ln in head.splitlines()[:20]]
    lines = [ln for ln in lines if ln]
    if lines and all(_TIMED.match(ln) for ln in lines[:-1] or lines):
        if any(_TIMED.match(ln) and not _HEXLINE.match(ln) for ln in lines):
            return "timed"
    if lines and all(_HEXLINE.match(ln) for ln in lines[:-1] or lines):
        return "hex"
    return "raw"


def looks_like_modbus_capture(path: str) -> bool:
    """True for a file whose lines are timestamped or plain hex bursts (the RS-485 emulator's capture, a
    sniffer's log), which no CAN capture format looks like; ``#`` comments are skipped."""
    try:
        with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError):
        return False
    return detect(head) in ("timed", "hex")


def modbus_records(stream: IO[bytes], baud: int | None = None, stats: Counter[str] | None = None,
                   fmt: str | None = None) -> Iterator[Record]:
    """Every protocol frame and bad run in a Modbus RTU capture, in line order.

    ``fmt`` is timed, hex or raw (default: detected from the first 4 KiB).
    ``baud`` sets the 3.5-character gap for timed captures (default 19200).
    """
    ex = Extractor(stats)
    data = stream.read()
    kind = fmt or detect(data[:4096])
    if kind == "timed":
        bad: list[Unreadable] = []
        lines = enumerate(data.splitlines(), 1)
        for c in rtu.split_by_gaps(_timed_lines(lines, bad), baud or DEFAULT_BAUD):
            while bad:
                yield bad.pop(0)
            yield from ex.chunk(c)
        yield from bad
        return
    if kind == "hex":
        raw = bytearray()
        for no, line in enumerate(data.splitlines(), 1):
            body = line.split(b"#", 1)[0].strip()
            if not body:
                continue
            if not _HEXLINE.match(body):
                yield Unreadable(f"line {no}", f"not hex: {body[:60]!r}")
                continue
            raw += _hex(body)
        data = bytes(raw)
    for c in rtu.split_by_crc(data):
        yield from ex.chunk(c)


def line_watcher(baud: int | None, reaction_allowance: float = 5.0) -> BusWatcher:
    """A ``BusWatcher`` for a Modbus line at ``baud``: its heartbeat period and failsafe timeout, the
    shortest silent-servant delay any master of that line uses (one servant: the shortest cycle), so
    that a servant counted at its failsafe by a correct master is never flagged over the limit, and the
    outbox's skipped STATUS and REQUEST counters, which are no loss."""
    from ..transport.modbus.registers import modbus_timing

    line, shortest = modbus_timing(baud or DEFAULT_BAUD), modbus_timing(baud or DEFAULT_BAUD, 1)
    return BusWatcher(heartbeat_period=line.heartbeat_period, failsafe_timeout=line.failsafe_timeout,
                      servant_silent_after=shortest.servant_silent_after, reaction_allowance=reaction_allowance,
                      replaced_types=frozenset({MsgType.STATUS, MsgType.REQUEST}), timing=line)
