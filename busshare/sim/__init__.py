"""Deterministic, event-driven simulator that runs the real Master and Servant objects.

See docs/SIM.md.  ``run_scenario(scenario, seed)`` is the entry point.
"""
