"""The servant's Modbus server, sans-IO: what it answers on a multi-drop line, and what it never answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from busshare.transport.base import BusEventKind
from busshare.transport.modbus import registers as mm
from busshare.transport.modbus import rtu
from busshare.transport.modbus.servant import ModbusServer

ME = 3


def server() -> ModbusServer:
    s = ModbusServer(ME, now=0.0)
    s.snapshot.serial, s.snapshot.max_da, s.snapshot.min_da, s.snapshot.failsafe_da = 0x1234ABCD, 320, 60, 60
    return s


def poll(dev: int, ack: int = 0, frames: list[tuple[int, bytes]] | None = None) -> bytes:
    return rtu.read_write_request(dev, mm.OUTBOX, mm.OUTBOX_REGS, mm.INBOX, mm.pack_inbox(ack, frames or []))


def test_answers_a_plain_read_addressed_to_it() -> None:
    s = server()
    (reply,) = s.feed(rtu.read_request(ME, 0, mm.PLAIN_COUNT), now=1.0)
    pdu = rtu.parse(reply, "response")
    view = mm.PlainView.from_registers(pdu.values)
    assert (pdu.device, view.address, view.serial, view.max_da) == (ME, ME, 0x1234ABCD, 320)
    assert mm.ErrorFlag.MASTER_SILENT in view.errors  # no master heard yet


def test_function_4_reads_the_same_map() -> None:
    s = server()
    (a,) = s.feed(rtu.read_request(ME, 0, 5, rtu.READ_HOLDING), now=1.0)
    (b,) = s.feed(rtu.read_request(ME, 0, 5, rtu.READ_INPUT), now=1.0)
    assert rtu.parse(a).values == rtu.parse(b).values


def test_never_answers_a_frame_for_another_address() -> None:
    s = server()
    assert s.feed(rtu.read_request(ME + 1, 0, 3), now=1.0) == []
    assert s.feed(poll(ME + 1), now=1.0) == []
    assert s.stats.for_others == 2 and s.stats.answered == 0


def test_never_answers_a_broadcast_but_takes_its_frames() -> None:
    s = server()
    off, data = Link().encode(Heartbeat(1, 7, 640))
    assert s.feed(rtu.write_multiple_request(0, mm.BROADCAST_BOX, mm.slot_regs(off, data)), now=1.0) == []
    assert s.feed(rtu.read_request(0, 0, 3), now=1.0) == []  # even a (meaningless) broadcast read
    assert list(s.inbound) == [(off, data)]
    assert s.last_master == 1.0


def batch_of(reply: bytes) -> mm.OutboxBatch:
    return mm.unpack_outbox(rtu.parse(reply, "response").values)


def test_the_mailbox_transaction_delivers_inbox_frames_and_returns_the_outbox() -> None:
    s = server()
    link = Link()
    grant = link.encode(SetLimit(ME, 1, 320, 60, 7))
    status = link.encode(Status(ME, 0x2BCD, PilotState.C, 320, 300, 320))
    first = batch_of(s.feed(poll(ME, frames=[grant]), now=1.0)[0])  # the master has acked nothing yet
    assert list(s.inbound) == [grant]
    assert first.frames == ()
    s.queue(*status)
    second = batch_of(s.feed(poll(ME, ack=first.seq), now=1.1)[0])
    assert second.frames == (status,) and second.seq == (first.seq + 1) & 0xFF


def test_an_unacknowledged_batch_is_sent_again_and_dropped_once_acked() -> None:
    s = server()
    link = Link()
    hello = batch_of(s.feed(poll(ME), now=0.9)[0])
    s.queue(*link.encode(Status(ME, 1, PilotState.C, 320, 300, 320)))
    first = batch_of(s.feed(poll(ME, ack=hello.seq), now=1.0)[0])
    assert len(first.frames) == 1
    # the reply was lost: the master acks its previous batch, so the same batch comes again
    again = batch_of(s.feed(poll(ME, ack=hello.seq), now=1.1)[0])
    assert again == first
    after = batch_of(s.feed(poll(ME, ack=first.seq), now=1.2)[0])
    assert after.frames == ()


def test_a_servant_whose_replies_never_reach_the_master_knows_it() -> None:
    s = ModbusServer(ME, now=0.0, failsafe_timeout=1.5)
    seq = batch_of(s.feed(poll(ME), now=0.1)[0]).seq
    seq = batch_of(s.feed(poll(ME, ack=seq), now=0.3)[0]).seq  # confirms the reply of 0.1
    assert not s.link_lost(1.5)
    # from now on the master never gets our replies (a twin collides with them): it keeps acking the old batch
    for t in (0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7):
        s.feed(poll(ME, ack=(seq - 1) & 0xFF), now=t)
    assert s.link_ok == 0.1
    assert s.link_lost(1.61)
    s.feed(poll(ME, ack=seq), now=1.9)  # heard again
    assert not s.link_lost(1.95)


def test_only_the_newest_status_waits_in_the_outbox() -> None:
    s = server()
    link = Link()
    for offered in (60, 100, 160):
        s.queue(*link.encode(Status(ME, 1, PilotState.C, offered, None, 320)))
    assert len(s.outbox) == 1


def test_configuration_is_not_writable_until_unlocked() -> None:
    s = server()
    (refused,) = s.feed(rtu.write_multiple_request(ME, mm.Cfg.MAX, [160]), now=1.0)
    assert rtu.parse(refused).kind == "exception" and refused[2] == rtu.ILLEGAL_ADDRESS
    assert s.snapshot.max_da == 320
    (ok,) = s.feed(rtu.write_multiple_request(ME, mm.Cfg.UNLOCK, [mm.UNLOCK_CODE, 160]), now=2.0)
    assert rtu.parse(ok).kind == "response" and s.snapshot.max_da == 160
    (bad,) = s.feed(rtu.write_multiple_request(ME, mm.Cfg.MIN, [900]), now=3.0)
    assert bad[2] == rtu.ILLEGAL_VALUE and s.snapshot.min_da == 60
    # the unlock expires
    (late,) = s.feed(rtu.write_multiple_request(ME, mm.Cfg.MAX, [200]), now=2.0 + mm.UNLOCK_SECONDS + 1)
    assert late[2] == rtu.ILLEGAL_ADDRESS and s.snapshot.max_da == 160


def test_plain_registers_and_mailboxes_cannot_be_written_directly() -> None:
    s = server()
    for reg in (mm.Plain.OFFERED, mm.OUTBOX, mm.INBOX):
        (reply,) = s.feed(rtu.write_multiple_request(ME, reg, [1]), now=1.0)
        assert reply[1] & 0x80 and reply[2] == rtu.ILLEGAL_ADDRESS


def test_reads_outside_the_map_are_illegal_addresses() -> None:
    s = server()
    (reply,) = s.feed(rtu.read_request(ME, mm.PLAIN_COUNT - 1, 2), now=1.0)
    assert reply[1] == 0x83 and reply[2] == rtu.ILLEGAL_ADDRESS


def test_garbage_then_a_request_is_answered_after_the_silence() -> None:
    s = server()
    assert s.feed(b"\x03\x17\xff\xff\x00\x0b\x02\x00", now=1.0) == []
    s.idle()
    assert s.stats.bad_frames == 1
    assert len(s.feed(rtu.read_request(ME, 0, 2), now=1.1)) == 1


def test_another_unit_answering_on_our_address_is_a_twin() -> None:
    s = server()
    assert len(s.feed(poll(ME), now=1.0)) == 1  # we answer...
    twin = rtu.read_response(ME, rtu.READ_WRITE_MULTIPLE, mm.pack_outbox(mm.OutboxBatch(9, 0, ())))
    assert s.feed(twin, now=1.01) == []  # ...and hear a second answer we did not send
    assert s.snapshot.twin and s.stats.twins == 1
    assert mm.ErrorFlag.TWIN in s.plain(1.02).errors
    assert BusEventKind.TWIN in {e.kind for e in s.events}
    assert s.plain(1.02).registers()[mm.Plain.ERRORS] & 4, "the renamed flag is still bit 2 on the wire"


def test_other_servants_replies_on_the_line_are_followed_not_answered() -> None:
    s = server()
    other = rtu.read_response(ME + 1, rtu.READ_WRITE_MULTIPLE, mm.pack_outbox(mm.OutboxBatch(1, 0, ())))
    assert s.feed(poll(ME + 1) + other + poll(ME), now=1.0) != []
    assert (s.stats.for_others, s.stats.answered, s.stats.twins, s.stats.bad_frames) == (1, 1, 0, 0)


@given(st.binary(max_size=400))
@settings(max_examples=300)
def test_random_bytes_never_crash_it_and_every_reply_is_from_its_own_address(data: bytes) -> None:
    s = server()
    replies = s.feed(data, now=1.0)
    s.idle()
    assert all(r[0] == ME and rtu.crc_ok(r) for r in replies)
    assert len(replies) == s.stats.answered
