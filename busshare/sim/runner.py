"""The simulation: real Master and Servant objects on a simulated bus, in virtual time.

Event-driven: the loop jumps to the next frame delivery, node deadline
(``next_deadline()``), car change or scripted action; nothing happens in
between, so idle time costs nothing.  Everything random comes from
``random.Random`` streams derived from the seed, ties are broken by insertion
order, and no set of objects is ever iterated: the same scenario and seed give
the same run, frame for frame.

The loop never sleeps.  ``on_step(sim)`` is called after every event, so a
caller can draw a live view and pace the run against a wall clock.

The parts, by job: ``loop`` (the event loop), ``world`` (processes, the bus, what the checks are
told), ``faults`` (cars and faults), ``oracle`` (rule 4 from the frames each servant accepted),
``invariants`` (the checks, which return what they find).  This module puts them together and
sums a run up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import TypedDict
from typing import Unpack

from ..report.timeline import Timeline
from .budget_run import BudgetFigures
from .ev import VOLTAGE_V
from .failure import SimulationFailed
from .faults import Faults
from .invariants import Violation
from .loop import run_events
from .scenario import Scenario
from .world import MasterFactory
from .world import ServantFactory

__all__ = ["MasterFactory", "ServantFactory", "SimOptions", "SimResult", "Simulation", "Summary", "run_scenario"]


@dataclass
class Summary:
    scenario: str
    seed: int
    sim_seconds: float
    limit_da: int
    peak_offered_da: int
    peak_drawn_da: int
    voltage_v: float
    energy_kwh: dict[str, float]
    failsafe_episodes: int
    violations: list[Violation]
    frames: int
    lost: int
    corrupted: int
    duplicated: int
    rejected: int  # frames dropped by the receivers' Links (E2E, malformed, duplicates)
    steps: int
    budget: BudgetFigures | None = None  # a run with a [budget]: its moves and the site's load

    def text(self) -> str:
        lines = [
            f"scenario {self.scenario}, seed {self.seed}: {self.sim_seconds:.1f} s simulated in {self.steps} steps",
            f"limit {self.limit_da / 10:.1f} A; peak offered {self.peak_offered_da / 10:.1f} A; "
            f"peak drawn {self.peak_drawn_da / 10:.1f} A",
            f"energy at {self.voltage_v:.0f} V: " + ", ".join(f"{k} {v:.2f} kWh" for k, v in self.energy_kwh.items()),
            f"failsafe episodes: {self.failsafe_episodes}",
            f"frames: {self.frames} sent, {self.lost} lost, {self.corrupted} corrupted, {self.duplicated} duplicated, "
            f"{self.rejected} rejected by receivers",
            f"invariant violations: {len(self.violations)}",
        ]
        b = self.budget
        if b is not None:
            lines.insert(-1, f"budget: {b.changes} changes, lowest {b.lowest_da / 10:.1f} A, "
                             f"{b.fallbacks} fallback{'' if b.fallbacks == 1 else 's'}, "
                             f"longest over budget {b.longest_over_budget_s:.2f} s (bound {b.bound_s:.2f} s)")
            if b.main_limit_da is not None:
                lines.insert(-1, f"site: main {b.main_limit_da / 10:.1f} A, peak {b.peak_site_da / 10:.1f} A, "
                                 f"over the main {b.over_main_s:.2f} s")
        lines += [f"  {v}" for v in self.violations]
        return "\n".join(lines)


@dataclass
class SimResult:
    summary: Summary
    timeline: Timeline
    capture: list[tuple[float, int, bytes]] = field(default_factory=list)

    @property
    def violations(self) -> list[Violation]:
        return self.summary.violations

    @property
    def ok(self) -> bool:
        return not self.summary.violations


class Simulation(Faults):
    """One installation in virtual time.  Drive it with ``run`` or ``run_until`` and the fault methods."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        *,
        record: bool = True,
        stop_on_violation: bool = True,
        on_step: Callable[[Simulation], None] | None = None,
        master_cls: MasterFactory | None = None,
        servant_cls: ServantFactory | None = None,
    ) -> None:
        super().__init__(scenario, seed, record=record, stop_on_violation=stop_on_violation,
                         master_cls=master_cls, servant_cls=servant_cls)
        self.on_step = on_step
        for car in scenario.cars:
            self._plan_car(car)
        for fault in scenario.faults:
            self.queue.push_script(fault.at, self._apply_fault, fault)
        self._update_quiet(0.0)

    def run(self, until: float | None = None) -> SimResult:
        self.run_until(self.scenario.duration_s if until is None else until)
        return self.result()

    def run_until(self, t_end: float) -> None:
        on_step = self.on_step
        try:
            run_events(self.queue, t_end, self, None if on_step is None else lambda: on_step(self))
            if self.budget_run is not None:
                for v in self.budget_run.check(self.now):
                    self.report(v)
        except SimulationFailed:
            raise
        except Exception as exc:  # a node (or the simulator) crashed: report it like a violation
            raise self._crashed(exc) from exc

    def _crashed(self, exc: Exception) -> SimulationFailed:
        """A node-exception violation for ``exc``, pointing at the innermost frame outside the simulator."""
        import traceback

        frames = traceback.extract_tb(exc.__traceback__)
        nodes = [f for f in frames if "/sim/" not in f.filename and not f.filename.endswith("frames.py")
                 and not f.filename.startswith("<")]
        where = (nodes or frames)[-1]
        t = self.queue.now
        v = Violation(t, "node-exception", f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")
        self.violations.append(v)
        self._trace(t, "EXCEPTION", str(v))
        return SimulationFailed(v, self.seed, self.scenario.name, self.trace_lines(), self.scenario.origin)

    def result(self) -> SimResult:
        t = self.now
        energy: dict[str, float] = {}
        for p in self.servants:
            p.evse.advance(t)
            energy[p.name] = round((p.evse.energy_wh + self.energy_done.get(p.name, 0.0)) / 1000.0, 3)
        rejected = sum(port.link.dropped for port in self._all_ports())
        summary = Summary(
            scenario=self.scenario.name, seed=self.seed, sim_seconds=t, limit_da=self.config.limit_da,
            peak_offered_da=self.inv.peak_offered, peak_drawn_da=self.inv.peak_drawn, voltage_v=VOLTAGE_V,
            energy_kwh=energy, failsafe_episodes=self.failsafe_episodes, violations=list(self.violations),
            frames=self.bus.frames, lost=self.bus.lost, corrupted=self.bus.corrupted,
            duplicated=self.bus.duplicated, rejected=rejected, steps=self.steps,
            budget=None if self.budget_run is None else self.budget_run.figures(t),
        )
        capture = list(self.bus.capture) if self.record else []
        return SimResult(summary, self.timeline, capture)


class SimOptions(TypedDict, total=False):
    """The keyword options of ``Simulation``, for ``run_scenario``."""

    record: bool
    stop_on_violation: bool
    on_step: Callable[[Simulation], None] | None
    master_cls: MasterFactory | None
    servant_cls: ServantFactory | None


def run_scenario(scenario: Scenario, seed: int | None = None, **options: Unpack[SimOptions]) -> SimResult:
    """Run ``scenario`` to its end; raises ``SimulationFailed`` on the first violation."""
    return Simulation(scenario, seed, **options).run()
