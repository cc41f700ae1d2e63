"""The meter client against the meter emulator as a real process, over Modbus TCP and the emulated RS-485 line.

mbpoll (libmodbus) reads the same registers as a peer.  Faults are commanded through the
emulator's stdin; killing it is a kill.  Waits are for real events with generous timeouts;
nothing asserts how long anything took.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

from busshare.core.meter_maps import FailureKind
from busshare.core.meter_maps import MeterEvent
from busshare.core.meter_maps import MeterFailure
from busshare.core.meter_maps import MeterReading
from busshare.core.source_settings import meter_settings_from_mapping
from busshare.devtools.rs485 import Rs485Bus
from busshare.io.meter import MeterClient
from tests.support.meterproc import EmulatorProc
from tests.support.meterproc import tool
from tests.support.meterproc import wait_for

pytestmark = pytest.mark.slow

BAUD = 9600  # the Eastron factory setting
MBPOLL = tool("mbpoll")


def client(link: dict[str, object], kind: str = "sdm630", **extra: object) -> MeterClient:
    table = {"kind": kind, "poll_s": 0.2, "timeout_s": 3.0, "frozen_s": 1.0, **link, **extra}
    return MeterClient(meter_settings_from_mapping(table))


def failure(kind: FailureKind) -> Callable[[MeterEvent], bool]:
    return lambda e: isinstance(e, MeterFailure) and e.kind is kind


def reading(e: MeterEvent) -> bool:
    return isinstance(e, MeterReading)


def mbpoll(*args: str) -> list[float]:
    """mbpoll's values of one read (32-bit floats, big-endian words: Eastron's order)."""
    if MBPOLL is None:
        pytest.skip("mbpoll is not installed (Debian package mbpoll; .ci/run installs it)")
    out = subprocess.run([MBPOLL, *args, "-t", "3:float", "-B", "-o", "5", "-1"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return [float(v) for v in re.findall(r"^\[\d+\]:\s+(\S+)$", out.stdout, re.M)]


@pytest.fixture
def tcp_meter() -> Iterator[EmulatorProc]:
    emu = EmulatorProc(["--kind", "sdm630", "--tcp", "127.0.0.1:0"])
    yield emu
    emu.close()


def test_the_client_reads_what_the_emulator_serves_and_mbpoll_reads_the_same(tcp_meter: EmulatorProc) -> None:
    tcp_meter.command("set 12.5 31.2 0.4")
    with client({"tcp": f"127.0.0.1:{tcp_meter.port}"}).start() as c:
        got = wait_for(c.drain, reading, "a reading")
    assert isinstance(got, MeterReading) and got.currents_da == (125, 312, 4)
    peer = mbpoll("-m", "tcp", "-p", str(tcp_meter.port), "-a", "1", "-r", "7", "-c", "6", "127.0.0.1")
    assert peer[:3] == [12.5, 31.2, 0.4]
    assert got.powers_w is not None and all(p > 0 for p in peer[3:]) and all(p > 0 for p in got.powers_w)


def test_the_house_profile_moves_and_the_decoder_follows_it(tcp_meter: EmulatorProc) -> None:
    with client({"tcp": f"127.0.0.1:{tcp_meter.port}"}).start() as c:
        first = wait_for(c.drain, reading, "a reading")
        wait_for(c.drain, lambda e: isinstance(e, MeterReading) and e != first and e.currents_da != (0, 0, 0),
                 "a second, different reading")


def test_a_frozen_meter_garbage_and_a_modbus_exception_are_failed_reads(tcp_meter: EmulatorProc) -> None:
    with client({"tcp": f"127.0.0.1:{tcp_meter.port}"}).start() as c:
        wait_for(c.drain, reading, "a reading")
        assert tcp_meter.command("freeze")["mode"] == "frozen"
        frozen = wait_for(c.drain, failure(FailureKind.FROZEN), "a frozen failure")
        assert "unchanged" in str(frozen)
        tcp_meter.command("garbage")
        wait_for(c.drain, failure(FailureKind.IMPOSSIBLE), "an impossible value")
        tcp_meter.command("error")
        err = wait_for(c.drain, failure(FailureKind.READ_ERROR), "a read error")
        assert isinstance(err, MeterFailure) and "exception 4" in err.detail
        tcp_meter.command("normal")
        wait_for(c.drain, reading, "a reading again")


def test_a_silent_meter_times_out_and_answers_again(tcp_meter: EmulatorProc) -> None:
    with client({"tcp": f"127.0.0.1:{tcp_meter.port}"}).start() as c:
        wait_for(c.drain, reading, "a reading")
        tcp_meter.command("silent")
        wait_for(c.drain, failure(FailureKind.TIMEOUT), "a timeout")
        tcp_meter.command("normal")
        wait_for(c.drain, reading, "a reading again")
    assert tcp_meter.stop()["unanswered"] >= 1


def test_a_killed_meter_is_reported_and_a_restarted_one_is_read_again(tcp_meter: EmulatorProc) -> None:
    port = tcp_meter.port
    with client({"tcp": f"127.0.0.1:{port}"}).start() as c:
        wait_for(c.drain, reading, "a reading")
        tcp_meter.kill()
        down = wait_for(c.drain, failure(FailureKind.READ_ERROR), "a read error")
        wait_for(c.drain, lambda e: isinstance(e, MeterFailure) and "cannot connect" in e.detail, "connection refused")
        again = EmulatorProc(["--kind", "sdm630", "--tcp", f"127.0.0.1:{port}"])
        try:
            back = wait_for(c.drain, reading, "a reading from the restarted meter")
        finally:
            again.close()
    assert isinstance(down, MeterFailure) and back.t > down.t


def test_poll_once_never_raises_with_nothing_there() -> None:
    c = client({"tcp": "127.0.0.1:1"})
    ev = c.poll_once()
    assert isinstance(ev, MeterFailure) and ev.kind is FailureKind.READ_ERROR
    assert c.stats.as_dict() == {"polls": 1, "readings": 0, "failures": {"read-error": 1}}
    serial = client({"serial": "/nonexistent/tty"})
    assert isinstance(serial.poll_once(), MeterFailure)


# -- Modbus RTU on the emulated RS-485 line -------------------------------------------------


@pytest.fixture
def line() -> Iterator[Rs485Bus]:
    bus = Rs485Bus(3, BAUD, seed=5).start()
    yield bus
    bus.close()


@pytest.mark.parametrize("kind, held, registers", [("sdm630", "7.5 16 2.25", 6), ("sdm120", "23.1", 1)])
def test_an_rtu_meter_on_the_rs485_line(line: Rs485Bus, kind: str, held: str, registers: int) -> None:
    emu = EmulatorProc(["--kind", kind, "--serial", line.paths[0], "--baud", str(BAUD)])
    try:
        emu.command(f"set {held}")
        c = client({"serial": line.paths[1], "baud": BAUD}, kind=kind)
        with c.start():
            got = wait_for(c.drain, reading, "a reading over RTU")
            want = tuple(math.ceil(float(a) * 10) for a in held.split())  # 2.25 A reads as 2.3 A: rounded up
            assert isinstance(got, MeterReading) and got.currents_da == want
            peer = mbpoll("-m", "rtu", "-b", str(BAUD), "-P", "none", "-a", "1", "-r", "7", "-c", str(registers),
                          line.paths[2])
            assert peer[:len(want)] == [float(a) for a in held.split()]
            emu.command("silent")
            wait_for(c.drain, failure(FailureKind.TIMEOUT), "a timeout over RTU")
            emu.command("normal")
            wait_for(c.drain, reading, "a reading again")
            emu.kill()
            wait_for(c.drain, failure(FailureKind.TIMEOUT), "a timeout after the kill")
    finally:
        emu.close()


def test_the_emulator_answers_only_its_own_device_id(line: Rs485Bus) -> None:
    emu = EmulatorProc(["--kind", "sdm120", "--serial", line.paths[0], "--baud", str(BAUD), "--device-id", "7"])
    try:
        other = client({"serial": line.paths[1], "baud": BAUD, "device_id": 8}, kind="sdm120")
        assert failure(FailureKind.TIMEOUT)(other.poll_once())
        mine = client({"serial": line.paths[1], "baud": BAUD, "device_id": 7}, kind="sdm120")
        wait_for(lambda: [mine.poll_once()], reading, "a reading from device 7")
        mine.stop()
        other.stop()
    finally:
        emu.close()


def test_bad_emulator_options_are_one_line(tmp_path: Path) -> None:
    bad_csv, three = tmp_path / "bad.csv", tmp_path / "three.csv"
    bad_csv.write_text("0,1,2,3\n5,x,1,1\n")
    three.write_text("0,1,2,3\n")
    for args, words in [(["--tcp", "127.0.0.1:0", "--csv", str(bad_csv)], "is not numbers"),
                        (["--tcp", "127.0.0.1:0", "--kind", "sdm120", "--csv", str(three)], "3 phases"),
                        (["--tcp", "nohost:99999"], "must have a port 0-65535"),
                        (["--tcp", "127.0.0.1:0", "--at", "soon:freeze"], "SECONDS:COMMAND"),
                        (["--serial", str(tmp_path / "no-such-tty")], "could not open port")]:
        out = subprocess.run([*EmulatorProc.command_line(), *args], capture_output=True, text=True, timeout=60,
                             env=EmulatorProc.env())
        assert out.returncode == 2 and words in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_a_port_in_use_is_one_line(tcp_meter: EmulatorProc) -> None:
    out = subprocess.run([*EmulatorProc.command_line(), "--tcp", f"127.0.0.1:{tcp_meter.port}"], capture_output=True,
                         text=True, timeout=60, env=EmulatorProc.env())
    assert out.returncode == 2 and "address already in use" in out.stderr and out.stderr.count("\n") == 1, out.stderr
