"""The RS-485 line emulator: real ptys, every byte to every other port, collisions, faults, capture."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time

import serial

from busshare.devtools.rs485 import Rs485Bus
from busshare.transport.modbus import rtu


def read_all(port: serial.Serial, n: int, timeout: float = 5.0) -> bytes:
    """Up to ``n`` bytes, waiting at most ``timeout`` (generous: shared machines)."""
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        ready, _, _ = select.select([port.fileno()], [], [], 0.05)
        if ready:
            out += os.read(port.fileno(), 4096)
    return out


def quiet(port: serial.Serial, wait: float = 0.3) -> bytes:
    """Whatever arrives within ``wait`` (to show that nothing does)."""
    return read_all(port, 1 << 20, wait)


def open_ports(bus: Rs485Bus) -> list[serial.Serial]:
    return [serial.Serial(p, bus.baud, timeout=0) for p in bus.paths]


def test_every_byte_reaches_every_other_port_but_not_the_writer() -> None:
    with Rs485Bus(4, 115200) as bus:
        ports = open_ports(bus)
        frame = rtu.read_request(7, 0, 10)
        ports[2].write(frame)
        for i in (0, 1, 3):
            assert read_all(ports[i], len(frame)) == frame
        assert quiet(ports[2]) == b""


def test_two_ports_talking_at_once_collide_for_everyone() -> None:
    with Rs485Bus(3, 9600, seed=1) as bus:
        ports = open_ports(bus)
        a, b = rtu.read_response(1, 3, range(20)), rtu.read_response(2, 3, range(20))
        ports[1].write(a)
        ports[2].write(b)
        got = read_all(ports[0], len(a) + len(b))
        assert bus.stats.collisions >= 1
        assert a not in got and b not in got
        assert not any(c.ok for c in rtu.split_by_crc(got))


def test_a_lost_reply_never_reaches_the_line() -> None:
    with Rs485Bus(3, 115200) as bus:
        ports = open_ports(bus)
        bus.drop_next(1)
        ports[1].write(rtu.read_request(1, 0, 1))
        assert quiet(ports[0]) == b""
        ports[1].write(rtu.read_request(1, 0, 2))  # only the next burst was lost
        assert read_all(ports[0], 8) == rtu.read_request(1, 0, 2)
        assert bus.stats.dropped == 8


def test_a_corrupted_burst_arrives_with_one_bit_flipped() -> None:
    with Rs485Bus(2, 115200, seed=3) as bus:
        ports = open_ports(bus)
        bus.corrupt_next(0)
        frame = rtu.read_request(1, 0, 1)
        ports[0].write(frame)
        got = read_all(ports[1], len(frame))
        assert len(got) == len(frame)
        assert sum(bin(x ^ y).count("1") for x, y in zip(got, frame, strict=True)) == 1
        assert not rtu.crc_ok(got)


def test_bursts_are_paced_so_a_capture_shows_real_gaps() -> None:
    cap = io.StringIO()
    baud = 9600
    with Rs485Bus(2, baud, capture=cap) as bus:
        ports = open_ports(bus)
        a, b = rtu.read_request(1, 0, 1), rtu.read_request(2, 0, 1)
        ports[0].write(a)
        ports[0].write(b)  # written at once: the line sends them back to back
        read_all(ports[1], 16)
    lines = [ln for ln in cap.getvalue().splitlines() if not ln.startswith("#")]
    times = [float(ln.split()[0]) for ln in lines]
    data = bytes.fromhex("".join(ln.split("#")[0].split(" ", 1)[1] for ln in lines))
    assert data == a + b
    # the second burst starts no earlier than the first one's last character left the line
    if len(times) == 2:
        assert times[1] >= times[0] + rtu.wire_time(len(a), baud) - 1e-6
    assert all("# from 0" in ln for ln in lines)


def test_the_command_prints_one_pty_per_port_and_writes_a_capture(tmp_path: os.PathLike[str]) -> None:
    cap = os.path.join(tmp_path, "line.txt")
    proc = subprocess.Popen([sys.executable, "-m", "busshare.cli.rs485", "--ports", "3", "--baud", "19200",
                             "--capture", cap], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        paths = [proc.stdout.readline().strip() for _ in range(3)]
        assert all(p.startswith("/dev/") for p in paths)
        a, b = serial.Serial(paths[0], 19200, timeout=0), serial.Serial(paths[1], 19200, timeout=0)
        frame = rtu.read_request(1, 0, 1)
        a.write(frame)
        assert read_all(b, len(frame)) == frame
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "bursts" in err
    assert frame.hex(" ") in open(cap).read()


def test_bad_options_are_one_line_errors() -> None:
    r = subprocess.run([sys.executable, "-m", "busshare.cli.rs485", "--ports", "1"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "ports" in r.stderr


def test_a_port_opened_later_does_not_read_old_traffic() -> None:
    with Rs485Bus(3, 115200) as bus:
        a = serial.Serial(bus.paths[0], bus.baud, timeout=0)
        b = serial.Serial(bus.paths[1], bus.baud, timeout=0)
        old = rtu.read_request(1, 0, 1)
        a.write(old)
        assert read_all(b, len(old)) == old  # delivered while port 2 was closed
        late = serial.Serial(bus.paths[2], bus.baud, timeout=0)
        new = rtu.read_request(2, 0, 1)
        a.write(new)
        assert read_all(late, len(new)) == new  # only what the line carried after it opened
