"""The CAN transport on python-can's real `virtual` bus: ids, filters, send failures, error frames, bus-off."""

from __future__ import annotations

import itertools

import can
import pytest

from busshare.errors import UserError
from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.protocol.canid import IdScheme
from busshare.protocol.link import Link
from busshare.transport.can import CAN_ERR_BUSOFF
from busshare.transport.can import CAN_ERR_CRTL
from busshare.transport.can import CAN_ERR_RESTARTED
from busshare.transport.can import CanTransport
from busshare.transport.can import open_bus
from tests.support.nodeproc import free_udp_port

_channels = itertools.count()


@pytest.fixture
def channel() -> str:
    return f"busshare-transport-{next(_channels)}"


def pair(channel: str, ids: IdScheme | None = None, **kw: object) -> tuple[CanTransport, can.BusABC]:
    """A transport and a raw peer bus on the same virtual channel."""
    transport = CanTransport(can.Bus(interface="virtual", channel=channel, **kw), ids)
    peer = can.Bus(interface="virtual", channel=channel)
    return transport, peer


def recv_all(transport: CanTransport, n: int = 10) -> list[object]:
    out = []
    for _ in range(n):
        f = transport.recv(0.0)
        if f is not None:
            out.append(f)
    return out


def test_frames_cross_the_bus_with_their_offset_and_bytes(channel: str) -> None:
    a = CanTransport(can.Bus(interface="virtual", channel=channel))
    b = CanTransport(can.Bus(interface="virtual", channel=channel))
    link = Link()
    offset, data = link.encode(SetLimit(3, 17, 320, 60, 7))
    assert a.send(offset, data)
    got = b.recv(1.0)
    assert got is not None
    assert (got.offset, got.data, got.can_id) == (offset, data, offset)
    assert Link().receive(got.offset, got.data, 0.0).message == SetLimit(3, 17, 320, 60, 7)
    assert a.stats.sent == 1 and b.stats.received == 1


def test_only_the_protocols_ids_get_through(channel: str) -> None:
    ids = IdScheme(base=0x200)
    transport, peer = pair(channel, ids)
    for can_id in (0x000, 0x1FF, 0x200, 0x3FF, 0x400, 0x7FF):
        peer.send(can.Message(arbitration_id=can_id, data=bytes(8), is_extended_id=False))
    peer.send(can.Message(arbitration_id=0x200, data=bytes(8), is_extended_id=True))  # right number, wrong kind
    got = recv_all(transport)
    assert [(f.can_id, f.offset) for f in got] == [(0x200, 0x000), (0x3FF, 0x1FF)]  # type: ignore[attr-defined]
    assert transport.stats.foreign == 5


def test_extended_scheme_sends_and_accepts_29_bit_ids(channel: str) -> None:
    ids = IdScheme(base=0x18000000, extended=True)
    transport, peer = pair(channel, ids)
    offset, data = Link().encode(Heartbeat(1, 2, 800))
    transport.send(offset, data)
    sent = peer.recv(1.0)
    assert sent is not None and sent.is_extended_id and sent.arbitration_id == 0x18000000 + offset
    peer.send(can.Message(arbitration_id=0x18000000 + offset, data=data, is_extended_id=True))
    peer.send(can.Message(arbitration_id=offset, data=data, is_extended_id=False))
    assert [f.offset for f in recv_all(transport)] == [offset]  # type: ignore[attr-defined]


def test_odd_frames_in_our_range_are_handed_on_for_the_link_to_reject(channel: str) -> None:
    transport, peer = pair(channel)
    peer.send(can.Message(arbitration_id=0x040, data=b"\x01\x02", is_extended_id=False))
    peer.send(can.Message(arbitration_id=0x040, is_remote_frame=True, dlc=8, is_extended_id=False))
    link = Link()
    for f in recv_all(transport):
        assert link.receive(f.offset, f.data, 0.0).message is None  # type: ignore[attr-defined]
    assert transport.stats.not_classic == 2
    assert link.malformed["length"] == 2


def test_a_send_that_cannot_complete_is_counted_not_raised(channel: str) -> None:
    # A peer with a one-frame receive queue that never reads: the second send times out.
    sender = CanTransport(can.Bus(interface="virtual", channel=channel), send_timeout=0.01)
    stuck = can.Bus(interface="virtual", channel=channel, rx_queue_size=1)
    offset, data = Link().encode(Heartbeat(1, 2, 800))
    assert sender.send(offset, data)
    assert not sender.send(offset, data)
    assert sender.stats.send_timeouts + sender.stats.send_errors == 1
    assert [e.kind for e in sender.drain_events()] == ["send-failed"]
    stuck.shutdown()


def test_send_on_a_closed_bus_is_counted(channel: str) -> None:
    transport, peer = pair(channel)
    transport.bus.shutdown()
    assert not transport.send(0x040, bytes(8))
    assert transport.stats.send_errors == 1
    assert transport.recv(0.0) is None
    assert transport.stats.recv_errors == 1


def test_bus_off_error_frame_sets_bus_off_until_restart(channel: str) -> None:
    transport, peer = pair(channel, IdScheme(base=0x400))  # error class bits lie outside our ids
    peer.send(can.Message(arbitration_id=CAN_ERR_BUSOFF, is_error_frame=True, data=bytes(8)))
    assert transport.recv(0.0) is None
    assert transport.bus_off and transport.stats.error_frames == 1 and transport.stats.bus_off_entries == 1
    peer.send(can.Message(arbitration_id=CAN_ERR_RESTARTED, is_error_frame=True, data=bytes(8)))
    assert transport.recv(0.0) is None
    assert not transport.bus_off
    assert [e.kind for e in transport.drain_events()] == ["error-frame", "bus-off", "error-frame", "bus-recovered"]


def test_error_passive_is_reported_but_is_not_bus_off(channel: str) -> None:
    """A controller whose frames nobody acknowledges goes error-passive, and stays there (ISO 11898-1: an
    error-passive transmitter's ACK errors no longer count): it is reported, but only bus-off is a dead link.
    Whether its frames reach the master is what the heartbeat's heard bit tells the servant (PROTOCOL.md 5.2)."""
    transport, peer = pair(channel, IdScheme(base=0x400))
    peer.send(can.Message(arbitration_id=CAN_ERR_CRTL, is_error_frame=True, data=bytes([0, 0x20, 0, 0, 0, 0, 0, 0])))
    assert transport.recv(0.0) is None
    assert not transport.bus_off and transport.stats.error_frames == 1
    events = transport.drain_events()
    assert [e.kind for e in events] == ["error-frame"] and "tx-error-passive" in events[0].detail


def test_a_good_frame_ends_bus_off(channel: str) -> None:
    transport, peer = pair(channel)
    peer.send(can.Message(arbitration_id=CAN_ERR_BUSOFF, is_error_frame=True, data=bytes(8)))
    transport.recv(0.0)
    assert transport.bus_off
    offset, data = Link().encode(Heartbeat(1, 2, 800))
    peer.send(can.Message(arbitration_id=offset, data=data, is_extended_id=False))
    assert transport.recv(0.0) is not None
    assert not transport.bus_off


def test_open_bus_names_the_problem_in_one_line() -> None:
    with pytest.raises(UserError) as err:
        open_bus({"interface": "socketcan", "channel": "no-such-can9"})
    assert "cannot open CAN bus (socketcan channel no-such-can9)" in str(err.value)
    assert "\n" not in str(err.value)


def test_open_bus_defaults_to_udp_multicast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAN_INTERFACE", raising=False)
    monkeypatch.delenv("CAN_CHANNEL", raising=False)
    monkeypatch.setattr(can, "rc", {})
    monkeypatch.setenv("HOME", "/nonexistent")  # no ~/can.rc
    monkeypatch.chdir("/")
    bus = open_bus({"port": free_udp_port()})
    try:
        assert type(bus).__name__ == "UdpMulticastBus"
    finally:
        bus.shutdown()


def test_own_frames_looped_back_are_not_heard(channel: str) -> None:
    # udp_multicast loops datagrams back to the sender; virtual does it with receive_own_messages.
    transport = CanTransport(can.Bus(interface="virtual", channel=channel, receive_own_messages=True),
                             suppress_echo=True)
    peer = can.Bus(interface="virtual", channel=channel)
    link = Link()
    offset, data = link.encode(Heartbeat(1, 2, 800))
    transport.send(offset, data)
    other = Link().encode(Heartbeat(9, 9, 800))[1]
    peer.send(can.Message(arbitration_id=offset, data=other, is_extended_id=False))
    got = recv_all(transport)
    assert [f.data for f in got] == [other]  # type: ignore[attr-defined]
    assert transport.stats.echoes == 1


def test_udp_multicast_transport_drops_its_echo_by_default() -> None:
    bus = can.Bus(interface="udp_multicast", port=free_udp_port())
    try:
        assert CanTransport(bus).suppress_echo
    finally:
        bus.shutdown()


@pytest.fixture
def fake_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import can.interfaces

    sys.modules.pop("tests.support.fake_can_drivers", None)  # imported afresh: its warning comes each time
    monkeypatch.setitem(can.interfaces.BACKENDS, "fakefail", ("tests.support.fake_can_drivers", "FailingBus"))
    monkeypatch.setitem(can.interfaces.BACKENDS, "fakeok", ("tests.support.fake_can_drivers", "WorkingBus"))
    monkeypatch.setattr(can.util, "VALID_INTERFACES", can.util.VALID_INTERFACES | {"fakefail", "fakeok"})


def test_a_driver_that_fails_to_open_leaves_only_our_one_line(fake_drivers: None,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """python-can's own log lines (the driver's import warning, the half-built bus's 'not properly shut
    down') reached stderr before and after the user's one line."""
    from busshare.errors import UserError
    from busshare.transport.can import open_bus

    with pytest.raises(UserError, match=r"cannot open CAN bus \(fakefail\): vendor driver could not be loaded"):
        open_bus({"interface": "fakefail"})
    assert [r.getMessage() for r in caplog.records if r.name.startswith("can")] == []


def test_a_driver_that_opens_keeps_its_warnings(fake_drivers: None, caplog: pytest.LogCaptureFixture) -> None:
    from busshare.transport.can import open_bus

    bus = open_bus({"interface": "fakeok"})
    bus.shutdown()
    assert "vendor library not found: timestamps are relative to boot time" in caplog.messages



@pytest.mark.parametrize(("read_after", "waited"), [(0.4, 0.4), (0.0, 0.0), (-2.0, 0.0), (3600.0, 0.0)])
def test_a_frame_says_how_long_it_waited_in_the_receive_queue(channel: str, read_after: float,
                                                              waited: float) -> None:
    """From python-can's timestamp (the kernel's receive time on socketcan) to the read: a servant counts its
    failsafe from a frame's arrival (PROTOCOL.md 8.2 rule 4, a stalled process). A timestamp in the future or
    an hour old is of another clock (an interface counting from its own start): not known, 0."""
    stamped = 1_700_000_000.0
    sender = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    transport = CanTransport(can.Bus(interface="virtual", channel=channel), wall=lambda: stamped + read_after)
    offset, data = Link().encode(Heartbeat(1, 7, 320, seq=1))
    sender.send(can.Message(arbitration_id=offset, data=data, is_extended_id=False, timestamp=stamped))
    frame = transport.recv(1.0)
    sender.shutdown()
    transport.shutdown()
    assert frame is not None and frame.timestamp == stamped
    assert frame.waited == pytest.approx(waited, abs=1e-6)  # (1.7e9 + 0.4 in binary floating point)
