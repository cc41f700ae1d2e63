"""`busshare decode`: every python-can format and candump text, bad input reported and counted, never fatal."""

from __future__ import annotations

import io
import json
import os
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import can
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.analysis.decode import CaptureDecoder
from busshare.analysis.decode import JsonLines
from busshare.analysis.decode import json_fast
from busshare.analysis.decode import parse_line
from busshare.analysis.decode import read_chunks
from busshare.analysis.decode import text_records
from busshare.analysis.summary import CaptureSummary
from busshare.analysis.summary import format_summary
from busshare.cli import main
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import decode
from busshare.frames import offset_of
from busshare.protocol.canid import IdScheme
from busshare.protocol.e2e import E2EStatus
from busshare.protocol.e2e import frame_crc
from busshare.protocol.e2e import status_table
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from tests.report.test_json_schema import validator
from tests.support.captures import stream_rule_traffic
from tests.support.captures import traffic
from tests.support.captures import write_candump_l
from tests.support.captures import write_with_python_can

ROOT = Path(__file__).resolve().parents[2]
N = 400


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "busshare", *args], input=None if stdin is None else stdin.decode(),
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def json_lines(text: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def frames() -> list[tuple[float, int, bytes]]:
    return list(traffic(N, servants=4, session=8.0))


def expected(frames: list[tuple[float, int, bytes]]) -> list[tuple[str, int | None]]:
    out = []
    for _, off, data in frames:
        msg, _ = decode(off, data)
        out.append((msg.TYPE.name, getattr(msg, "address", None) if msg.TYPE.name != "HEARTBEAT" else None))
    return out


def decoded(records: list[dict]) -> list[tuple[str, int | None]]:  # type: ignore[type-arg]
    return [(r["type"], r.get("address")) for r in records if "type" in r]


# ---------------------------------------------------------------------------
# formats


@pytest.mark.parametrize("suffix", [".log", ".asc", ".blf", ".trc", ".csv"])
def test_every_python_can_format_decodes_to_the_same_messages(tmp_path: Path, frames, suffix: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"capture{suffix}"
    write_with_python_can(str(path), iter(frames))
    r = cli("decode", "--json", str(path))
    assert r.returncode == 0, r.stderr
    records = json_lines(r.stdout)
    assert decoded(records) == expected(frames)
    totals = records[-1]
    assert totals["records"] == N and totals["good"] == N and totals["bad"] == 0


def test_text_and_json_outputs_agree_on_every_frame(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.log"
    write_candump_l(str(path), iter(frames))
    text = cli("decode", str(path)).stdout.splitlines()
    records = json_lines(cli("decode", "--json", str(path)).stdout)
    assert len(text) == len(records) == N + 1
    for line, rec in zip(text, records, strict=False):
        assert rec.get("type", "").replace("SET_LIMIT", "") in line.replace("CUT", "").replace("GRANT", "").replace(
            "SET", "") or rec["type"] == "SET_LIMIT"
    assert text[-1] == f"{N} records: {N} good, 0 bad"


def test_candump_text_on_stdin_in_both_formats(frames) -> None:  # type: ignore[no-untyped-def]
    log_l = "".join(f"({t:.6f}) vcan0 {off:03X}#{data.hex().upper()}\n" for t, off, data in frames)
    plain = "".join(f"  vcan0  {off:03X}   [8]  {data.hex(' ').upper()}\n" for _, off, data in frames)
    plain_t = "".join(f" ({t:.6f})  vcan0  {off:03X}   [8]  {data.hex(' ').upper()}\n" for t, off, data in frames)
    for text in (log_l, plain, plain_t):
        r = cli("decode", "--json", "-", stdin=text.encode())
        assert r.returncode == 0, r.stderr
        assert decoded(json_lines(r.stdout)) == expected(frames)


def test_gzip_candump_log(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    import gzip

    path = tmp_path / "c.log"
    write_candump_l(str(path), iter(frames))
    gz = tmp_path / "c.log.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert decoded(json_lines(cli("decode", "--json", str(gz)).stdout)) == expected(frames)


# ---------------------------------------------------------------------------
# bad input: reported with a reason, counted, never fatal


def sealed(offset: int, tail: bytes) -> bytes:
    return bytes((frame_crc(offset, tail),)) + tail


BAD_LINES = {
    "garbage": ("this is not a frame\n", "unreadable"),
    "bad hex": ("(1.000000) vcan0 040#ZZ\n", "unreadable"),
    "odd hex": ("(1.000000) vcan0 040#ABC\n", "unreadable"),
    "foreign id": ("(1.000000) vcan0 7FF#0011223344556677\n", "foreign"),
    "remote": ("(1.000000) vcan0 040#R\n", "remote"),
    "error frame": ("(1.000000) vcan0 20000080#0000000000000000\n", "error-frame"),
    "fd": ("(1.000000) vcan0 040##1AA0001070080020F\n", "fd"),
    "dlc 9-15": ("(1.000000) vcan0 040#AA0001070080020F_C\n", "dlc"),  # candump -L: 8 bytes, DLC 12
    "crc": ("(1.000000) vcan0 040#AB0001070080020F\n", "crc"),
    "length": ("(1.000000) vcan0 040#5B00\n", "length"),
    "address": (f"(1.000000) vcan0 041#{sealed(0x41, bytes(7)).hex()}\n", "address"),
    "reserved": (f"(1.000000) vcan0 101#{sealed(0x101, bytes([0, 0x40, 1, 0, 0, 1, 0])).hex()}\n", "reserved"),
}


@pytest.mark.parametrize("suffix", [".asc", ".blf"])
def test_a_classic_frame_whose_dlc_is_9_to_15_is_no_protocol_frame_in_a_capture(tmp_path: Path, suffix: str) -> None:
    """ASC and BLF keep a frame's DLC: a valid HEARTBEAT's 8 bytes with DLC 12 are ``dlc``, never decoded, as
    the runtime and the monitor call them; the same bytes with DLC 8 are the protocol's."""
    off, data = Link().encode(Heartbeat(1, 7, 640))
    path = tmp_path / f"c{suffix}"
    with can.Logger(str(path)) as logger:
        for i, dlc in enumerate((12, 8)):
            logger.on_message_received(can.Message(timestamp=1700000000.0 + i, arbitration_id=off, data=data,
                                                   dlc=dlc, is_extended_id=False, channel=0))
    records = json_lines(cli("decode", "--json", str(path)).stdout)
    assert [r["record"] for r in records] == ["bad-frame", "frame", "summary"], records
    assert records[0]["error"] == "dlc" and records[0]["reason"] == "classic frame whose DLC is not 8, not a protocol frame"
    assert records[-1]["not_protocol"] == {"dlc": 1} and records[-1]["good"] == 1
    for rec in records:
        assert not list(validator().iter_errors(rec)), rec


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_each_bad_record_is_reported_with_its_reason_and_counted(tmp_path: Path, frames, name: str) -> None:  # type: ignore[no-untyped-def]
    line, kind = BAD_LINES[name]
    good = [f"({t:.6f}) vcan0 {off:03X}#{data.hex().upper()}\n" for t, off, data in frames[:20]]
    path = tmp_path / "c.log"
    path.write_text("".join(good[:10]) + line + "".join(good[10:]))
    r = cli("decode", "--json", str(path))
    assert r.returncode == 0 and r.stderr == ""
    records = json_lines(r.stdout)
    bad = [rec for rec in records if rec["record"] in ("bad-frame", "unreadable")]
    assert len(bad) == 1 and bad[0].get("error", bad[0]["record"]) == kind and bad[0]["reason"]
    assert len(decoded(records)) == 20
    totals = records[-1]
    assert totals["bad"] == 1 and totals["good"] == 20
    strict = cli("decode", "--strict", str(path))
    assert strict.returncode == 1
    assert "Traceback" not in strict.stderr


def test_a_repeated_frame_is_an_e2e_error_and_a_jump_is_acted_on(tmp_path: Path) -> None:
    """PROTOCOL.md 6.3: a duplicate is not acted on (bad); a counter jump is (good), and counted apart."""
    link = Link()
    hb = Heartbeat(1, 7, 640)
    frames = [link.encode(hb) for _ in range(3)]
    lines = [frames[0], frames[0], frames[1]] + [link.encode(hb) for _ in range(6)][-1:]
    path = tmp_path / "c.log"
    path.write_text("".join(f"({i}.000000) vcan0 {off:03X}#{d.hex()}\n" for i, (off, d) in enumerate(lines)))
    records = json_lines(cli("decode", "--json", str(path)).stdout)
    assert [r["e2e"] for r in records[:-1]] == ["ok", "repeated", "ok", "wrong-sequence"]
    assert records[-1]["e2e_errors"] == {"repeated": 1}
    assert (records[-1]["good"], records[-1]["bad"], records[-1]["wrong_sequence"]) == (3, 1, 1)
    assert "wrong-sequence 1 (accepted)" in cli("decode", str(path)).stdout


def test_both_decoder_paths_classify_every_frame_as_the_link_does() -> None:
    """The candump -L fast path, the general path (one record at a time) and a node's Link.receive give every
    frame the same E2E status, through reboots, master changes, duplicates and silences (PROTOCOL.md 6.3)."""
    frames = stream_rule_traffic(random.Random(12), 3000)
    log = "".join(f"({1_700_000_000 + t / 1000:.6f}) vcan0 {off:03X}#{data.hex().upper()}\n" for t, off, data in frames)
    fast = io.BytesIO()
    json_fast(read_chunks(io.BytesIO(log.encode()), size=4096), CaptureDecoder(), fast)
    general, dec = io.StringIO(), CaptureDecoder()
    sink = JsonLines(general.write)
    for line in log.encode().splitlines():
        rec = parse_line(line, "-")
        assert rec is not None
        d = dec.feed(rec)
        assert d is not None
        sink.frame(d)
    rx = Link()
    node = [rx.receive(off, data, t / 1000).status for t, off, data in frames]
    assert [r["e2e"] for r in json_lines(fast.getvalue().decode())] == [s.value for s in node if s]
    assert [r["e2e"] for r in json_lines(general.getvalue())] == [s.value for s in node if s]
    assert len(rx.restarts) == 3 and E2EStatus.REPEATED in node


def test_the_decoder_uses_the_link_and_its_status_table() -> None:
    """One E2E classifier: the decoder's fast table is the link's, which is e2e.classify tabulated."""
    dec = CaptureDecoder(max_delta=5)
    assert dec.link.checker.table == status_table(5)
    assert dec.link.max_delta == 5


def test_a_file_that_cannot_be_read_is_one_line_and_nonzero(tmp_path: Path) -> None:
    for args in (["decode", str(tmp_path / "missing.log")], ["decode", str(tmp_path / "missing.blf")],
                 ["decode", str(tmp_path)], ["decode", "--id-base", "0x123", "-"]):
        r = cli(*args, stdin=b"")
        assert r.returncode != 0
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    weird = tmp_path / "capture.xyz"
    weird.write_text("x")
    r = cli("decode", str(weird))
    assert r.returncode != 0 and "unknown capture format" in r.stderr


@pytest.mark.parametrize("name", ["capture.asc", "capture.log", "capture.blf"])
def test_a_capture_that_is_a_directory_is_one_line_worded_as_any_unreadable_capture(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    r = cli("decode", str(tmp_path / name))
    assert r.returncode == 2 and r.stderr == f"busshare decode: cannot read {tmp_path / name}: Is a directory\n", r.stderr


def test_a_truncated_blf_keeps_what_was_read_and_reports_the_rest(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.blf"
    write_with_python_can(str(path), iter(frames))
    data = path.read_bytes()
    cut = tmp_path / "cut.blf"
    cut.write_bytes(data[: len(data) * 2 // 3])
    r = cli("decode", "--json", str(cut))
    assert r.returncode == 0, r.stderr
    records = json_lines(r.stdout)
    assert records[-1]["records"] >= 1  # a truncated BLF is read as far as it goes
    assert "Traceback" not in r.stderr
    # python-can's reader just stops at the cut: it is one unreadable record, and --strict fails on it
    unreadable = [rec for rec in records if rec["record"] == "unreadable"]
    assert len(unreadable) == 1 and "truncated" in unreadable[0]["reason"], unreadable
    assert records[-1]["unreadable"] == 1 and records[-1]["good"] == records[-1]["records"] - 1
    assert cli("decode", "--strict", str(cut)).returncode == 1
    assert cli("decode", "--strict", str(path)).returncode == 0  # (the whole file is clean)


def test_a_blf_container_of_an_unknown_compression_is_counted_unreadable_not_logged(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    """python-can skips a LOG_CONTAINER whose compression method it does not know with a warning on stderr, and
    its frames are gone: an unreadable record that says so, counted (``--strict`` fails), nothing on stderr.
    (The next container starts inside an object the skipped one began, so python-can stops there: reported
    after it, as any damage.)"""
    path = tmp_path / "c.blf"
    with can.BLFWriter(str(path), max_container_size=1024) as writer:  # several containers: the others are read
        for t, off, data in frames:
            writer.on_message_received(can.Message(timestamp=t, arbitration_id=off, is_extended_id=False, data=data))
    blob = bytearray(path.read_bytes())
    first = blob.index(b"LOBJ")  # the first object after the file header: a LOG_CONTAINER (type 10)
    signature, _, _, size, kind = struct.unpack_from("<4sHHLL", blob, first)
    assert kind == 10 and size < len(blob) - first
    method_at = first + struct.calcsize("<4sHHLL")  # the container's first field: its compression method
    assert struct.unpack_from("<H", blob, method_at)[0] in (0, 2)
    struct.pack_into("<H", blob, method_at, 7)
    bad = tmp_path / "bad.blf"
    bad.write_bytes(bytes(blob))
    r = cli("decode", "--json", str(bad))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    records = json_lines(r.stdout)
    unreadable = [rec for rec in records if rec["record"] == "unreadable"]
    assert unreadable[0]["reason"] == ("a container of unknown compression method 7: python-can skips it and "
                                       "what it holds"), unreadable
    assert records[-1]["unreadable"] == len(unreadable) and records[-1]["good"] < len(frames)
    strict = cli("decode", "--strict", str(bad))
    assert strict.returncode == 1 and "bad records" in strict.stderr, strict.stderr
    assert "Unknown compression" not in strict.stderr
    assert cli("decode", "--strict", str(path)).returncode == 0  # (the file as written is clean)


def test_asc_lines_python_can_passes_over_are_counted_unreadable(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    """python-can's ASC reader skips every line it does not know without a word: a cut one or garbage is lost
    unseen.  decode counts and lists each (and --strict fails); comments, status and statistic events are no
    damage and are not counted."""
    path = tmp_path / "c.asc"
    write_with_python_can(str(path), iter(frames[:40]))
    lines = path.read_text().splitlines(keepends=True)
    meta = ["// a comment\n", " 1.000000 CAN 1 Status:chip status error active\n", " 1.000000 1 Statistic: D 0 R 0\n"]
    bad = ["garbage here\n", " 0.8\n"]
    at = len(lines) // 2
    path.write_text("".join(lines[:at] + meta + bad + lines[at:]))
    r = cli("decode", "--json", str(path))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    records = json_lines(r.stdout)
    unreadable = [rec for rec in records if rec["record"] == "unreadable"]
    assert [u["where"] for u in unreadable] == [f"line {at + 4}", f"line {at + 5}"], unreadable
    assert "garbage here" in unreadable[0]["reason"]
    assert (records[-1]["good"], records[-1]["unreadable"]) == (40, 2), records[-1]
    summary = cli("decode", "--summary", "--strict", str(path))
    assert summary.returncode == 1 and "unreadable 2" in summary.stdout and "bad records 2" in summary.stderr
    path.write_text("".join(lines[:at] + meta + lines[at:]))
    assert cli("decode", "--strict", str(path)).returncode == 0



def test_trc_lines_python_can_skips_are_counted_unreadable_not_logged(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    """python-can's TRC reader drops a line it cannot parse (a cut one) or of a type it does not read (an
    error or status line) with only a log message on stderr; decode counts and lists each, like a bad line."""
    path = tmp_path / "c.trc"
    write_with_python_can(str(path), iter(frames[:20]))
    lines = path.read_text().splitlines(keepends=True)
    body = [i for i, line in enumerate(lines) if " DT " in line]
    kept = lines[: body[5]] + ["    99      5.000 ST  1     0000 Rx -  0\r\n"]  # a type python-can does not read
    kept += lines[body[5]: body[10]] + [lines[body[10]][:20]]  # 10 frames around it, then one cut short
    path.write_text("".join(kept))
    r = cli("decode", "--json", str(path))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    records = json_lines(r.stdout)
    unreadable = [rec for rec in records if rec["record"] == "unreadable"]
    assert [u["reason"].split(" '")[0] for u in unreadable] == ["Unsupported type", "Failed to parse message"]
    summary = records[-1]
    assert (summary["records"], summary["good"], summary["unreadable"]) == (12, 10, 2), summary


@pytest.mark.parametrize(("suffix", "bad"), [
    (".asc", " 5.000000 1  181             Rx   d 8 ZZ 00 00 00 00 00 00 00\n"),  # a byte that is not hex
    (".csv", "5.0,0x181\n"),  # a short row
    (".csv", "5.0,0x181,0,0,0,8,not-base64!\n"),
])
def test_a_bad_line_in_a_python_can_text_capture_loses_nothing_after_it(tmp_path: Path, frames, suffix: str,  # type: ignore[no-untyped-def]
                                                                      bad: str) -> None:
    """python-can's text readers stop for good at a line they cannot parse: every frame after it was lost."""
    path = tmp_path / f"c{suffix}"
    write_with_python_can(str(path), iter(frames[:40]))
    lines = path.read_text().splitlines(keepends=True)
    at = len(lines) // 2
    path.write_text("".join(lines[:at] + [bad] + lines[at:]))
    r = cli("decode", "--json", str(path))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    records = json_lines(r.stdout)
    unreadable = [rec for rec in records if rec["record"] == "unreadable"]
    assert [u["where"] for u in unreadable] == [f"line {at + 1}"], unreadable
    assert bad.strip()[:20] in unreadable[0]["reason"]
    summary = records[-1]
    assert (summary["good"], summary["unreadable"]) == (40, 1), summary  # every frame, before and after it

junk_line = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
    st.builds(lambda i, d: b"(1.5) vcan0 %s#%s" % (i, d),
              st.text("0123456789ABCDEFXZ", max_size=9).map(str.encode),
              st.text("0123456789abcdefR#g ", max_size=20).map(str.encode)),
    st.builds(lambda i, n, d: b"  vcan0  %s   [%d]  %s" % (i, n, d),
              st.text("0123456789ABCDEF", min_size=1, max_size=8).map(str.encode), st.integers(0, 99),
              st.text("0123456789ABCDEF ", max_size=30).map(str.encode)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(junk_line, max_size=12), st.integers(0, 12))
def test_garbage_never_raises_and_every_line_is_accounted_for(lines: list[bytes], where: int) -> None:
    link = Link()
    good = [link.encode(Status(2, 7, PilotState.C, 160, 150, 320)) for _ in range(3)]
    body = [b"(2.000000) vcan0 %03X#%s" % (off, d.hex().encode()) for off, d in good]
    text = b"\n".join(lines[:where] + body + lines[where:]) + b"\n"
    # the general path
    dec = CaptureDecoder()
    out = io.StringIO()
    sink = JsonLines(out.write)
    for rec in text_records(io.BytesIO(text)):
        d = dec.feed(rec)
        sink.frame(d) if d is not None else sink.unreadable(dec.unreadable[-1])
    general = json_lines(out.getvalue())
    # the fast path
    dec2 = CaptureDecoder()
    buf = io.BytesIO()
    json_fast(read_chunks(io.BytesIO(text)), dec2, buf)
    fast = json_lines(buf.getvalue().decode())
    assert fast == general
    nonblank = sum(1 for line in text.split(b"\n") if line.strip())
    assert dec.records == dec2.records == nonblank
    assert dec.counts == dec2.counts
    assert sum(1 for r in general if r.get("type") == "STATUS") >= 3 - sum(1 for r in general if r.get("e2e") == "repeated")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_truncated_or_random_files_of_every_format_never_traceback(tmp_path_factory, data: bytes) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("junk")
    for suffix in (".log", ".asc", ".blf", ".trc", ".csv"):
        path = d / f"junk{suffix}"
        path.write_bytes(data)
        out = io.StringIO()
        old = sys.stdout
        sys.stdout = out
        try:
            rc = main(["decode", "--json", str(path)])
        finally:
            sys.stdout = old
        assert rc in (0, 2)
        if rc == 0:
            assert json_lines(out.getvalue())[-1]["record"] == "summary"


def test_fast_path_takes_fixed_width_and_ragged_files_alike(frames) -> None:  # type: ignore[no-untyped-def]
    """Same JSON whether the lines share one width (struct cut) or not (regex), or leading zeros (general)."""
    variants = [
        "".join(f"({t:.6f}) vcan0 {off:03X}#{data.hex().upper()}\n" for t, off, data in frames),
        "".join(f"({t - 1.7e9:.6f}) can{i % 2} {off:03X}#{data.hex().upper()} R\n"
                for i, (t, off, data) in enumerate(frames)),
        "".join(f"({t - 1.7e9:017.6f}) vcan0 {off:03X}#{data.hex().upper()}\n" for t, off, data in frames),
    ]
    results = []
    for v in variants:
        dec = CaptureDecoder()
        buf = io.BytesIO()
        json_fast(read_chunks(io.BytesIO(v.encode()), size=4096), dec, buf)
        recs = json_lines(buf.getvalue().decode())
        results.append([{k: x for k, x in r.items() if k != "t"} for r in recs])
        assert all(isinstance(r["t"], float) for r in recs)
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("ragged", [False, True])
def test_both_paths_span_a_reordered_capture_from_its_earliest_to_its_latest_time(ragged: bool) -> None:
    """A capture over a dozen chunks whose earliest and latest lines sit mid-chunk (the time goes back across
    chunks and inside them): the candump -L fast path (fixed-width or ragged lines) and the general path give
    the same span, the earliest to the latest time, as ``--summary`` and the closing record count it."""
    link = Link()
    frames = [(1_700_000_000 + i / 100, *link.encode(Heartbeat(1, 7, 640))) for i in range(1200)]
    frames.insert(650, frames.pop(0))  # the earliest record, mid-file
    frames.insert(333, frames.pop())  # the latest
    frames[100:700] = frames[100:700][::-1]  # backwards over several chunks
    text = "".join(f"({t:.6f}) {'can0' if ragged and i % 3 else 'vcan0'} {off:03X}#{data.hex().upper()}\n"
                   for i, (t, off, data) in enumerate(frames)).encode()
    fast = CaptureDecoder()
    json_fast(read_chunks(io.BytesIO(text), size=4096), fast, io.BytesIO())
    general = CaptureDecoder()
    for rec in text_records(io.BytesIO(text)):
        general.feed(rec)
    assert general.span_s == pytest.approx(11.99) and (general.earliest_t, general.latest_t) == (
        1_700_000_000, 1_700_000_011.99)
    assert (fast.first_t, fast.earliest_t, fast.latest_t, fast.span_s) == (
        general.first_t, general.earliest_t, general.latest_t, general.span_s)


def _fast_and_general(text: bytes) -> tuple[CaptureDecoder, CaptureDecoder]:
    fast = CaptureDecoder()
    json_fast(read_chunks(io.BytesIO(text), size=4096), fast, io.BytesIO())
    general = CaptureDecoder()
    for rec in text_records(io.BytesIO(text)):
        general.feed(rec)
    return fast, general


def _times(dec: CaptureDecoder) -> tuple[object, ...]:
    return dec.first_t, dec.last_t, dec.earliest_t, dec.latest_t, dec.span_s, dec.records, dict(dec.counts)


@pytest.mark.parametrize("shape", ["set-limit-second", "unreadable-ends", "unreadable-run", "all-unreadable"])
@pytest.mark.parametrize("ragged", [False, True])
def test_the_fast_path_takes_the_first_and_last_time_from_frames_as_the_general_path_does(
        shape: str, ragged: bool) -> None:
    """A line with a timestamp whose frame part is no frame (same width: the fixed-width cut takes it) is
    unreadable, and gives the capture no time; a frame the fast path hands to the general one (a SET_LIMIT)
    right after the first line does not make itself the first.  first_t is the closing record's start_t."""
    heartbeats, servant = Link(), Link()
    lines = []
    for i in range(600):  # several 4 kB chunks
        off, data = servant.encode(SetLimit(3, 39, 320, 60, 7)) if i in (1, 300) else heartbeats.encode(
            Heartbeat(1, 7, 640))
        iface = "can0" if ragged and i % 3 else "vcan0"
        lines.append(f"({1_700_000_000 + i / 10:.6f}) {iface} {off:03X}#{data.hex().upper()}\n")

    def bad(line: str) -> str:
        return line[:-5] + "ZZZZ\n"  # same width, bad hex

    if shape == "unreadable-ends":
        lines[0], lines[-1] = bad(lines[0]), bad(lines[-1])
    elif shape == "unreadable-run":
        lines[95:140] = [bad(x) for x in lines[95:140]]
    elif shape == "all-unreadable":
        lines = [bad(x) for x in lines]
    fast, general = _fast_and_general("".join(lines).encode())
    assert _times(fast) == _times(general)
    if shape == "unreadable-ends":
        assert (general.first_t, general.last_t) == (1_700_000_000.1, 1_700_000_059.8)
    if shape == "set-limit-second":
        assert general.first_t == 1_700_000_000


# ---------------------------------------------------------------------------
# id schemes


@pytest.mark.parametrize("base,extended", [(0x200, False), (0x18DA0000, True)])
def test_non_default_id_schemes(tmp_path: Path, frames, base: int, extended: bool) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.asc"
    write_with_python_can(str(path), iter(frames), base=base, extended=extended)
    ok = json_lines(cli("decode", "--json", "--id-base", hex(base), *(["--extended"] if extended else []),
                        str(path)).stdout)
    assert decoded(ok) == expected(frames)
    wrong = json_lines(cli("decode", "--json", str(path)).stdout)
    assert wrong[-1]["not_protocol"] == {"foreign": N}


def test_parse_line_knows_both_candump_formats() -> None:
    a = parse_line(b"(1700000000.500000) vcan0 183#4B15120000000000", "line 1")
    b = parse_line(b"  vcan0  183   [8]  4B 15 12 00 00 00 00 00", "line 1")
    c = parse_line(b" (1700000000.500000)  can1  18DA0001   [8]  4B 15 12 00 00 00 00 00", "line 1")
    assert a is not None and b is not None and c is not None
    assert (a.can_id, a.data, a.t) == (0x183, bytes.fromhex("4B15120000000000"), 1700000000.5)  # type: ignore[union-attr]
    assert (b.can_id, b.data, b.t) == (0x183, bytes.fromhex("4B15120000000000"), None)  # type: ignore[union-attr]
    assert (c.can_id, c.extended) == (0x18DA0001, True)  # type: ignore[union-attr]
    assert parse_line(b"   ", "line 2") is None


def test_plain_candump_lines_keep_the_dlc_and_the_fd_length_as_candump_prints_them() -> None:
    """Plain candump (can-utils lib.c snprintf_long_canframe) never prints ``[9]``-``[15]`` for a classic frame:
    with -8 it prints the raw DLC in hex, ``{C}`` before 8 bytes for DLC 12 (a ``dlc`` frame, never decoded),
    ``{8}`` for DLC 8; a CAN FD frame's length is two digits, ``[08]`` (an ``fd`` frame, even with 8 valid bytes)."""
    off, data = Link().encode(Heartbeat(1, 7, 640))
    shown = " ".join(f"{b:02X}" for b in data)
    text = (f" (1700000000.000000)  vcan0  {off:03X}   {{C}}  {shown}\n"  # candump -t a -8
            f" (1700000001.000000)  vcan0  {off:03X}  [08]  {shown}\n"  # candump -t a, a CAN FD frame
            f" (1700000002.000000)  vcan0  {off:03X}   {{8}}  {shown}\n"
            f" (1700000003.000000)  vcan0  {off:03X}   {{C}}  {shown[:11]}\n")  # {C} is only ever before 8 bytes
    records = json_lines(cli("decode", "--json", "-", stdin=text.encode()).stdout)
    assert [r.get("error", r["record"]) for r in records] == ["dlc", "fd", "frame", "unreadable", "summary"], records
    assert records[0]["reason"] == "classic frame whose DLC is not 8, not a protocol frame"
    assert "{C} does not match 4 data bytes" in records[3]["reason"]
    assert records[-1]["not_protocol"] == {"dlc": 1, "fd": 1} and records[-1]["good"] == 1
    for rec in records:
        assert not list(validator().iter_errors(rec)), rec


def test_plain_candump_with_its_text_column_decodes_as_without_it() -> None:
    """candump -a (can-utils lib.c: the bytes again as text between quotes, '.' for an unprintable one, a quote
    itself as a quote) decodes frame for frame as plain candump does; a text column of another length is unreadable."""
    link = Link()
    frames = [link.encode(Heartbeat(1, 7, 640)), link.encode(SetLimit(3, 39, 320, 60, 7))]
    plain, with_text = [], []
    for i, (off, data) in enumerate(frames):
        shown = " ".join(f"{b:02X}" for b in data)
        text = "".join(chr(b) if 0x1F < b < 0x7F else "." for b in data)
        plain.append(f" (170000000{i}.000000)  vcan0  {off:03X}   [8]  {shown}\n")
        with_text.append(f" (170000000{i}.000000)  vcan0  {off:03X}   [8]  {shown}   '{text}'\n")
    assert 0x27 in frames[1][1], "txn 39: a byte shown as a quote inside the quotes"
    off, data = frames[0]
    shown = " ".join(f"{b:02X}" for b in data)
    bad = f" (1700000009.000000)  vcan0  {off:03X}   [8]  {shown}   '....'\n"
    got = json_lines(cli("decode", "--json", "-", stdin="".join(with_text + [bad]).encode()).stdout)
    want = json_lines(cli("decode", "--json", "-", stdin="".join(plain).encode()).stdout)
    assert got[:2] == want[:2] and [r["record"] for r in want[:2]] == ["frame", "frame"]
    assert got[2]["record"] == "unreadable" and "does not match 8 data bytes" in got[2]["reason"]


def _json_of(text: str) -> list[dict]:  # type: ignore[type-arg]
    """The general path's JSON records of candump text, in this process."""
    out: list[str] = []
    dec, lines = CaptureDecoder(), JsonLines(out.append)
    for rec in text_records(io.BytesIO(text.encode())):
        d = dec.feed(rec)
        if d is None:
            lines.unreadable(dec.unreadable[-1])
        else:
            lines.frame(d)
    return json_lines("".join(out))


# two heartbeats of master 1 epoch 7 (64.0 A; alive counters 0 and 1) and servant 3's SET_LIMIT txn 0x60 (a backtick)
CANDUMP = """\
 (1700000000.000000)  vcan0  040   [8]  11 00 01 07 00 80 02 00
 (1700000000.200000)  vcan0  040   [8]  4C 01 01 07 00 80 02 00
 (1700000000.300000)  vcan0  003   [8]  D8 00 60 40 01 3C 00 07
"""


def test_candump_x_lines_decode_as_without_their_columns() -> None:
    """candump -x (can-utils candump.c extra_msg_info): the direction (TX: this host's own frame) and a CAN FD
    frame's BRS/ESI flags after the interface, in a plain line; `` R``/`` T`` after an -L line.  Read past."""
    with_x = """\
 (1700000000.000000)  vcan0  RX - -  040   [8]  11 00 01 07 00 80 02 00
 (1700000000.200000)  vcan0  TX - -  040   [8]  4C 01 01 07 00 80 02 00
 (1700000000.300000)  vcan0  RX - -  003   [8]  D8 00 60 40 01 3C 00 07
"""
    log_x = """\
(1700000000.000000) vcan0 040#1100010700800200 R
(1700000000.200000) vcan0 040#4C01010700800200 T
(1700000000.300000) vcan0 003#D8006040013C0007 R
"""
    want = _json_of(CANDUMP)
    assert [r["record"] for r in want] == ["frame", "frame", "frame"] and want[2]["type"] == "SET_LIMIT"
    assert _json_of(with_x) == want
    assert _json_of(log_x) == want
    fd = parse_line(b"  vcan0  RX B E  040  [08]  11 00 01 07 00 80 02 00", "line 1")
    assert fd is not None and fd.kind.value == "fd"  # type: ignore[union-attr]
    assert parse_line(b"  vcan0  RX - - 040   [8]  11 00 01 07 00 80 02 00", "line 1") == parse_line(
        b"  vcan0  040   [8]  11 00 01 07 00 80 02 00", "line 1")


def test_candump_x_lines_are_taken_for_a_can_capture(tmp_path: Path) -> None:
    from busshare.analysis.decode import looks_like_can_capture

    path = tmp_path / "capture.txt"
    path.write_text(" (1700000000.000000)  vcan0  RX - -  040   [8]  11 00 01 07 00 80 02 00\n" * 3)
    assert looks_like_can_capture(str(path))


def test_candump_s_swapped_bytes_are_put_back_in_bus_order() -> None:
    """candump -S (can-utils lib.c, CANLIB_VIEW_SWAP): the bytes last to first, a backtick between two, and with -a
    the text column in backticks, last to first too (here holding a backtick: txn 0x60).  Decoded as the frame was
    on the bus; a swapped line whose bytes or text column do not match its length is unreadable."""
    swapped = """\
 (1700000000.000000)  vcan0  040   [8]  00`02`80`00`07`01`00`11
 (1700000000.200000)  vcan0  RX - -  040   [8]  00`02`80`00`07`01`01`4C   `.......L`
 (1700000000.300000)  vcan0  003   [8]  07`00`3C`01`40`60`00`D8   `..<.@`..`
"""
    assert _json_of(swapped) == _json_of(CANDUMP)
    bad = _json_of(" (1700000000.000000)  vcan0  040   [8]  02`80`00`07`01`00`11\n"
                   " (1700000000.100000)  vcan0  040   [8]  00`02`80`00`07`01`00`11   `..`\n")
    assert [r["record"] for r in bad] == ["unreadable", "unreadable"]
    assert "[8] does not match 7 data bytes" in bad[0]["reason"]
    assert "text column '..' does not match 8 data bytes" in bad[1]["reason"]


# ---------------------------------------------------------------------------
# --summary: the installation from its frames alone


def summarise(frames: list[tuple[float, int, bytes]], limit_da: int | None = None) -> dict:  # type: ignore[type-arg]
    dec = CaptureDecoder()
    s = CaptureSummary(limit_da=limit_da)
    for t, off, data in frames:
        from busshare.analysis.decode import Frame

        d = dec.feed(Frame(t, off, False, data))
        if d is not None:
            s.frame(d)
    return s.result(dec, "test")


class Bus:
    """Encodes messages as a real installation would send them (one Link per node)."""

    def __init__(self) -> None:
        self.links: dict[int, Link] = {}
        self.frames: list[tuple[float, int, bytes]] = []

    def send(self, t: float, msg: Message, sender: int | None = None) -> None:
        who = msg.address if sender is None else sender
        off, data = self.links.setdefault(who, Link()).encode(msg)
        self.frames.append((t, off, data))

    def heartbeats(self, start: float, end: float, limit_da: int = 640, master_id: int = 1, epoch: int = 7) -> None:
        t, seq = start, 0
        while t < end:
            self.send(t, Heartbeat(master_id, epoch, limit_da), sender=100 + master_id)
            t, seq = round(t + 0.2, 6), seq + 1

    def status(self, t: float, address: int, offered: int, failsafe: bool = False, tag: int | None = None) -> None:
        self.send(t, Status(address, 0x100 + address if tag is None else tag, PilotState.C, offered, offered, 320,
                            failsafe=failsafe), sender=address if tag is None else 1000 + tag)

    def done(self) -> list[tuple[float, int, bytes]]:
        return sorted(self.frames, key=lambda f: f[0])


def test_summary_of_a_healthy_capture(frames) -> None:  # type: ignore[no-untyped-def]
    r = summarise(list(traffic(3000, servants=4, session=20.0)))
    assert [s["address"] for s in r["servants"]] == [1, 2, 3, 4]
    assert r["limit_a"] == 64.0 and r["limit_source"] == "from the master heartbeat"
    assert r["heartbeat_period_s"] == pytest.approx(0.2)
    for key in ("heartbeat_gaps", "failsafe_entries", "cuts_never_acked", "duplicate_addresses", "second_master",
                "over_limit"):
        assert r[key] == [], key
    assert r["e2e_errors"] == {}
    assert r["peak_in_force_a"] <= 64.0


def test_summary_finds_gaps_failsafe_twins_second_master_unacked_cuts_and_over_limit() -> None:
    bus = Bus()
    bus.heartbeats(0.0, 10.0)
    bus.heartbeats(12.0, 30.0)  # a 2 s gap: beyond the failsafe timeout
    bus.status(11.6, 1, 60, failsafe=True)  # servant 1 entered failsafe
    bus.status(3.0, 2, 0)
    bus.status(3.5, 2, 0, tag=0x0777)  # a second unit answering on address 2
    bus.heartbeats(20.1, 21.0, master_id=2, epoch=3)  # a second master
    bus.send(5.0, SetLimit(3, 9, 400, 60, 7), sender=101)  # grant 40 A to servant 3
    bus.send(5.1, Ack(3, 9, 400, None, AckHow.IMMEDIATE))
    bus.send(6.0, SetLimit(4, 10, 400, 60, 7), sender=101)  # and 40 A to servant 4: 80 A > 64 A
    bus.send(8.0, SetLimit(4, 11, 200, 60, 7), sender=101)  # cut servant 4 to 20 A...
    bus.send(8.1, Ack(4, 11, 200, 190, AckHow.MEASURED))  # ...acked: 60 A in force
    bus.send(9.0, SetLimit(3, 12, 100, 60, 7), sender=101)  # a cut never acked
    r = summarise(bus.done())
    assert any("2.0" in g["text"] or "beyond" in g["text"] for g in r["heartbeat_gaps"])
    assert [(e["address"], e["offered_a"]) for e in r["failsafe_entries"]] == [(1, 6.0)]
    assert r["duplicate_addresses"] and "2" in r["duplicate_addresses"][0]
    assert r["second_master"]
    assert len(r["over_limit"]) == 1
    episode = r["over_limit"][0]
    assert (episode["start_s"], episode["end_s"], episode["peak_a"], episode["limit_a"]) == (6.0, 8.1, 80.0, 64.0)
    assert len(r["cuts_never_acked"]) == 1 and "servant 3" in r["cuts_never_acked"][0]


@pytest.mark.parametrize("cut_both", [True, False], ids=["cut", "one-not-cut"])
def test_after_a_heartbeat_limit_drop_the_summary_allows_the_compliance_window(cut_both: bool) -> None:
    """Rule 9: 64 A in force, the limit drops to 38 A at t = 1 with the cuts, acked at 5.5 s: no finding.
    With servant 2 never cut, what is in force is still above 38 A when the window ends (7.05 s): a finding
    from then on (and the watcher's over-limit flag)."""
    bus = Bus()
    bus.heartbeats(0.0, 1.0)
    bus.send(0.1, SetLimit(1, 1, 320, 60, 7), sender=101)
    bus.send(0.1, SetLimit(2, 1, 320, 60, 7), sender=101)
    bus.heartbeats(1.0, 12.0, limit_da=380)
    bus.send(1.0, SetLimit(1, 2, 190, 60, 7), sender=101)
    bus.send(5.5, Ack(1, 2, 190, None, AckHow.TIMED))
    for i in range(24):  # both report every half second
        bus.status(0.5 * i + 0.25, 1, 320 if i < 11 else 190)
        bus.status(0.5 * i + 0.3, 2, 320 if i < 11 or not cut_both else 190)
    if cut_both:
        bus.send(1.0, SetLimit(2, 2, 190, 60, 7), sender=101)
        bus.send(5.6, Ack(2, 2, 190, None, AckHow.TIMED))
    r = summarise(bus.done())
    episodes = [(e["start_s"], e["end_s"], e["peak_a"], e["limit_a"]) for e in r["over_limit"]]
    if cut_both:
        assert episodes == []
    else:
        assert episodes == [(pytest.approx(7.05, abs=0.06), None, 51.0, 38.0)]


def test_an_over_limit_stretch_ends_when_a_heartbeat_raises_the_limit_above_what_is_in_force() -> None:
    """Grants above the announced 38 A from t = 1 (a master not announcing its raise first: a finding);
    the heartbeat at 2.0 carries 64 A, which covers them: the stretch ends there, not at the next grant."""
    bus = Bus()
    bus.heartbeats(0.0, 2.0, limit_da=380)
    bus.send(1.0, SetLimit(1, 1, 320, 60, 7), sender=101)
    bus.send(1.0, SetLimit(2, 1, 320, 60, 7), sender=101)
    bus.heartbeats(2.0, 10.0)
    bus.send(9.0, SetLimit(3, 1, 0, 0, 7), sender=101)
    r = summarise(bus.done())
    episodes = [(e["start_s"], e["end_s"], e["peak_a"], e["limit_a"]) for e in r["over_limit"]]
    assert episodes == [(1.0, pytest.approx(2.0, abs=0.01), 64.0, 38.0)]


def test_a_limit_announced_off_the_schedule_is_not_taken_for_the_heartbeat_period() -> None:
    """Rule 9: the heartbeat at 0.45 s announcing a raise comes between two scheduled ones; its short
    intervals (0.05 s, 0.15 s) among the first few must not make the summary judge 0.2 s as a gap."""
    bus = Bus()
    bus.heartbeats(0.0, 0.5, limit_da=380)
    bus.send(0.45, Heartbeat(1, 7, 640), sender=101)
    bus.heartbeats(0.6, 5.0)
    r = summarise(bus.done())
    assert r["heartbeat_gaps"] == [] and r["heartbeat_period_s"] == pytest.approx(0.2)
    assert [c["limit_a"] for c in r["limit_changes"]] == [38.0, 64.0]


def test_without_a_heartbeat_the_summary_says_how_the_limit_was_inferred() -> None:
    bus = Bus()
    bus.send(1.0, SetLimit(1, 1, 320, 60, 7), sender=101)
    bus.send(2.0, SetLimit(2, 2, 400, 60, 7), sender=101)
    r = summarise(bus.done())
    assert r["limit_a"] is None and "no master heartbeat" in r["limit_source"] and "72.0 A" in r["limit_source"]
    assert r["over_limit"] == []
    r = summarise(bus.done(), limit_da=640)
    assert r["limit_a"] == 64.0 and "--limit" in r["limit_source"]
    assert [(e["start_s"], e["peak_a"]) for e in r["over_limit"]] == [(1.0, 72.0)]


def test_summary_and_plot_from_the_command(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.log"
    write_candump_l(str(path), iter(frames))
    png = tmp_path / "c.png"
    r = cli("decode", "--summary", "--plot", str(png), str(path))
    assert r.returncode == 0, r.stderr
    assert "servants seen: 4" in r.stdout and "limit: 64.0 A (from the master heartbeat)" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    j = json.loads(cli("decode", "--summary", "--json", str(path)).stdout)
    assert len(j["servants"]) == 4 and j["over_limit"] == []


def test_plot_without_matplotlib_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from busshare.errors import UserError
    from busshare.report import plot
    from busshare.report.timeline import Timeline

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UserError, match=r"^plotting needs matplotlib: pip install matplotlib$"):
        plot.plot_timeline(Timeline(640), str(tmp_path / "x.png"))


def test_ids_are_checked_against_the_scheme_not_guessed() -> None:
    scheme = IdScheme(0x200)
    dec = CaptureDecoder(scheme)
    from busshare.analysis.decode import Frame

    msg = Heartbeat(1, 2, 640)
    data = Link().encode(msg)[1]
    assert dec.feed(Frame(0.0, 0x200 + offset_of(msg), False, data)).message == msg  # type: ignore[union-attr]
    bad = dec.feed(Frame(0.0, offset_of(msg), False, data))
    assert bad is not None and bad.bad is not None and bad.bad.kind == "foreign"
    assert os.path.basename(__file__) == "test_decode.py"


def test_a_bad_line_in_a_fixed_width_log_keeps_its_line_number_and_crlf_reads_alike(frames) -> None:  # type: ignore[no-untyped-def]
    lines = [f"({t:.6f}) vcan0 {off:03X}#{data.hex().upper()}\n" for t, off, data in frames]
    lines[57] = lines[57][:-17] + "ZZ" + lines[57][-15:]  # same width, bad hex
    text = "".join(lines).encode()
    for variant in (text, text.replace(b"\n", b"\r\n")):
        dec = CaptureDecoder()
        buf = io.BytesIO()
        json_fast(read_chunks(io.BytesIO(variant)), dec, buf)
        recs = json_lines(buf.getvalue().decode())
        bad = [r for r in recs if r["record"] != "frame"]
        assert [(b["record"], b["where"]) for b in bad] == [("unreadable", "line 58")]
        assert "vcan0" in bad[0]["reason"]
        assert dec.counts["ok"] == len(frames) - 1 - dec.counts["wrong-sequence"] - dec.counts["ok-some-lost"]


def test_heartbeat_gaps_are_judged_against_the_masters_own_period() -> None:
    """A master configured for 0.6 s heartbeats is not a stream of gaps; a 3 s silence still is."""
    bus = Bus()
    t, seq = 0.0, 0
    while t < 30.0:
        if not 12.0 < t < 15.0:
            bus.send(t, Heartbeat(1, 7, 640), sender=101)
            seq += 1
        t = round(t + 0.6, 6)
    r = summarise(bus.done())
    assert r["heartbeat_period_s"] == pytest.approx(0.6)
    gaps = [g for g in r["heartbeat_gaps"] if "gap" in g["text"]]
    assert len(gaps) == 1 and "beyond the failsafe timeout" in gaps[0]["text"]


def test_a_truncated_gzip_log_keeps_what_was_read(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    import gzip

    text = "".join(f"({t:.6f}) vcan0 {off:03X}#{data.hex().upper()}\n" for t, off, data in frames).encode()
    packed = gzip.compress(text)
    path = tmp_path / "cut.log.gz"
    path.write_bytes(packed[: len(packed) // 2])
    for args in (["decode", str(path)], ["decode", "--json", str(path)], ["decode", "--summary", str(path)]):
        r = cli(*args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    records = json_lines(cli("decode", "--json", str(path)).stdout)
    assert any("cannot be read past here" in rec.get("reason", "") for rec in records)
    assert 0 < records[-1]["good"] < N


def test_a_reboot_restarts_alive_counters_without_e2e_errors() -> None:
    """A servant's JOIN and a new master's first heartbeat restart their streams: not lost or repeated frames."""
    from busshare.frames import Join

    bus = Bus()
    bus.heartbeats(0.0, 4.0)
    for i in range(7):
        bus.status(0.5 + 0.5 * i, 3, 0)
    bus.links[3] = Link()  # servant 3 reboots: fresh counters, announced by a JOIN
    bus.send(4.0, Join(3, 0x103, 320))
    bus.status(4.1, 3, 0)
    bus.status(4.6, 3, 0)
    bus.links[101] = Link()  # the master reboots with a new epoch
    bus.heartbeats(5.0, 7.0, epoch=8)
    text = "".join(f"({t:.6f}) vcan0 {off:03X}#{data.hex()}\n" for t, off, data in bus.done()).encode()
    dec = CaptureDecoder()
    general = [dec.feed(r) for r in text_records(io.BytesIO(text))]
    assert all(d is not None and d.status is not None and d.status.value == "ok" for d in general)
    dec2 = CaptureDecoder()
    buf = io.BytesIO()
    json_fast(read_chunks(io.BytesIO(text)), dec2, buf)
    assert {r["e2e"] for r in json_lines(buf.getvalue().decode())} == {"ok"}
    assert dec2.counts == dec.counts


def test_twin_servants_on_one_address_are_not_hidden_as_repeats(tmp_path, capsys) -> None:
    """Same alive counter, other bytes: a second sender (wrong-sequence), only identical bytes repeat."""
    import json as _json

    from busshare.cli import main
    from busshare.frames import PilotState
    from busshare.frames import Status
    from busshare.protocol.link import Link

    a, twin = Link(), Link()
    off, first = a.encode(Status(3, 100, PilotState.C, 320, None, 320))
    _, second = twin.encode(Status(3, 200, PilotState.B, 0, None, 0))  # counter 0 too
    lines = [f"({t:.6f}) vcan0 {off:03X}#{d.hex().upper()}" for t, d in ((1.0, first), (1.1, second), (1.2, second))]
    cap = tmp_path / "twins.log"
    cap.write_text("\n".join(lines) + "\n")
    assert main(["decode", "--json", str(cap)]) == 0  # the fast JSON path
    fast = [_json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["e2e"] for r in fast[:3]] == ["ok", "wrong-sequence", "repeated"]
    assert main(["decode", str(cap)]) == 0  # the general path
    text = capsys.readouterr().out.splitlines()
    assert "wrong-sequence" in text[1] and "repeated" in text[2]


def _documented_summary_keys() -> set[str]:
    """The names docs/JSON.md's `decode` bullet gives a summary record."""
    text = (ROOT / "docs" / "JSON.md").read_text()
    bullet = text[text.index("* `decode`:"):]
    bullet = bullet[:bullet.index("\n\n")]
    return {name for name in re.findall(r"`([a-z_0-9]+)`", bullet)}


def test_json_doc_names_every_key_of_the_decode_summary_and_no_other(tmp_path: Path) -> None:
    """A script reads docs/JSON.md: every key a `decode --summary --json` record has is named there, and
    every name there is a key of the record or of its servants, masters, over-limit episodes, limit changes or
    backward timestamps."""
    bus = Bus()
    bus.heartbeats(0.0, 3.0)
    bus.status(1.0, 1, 100)
    bus.send(1.5, SetLimit(3, 9, 400, 60, 7), sender=101)
    bus.send(1.6, SetLimit(4, 10, 400, 60, 7), sender=101)
    path = tmp_path / "c.log"
    write_candump_l(str(path), iter(bus.done()))
    r = json.loads(cli("decode", "--summary", "--json", str(path)).stdout)
    assert r["servants"] and r["masters"] and r["over_limit"] and r["limit_changes"]
    nested = set(r["servants"][0]) | set(r["masters"][0]) | set(r["over_limit"][0]) | set(r["limit_changes"][0])
    nested |= set(r["timestamps_backwards"])
    lowered = Bus()  # and a capture that stops inside a compliance window: its over_limit_at_end
    lowered.heartbeats(0.0, 1.0)
    lowered.send(0.1, SetLimit(1, 1, 320, 60, 7), sender=101)
    lowered.send(0.15, Ack(1, 1, 320, None, AckHow.IMMEDIATE))
    lowered.heartbeats(1.0, 2.0, limit_da=200)
    write_candump_l(str(path), iter(lowered.done()))
    lowered_r = json.loads(cli("decode", "--summary", "--json", str(path)).stdout)
    assert lowered_r["over_limit_at_end"] is not None and not list(validator().iter_errors(lowered_r))
    nested |= set(lowered_r["over_limit_at_end"])
    prose = {"decode", "null", "crc", "repeated"}  # the command's name, a JSON value, the e2e_errors kinds
    named = _documented_summary_keys()
    assert named - set(r) - nested - prose == set()
    assert set(r) - named - {"record", "command", "start_t", "duration_s"} == set()


def test_a_moving_limit_shows_over_time_in_the_summary_its_text_and_the_plot(tmp_path: Path) -> None:
    """A master with a live budget (rule 9) carries its effective limit in every heartbeat: a capture alone
    shows the budget over time, in the JSON record, the text and the plot."""
    bus = Bus()
    bus.heartbeats(0.0, 5.0, limit_da=640)
    bus.heartbeats(5.0, 10.0, limit_da=400)
    bus.heartbeats(10.0, 15.0, limit_da=520)
    for t in (1.0, 6.0, 11.0):
        bus.status(t, 1, 300)
    path = tmp_path / "c.log"
    write_candump_l(str(path), iter(bus.done()))
    j = json.loads(cli("decode", "--summary", "--json", str(path)).stdout)
    assert [(round(c["t"] - j["start_t"], 3), c["limit_a"]) for c in j["limit_changes"]] == [
        (0.0, 64.0), (5.0, 40.0), (10.0, 52.0)]
    text = cli("decode", "--summary", str(path)).stdout
    assert "limit over time: 64.0 A from 0.000 s, 40.0 A from 5.000 s, 52.0 A from 10.000 s" in text
    svg = tmp_path / "c.svg"
    assert cli("decode", "--summary", "--plot", str(svg), str(path)).returncode == 0
    assert 'id="budget"' in svg.read_text()
    fixed = Bus()
    fixed.heartbeats(0.0, 2.0)
    write_candump_l(str(path), iter(fixed.done()))
    j = json.loads(cli("decode", "--summary", "--json", str(path)).stdout)
    assert [c["limit_a"] for c in j["limit_changes"]] == [64.0]
    assert "limit over time" not in cli("decode", "--summary", str(path)).stdout


def test_a_capture_whose_timestamps_go_back_is_said_to_be_out_of_order(tmp_path: Path) -> None:
    """A merged or reordered capture is judged in file order: its time-based findings (here a heartbeat gap
    and servants 'not in failsafe') are artefacts, and the summary says so before them."""
    ordered = list(traffic(3000, servants=4, session=20.0))
    moved = ordered[:1000] + ordered[2000:2100] + ordered[1000:2000] + ordered[2100:]
    r = summarise(ordered)
    assert r["timestamps_backwards"] == {"count": 0, "largest_s": 0.0, "first_record": None}
    assert "go back" not in format_summary(r)
    r = summarise(moved)
    back = r["timestamps_backwards"]
    assert back["count"] == 1 and back["first_record"] == 1101
    assert back["largest_s"] == pytest.approx(moved[1099][0] - moved[1100][0], abs=1e-3)
    text = format_summary(r).splitlines()
    assert text[1].startswith("timestamps go back once (by up to ") and "first at record 1101" in text[1]
    assert r["heartbeat_gaps"]  # the artefact the line warns about
    path = tmp_path / "merged.log"
    write_candump_l(str(path), iter(moved))
    j = json.loads(cli("decode", "--summary", "--json", str(path)).stdout)
    assert j["timestamps_backwards"] == back
    assert not list(validator().iter_errors(j))


@pytest.mark.parametrize("end", [3.0, 9.0], ids=["inside-the-window", "past-the-window"])
def test_a_stretch_open_at_the_end_is_a_finding_only_once_it_outlives_the_compliance_bound(end: float) -> None:
    """Rule 9: the limit drops to 38 A at t = 1 with both cuts; the capture stops before they are acked.
    Stopped at 3 s (inside the 6.05 s window) it cannot tell: open at the end, younger than the bound, no
    finding, and the cuts await their acks.  Stopped at 9 s the window is over: a finding from 7.05 s."""
    bus = Bus()
    bus.heartbeats(0.0, 1.0)
    for a in (1, 2):
        bus.send(0.1, SetLimit(a, 1, 320, 60, 7), sender=101)
        bus.send(0.15, Ack(a, 1, 320, None, AckHow.IMMEDIATE))
        bus.send(1.0, SetLimit(a, 2, 190, 60, 7), sender=101)
    bus.heartbeats(1.0, end, limit_da=380)
    r = summarise(bus.done())
    episodes = [(e["start_s"], e["end_s"], e["peak_a"], e["limit_a"]) for e in r["over_limit"]]
    text = format_summary(r)
    if end < 7.0:
        assert episodes == [] and r["cuts_never_acked"] == []
        assert r["over_limit_at_end"] == {"start_s": 1.0, "peak_a": 64.0, "limit_a": 38.0, "bound_s": 6.05}
        assert len(r["cuts_awaiting_ack"]) == 2
        assert "open at the end of the capture, younger than the bound" in text
        assert "over the limit: none" in text
    else:
        # (until the watcher gives the cuts up as never acked, and stops counting them at their old value)
        assert episodes == [(pytest.approx(7.05, abs=0.06), pytest.approx(7.2, abs=0.06), 64.0, 38.0)]
        assert r["over_limit_at_end"] is None and r["cuts_awaiting_ack"] == []
        assert len(r["cuts_never_acked"]) == 2
        assert "younger than the bound" not in text


def test_a_reordered_capture_is_listed_relative_to_its_first_frame_and_says_so(tmp_path: Path) -> None:
    """Times going back (10 s, 11 s, 9.5 s, 12 s): the listing keeps them relative to the first frame, as
    --summary counts them (so 9.5 s is -0.500: before it), and says once, where it happens, that the capture
    is reordered; the closing line says so too."""
    link = Link()
    path = tmp_path / "reordered.log"
    lines = []
    for t in (10.0, 11.0, 9.5, 12.0):
        off, data = link.encode(Heartbeat(1, 7, 640))
        lines.append(f"({1700000000 + t:.6f}) vcan0 {off:03X}#{data.hex().upper()}\n")
    path.write_text("".join(lines))
    r = cli("decode", str(path))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert [line.split()[0] for line in out if "HEARTBEAT" in line] == ["0.000", "1.000", "-0.500", "2.000"]
    notes = [i for i, line in enumerate(out) if line.startswith("REORDERED")]
    assert len(notes) == 1 and out[notes[0] + 1].startswith("-0.500"), out
    assert "record 3" in out[notes[0]] and "relative to the first frame" in out[notes[0]]
    assert out[-1].endswith("reordered: the time goes back once"), out[-1]
    summary = cli("decode", "--summary", "--json", str(path))  # the same base: the first frame's time
    r_json = json.loads(summary.stdout)
    assert r_json["timestamps_backwards"] == {"count": 1, "largest_s": 1.5, "first_record": 3}
    assert cli("decode", "--summary", str(path)).stdout.splitlines()[1].startswith("timestamps go back once")


def test_a_reordered_capture_lasts_from_its_earliest_to_its_latest_time(tmp_path: Path) -> None:
    """Heartbeats at 10 s, 12 s, 9 s (the last record is the earliest): the capture spans 3 s, 9-12, where
    last minus first said -1 s.  The summary's text and its JSON agree."""
    link = Link()
    path = tmp_path / "reordered.log"
    lines = []
    for t in (10.0, 12.0, 9.0):
        off, data = link.encode(Heartbeat(1, 7, 640))
        lines.append(f"({1700000000 + t:.6f}) vcan0 {off:03X}#{data.hex().upper()}\n")
    path.write_text("".join(lines))
    text = cli("decode", "--summary", str(path)).stdout.splitlines()
    assert text[0] == f"capture {path}: 3 records over 3.0 s", text[0]
    closing = json.loads(cli("decode", "--summary", "--json", str(path)).stdout)
    assert closing["duration_s"] == pytest.approx(3.0)
    # the heartbeat period is sampled by the gaps forward in time (10 to 12 s), not 12 s back to 9 s (-3 s)
    assert closing["heartbeat_period_s"] == pytest.approx(2.0)
    validator().validate(closing)
    ordered = tmp_path / "ordered.log"
    ordered.write_text("".join(sorted(lines)))
    assert cli("decode", "--summary", str(ordered)).stdout.splitlines()[0].endswith("3 records over 3.0 s")
