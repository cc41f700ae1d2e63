"""Every exit status of every command, as README.md's one table states them, each produced for real.

Scripts rely on these (`busshare decode --strict capture.log || alarm`), so each row of the table has a
case here that makes the command exit with it, and the table and the cases must list the same rows.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import can
import pytest

from busshare.cli import main
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from tests.support.signalled import signalled

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
HEARTBEAT = "(1700000000.000000) vcan0 040#AA0001070080020F\n"  # one good master heartbeat, candump -L


def table() -> set[tuple[str, int]]:
    """(command, status) of every row of README.md's exit-status table."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- exit-codes -->", 1)[1].split("\n\n", 1)[0]
    return {(m[1], int(m[2])) for m in re.finditer(r"^\| `([a-z-]+)` \| (\d+) \|", block, re.M)}


def busshare(*args: str, stdin: str | None = None) -> int:
    r = subprocess.run([sys.executable, "-m", "busshare", *args], input=stdin, capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode


def interrupted(*args: str, after: Callable[[subprocess.Popen[str]], None]) -> int:
    """Start `busshare ARGS`, let ``after`` wait for it to get going, then Ctrl-C it (SIGINT)."""
    p = subprocess.Popen([sys.executable, "-m", "busshare", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _, _, err = signalled(p, signal.SIGINT, after)
    assert "Traceback" not in err, err
    return p.returncode


def first_line(p: subprocess.Popen[str]) -> None:
    assert p.stdout is not None
    assert p.stdout.readline()  # it runs: its first line is out


def started(p: subprocess.Popen[str]) -> None:
    time.sleep(3.0)  # an interpreter start: nothing to wait on, decode prints nothing before its input ends
    assert p.poll() is None


def capture(tmp: Path, text: str) -> str:
    path = tmp / "capture.log"
    path.write_text(text)
    return str(path)


def monitor_two_masters() -> int:
    """`monitor --strict` on an in-process virtual bus where two masters heartbeat: exit 1 at once."""
    channel = f"exit-status-{os.getpid()}"
    done = threading.Event()

    def two_masters() -> None:
        bus = can.Bus(interface="virtual", channel=channel)
        links = {1: Link(), 2: Link()}
        try:
            seq = 0
            while not done.is_set() and seq < 500:
                time.sleep(0.02)
                for master_id, epoch in ((1, 7), (2, 3)):
                    offset, data = links[master_id].encode(Heartbeat(master_id, epoch, 640))
                    bus.send(can.Message(arbitration_id=offset, data=data, is_extended_id=False))
                seq += 1
        finally:
            bus.shutdown()

    sender = threading.Thread(target=two_masters, daemon=True)
    sender.start()
    try:
        return main(["monitor", "--strict", "--duration", "30", "-i", "virtual", "-c", channel])
    finally:
        done.set()
        sender.join(10)


CASES: dict[tuple[str, int], Callable[[Path], int]] = {
    ("sim", 0): lambda tmp: busshare("sim", "--speed", "max", "--quiet", "--duration", "5"),
    ("sim", 1): lambda tmp: busshare("sim", str(EXAMPLES / "slow-watchdog.toml"), "--speed", "max", "--quiet"),
    ("sim", 2): lambda tmp: busshare("sim", "--speed", "0"),
    ("sim", 130): lambda tmp: interrupted("sim", "--speed", "5", after=first_line),
    ("decode", 0): lambda tmp: busshare("decode", capture(tmp, HEARTBEAT)),
    ("decode", 1): lambda tmp: busshare("decode", "--strict", capture(tmp, HEARTBEAT + "this line is not a frame\n")),
    ("decode", 2): lambda tmp: busshare("decode", str(tmp / "missing.log")),
    ("decode", 130): lambda tmp: interrupted("decode", "-", after=started),
    ("monitor", 0): lambda tmp: busshare("monitor", "--duration", "0.3", "-i", "virtual"),
    ("monitor", 1): lambda tmp: monitor_two_masters(),
    ("monitor", 2): lambda tmp: busshare("monitor", "-i", "socketcan", "-c", "nope0"),
    ("master", 0): lambda tmp: busshare("master", "--config", "examples/site.toml", "--duration", "0.3", "-i", "virtual"),
    ("master", 2): lambda tmp: busshare("master", "--config", str(tmp / "missing.toml"), "-i", "virtual"),
    ("servant", 0): lambda tmp: busshare("servant", "--address", "1", "--duration", "0.3", "-i", "virtual"),
    ("servant", 2): lambda tmp: busshare("servant", "--address", "99", "-i", "virtual"),
    ("busload", 0): lambda tmp: busshare("busload", "--servants", "4"),
    ("busload", 2): lambda tmp: busshare("busload", "--bitrate", "0"),
    ("check-config", 0): lambda tmp: busshare("check-config", "examples/site.toml"),
    ("check-config", 1): lambda tmp: busshare("check-config", str(EXAMPLES / "bad-site.toml")),
    ("check-config", 2): lambda tmp: busshare("check-config", str(tmp / "missing.toml")),
    ("busshare", 2): lambda tmp: busshare(),
}


def test_the_table_and_the_cases_list_the_same_rows() -> None:
    assert table() == set(CASES)


@pytest.mark.parametrize(("command", "status"), sorted(CASES))
def test_each_exit_status(command: str, status: int, tmp_path: Path) -> None:
    assert CASES[(command, status)](tmp_path) == status


# -- `decode --strict` and `monitor --strict`: each safety finding on its own --------------------------------

def _finding(kind: str) -> list[tuple[float, Message, int]]:
    """(t, message, sender) of a short capture whose only problem is ``kind`` ("" = none at all)."""
    frames: list[tuple[float, Message, int]] = []
    hb_until = 2.0 if kind == "missing failsafe" else 8.0
    for i in range(int(hb_until / 0.2)):
        frames.append((i * 0.2, Heartbeat(1, 7, 640), 101))
        if kind == "second master":
            frames.append((i * 0.2 + 0.1, Heartbeat(2, 3, 640), 102))
    for i in range(16):
        for a in (1, 2):
            tag = 0x0777 if kind == "duplicate addresses" and a == 2 and i % 2 else 0x100 + a
            frames.append((0.05 + i * 0.5 + a * 0.01, Status(a, tag, PilotState.C, 0, 0, 320), 1000 + tag))
    frames += [(0.3, SetLimit(1, 1, 320, 60, 7), 101), (0.35, Ack(1, 1, 320, 0, AckHow.IMMEDIATE), 1)]
    second = 400 if kind == "over the limit" else 320
    frames += [(0.4, SetLimit(2, 2, second, 60, 7), 101), (0.45, Ack(2, 2, second, 0, AckHow.IMMEDIATE), 2)]
    if kind == "cuts never acked":
        frames.append((1.0, SetLimit(1, 3, 200, 60, 7), 101))
    return sorted(frames, key=lambda f: f[0])


FINDINGS = ["over the limit", "cuts never acked", "missing failsafe", "second master", "duplicate addresses"]


def _candump(frames: list[tuple[float, Message, int]]) -> str:
    links: dict[int, Link] = {}
    lines = []
    for t, msg, sender in frames:
        offset, data = links.setdefault(sender, Link()).encode(msg)
        lines.append(f"({1700000000 + t:.6f}) vcan0 {offset:03X}#{data.hex().upper()}\n")
    return "".join(lines)


@pytest.mark.parametrize("kind", ["", *FINDINGS])
def test_decode_strict_exits_1_on_each_safety_finding(kind: str, tmp_path: Path) -> None:
    path = capture(tmp_path, _candump(_finding(kind)))
    r = subprocess.run([sys.executable, "-m", "busshare", "decode", "--strict", path], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    if not kind:
        assert (r.returncode, r.stderr) == (0, ""), r.stderr
        return
    assert r.returncode == 1, r.stdout[-2000:]
    assert r.stderr.startswith("busshare decode: --strict: ") and kind in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    if kind not in ("second master", "duplicate addresses"):  # two senders on one id garble its alive counter
        assert "bad records" not in r.stderr, r.stderr


@pytest.mark.parametrize(("end", "status"), [(3.0, 0), (9.0, 1)], ids=["inside-the-window", "past-the-window"])
def test_decode_strict_judges_a_stretch_open_at_the_end_by_the_compliance_bound(end: float, status: int,
                                                                                 tmp_path: Path) -> None:
    """The limit drops to 38 A at 1 s with both cuts, and the capture stops before their acks: at 3 s it is
    younger than the 6.05 s bound (rule 9) and no finding; at 9 s it outlived it: over the limit."""
    frames: list[tuple[float, Message, int]] = []
    for i in range(int(end / 0.2)):
        frames.append((i * 0.2, Heartbeat(1, 7, 640 if i * 0.2 < 1.0 else 380), 101))
    for a in (1, 2):
        frames += [(0.1, SetLimit(a, 1, 320, 60, 7), 101), (0.15, Ack(a, 1, 320, None, AckHow.IMMEDIATE), a),
                   (1.0, SetLimit(a, 2, 190, 60, 7), 101)]
    path = capture(tmp_path, _candump(sorted(frames, key=lambda f: f[0])))
    r = subprocess.run([sys.executable, "-m", "busshare", "decode", "--strict", "--summary", path],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == status, r.stdout + r.stderr
    if status == 0:
        assert r.stderr == "" and "open at the end of the capture, younger than the bound" in r.stdout, r.stdout
    else:
        assert "over the limit 1" in r.stderr and "cuts never acked 2" in r.stderr, r.stderr


@pytest.mark.parametrize("kind", FINDINGS)
def test_monitor_strict_stops_at_the_first_safety_finding(kind: str) -> None:
    """The same captures replayed in real time on a virtual bus: the monitor exits 1 once it sees it."""
    channel = f"strict-{kind.replace(' ', '-')}-{os.getpid()}"
    stop = threading.Event()

    def replay() -> None:
        bus = can.Bus(interface="virtual", channel=channel)
        links: dict[int, Link] = {}
        try:
            time.sleep(0.5)  # the monitor opens its end of the bus
            start = time.monotonic()
            for t, msg, sender in _finding(kind):
                while not stop.is_set() and time.monotonic() - start < t:
                    time.sleep(0.005)
                if stop.is_set():
                    return
                offset, data = links.setdefault(sender, Link()).encode(msg)
                bus.send(can.Message(arbitration_id=offset, data=data, is_extended_id=False))
        finally:
            bus.shutdown()

    sender = threading.Thread(target=replay, daemon=True)
    sender.start()
    try:
        code = main(["monitor", "--strict", "--anomalies-only", "--reaction-allowance", "0.5", "--duration", "30",
                     "-i", "virtual", "-c", channel])
    finally:
        stop.set()
        sender.join(10)
    assert code == 1
