"""Hypothesis drives an installation through arrivals, departures, faults and restarts.

The simulator checks every invariant at every step and raises
``SimulationFailed`` (with the seed and trace) on the first violation, so each
rule below only has to make something happen; the final rule lets the
installation settle with the master up and checks that it did.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import invariant
from hypothesis.stateful import precondition
from hypothesis.stateful import rule
from hypothesis.stateful import run_state_machine_as_test

from busshare.sim import Simulation
from busshare.sim import SimulationFailed
from busshare.sim import parse_scenario
from busshare.sim.ev import EvProfile
from tests.support.sim_findings import known_finding
from tests.support.site_files import scenario_servants

BASE = parse_scenario("""
name = "stateful"
duration_s = 1e9
[installation.site]
breaker_a = 50
""" + scenario_servants(1, 2, serial_base=0x500) + scenario_servants(3, max_a=16, serial_base=0x500)
    + scenario_servants(4, serial_base=0x500, meter=False))

ADDRESSES = st.integers(1, 4)


FOUND: list[str] = []  # open core findings hit (see tests/support/sim_findings.py); anything else fails


class Installation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sim = Simulation(dataclasses.replace(BASE, origin="tests/sim/test_sim_stateful.py"), seed=0, record=False)
        self.second: object | None = None
        self.tainted = False  # hit a known open finding: stop driving this installation

    def guard(self, action: object) -> None:
        """Run ``action``; a violation that is a known open finding is recorded, anything else fails."""
        if self.tainted:
            return
        try:
            action()  # type: ignore[operator]
        except SimulationFailed as exc:
            finding = known_finding(str(exc))
            if finding is None:
                raise
            FOUND.append(f"{finding}: {exc.violation}")
            self.tainted = True

    def proc(self, address: int) -> object:
        return self.sim.by_address[address][0]

    @rule(address=ADDRESSES, need=st.floats(0.05, 30.0), max_a=st.sampled_from([10.0, 16.0, 32.0, 80.0]),
          reaction=st.floats(0.0, 5.0), compliant=st.booleans(), taper=st.sampled_from([0.0, 0.5]))
    def plug_in(self, address: int, need: float, max_a: float, reaction: float, compliant: bool, taper: float) -> None:
        p = self.sim.by_address[address][0]
        if p.evse.plugged:
            return
        compliant = compliant or not p.cfg.has_meter  # a car ignoring its pilot needs a meter to be caught
        profile = EvProfile(max_a=max_a, need_kwh=need, reaction_min_s=0.0, reaction_max_s=reaction,
                            taper_kwh=taper, compliant=compliant)
        self.guard(lambda: self.sim.plug(p, profile))

    @rule(address=ADDRESSES)
    def unplug(self, address: int) -> None:
        self.guard(lambda: self.sim.unplug(self.sim.by_address[address][0]))

    @rule(seconds=st.floats(0.05, 90.0))
    def time_passes(self, seconds: float) -> None:
        self.guard(lambda: self.sim.run_until(self.sim.now + seconds))

    @rule()
    def master_crashes(self) -> None:
        self.guard(self.sim.master_crash)

    @rule()
    def master_shuts_down(self) -> None:
        self.guard(self.sim.master_shutdown)

    @rule()
    def master_restarts(self) -> None:
        self.guard(self.sim.master_restart)

    @precondition(lambda self: self.second is None)
    @rule(seconds=st.floats(0.5, 60.0))
    def second_master_appears(self, seconds: float) -> None:
        self.second = True
        self.guard(lambda: self.sim.second_master(master_id=9, duration_s=seconds))

    @rule(address=ADDRESSES, hold=st.sampled_from([0.0, 0.5, 1.0]), down=st.floats(0.1, 60.0))
    def servant_crashes(self, address: int, hold: float, down: float) -> None:
        p = self.sim.by_address[address][0]
        if p.alive:
            self.guard(lambda: self.sim.servant_crash(p, hold_s=hold, duration_s=down))

    @rule(address=ADDRESSES, direction=st.sampled_from(["in", "out", "both"]), seconds=st.floats(0.1, 30.0))
    def partition(self, address: int, direction: str, seconds: float) -> None:
        p = self.sim.by_address[address][0]
        if p.alive and f"partition:{p.name}" not in self.sim.faults:
            self.guard(lambda: self.sim.partition(p, direction, duration_s=seconds))

    @rule(loss=st.sampled_from([0.0, 0.01, 0.1, 0.5]), corrupt=st.sampled_from([0.0, 0.01, 0.1]),
          duplicate=st.sampled_from([0.0, 0.05]), seconds=st.floats(1.0, 60.0))
    def noisy_bus(self, loss: float, corrupt: float, duplicate: float, seconds: float) -> None:
        self.guard(lambda: self.sim.bus_faults(duration_s=seconds, loss=loss, corrupt=corrupt, duplicate=duplicate))

    @invariant()
    def no_violation(self) -> None:
        assert self.tainted or not self.sim.violations

    def teardown(self) -> None:
        # bring the master back and let everything settle: waste and failsafe checks get their chance
        self.guard(self.sim.master_restart)
        self.guard(lambda: self.sim.run_until(self.sim.now + 120.0))
        assert self.tainted or not self.sim.violations


def test_installation_under_random_arrivals_departures_faults_and_restarts() -> None:
    FOUND.clear()
    run_state_machine_as_test(Installation, settings=settings(
        max_examples=40, stateful_step_count=30, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow],
    ))
    if FOUND:
        pytest.xfail(f"{len(FOUND)} runs hit open core findings: " + " | ".join(sorted(set(FOUND)))[:2000])


def test_found_by_hypothesis_idle_unit_silent_on_a_corrupting_bus() -> None:
    # An idle unit lost two status frames on a bus corrupting 10 % of frames: while it was silent the
    # master cut the two charging units to make room for its standalone 6 A. It was heard again at
    # once, but the meterless unit's cut was only acked after its 5 s allowance and its re-grant's
    # ack was lost too: 3 A unused for 7 s ("waste"). The master now eases those cuts as well.
    state = Installation()
    state.master_crashes()
    state.plug_in(address=1, compliant=True, max_a=80.0, need=22.159695758585006, reaction=0.0, taper=0.0)
    state.master_crashes()
    state.plug_in(address=4, compliant=False, max_a=10.0, need=29.942519735607437, reaction=0.0, taper=0.0)
    for _ in range(6):
        state.master_crashes()
    state.noisy_bus(corrupt=0.1, duplicate=0.0, loss=0.0, seconds=29.51338685296595)
    state.time_passes(seconds=8.553711676096615)
    state.time_passes(seconds=19.71336577600421)
    state.servant_crashes(address=4, down=12.199438832332289, hold=0.0)
    state.noisy_bus(corrupt=0.0, duplicate=0.0, loss=0.0, seconds=2.187321484134509)
    state.teardown()
    assert not state.sim.violations
