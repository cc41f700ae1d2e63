"""Plots people can read: a lane per EVSE, one legend outside the axes, distinct colours, every fault marked.

The figures are the ones ``plot_timeline`` writes (caught on their way to
``savefig``), of real simulated runs: the 12-EVSE shortage, whose EVSEs all
sit at 6.3 A while the master rotates who waits, and the tour of faults.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from busshare.report.plot import plot_timeline  # noqa: E402
from busshare.sim.runner import Simulation  # noqa: E402
from busshare.sim.scenario import load_scenario  # noqa: E402

GID = re.compile(r"mark:(?P<kind>[a-z-]+):(?P<address>bus|\d+):(?P<start>[\d.]+)(?:-(?P<end>[\d.]+))?$")


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    figures: list[Figure] = []
    real = Figure.savefig

    def spy(self: Figure, *args: Any, **kwargs: Any) -> None:
        figures.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    yield figures


def plotted(scenario: str, tmp_path: Path, saved: list[Figure], duration: float | None = None) -> Figure:
    sc = load_scenario(scenario)
    sim = Simulation(sc)
    sim.run_until(sc.duration_s if duration is None else duration)
    result = sim.result()
    assert result.ok, result.violations
    png = tmp_path / f"{scenario}.png"
    plot_timeline(result.timeline, str(png), title=scenario, t_end=result.summary.sim_seconds)
    assert png.read_bytes()[:4] == b"\x89PNG" and len(saved) == 1
    return saved[0]


def lanes(fig: Figure) -> dict[int, Any]:
    out = {}
    for ax in fig.axes:
        m = re.fullmatch(r"EVSE (\d+)", ax.get_ylabel())
        if m:
            out[int(m.group(1))] = ax
    return out


def marks(fig: Figure) -> list[dict[str, Any]]:
    found = []
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.patches, *ax.collections]:
            m = GID.match(artist.get_gid() or "")
            if m:
                found.append({"kind": m["kind"], "address": None if m["address"] == "bus" else int(m["address"]),
                              "start": float(m["start"]), "end": None if m["end"] is None else float(m["end"])})
    return found


def test_twelve_evses_get_a_lane_each_in_colours_that_never_repeat(tmp_path: Path, saved: list[Figure]) -> None:
    fig = plotted("shortage", tmp_path, saved, duration=2000.0)
    by_address = lanes(fig)
    assert sorted(by_address) == list(range(1, 13))  # rotation shows as who is on in each lane
    colours = []
    for address, ax in by_address.items():
        offered = [line for line in ax.lines if line.get_gid() == f"offered:{address}"]
        assert len(offered) == 1  # one EVSE per lane, never another's line on top of it
        assert [line.get_gid() for line in ax.lines if (line.get_gid() or "").startswith("offered:")] == [
            f"offered:{address}"]
        colours.append(matplotlib.colors.to_hex(offered[0].get_color()))
    assert len(set(colours)) == 12, colours
    ys = [max(ax.lines[0].get_ydata()) for ax in by_address.values()]
    assert len({ax.get_ylim() for ax in by_address.values()}) == 1 and min(ys) > 0  # one scale for all lanes


def test_one_legend_outside_every_axes_and_inside_the_figure(tmp_path: Path, saved: list[Figure]) -> None:
    fig = plotted("shortage", tmp_path, saved, duration=2000.0)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure was closed after saving: lay it out again, as it was saved
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [*fig.legends, *[ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]]
    assert len(legends) == 1
    box = legends[0].get_window_extent(renderer)
    page = fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_ylabel()


def test_plug_ins_unplugs_and_every_injected_fault_are_marked(tmp_path: Path, saved: list[Figure]) -> None:
    fig = plotted("faults", tmp_path, saved)
    found = marks(fig)
    sc = load_scenario("faults")

    def seen(kind: str, address: int | None, t: float, edge: str = "start") -> bool:
        return any(m["kind"] == kind and m["address"] == address and m[edge] is not None
                   and abs(m[edge] - t) < 1e-3 for m in found)

    span_of = {"partition": "partition", "servant_crash": "servant-down", "master_crash": "no-master",
               "master_shutdown": "no-master", "second_master": "second-master", "twin": "twin", "bus": "bus-faults"}
    assert {f.kind for f in sc.faults} <= {*span_of, "master_restart"}
    for f in sc.faults:
        if f.kind == "master_restart":  # the end of the master's absence
            assert seen("no-master", None, f.at, "end"), f
        else:
            address = f.address if f.kind in ("partition", "servant_crash", "twin") else None
            assert seen(span_of[f.kind], address, f.at), f
    assert seen("watchdog", 2, 301.0)  # the crashed servant's pilot held 1 s, then its watchdog reset it
    for car in sc.cars:
        kind = "plug-in" if car.profile.compliant else "plug-in-noncompliant"
        assert seen(kind, car.evse, car.at), car
        if car.leave is not None:
            assert seen("unplug", car.evse, car.leave), car
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    for label in ("partitioned", "servant crashed", "no master", "second master", "twin on the address",
                  "lossy / corrupting bus", "car plugged in", "non-compliant car plugged in", "car unplugged"):
        assert label in labels


def test_a_plot_that_cannot_be_written_is_one_plain_line(tmp_path: Path) -> None:
    """Not `[Errno 2] No such file or directory: '...'` after the path a second time."""
    from busshare.errors import UserError

    result = Simulation(load_scenario("story"), record=True).run(20.0)
    path = str(tmp_path / "gone" / "x.png")
    with pytest.raises(UserError) as caught:
        plot_timeline(result.timeline, path, title="story", t_end=result.summary.sim_seconds)
    assert str(caught.value) == f"cannot write {path}: No such file or directory"
