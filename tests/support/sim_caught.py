"""Running a scenario with a deliberately broken node and getting the violation that caught it."""

from __future__ import annotations

from busshare.sim import Scenario
from busshare.sim import Simulation
from busshare.sim import SimulationFailed
from busshare.sim import Violation
from busshare.sim.runner import MasterFactory
from busshare.sim.runner import ServantFactory


def caught(scenario: Scenario, seed: int, *, master_cls: MasterFactory | None = None,
           servant_cls: ServantFactory | None = None,
           missed: str = "the broken node was not caught") -> Violation:
    """The violation the simulation stops on (unrecorded); AssertionError(``missed``) when it runs clean."""
    try:
        Simulation(scenario, seed, record=False, master_cls=master_cls, servant_cls=servant_cls).run()
    except SimulationFailed as err:
        return err.violation
    raise AssertionError(missed)
