"""A reader that goes away (`busshare ... | head -1`): the command stops as it would have stopped anyway,
nothing it was asked to write elsewhere is lost, and it says nothing false about it.

Each command runs as a real process whose stdout is a pipe closed before it starts, so its very first
write fails (EPIPE): deterministic, no timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_into_closed_pipe(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`busshare ARGS` with its stdout a pipe nobody reads any more."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "busshare", *args], stdout=w, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=timeout)
    finally:
        os.close(w)


@pytest.mark.parametrize("json_mode", [False, True])
def test_sim_into_a_closed_pipe_is_no_violation_and_still_writes_its_capture(tmp_path: Path, json_mode: bool) -> None:
    log = tmp_path / "story.log"
    r = run_into_closed_pipe("sim", "--speed", "max", "--duration", "30", "--log", str(log),
                             *(["--json"] if json_mode else []))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "invariant" not in r.stderr and "node-exception" not in r.stderr, r.stderr
    frames = log.read_text().splitlines()  # the capture asked for is there, of the part that ran
    assert frames and all(line.startswith("(") for line in frames)
    assert "stdout closed" in r.stderr  # and it says that the run stopped early


@pytest.mark.parametrize("command", [
    ["master", "--config", str(ROOT / "examples" / "site.toml")],
    ["servant", "--address", "1", "--ev", "bench"],
    ["servant", "--address", "1", "--ev", "sim"],
])
@pytest.mark.parametrize("json_mode", [False, True])
def test_a_node_into_a_closed_pipe_still_shuts_down_cleanly(command: list[str], json_mode: bool) -> None:
    channel = f"closed-stdout-{os.getpid()}"
    r = run_into_closed_pipe(*command, "-i", "virtual", "-c", channel, "--duration", "30",
                             *(["--json"] if json_mode else []), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert "not properly shut down" not in r.stderr, r.stderr  # the bus was closed: the shutdown ran to its end


@pytest.mark.parametrize("command", [
    ["master", "--config", str(ROOT / "examples" / "site.toml")],
    ["servant", "--address", "1", "--ev", "bench"],
])
def test_a_node_whose_reader_goes_away_mid_run_stops_with_its_whole_shutdown(command: list[str]) -> None:
    channel = f"closed-stdout-{os.getpid()}"
    p = subprocess.Popen([sys.executable, "-m", "busshare", *command, "-i", "virtual", "-c", channel,
                          "--duration", "600", "--status-interval", "0.1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert p.stdout is not None and p.stderr is not None
        assert "started" in p.stdout.readline()  # under way
        p.stdout.close()  # `| head -1`: the next status line fails
        err = p.stderr.read()
        assert p.wait(timeout=120) == 0, err  # long before --duration
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "Traceback" not in err and "not properly shut down" not in err, err


@pytest.mark.parametrize("json_mode", [False, True])
def test_check_config_into_a_closed_pipe_keeps_its_verdict(json_mode: bool) -> None:
    """`busshare check-config site.toml | grep -q servant`: a script with pipefail must not read a bad file as good."""
    r = run_into_closed_pipe("check-config", str(ROOT / "docs" / "examples" / "bad-site.toml"),
                             *(["--json"] if json_mode else []))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr


FULL = Path("/dev/full")


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full (a device that is always full)")
@pytest.mark.parametrize("command", [
    ["master", "--config", str(ROOT / "examples" / "site.toml")],
    ["servant", "--address", "1", "--ev", "bench"],
])
def test_a_node_whose_stdout_is_full_says_so_and_still_shuts_down(command: list[str]) -> None:
    channel = f"full-stdout-{os.getpid()}"
    with FULL.open("w") as full:
        r = subprocess.run([sys.executable, "-m", "busshare", *command, "-i", "virtual", "-c", channel,
                            "--duration", "30"], stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and r.stderr == f"busshare {command[0]}: No space left on device\n", r.stderr


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full (a device that is always full)")
def test_sim_whose_stdout_is_full_says_so_and_still_writes_its_capture(tmp_path: Path) -> None:
    log = tmp_path / "story.log"
    with FULL.open("w") as full:
        r = subprocess.run([sys.executable, "-m", "busshare", "sim", "--speed", "max", "--duration", "30",
                            "--log", str(log)], stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and r.stderr.endswith("busshare sim: No space left on device\n"), r.stderr
    assert "invariant" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert log.read_text().startswith("(")  # what ran is kept


def _capture_with_a_late_second_master(tmp_path: Path, seconds: float) -> str:
    """``seconds`` of one master's heartbeats (candump -L), and in the last one a second master: a finding that
    only the end of the capture shows."""
    from busshare.frames import Heartbeat
    from busshare.protocol.link import Link

    first, second = Link(), Link()
    lines = []
    for i in range(int(seconds / 0.2)):
        offset, data = first.encode(Heartbeat(1, 7, 640))
        lines.append(f"({1700000000 + i * 0.2:.6f}) vcan0 {offset:03X}#{data.hex().upper()}\n")
    offset, data = second.encode(Heartbeat(2, 3, 640))
    lines.append(f"({1700000000 + seconds:.6f}) vcan0 {offset:03X}#{data.hex().upper()}\n")
    path = tmp_path / "late-finding.log"
    path.write_text("".join(lines))
    return str(path)


@pytest.mark.parametrize("json_mode", [False, True])
def test_decode_strict_into_a_closed_pipe_still_judges_the_whole_capture(tmp_path: Path, json_mode: bool) -> None:
    """`busshare decode --strict capture.log | head -1`: the reader is gone before the first line, and the
    finding is in the capture's last record; the status is still the whole capture's."""
    path = _capture_with_a_late_second_master(tmp_path, 10.0)
    r = run_into_closed_pipe("decode", "--strict", path, *(["--json"] if json_mode else []))
    assert r.returncode == 1, r.stderr
    assert r.stderr == "busshare decode: --strict: second master 1\n", r.stderr


def test_decode_strict_piped_into_head_keeps_its_verdict(tmp_path: Path) -> None:
    """A real `| head -1` under pipefail: far more listing than a pipe holds, so the decoder writes on after
    head exits; the status is still that of the whole capture (and a clean capture's is 0)."""
    late = _capture_with_a_late_second_master(tmp_path, 400.0)  # 2000 lines: over 100 kB of listing
    for path, status in ((late, 1), (None, 0)):
        if path is None:  # the same capture without its last line: no finding
            clean = tmp_path / "clean.log"
            clean.write_text("".join(Path(late).read_text().splitlines(keepends=True)[:-1]))
            path = str(clean)
        script = f'set -o pipefail; "{sys.executable}" -m busshare decode --strict "{path}" | head -1'
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == status, r.stderr
        assert r.stdout.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
