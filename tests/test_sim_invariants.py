"""The invariant checker can fail: deliberately broken nodes are caught, with the seed and a trace.

Each test injects a subclass of the real Master or Servant that breaks one promise
and asserts the run stops on exactly that check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from busshare.frames import Ack, AckHow, Message, SetLimit
from busshare.master import Master
from busshare.servant import Servant
from busshare.sim import Simulation, SimulationFailed, load_scenario
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

    def receive(self, msg: Message, now: float) -> list[Message]:
        out = super().receive(msg, now)
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

    def receive(self, msg: Message, now: float) -> list[Message]:
        return [m for m in super().receive(msg, now) if not (isinstance(m, SetLimit) and m.limit_da > 0)]

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
