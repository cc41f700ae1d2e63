"""Ctrl-C on `candump -L can0 | busshare decode [--summary] -`: the closing lines of what was read, exit 130.

In-process, with a stdin that hands over a capture and then raises KeyboardInterrupt where a live pipe
would be waiting for more: deterministic, no signal timing.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from busshare.cli import main
from tests.support.captures import traffic
from tests.support.captures import write_candump_l

ROOT = Path(__file__).resolve().parents[2]
DAMAGED = (ROOT / "docs" / "examples" / "damaged.log").read_bytes()  # 7 records: 1 good, 6 bad


class LivePipe(io.RawIOBase):
    """A pipe that delivers ``data``, then is interrupted while waiting for more."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        if not self.data:
            raise KeyboardInterrupt
        n = min(len(b), len(self.data))
        b[:n], self.data = self.data[:n], self.data[n:]
        return n


class Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BufferedReader(LivePipe(data))

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("args", [[], ["--json"], ["--summary"], ["--summary", "--json"],
                                  ["--json", "--time", "relative"], ["--strict"]])
def test_ctrl_c_on_a_live_pipe_prints_the_closing_lines_of_what_was_read(
        args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(DAMAGED))
    assert main(["decode", *args, "-"]) == 130
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "interrupted after 7 records" in err, err
    last = out.splitlines()[-1]
    if "--json" in args:
        summary = json.loads(last)
        assert summary["record"] == "summary" and (summary["records"], summary["good"], summary["bad"]) == (7, 1, 6)
    elif "--summary" in args:
        assert "E2E errors: crc 1, repeated 1" in out and last.startswith("peaks:"), out
    else:
        assert last.startswith("7 records: 1 good, 6 bad"), out


def test_ctrl_c_in_the_fast_json_path_counts_every_good_frame_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A healthy capture goes through the fast JSON path, which folds its E2E counts at the end: Ctrl-C too."""
    path = tmp_path / "healthy.log"
    write_candump_l(str(path), traffic(200))
    monkeypatch.setattr(sys, "stdin", Stdin(path.read_bytes()))
    assert main(["decode", "--json", "-"]) == 130
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = records[-1]
    assert len(records) == 201 and (summary["records"], summary["good"], summary["bad"]) == (200, 200, 0), summary
