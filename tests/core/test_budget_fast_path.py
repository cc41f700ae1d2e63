"""The budget policy's kept ``Budget`` and deadline (issue 12, Performance) are the ones it would work out afresh.

``BudgetPolicy.budget`` is rebuilt only when something it is made of changed, ``next_deadline`` once per
call that can change it (the master reads both after every call), and a ``tick`` before that deadline that
would change nothing does nothing.  Two policies get the same random inputs:
one keeps them, the other (a subclass) works them out on every read.  After every call their answers, their ``budget``, deadlines and events must agree,
so a field left out of what the kept one is checked against would show.
"""

from __future__ import annotations

from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.budget import Budget
from busshare.core.budget import BudgetPolicy
from busshare.core.budget import EvDraw
from busshare.core.budget import MainsReading
from busshare.core.budget_config import BudgetConfig
from busshare.core.currents import PhaseCurrents
from tests.support.budget_inputs import STATIC
from tests.support.budget_inputs import TIMEOUT
from tests.support.budget_inputs import TIMING
from tests.support.budget_inputs import Action
from tests.support.budget_inputs import Clear
from tests.support.budget_inputs import Fail
from tests.support.budget_inputs import Read
from tests.support.budget_inputs import SetPoint
from tests.support.budget_inputs import Tick
from tests.support.budget_inputs import configs
from tests.support.budget_inputs import steps


class FreshBudgetPolicy(BudgetPolicy):
    """Builds its ``Budget`` on every read, as before it was kept."""

    @property
    def budget(self) -> Budget:
        return self._fresh_budget()

    def next_deadline(self) -> float:
        return self._fresh_deadline()

    def tick(self, now: float) -> Budget:
        return self._update(self._advance(now), None)  # the whole update, due or not


def call(p: BudgetPolicy, act: Action, now: float) -> Budget:
    if isinstance(act, Read):
        if p.meter_timeout_s is None:
            return p.tick(now)
        t = now - act.late
        ev = [EvDraw(i, d, met, t + at) for i, (d, met, at) in enumerate(act.ev)]
        return p.meter(MainsReading(t, PhaseCurrents.single(act.house + sum(d for d, _, _ in act.ev))), ev, now)
    if isinstance(act, Fail):
        return p.meter_failed(now, "timeout") if p.meter_timeout_s is not None else p.tick(now)
    if isinstance(act, SetPoint):
        return p.setpoint(act.limit, act.ttl, now)
    if isinstance(act, Clear):
        return p.clear_setpoint(now)
    return p.tick(now)


# a misaligned reading stops the raise hold; the tick after it starts it again (a tick that does nothing
# would leave it to the next reading, and the limit would rise 2 s later)
HOLD_CFG = BudgetConfig(fallback_da=100, main_limit_da=800, margin_da=20, setpoint_ttl_s=30.0, raise_hold_s=10.0,
                        raise_hold_max_s=60.0, raise_step_da=50, deadband_da=10, resolution_da=5)
ALIGNED, MISALIGNED = Read(100, (), (0, 0), 0.0), Read(100, ((50, True, -10.0),), (0, 0), 0.0)
HOLD_FROM_A_TICK: list[tuple[float, Action]] = [(1.0, ALIGNED), (1.0, MISALIGNED), (1.0, Tick()), (2.0, ALIGNED),
                                                (3.0, ALIGNED), (3.0, ALIGNED), (2.5, ALIGNED), (1.0, ALIGNED)]


@settings(max_examples=200)
@example(HOLD_CFG, HOLD_FROM_A_TICK, True)
@given(configs(), steps, st.booleans())
def test_the_kept_budget_and_deadline_are_the_ones_worked_out_afresh(cfg: BudgetConfig, script: list[tuple[float, Action]],
                                                 metered: bool) -> None:
    timeout = TIMEOUT if metered else None
    fast = BudgetPolicy(cfg, STATIC, TIMING, 0.0, meter_timeout_s=timeout)
    full = FreshBudgetPolicy(cfg, STATIC, TIMING, 0.0, meter_timeout_s=timeout)
    assert fast.budget == full.budget
    now = 0.0
    for dt, act in script:
        now += dt
        assert call(fast, act, now) == call(full, act, now)
        assert fast.budget == full.budget == fast._fresh_budget()  # (the kept one is what its own state gives)
        assert fast.next_deadline() == full.next_deadline()
        assert fast.drain_events() == full.drain_events()
        assert (fast.stats, fast.hold_s) == (full.stats, full.hold_s)
