"""SIGTERM (`timeout 60 busshare sim ...`, a supervisor) ends `sim` and `decode` as Ctrl-C does: the summary so
far, the files asked for, exit 130; Python's default killed them on the spot with nothing written.

Real processes: each is under way (its first line is out) before the signal is sent, so no timing.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support.signalled import signalled

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT = "(1700000000.000000) vcan0 040#AA0001070080020F\n"  # one good master heartbeat, candump -L


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "busshare", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def terminate_after_first_line(p: subprocess.Popen[str], stdin: str = "") -> tuple[str, str, str]:
    """Send ``stdin``, wait for the first line out, SIGTERM; (first line, the rest of stdout, stderr)."""

    def first_line(p: subprocess.Popen[str]) -> str:
        assert p.stdin is not None and p.stdout is not None
        if stdin:
            p.stdin.write(stdin)
            p.stdin.flush()
        return p.stdout.readline()

    return signalled(p, signal.SIGTERM, first_line)


def test_sigterm_ends_sim_with_its_summary_and_its_capture(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    p = start("sim", "--speed", "5", "--log", str(log))
    first, rest, err = terminate_after_first_line(p)
    assert first.startswith("t=") and p.returncode == 130, err
    assert "Traceback" not in err and "interrupted at " in rest and "invariant violations: 0" in rest, rest + err
    assert log.read_text().startswith("(")


def test_sigterm_ends_a_live_decode_with_its_totals() -> None:
    p = start("decode", "-")
    first, rest, err = terminate_after_first_line(p, stdin=HEARTBEAT)
    assert "HEARTBEAT" in first and p.returncode == 130, err
    assert rest.splitlines()[-1] == "1 records: 1 good, 0 bad" and "interrupted after 1 records" in err, rest + err
