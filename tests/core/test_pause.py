"""Cars that pause themselves (PROTOCOL.md 8.4-8.6): paused, kept for a grace, then parked from leftovers.

A J1772 car resumes only on a PWM offer, so a car that goes C -> B while offered is never taken as
finished: it keeps its allocation for ``reclaim_after``, then is parked at its minimum, after every
charging car whatever its priority, with a failsafe of 0; charging again, it gets its share back through
cut-then-grant.
"""

from __future__ import annotations

from busshare.core.allocation import Demand
from busshare.core.allocation import allocate
from busshare.core.allocation import shortage
from busshare.core.config import Config
from busshare.core.config import parse_config
from busshare.core.events import EventKind
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Release
from busshare.frames import ReleaseReason
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import serial_tag
from busshare.master import Master
from busshare.master import ServantState
from busshare.protocol.pilot import PilotState
from tests.support.core_harness import Car
from tests.support.core_harness import Net

B, C = PilotState.B, PilotState.C


def site(limit_a: int = 40, priorities: tuple[int, ...] = (0, 0, 0), failsafe_a: int = 6) -> Config:
    """Three 32 A units (minimum 6 A) on a ``limit_a`` circuit."""
    return parse_config(f"[site]\nlimit_a = {limit_a}\n" + "".join(
        f"[[servant]]\naddress = {a}\nmax_a = 32\npriority = {p}\nfailsafe_a = {failsafe_a}\n"
        f"serial = {0x100 + a}\n"
        for a, p in zip((1, 2, 3), priorities, strict=True)))


def state(net: Net, address: int) -> ServantState:
    assert net.master is not None
    view = net.master.view(address, net.t)
    assert view is not None
    return view.state


def sent_to(net: Net, address: int, since: int) -> list[tuple[int, SetLimit]]:
    return [(i, m) for i, (_, who, m) in enumerate(net.log) if i >= since and who == "master"
            and isinstance(m, SetLimit) and m.address == address]


def acked(net: Net, address: int, msg: SetLimit, after: int) -> int:
    return next(i for i, (_, who, m) in enumerate(net.log)
                if i > after and who == f"s{address}" and isinstance(m, Ack) and m.txn == msg.txn)


def master_events(net: Net, kind: EventKind) -> list[int | None]:
    return [e.address for who, e in net.events if who == "master" and e.kind is kind]


# -- allocation ------------------------------------------------------------------------------------


def test_a_parked_demand_takes_its_minimum_only_from_what_every_other_demand_left() -> None:
    charging = Demand(1, 320, 60, priority=0, rank=0)
    parked = Demand(2, 60, 60, priority=9, rank=0, parked=True)  # (a high priority changes nothing)
    assert allocate(400, [charging, parked]) == {1: 320, 2: 60}
    assert allocate(370, [charging, parked]) == {1: 320, 2: 0}, "50 A left over: not its 6 A minimum"
    both = [charging, Demand(3, 320, 60, priority=0, rank=1), parked]
    assert allocate(400, both) == {1: 200, 3: 200, 2: 0}, "the charging ones can use it all"
    two_parked = [charging, parked, Demand(4, 60, 60, priority=0, rank=1, parked=True)]
    assert allocate(430, two_parked) == {1: 320, 2: 60, 4: 0}, "by priority then rank, while a minimum fits"
    assert allocate(500, two_parked) == {1: 320, 2: 60, 4: 60}
    assert not shortage(370, [charging, parked]), "a parked car at 0 is no shortage: nobody waits for current"


# -- the master: grace, parked, resumed ---------------------------------------------------------------


def two_charging(run_s: float) -> Net:
    """The default site with cars (reacting in 2 s) plugged in at 1 s on servants 1 and 2, ``run_s`` later."""
    net = Net(site())
    net.run(1.0)
    net.plug(1, Car(react=2.0))
    net.plug(2, Car(react=2.0))
    net.run(run_s)
    return net


def test_a_paused_car_keeps_its_share_for_the_grace_then_is_parked_at_its_minimum_with_failsafe_0() -> None:
    net = two_charging(10.0)
    assert net.offers() == {1: 200, 2: 200, 3: 0}
    net.set_pilot(1, B)  # its own timer, balancing, or full: the pilot looks the same
    t = net.config.timing
    net.run(t.reclaim_after - 2 * t.tick_period)
    assert net.offers() == {1: 200, 2: 200, 3: 0}, "a short pause causes no churn"
    assert state(net, 1) is ServantState.PAUSED and master_events(net, EventKind.PARKED) == []
    mark = len(net.log)
    net.run(t.reaction_allowance + 4 * t.tick_period)
    # parked: its minimum, from what the other leaves (40 - 32 = 8 A): 6 A; the other gets all it can use
    assert net.offers() == {1: 60, 2: 320, 3: 0}
    assert state(net, 1) is ServantState.PARKED and master_events(net, EventKind.PARKED) == [1]
    assert net.master is not None
    view = net.master.view(1, net.t)
    assert view is not None and view.demand_da == 60 and view.failsafe_da == 0
    assert net.units[1].node.armed_failsafe_da == 0
    cut_i, cut = sent_to(net, 1, mark)[0]
    grant_i = next(i for i, m in sent_to(net, 2, mark) if m.limit_da == 320)
    assert cut.limit_da == 60 and cut_i < acked(net, 1, cut, cut_i) < grant_i, "cut, its ack, then the grant"
    assert not [m for _, who, m in net.log if who == "s1" and isinstance(m, Release)]


def test_a_pause_grace_does_not_run_while_the_unit_is_silent() -> None:
    """Chaos seed 1589: a car seen in B while offered, then its unit not heard (a partition) for most of the
    grace, and back in failsafe at 0 A: the silence is not the car's pause. Its grace stops while the unit is
    silent and goes on when it is heard again (PROTOCOL.md 8.5), or the master parks a car that wants current
    and it starves."""
    net = two_charging(10.0)
    net.set_pilot(1, B)
    t = net.config.timing
    net.run(2.0)
    assert state(net, 1) is ServantState.PAUSED
    net.units[1].mute = True
    net.run(t.reclaim_after - 10.0)  # silent, counted at its failsafe
    net.units[1].mute = False
    net.run(t.reclaim_after - 20.0)  # the grace from the pause's start is over, not the time it was heard in B
    assert master_events(net, EventKind.PARKED) == [], "parked for a pause it was not heard to make"
    net.run(25.0)
    assert master_events(net, EventKind.PARKED) == [1], "the rest of its grace, then parked as before"


def test_a_resumed_car_gets_its_share_back_through_cut_then_grant() -> None:
    net = two_charging(5.0)
    net.set_pilot(1, B)
    t = net.config.timing
    net.run(t.reclaim_after + t.reaction_allowance + 1.0)
    assert net.offers() == {1: 60, 2: 320, 3: 0}
    mark = len(net.log)
    net.set_pilot(1, C)  # it resumes on the PWM it was kept (and may draw the 6 A at once: counted)
    net.run(t.reaction_allowance + 4 * t.tick_period)
    assert net.offers() == {1: 200, 2: 200, 3: 0}
    assert state(net, 1) is ServantState.CHARGING and master_events(net, EventKind.RESUMED) == [1]
    cut_i, cut = sent_to(net, 2, mark)[0]
    grant_i = next(i for i, m in sent_to(net, 1, mark) if m.limit_da == 200)
    assert cut.limit_da == 200 and cut_i < acked(net, 2, cut, cut_i) < grant_i, "cut, its ack, then the grant"


def parked_at_0() -> Net:
    """Unit 1's car (priority 9) paused and parked; then two cars charging take all 40 A: it is parked at 0."""
    net = Net(site(priorities=(9, 0, 0)))
    net.run(1.0)
    net.plug(1, Car())
    net.run(2.0)
    net.set_pilot(1, B)
    t = net.config.timing
    net.run(t.reclaim_after + 2.0)
    assert net.offers() == {1: 60, 2: 0, 3: 0}
    net.plug(2, Car())
    net.plug(3, Car())
    net.run(t.reaction_allowance + 2.0)
    assert net.offers() == {1: 0, 2: 200, 3: 200}, "the charging cars can use all 40 A"
    assert state(net, 1) is ServantState.PARKED
    return net


def test_a_parked_car_comes_after_every_charging_car_whatever_its_priority_and_never_rotates() -> None:
    net = parked_at_0()
    t = net.config.timing
    net.run(t.rotation_interval + 1.0)
    assert net.offers() == {1: 0, 2: 200, 3: 200} and master_events(net, EventKind.ROTATE) == []
    net.unplug(3)  # 40 - 32 = 8 A left over: its parked offer comes back
    net.run(t.reaction_allowance + 2.0)
    assert net.offers() == {1: 60, 2: 320, 3: 0}


def test_a_car_waiting_in_b_for_its_own_timer_is_parked_then_starts_when_it_is_time() -> None:
    net = Net(site())
    net.run(1.0)
    net.plug(1, Car(), pilot=B)  # plugged in, on a timer: it never goes to C yet
    net.plug(2, Car())
    net.run(5.0)
    assert net.offers() == {1: 200, 2: 200, 3: 0}
    t = net.config.timing
    net.run(t.reclaim_after + t.reaction_allowance)
    assert net.offers() == {1: 60, 2: 320, 3: 0}, "it does not hold a full share for hours"
    net.run(600.0)
    assert net.offers() == {1: 60, 2: 320, 3: 0} and state(net, 1) is ServantState.PARKED
    net.set_pilot(1, C)  # 01:00: a PWM is there, it starts
    net.run(t.reaction_allowance + 2.0)
    assert net.offers() == {1: 200, 2: 200, 3: 0}


def test_a_car_at_0_in_b_is_waiting_not_paused() -> None:
    """In B at 0 A (B1) a car cannot charge: it waits for current like any car, and rotates."""
    net = Net(site(limit_a=10, failsafe_a=0))
    net.run(1.0)
    net.plug(1, Car())
    net.run(2.0)
    net.plug(2, Car(), pilot=B)
    net.run(5.0)
    assert net.offers() == {1: 100, 2: 0, 3: 0}
    assert state(net, 2) is ServantState.WAITING
    net.run(net.config.timing.rotation_interval + 10.0)
    assert master_events(net, EventKind.ROTATE), "a waiting car rotates in"
    assert net.offers()[2] == 100 and net.offers()[1] == 0


def test_a_version_1_servant_that_releases_a_finished_car_is_handled_as_before() -> None:
    """A v1 servant sends RELEASE(DONE) and then requests nothing: its car is finished, not paused."""
    cfg = site()
    m = Master(cfg, 0.0, epoch=7)
    tags = {a: serial_tag(0x100 + a) for a in (1, 2, 3)}
    confirms: list[SetLimit] = []
    for a in (1, 2, 3):
        confirms += [x for x in m.receive(Status(a, tags[a], PilotState.A, 0, 0, 0), 0.0) if isinstance(x, SetLimit)]
    for x in confirms:
        m.receive(Ack(x.address, x.txn, 0, 0, AckHow.IMMEDIATE), 0.5)
    m.tick(1.0)
    out = m.receive(Status(1, tags[1], C, 0, 0, 320), 1.1)
    grant = next(x for x in out if isinstance(x, SetLimit))
    m.receive(Ack(1, grant.txn, grant.limit_da, 0, AckHow.IMMEDIATE), 1.2)
    m.receive(Status(1, tags[1], C, grant.limit_da, 300, 320), 1.3)
    out = m.receive(Release(1, grant.limit_da, ReleaseReason.EV_DONE), 2.0)
    cut = [x for x in out if isinstance(x, SetLimit)]
    assert cut and cut[0].limit_da == 0, "cut to 0 at once (and counted until acked)"
    m.receive(Status(1, tags[1], B, 0, 0, 0), 2.1)
    view = m.view(1, 2.1)
    assert view is not None and view.state is ServantState.IDLE and view.demand_da == 0
    m.receive(Ack(1, cut[0].txn, 0, 0, AckHow.MEASURED), 2.2)
    later = 2.0 + cfg.timing.reclaim_after + 1.0
    m.receive(Status(1, tags[1], B, 0, 0, 0), later)
    view = m.view(1, later)
    assert view is not None and view.state is ServantState.IDLE


def test_a_status_that_only_shows_the_offer_reaching_a_car_in_b_starts_its_grace() -> None:
    """A car plugged in on its timer stays in B: the STATUS after the grant changes only the offer, and that
    alone must start the pause (its grace, then parked), though the pilot did not change."""
    cfg = site()
    m = Master(cfg, 0.0, epoch=7)
    tags = {a: serial_tag(0x100 + a) for a in (1, 2, 3)}
    pilots = {1: B, 2: PilotState.A, 3: PilotState.A}
    offers = {1: 0, 2: 0, 3: 0}

    def statuses(now: float) -> list[SetLimit]:
        out: list[SetLimit] = []
        for a in (1, 2, 3):
            got = m.receive(Status(a, tags[a], pilots[a], offers[a], 0, 320 if a == 1 else 0), now)
            out += [x for x in got if isinstance(x, SetLimit)]
        for x in out:  # applied and acked at once (no car draws)
            offers[x.address] = x.limit_da
            m.receive(Ack(x.address, x.txn, x.limit_da, 0, AckHow.IMMEDIATE), now)
        return out

    sent: list[SetLimit] = []
    t = 0.0
    while t < 2.0 + cfg.timing.reclaim_after + 1.0:
        sent += statuses(t)
        m.tick(t)
        t = round(t + 0.5, 9)
    assert [x.limit_da for x in sent if x.address == 1 and x.limit_da > 0] == [320, 60]
    view = m.view(1, t)
    assert view is not None and view.state is ServantState.PARKED and offers[1] == 60


def test_a_new_master_learns_a_car_parked_at_0_as_waiting_and_parks_it_again_after_its_grace() -> None:
    """PROTOCOL.md 8.6, rotation across a master restart: nothing on the wire tells a car parked at 0 A (in B,
    offered 0) from one waiting for current. A new master learns it as waiting, offers it a share, and parks it
    again once it stays in B for ``reclaim_after``: its pause costs that once per restart, no more."""
    net = parked_at_0()
    t = net.config.timing
    net.kill_master()
    net.run(t.failsafe_timeout + 1.0)
    net.start_master(epoch=8)
    net.run(t.learning_timeout + t.reaction_allowance + 2.0)
    assert net.offers()[1] > 0, "learned as a waiting car: it is offered a share again"
    assert state(net, 1) is ServantState.PAUSED, "in B while offered: its grace runs"
    net.run(t.reclaim_after + t.reaction_allowance + 2.0)
    assert net.offers() == {1: 0, 2: 200, 3: 200} and state(net, 1) is ServantState.PARKED
    assert master_events(net, EventKind.PARKED) == [1, 1]
