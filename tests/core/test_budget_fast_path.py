"""The budget policy's kept ``Budget`` (issue 12, Performance) is the one it would build afresh.

``BudgetPolicy.budget`` is rebuilt only when something it is made of changed (the master reads it after
every call).  Two policies get the same random inputs: one keeps its ``Budget``, the other (a subclass)
builds it on every read.  After every call their answers, their ``budget``, deadlines and events must agree,
so a field left out of what the kept one is checked against would show.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.budget import Budget
from busshare.core.budget import BudgetPolicy
from busshare.core.budget import EvDraw
from busshare.core.budget import MainsReading
from busshare.core.budget_config import BudgetConfig
from busshare.core.currents import PhaseCurrents
from tests.core.test_budget_props import STATIC
from tests.core.test_budget_props import TIMEOUT
from tests.core.test_budget_props import TIMING
from tests.core.test_budget_props import Action
from tests.core.test_budget_props import Clear
from tests.core.test_budget_props import Fail
from tests.core.test_budget_props import Read
from tests.core.test_budget_props import SetPoint
from tests.core.test_budget_props import configs
from tests.core.test_budget_props import steps


class FreshBudgetPolicy(BudgetPolicy):
    """Builds its ``Budget`` on every read, as before it was kept."""

    @property
    def budget(self) -> Budget:
        return self._fresh_budget()


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


@settings(max_examples=200)
@given(configs(), steps, st.booleans())
def test_the_kept_budget_is_the_one_built_afresh(cfg: BudgetConfig, script: list[tuple[float, Action]],
                                                 metered: bool) -> None:
    timeout = TIMEOUT if metered else None
    fast = BudgetPolicy(cfg, STATIC, TIMING, 0.0, meter_timeout_s=timeout)
    full = FreshBudgetPolicy(cfg, STATIC, TIMING, 0.0, meter_timeout_s=timeout)
    assert fast.budget == full.budget
    now = 0.0
    for dt, act in script:
        now += dt
        assert call(fast, act, now) == call(full, act, now)
        assert fast.budget == full.budget == full._fresh_budget()
        assert fast.next_deadline() == full.next_deadline()
        assert fast.drain_events() == full.drain_events()
