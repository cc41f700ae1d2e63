"""Issue 10, finding 1: a servant that hears the master but is not heard must fail safe by itself.

The shape: a tight limit; one servant offering 8 A loses its transmit path (a one-way partition
``out``: a broken transceiver or termination, a mute controller) and every copy of the cut the master
sends it is lost too. It still hears heartbeats, so the plain heartbeat timeout never fires. The
master counts it at its failsafe ``silent_count_after`` after it went silent and grants the freed
current to others: the servant must be at its failsafe by then (PROTOCOL.md 5.2 and 8.2, rules 3-4).
"""

from __future__ import annotations

import dataclasses

from busshare.core.config import Config
from busshare.core.config import ServantConfig
from busshare.core.config import Timing
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import SetLimit
from busshare.servant import Servant
from busshare.sim import Simulation
from busshare.sim.ev import EvProfile
from busshare.sim.scenario import CarPlan
from busshare.sim.scenario import FaultPlan
from busshare.sim.scenario import Scenario
from tests.support.sim_caught import caught

MUTE_AT = 60.0
T = Timing()


class LosesEveryCut(Servant):
    """Servant 2: from MUTE_AT on, every set-limit to it is lost on the way (as 65 % bus loss did, 8.5 s long)."""

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        if isinstance(msg, SetLimit) and self.address == 2 and now >= MUTE_AT:
            return []
        return super().receive(msg, now, arrived)


class HeardBlind(LosesEveryCut):
    """Deliberately broken: takes every heartbeat as proof that the master hears it."""

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        if isinstance(msg, Heartbeat) and self.address == 2:
            msg = Heartbeat(msg.master_id, msg.epoch, msg.limit_da, self.address >> 3, 0xFF & ~1, msg.seq,
                            msg.leaving, msg.learning, msg.second_master)
        return super().receive(msg, now, arrived)


def tight_site() -> Scenario:
    """32 A shared by three EVSEs with cars (servant 2's car takes only 8 A of its 10.7 A share): nothing to spare."""
    config = Config(limit_da=320, servants=tuple(ServantConfig(a, max_da=320, serial=0x100 + a) for a in (1, 2, 3)))
    cars = tuple(CarPlan(a, 1.0 + a, None, EvProfile(max_a=want, need_kwh=100.0, reaction_max_s=5.0))
                 for a, want in ((1, 16.0), (2, 8.0), (3, 32.0)))
    return Scenario(name="mute-servant", config=config, duration_s=MUTE_AT + 60.0, cars=cars,
                    faults=(FaultPlan(at=MUTE_AT, kind="partition", address=2, direction="out"),),
                    origin="tests/sim/test_sim_mute.py")


def test_the_mute_servant_fails_safe_before_the_master_counts_it_down() -> None:
    sim = Simulation(tight_site(), seed=1, servant_cls=LosesEveryCut)
    result = sim.run()  # every invariant, drawn current included, holds at every step
    assert result.ok
    marks = [(m.t, m.kind, m.detail) for m in result.timeline.events if m.address == 2]
    fell = [t for t, kind, detail in marks if kind == "failsafe" and t >= MUTE_AT and "has not heard us" in detail]
    assert fell, marks
    silent = [t for t, kind, _ in marks if kind == "servant-silent" and t >= MUTE_AT]
    assert silent
    # the servant fell within the unheard bound of the master no longer hearing it
    assert fell[0] <= silent[0] + T.unheard_bound
    # and the others did get the freed share, once the master counted it at its failsafe
    assert sim.servants[1].offer == 60 and sim.servants[0].offer + sim.servants[2].offer == 320 - 60


def slow_to_follow_site() -> Scenario:
    """The tight site, with servant 2's car following its failsafe as late as the allowance lets it (4.99 s)
    while the other cars take any grant at once: the freed share must not be drawn before s2's car is down."""

    def car(address: int, want: float) -> CarPlan:
        reaction = 4.99 if address == 2 else 0.05
        return CarPlan(address, 1.0 + address, None, EvProfile(max_a=want, need_kwh=100.0, reaction_min_s=reaction,
                                                                reaction_max_s=reaction, ramp_a_per_s=100.0,
                                                                ramp_step_s=0.05))

    return dataclasses.replace(tight_site(), cars=tuple(car(a, w) for a, w in ((1, 16.0), (2, 8.0), (3, 32.0))))


def test_the_master_counts_a_mute_servant_down_only_after_its_car_can_have_followed() -> None:
    """The master's end of finding 1 (rule 3): silent_count_after covers the unheard bound plus the reaction
    allowance. Counted down when a servant that hears the master falls (heard_timeout) but before its car
    has followed, the others' fast cars draw the freed share while s2's car still draws 8 A: 34 A on 32 A."""
    sim = Simulation(slow_to_follow_site(), seed=1, servant_cls=LosesEveryCut)
    assert sim.run().ok  # drawn current included
    assert sim.servants[1].offer == 60 and sim.servants[0].offer + sim.servants[2].offer == 320 - 60


def test_a_servant_blind_to_the_heard_bits_is_caught_by_rule_4() -> None:
    v = caught(tight_site(), 1, servant_cls=HeardBlind, missed="a servant that ignores the heard bits must break rule 4")
    assert v.check == "rule4-failsafe", v
    assert "s2" in v.detail and "heard" in v.detail
    # caught at the unheard bound, before the master counts it down and the breaker is at risk
    assert MUTE_AT < v.t <= MUTE_AT + T.servant_silent_after + T.unheard_bound + 0.1


class TakesEveryHeartbeat(LosesEveryCut):
    """Deliberately broken: takes a late copy of an old heartbeat as fresh (ignores its seq)."""

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        if isinstance(msg, Heartbeat) and self.address == 2 and self._order is not None:
            self._order.newest = None  # forget the newest seq: whatever comes next is "fresh"
        return super().receive(msg, now, arrived)


def with_late_copies(sc: Scenario) -> Scenario:
    """The mute servant also gets late copies (1-30 s) of old frames: heartbeats that said it was heard."""
    bus = FaultPlan(at=MUTE_AT - 30.0, kind="bus", bus={"late": 0.5, "late_min_s": 1.0, "late_max_s": 30.0})
    return dataclasses.replace(sc, faults=(bus, *sc.faults))


def test_late_copies_of_old_heartbeats_do_not_keep_a_mute_servant_up() -> None:
    sim = Simulation(with_late_copies(tight_site()), seed=1, servant_cls=LosesEveryCut)
    assert sim.run().ok
    assert sim.bus.frames and sim.servants[1].offer == 60


def test_a_servant_that_takes_late_heartbeats_for_fresh_ones_is_caught_by_rule_4() -> None:
    v = caught(with_late_copies(tight_site()), 1, servant_cls=TakesEveryHeartbeat,
               missed="a servant that takes late heartbeat copies for fresh ones must break a rule")
    assert v.check in ("rule4-failsafe", "rule1-offered", "drawn"), v
    assert "s2" in str(v) or v.check != "rule4-failsafe"
