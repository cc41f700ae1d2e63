"""The Modbus register map: mailbox slots carry the protocol's frames byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.protocol.link import Link
from busshare.transport.modbus import registers as mm
from busshare.transport.modbus import rtu

frame8 = st.binary(min_size=8, max_size=8)
offset = st.integers(0, 511)


@given(offset, frame8)
def test_a_slot_round_trips(off: int, data: bytes) -> None:
    regs = mm.slot_regs(off, data)
    assert len(regs) == mm.SLOT_REGS
    assert mm.regs_slot(regs) == (off, data)


def test_frame_bytes_appear_on_the_wire_in_their_own_order() -> None:
    off, data = Link().encode(SetLimit(3, 17, 320, 60, 7))
    wire = rtu.read_write_request(3, mm.OUTBOX, mm.OUTBOX_REGS, mm.INBOX, mm.pack_inbox(0, [(off, data)]))
    assert data in wire  # the 8 protocol bytes, untouched, inside the Modbus request
    assert off.to_bytes(2, "big") + data in wire


@given(st.integers(0, 255), st.lists(st.tuples(offset, frame8), max_size=mm.MAILBOX_SLOTS))
def test_inbox_round_trips(ack: int, frames: list[tuple[int, bytes]]) -> None:
    assert mm.unpack_inbox(mm.pack_inbox(ack, frames)) == (ack, frames)


@given(st.integers(0, 255), st.integers(0, 40), st.lists(st.tuples(offset, frame8), max_size=mm.MAILBOX_SLOTS))
def test_outbox_round_trips_and_is_always_the_same_size(seq: int, more: int, frames: list[tuple[int, bytes]]) -> None:
    regs = mm.pack_outbox(mm.OutboxBatch(seq, more, tuple(frames)))
    assert len(regs) == mm.OUTBOX_REGS
    back = mm.unpack_outbox(regs)
    assert (back.seq, back.more, back.frames) == (seq, min(more, 15), tuple(frames))


def test_inconsistent_mailbox_writes_are_refused() -> None:
    with pytest.raises(ValueError, match="2 frames"):
        mm.unpack_inbox([0x0002] + mm.slot_regs(0x40, bytes(8)))
    with pytest.raises(ValueError):
        mm.pack_inbox(0, [(1, bytes(8))] * (mm.MAILBOX_SLOTS + 1))
    with pytest.raises(ValueError, match="8 bytes"):
        mm.slot_regs(1, b"short")


def test_plain_registers_round_trip_with_their_units() -> None:
    view = mm.PlainView(
        address=3, serial=0xDEADBEEF, pilot=2, offered_da=320, measured_da=None, requested_da=320, granted_da=320,
        failsafe=False, errors=mm.ErrorFlag.TWIN | mm.ErrorFlag.MASTER_SILENT, master_silent_ds=12,
        frames_ok=70000, bad_frames=1, e2e_drops=0, answered=5, broadcasts=9, uptime_s=100000, max_da=320,
        min_da=60, priority=0, failsafe_da=60,
    )
    regs = view.registers()
    assert len(regs) == mm.PLAIN_COUNT
    assert regs[mm.Plain.SERIAL_HI] == 0xDEAD and regs[mm.Plain.SERIAL_LO] == 0xBEEF
    assert regs[mm.Plain.MEASURED] == 0xFFFF  # no meter
    assert regs[mm.Plain.UPTIME] == 0xFFFF  # saturates
    assert regs[mm.Plain.FRAMES_OK] == 70000 & 0xFFFF  # counters wrap
    back = mm.PlainView.from_registers(regs)
    assert (back.address, back.serial, back.offered_da, back.measured_da, back.errors) == (
        3, 0xDEADBEEF, 320, None, mm.ErrorFlag.TWIN | mm.ErrorFlag.MASTER_SILENT)


def test_heartbeat_broadcast_is_one_slot() -> None:
    off, data = Link().encode(Heartbeat(1, 7, 640))
    wire = rtu.write_multiple_request(0, mm.BROADCAST_BOX, mm.slot_regs(off, data))
    assert len(wire) == mm.BROADCAST_BYTES


def test_wire_time_of_a_poll_is_its_bytes_and_two_gaps() -> None:
    req = rtu.read_write_request(1, mm.OUTBOX, mm.OUTBOX_REGS, mm.INBOX, mm.pack_inbox(0, []))
    rep = rtu.read_response(1, rtu.READ_WRITE_MULTIPLE, mm.pack_outbox(mm.OutboxBatch(0, 0, ())))
    assert (len(req), len(rep)) == (mm.POLL_REQUEST_BYTES, mm.POLL_REPLY_BYTES)
    for baud in (9600, 19200, 115200):
        expect = (len(req) + len(rep)) * 11 / baud + 2 * rtu.gap_time(baud)
        assert mm.poll_wire_time(baud) == pytest.approx(expect)


@pytest.mark.parametrize("baud", [9600, 19200, 115200])
def test_modbus_timing_covers_the_worst_stall_of_the_poll_loop(baud: int) -> None:
    t = mm.modbus_timing(baud, servants=32)  # validate_timing ran inside
    stall = 2 * (mm.poll_wire_time(baud, mm.MAILBOX_SLOTS) + mm.DEFAULT_REPLY_TIMEOUT)
    assert t.failsafe_timeout >= 1.5  # never shorter than on CAN, never looser than it needs
    assert t.failsafe_timeout >= 5 * t.heartbeat_period + stall
    # a healthy servant has its reply confirmed at least every two cycles of a full segment
    assert t.failsafe_timeout >= 3 * mm.cycle_wire_time(baud, mm.FULL_SEGMENT)
    assert t.status_period >= mm.cycle_wire_time(baud, 32) - 0.01
    assert t.tick_period == 0.05


@pytest.mark.parametrize("baud", [9600, 19200, 115200])
@pytest.mark.parametrize("servants", [1, 8, 32, 62])
def test_master_side_timers_scale_with_the_poll_cycle(baud: int, servants: int) -> None:
    t = mm.modbus_timing(baud, servants)
    cycle = mm.cycle_wire_time(baud, servants)
    assert t.servant_silent_after >= 3 * cycle  # a servant is not called silent while it waits for its poll
    assert t.ack_timeout >= 2 * cycle  # a set-limit out on one poll, its ack back on the next
    # the servant's failsafe does not depend on how many servants there are
    assert t.failsafe_timeout == mm.modbus_timing(baud, 1).failsafe_timeout
