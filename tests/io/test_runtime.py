"""The runtime: real nodes on python-can's `virtual` bus, in one process, stepped on a virtual clock.

``Runtime.pump(now)`` is the loop's body without the blocking wait, so these
tests advance time themselves: no sleeps, and time bounds are exact.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections import deque
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path

import can
import pytest

from busshare.core.config import parse_config
from busshare.core.servant_memory import ServantMemory
from busshare.devtools.bench import BenchHardware
from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.io.runtime import Record
from busshare.io.runtime import Runtime
from busshare.io.servant_state import StateFile
from busshare.master import Master
from busshare.protocol.kinds import CanKind
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from busshare.servant import Servant
from busshare.transport.base import BusEvent
from busshare.transport.base import RxFrame
from busshare.transport.can import CAN_ERR_BUSOFF
from busshare.transport.can import CanTransport
from busshare.transport.can import TransportStats
from tests.report.test_json_schema import validator
from tests.support.site_files import site_toml

SITE = site_toml((1, 2, 3), limit_a=32, breaker_a=40, max_a=16)
CONFIG = parse_config(SITE)
TIMING = CONFIG.timing
STEP = TIMING.tick_period
BOUND = TIMING.failsafe_timeout + TIMING.tick_period  # 1.55 s with the defaults
_channels = itertools.count()


@pytest.fixture
def sites() -> Iterator[list[Site]]:
    made: list[Site] = []
    yield made
    for s in made:
        s.close()


class Site:
    """A master and three bench servants (pilot C, meter reading 0 A) sharing one virtual channel."""

    def __init__(self, with_master: bool = True) -> None:
        self.channel = f"busshare-runtime-{next(_channels)}"
        self.records: dict[str, list[Record]] = {}
        self.t = 0.0
        self.master: Runtime | None = None
        if with_master:
            self.master = self.runtime("master", Master(CONFIG, 0.0, epoch=5))
        self.hw: dict[int, BenchHardware] = {}
        self.servants: dict[int, Runtime] = {}
        for sc in CONFIG.servants:
            self.hw[sc.address] = BenchHardware(PilotState.C, 0, log=lambda line: None)
            self.servants[sc.address] = self.runtime(str(sc.address), Servant(sc, TIMING, 0.0),
                                                     self.hw[sc.address])

    def runtime(self, name: str, node: object, hw: BenchHardware | None = None) -> Runtime:
        self.records[name] = []
        bus = can.Bus(interface="virtual", channel=self.channel)
        return Runtime(node, CanTransport(bus), hardware=hw, on_record=self.records[name].append,  # type: ignore[arg-type]
                       status_interval=1.0)

    def bus(self) -> can.BusABC:
        return can.Bus(interface="virtual", channel=self.channel)

    def close(self) -> None:
        for r in [self.master, *self.servants.values()]:
            if r is not None:
                r.transport.shutdown()

    def run(self, seconds: float, runtimes: Iterable[Runtime] | None = None) -> None:
        chosen = list(runtimes) if runtimes is not None else [r for r in [self.master, *self.servants.values()] if r]
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.t = round(self.t + STEP, 6)
            for r in chosen:
                r.pump(self.t)

    def offers(self) -> dict[int, int]:
        return {a: r.node.offer_da for a, r in self.servants.items()}  # type: ignore[attr-defined]

    def pilot_records(self, address: int) -> list[Record]:
        return [r for r in self.records[str(address)] if r.get("event") == "offer"]


def test_servants_hear_the_master_and_report_status(sites: list[Site]) -> None:
    site = Site()
    sites.append(site)
    site.run(2.0)
    for address, rt in site.servants.items():
        assert rt.last_heartbeat is not None and site.t - rt.last_heartbeat <= TIMING.heartbeat_period
        assert not rt.node.in_failsafe  # type: ignore[attr-defined]
        status = [r for r in site.records[str(address)] if r["record"] == "status"]
        assert status and status[-1]["heartbeat_age"] is not None
    assert site.master is not None and site.master.stats.accepted > 0


def test_a_silent_master_puts_every_servant_in_failsafe_within_the_bound(sites: list[Site]) -> None:
    site = Site()
    sites.append(site)
    site.run(3.0)
    site.run(3.0, site.servants.values())  # the master stops: no shutdown, no leaving heartbeat
    for address in site.servants:
        entered = [r for r in site.pilot_records(address) if r["failsafe"]]
        assert entered, f"servant {address} never failed safe"
        rec = entered[0]
        assert rec["offer_a"] * 10 <= CONFIG.servant(address).failsafe_da  # type: ignore[union-attr]
        assert rec["t"] - rec["last_heartbeat"] <= BOUND + 1e-9


def test_a_master_shutting_down_announces_it_and_servants_fail_safe_at_once(sites: list[Site]) -> None:
    site = Site()
    sites.append(site)
    site.run(3.0)
    assert site.master is not None
    site.master.shutdown(site.t)
    t_leave = site.t
    site.run(STEP, site.servants.values())
    for address, rt in site.servants.items():
        assert rt.node.in_failsafe, f"servant {address} ignored the leaving heartbeat"  # type: ignore[attr-defined]
        entered = [r for r in site.pilot_records(address) if r["failsafe"]]
        assert entered and entered[0]["t"] <= t_leave + STEP


def test_bus_off_counts_as_hearing_no_master(sites: list[Site]) -> None:
    site = Site()
    sites.append(site)
    site.run(3.0)
    victim = site.servants[2]
    peer = site.bus()
    peer.send(can.Message(arbitration_id=CAN_ERR_BUSOFF, is_error_frame=True, data=bytes(8)))
    victim.pump(site.t + STEP)  # only the victim reads: in bus-off it hears nothing else
    assert victim.transport.bus_off
    assert victim.node.in_failsafe  # type: ignore[attr-defined]
    kinds = [r.get("event", r["record"]) for r in site.records["2"]]
    assert "bus-off" in kinds and "link-down" in kinds
    peer.shutdown()


def test_malformed_frames_are_counted_and_sharing_goes_on(sites: list[Site]) -> None:
    site = Site()
    sites.append(site)
    site.run(2.0)
    peer = site.bus()
    good_offset, good = Link().encode(Heartbeat(1, 5, 320))
    bad_crc = bytes([good[0] ^ 0xFF]) + good[1:]
    peer.send(can.Message(arbitration_id=good_offset, data=bad_crc, is_extended_id=False))
    peer.send(can.Message(arbitration_id=good_offset, data=good[:5], is_extended_id=False))
    peer.send(can.Message(arbitration_id=0x1FF, data=bytes(8), is_extended_id=False))  # JOIN from address 63
    site.run(2.0)
    for address, rt in site.servants.items():
        assert rt.stats.rejected == 3
        assert rt.stats.rejected_kinds == {"crc": 1, "length": 1, "address": 1}
        reasons = [r["detail"].split("] ")[1] for r in site.records[str(address)] if r.get("event") == "frame-rejected"]
        assert [why.split(":")[0] for why in reasons] == ["crc", "length", "address"]
        assert not rt.node.in_failsafe  # type: ignore[attr-defined]
    peer.shutdown()


def test_the_stopped_record_names_the_frames_not_acted_on_by_kind(sites: list[Site]) -> None:
    """The last line of a run: the transport's counters, then the frames the node rejected, in the words of
    the ``frame-rejected`` events; the JSON record carries them as the status record does."""
    site = Site()
    sites.append(site)
    site.run(1.0)
    peer = site.bus()
    good_offset, good = Link().encode(Heartbeat(1, 5, 320))
    peer.send(can.Message(arbitration_id=good_offset, data=bytes([good[0] ^ 0xFF]) + good[1:], is_extended_id=False))
    peer.send(can.Message(arbitration_id=good_offset, data=good[:5], is_extended_id=False))
    peer.send(can.Message(arbitration_id=good_offset, data=good[:5], is_extended_id=False))
    site.run(0.5)
    servant = site.servants[1]
    servant.shutdown(site.t)
    stopped = site.records["1"][-1]
    assert stopped["event"] == "stopped"
    assert stopped["detail"].endswith("; rejected 3 (crc 1, length 2)"), stopped["detail"]
    assert stopped["detail"].startswith("sent ")  # the transport's counters first, as before
    assert stopped["rejected"] == 3 and stopped["rejected_kinds"] == {"crc": 1, "length": 2}
    assert not list(validator().iter_errors(stopped)), stopped
    peer.shutdown()
    records: list[Record] = []
    Runtime(Master(CONFIG, 0.0, epoch=5), _Handed([]), on_record=records.append).shutdown(0.0)
    quiet = records[-1]  # nothing rejected: the count, no kinds
    assert quiet["event"] == "stopped" and "rejected" not in quiet["detail"]
    assert quiet["rejected"] == 0 and "rejected_kinds" not in quiet
    assert not list(validator().iter_errors(quiet)), quiet


def _as(kind: str, offset: int, data: bytes) -> can.Message:
    """The protocol's bytes on one of its ids, in a frame of ``kind``: the classic data frame, or one that is none."""
    if kind == "remote":  # python-can drops a remote frame's data (its copy on the virtual bus is empty)
        return can.Message(arbitration_id=offset, data=data, dlc=8, is_remote_frame=True, is_extended_id=False)
    if kind == "extended":
        return can.Message(arbitration_id=offset, data=data, is_extended_id=True)
    if kind == "dlc":  # classic CAN lets a DLC of 9-15 carry 8 bytes: no protocol frame (PROTOCOL.md 4.3)
        return can.Message(arbitration_id=offset, data=data, dlc=12, is_extended_id=False)
    return can.Message(arbitration_id=offset, data=data, is_fd=kind == "fd", is_extended_id=False)


def test_frames_that_are_no_protocol_frames_are_counted_never_acted_on(sites: list[Site]) -> None:
    """An FD frame, a classic one with DLC 12 (or a 29-bit one on an 11-bit bus) carrying a valid HEARTBEAT, then
    a valid SET_LIMIT, and a remote frame on their ids, move nothing: counted by kind, reported.  The same bytes in classic data frames
    afterwards are acted on (not taken for repeats: the copies never reached the alive-counter check)."""
    site = Site(with_master=False)
    sites.append(site)
    servant = site.servants[1]
    node = servant.node
    assert isinstance(node, Servant)
    site.run(0.5, [servant])
    peer, link = site.bus(), Link()
    hb = link.encode(Heartbeat(1, 7, 320, heard=0b10))  # master 1 epoch 7 hears servant 1
    grant = link.encode(SetLimit(1, txn=1, limit_da=100, failsafe_da=60, epoch=7))
    for offset, data in (hb, grant):
        for kind in ("fd", "remote", "dlc", "extended"):
            peer.send(_as(kind, offset, data))
        site.run(0.5, [servant])
        assert servant.last_heartbeat is None and node.offer_da == 0 and node.last_set_limit is None
    assert servant.stats.accepted == 0
    assert servant.stats.rejected == 6 and servant.stats.rejected_kinds == {"fd": 2, "remote": 2, "dlc": 2}
    assert servant.transport.stats.as_dict()["foreign"] == 2
    rejected = [r["detail"] for r in site.records["1"] if r.get("event") == "frame-rejected"]
    assert rejected == [line for off, data in (hb, grant) for line in (
        f"id {off:#05x} [{data.hex(' ')}] fd: CAN FD frame, not a protocol frame",
        f"id {off:#05x} [] remote: remote frame, not a protocol frame",
        f"id {off:#05x} [{data.hex(' ')}] dlc: classic frame whose DLC is not 8, not a protocol frame")]
    # (not a 'length' error)
    status = servant.status(site.t)
    assert status["rejected"] == 6 and status["rejected_kinds"] == {"fd": 2, "remote": 2, "dlc": 2}
    for rec in [status, *site.records["1"]]:
        assert not list(validator().iter_errors(rec)), rec
    for offset, data in (hb, grant):  # the very same bytes, as the protocol's frames
        peer.send(_as("data", offset, data))
        site.run(0.5, [servant])
    assert servant.last_heartbeat is not None and node.offer_da == 100
    assert servant.stats.accepted == 2 and servant.stats.rejected == 6
    peer.shutdown()


class _Handed:
    """A transport that hands the runtime the frames it is given, whatever their kind (a ``base.Transport``)."""

    link_down_words = "bus-off"

    def __init__(self, frames: Iterable[RxFrame]) -> None:
        self.frames = deque(frames)
        self.bus_off = False
        self.stats = TransportStats()

    def send(self, offset: int, data: bytes) -> bool:
        return True

    def recv(self, timeout: float) -> RxFrame | None:
        return self.frames.popleft() if self.frames else None

    def drain_events(self) -> list[BusEvent]:
        return []

    def shutdown(self) -> None:
        pass


@pytest.mark.parametrize("kind", [CanKind.REMOTE, CanKind.FD, CanKind.DLC])
def test_the_runtime_itself_never_acts_on_a_frame_that_is_no_data_frame(kind: CanKind) -> None:
    """Whatever a transport hands on (python-can empties a remote frame's data; another driver might not): a
    valid HEARTBEAT and SET_LIMIT in a remote or FD frame are counted by kind, never acted on."""
    link = Link()
    frames = [RxFrame(off, data, 0.0, off, kind) for off, data in (
        link.encode(Heartbeat(1, 7, 320, heard=0b10)), link.encode(SetLimit(1, 1, 100, 60, 7)))]
    sc = CONFIG.servant(1)
    assert sc is not None
    node = Servant(sc, TIMING, 0.0)
    rt = Runtime(node, _Handed(frames), hardware=BenchHardware(PilotState.C, 0, log=lambda line: None))
    rt.pump(0.1)
    assert rt.last_heartbeat is None and node.last_set_limit is None and node.offer_da == 0
    assert rt.stats.accepted == 0 and rt.stats.rejected_kinds == {kind.value: 2}
    assert rt.link.master is None and not any(rt.link.stats().values())  # the link never saw them


def test_pilot_changes_reach_the_hardware(sites: list[Site]) -> None:
    site = Site(with_master=False)
    sites.append(site)
    # no master ever: after a while (the core decides how long) the standalone failsafe is offered
    for _ in range(120):
        site.run(0.5)
        if all(rt.node.offer_da for rt in site.servants.values()):  # type: ignore[attr-defined]
            break
    for address, hw in site.hw.items():
        assert hw.offer_da == CONFIG.servant(address).failsafe_da  # type: ignore[union-attr]
        assert site.pilot_records(address)[-1]["offer_a"] * 10 == hw.offer_da
        assert site.pilot_records(address)[-1]["failsafe"]


def test_run_in_real_time_stops_gracefully_and_the_master_leaves() -> None:
    channel = f"busshare-runtime-{next(_channels)}"
    rt = Runtime(Master(CONFIG, 0.0, epoch=9), CanTransport(can.Bus(interface="virtual", channel=channel)))
    rt.node = Master(CONFIG, rt.clock(), epoch=9)
    listener = can.Bus(interface="virtual", channel=channel)
    th = threading.Thread(target=rt.run, kwargs={"handle_signals": False})
    th.start()
    assert listener.recv(10.0) is not None  # it heartbeats
    rt.stop()
    th.join(10)
    assert not th.is_alive()
    link, last = Link(), None
    while (m := listener.recv(0.0)) is not None:
        last = link.receive(m.arbitration_id, bytes(m.data), m.timestamp).message
    assert isinstance(last, Heartbeat) and last.leaving
    listener.shutdown()


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_run_handles_signals_in_the_main_thread(signal_name: str) -> None:
    import os
    import signal

    channel = f"busshare-runtime-{next(_channels)}"
    rt = Runtime(Master(CONFIG, 0.0, epoch=9), CanTransport(can.Bus(interface="virtual", channel=channel)))
    rt.node = Master(CONFIG, rt.clock(), epoch=9)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), getattr(signal, signal_name)))
    timer.start()
    before = signal.getsignal(signal.SIGINT)
    rt.run(duration=30.0)  # returns on the signal, long before the duration
    timer.join()
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    assert rt.stats.sent > 0


def test_a_restarted_master_is_heard_at_once_not_taken_for_repeats(sites: list[Site]) -> None:
    site = Site()
    sites.append(site)
    site.run(3.0)
    assert site.master is not None
    site.master.transport.shutdown()  # kill: no leaving heartbeat
    site.run(3.0, site.servants.values())
    assert all(rt.node.in_failsafe for rt in site.servants.values())  # type: ignore[attr-defined]
    # the new master's alive counters start again at 0, like the dead one's did
    site.master = site.runtime("master2", Master(CONFIG, site.t, epoch=6))
    # (servants in failsafe: it learns for a reaction allowance before confirming anyone, rule 5)
    site.run(TIMING.reaction_allowance + 1.0)
    for address, rt in site.servants.items():
        rejected = [r for r in site.records[str(address)] if r.get("event") == "frame-rejected"]
        assert rejected == [], rejected
        assert not rt.node.in_failsafe  # type: ignore[attr-defined]


def test_a_restarted_servant_is_heard_at_once_not_taken_for_repeats(sites: list[Site]) -> None:
    site = Site()
    sites.append(site)
    site.run(3.0)
    site.servants[2].transport.shutdown()  # power cut
    site.run(2.0, [r for a, r in site.servants.items() if a != 2] + [site.master])  # type: ignore[list-item]
    # the same unit boots again: same frames, alive counters from 0 again
    sc = CONFIG.servant(2)
    assert sc is not None
    site.servants[2] = site.runtime("2", Servant(sc, TIMING, site.t), site.hw[2])
    site.run(3.0)
    rejected = [r for r in site.records["master"] if r.get("event") == "frame-rejected"]
    assert rejected == [], rejected
    assert site.servants[2].node.offer_da > 0 and not site.servants[2].node.in_failsafe  # type: ignore[attr-defined]


class _Recording(_Handed):
    """A transport that notes, at each send, what the state file holds then."""

    def __init__(self, frames: Iterable[RxFrame], state: StateFile) -> None:
        super().__init__(frames)
        self.state = state
        self.file_at_send: list[ServantMemory | None] = []

    def send(self, offset: int, data: bytes) -> bool:
        self.file_at_send.append(StateFile(self.state.path, self.state.address).load())
        return True


def test_a_servants_memory_is_on_disk_before_its_ack_is_sent(tmp_path: Path) -> None:
    """PROTOCOL.md 8.4: the file holds the txn applied before the ACK for it goes out."""
    link = Link()
    frames = [RxFrame(off, data, 0.0, off, CanKind.DATA) for off, data in (
        link.encode(Heartbeat(1, 7, 320, heard=0b10)), link.encode(SetLimit(1, 1, 100, 60, 7)))]
    sc = CONFIG.servant(1)
    assert sc is not None
    state = StateFile(tmp_path / "servant-1.json", 1)
    transport = _Recording(frames, state)
    node = Servant(sc, TIMING, 0.0)
    rt = Runtime(node, transport, hardware=BenchHardware(PilotState.C, 0, log=lambda line: None), state=state)
    rt.pump(0.1)
    assert node.last_set_limit == SetLimit(1, 1, 100, 60, 7)
    kept = transport.file_at_send[-1]  # at the last send (the ACK)
    assert kept is not None and kept.set_limits[-1] == node.last_set_limit


def test_a_state_file_that_cannot_be_written_is_reported_once_and_sharing_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    records: list[Record] = []
    link = Link()
    frames = [RxFrame(off, data, 0.0, off, CanKind.DATA) for off, data in (
        link.encode(Heartbeat(1, 7, 320, heard=0b10)), link.encode(SetLimit(1, 1, 100, 60, 7)),
        link.encode(Heartbeat(1, 7, 320, heard=0b10, seq=2)))]
    sc = CONFIG.servant(1)
    assert sc is not None
    node = Servant(sc, TIMING, 0.0)
    rt = Runtime(node, _Handed(frames), hardware=BenchHardware(PilotState.C, 0, log=lambda line: None),
                 on_record=records.append, state=StateFile(blocker / "servant-1.json", 1))
    rt.pump(0.1)
    problems = [r for r in records if r.get("event") == "state-unwritable"]
    assert len(problems) == 1 and "cannot write" in str(problems[0]["detail"]) and node.offer_da == 100


def test_a_servant_whose_process_stalled_fails_safe_when_it_resumes_not_a_timeout_later(sites: list[Site]) -> None:
    """The process stalls (swap, a blocked write, SIGSTOP) as its master dies: the heartbeats sent before the
    death wait in the socket's queue. Read at the resume they are no news of a live master: the deadline that
    passed in the stall is served first, and the servant fails safe at once, not 1.5 s after the resume."""
    site = Site()
    sites.append(site)
    site.run(3.0)
    stalled = site.servants[1]
    assert site.master is not None and not stalled.node.in_failsafe  # type: ignore[attr-defined]
    others = [r for a, r in site.servants.items() if a != 1]
    site.run(0.2, [site.master, *others])  # servant 1 stalls; the master heartbeats on, then dies silently
    site.run(2.0, others)
    resume = round(site.t + STEP, 6)
    site.t = resume
    offered = stalled.node.offer_da  # type: ignore[attr-defined]
    failsafe_da = CONFIG.servant(1).failsafe_da  # type: ignore[union-attr]
    assert offered > failsafe_da
    stalled.pump(resume)
    entered = [r for r in site.pilot_records(1) if r["failsafe"]]
    assert entered and entered[0]["t"] == resume
    # the master's re-sent SET_LIMIT, queued with the heartbeats, is applied never above the failsafe offer (5.1)
    assert stalled.node.offer_da <= failsafe_da  # type: ignore[attr-defined]
    site.run(2.0, [stalled])
    assert all(r["offer_a"] * 10 <= failsafe_da for r in site.pilot_records(1) if r["t"] >= resume)


class _Stalls(_Handed):
    """Frames arrive on a clock of its own; once, waiting in ``recv``, the process stands still (a SIGSTOP) while
    the frames go on arriving into the socket's queue."""

    def __init__(self, arrivals: Iterable[tuple[float, RxFrame]], stall_at: float, stall_s: float) -> None:
        super().__init__([])
        self.t = 0.0
        self.arrivals = deque(arrivals)
        self.stall_at: float | None = stall_at
        self.stall_s = stall_s

    def clock(self) -> float:
        return self.t

    def recv(self, timeout: float) -> RxFrame | None:
        if self.arrivals and self.arrivals[0][0] <= self.t:
            return self._next()
        self.t = round(self.t + timeout, 6)
        if self.stall_at is not None and self.t >= self.stall_at:
            self.t, self.stall_at = self.t + self.stall_s, None  # woken, the wait returns what queued meanwhile
            return self._next() if self.arrivals and self.arrivals[0][0] <= self.t else None
        return None

    def _next(self) -> RxFrame:
        """The next frame, saying how long it waited (as the CAN transport does from the kernel's timestamp)."""
        arrived, frame = self.arrivals.popleft()
        return dataclasses.replace(frame, waited=round(self.t - arrived, 6))


def stalled_servant(heartbeats: int, stall_at: float, stall_s: float, duration: float,
                    raise_at: float | None = None, event: str = "offer") -> list[Record]:
    """``run()`` of servant 1 (its car charging) through ``_Stalls``: a grant of 10 A at 0.15 s, and ``heartbeats``
    of a master that hears it from 0.1 s, every 0.2 s; then the master is dead. Its ``event`` records.
    ``raise_at``: a raise to 32 A arrives then too."""
    link = Link()
    arrivals: list[tuple[float, Heartbeat | SetLimit]] = [
        (0.1 + 0.2 * i, Heartbeat(1, 7, 320, heard=0b10, seq=i + 1)) for i in range(heartbeats)]
    arrivals.insert(1, (0.15, SetLimit(1, 1, 100, 60, 7)))
    if raise_at is not None:
        arrivals.append((raise_at, SetLimit(1, 2, 320, 60, 7)))
        arrivals.sort(key=lambda a: a[0])
    frames: list[tuple[float, RxFrame]] = []
    for t, msg in arrivals:
        off, data = link.encode(msg)
        frames.append((t, RxFrame(off, data, t, off, CanKind.DATA)))
    transport = _Stalls(frames, stall_at=stall_at, stall_s=stall_s)
    sc = CONFIG.servant(1)
    assert sc is not None
    records: list[Record] = []
    rt = Runtime(Servant(sc, TIMING, 0.0), transport, hardware=BenchHardware(PilotState.C, 0, log=lambda line: None),
                 clock=transport.clock, on_record=records.append)
    rt.run(duration=duration, handle_signals=False)
    return [r for r in records if r.get("event") == event]


def test_the_loop_serves_a_deadline_it_stalled_past_before_the_frames_that_queued_meanwhile() -> None:
    """The master's last heartbeat (3.1 s) arrives while the servant's process stands still (3.0 to 5.2 s); the
    master is dead. The servant fails safe as it resumes, before taking that heartbeat: not 1.5 s after it."""
    offers = stalled_servant(16, stall_at=3.0, stall_s=2.2, duration=7.0)  # heartbeats 0.1 .. 3.1 s
    assert any(r["offer_a"] == 10.0 for r in offers)  # granted before the stall
    entered = [r for r in offers if r["failsafe"]]
    assert entered and 5.2 <= entered[0]["t"] < 5.2 + TIMING.tick_period
    assert entered[0]["last_heartbeat"] < 3.1  # before the queued heartbeat was taken


def test_a_raise_that_waited_out_a_long_stall_is_taken_as_a_repeat() -> None:
    """The master's raise to 32 A (3.05 s) and its last heartbeat (3.1 s) queue while the servant stands still
    (3.0 to 5.2 s); the master is dead. The raise proves the master alive at 3.05 s only: read at 5.2 s, past
    that arrival's failsafe deadline, it ends no failsafe and raises nothing (PROTOCOL.md 8.2 rule 4)."""
    offers = stalled_servant(16, stall_at=3.0, stall_s=2.2, duration=7.0, raise_at=3.05)
    assert offers and all(r["offer_a"] <= 10.0 for r in offers)
    repeats = stalled_servant(16, stall_at=3.0, stall_s=2.2, duration=7.0, raise_at=3.05, event="repeat")
    assert len(repeats) == 1 and 5.2 <= repeats[0]["t"] < 5.2 + TIMING.tick_period  # as it resumes
    assert "after it arrived" in repeats[0]["detail"]
    assert stalled_servant(16, stall_at=3.0, stall_s=2.2, duration=7.0, raise_at=3.05, event="failsafe-end") == []


def test_a_heartbeat_that_waited_out_a_short_stall_counts_from_its_arrival() -> None:
    """The servant's process stands still from 2.0 to 2.9 s, shorter than its failsafe deadline; the master's last
    heartbeats (2.1 to 2.5 s) queue meanwhile, then it dies. Read at 2.9 s, the last one proves the master alive
    at 2.5 s only: the failsafe comes 1.5 s after that (PROTOCOL.md 8.2 rule 4), not after the read."""
    offers = stalled_servant(13, stall_at=2.0, stall_s=0.9, duration=6.0)  # heartbeats 0.1 .. 2.5 s
    assert any(r["offer_a"] == 10.0 for r in offers)
    entered = [r for r in offers if r["failsafe"]]
    due = 2.5 + TIMING.failsafe_timeout
    assert entered and due <= entered[0]["t"] < due + TIMING.tick_period
