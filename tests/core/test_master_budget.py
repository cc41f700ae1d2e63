"""The master with a live budget (PROTOCOL.md 8.2 rule 9, docs/BUDGET.md section 6), on a virtual clock.

A site of 63 A with four 32 A servants (6 A standalone failsafes) under a main service of 80 A, 2 A
margin, fallback 24 A; the master and servants run through real Links (tests/support/core_harness.py)
and a mains meter reads the house plus what the cars draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.budget import BudgetPolicy
from busshare.core.budget import MainsReading
from busshare.core.budget_config import BudgetConfig
from busshare.core.config import Config
from busshare.core.config import ServantConfig
from busshare.core.config import Timing
from busshare.core.config import parse_config
from busshare.core.currents import PhaseCurrents
from busshare.core.events import Event
from busshare.core.events import EventKind
from busshare.core.setpoint import LimitSource
from busshare.frames import Ack
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import serial_tag
from busshare.master import Master
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from tests.support.core_harness import Car
from tests.support.core_harness import Net
from tests.support.site_files import ISSUE_SITE

T = Timing()
STATIC = 630
FALLBACK = 240
# a quick ramp (one 6.3 A-per-15 s climb from the fallback would take minutes): whole steps after the shortest hold
BUDGET = BudgetConfig(fallback_da=FALLBACK, main_limit_da=800, margin_da=20, raise_hold_s=T.reaction_allowance + 1.05,
                      raise_step_da=STATIC)


def site(meter: bool = False) -> Config:
    servants = tuple(ServantConfig(a, max_da=320, failsafe_da=60, serial=0x100 + a, has_meter=meter) for a in (1, 2, 3, 4))
    return Config(STATIC, servants, budget=BUDGET)


def policy(now: float = 0.0, meter: bool = True, **tuning: float) -> BudgetPolicy:
    return BudgetPolicy(replace(BUDGET, **tuning), STATIC, T, now, meter_timeout_s=5.0 if meter else None)


def reading(net: Net, house_da: int, lag: float = 0.0) -> list[Message]:
    """A mains reading of the house plus what every car draws, measured ``lag`` ago; its frames are sent."""
    assert net.master is not None
    out = net.master.mains_reading(MainsReading(net.t - lag, PhaseCurrents((house_da + net.drawn_total(),))), net.t)
    net.from_master(out)
    return out


def metered(net: Net, seconds: float, house: int | Callable[[float], int | None],
            each: Callable[[], None] | None = None) -> None:
    """Run ``seconds`` with a mains poll every second; ``house`` is a load, or a function of the time giving
    one or None (the poll failed); ``each`` runs after every step."""
    assert net.master is not None
    end = net.t + seconds
    while net.t < end - 1e-9:
        net.step()
        if abs(net.t - round(net.t)) < 1e-6:
            load = house if isinstance(house, int) else house(net.t)
            if load is None:
                net.from_master(net.master.mains_failed(net.t, "timeout: no response"))
            else:
                reading(net, load)
        if each is not None:
            each()


def charging(cars: int = 3, house: int = 100, meter: bool = False, react: float = 1.0) -> Net:
    """``cars`` cars charging under a house of ``house`` (the budget settled at the static 63 A)."""
    net = Net(site(meter), budget=policy())
    for a in range(1, cars + 1):
        net.plug(a, Car(react=react))
    metered(net, 40.0, house)
    net.step()  # (the last second's reading is taken: the next one is newer)
    assert net.master is not None and net.master.limit_da == STATIC
    return net


def events(net: Net) -> list[Event]:
    return [e for who, e in net.events if who == "master"]


def cuts(msgs: list[Message]) -> list[SetLimit]:
    return [m for m in msgs if isinstance(m, SetLimit)]


# -- the API -------------------------------------------------------------------------------------


def test_an_overload_reading_sends_the_cuts_in_the_same_call() -> None:
    net = charging()
    master = net.master
    assert master is not None
    granted = {a: u.node.offer_da for a, u in net.units.items()}
    assert sum(granted.values()) == STATIC
    out = reading(net, 400)  # a 40 A house: 80 - 2 - 40 = 38 A of headroom
    assert master.limit_da == 380 and master.budget.source is LimitSource.METER
    sent = cuts(out)
    assert sent and all(m.limit_da < granted[m.address] for m in sent)
    assert sum(min(granted[a], next((m.limit_da for m in sent if m.address == a), granted[a])) for a in granted) <= 380
    assert EventKind.BUDGET_LOWERED in [e.kind for e in events(net)]
    mark = net.t
    net.run(T.heartbeat_period)
    hb = [m for t, who, m in net.log if who == "master" and isinstance(m, Heartbeat) and t > mark]
    assert hb and hb[-1].limit_da == 380  # the heartbeat carries the effective limit


def announced_first(out: list[Message], limit_da: int) -> None:
    """Rule 9: a changed limit goes out in a heartbeat ahead of every set-limit of that call."""
    assert out and isinstance(out[0], Heartbeat) and out[0].limit_da == limit_da, out
    assert not [m for m in out[1:] if isinstance(m, Heartbeat)]


def test_a_changed_limit_is_announced_in_a_heartbeat_before_the_set_limits_that_follow_it() -> None:
    net = charging()
    master = net.master
    assert master is not None
    lowered = reading(net, 400)  # a reading's lowering: the heartbeat, then the cuts
    announced_first(lowered, 380)
    assert cuts(lowered)
    net.run(T.reaction_allowance + 2.0)
    out = master.setpoint(200, 600.0, net.t)  # a setpoint's lowering
    net.from_master(out)
    announced_first(out, 200)
    net.run(T.reaction_allowance + 2.0)
    out = master.clear_setpoint(net.t)  # nothing changed at once: no extra heartbeat
    net.from_master(out)
    assert not [m for m in out if isinstance(m, Heartbeat)]
    # a raise at the end of the hold, found by tick between two scheduled heartbeats: announced, then granted
    raised: list[list[Message]] = []
    while master.limit_da == 200:
        before = master.limit_da
        net.step()
        msgs = [m for t, who, m in net.log if who == "master" and t == net.t]
        if master.limit_da != before:
            raised.append(msgs)
        if abs(net.t - round(net.t)) < 1e-6:
            reading(net, 100)
    assert raised and isinstance(raised[0][0], Heartbeat) and raised[0][0].limit_da == master.limit_da
    assert any(isinstance(m, SetLimit) for m in raised[0])


def test_a_master_without_a_budget_shares_the_static_limit_and_refuses_budget_inputs() -> None:
    master = Master(site(), 0.0)
    assert master.budget.limit_da == STATIC and master.budget.source is LimitSource.STATIC
    assert master.budget_policy is None
    with pytest.raises(ValueError, match="without a budget"):
        master.mains_reading(MainsReading(0.0, PhaseCurrents((100,))), 0.0)
    with pytest.raises(ValueError, match="without a budget"):
        master.setpoint(100, None, 0.0)


def test_the_policy_must_fit_the_site() -> None:
    with pytest.raises(ValueError, match="static limit"):
        Master(site(), 0.0, budget=BudgetPolicy(BUDGET, 500, T, 0.0, meter_timeout_s=5.0))
    low = replace(BUDGET, fallback_da=200)  # four 6 A standalone failsafes: 24 A
    with pytest.raises(ValueError, match="failsafe"):
        Master(site(), 0.0, budget=BudgetPolicy(low, STATIC, T, 0.0, meter_timeout_s=5.0))


def test_the_budget_events_go_through_the_masters_log() -> None:
    master = Master(site(), 0.0, budget=policy())
    first = master.drain_events()
    assert [e.kind for e in first] == [EventKind.LEARNING, EventKind.BUDGET_FALLBACK]
    master.mains_failed(1.0, "timeout: no response")
    (failed,) = master.drain_events()
    assert failed.kind is EventKind.METER_FAILED and failed.address is None and "timeout" in failed.detail
    assert str(failed).split()[1] == "meter-failed"


def test_next_deadline_includes_the_policys() -> None:
    master = Master(site(), 0.0, budget=policy())
    master.mains_reading(MainsReading(0.0, PhaseCurrents((200,))), 0.0)
    master.setpoint(400, 3.0, 0.0)
    for t in (0.05, 0.1, 0.15):  # heartbeats and learning keep it near; the setpoint's expiry is among them
        master.tick(t)
        assert master.next_deadline() <= 3.0
    master.tick(3.0)
    assert EventKind.SETPOINT_EXPIRED in [e.kind for e in master.drain_events()]


def test_the_policy_is_built_from_a_site_file() -> None:
    config = parse_config(ISSUE_SITE)
    p = BudgetPolicy.from_config(config, 0.0)
    assert p is not None and p.static_da == config.limit_da == 630 and p.meter_timeout_s == 5.0
    master = Master(config, 0.0, budget=p)
    assert master.limit_da == 240 and master.budget.degraded  # no reading yet: at the fallback
    assert BudgetPolicy.from_config(replace(config, budget=None), 0.0) is None


def test_the_ev_estimate_is_what_each_servant_is_known_to_draw() -> None:
    """Metered: its measurement and when it was taken; meterless: the counted offer while charging, since when."""
    net = charging(cars=2, meter=True)
    master = net.master
    assert master is not None
    draws = {d.address: d for d in master._ev_draws(net.t)}
    assert draws[1].metered and draws[1].draw_da == net.units[1].car.draw > 0  # type: ignore[union-attr]
    assert net.t - draws[1].at <= T.status_period
    net2 = charging(cars=2, meter=False)
    m2 = net2.master
    assert m2 is not None
    d2 = {d.address: d for d in m2._ev_draws(net2.t)}
    assert not d2[1].metered and d2[1].draw_da == m2.view(1, net2.t).committed_da  # type: ignore[union-attr]
    assert d2[3].draw_da == 0  # no car
    assert d2[1].at < net2.t - T.reaction_allowance  # its offer has held a while: the reading is aligned


@pytest.mark.parametrize("loss", ["none", "lost-set-limit", "lost-ack"])
@pytest.mark.parametrize("meter", [False, True], ids=["meterless", "metered"])
def test_what_is_counted_fits_a_lowered_limit_within_the_bound(loss: str, meter: bool) -> None:
    """Rule 9: cuts at once; counted may stay above the new limit only for budget_compliance_bound, even with
    one SET_LIMIT or one ACK of the exchange lost; the freed current is granted only after the acks (rule 1)."""
    net = charging(cars=3, meter=meter, react=T.reaction_allowance - 1.0)  # slow cars (a step of margin)
    master = net.master
    assert master is not None
    victim = net.units[2]
    victim.deaf = loss == "lost-set-limit"  # the cut to servant 2 is lost
    t0 = net.t
    reading(net, 400)
    victim.deaf = False
    assert master.limit_da == 380
    if loss == "lost-ack":
        victim.lose = (Ack,)
    bound = T.budget_compliance_bound
    first_fit = None

    def judge() -> None:
        nonlocal first_fit
        if victim.lose and any(who == "s2" and isinstance(m, Ack) and t > t0 for t, who, m in net.sent):
            victim.lose = ()  # one ack lost, the next gets through
        committed = master.committed_da(net.t)
        assert committed <= STATIC
        if committed <= 380 and first_fit is None:
            first_fit = net.t
        if net.t >= t0 + bound - 1e-9:
            assert committed <= 380, f"counted {committed} above the lowered 38 A at t0 + {net.t - t0:.2f} s"

    metered(net, 3 * bound, 400, judge)
    assert master.limit_da == 380 and first_fit is not None
    if loss == "none" and not meter:
        assert first_fit - t0 >= T.reaction_allowance - 1e-6  # a meterless unit acks after the allowance: the bound is needed
    assert sum(net.offers().values()) <= 380


# -- the failsafe currents fit the floor (docs/BUDGET.md 6.2) -------------------------------------

_MOVE = st.tuples(st.floats(0.5, 12.0), st.sampled_from(["house", "setpoint", "clear", "outage"]),
                  st.integers(0, 630))


def armed_total(net: Net) -> int:
    return sum(u.node.armed_failsafe_da for u in net.units.values() if u.up)


@settings(max_examples=12, deadline=None)
@given(moves=st.lists(_MOVE, min_size=1, max_size=6), meter=st.booleans())
def test_the_armed_failsafes_fit_the_fallback_at_every_step_and_after_the_master_dies(
        moves: list[tuple[float, str, int]], meter: bool) -> None:
    """Whatever the budget does, the failsafe currents armed (and counted) sum to at most the fallback, so a
    master that dies at once, even right after a lowering, leaves the servants within it (PROTOCOL.md 8.3)."""
    net = charging(cars=4, meter=meter, react=2.0)
    master = net.master
    assert master is not None
    house, outage_until = 100, -1.0

    def judge() -> None:
        assert armed_total(net) <= FALLBACK
        assert master.reserved_failsafe_da(net.t) <= FALLBACK

    for gap, kind, value in moves:
        if kind == "house":
            house = value
        elif kind == "setpoint":
            net.from_master(master.setpoint(value, gap + 1.0, net.t))
        elif kind == "clear":
            net.from_master(master.clear_setpoint(net.t))
        else:
            outage_until = net.t + gap
        metered(net, gap, lambda t, h=house, until=outage_until: h if t >= until else None, judge)
    net.kill_master()  # at once, maybe right after a lowering whose cuts are not acked yet
    net.run(T.failsafe_timeout + 2 * T.tick_period)
    assert all(u.node.offer_da <= u.node.armed_failsafe_da for u in net.units.values())
    assert net.offered_total() <= FALLBACK


def test_a_twins_worst_case_is_cut_from_the_other_failsafes_to_fit_the_floor() -> None:
    """A twin counts at its worst case, failsafe too: with a budget the others' failsafes give way to it
    within the compliance bound, so what a dead master leaves stays within the fallback (a fixed site sums
    them against its limit, as before)."""
    net = charging(cars=3, meter=True)
    master = net.master
    assert master is not None
    assert master.reserved_failsafe_da(net.t) == 3 * 60
    twin = Link()

    def twin_reports() -> None:  # the twin goes on answering on address 1
        if abs(net.t * 2 - round(net.t * 2)) < 1e-6:
            net.inject("twin", Status(1, serial_tag(0x999), PilotState.C, 0, 0, 800), twin)

    twin_reports()
    metered(net, T.budget_compliance_bound + T.tick_period, 100, twin_reports)
    assert master.view(1, net.t).state == "twin"  # type: ignore[union-attr]
    assert master.reserved_failsafe_da(net.t) <= FALLBACK
    assert armed_total(net) <= FALLBACK


# -- stale sources, setpoints, a restart ------------------------------------------------------------


def test_a_stale_meter_drops_the_limit_to_the_fallback_and_nothing_rises_until_it_is_back() -> None:
    net = charging(cars=3, react=2.0)
    master = net.master
    assert master is not None
    t0 = net.t  # the last good reading was a tick ago: failed reads from now on
    metered(net, 4.0, lambda t: None)
    assert master.limit_da == STATIC  # a failed read is not a reading: nothing moves before the timeout
    metered(net, 1.5, lambda t: None)
    assert master.limit_da == FALLBACK and master.budget.degraded and master.budget.source is LimitSource.FALLBACK
    kinds = [e.kind for e in events(net) if e.t >= t0]
    assert kinds.count(EventKind.METER_FAILED) == 1 and EventKind.BUDGET_FALLBACK in kinds
    assert any(isinstance(m, SetLimit) and m.limit_da < 210 for t, who, m in net.log if who == "master" and t > t0)
    metered(net, 30.0, lambda t: None)  # still failing: held at the fallback however long
    assert master.limit_da == FALLBACK
    assert master.committed_da(net.t) <= FALLBACK and net.offered_total() <= FALLBACK
    metered(net, 2.0, 100)  # back: recovers, but only after the raise hold
    assert master.limit_da == FALLBACK and not master.budget.degraded
    metered(net, master.budget_policy.hold_s + 1.0, 100)  # type: ignore[union-attr]
    assert master.limit_da > FALLBACK


def test_a_setpoint_holds_for_its_ttl_then_falls_back_without_rising() -> None:
    net = charging(cars=3)
    master = net.master
    assert master is not None
    out = master.setpoint(300, 20.0, net.t)  # 30 A for 20 s
    net.from_master(out)
    assert master.limit_da == 300 and master.budget.source is LimitSource.SETPOINT
    assert cuts(out)  # cut at once, in the same call
    metered(net, 19.0, 100)
    assert master.limit_da == 300 and not master.budget.degraded
    metered(net, 1.5, 100)
    assert master.budget.degraded and master.budget.source is LimitSource.FALLBACK
    assert master.limit_da == FALLBACK  # min(30 A, the 24 A fallback): an expired setpoint never raises
    kinds = [e.kind for e in events(net)]
    assert EventKind.SETPOINT_EXPIRED in kinds and kinds.index(EventKind.SETPOINT) < kinds.index(EventKind.SETPOINT_EXPIRED)
    metered(net, 30.0, 100)
    assert master.limit_da == FALLBACK


def test_a_withdrawn_setpoint_frees_the_limit_after_the_hold() -> None:
    net = charging(cars=3)
    master = net.master
    assert master is not None
    net.from_master(master.setpoint(300, None, net.t))  # the default time-to-live (60 s)
    metered(net, 5.0, 100)
    out = master.clear_setpoint(net.t)
    net.from_master(out)
    assert cuts(out) == [] and master.limit_da == 300  # a withdrawal raises nothing at once
    assert EventKind.SETPOINT_CLEARED in [e.kind for e in events(net)]
    assert master.budget.source is LimitSource.STATIC and not master.budget.degraded
    # the cuts to 30 A were acked a moment ago: readings count towards a raise once the meterless cars have
    # had their reaction allowance (BUDGET.md 4.2.2), then the room must hold
    hold = master.budget_policy.hold_s  # type: ignore[union-attr]
    metered(net, hold + 2.0, 100)
    assert master.limit_da == 300  # a hold's worth of readings, but taken while the cars may still follow
    metered(net, T.reaction_allowance, 100)
    assert master.limit_da == STATIC  # one whole step here (raise_step_a is the static limit)
    assert master.committed_da(net.t) <= STATIC


def test_a_restarted_master_starts_at_the_fallback_until_a_good_reading() -> None:
    net = charging(cars=3)
    net.kill_master()
    net.run(1.0)
    master = net.start_master(9, budget=policy(net.t))
    assert master.limit_da == FALLBACK and master.budget.degraded
    net.run(2.0)  # learning, then sharing the fallback: no reading yet
    hb = [m for t, who, m in net.log if who == "master" and isinstance(m, Heartbeat) and m.epoch == 9]
    assert hb and {m.limit_da for m in hb} == {FALLBACK}
    net.run(20.0)
    assert not master.learning and master.limit_da == FALLBACK
    assert master.committed_da(net.t) <= FALLBACK and net.offered_total() <= FALLBACK
    metered(net, 2.0, 100)  # the first good reading: recovers in steps, after the hold
    assert master.limit_da == FALLBACK
    metered(net, master.budget_policy.hold_s + 1.0, 100)  # type: ignore[union-attr]
    assert master.limit_da == STATIC
