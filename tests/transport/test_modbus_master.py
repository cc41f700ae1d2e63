"""The master's Modbus client on the emulated line, with real servant transports in threads."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import pytest

from busshare.devtools.rs485 import Rs485Bus
from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import decode
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from busshare.transport.modbus import rtu
from busshare.transport.modbus.master import SILENT_EVERY
from busshare.transport.modbus.master import ModbusMasterTransport
from busshare.transport.modbus.servant import ModbusServantTransport
from busshare.transport.modbus.servant import open_serial

BAUD = 115200


class Servants:
    """Servant transports answering on the line, each in a thread, collecting what the master wrote."""

    def __init__(self, bus: Rs485Bus, addresses: list[int]) -> None:
        self.got: dict[int, list[object]] = {a: [] for a in addresses}
        self.transports = [ModbusServantTransport(open_serial(bus.paths[i + 1], BAUD), a, BAUD)
                           for i, a in enumerate(addresses)]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in self.transports]
        for th in self.threads:
            th.start()

    def _run(self, t: ModbusServantTransport) -> None:
        link = Link()
        while not self.stop.is_set():
            f = t.recv(0.02)
            if f is not None:
                self.got[t.server.address].append(link.receive(f.offset, f.data, 0.0).message)

    def close(self) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(5)
        for t in self.transports:
            t.shutdown()


@pytest.fixture
def bus() -> Iterator[Rs485Bus]:
    cap = io.StringIO()
    with Rs485Bus(4, BAUD, capture=cap, seed=5) as b:
        b.cap = cap  # type: ignore[attr-defined]
        yield b


def run_master(master: ModbusMasterTransport, until: object, timeout: float = 30.0) -> list[object]:
    """Drive the master (as the runtime would) until ``until(received)`` holds."""
    link = Link()
    received: list[object] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(received):  # type: ignore[operator]
        f = master.recv(0.05)
        if f is not None:
            received.append(link.receive(f.offset, f.data, 0.0).message)
    assert until(received), f"condition not met; stats {master.stats}"  # type: ignore[operator]
    return received


def test_frames_flow_both_ways_through_the_mailboxes(bus: Rs485Bus) -> None:
    servants = Servants(bus, [1, 2])
    try:
        master = ModbusMasterTransport(open_serial(bus.paths[0], BAUD), BAUD, [1, 2])
        mlink = Link()
        master.send(*mlink.encode(SetLimit(2, 9, 320, 60, 7)))
        master.send(*mlink.encode(Heartbeat(1, 7, 640)))
        for t in servants.transports:
            t.send(*Link().encode(Status(t.server.address, 1, PilotState.C, 0, None, 320)))
        got = run_master(master, lambda r: {m.address for m in r if isinstance(m, Status)} == {1, 2})
        assert all(m is not None for m in got)  # every frame passed the E2E check
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (servants.got[2] and servants.got[1]):
            master.recv(0.05)
        assert SetLimit(2, 9, 320, 60, 7) in servants.got[2]
        assert SetLimit(2, 9, 320, 60, 7) not in servants.got[1]  # an inbox is private
        assert any(isinstance(m, Heartbeat) for m in servants.got[1])  # the broadcast reached everyone
        master.shutdown()
    finally:
        servants.close()


def test_a_lost_reply_loses_no_frame_and_duplicates_none(bus: Rs485Bus) -> None:
    servants = Servants(bus, [1])
    try:
        master = ModbusMasterTransport(open_serial(bus.paths[0], BAUD), BAUD, [1])
        run_master(master, lambda r: master.stats.replies >= 3)
        slink = Link()
        frames = [slink.encode(Status(1, 1, PilotState.C, 60 + i, None, 320)) for i in range(3)]
        bus.drop_next(1, 2)  # the next two replies of servant 1 never reach the line
        t = servants.transports[0]
        t.send(*frames[0])
        got = run_master(master, lambda r: len(r) >= 1)
        assert [m.offered_da for m in got] == [60]  # type: ignore[union-attr]
        assert master.stats.timeouts >= 2
        assert servants.transports[0].server.stats.sent >= 3  # the same batch went out three times
        master.shutdown()
    finally:
        servants.close()


def test_a_silent_servant_does_not_stall_the_line(bus: Rs485Bus) -> None:
    servants = Servants(bus, [1])  # nobody answers as 2
    try:
        master = ModbusMasterTransport(open_serial(bus.paths[0], BAUD), BAUD, [1, 2], reply_timeout=0.02)
        mlink = Link()
        master.send(*mlink.encode(SetLimit(2, 1, 60, 60, 7)))  # frames for the dead unit wait for its turn
        run_master(master, lambda r: master.stats.cycles >= 4 * SILENT_EVERY, timeout=60)
        events = master.drain_events()
        assert any(e.kind == "servant-silent" and "address 2" in e.detail for e in events)
        lines = [ln for ln in bus.cap.getvalue().splitlines() if "# from 0" in ln]  # type: ignore[attr-defined]
        polls = {a: sum(ln.split()[1] == f"{a:02x}" and ln.split()[2] == "17" for ln in lines) for a in (1, 2)}
        assert polls[1] >= 4 * SILENT_EVERY
        assert polls[2] < polls[1] / 2  # polled only every few cycles once silent
        master.shutdown()
    finally:
        servants.close()


def test_only_the_newest_heartbeat_waits(bus: Rs485Bus) -> None:
    master = ModbusMasterTransport(open_serial(bus.paths[0], BAUD), BAUD, [1])
    link = Link()
    for page in range(3):
        master.send(*link.encode(Heartbeat(1, 7, 640, page)))
    assert len(master._broadcasts) == 1
    offset, data = master._broadcasts[0]
    msg = decode(offset, data)[0]
    assert isinstance(msg, Heartbeat) and msg.page == 2
    master.shutdown()
    frames = [c.data for c in rtu.split_by_crc(bytes.fromhex(" ".join(
        ln.split("#")[0].split(" ", 1)[1] for ln in bus.cap.getvalue().splitlines()  # type: ignore[attr-defined]
        if ln and not ln.startswith("#"))))]
    assert len(frames) <= 1  # the one heartbeat went out on shutdown (never two)
