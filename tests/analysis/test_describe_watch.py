"""One readable line per frame (describe.py) and the live anomaly flags (watch.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busshare.analysis.describe import Describer
from busshare.analysis.describe import bad_frame_line
from busshare.analysis.describe import route
from busshare.analysis.watch import BusWatcher
from busshare.analysis.watch import Flag
from busshare.analysis.watch import flag_line
from busshare.analysis.watch import summary_line
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import FrameError
from busshare.frames import Heartbeat
from busshare.frames import Join
from busshare.frames import Nack
from busshare.frames import NackCode
from busshare.frames import Release
from busshare.frames import ReleaseReason
from busshare.frames import Request
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.protocol.e2e import E2EStatus
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from tests.support.frame_strategies import messages

HB = Heartbeat(1, 7, 640, 0, 0b10011110)  # the master hears servants 1-4 and 7


def test_the_issue_example_line() -> None:
    d = Describer()
    d.text(SetLimit(3, 16, 640, 60, 7))
    assert d.line(12.345, SetLimit(3, 17, 320, 60, 7)) == "12.345 master→3 CUT 64.0→32.0 A tx 17 failsafe 6.0 A epoch 7"


def test_cut_grant_and_first_limit_are_told_apart() -> None:
    d = Describer()
    assert d.text(SetLimit(2, 1, 160, 60, 7)).startswith("master→2 SET 16.0 A ")
    assert d.text(SetLimit(2, 2, 320, 60, 7)).startswith("master→2 GRANT 16.0→32.0 A ")
    assert d.text(SetLimit(2, 3, 0, 60, 7)).startswith("master→2 CUT 32.0→0.0 A (pause) ")
    d.text(Release(2, 160, ReleaseReason.EV_DONE))
    assert d.text(SetLimit(2, 4, 60, 60, 7)).startswith("master→2 GRANT 0.0→6.0 A ")


def test_an_unchanged_limit_reads_as_a_confirm_not_a_grant() -> None:
    d = Describer()
    d.text(SetLimit(1, 7, 320, 60, 0))
    d.text(Release(1, 320, ReleaseReason.EV_DONE))
    # the master confirms the release with a 0 A set-limit: nothing is granted
    assert d.text(SetLimit(1, 8, 0, 0, 0)) == "master→1 SET 0.0 A (pause, confirm) tx 8 failsafe 0.0 A epoch 0"
    assert d.text(SetLimit(1, 8, 0, 0, 0)) == "master→1 SET 0.0 A (pause, confirm) tx 8 failsafe 0.0 A epoch 0"
    d.text(SetLimit(1, 9, 640, 60, 0))
    assert d.text(SetLimit(1, 10, 640, 640, 0)) == "master→1 SET 64.0 A (confirm) tx 10 failsafe 64.0 A epoch 0"
    rec = Describer().record(1.0, SetLimit(1, 1, 0, 0, 0))
    assert (rec["verb"], rec["previous_a"]) == ("SET", None)  # first seen: no confirm
    assert Describer().text(SetLimit(1, 1, 0, 0, 0)) == "master→1 SET 0.0 A (pause) tx 1 failsafe 0.0 A epoch 0"


def test_a_confirm_in_json_is_a_set_with_its_unchanged_previous_limit() -> None:
    d = Describer()
    d.record(1.0, SetLimit(4, 1, 160, 60, 3))
    rec = d.record(2.0, SetLimit(4, 2, 160, 60, 3))
    assert (rec["verb"], rec["previous_a"], rec["limit_a"]) == ("SET", 16.0, 16.0)


@given(st.lists(st.sampled_from([0, 60, 160, 320, 640]), min_size=1, max_size=12))
def test_the_verb_follows_the_direction_of_the_change(limits: list[int]) -> None:
    d = Describer()
    previous: int | None = None
    for txn, limit in enumerate(limits):
        line = d.text(SetLimit(5, txn, limit, 60, 1))
        verb = line.split()[1]
        if previous is None or previous == limit:
            assert verb == "SET" and "→" not in line.split(" tx ")[0].split(" ", 1)[1]
            assert ("confirm" in line) == (previous == limit)
        else:
            assert verb == ("CUT" if limit < previous else "GRANT")
            assert f"{previous / 10:.1f}→{limit / 10:.1f} A" in line and "confirm" not in line
        previous = limit


def test_a_resent_cut_still_reads_as_the_cut() -> None:
    d = Describer()
    d.text(SetLimit(3, 16, 640, 60, 7))
    first = d.text(SetLimit(3, 17, 320, 60, 7))
    again = d.text(SetLimit(3, 17, 320, 60, 7))  # no ack yet: the master retransmits the same txn
    assert first == again and again.startswith("master→3 CUT 64.0→32.0 A tx 17")
    assert d.text(SetLimit(3, 18, 640, 60, 7)).startswith("master→3 GRANT 32.0→64.0 A")


def test_every_type_reads_naturally() -> None:
    d = Describer()
    assert d.text(HB) == "master→all HEARTBEAT id 1 epoch 7 seq 0 limit 64.0 A hears 1-4,7 (page 0)"
    assert d.text(Heartbeat(1, 7, 640, 7, 1 << 6, 5)) == (
        "master→all HEARTBEAT id 1 epoch 7 seq 5 limit 64.0 A hears 62 (page 7)")
    assert d.text(Heartbeat(1, 7, 640, 1)).endswith("hears none (page 1)")
    assert Describer().record(0.0, HB)["heard"] == [1, 2, 3, 4, 7]
    assert d.text(Heartbeat(1, 7, 640, leaving=True)).endswith("[leaving]")
    assert d.text(Ack(3, 17, 320, 311, AckHow.MEASURED)) == "3→master ACK tx 17 at 32.0 A measured 31.1 A (measured)"
    assert d.text(Nack(3, NackCode.TWIN, 0, 0, 0)) == "master→3 NACK twin about 3 tx 0 detail 0"
    assert d.text(Release(4, 160, ReleaseReason.UNPLUGGED)) == "4→master RELEASE 16.0 A unplugged"
    assert d.text(Request(4, 320, 60, 2)) == "4→master REQUEST 32.0 A min 6.0 A prio 2"
    assert d.text(Status(5, 0x1234, PilotState.C, 160, None, 320, failsafe=True)) == (
        "5→master STATUS C offered 16.0 A no meter requested 32.0 A serial 0x1234 [failsafe]")
    assert d.text(Join(6, 99, 320)) == "6→master JOIN serial 0x00000063 max 32.0 A v2"


def test_bad_frames_show_id_bytes_and_reason() -> None:
    line = bad_frame_line(1.5, 0x181, b"\x00\x01", FrameError("length", "wrong length: 2 bytes, expected 8"))
    assert line == "1.500 BAD id 0x181 [00 01] length: wrong length: 2 bytes, expected 8"
    assert bad_frame_line(2.0, 0x40, bytes(8), E2EStatus.REPEATED).endswith("e2e repeated")


@given(messages)
def test_any_message_makes_one_line_and_one_json_record(msg) -> None:  # type: ignore[no-untyped-def]
    line = Describer().line(1.0, msg)
    assert "\n" not in line and line.startswith("1.000 ")
    rec = Describer().record(1.0, msg)
    assert json.loads(json.dumps(rec))["type"] == msg.TYPE.name
    src, dst = route(msg)
    assert 0 <= src <= 63 and 0 <= dst <= 63


# -- the watcher --------------------------------------------------------------------------


def feed(w: BusWatcher, t: float, msg: object, status: E2EStatus = E2EStatus.OK) -> list[str]:
    return [f.kind for f in w.frame(t, msg, status)]  # type: ignore[arg-type]


def heartbeats(w: BusWatcher, start: float, end: float, hb: Heartbeat = HB, period: float = 0.2) -> list[str]:
    kinds = []
    t = start
    while t < end:
        kinds += feed(w, t, hb)
        t += period
    return kinds


def test_a_regular_installation_raises_no_flag() -> None:
    w = BusWatcher()
    assert heartbeats(w, 0.0, 2.0) == []
    assert feed(w, 2.0, SetLimit(1, 1, 320, 60, 7)) == []
    assert feed(w, 2.0, SetLimit(2, 1, 320, 60, 7)) == []
    assert feed(w, 2.1, SetLimit(1, 2, 160, 60, 7)) == []  # a cut, acked in time
    assert feed(w, 3.0, Ack(1, 2, 160, 150, AckHow.MEASURED)) == []
    assert w.tick(3.0) == []
    assert w.in_force_da() == 480


def test_heartbeat_gaps_and_silence_are_flagged() -> None:
    w = BusWatcher()
    heartbeats(w, 0.0, 1.0)
    assert [f.kind for f in w.tick(2.0)] == []
    assert [f.kind for f in w.tick(2.6)] == ["master-silent"]
    assert [f.kind for f in w.tick(2.7)] == []  # once per silence
    assert feed(w, 3.0, HB) == ["heartbeat-gap"]


def test_two_masters_interleaving_are_flagged_a_reboot_is_not() -> None:
    w = BusWatcher()
    heartbeats(w, 0.0, 1.0)
    rebooted = Heartbeat(1, 8, 640)
    assert heartbeats(w, 1.0, 2.0, rebooted) == []  # old epoch never heard again: a reboot
    w2 = BusWatcher()
    kinds = []
    for i in range(10):
        kinds += feed(w2, i * 0.2, HB) + feed(w2, i * 0.2 + 0.1, Heartbeat(2, 3, 640))
    assert "two-masters" in kinds


def test_twin_servants_are_flagged() -> None:
    w = BusWatcher()
    assert feed(w, 0.0, Status(4, 0x1111, PilotState.C, 0, None, 320)) == []
    assert feed(w, 0.5, Status(4, 0x1111, PilotState.C, 0, None, 320)) == []
    assert feed(w, 0.6, Status(4, 0x2222, PilotState.C, 0, None, 320)) == ["twin-servants"]


def test_a_cut_never_acked_is_flagged_after_the_reaction_allowance() -> None:
    w = BusWatcher(reaction_allowance=5.0)
    feed(w, 0.0, HB)
    feed(w, 0.0, SetLimit(1, 1, 320, 60, 7))
    feed(w, 1.0, SetLimit(1, 2, 160, 60, 7))
    assert w.in_force_da() == 320  # the cut counts at its old value until acked
    assert [f.kind for f in w.tick(6.9)] == ["master-silent"]  # (no heartbeats in this test)
    # a lost SET_LIMIT or ACK costs one re-send: the ACK may come up to the compliance bound (6.05 s) later
    assert w.tick(7.04) == []
    assert [f.kind for f in w.tick(7.1)] == ["unacked-cut"]


def test_a_cut_acked_after_one_re_send_within_the_compliance_bound_is_no_finding() -> None:
    w = BusWatcher(reaction_allowance=5.0)
    feed(w, 0.0, HB)
    feed(w, 0.0, SetLimit(1, 1, 320, 60, 7))
    feed(w, 1.0, SetLimit(1, 2, 160, 60, 7))
    assert w.compliance_bound == pytest.approx(6.05)
    assert [f.kind for f in w.tick(7.03)] == ["master-silent"]
    assert feed(w, 7.04, Ack(1, 2, 160, None, AckHow.TIMED)) == []
    assert w.tick(8.0) == [] and w.in_force_da() == 160


def test_grants_over_the_limit_are_flagged_counting_unacked_cuts_at_their_old_value() -> None:
    w = BusWatcher()
    feed(w, 0.0, HB)  # limit 64 A
    feed(w, 0.1, SetLimit(1, 1, 400, 60, 7))
    feed(w, 0.2, SetLimit(1, 2, 200, 60, 7))  # cut to 20 A, not acked yet
    assert feed(w, 0.3, SetLimit(2, 1, 400, 60, 7)) == ["over-limit"]  # granted before the ack: 80 A in force
    w2 = BusWatcher()
    feed(w2, 0.0, HB)
    feed(w2, 0.1, SetLimit(1, 1, 400, 60, 7))
    feed(w2, 0.2, SetLimit(1, 2, 200, 60, 7))
    feed(w2, 0.3, Ack(1, 2, 200, 190, AckHow.MEASURED))
    assert feed(w2, 0.4, SetLimit(2, 1, 400, 60, 7)) == []  # cut-then-grant: 60 A


def _dropped(w: BusWatcher) -> Heartbeat:
    """Two servants granted 32 A each under 64 A, then the heartbeat limit drops to 38 A at t = 1 (rule 9)."""
    feed(w, 0.0, HB)
    feed(w, 0.1, SetLimit(1, 1, 320, 60, 7))
    feed(w, 0.1, SetLimit(2, 1, 320, 60, 7))
    heartbeats(w, 0.2, 1.0)
    low = Heartbeat(1, 7, 380, 0, HB.heard)
    assert feed(w, 1.0, low) == []  # 64 A in force above the new 38 A: inside the compliance window
    feed(w, 1.0, SetLimit(1, 2, 190, 60, 7))  # the cuts, sent with the lowering
    feed(w, 1.0, SetLimit(2, 2, 190, 60, 7))
    return low


def test_a_limit_drop_whose_cuts_are_acked_within_the_compliance_window_is_not_flagged() -> None:
    w = BusWatcher()
    low = _dropped(w)
    assert w.compliance_bound == 6.05
    kinds = heartbeats(w, 1.2, 6.0, low)
    kinds += feed(w, 6.0, Ack(1, 2, 190, None, AckHow.TIMED)) + feed(w, 6.1, Ack(2, 2, 190, None, AckHow.TIMED))
    kinds += heartbeats(w, 6.2, 12.0, low) + [f.kind for f in w.tick(12.0)]
    assert kinds == [] and w.in_force_da() == 380


def test_grants_still_above_a_dropped_limit_after_the_compliance_window_are_flagged() -> None:
    w = BusWatcher()
    low = _dropped(w)
    kinds = heartbeats(w, 1.2, 7.0, low)  # 7.0 < 1.0 + 6.05: not yet
    assert kinds == []
    flags = [f for t in (7.2, 7.4) for f in w.frame(t, low)]
    assert [f.kind for f in flags] == ["over-limit"]
    assert "6.20 s after it dropped (rule 9 allows 6.05 s)" in flags[0].text
    # one ack late: still over (cut 2 not acked), no new flag for the same episode
    assert feed(w, 8.0, Ack(1, 2, 190, None, AckHow.TIMED)) == []


def test_a_grant_within_the_compliance_window_may_not_add_to_what_was_in_force() -> None:
    w = BusWatcher()
    _dropped(w)
    assert feed(w, 2.0, SetLimit(3, 1, 100, 60, 7)) == ["over-limit"]  # 74 A: more than the 64 A at the drop


def test_e2e_trouble_is_flagged_but_a_reboot_is_not() -> None:
    w = BusWatcher()
    assert [f.kind for f in w.rejected(0.0, 0x181, E2EStatus.REPEATED)] == ["e2e"]
    assert [f.kind for f in w.rejected(0.0, 0x181, FrameError("length", "2 bytes"))] == ["malformed"]
    assert feed(w, 0.1, Status(4, 1, PilotState.C, 0, None, 0), E2EStatus.WRONG_SEQUENCE) == ["e2e"]
    # a reboot through the link, as the monitors feed it: servant 4 sent STATUS counters 0..5, rebooted
    # and sends JOIN then STATUS from counter 0 again; the link forgot its streams, so nothing is e2e trouble
    rx, before, after = Link(), Link(), Link()
    status = Status(4, 1, PilotState.C, 0, None, 0)
    got = [rx.receive(*before.encode(status), 0.2 + i * 0.01) for i in range(6)]
    got += [rx.receive(*after.encode(m), 0.3) for m in (Join(4, 1, 320), status)]
    w2 = BusWatcher()
    assert [g.status for g in got[-2:]] == [E2EStatus.OK, E2EStatus.OK]
    assert [f.kind for g in got for f in w2.frame(0.3, g.message, g.status) if g.message] == []


def test_a_lasting_twin_is_shown_once_per_episode_but_counted_every_time() -> None:
    w = BusWatcher(repeat_after=5.0)
    shown = []
    for i in range(20):  # two units alternate on address 4 for 4 s
        shown += feed(w, i * 0.2, Status(4, 0x1111 if i % 2 else 0x2222, PilotState.C, 0, None, 320),
                      E2EStatus.WRONG_SEQUENCE if i else E2EStatus.OK)
    assert shown == ["twin-servants"]  # and no e2e noise: twins garble each other's counters
    assert w.counts["twin-servants"] == 19


def test_a_master_that_leaves_is_reported_and_its_silence_is_not_an_anomaly() -> None:
    w = BusWatcher()
    heartbeats(w, 0.0, 1.0)
    assert feed(w, 1.0, Heartbeat(1, 7, 640, leaving=True)) == ["master-leaving"]
    assert w.tick(5.0) == []
    assert [f.kind for f in w.rejected(5.0, 0x40, FrameError("crc", "bad CRC"))] == ["e2e"]


def test_monitor_flags_and_summary_read_the_same_on_can_and_modbus() -> None:
    flag = Flag(12.3456789, "two-masters", "master 1 epoch 7 and master 2 epoch 3 both heartbeat")
    assert flag_line(flag, False) == "12.346 !! two-masters: master 1 epoch 7 and master 2 epoch 3 both heartbeat"
    assert json.loads(flag_line(flag, True)) == {"record": "anomaly", "t": 12.345679, "anomaly": "two-masters",
                                                 "detail": flag.text}
    rejected = {"wrong-crc": 2, "malformed": 1}
    anomalies = {"two-masters": 3, "e2e": 2}
    can = summary_line(40, rejected, anomalies, as_json=False, link={"error_frames": 5}, link_text="error frames: 5")
    assert can == "-- 40 frames; rejected: malformed 1, wrong-crc 2; anomalies: e2e 2, two-masters 3; error frames: 5"
    modbus = summary_line(40, rejected, anomalies, as_json=False, link={"modbus": {"rtu-frames": 44}},
                          link_text="RTU frames 44, other Modbus 0")
    assert modbus == can.replace("error frames: 5", "RTU frames 44, other Modbus 0")
    assert json.loads(summary_line(0, {}, {}, as_json=True, link={"modbus": {"rtu-frames": 44}}, link_text="",
                                   start_t=100.0, duration_s=2.5)) == {
        "record": "summary", "command": "monitor", "start_t": 100.0, "duration_s": 2.5, "frames": 0, "rejected": 0,
        "e2e_errors": {}, "malformed": {}, "not_protocol": {}, "anomalies": {}, "modbus": {"rtu-frames": 44}}
