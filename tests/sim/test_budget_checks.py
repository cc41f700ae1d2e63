"""The five budget invariants judge observations: each passes a good trace and catches a bad one.

The fallback and chatter checks are also run on the real budget policy driven by a simulated
house and meter (``drive``), and on a deliberately broken policy that they must catch.
"""

from __future__ import annotations

import dataclasses
import random

from busshare.core.allocation import Demand
from busshare.core.budget import BudgetPolicy
from busshare.core.budget import MainsReading
from busshare.core.budget import steady_change_bound
from busshare.core.budget_config import BudgetConfig
from busshare.core.config import Timing
from busshare.core.currents import PhaseCurrents
from busshare.sim.budget_checks import BudgetSample
from busshare.sim.budget_checks import MeterDelivery
from busshare.sim.budget_checks import SetLimitSent
from busshare.sim.budget_checks import SetpointDelivery
from busshare.sim.budget_checks import SiteSample
from busshare.sim.budget_checks import SupplySample
from busshare.sim.budget_checks import check_announced
from busshare.sim.budget_checks import check_chatter
from busshare.sim.budget_checks import check_compliance
from busshare.sim.budget_checks import check_fallback
from busshare.sim.budget_checks import check_site
from busshare.sim.budget_checks import check_waste
from busshare.sim.budget_checks import stale_intervals
from busshare.sim.chaos import chaos_scenario
from busshare.sim.house import BudgetWorld
from busshare.sim.house import DrEnd
from busshare.sim.house import HouseLoad
from busshare.sim.house import MeterFault
from busshare.sim.house import MeterFaultKind
from busshare.sim.house import PollKind
from busshare.sim.house import appliance_house
from busshare.sim.house import demand_response
from busshare.sim.house import flat_house
from busshare.sim.runner import Simulation

WINDOW = Timing().budget_compliance_bound  # 6.05 s


# -- 1. counted fits the limit except in the compliance window ---------------------------------------


def test_compliance_allows_the_window_after_a_lowering_and_no_more() -> None:
    good = [BudgetSample(0.0, 400, 400), BudgetSample(10.0, 300, 400), BudgetSample(15.0, 300, 300)]
    assert check_compliance(good, WINDOW, end=100.0) == []
    late = [BudgetSample(0.0, 400, 400), BudgetSample(10.0, 300, 400), BudgetSample(17.0, 300, 300)]
    (v,) = check_compliance(late, WINDOW, end=100.0)
    assert v.check == "budget-compliance" and v.t == 10.0 + WINDOW


def test_compliance_never_allows_a_grant_above_the_limit() -> None:
    (v,) = check_compliance([BudgetSample(0.0, 400, 300), BudgetSample(5.0, 400, 410)], WINDOW, end=9.0)
    assert v.t == 5.0


def test_compliance_exempts_what_unreachable_servants_are_held_at_and_unquiet_samples() -> None:
    assert check_compliance([BudgetSample(0.0, 50, 120, exempt_da=120)], WINDOW, end=60.0) == []
    assert check_compliance([BudgetSample(0.0, 50, 130, exempt_da=120)], WINDOW, end=60.0) != []
    assert check_compliance([BudgetSample(0.0, 50, 130, quiet=False)], WINDOW, end=60.0) == []


def test_a_second_lowering_restarts_the_window() -> None:
    trace = [BudgetSample(0.0, 400, 400), BudgetSample(10.0, 300, 400), BudgetSample(14.0, 250, 400),
             BudgetSample(19.0, 250, 250)]
    assert check_compliance(trace, WINDOW, end=60.0) == []


# -- 2. the site within the main limit ---------------------------------------------------------


def test_the_site_may_exceed_the_main_limit_only_right_after_a_house_step() -> None:
    steps = [100.0]
    good = [SiteSample(0.0, 300, 470), SiteSample(100.0, 395, 470), SiteSample(106.0, 395, 380)]
    assert check_site(good, 800, 8.0, steps, end=200.0) == []
    slow = [SiteSample(0.0, 300, 470), SiteSample(100.0, 395, 470), SiteSample(110.0, 395, 380)]
    (v,) = check_site(slow, 800, 8.0, steps, end=200.0)
    assert v.check == "budget-site" and v.t == 108.0


def test_the_site_over_the_main_limit_without_a_step_is_caught_at_once() -> None:
    (v,) = check_site([SiteSample(0.0, 300, 470), SiteSample(50.0, 300, 510)], 800, 8.0, [], end=60.0)
    assert v.t == 50.0


def test_a_house_that_alone_exceeds_the_main_limit_is_not_the_masters_fault() -> None:
    assert check_site([SiteSample(0.0, 820, 0)], 800, 8.0, [], end=60.0) == []


# -- 3. stale sources fall back ---------------------------------------------------------------


def test_stale_intervals_of_a_meter_and_a_setpoint() -> None:
    meter = [MeterDelivery(float(t), t + 0.1) for t in range(0, 20)] + [MeterDelivery(40.0, 40.1),
                                                                        MeterDelivery(35.0, 41.0)]
    sps = [SetpointDelivery(0.0, 30.0), SetpointDelivery(50.0, 30.0), SetpointDelivery(60.0, None)]
    assert stale_intervals(0.0, meter, sps, 5.0, 100.0) == [
        (0.0, 0.1, "meter"), (24.0, 40.1, "meter"), (45.0, 100.0, "meter"), (30.0, 50.0, "setpoint")]


def test_the_fallback_must_come_within_a_tick_and_the_limit_must_not_rise() -> None:
    stale = [(10.0, 30.0, "meter")]
    good = [BudgetSample(0.0, 470, 470), BudgetSample(10.0, 240, 470, degraded=True),
            BudgetSample(30.0, 240, 240)]
    assert check_fallback(good, stale, 240, 0.05, end=60.0) == []
    late = [BudgetSample(0.0, 470, 470), BudgetSample(10.2, 240, 470, degraded=True)]
    (v,) = check_fallback(late, stale, 240, 0.05, end=60.0)
    assert v.check == "budget-fallback" and v.t == 10.05
    unflagged = [BudgetSample(0.0, 470, 470), BudgetSample(10.0, 240, 470)]
    assert check_fallback(unflagged, stale, 240, 0.05, end=60.0) != []
    rising = [BudgetSample(0.0, 130, 130), BudgetSample(10.0, 130, 130, degraded=True),
              BudgetSample(20.0, 190, 130, degraded=True)]
    (v,) = check_fallback(rising, stale, 240, 0.05, end=60.0)
    assert v.t == 20.0 and "rose" in v.detail


# -- 4. no chatter ----------------------------------------------------------------------------


def test_chatter_counts_changes_inside_steady_stretches_only() -> None:
    changes = [5.0, 50.0, 60.0, 70.0, 400.0]
    assert check_chatter(changes, [(40.0, 100.0)], 3) == []
    (v,) = check_chatter(changes, [(40.0, 100.0)], 2)
    assert v.check == "budget-chatter" and v.t == 70.0


# -- 5. no waste --------------------------------------------------------------------------------


CARS = (Demand(1, 320), Demand(2, 320))


def test_waste_is_judged_in_steady_state_with_demand_above_supply() -> None:
    good = [SupplySample(0.0, 400, 0, CARS), SupplySample(3.0, 400, 400, CARS)]
    assert check_waste(good, 8.0, end=100.0) == []
    short = [SupplySample(0.0, 400, 0, CARS), SupplySample(3.0, 400, 370, CARS)]
    (v,) = check_waste(short, 8.0, end=100.0)
    assert v.check == "budget-waste" and v.t == 8.0
    assert check_waste([SupplySample(0.0, 400, 370, (Demand(1, 200),))], 8.0, end=100.0) == []  # no shortage


def test_a_plug_in_the_world_saw_starts_the_settle_time_again_even_for_a_car_that_wants_nothing_yet() -> None:
    """Chaos seed 1856: a car on its own start timer plugs in (it wants nothing, so the demands do not change),
    but to the master it is a waiting car: it cuts the others for it, and the dip is the cut-then-grant of a
    new demand. The world restarts its service clocks there (``since``), as the static waste check does."""
    dip = [SupplySample(0.0, 400, 370, CARS), SupplySample(5.0, 400, 360, CARS, since=5.0)]
    assert check_waste(dip, 8.0, end=13.0) == []
    (v,) = check_waste(dip, 8.0, end=100.0)
    assert v.t == 13.0  # 8 s after the plug-in, not after the first shortfall
    (v,) = check_waste([SupplySample(0.0, 400, 370, CARS), SupplySample(5.0, 400, 360, CARS)], 8.0, end=100.0)
    assert v.t == 8.0  # without it


def test_waste_asks_no_more_than_the_allocation_can_give() -> None:
    # 10 A for two cars that take at most 7 A each, 6 A at least: only one can charge, at 7 A
    small = (Demand(1, 70), Demand(2, 70))
    assert check_waste([SupplySample(0.0, 100, 70, small)], 8.0, end=100.0) == []
    (v,) = check_waste([SupplySample(0.0, 100, 60, small)], 8.0, end=100.0)
    assert "need 7.0 A" in v.detail


# -- the policy in a simulated world ------------------------------------------------------------


CFG = BudgetConfig(fallback_da=240, main_limit_da=800, margin_da=20)


@dataclasses.dataclass
class Run:
    samples: list[BudgetSample]
    changes: list[float]
    meter: list[MeterDelivery]
    setpoints: list[SetpointDelivery]
    policy: BudgetPolicy


def drive(world: BudgetWorld, duration: float, cls: type[BudgetPolicy] = BudgetPolicy,
          cfg: BudgetConfig = CFG) -> Run:
    """The policy alone, an ideal master behind it (counted = limit), no EVs: mains = the house."""
    p = cls(cfg, 630, Timing(), 0.0, meter_timeout_s=world.timeout_s)
    meter = world.meter()
    queue: list[tuple[float, int, object]] = [(k * world.poll_s + world.latency_s, 0, k * world.poll_s)
                                             for k in range(int(duration / world.poll_s))]
    queue += [(sp.at, 1, sp) for sp in world.setpoints]
    queue.sort(key=lambda x: (x[0], x[1]))
    run = Run([BudgetSample(0.0, p.budget.limit_da, p.budget.limit_da, degraded=p.budget.degraded)], [], [], [], p)

    def record(t: float) -> None:
        b = p.budget
        last = run.samples[-1]
        if (b.limit_da, b.degraded) != (last.limit_da, last.degraded):
            if b.limit_da != last.limit_da:
                run.changes.append(t)
            run.samples.append(BudgetSample(t, b.limit_da, b.limit_da, degraded=b.degraded))

    for t, kind, x in queue:
        ticked = -1.0
        while ticked < p.next_deadline() <= t:  # (a broken policy's deadline may never move)
            ticked = p.next_deadline()
            p.tick(ticked)
            record(ticked)
        if kind == 0:
            assert isinstance(x, float)
            out = meter.poll(x, world.house.at(x))
            if out.kind is PollKind.READING:
                p.meter(MainsReading(x, PhaseCurrents.single(out.mains_da)), [], t)
                run.meter.append(MeterDelivery(x, t))
            elif out.kind is PollKind.FAILED:
                p.meter_failed(t, out.why)
        else:
            sp = x
            assert not isinstance(sp, float)
            if sp.limit_da is None:
                p.clear_setpoint(t)
            else:
                p.setpoint(sp.limit_da, sp.ttl_s, t)
            run.setpoints.append(SetpointDelivery(t, sp.ttl_s or cfg.setpoint_ttl_s if sp.limit_da is not None
                                                  else None))
        record(t)
    return run


class IgnoresStaleness(BudgetPolicy):
    """Broken: keeps using the last meter reading and expired setpoints (evcc#22839's cousin)."""

    def _expire(self, now: float) -> None:
        pass


class NoDeadband(BudgetPolicy):
    """Broken: raises right up to the measured headroom, so noise lowers it again."""

    def _ceiling(self) -> int:
        return self._trigger()


# with it, a loop as fast as the meter and as fine as its readings (OpenEVSE#920, SmartEVSE#327)
TOO_FAST = dataclasses.replace(CFG, raise_hold_s=0.5, raise_hold_max_s=0.5, resolution_da=1, deadband_da=1)


FAULTY = BudgetWorld(
    flat_house(300, noise_da=2),
    faults=(MeterFault(300.0, 60.0, MeterFaultKind.STALE), MeterFault(600.0, 30.0, MeterFaultKind.DISCONNECTED),
            MeterFault(900.0, 90.0, MeterFaultKind.FROZEN), MeterFault(1200.0, 20.0, MeterFaultKind.GARBAGE)),
    setpoints=demand_response(1500.0, 300.0, 160, end=DrEnd.EXPIRE),
    frozen_s=10.0,
)


def fallback_violations(run: Run, world: BudgetWorld, until: float) -> list[str]:
    stale = stale_intervals(0.0, run.meter, run.setpoints, world.timeout_s, until)
    return [str(v) for v in check_fallback(run.samples, stale, CFG.fallback_da, Timing().tick_period, end=until)]


def test_the_policy_falls_back_for_every_meter_fault_and_an_expired_setpoint() -> None:
    run = drive(FAULTY, 2400.0)
    assert fallback_violations(run, FAULTY, 2400.0) == []
    assert run.policy.stats.fallbacks == 5  # four meter faults, one expired setpoint


def test_the_fallback_check_catches_a_policy_that_ignores_stale_sources() -> None:
    run = drive(FAULTY, 2400.0, IgnoresStaleness)
    got = fallback_violations(run, FAULTY, 2400.0)
    assert got and got[0].startswith("t=304.050 s budget-fallback")  # last reading measured at 299.0


NOISY = BudgetWorld(flat_house(300, noise_da=4, seed=11))
QUIET_TUNING = dataclasses.replace(CFG, deadband_da=10, resolution_da=5)  # 0.4 A + 0.5 A <= 1 A


def test_a_steady_noisy_house_does_not_make_the_limit_chatter() -> None:
    run = drive(NOISY, 6 * 3600.0, cfg=QUIET_TUNING)
    bound = steady_change_bound(QUIET_TUNING, 630)
    assert check_chatter(run.changes, NOISY.house.steady(60.0, 6 * 3600.0), bound) == []
    assert len(run.changes) <= 6  # the ramp from the fallback, then nothing for hours


def test_the_chatter_check_catches_a_policy_without_a_deadband() -> None:
    run = drive(NOISY, 6 * 3600.0, NoDeadband, cfg=TOO_FAST)
    (v,) = check_chatter(run.changes, NOISY.house.steady(60.0, 6 * 3600.0), steady_change_bound(QUIET_TUNING, 630))
    assert v.check == "budget-chatter"
    assert len(run.changes) > 1000


def test_an_appliance_house_keeps_its_fallback_promise_over_hours() -> None:
    rng = random.Random(4)
    world = BudgetWorld(appliance_house(rng, 4 * 3600.0, 800 - 240 - 20, noise_da=3),
                        faults=(MeterFault(5000.0, 40.0, MeterFaultKind.DISCONNECTED),))
    run = drive(world, 4 * 3600.0)
    assert fallback_violations(run, world, 4 * 3600.0) == []
    # it followed the house down at every step, on the first reading after it
    steps = world.house.steps_up(min_da=50)
    assert len(steps) > 5
    for t in steps:
        poll = -(-t // world.poll_s) * world.poll_s
        if any(f.covers(poll) for f in world.faults):
            continue
        in_force = [s for s in run.samples if s.t <= poll + world.latency_s][-1]
        assert in_force.limit_da <= 800 - 20 - world.house.at(poll)


def test_a_house_load_drawn_from_data_matches_the_world_type() -> None:
    assert isinstance(FAULTY.house, HouseLoad)


def test_waste_allows_a_dip_the_allocation_heals_within_the_settle_time() -> None:
    # rotation or reclaim moves current by a cut then a grant, long after the last change of limit or demand
    demands = (Demand(1, 320), Demand(2, 320))
    dip = [SupplySample(0.0, 400, 400, demands), SupplySample(100.0, 400, 340, demands),
           SupplySample(102.0, 400, 400, demands)]
    assert check_waste(dip, settle_s=7.0, end=200.0) == []
    lasting = [SupplySample(0.0, 400, 400, demands), SupplySample(100.0, 400, 340, demands),
               SupplySample(110.0, 400, 400, demands)]
    (v,) = check_waste(lasting, settle_s=7.0, end=200.0)
    assert v.check == "budget-waste" and v.t == 107.0


def test_compliance_window_restarts_when_a_unit_is_held_or_comes_back_and_after_a_fault() -> None:
    # a unit turns silent: rule 3 holds its 6 A, the others must be cut to make room (the window applies)
    held = [BudgetSample(0.0, 143, 143), BudgetSample(50.0, 143, 203, exempt_da=60), BudgetSample(53.0, 143, 143)]
    assert check_compliance(held, WINDOW, end=100.0) == []
    # it comes back at its failsafe and must be cut to fit, again within the window
    back = [BudgetSample(0.0, 143, 203, exempt_da=203), BudgetSample(50.0, 143, 203, exempt_da=0),
            BudgetSample(53.0, 143, 143)]
    assert check_compliance(back, WINDOW, end=100.0) == []
    # the end of an unjudged stretch (a fault outside the bound): the lost cuts are sent again
    fault = [BudgetSample(0.0, 143, 200, quiet=False), BudgetSample(50.0, 143, 200), BudgetSample(53.0, 143, 143)]
    assert check_compliance(fault, WINDOW, end=100.0) == []
    # but not for ever
    (v,) = check_compliance([*held[:2], BudgetSample(60.0, 143, 143)], WINDOW, end=100.0)
    assert v.t == 50.0 + WINDOW


def test_waste_counts_a_parked_car_as_served_at_its_minimum_from_leftovers_only() -> None:
    """A parked car (PROTOCOL.md 8.6) is served only from what the charging cars leave: offering the charging
    car all it can use (32 A) and the parked one nothing wastes nothing on a 35 A limit: 3 A do not fit its 6 A."""
    cars = (Demand(1, 320), Demand(2, 60, 60, parked=True))
    assert check_waste([SupplySample(0.0, 350, 320, cars)], 8.0, end=100.0) == []
    unparked = (Demand(1, 320), Demand(2, 60, 60))  # taken as a charging car, its 6 A would be owed
    (v,) = check_waste([SupplySample(0.0, 350, 320, unparked)], 8.0, end=100.0)
    assert v.check == "budget-waste"


def test_announced_flags_a_set_limit_sent_before_the_heartbeat_carries_the_limit() -> None:
    sent = [
        SetLimitSent(1.0, "master", 1, 480, 480),  # announced: fine
        SetLimitSent(2.0, "master", 2, 630, 480),  # raised to 63 A, the heartbeats still said 48 A
        SetLimitSent(2.1, "master2", 1, 300, None),  # a new master granting before its first heartbeat
    ]
    found = check_announced(sent)
    assert [(v.t, v.check) for v in found] == [(2.0, "budget-announced"), (2.1, "budget-announced")]
    assert "sharing 63.0 A while its last heartbeat carried 48.0 A" in found[0].detail
    assert "carried nothing" in found[1].detail
    assert check_announced(sent[:1]) == []


def test_the_supply_record_stays_in_time_order_when_a_fault_schedules_its_end() -> None:
    """A gateway's replay restarts the service clocks at its burst's end, scheduled ahead: the budget run samples
    its supply when that is decided, never at the future time (chaos seed 1408: a sample 15 s ahead made the
    waste check judge a healed dip as lasting)."""
    sim = Simulation(chaos_scenario(1408), 1408, record=False, stop_on_violation=False)
    sim.run_until(200.0)
    assert sim.budget_run is not None
    times = [s.t for s in sim.budget_run.supply]
    assert times == sorted(times)
    assert not [v for v in sim.violations if v.check == "budget-waste"]
