"""The simulated bus: real bytes through real Links, faults drawn from a seeded generator."""

from __future__ import annotations

import itertools
import random

import pytest

from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.protocol.e2e import E2EStatus
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from busshare.sim.bus import FRAME_BITS
from busshare.sim.bus import BusFaults
from busshare.sim.bus import Port
from busshare.sim.bus import SimBus
from busshare.sim.bus import flip_bits
from busshare.sim.clock import DELIVER
from busshare.sim.clock import EventQueue


def deliveries(q: EventQueue) -> list[tuple[float, str, int, bytes]]:
    out = []
    while q.heap:
        t, _, kind, offset, targets = q.pop()
        assert kind == DELIVER
        out += [(t, port.name, offset, data) for port, data, _ in targets]
    return out


def make_bus(**faults: float) -> tuple[EventQueue, SimBus]:
    q = EventQueue()
    return q, SimBus(q, random.Random(1), BusFaults(**faults))  # type: ignore[arg-type]


def master_and_s1(**faults: float) -> tuple[EventQueue, SimBus, Port, Port]:
    """A bus with ``faults`` and two ports on it: the master's and servant 1's."""
    q, bus = make_bus(**faults)
    return q, bus, bus.attach("master", 0, None), bus.attach("s1", 1, None)


HB = Heartbeat(master_id=1, epoch=3, limit_da=640, page=0, heard=0b1110, seq=9)


def test_a_node_never_hears_its_own_frames_and_everyone_else_does() -> None:
    q, bus = make_bus()
    master = bus.attach("master", 0, None)
    s1 = bus.attach("s1", 1, None)
    s2 = bus.attach("s2", 2, None)
    offset, data = master.link.encode(HB)
    bus.send(master, offset, data, 0.0)
    got = deliveries(q)
    assert sorted(name for _, name, _, _ in got) == ["s1", "s2"]
    assert all(d == data for _, _, _, d in got)
    offset, data = s1.link.encode(Status(1, 5, PilotState.C, 320, 300, 320))
    bus.send(s1, offset, data, 1.0)
    assert sorted(name for _, name, _, _ in deliveries(q)) == ["master", "s2"]
    del s2


def test_frames_take_their_transmission_time_and_queue_for_the_bus() -> None:
    q, bus = make_bus(bitrate=125_000)
    a = bus.attach("a", 0, None)
    bus.attach("b", 1, None)
    for _ in range(3):
        bus.send(a, *a.link.encode(HB), 0.0)
    times = [t for t, *_ in deliveries(q)]
    frame = FRAME_BITS / 125_000
    assert times == pytest.approx([frame, 2 * frame, 3 * frame])
    assert [t for t, _, _ in bus.capture] == pytest.approx(times)


def test_acceptance_filter_passes_only_the_listed_addresses() -> None:
    q, bus = make_bus()
    m = bus.attach("master", 0, None)
    bus.attach("s1", 1, None, accept=frozenset({0, 1, 63}))
    bus.send(m, *m.link.encode(SetLimit(2, 1, 320, 60, 0)), 0.0)
    assert deliveries(q) == []
    bus.send(m, *m.link.encode(SetLimit(1, 2, 320, 60, 0)), 0.0)
    assert [n for _, n, _, _ in deliveries(q)] == ["s1"]


def test_loss_drops_roughly_the_configured_share() -> None:
    q, bus, m, _ = master_and_s1(loss=0.25)
    for _ in range(4000):
        bus.send(m, *m.link.encode(HB), 0.0)
    got = len(deliveries(q))
    assert 2700 < got < 3300
    assert bus.lost == 4000 - got


def test_duplicates_are_classified_repeated_and_dropped_by_the_real_link() -> None:
    q, bus, m, s1 = master_and_s1(duplicate=1.0)
    bus.send(m, *m.link.encode(HB), 0.0)
    got = deliveries(q)
    assert len(got) == 2 and got[0][3] == got[1][3]
    first = s1.link.receive(got[0][2], got[0][3], got[0][0])
    second = s1.link.receive(got[1][2], got[1][3], got[1][0])
    assert first.accepted and not second.accepted
    assert second.status is E2EStatus.REPEATED


def test_corrupted_frames_never_pass_the_real_e2e_check() -> None:
    q, bus, m, s1 = master_and_s1(corrupt=1.0)
    sender = Link()
    for i in range(2000):
        msg = SetLimit(1, i & 0xFF, 60 + (i % 700), 60, i & 0xFF)
        bus.send(m, *sender.encode(msg), float(i))
    got = deliveries(q)
    assert len(got) == 2000 and bus.corrupted == 2000
    assert not any(s1.link.receive(offset, data, t).accepted for t, _, offset, data in got)


def test_every_one_and_two_bit_error_is_detected_exhaustively() -> None:
    """CRC-8 SAE J1850 with the data ID: every 1- or 2-bit flip of a frame fails the CRC (so flip_bits flips <= 2)."""
    link = Link()
    samples = [link.encode(HB), link.encode(Status(7, 0x1234, PilotState.C, 320, 315, 320)),
               link.encode(SetLimit(5, 17, 320, 60, 7))]
    from busshare.protocol.e2e import frame_crc

    for offset, data in samples:
        for n in (1, 2):
            for bits in itertools.combinations(range(64), n):
                buf = bytearray(data)
                for b in bits:
                    buf[b >> 3] ^= 1 << (b & 7)
                assert frame_crc(offset, bytes(buf[1:])) != buf[0], (offset, bits)


def test_some_three_bit_errors_slip_past_the_crc_which_is_why_the_bus_flips_at_most_two() -> None:
    from busshare.protocol.e2e import frame_crc

    offset, data = Link().encode(HB)
    missed = 0
    for bits in itertools.combinations(range(64), 3):
        buf = bytearray(data)
        for b in bits:
            buf[b >> 3] ^= 1 << (b & 7)
        missed += frame_crc(offset, bytes(buf[1:])) == buf[0]
    assert 0 < missed < 41664 // 100  # Hamming distance 3: under 1 % of 3-bit errors pass


def test_flip_bits_changes_one_or_two_bits() -> None:
    rng = random.Random(5)
    data = bytes(8)
    counts = {sum(bin(b).count("1") for b in flip_bits(data, rng)) for _ in range(500)}
    assert counts == {1, 2}


def test_mute_port_reaches_nobody_and_is_not_on_the_wire() -> None:
    q, bus, m, s1 = master_and_s1()
    s1.mute = True
    bus.send(s1, *s1.link.encode(Status(1, 5, PilotState.C, 320, 300, 320)), 0.0)
    assert deliveries(q) == [] and bus.capture == []
    del m


def test_detached_port_gets_nothing() -> None:
    q, bus, m, s1 = master_and_s1()
    bus.detach(s1)
    bus.send(m, *m.link.encode(HB), 0.0)
    assert deliveries(q) == []


def test_same_seed_same_faults() -> None:
    def run(seed: int) -> list[tuple[float, str, int, bytes]]:
        q = EventQueue()
        bus = SimBus(q, random.Random(seed), BusFaults(loss=0.2, duplicate=0.1, corrupt=0.1))
        m = bus.attach("master", 0, None)
        bus.attach("s1", 1, None)
        bus.attach("s2", 2, None)
        for i in range(200):
            bus.send(m, *m.link.encode(HB), i * 0.2)
        return deliveries(q)

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_bad_fault_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="loss"):
        BusFaults(loss=1.5)
    with pytest.raises(ValueError, match="bitrate"):
        BusFaults(bitrate=0)


def test_late_copies_arrive_byte_identical_within_their_window_and_are_accepted() -> None:
    """A late duplicate is out of sequence, not a repeat: the real E2E check accepts it (PROTOCOL 6.3),
    so the node must defend itself (issue 10, finding 2)."""
    q, bus, m, s1 = master_and_s1(late=1.0, late_min_s=1.0, late_max_s=30.0)
    frames = [m.link.encode(SetLimit(1, txn, 320, 60, 0)) for txn in (1, 2)]
    for i, (offset, data) in enumerate(frames):
        bus.send(m, offset, data, float(i))
    got = deliveries(q)
    on_time, late = got[:2], got[2:]
    assert [d for *_, d in on_time] == [d for _, d in frames]
    assert sorted(d for *_, d in late) == sorted(d for _, d in frames) and bus.late == 2 == bus.duplicated
    for t, _, _, data in late:
        sent_at = [i for i, (_, d) in enumerate(frames) if d == data][0]
        assert 1.0 <= t - sent_at <= 31.0
    assert bus.late_until == max(t for t, *_ in late)
    accepted = {(t, data): s1.link.receive(offset, data, t).accepted for t, _, offset, data in got}
    (late_first,) = [key for key in accepted if key[1] == frames[0][1] and key[0] > 1.0]
    assert accepted[late_first], "the old frame, late after a newer one, is not a repeat: it is accepted"


def test_jitter_lets_frames_overtake_each_other() -> None:
    q, bus, m, _ = master_and_s1(jitter_s=0.5)
    sent = [m.link.encode(SetLimit(1, txn, 320, 60, 0))[1] for txn in range(1, 41)]
    for i, data in enumerate(sent):
        bus.send(m, 0x001, data, i * 0.01)
    got = [d for *_, d in deliveries(q)]
    assert sorted(got) == sorted(sent) and got != sent


def test_late_copies_and_jitter_off_draw_nothing_from_the_generator() -> None:
    """Scenarios without them keep their runs frame for frame: one draw per receiver per frame, for the loss."""
    rng = random.Random(7)
    bus = SimBus(EventQueue(), rng, BusFaults(loss=0.1))
    m = bus.attach("master", 0, None)
    bus.attach("s1", 1, None)
    for i in range(100):
        bus.send(m, *m.link.encode(HB), i * 0.2)
    ref = random.Random(7)
    for _ in range(100):
        ref.random()
    assert rng.getstate() == ref.getstate()


def test_bad_late_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="late"):
        BusFaults(late=2.0)
    with pytest.raises(ValueError, match="late_min_s"):
        BusFaults(late_min_s=5.0, late_max_s=1.0)
    with pytest.raises(ValueError, match="jitter"):
        BusFaults(jitter_s=-1.0)


def test_a_second_path_echoes_every_frame_in_order_to_everyone_but_the_sender() -> None:
    q, bus, m, _ = master_and_s1(echo_s=5.0)
    bus.attach("s2", 2, None)
    sent = [m.link.encode(Heartbeat(1, 3, 640, 0, 0, seq))[1] for seq in range(1, 11)]
    for i, data in enumerate(sent):
        bus.send(m, 0x000, data, i * 0.2)
    got = deliveries(q)
    for name in ("s1", "s2"):
        mine = [(t, d) for t, who, _, d in got if who == name]
        direct, echoed = mine[:10], mine[10:]
        assert [d for _, d in direct] == sent and [d for _, d in echoed] == sent  # the whole stream, in order
        assert all(abs(te - td - 5.0) < 1e-9 for (td, _), (te, _) in zip(direct, echoed, strict=True))
    assert "master" not in {who for _, who, _, _ in got}
    assert bus.late == 20 and bus.late_until >= 1.8 + 5.0


def test_a_mute_port_puts_nothing_on_the_second_path_either() -> None:
    q, bus = make_bus(echo_s=5.0)
    s1 = bus.attach("s1", 1, None)
    bus.attach("master", 0, None)
    s1.mute = True
    bus.send(s1, *s1.link.encode(HB), 0.0)
    assert deliveries(q) == []


def test_a_negative_echo_is_refused() -> None:
    with pytest.raises(ValueError, match="echo_s"):
        BusFaults(echo_s=-1.0)


def test_new_bus_settings_take_effect_on_the_next_frame() -> None:
    """``send`` reads the frame time and the fault switches kept from the settings: a fault's new settings
    (``Faults`` replaces them whole) must reach the very next frame, and the old ones come back after."""
    q, bus, master, _ = master_and_s1()
    offset, data = master.link.encode(HB)
    bus.send(master, offset, data, 0.0)
    assert [t for t, *_ in deliveries(q)] == [pytest.approx(FRAME_BITS / 125_000)]
    clean = bus.faults
    bus.faults = BusFaults(bitrate=250_000, latency_s=0.5, loss=1.0)
    bus.send(master, offset, data, 1.0)
    assert deliveries(q) == [] and bus.lost == 1
    bus.faults = BusFaults(bitrate=250_000, latency_s=0.5, echo_s=2.0)
    bus.send(master, offset, data, 2.0)
    on_time = 2.0 + FRAME_BITS / 250_000 + 0.5
    assert [t for t, *_ in deliveries(q)] == [pytest.approx(on_time), pytest.approx(on_time + 2.0)]
    bus.faults = clean
    bus.send(master, offset, data, 10.0)
    assert [t for t, *_ in deliveries(q)] == [pytest.approx(10.0 + FRAME_BITS / 125_000)]
