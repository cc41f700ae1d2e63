"""The invariant checker can fail: deliberately broken nodes are caught, with the seed and a trace.

Each test injects a subclass of the real Master or Servant that breaks one promise
and asserts the run stops on exactly that check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Message
from busshare.frames import SetLimit
from busshare.master import Master
from busshare.protocol.link import Link
from busshare.servant import Servant
from busshare.sim import Simulation
from busshare.sim import SimulationFailed
from busshare.sim import load_scenario
from busshare.sim.scenario import Scenario


def story(**changes: Any) -> Scenario:
    return dataclasses.replace(load_scenario("story"), **changes)


def fails(scenario: Scenario, **nodes: Any) -> SimulationFailed:
    with pytest.raises(SimulationFailed) as info:
        Simulation(scenario, seed=3, **nodes).run()
    err = info.value
    text = str(err)
    assert "seed 3" in text and "reproduce:" in text and "--seed 3" in text
    assert err.trace and len(text.splitlines()) > 5  # the events leading to it
    return err


class OverGrantingMaster(Master):
    """Twenty seconds in, grants every servant its full maximum at once."""

    done = False

    def tick(self, now: float) -> list[Message]:
        out = super().tick(now)
        if now >= 20.0 and not self.done:
            self.done = True
            # (numbered like its other set-limits: servants refuse a txn older than the newest they applied)
            out += [SetLimit(s.address, self._next_txn(s.address), s.max_da, 60, self.epoch)
                    for s in self.config.servants]
        return out


class NoFailsafeServant(Servant):
    """Keeps offering what it offered when the master goes silent."""

    def tick(self, now: float) -> list[Message]:
        before = self.offer_da
        out = super().tick(now)
        if self.in_failsafe and self.offer_da < before:
            self.offer_da = before
        return out


class LyingServant(Servant):
    """Acks a cut at once, claiming its meter already reads the new limit."""

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        out = super().receive(msg, now, arrived)
        if isinstance(msg, SetLimit) and msg.address == self.config.address and not any(
            isinstance(o, Ack) and o.txn == msg.txn for o in out
        ):
            out.append(Ack(msg.address, msg.txn, msg.limit_da, msg.limit_da, AckHow.MEASURED))
        return out


class NeverStopsServant(Servant):
    """Never opens the contactor, whatever its car draws."""

    @property  # type: ignore[override]
    def ev_stopped(self) -> bool:
        return False

    @ev_stopped.setter
    def ev_stopped(self, value: bool) -> None:
        pass


class MiserMaster(Master):
    """Never grants anything."""

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        return [m for m in super().receive(msg, now, arrived) if not (isinstance(m, SetLimit) and m.limit_da > 0)]

    def tick(self, now: float) -> list[Message]:
        return [m for m in super().tick(now) if not (isinstance(m, SetLimit) and m.limit_da > 0)]


def test_the_real_nodes_pass_the_same_story() -> None:
    assert Simulation(story(), seed=3).run().ok


def test_an_over_granting_master_is_caught_by_rule_1() -> None:
    err = fails(story(), master_cls=OverGrantingMaster)
    assert err.violation.check == "rule1-offered"
    assert 20.0 <= err.violation.t < 21.0
    assert "SetLimit" in "\n".join(err.trace)


def test_a_servant_that_ignores_the_silent_master_is_caught_by_rule_4() -> None:
    err = fails(story(), servant_cls=NoFailsafeServant)
    # the charging servant's armed failsafe is its 6 A minimum, so it is caught at the first stage:
    # failsafe_timeout + tick_period after the last heartbeat it heard (the master stops at 200 s)
    assert err.violation.check == "rule4-failsafe"
    assert 200.0 + 1.5 - 0.2 < err.violation.t <= 200.0 + 1.55 + 0.01


def test_a_servant_that_acks_before_its_car_reacts_is_caught_on_drawn_current() -> None:
    sc = story()
    slow = tuple(dataclasses.replace(c, profile=dataclasses.replace(c.profile, reaction_min_s=4.0, reaction_max_s=5.0))
                 for c in sc.cars)
    err = fails(dataclasses.replace(sc, cars=slow), servant_cls=LyingServant)
    assert err.violation.check == "drawn"
    # the message lists every unit at the draw that was counted, the one that broke the limit included
    detail = err.violation.detail
    total = float(detail.split("total drawn ")[1].split(" A")[0])
    listed = detail.split("(")[1].rstrip(")")
    assert sum(float(x.split("=")[1]) for x in listed.split(", ")) == pytest.approx(total)


def test_a_servant_that_never_stops_a_non_compliant_car_is_caught() -> None:
    sc = story()
    cars = (dataclasses.replace(sc.cars[0], profile=dataclasses.replace(sc.cars[0].profile, compliant=False,
                                                                        need_kwh=5.0)),) + sc.cars[1:]
    err = fails(dataclasses.replace(sc, cars=cars), servant_cls=NeverStopsServant)
    assert err.violation.check == "ev-cutoff"
    assert "s1" in err.violation.detail


def test_a_master_that_never_grants_is_caught_wasting_capacity() -> None:
    err = fails(story(), master_cls=MiserMaster)
    assert err.violation.check == "waste"


def test_collect_mode_records_violations_without_stopping() -> None:
    sim = Simulation(story(duration_s=60.0), seed=3, master_cls=OverGrantingMaster, stop_on_violation=False)
    result = sim.run()
    assert not result.ok
    assert {v.check for v in result.violations} >= {"rule1-offered"}
    assert "invariant violations:" in result.summary.text()


# -- the checker's own faults (issue 10, point 6) --------------------------------------------------------


def _no_spin(sim: Simulation) -> None:
    """Fail (instead of hanging) when the run keeps stepping at one instant: virtual time must move."""
    if sim.now != getattr(sim, "_spin_at", None):
        sim._spin_at, sim._spin_steps = sim.now, 0  # type: ignore[attr-defined]
    sim._spin_steps += 1  # type: ignore[attr-defined]
    assert sim._spin_steps < 100_000, f"stuck at t={sim.now}: a check re-schedules itself at the same instant"


def test_collect_mode_reports_waste_and_starvation_and_terminates() -> None:
    # a master that never grants wastes the capacity and starves every car; collecting, the run must
    # still end, reporting each episode again once per bound while it lasts (not once per step)
    sc = story(duration_s=1200.0, faults=())  # (the master stays up: the service checks apply; car 1 leaves at
    # 170 s, which restarts the service clocks: car 2 has waited a bound by 1077 s)
    sim = Simulation(sc, seed=3, master_cls=MiserMaster, stop_on_violation=False, on_step=_no_spin)
    result = sim.run()
    checks = [v.check for v in result.violations]
    assert "waste" in checks and "starvation" in checks
    waste = [v.t for v in result.violations if v.check == "waste"]
    assert all(b - a >= sim.bounds.settle_s - 1e-6 for a, b in zip(waste, waste[1:], strict=False))
    starved = [v for v in result.violations if v.check == "starvation"]
    for name in {v.detail.split()[0] for v in starved}:
        times = [v.t for v in starved if v.detail.startswith(name + " ")]
        assert len(times) == len(set(times))


def _only_to(sim: Simulation, address: int, msg: SetLimit) -> None:
    """Deliver a frame to one servant only (a master it cannot follow, on a segment only it hears)."""
    target = sim.by_address[address][0].port
    assert target is not None
    offset, data = Link().encode(msg)
    sim.queue.push_deliver(sim.now + 0.001, offset, [(target, data, False)])


def test_rule4_takes_the_failsafe_only_from_set_limits_the_servant_accepted() -> None:
    # s1 charges alone with a 6 A failsafe armed; a SET_LIMIT of another epoch (a master it does not
    # follow) tells it "failsafe 0": the servant rightly ignores it, so when its master goes silent its
    # failsafe is still 6 A (PROTOCOL.md 8.2 rule 4: only a SET_LIMIT of the master it follows counts)
    sim = Simulation(story(duration_s=60.0), seed=3)
    sim.run_until(30.0)
    s1 = sim.by_address[1][0]
    assert s1.evse.offer_da > 60 and s1.node.armed_failsafe_da == 60
    epoch = sim.masters[0].epoch
    _only_to(sim, 1, SetLimit(1, 200, 0, 0, (epoch + 1) % 256))
    sim.run_until(30.5)
    assert s1.node.armed_failsafe_da == 60 and s1.evse.offer_da > 60  # ignored
    sim.master_crash(30.5)
    sim.run_until(40.0)
    assert s1.evse.offer_da == 60 and sim.violations == []


def test_held_out_seed_801008_a_second_master_meets_a_leaving_one_without_a_false_rule4_failure() -> None:
    # s1 follows master 8 (epoch 18) while master 1 (epoch 17) keeps cutting it to "0 A, failsafe 0": the
    # servant rightly ignores those, so when master 1 leaves, s1 at its 6 A failsafe is no violation
    from busshare.sim.chaos import chaos_scenario

    sim = Simulation(chaos_scenario(801008, generator=1), seed=801008, record=False)
    sim.run_until(399.0)
    assert [m.master_id for m in sim.masters] == [1, 8]
    sim.run_until(420.0)  # master 1 shut down at 400.437 s
    assert sim.violations == []
    assert sim.by_address[1][0].followed == (8, 18)


def test_the_master_counting_a_unit_silent_restarts_the_service_clocks() -> None:
    """Two or three STATUS frames lost in a row (a 1 % bus does that now and then) make the master count the unit
    silent and reserve it; the cuts and grants when it is back are the loss's cost, which the waste and pause
    checks do not judge (chaos seed 1035 of the replay shape's first draws: 8.5 s of waste after such a flap)."""
    from busshare.core.events import Event
    from busshare.core.events import EventKind

    sim = Simulation(load_scenario("story"), record=False)
    sim.run_until(100.0)
    m = sim.masters[0]
    assert m.host is not None and sim.quiet_since < 100.0
    m.host.record([Event(100.0, EventKind.LEARNED, 1, "not a silence")], 100.0)
    assert sim.quiet_since < 100.0
    m.host.record([Event(100.0, EventKind.SERVANT_SILENT, 1, "nothing heard for 1.50 s")], 100.0)
    assert sim.quiet_since == 100.0
