"""Deterministic, event-driven simulator that runs the real Master and Servant objects.

See docs/SIM.md.  ``run_scenario(load_scenario("story"), seed=1)`` runs the seed's story.
"""

from .invariants import SimulationFailed, Violation
from .runner import SimResult, Simulation, Summary, run_scenario
from .scenario import Scenario, ScenarioError, builtin_names, load_scenario, parse_scenario

__all__ = [
    "Scenario", "ScenarioError", "SimResult", "Simulation", "SimulationFailed", "Summary", "Violation",
    "builtin_names", "load_scenario", "parse_scenario", "run_scenario",
]
