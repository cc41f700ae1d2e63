"""`monitor` names a frame it does not act on as `decode` does: a remote or FD frame with one of the
protocol's ids is `remote` / `fd`, a classic one with a DLC of 9-15 `dlc` (not the protocol's), not a `length`
error, in its lines, its JSON records and its summary."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import can
import pytest

from busshare.analysis.decode import CaptureDecoder
from busshare.analysis.decode import logreader_records
from busshare.cli import main
from busshare.frames import Heartbeat
from busshare.protocol.link import Link
from tests.report.test_json_schema import validator


def _odd_frames(link: Link) -> list[can.Message]:
    """One remote frame, one FD frame and one classic frame with DLC 12 (whose 8 bytes are a valid heartbeat)
    on the heartbeat's id."""
    offset, data = link.encode(Heartbeat(1, 7, 640))
    return [can.Message(arbitration_id=offset, is_remote_frame=True, dlc=8, is_extended_id=False),
            can.Message(arbitration_id=offset, data=data, is_fd=True, is_extended_id=False),
            can.Message(arbitration_id=offset, data=data, dlc=12, is_extended_id=False)]


def _monitor(channel: str, json_mode: bool, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    done = threading.Event()

    def sender() -> None:
        bus = can.Bus(interface="virtual", channel=channel)
        link = Link()
        try:
            while not done.is_set():
                time.sleep(0.05)
                for msg in _odd_frames(link):
                    bus.send(msg)
        finally:
            bus.shutdown()

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        code = main(["monitor", "--duration", "1.0", "-i", "virtual", "-c", channel, *(["--json"] if json_mode else [])])
    finally:
        done.set()
        thread.join(10)
    return code, capsys.readouterr().out


@pytest.mark.parametrize("json_mode", [False, True])
def test_monitor_calls_remote_and_fd_frames_what_decode_calls_them(json_mode: bool,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _monitor(f"kinds-{os.getpid()}-{json_mode}", json_mode, capsys)
    assert code == 0
    lines = [line for line in out.splitlines() if line.strip()]
    if json_mode:
        records = [json.loads(line) for line in lines]
        bad = [r for r in records if r["record"] == "bad-frame"]
        assert {r["error"] for r in bad} == {"remote", "fd", "dlc"}, bad
        summary = records[-1]
        assert not list(validator().iter_errors(summary)), summary
        assert summary["malformed"] == {} and set(summary["not_protocol"]) == {"remote", "fd", "dlc"}, summary
        assert summary["rejected"] == sum(summary["not_protocol"].values())
    else:
        bad = [line for line in lines if " BAD " in line]
        assert bad and all(("remote: remote frame" in b) or ("fd: CAN FD frame" in b) or ("dlc: classic frame" in b)
                           for b in bad), bad
        assert any("dlc: classic frame" in b for b in bad), bad
        assert "length" not in out


def test_decode_names_the_same_frames_with_the_same_words(tmp_path: Path) -> None:
    """The same two frames in a capture: decode's kinds and reasons are the monitor's."""
    path = tmp_path / "odd.asc"
    with can.Logger(str(path)) as logger:
        for i, msg in enumerate(_odd_frames(Link())):
            msg.timestamp = 1700000000.0 + i
            msg.channel = 0
            logger.on_message_received(msg)
    dec = CaptureDecoder()
    reasons = []
    for rec in logreader_records(str(path)):
        d = dec.feed(rec)
        assert d is not None and d.bad is not None
        reasons.append((d.bad.kind, d.bad.reason))
    assert reasons == [("remote", "remote frame, not a protocol frame"), ("fd", "CAN FD frame, not a protocol frame"),
                       ("dlc", "classic frame whose DLC is not 8, not a protocol frame")]
