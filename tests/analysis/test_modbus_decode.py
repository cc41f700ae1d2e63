"""Decoding Modbus RTU captures into the protocol's frames (timed hex lines, plain hex, raw bytes)."""

from __future__ import annotations

import io
import json
import os
import pty
import signal
import tty
from collections import Counter

import pytest

from busshare.analysis.decode import CaptureDecoder
from busshare.analysis.decode import Frame
from busshare.analysis.decode import Unreadable
from busshare.analysis.modbus_capture import detect
from busshare.analysis.modbus_capture import modbus_records
from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import decode
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from busshare.transport.modbus import registers as mm
from busshare.transport.modbus import rtu

BAUD = 19200


def line_bytes() -> tuple[list[bytes], list[object]]:
    """A short session on the line: heartbeat, a poll with a grant, the reply with a status, an mbpoll read."""
    master, servant = Link(), Link()
    hb = master.encode(Heartbeat(1, 7, 640))
    grant = master.encode(SetLimit(3, 1, 320, 60, 7))
    status = servant.encode(Status(3, 0x1234, PilotState.C, 320, 310, 320))
    frames = [
        rtu.write_multiple_request(0, mm.BROADCAST_BOX, mm.slot_regs(*hb)),
        rtu.read_write_request(3, mm.OUTBOX, mm.OUTBOX_REGS, mm.INBOX, mm.pack_inbox(0, [grant])),
        rtu.read_response(3, rtu.READ_WRITE_MULTIPLE, mm.pack_outbox(mm.OutboxBatch(5, 0, (status,)))),
        rtu.read_request(3, 0, 10),  # a tool reading the plain registers: not the protocol's
        rtu.read_response(3, rtu.READ_HOLDING, range(10)),
    ]
    msgs = [decode(*hb)[0], decode(*grant)[0], decode(*status)[0]]
    return frames, msgs


def timed_text(frames: list[bytes], style: str = "emulator") -> bytes:
    t, out = 10.0, []
    for f in frames:
        hexes = f.hex(" ")
        if style == "emulator":
            out.append(f"{t:.6f} {hexes}  # from 0")
        else:
            h, rest = divmod(t, 3600)
            out.append(f"[{int(h):02d}:{int(rest // 60):02d}:{rest % 60:06.3f}] RX: {f.hex()}")
        t += rtu.wire_time(len(f), BAUD) + 0.005
    return ("\n".join(out) + "\n").encode()


def messages(recs: list[Frame | Unreadable]) -> list[object]:
    return [decode(r.can_id, r.data)[0] for r in recs if isinstance(r, Frame)]


def test_timed_emulator_capture_decodes_to_the_protocol_messages() -> None:
    frames, msgs = line_bytes()
    stats: Counter[str] = Counter()
    recs = list(modbus_records(io.BytesIO(timed_text(frames)), BAUD, stats))
    assert messages(recs) == msgs
    assert all(isinstance(r, Frame) and r.t is not None for r in recs)
    assert stats["modbus-other"] == 2  # the register read and its reply: counted, not reported as bad


def test_sniffer_style_lines_with_clock_times_decode_the_same() -> None:
    frames, msgs = line_bytes()
    text = timed_text(frames, style="sniffer")
    assert detect(text) == "timed"
    assert messages(list(modbus_records(io.BytesIO(text), BAUD))) == msgs


def test_raw_bytes_and_plain_hex_are_split_by_crc() -> None:
    frames, msgs = line_bytes()
    raw = b"".join(frames)
    assert messages(list(modbus_records(io.BytesIO(raw)))) == msgs
    hex_text = "\n".join(f.hex(" ") for f in frames).encode()
    assert detect(hex_text) == "hex"
    assert messages(list(modbus_records(io.BytesIO(hex_text)))) == msgs


def test_bad_frames_are_reported_with_their_reason_never_fatal() -> None:
    frames, msgs = line_bytes()
    bad = bytearray(frames[2])
    bad[10] ^= 0x04  # the status reply corrupted on the line
    mixed = [frames[0], b"\xff\x00\x13\x37", frames[1], bytes(bad)]
    recs = list(modbus_records(io.BytesIO(timed_text(mixed)), BAUD))
    reasons = [r.reason for r in recs if isinstance(r, Unreadable)]
    assert len(reasons) == 2 and all(reasons)
    assert any("CRC" in r for r in reasons)
    assert messages(recs) == msgs[:2]


def test_a_resent_outbox_batch_is_decoded_once_as_the_master_does() -> None:
    frames, msgs = line_bytes()
    session = [frames[1], frames[2], frames[1], frames[2]]  # the master's ack was lost: same batch again
    stats: Counter[str] = Counter()
    recs = list(modbus_records(io.BytesIO(b"".join(session)), None, stats))
    assert [type(m).__name__ for m in messages(recs)] == ["SetLimit", "Status", "SetLimit"]
    assert stats["outbox-resent"] == 1


def test_the_can_decoder_accepts_the_records_as_they_are() -> None:
    frames, _ = line_bytes()
    dec = CaptureDecoder()
    for rec in modbus_records(io.BytesIO(timed_text(frames)), BAUD):
        dec.feed(rec)
    assert dec.counts["ok"] == 3 and dec.bad_total == 0


def test_garbage_only_input_yields_reports_not_exceptions() -> None:
    recs = list(modbus_records(io.BytesIO(bytes(range(256)) * 3)))
    assert recs and all(isinstance(r, Unreadable) for r in recs)
    text = b"0.5 zz zz\nnot a line\n1.0 01 03\n"
    assert all(isinstance(r, Unreadable) for r in modbus_records(io.BytesIO(text), BAUD, fmt="timed"))


def test_the_decode_command_reads_a_modbus_capture(tmp_path, capsys) -> None:
    """`busshare decode --modbus` gives the same listing, --json and --summary as for CAN."""
    import json

    from busshare.cli import main

    frames, _ = line_bytes()
    cap = tmp_path / "line.txt"
    cap.write_bytes(timed_text(frames) + b"10.9 de ad be ef\n")
    assert main(["decode", "--modbus", str(cap)]) == 0
    text = capsys.readouterr().out
    assert "master→3 SET 32.0 A tx 1" in text and "bad CRC" in text
    assert main(["decode", "--modbus", "--json", str(cap)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[-1]["record"] == "summary" and lines[-1]["good"] == 3
    assert main(["decode", "--modbus", "--summary", str(cap)]) == 0
    summary = capsys.readouterr().out
    assert "limit: 64.0 A (from the master heartbeat)" in summary
    assert main(["decode", "--modbus", "--strict", str(cap)]) == 1  # the garbage burst is a bad record
    assert main(["decode", "--modbus", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("header", [b"", b"# rs485 line: 6 ports, 19200 baud, t = time.monotonic() - 1.0\n"])
def test_a_modbus_capture_decoded_as_can_suggests_the_flag(tmp_path, capsys, header: bytes) -> None:
    """Not a thousand `UNREADABLE ... not a candump line` lines: one line naming the flag."""
    from busshare.cli import main

    frames, _ = line_bytes()
    cap = tmp_path / "line.txt"
    cap.write_bytes(header + timed_text(frames))
    assert main(["decode", str(cap)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"busshare decode --modbus {cap}" in err and "Modbus RTU capture" in err
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"".join(f.hex(" ").encode() + b"\n" for f in frames))
    assert main(["decode", "--summary", str(plain)]) == 2
    assert "--modbus" in capsys.readouterr().err
    can = tmp_path / "can.log"  # a CAN capture is still a CAN capture
    can.write_text("(1700000000.000000) vcan0 040#AA0001070080020F\n")
    assert main(["decode", str(can)]) == 0


@pytest.mark.parametrize("name", ["can.log", "can.log.gz", "can.asc", "can.blf", "can.trc"])
def test_a_can_capture_decoded_as_modbus_suggests_dropping_the_flag(tmp_path, capsys, name: str) -> None:
    """The mirror case: a CAN capture given with --modbus was `1 bad (unreadable 1)` and nothing else."""
    import gzip

    from busshare.cli import main

    cap = tmp_path / name
    if name.startswith("can.log"):
        text = b"(0.001104) vcan0 1C1#5B20011000002003 R\n(0.002208) vcan0 181#A900000000000220 R\n"
        cap.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    else:
        cap.write_bytes(b"\x00\x01 not parsed: the name says CAN\n")
    assert main(["decode", "--modbus", str(cap)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert f"a CAN capture, not Modbus RTU? try: busshare decode {cap}" in err, err


def test_the_modbus_monitor_on_a_silent_real_pty_ends_with_the_shared_summary(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Same closing line as the CAN monitor's, with the RTU counts where CAN has its error frames."""
    from busshare.cli import main

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    line, device = pty.openpty()
    tty.setraw(device)
    try:
        port = os.ttyname(device)
        assert main(["monitor", "--modbus", port, "--baud", str(BAUD), "--duration", "0.1"]) == 0
        text = capsys.readouterr().out.splitlines()
        assert main(["monitor", "--modbus", port, "--baud", str(BAUD), "--duration", "0.1", "--json"]) == 0
        last = json.loads(capsys.readouterr().out.splitlines()[-1])
    finally:
        os.close(line)
        os.close(device)
    assert text == ["-- 0 frames; rejected: none; anomalies: none; RTU frames 0, other Modbus 0"]
    assert (last["record"], last["command"], last["frames"], last["rejected"], last["anomalies"], last["modbus"]) == (
        "summary", "monitor", 0, 0, {}, {})
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handed back


def test_the_modbus_monitor_strict_stops_at_a_second_master(capsys: pytest.CaptureFixture[str]) -> None:
    """Two masters' heartbeat broadcasts on the line: `monitor --modbus --strict` exits 1 (same rules as CAN)."""
    import threading
    import time

    from busshare.cli import main

    line, device = pty.openpty()
    tty.setraw(device)
    done = threading.Event()

    def two_masters() -> None:
        links = {1: Link(), 2: Link()}
        for _ in range(200):
            for master_id, epoch in ((1, 7), (2, 3)):
                if done.is_set():
                    return
                hb = links[master_id].encode(Heartbeat(master_id, epoch, 640))
                os.write(line, rtu.write_multiple_request(0, mm.BROADCAST_BOX, mm.slot_regs(*hb)))
                time.sleep(0.05)  # well over the 3.5-character gap

    writer = threading.Thread(target=two_masters, daemon=True)
    try:
        writer.start()
        code = main(["monitor", "--modbus", os.ttyname(device), "--baud", str(BAUD), "--strict", "--duration", "30"])
    finally:
        done.set()
        writer.join(10)
        os.close(line)
        os.close(device)
    assert code == 1
    assert "!! two-masters: two masters heartbeating" in capsys.readouterr().out


def test_a_status_the_outbox_replaced_is_no_e2e_anomaly_on_modbus() -> None:
    """A servant's outbox keeps only its newest STATUS: the counter skips, but nothing was lost on the
    line (a batch is sent again until confirmed), so the Modbus watcher does not flag it; on CAN it does."""
    from busshare.analysis.modbus_capture import line_watcher
    from busshare.analysis.watch import BusWatcher

    link = Link()
    frames = [link.encode(Status(3, 0x1234, PilotState.C, 320, 310, 320)) for _ in range(3)]
    checker = Link()
    got = [checker.receive(*frames[0], 0.0), checker.receive(*frames[2], 0.5)]  # the second one was replaced
    assert got[1].status is not None and got[1].status.value == "ok-some-lost"
    for watcher, flagged in ((line_watcher(BAUD), False), (BusWatcher(), True)):
        flags = [f for i, g in enumerate(got) for f in watcher.frame(i * 0.5, g.message, g.status)]
        assert bool([f for f in flags if f.kind == "e2e"]) is flagged


class _OpenPort:
    """The monitor's serial port, already open on a pty (pyserial would flush what is waiting on open)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        pass


def test_the_modbus_monitor_takes_a_rebooted_servant_for_a_reboot_not_for_duplicates(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: the Modbus monitor runs the link's receive policy (PROTOCOL.md 6.3). Servant 3 reboots at
    once: its JOIN and STATUS after the reboot are byte for byte those of its previous life (counters at 0
    again); the JOIN restarts its streams, so both are acted on, not rejected as repeats. A true duplicate
    afterwards is still rejected."""
    from busshare.cli import main
    from busshare.frames import Join

    join, status = Join(3, 0x1234, 320), Status(3, 0x1234, PilotState.C, 0, 0, 320)
    lives = [Link(), Link()]
    batches = [tuple(life.encode(m) for m in (join, status)) for life in lives]
    assert batches[0] == batches[1]
    batches.append(batches[1][1:])  # the last STATUS again: a duplicate
    line_out = b""
    for seq, frames in enumerate(batches):
        line_out += rtu.read_write_request(3, mm.OUTBOX, mm.OUTBOX_REGS, mm.INBOX, mm.pack_inbox(seq, []))
        line_out += rtu.read_response(3, rtu.READ_WRITE_MULTIPLE, mm.pack_outbox(mm.OutboxBatch(seq, 0, frames)))
    line, device = pty.openpty()
    tty.setraw(device)
    tty.setraw(line)
    monkeypatch.setattr("busshare.cli.commands.monitor.open_line", lambda args: _OpenPort(device))
    try:
        os.write(line, line_out)  # all at once: no silence on any stream, only the JOIN can restart them
        assert main(["monitor", "--modbus", os.ttyname(device), "--baud", str(BAUD), "--duration", "0.5",
                     "--json"]) == 0
    finally:
        os.close(line)
        os.close(device)
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    seen = [(r["type"], r["e2e"]) for r in recs if r["record"] == "frame"]
    assert seen == [("JOIN", "ok"), ("STATUS", "ok")] * 2 + [("STATUS", "repeated")]
    assert recs[-1]["rejected"] == 1 and recs[-1]["e2e_errors"] == {"repeated": 1}
