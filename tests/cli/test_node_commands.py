"""`busshare master`, `servant` and `monitor` from the command line: output shapes and one-line user errors."""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busshare.cli import main
from busshare.cli.commands._common import printer
from busshare.report.records import TimeBase
from busshare.report.records import TimeMode
from tests.support.site_files import site_toml

SITE = site_toml((1,), limit_a=32, max_a=16)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # a usage error (argparse): the usage, then one line
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["servant", "--address", "99", "-i", "virtual"], "error: argument --address: 99 must be 1-62"),
        (["servant", "--address", "1", "--max", "lots", "-i", "virtual"], "error: argument --max: lots is not a number"),
        (["servant", "--address", "1", "--max", "90", "-i", "virtual"], "error: argument --max: 90 must be 6-80 A"),
        (["servant", "--address", "1", "--min", "20", "--max", "10", "-i", "virtual"],
         "--min 20 is above max_a 10 (given --max)"),
        (["servant", "--address", "1", "-i", "socketcan", "-c", "nope0"], "cannot open CAN bus (socketcan channel nope0)"),
        (["master", "--config", "/nonexistent/site.toml", "-i", "virtual"], "cannot read config"),
        (["monitor", "--id-base", "0x123", "-i", "virtual"], "id base 0x123 must be a multiple of 0x200"),
    ],
)
def test_user_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    last = err.splitlines()[-1]
    assert message in last, err
    assert err.startswith("usage: ") if "error: argument" in message else err.count("\n") == 1, err
    assert "Traceback" not in err


def test_a_servant_speaks_json_lines_and_stops_gracefully(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "servant", "--address", "3", "--json", "--duration", "0.3",
                         "--status-interval", "0.1", "-i", "virtual", "-c", "cmd-servant")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    events = [r.get("event", r["record"]) for r in records]
    assert events[0] == "started" and events[-1] == "stopped"
    assert "status" in events and "offer" in events
    assert all(r["address"] == 3 for r in records)
    assert records[-2]["event"] == "offer" and records[-2]["offer_a"] == 0.0  # the pilot goes off on exit
    assert records[-3]["event"] == "release" and "shutdown" in records[-3]["detail"]  # RELEASE(SHUTDOWN) sent
    assert "pilot: offer 0.0 A, duty 100.0 %" in err  # the bench log goes to stderr in JSON mode


def test_a_master_announces_that_it_leaves(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    code, out, err = run(capsys, "master", "--config", str(site), "--json", "--duration", "0.3",
                       "-i", "virtual", "-c", "cmd-master")
    assert code == 0, err
    events = [json.loads(line).get("event") for line in out.splitlines()]
    assert events[0] == "started" and "leaving" in events and events[-1] == "stopped"


def test_monitor_ends_with_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    code, out, _ = run(capsys, "monitor", "--duration", "0.2", "-i", "virtual", "-c", "cmd-monitor")
    assert code == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handed back
    assert out.splitlines()[-1] == "-- 0 frames; rejected: none; anomalies: none; error frames: 0"
    code, out, _ = run(capsys, "monitor", "--json", "--duration", "0.2", "-i", "virtual", "-c", "cmd-monitor")
    last = json.loads(out.splitlines()[-1])
    assert 0.2 <= last.pop("duration_s") and isinstance(last.pop("start_t"), float)
    assert last == {"record": "summary", "command": "monitor", "frames": 0, "rejected": 0, "e2e_errors": {},
                    "malformed": {}, "not_protocol": {}, "anomalies": {}, "error_frames": 0}


def human_line(t: float, start: float) -> str:
    out = io.StringIO()
    times = TimeBase.monotonic(TimeMode.RELATIVE, start)
    printer(False, times, out=out)({"record": "event", "t": t, "event": "learning", "address": None, "detail": "x"})
    return out.getvalue()


def test_an_event_at_the_start_instant_prints_as_zero_not_minus_zero() -> None:
    # Runtime records carry t rounded to 6 digits; the printer's start is the raw clock reading.
    start = 100.0000004
    assert human_line(round(start, 6), start) == "    0.000 learning: x\n"


@given(start=st.floats(0, 1e7), delta=st.floats(0, 1e5))
def test_event_times_never_print_negative(start: float, delta: float) -> None:
    line = human_line(round(start + delta, 6), start)
    assert not line.lstrip().startswith("-"), line
    assert abs(float(line.split()[0]) - delta) <= 0.0005 + 1e-6  # ms resolution, t on a 1 us grid


def test_a_human_master_log_has_no_negative_times(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    code, out, err = run(capsys, "master", "--config", str(site), "--duration", "0.2", "-i", "virtual",
                         "-c", "cmd-master-human")
    assert code == 0, err
    assert not any(line.lstrip().startswith("-") for line in out.splitlines()), out


def test_a_master_that_hears_nobody_words_its_count_as_a_reservation(capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    """Unknown units count at their maximum (48 A on a 32 A limit): held in reserve, nothing granted."""
    site = tmp_path / "site.toml"
    site.write_text(site_toml((1, 2, 3), limit_a=32, max_a=16))
    code, out, err = run(capsys, "master", "--config", str(site), "--duration", "0.35", "--status-interval", "0.1",
                         "-i", "virtual", "-c", "cmd-master-reserve")
    assert code == 0, err
    status = [line for line in out.splitlines() if " status: " in line]
    assert status, out
    for line in status:
        assert "committed 0.0 A of 32.0 A, plus 48.0 A reserved for 3 unheard units |" in line, line


def test_a_servant_on_a_silent_line_says_it_saw_no_traffic(capsys: pytest.CaptureFixture[str]) -> None:
    """Its closing line was `stopped [1]: ` with nothing after it (every counter 0 is left out)."""
    import os
    import pty

    controller, device = pty.openpty()
    try:
        code = main(["servant", "--modbus", os.ttyname(device), "--address", "1", "--duration", "0.3"])
    finally:
        os.close(controller)
        os.close(device)
    assert code == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.endswith("stopped [1]: no traffic"), last
