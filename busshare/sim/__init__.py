"""Deterministic, event-driven simulator that runs the real Master and Servant objects.

See docs/SIM.md.  ``run_scenario(load_scenario("story"), seed=1)`` runs the seed's story.
"""

from .failure import SimulationFailed
from .invariants import Violation
from .runner import SimResult
from .runner import Simulation
from .runner import Summary
from .runner import run_scenario
from .scenario import Scenario
from .scenario import ScenarioError
from .scenario import builtin_names
from .scenario import load_scenario
from .scenario import parse_scenario

__all__ = [
    "Scenario", "ScenarioError", "SimResult", "Simulation", "SimulationFailed", "Summary", "Violation",
    "builtin_names", "load_scenario", "parse_scenario", "run_scenario",
]
