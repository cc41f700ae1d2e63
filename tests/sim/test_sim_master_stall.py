"""The master's process standing still (``master_stall``: swap, a blocked write, SIGSTOP) at the moments that ask it
to act: a cut waiting for its ACK before the grant it makes room for, a unit turning mute, a budget change.

While it stands still it sends nothing, and the frames that reach it (and its budget feed's inputs) queue. At the
resume it does what the runtime's loop does (``Runtime.run``): it reads the first queued frame, ticks (a tick period
has passed), takes the feed's inputs, then reads the others. It reads each STATUS long after it arrived, and counts
the unit heard from the read (``Master.receive``): its heard bits, its silence (rule 3) and its count of the unit at
its failsafe all run on that one clock, so a unit that went mute meanwhile is kept at its share as long as the
heard bits it is sent keep it out of failsafe (rule 4).
"""

from __future__ import annotations

import pytest

from busshare.frames import Message
from busshare.master import Master
from busshare.sim import Simulation
from busshare.sim import SimulationFailed
from busshare.sim import parse_scenario
from busshare.sim.chaos import shapes_in
from busshare.sim.scenario import ScenarioError
from tests.support.site_files import scenario_servants
from tests.support.site_files import two_on_32

# either side of the servants' failsafe_timeout (1.5 s): a longer stall sends every unit to its failsafe
STALLS_S = (0.3, 1.4, 1.6, 3.0)
SLOW_CARS = "reaction_min_s = 5\nreaction_max_s = 5\nramp_a_per_s = 50\n"  # the slowest car the bounds allow


def stall(at: float, duration_s: float) -> str:
    return f'[[fault]]\nat = {at:.3f}\nkind = "master_stall"\nduration_s = {duration_s:.3f}\n'


def mute(at: float, address: int = 1) -> str:
    return f'[[fault]]\nat = {at:.3f}\nkind = "partition"\naddress = {address}\ndirection = "out"\nduration_s = 30\n'


def outcome(text: str, master_cls: type[Master] = Master) -> str | None:
    """The violation the story ends in, or None."""
    try:
        Simulation(parse_scenario(text), record=False, master_cls=master_cls).run()
    except SimulationFailed as exc:
        return f"{exc.violation.check}: {exc.violation}"
    return None


@pytest.mark.parametrize("stall_s", STALLS_S)
@pytest.mark.parametrize("offset", [-0.5, -0.05, 0.3])
def test_a_unit_turning_mute_while_the_master_stands_still_keeps_every_bound(offset: float, stall_s: float) -> None:
    """Unit 1 turns mute at 30 s; the master stands still from around then. The STATUS frames unit 1 sent before
    are read at the resume: the master counts it heard from then, and its heard bits keep the unit at its share
    exactly as long as the master counts it there (rules 1, 3 and 4)."""
    text = two_on_32("master-stall-mute", 60, ((1, 1.0, None), (2, 5.0, None)), SLOW_CARS)
    assert outcome(text + mute(30.0) + stall(30.0 + offset, stall_s)) is None


@pytest.mark.parametrize("stall_s", STALLS_S)
@pytest.mark.parametrize("offset", [0.0, 0.02, 0.2])
def test_a_cut_whose_ack_queues_in_the_stall_is_granted_after_keeps_every_bound(offset: float, stall_s: float) -> None:
    """Unit 1's car charges alone; a car plugs into unit 2 at 30 s, and the master stands still while the cut of
    unit 1 that makes room waits for its ACK: the ACK queues, and the grant to unit 2 comes only after it is read
    (rule 2), whatever the master's tick did first."""
    text = two_on_32("master-stall-cut", 60, ((1, 1.0, None), (2, 30.0, None)), SLOW_CARS)
    assert outcome(text + stall(30.0 + offset, stall_s)) is None


def test_a_car_leaving_in_the_stall_frees_its_current_only_at_the_resume() -> None:
    text = two_on_32("master-stall-leave", 60, ((1, 1.0, None), (2, 5.0, 30.0)), SLOW_CARS)
    assert [outcome(text + stall(29.9 + 0.1 * i, s)) for i, s in enumerate(STALLS_S)] == [None] * len(STALLS_S)


BUDGET = """
name = "master-stall-budget"
duration_s = 120.0
[installation.site]
limit_a = 32
[installation.budget]
main_limit_a = 40.0
fallback_a = 12.0
[installation.budget.meter]
kind = "sdm120"
tcp = "127.0.0.1:5020"
poll_s = 1.0
timeout_s = 5.0
frozen_s = 0
[house]
kind = "steps"
steps = [[0, 5.0], [60, 25.0]]
[[setpoint]]
at = 61.0
limit_a = 30.0
ttl_s = 30.0
[car_defaults]
max_a = 32
need_kwh = 40
""" + "".join(f"[[car]]\nevse = {evse}\nat = {at}\n" for evse, at in ((1, 1), (2, 5))) + scenario_servants(1, 2, failsafe_a=6)


@pytest.mark.parametrize("stall_s", STALLS_S)
def test_a_budget_change_in_the_stall_is_taken_at_the_resume(stall_s: float) -> None:
    """The house draws 20 A more at 60 s and a setpoint comes at 61 s while the master stands still: the mains
    readings and the setpoint queue, and the master takes them after its tick at the resume (the runtime's
    loop: the tick, then the feed); the six budget checks judge them from then."""
    sim = Simulation(parse_scenario(BUDGET + stall(59.8, stall_s)), record=False)
    sim.run()
    br = sim.budget_run
    assert br is not None
    resume = round(59.8 + stall_s, 3)
    assert any(abs(d.delivered - resume) < 1e-6 for d in br.meter_deliveries)
    assert not any(59.8 < d.delivered < resume - 1e-6 for d in br.meter_deliveries)


class CallLog(Master):
    """The real master, its calls logged: (what, at)."""

    calls: list[tuple[str, float]]

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        self.calls = getattr(self, "calls", [])
        self.calls.append(("receive", now))
        return super().receive(msg, now, arrived)

    def tick(self, now: float) -> list[Message]:
        self.calls = getattr(self, "calls", [])
        self.calls.append(("tick", now))
        return super().tick(now)


def test_the_stalled_master_sends_nothing_then_reads_one_frame_ticks_and_reads_the_rest() -> None:
    """The runtime loop's order (``Runtime.run``): one frame, a service (the tick: a tick period has passed), and
    each further frame followed by a service that ticks only when due."""
    sim = Simulation(parse_scenario(two_on_32("master-stall-order", 40, ((1, 1.0, None),)) + stall(20.0, 2.0)),
                     master_cls=CallLog)
    sim.run()
    master = sim.masters[0].node
    assert isinstance(master, CallLog)
    assert not [c for c in master.calls if 20.0 < c[1] < 22.0]
    at_resume = [what for what, t in master.calls if t == 22.0]
    assert at_resume[:2] == ["receive", "tick"] and at_resume.count("receive") >= 4
    assert not [f for f in sim.trace if f[2] == "master" and 20.0 < f[0] < 22.0]
    # two seconds without a heartbeat: the unit failed safe, and the master's grant after the resume ended it
    kinds = [m.kind for m in sim.timeline.events if m.address == 1 and 20.0 < m.t < 23.0]
    assert "failsafe" in kinds and "failsafe-end" in kinds


def test_a_master_shut_down_while_it_stands_still_dies_as_it_stands() -> None:
    """It cannot say goodbye (no leaving heartbeat): its servants fail safe by their timeout, and its restart is a
    new epoch."""
    text = two_on_32("master-stall-shutdown", 40, ((1, 1.0, None), (2, 5.0, None)))
    text += stall(20.0, 3.0) + '[[fault]]\nat = 21\nkind = "master_shutdown"\n[[fault]]\nat = 25\nkind = "master_restart"\n'
    sim = Simulation(parse_scenario(text))
    sim.run()
    assert not [f for f in sim.trace if f[2] == "master" and 20.0 < f[0] < 25.0]
    assert [m.detail for m in sim.timeline.events if m.kind == "master-stop"] == ["master crashed"]


@pytest.mark.parametrize(("duration", "why"), [("", "is required for a master_stall, above 0 s"),
                                              ("duration_s = 0\n", "is required for a master_stall, above 0 s"),
                                              ("duration_s = -1\n", "must be at least 0 s")])
def test_a_master_stall_needs_a_duration(duration: str, why: str) -> None:
    text = two_on_32("x", 40, ()) + f'[[fault]]\nat = 20\nkind = "master_stall"\n{duration}'
    with pytest.raises(ScenarioError, match=rf"fault\[0\]\.duration_s.*{why}"):
        parse_scenario(text)


def test_the_shape_is_a_stall_just_after_a_car_comes_or_goes_or_as_a_unit_turns_mute() -> None:
    cars = two_on_32("x", 60, ((1, 1.0, None), (2, 30.0, None)))
    assert "master-stall-at-change" in shapes_in(parse_scenario(cars + stall(30.2, 2.0)))
    assert "master-stall-at-change" not in shapes_in(parse_scenario(cars + stall(31.0, 2.0)))
    alone = two_on_32("x", 60, ((1, 1.0, None),))
    assert "master-stall-at-change" in shapes_in(parse_scenario(alone + stall(30.0, 2.0) + mute(31.5)))
    assert "master-stall-at-change" not in shapes_in(parse_scenario(alone + stall(30.0, 2.0) + mute(32.5)))
