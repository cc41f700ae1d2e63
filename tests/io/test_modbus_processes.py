"""Real `busshare master --modbus` and `busshare servant --modbus` processes on the emulated RS-485 line.

The line (``Rs485Bus``) runs in this process so the tests can inject faults;
every node is its own OS process talking to a pty, as it would to a USB-RS485
adapter.  Cars are plugged and unplugged through each servant's pilot file.
Waits poll with generous timeouts; the only time asserted is the failsafe
safety bound, measured on each servant's own record of the last heartbeat it
heard.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

from busshare.analysis.decode import Frame
from busshare.analysis.decode import Unreadable
from busshare.analysis.modbus_capture import modbus_records
from busshare.cli.commands._common import printer
from busshare.devtools.rs485 import Rs485Bus
from busshare.frames import Ack
from busshare.frames import SetLimit
from busshare.frames import decode
from busshare.report.records import TimeBase
from busshare.report.records import TimeMode
from busshare.transport.modbus import registers as mm
from tests.analysis.test_decode_truth import assert_never_over
from tests.analysis.test_decode_truth import summarise
from tests.support.nodeproc import NodeProc
from tests.support.nodeproc import Record
from tests.support.site_files import site_toml

pytestmark = pytest.mark.slow

BAUD = 19200
TIMING = mm.modbus_timing(BAUD, 4)
#: the stated bound, as on CAN: timeout + 0.5 s (designed: timeout + one tick)
FAILSAFE_BOUND_S = TIMING.failsafe_timeout + 0.5
WAIT = 40.0  # generous: the machine is shared

SITE = site_toml((1, 2, 3, 4), limit_a=64, breaker_a=80, max_a=64)


class Line:
    """The emulated line, the site file, the pilot files and the processes of one test."""

    def __init__(self, tmp: Path, ports: int, site: str = SITE) -> None:
        self.tmp = tmp
        self.capture_path = tmp / "line.txt"
        self._capture = open(self.capture_path, "w", encoding="ascii")  # noqa: SIM115
        self.bus = Rs485Bus(ports, BAUD, capture=self._capture, seed=7).start()
        self.site = tmp / "site.toml"
        self.site.write_text(site)
        self.procs: list[NodeProc] = []
        self._next_port = 0

    def port(self) -> tuple[int, str]:
        i = self._next_port
        self._next_port += 1
        return i, self.bus.paths[i]

    def master(self) -> tuple[int, NodeProc]:
        i, path = self.port()
        p = NodeProc(["master", "--modbus", path, "--baud", str(BAUD), "--config", str(self.site), "--json"], "master")
        self.procs.append(p)
        return i, p

    def servant(self, address: int, car: str = "A", name: str | None = None, serial: int | None = None) -> tuple[
            int, NodeProc, Path]:
        i, path = self.port()
        ev = self.tmp / f"ev{i}"
        ev.write_text(car)
        extra = [] if serial is None else ["--serial", hex(serial)]
        p = NodeProc(["servant", "--modbus", path, "--baud", str(BAUD), "--address", str(address), "--config",
                      str(self.site), "--pilot-file", str(ev), "--json", *extra], name or f"servant{address}")
        self.procs.append(p)
        return i, p, ev

    def frames(self) -> list[Frame | Unreadable]:
        self._capture.flush()
        with open(self.capture_path, "rb") as f:
            return list(modbus_records(f, BAUD))

    def close(self) -> None:
        for p in self.procs:
            p.close()
        self.bus.close()
        self._capture.close()


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    ln = Line(tmp_path, 6)
    yield ln
    ln.close()


@pytest.fixture
def line2(tmp_path: Path) -> Iterator[Line]:
    """Two servants configured (so the master is done learning as soon as both answer)."""
    ln = Line(tmp_path, 6, site_toml((1, 2), limit_a=64, breaker_a=80, max_a=64))
    yield ln
    ln.close()


def offer(a: float) -> Callable[[Record], bool]:
    return lambda r: r.get("event") == "offer" and r.get("offer_a") == a and not r.get("failsafe")


def is_event(kind: str) -> Callable[[Record], bool]:
    return lambda r: bool(r.get("event") == kind)


def assert_failsafe_in_bound(rec: Record) -> None:
    assert rec["last_heartbeat"] is not None
    took = rec["t"] - rec["last_heartbeat"]
    assert took <= FAILSAFE_BOUND_S, f"failsafe {took:.3f} s after the last heartbeat (bound {FAILSAFE_BOUND_S} s)"


def offers_never_exceed(procs: list[NodeProc], limit_a: float) -> None:
    """Replaying every servant's offer changes in time order, the sum never exceeds the limit."""
    changes = sorted((r["t"], i, float(r["offer_a"])) for i, p in enumerate(procs) for r in p.snapshot()
                     if r.get("event") == "offer")
    now: dict[int, float] = {}
    for t, i, a in changes:
        now[i] = a
        assert sum(now.values()) <= limit_a + 1e-9, f"offers {now} exceed {limit_a} A at {t}"


def test_the_seed_story_over_modbus(line: Line) -> None:
    _, master = line.master()
    servants = [line.servant(a) for a in (1, 2, 3, 4)]
    (_, s1, ev1), (_, s2, ev2) = servants[0], servants[1]
    for _, s, _ in servants:
        s.wait_for(is_event("master"), WAIT)  # hears the heartbeat broadcasts
    master.wait_for(is_event("learned-all"), WAIT)

    # one car alone gets the whole 64 A
    ev1.write_text("C")
    s1.wait_for(offer(64.0), WAIT)

    # a second car: the first is cut to 32 A and acks, only then the second gets 32 A
    ev2.write_text("C")
    cut = s1.wait_for(offer(32.0), WAIT)
    grant = s2.wait_for(offer(32.0), WAIT)
    assert cut["t"] < grant["t"]
    msgs = [(r.t, decode(r.can_id, r.data)[0]) for r in line.frames() if isinstance(r, Frame)]
    acked = next(t for t, m in msgs if isinstance(m, Ack) and m.address == 1 and m.applied_da == 320)
    granted = next(t for t, m in msgs if isinstance(m, SetLimit) and m.address == 2 and m.limit_da == 320)
    assert acked < granted, "the grant went out before the cut was acked"

    # the first car leaves: the second is back to 64 A
    n = len(s2.snapshot())
    ev1.write_text("A")
    s2.wait_for(offer(64.0), WAIT, after=n)

    # the master goes silent (kill -9): every servant fails safe within the bound, by its own clock
    marks = [len(s.snapshot()) for _, s, _ in servants]
    master.kill9()
    for (_, s, _), m in zip(servants, marks, strict=True):
        assert_failsafe_in_bound(s.wait_for(is_event("failsafe"), WAIT, after=m))
    s2.wait_for(lambda r: r.get("event") == "offer" and r.get("failsafe") and r["offer_a"] <= 6.0, WAIT)
    offers_never_exceed([s for _, s, _ in servants], 64.0)

    # the capture decodes into protocol messages with no E2E failure
    recs = line.frames()
    assert sum(isinstance(r, Frame) for r in recs) > 20
    assert not [r for r in recs if isinstance(r, Unreadable)]
    # and, reconstructed from that capture alone, the installation never appears over its limit
    result, timeline, _ = summarise(recs)
    assert_never_over(result, timeline, 640)


def test_a_servant_the_master_cannot_hear_fails_safe_by_itself(line2: Line) -> None:
    line = line2
    _, master = line.master()
    _, s1, ev1 = line.servant(1, "C")
    port2, s2, ev2 = line.servant(2, "C")
    s1.wait_for(offer(32.0), WAIT)
    s2.wait_for(offer(32.0), WAIT)
    n1, n2, nm = len(s1.snapshot()), len(s2.snapshot()), len(master.snapshot())
    line.bus.drop_next(port2, 10**9)  # its replies never reach the line; it still hears everything
    s2.wait_for(is_event("link-lost"), WAIT, after=n2)
    down = s2.wait_for(is_event("link-down"), WAIT, after=n2)  # in RS-485 words: it is polled, never heard
    assert down["detail"] == "replies unconfirmed: counting as no master"
    assert printer_line({**down, "record": "status", "frames_in": 0, "sent": 0, "rejected": 0, "send_failed": 0,
                         "bus_off": True, "link_down": "replies unconfirmed"}).endswith(" REPLIES UNCONFIRMED")
    s2.wait_for(lambda r: r.get("event") == "offer" and r["offer_a"] <= 6.0, WAIT, after=n2)
    master.wait_for(lambda r: r.get("event") == "servant-silent" and r.get("address") == 2, WAIT, after=nm)
    # the other servant keeps charging, and the master hands it more only within the limit
    assert not [r for r in s1.snapshot()[n1:] if r.get("event") == "failsafe"]
    line.bus.clear_faults(port2)
    s2.wait_for(is_event("link-back"), WAIT, after=n2)
    offers_never_exceed([s1, s2], 64.0)


def test_a_silent_line_is_a_silent_master_not_bus_off(line2: Line) -> None:
    """No master on the line: the servant fails safe by the heartbeat rule and its status line says so;
    nothing reads BUS-OFF (CAN's word for a controller that stopped transmitting)."""
    _, path = line2.port()
    servant = NodeProc(["servant", "--modbus", path, "--baud", str(BAUD), "--address", "1", "--json",
                        "--status-interval", "0.5"], "servant1")
    line2.procs.append(servant)
    servant.wait_for(lambda r: r.get("event") == "failsafe" and "no master heard since boot" in r["detail"], WAIT)
    status = servant.wait_for(lambda r: r.get("record") == "status" and r.get("failsafe"), WAIT)
    n = len(servant.snapshot())
    servant.wait_for(lambda r: r.get("record") == "status", WAIT, after=n)  # another status period
    assert not [r for r in servant.snapshot() if r.get("event") == "link-down" or r.get("bus_off")]
    line = printer_line(status)
    assert " FAILSAFE | no heartbeat yet |" in line and "BUS-OFF" not in line, line


def printer_line(rec: Record) -> str:
    out = io.StringIO()
    printer(False, TimeBase(TimeMode.RELATIVE, -rec["t"]), out=out)(rec)
    return out.getvalue().rstrip("\n")


def test_corrupted_crcs_and_garbage_are_counted_and_sharing_goes_on(line2: Line) -> None:
    line = line2
    port_m, master = line.master()
    port1, s1, _ = line.servant(1, "C")
    _, s2, _ = line.servant(2, "C")
    _, mon_port = line.port()
    monitor = NodeProc(["monitor", "--modbus", mon_port, "--baud", str(BAUD), "--json"], "monitor")
    line.procs.append(monitor)
    s1.wait_for(offer(32.0), WAIT)
    s2.wait_for(offer(32.0), WAIT)
    monitor.wait_for(lambda r: r.get("type") == "STATUS", WAIT)  # the passive sniffer decodes the line
    n1, n2 = len(s1.snapshot()), len(s2.snapshot())
    line.bus.corrupt_next(port_m, 2)  # two master requests with a flipped bit
    line.bus.corrupt_next(port1, 2)  # two replies of servant 1 with a flipped bit
    spare = open(line.bus.paths[5], "wb", buffering=0)  # noqa: SIM115
    try:
        for junk in (b"\xde\xad\xbe\xef" * 8, bytes(range(40)), b"\x01\x17" + b"\xff" * 30):
            spare.write(junk)
            s1.wait_for(is_event("line-garbage"), WAIT, after=n1)
            n1 = len(s1.snapshot())
    finally:
        spare.close()
    # sharing went on: nobody fell to failsafe, and the limit held
    assert not [r for r in s1.snapshot() + s2.snapshot() if r.get("event") == "failsafe" and r["t"] > 0
                and r.get("last_heartbeat")]
    assert s1.snapshot()[-1].get("event") != "stopped"
    offers_never_exceed([s1, s2], 64.0)
    # the capture shows the bad frames with their reason
    reasons = [r.reason for r in line.frames() if isinstance(r, Unreadable)]
    assert reasons and all(reasons)
    assert any("CRC" in r or "garbage" in r or "not a valid frame" in r for r in reasons)
    assert len(s2.snapshot()) >= n2
    # the monitor flagged them as they happened, and never stopped decoding
    monitor.wait_for(lambda r: r.get("anomaly") == "rtu-bad", WAIT)
    assert monitor.terminate() == 0
    summary = monitor.wait_for(lambda r: r.get("record") == "summary", WAIT)
    assert summary["frames"] > 0 and summary["modbus"]["rtu-bad"] >= 3


def test_two_servants_on_one_address_never_share_the_same_grant(line2: Line) -> None:
    line = line2
    _, master = line.master()
    _, s1, _ = line.servant(1, "C")
    _, twin_a, _ = line.servant(2, "C", "twin-a", serial=0xA)
    _, twin_b, _ = line.servant(2, "C", "twin-b", serial=0xB)
    flagged = master.wait_for(lambda r: r.get("event") in ("suspect-duplicate", "twin"), WAIT)
    assert flagged.get("address") == 2 or "address 2" in flagged.get("detail", "")
    # each twin ends up at most at its failsafe current: either its replies collide (it is never heard,
    # so it fails safe) or the master or the twin itself sees two serials (twin rules: paused)
    for twin in (twin_a, twin_b):
        twin.wait_for(lambda r: r.get("event") in ("link-lost", "twin", "failsafe") and r.get("t"), WAIT)
    offers_never_exceed([s1, twin_a, twin_b], 64.0)


def test_mbpoll_reads_the_plain_registers_of_a_running_servant(line: Line) -> None:
    _, servant, _ = line.servant(3, "C", serial=0x00C0FFEE)
    servant.wait_for(is_event("failsafe"), WAIT)  # no master on the line: its standalone failsafe
    _, tool = line.port()
    cmd = ["mbpoll", "-m", "rtu", "-a", "3", "-b", str(BAUD), "-P", "none", "-t", "4", "-r", "1",
           "-c", str(mm.PLAIN_COUNT), "-1", tool]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    regs = {int(k) - 1: int(v) for k, v in re.findall(r"^\[(\d+)\]:\s+(\d+)", out.stdout, re.M)}
    assert len(regs) == mm.PLAIN_COUNT
    assert regs[mm.Plain.MAP_VERSION] == mm.MAP_VERSION
    assert regs[mm.Plain.ADDRESS] == 3
    assert (regs[mm.Plain.SERIAL_HI] << 16) | regs[mm.Plain.SERIAL_LO] == 0x00C0FFEE
    assert regs[mm.Plain.PILOT] == 2  # C: a car charging
    assert regs[mm.Plain.FAILSAFE] == 1  # no master on the line
    assert regs[mm.Plain.ERRORS] & mm.ErrorFlag.MASTER_SILENT
    offers = [r for r in servant.snapshot() if r.get("event") == "offer"]
    assert regs[mm.Plain.OFFERED] == round(offers[-1]["offer_a"] * 10)  # what its pilot offers now, 0.1 A
    assert regs[mm.Plain.MAX] == 640 and regs[mm.Plain.FAILSAFE_CURRENT] == 60
    # configuration is not writable without the unlock register
    w = subprocess.run(["mbpoll", "-m", "rtu", "-a", "3", "-b", str(BAUD), "-P", "none", "-t", "4", "-r",
                        str(mm.Cfg.MAX + 1), "-1", tool, "100"], capture_output=True, text=True, timeout=60)
    assert "Illegal data address" in w.stdout + w.stderr


def test_pymodbus_client_reads_the_same_registers(line: Line) -> None:
    from pymodbus.client import ModbusSerialClient

    _, servant, _ = line.servant(4, "B", serial=0x1234)
    servant.wait_for(is_event("offer"), WAIT)
    _, tool = line.port()
    client = ModbusSerialClient(tool, baudrate=BAUD, timeout=5, retries=3)
    assert client.connect()
    try:
        rr = client.read_holding_registers(0, count=mm.PLAIN_COUNT, device_id=4)
        assert not rr.isError(), rr
        view = mm.PlainView.from_registers(rr.registers)
        assert (view.address, view.serial, view.pilot) == (4, 0x1234, 1)
        ri = client.read_input_registers(0, count=mm.PLAIN_COUNT, device_id=4)
        assert not ri.isError() and ri.registers[:4] == rr.registers[:4]
    finally:
        client.close()


@pytest.mark.parametrize("args, words", [
    (["servant", "--modbus", "/nonexistent/tty", "--address", "1"], "cannot open /nonexistent/tty"),
    (["servant", "--modbus", "/dev/null", "--address", "99"], "error: argument --address: 99 must be 1-62"),
    (["master", "--modbus", "/nonexistent/tty", "--config", "/nonexistent/site.toml"], "site.toml"),
    (["monitor", "--modbus", "/dev/null", "--baud", "0"], "error: argument --baud: 0 must be 300-1000000 baud"),
])
def test_user_errors_are_one_line(args: list[str], words: str) -> None:
    r = subprocess.run([sys.executable, "-m", "busshare", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert words in r.stderr.splitlines()[-1]
    # a usage error (checked when parsed) prints the command's usage first; any other error is one line
    assert r.stderr.startswith(f"usage: busshare {args[0]}") if "error: argument" in words else r.stderr.count("\n") == 1
