"""Random budget-policy inputs for the core tests: sites, and timed sequences of mains readings (with EV
estimates), failed reads, setpoints, withdrawals and ticks (tests/core/test_budget_props.py and
tests/core/test_budget_fast_path.py)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from busshare.core.budget_config import BudgetConfig
from busshare.core.config import Timing

TIMING = Timing()
STATIC = 630
MAIN, MARGIN = 800, 20
TIMEOUT = 5.0
INF = float("inf")


@st.composite
def configs(draw: st.DrawFn) -> BudgetConfig:
    resolution = draw(st.sampled_from([1, 5, 10]))
    return BudgetConfig(
        fallback_da=draw(st.integers(0, STATIC)), main_limit_da=MAIN, margin_da=MARGIN,
        setpoint_ttl_s=draw(st.sampled_from([5.0, 30.0, 60.0])),
        raise_hold_s=draw(st.sampled_from([TIMING.budget_compliance_bound, 10.0, 15.0, 40.0])),
        raise_hold_max_s=draw(st.sampled_from([60.0, 300.0])),
        raise_step_da=draw(st.integers(resolution, 200)),
        deadband_da=draw(st.integers(resolution, 40)),
        resolution_da=resolution,
    )


@dataclass(frozen=True)
class Read:
    house: int
    ev: tuple[tuple[int, bool, float], ...]  # (draw, metered, at relative to the reading)
    phases: tuple[int, int]  # the other two phases, below the worst (0 = a one-phase site)
    late: float  # delivery after measurement


@dataclass(frozen=True)
class Fail:
    pass


@dataclass(frozen=True)
class SetPoint:
    limit: int
    ttl: float | None


@dataclass(frozen=True)
class Clear:
    pass


@dataclass(frozen=True)
class Tick:
    pass


Action = Read | Fail | SetPoint | Clear | Tick

reads = st.builds(
    Read, st.integers(-100, 900),
    st.lists(st.tuples(st.integers(0, 320), st.booleans(), st.floats(-20.0, 2.0)), max_size=3).map(tuple),
    st.tuples(st.integers(0, 200), st.integers(0, 200)), st.floats(0.0, 1.0),
)
actions = st.one_of(
    reads, reads, reads, st.just(Fail()), st.builds(SetPoint, st.integers(0, 800), st.one_of(st.none(), st.floats(1, 90))),
    st.just(Clear()), st.just(Tick()),
)
steps = st.lists(st.tuples(st.floats(0.0, 8.0), actions), min_size=1, max_size=80)
