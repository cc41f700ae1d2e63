"""A correct installation never appears over its limit in a decoded capture, on CAN or Modbus.

`decode --summary` (and its plot) reconstructs what each EVSE offers and draws from the frames alone.
STATUS frames come once a status period (once a poll cycle or slower on Modbus), so a unit that was
cut and acked keeps showing its old current in its last STATUS while the newcomer's STATUS already
shows the grant: the reconstruction must take each servant's ACK (and its RELEASE) as the fresh word,
and a servant silent long enough for the master to count it at its failsafe (rule 3) is shown there.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from busshare.analysis.decode import CaptureDecoder
from busshare.analysis.decode import Frame
from busshare.analysis.decode import Record
from busshare.analysis.modbus_capture import modbus_records
from busshare.analysis.summary import CaptureSummary
from busshare.analysis.summary import format_summary
from busshare.analysis.watch import BusWatcher
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import decode
from busshare.protocol.pilot import PilotState
from busshare.report.timeline import Timeline
from busshare.sim import Simulation
from busshare.sim import load_scenario

DATA = Path(__file__).parent.parent / "data"
#: A real capture of the emulated RS-485 line at 19200 baud (tools/record_modbus_race.py): master, four
#: servants; car 2 plugs in and out six times, each time just before servant 1's next STATUS is due, so
#: that servant 2's STATUS showing its grant reaches the line before servant 1's showing the cut.
MODBUS_RACE = DATA / "modbus-cut-race.txt"


def summarise(records: Iterable[Record]) -> tuple[dict[str, object], Timeline, CaptureSummary]:
    dec = CaptureDecoder()
    summary = CaptureSummary()
    for rec in records:
        d = dec.feed(rec)
        if d is not None:
            summary.frame(d)
    return summary.result(dec, "test"), summary.timeline(), summary


def totals(timeline: Timeline) -> list[tuple[float, int, int]]:
    """(t, total offered, total drawn) after every instant at which some EVSE changed (a step function)."""
    now: dict[int, tuple[int, int]] = {}
    out: list[tuple[float, int, int]] = []
    samples = timeline.samples
    for i, s in enumerate(samples):
        now[s.address] = (s.offered_da, s.drawn_da or 0)
        if i + 1 == len(samples) or samples[i + 1].t != s.t:
            out.append((s.t, sum(o for o, _ in now.values()), sum(d for _, d in now.values())))
    return out


def assert_never_over(result: dict[str, object], timeline: Timeline, limit_da: int) -> None:
    assert result["limit_a"] == limit_da / 10
    assert result["over_limit"] == []
    for key in ("peak_in_force_a", "peak_offered_a", "peak_drawn_a"):
        assert result[key] <= limit_da / 10, (key, result[key])  # type: ignore[operator]
    over = [(round(t, 3), o / 10, d / 10) for t, o, d in totals(timeline) if o > limit_da or d > limit_da]
    assert not over, f"the plotted totals exceed {limit_da / 10} A at (t, offered, drawn) {over[:5]}"


@pytest.mark.parametrize(("scenario", "duration"), [("story", None), ("shortage", 120.0), ("faults", None)])
def test_a_simulated_installation_never_appears_over_its_limit(scenario: str, duration: float | None) -> None:
    """The simulator proves these installations never over-offer (every invariant, every step); the capture
    decoded without configuration must agree: shortage rotates cuts and grants every few seconds, faults
    partitions servants until the master counts them at their failsafe."""
    sim = Simulation(load_scenario(scenario), record=True)
    result = sim.run(duration)
    assert result.ok
    summary, timeline, _ = summarise(Frame(t, off, False, data) for t, off, data in result.capture)
    assert_never_over(summary, timeline, sim.config.limit_da)


def test_a_moving_budgets_capture_is_within_the_limit_announced_at_every_instant() -> None:
    """Rule 9: a changed limit is announced in a heartbeat ahead of the set-limits that use it, so the
    capture of the ``mains`` scenario (a meter, setpoints, raises and lowerings) decoded without
    configuration shows no grant above the limit in force, and the extra heartbeats do not skew the
    period the summary measures."""
    sim = Simulation(load_scenario("mains"), record=True)
    result = sim.run()
    assert result.ok
    summary, _, cs = summarise(Frame(t, off, False, data) for t, off, data in result.capture)
    assert len(summary["limit_changes"]) > 5  # type: ignore[arg-type]
    assert summary["over_limit"] == []
    assert not [f for f in cs.flags if f.kind in ("over-limit", "heartbeat-gap")]
    assert cs.heartbeat_period() == pytest.approx(sim.timing.heartbeat_period, abs=0.005)


def test_a_real_modbus_capture_where_the_cut_units_status_comes_late() -> None:
    recs = list(modbus_records(MODBUS_RACE.open("rb"), 19200))
    # the capture does hold the race: going by STATUS frames alone, 96 A would be offered on 64 A
    last: dict[int, int] = {}
    status_only_peak = 0
    for r in recs:
        if isinstance(r, Frame):
            msg = decode(r.can_id, r.data)[0]
            if isinstance(msg, Status):
                last[msg.address] = msg.offered_da
                status_only_peak = max(status_only_peak, sum(last.values()))
    assert status_only_peak > 640
    result, timeline, _ = summarise(recs)
    assert_never_over(result, timeline, 640)
    assert [s["address"] for s in result["servants"]] == [1, 2, 3, 4]  # type: ignore[index]


def _acked_grants(w: BusWatcher) -> None:
    w.frame(0.0, Heartbeat(1, 7, 640))
    for a, txn in ((1, 1), (2, 2)):
        w.frame(0.1, SetLimit(a, txn, 320, 60, 7))
        w.frame(0.2, Ack(a, txn, 320, 0, AckHow.IMMEDIATE))


def test_a_silent_servant_counts_at_its_failsafe_once_the_master_may_count_it_so() -> None:
    """Rule 3: no frame from servant 1 for servant_silent_after + silent_count_after (9.5 s): the master
    counts it at its armed failsafe (6 A) and may grant servant 2 up to 58 A; not before."""
    w = BusWatcher()
    _acked_grants(w)
    for t in (0.6, 1.1, 1.6):
        w.frame(t, Status(2, 2, PilotState.C, 320, 320, 640))
    w.tick(9.6)  # servant 1 last heard at 0.2 s: 9.4 s ago
    assert w.in_force_da() == 640
    w.frame(9.65, Status(2, 2, PilotState.C, 320, 320, 640))  # servant 2 keeps talking
    assert w.in_force_da() == 640
    flags = w.tick(9.75)
    assert w.in_force_da() == 320 + 60 and not flags
    assert w.silenced == [(9.75, 1, 60)]
    assert w.frame(9.8, SetLimit(2, 3, 580, 60, 7)) == []  # the grant the master may now make
    assert w.in_force_da() == 640
    # a grant of that room before the 9.5 s are up is over the limit
    early = BusWatcher()
    _acked_grants(early)
    flags = early.frame(5.0, SetLimit(2, 3, 580, 60, 7))
    assert [f.kind for f in flags] == ["over-limit"]



def test_a_meterless_unit_shows_no_meter_not_zero_amps() -> None:
    """Servant 4 of the fault tour has no meter: its STATUS frames carry no reading, so what it drew is
    not known, and the summary says so instead of `drawn peak 0.0 A 0.00 Ah`."""
    sim = Simulation(load_scenario("faults"))
    result = sim.run(200.0)
    summary, _, _ = summarise(Frame(t, off, False, data) for t, off, data in result.capture)
    by_address = {s["address"]: s for s in summary["servants"]}  # type: ignore[attr-defined]
    assert by_address[4]["meter"] is False and by_address[4]["peak_measured_a"] is None
    assert by_address[1]["meter"] is True and by_address[1]["peak_measured_a"] > 0
    line = next(x for x in format_summary(summary).splitlines() if x.startswith("   4  serial"))
    assert line.endswith("no meter") or "no meter  " in line, line
    assert "drawn peak" not in line and "Ah" not in line, line
