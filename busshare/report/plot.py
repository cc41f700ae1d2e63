"""A picture of a run or a capture: one lane per EVSE, then the total against the limit.

Each EVSE gets its own lane (offered current filled, drawn current dashed, on
one scale for all lanes), so a rotation among many EVSEs at the same current
shows as who is on and who waits.  Faults and states that last (failsafe, a
partition, a crashed servant, a twin, a lossy bus, no master, a second
master) shade their lane, or every lane when they concern the whole bus;
plug-ins, unplugs and the decoder's anomaly flags are marked where they
happen.  One legend, outside the axes.  A run with a moving budget draws the
effective limit in the total, and, with a mains meter, a site panel: the
house's load, the EVs stacked on it, and the main service's limit.

matplotlib is an optional extra (``pip install matplotlib``, or ``pip install '.[plot]'`` in a checkout), imported
only here and only when a plot is asked for.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .marks import INSTANT_STYLES
from .marks import SPAN_STYLES
from .marks import Instant
from .marks import classify
from .timeline import Sample
from .timeline import Timeline

LANE_HEIGHT_IN = (0.5, 0.9)  # per lane, shrinking as lanes are added
TOTAL_HEIGHT_IN = 1.9
WIDTH_IN = 12.0
LEGEND_WIDTH_IN = 2.8


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _steps(points: list[tuple[float, float]], t_end: float) -> tuple[list[float], list[float]]:
    xs = [t for t, _ in points] + [t_end]
    ys = [v for _, v in points] + [points[-1][1]]
    return xs, ys


def lane_colors(n: int) -> list[Any]:
    """``n`` colours, all different: tab10, tab20, then evenly spaced hues."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:  # the ten strong hues first, then their light pairs
        return [colormaps["tab20"](i) for i in [*range(0, 20, 2), *range(1, 20, 2)][:n]]
    return [colormaps["turbo"](0.05 + 0.9 * i / (n - 1)) for i in range(n)]


def mark_gid(kind: str, address: int | None, t: float, end: float | None = None) -> str:
    """The id a drawn mark carries in the figure (and in an SVG): ``mark:plug-in:3:10.000`` for an instant,
    ``mark:partition:3:100.000-120.000`` for a span."""
    when = f"{t:.3f}" if end is None else f"{t:.3f}-{end:.3f}"
    return f"mark:{kind}:{'bus' if address is None else address}:{when}"


def plot_timeline(timeline: Timeline, path: str, title: str = "busshare", t0: float = 0.0,
                  t_end: float | None = None) -> None:
    """Write ``path`` (format from its extension: .png, .svg, .pdf); times are shown as ``t - t0``.

    ``t_end`` (in the same time base as the samples) is where the run or capture stopped: the last
    sample holds until then.
    """
    plt = _pyplot()
    fig = timeline_figure(timeline, title, t0, t_end)
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise UserError(f"cannot write {path}: {why}") from None
    finally:
        plt.close(fig)


def timeline_figure(timeline: Timeline, title: str = "busshare", t0: float = 0.0, t_end: float | None = None) -> Any:
    """The figure ``plot_timeline`` writes (a matplotlib ``Figure``)."""
    plt = _pyplot()
    samples = timeline.samples
    if not samples:
        raise UserError("nothing to plot: no EVSE status in the run or capture")
    end = max(s.t for s in samples) - t0
    for m in timeline.events:
        end = max(end, m.t - t0)
    if t_end is not None:
        end = max(end, t_end - t0)
    end = end or 1.0
    addresses = timeline.addresses()
    n = len(addresses)
    lane_h = min(LANE_HEIGHT_IN[1], max(LANE_HEIGHT_IN[0], 6.0 / n))
    site = bool(timeline.house)
    height = 0.9 + n * lane_h + TOTAL_HEIGHT_IN * (2 if site else 1)
    fig = plt.figure(figsize=(WIDTH_IN, height))
    rows = [lane_h] * n + [TOTAL_HEIGHT_IN] * (2 if site else 1)
    grid = fig.add_gridspec(len(rows), 1, height_ratios=rows, hspace=0.12)
    bottom_ax = fig.add_subplot(grid[len(rows) - 1])
    total_ax = fig.add_subplot(grid[n], sharex=bottom_ax) if site else bottom_ax
    lanes = {a: fig.add_subplot(grid[i], sharex=bottom_ax) for i, a in enumerate(addresses)}
    whole = [*lanes.values(), total_ax] + ([bottom_ax] if site else [])
    top = max([s.offered_da for s in samples] + [s.drawn_da or 0 for s in samples] + [10]) / 10

    colors = lane_colors(n)
    for (address, ax), color in zip(lanes.items(), colors, strict=True):
        _lane(ax, address, timeline.series(address), color, t0, end, top)
    _total(total_ax, samples, timeline.limit_da / 10, t0, end)
    if timeline.budget:
        xs, ys = _steps([(t - t0, v / 10) for t, v in timeline.budget], end)
        total_ax.step(xs, ys, where="post", color="crimson", lw=1.3, gid="budget")
    if site:
        _site(bottom_ax, timeline, colors, t0, end)

    spans, instants = classify(timeline.events, end + t0)
    kinds_shown: dict[str, Any] = {}
    for span in spans:
        axes = [lanes[span.address]] if span.address in lanes else whole
        style = SPAN_STYLES[span.kind]
        for ax in axes:
            patch = ax.axvspan(span.start - t0, span.end - t0, color=style.color, alpha=0.22, lw=0,
                               hatch=style.hatch or None, gid=mark_gid(span.kind, span.address, span.start, span.end))
        kinds_shown.setdefault(span.kind, patch)
    for inst in instants:
        kinds_shown.setdefault(inst.kind, _instant(inst, lanes, whole, t0))

    first = next(iter(lanes.values()))
    first.set_title(title)
    bottom_ax.set_xlim(0, end)
    bottom_ax.set_xlabel("time (s)")
    for ax in [*lanes.values(), *([total_ax] if site else [])]:
        ax.tick_params(labelbottom=False)
    _legend(fig, kinds_shown, timeline.limit_da / 10, timeline)
    # room on the right for the legend, whatever the figure's height
    fig.subplots_adjust(left=0.08, right=1 - LEGEND_WIDTH_IN / WIDTH_IN, top=1 - 0.45 / height,
                        bottom=0.55 / height)
    return fig


def _lane(ax: Any, address: int, series: list[Sample], color: Any, t0: float, end: float, top: float) -> None:
    xs, ys = _steps([(s.t - t0, s.offered_da / 10) for s in series], end)
    ax.fill_between(xs, ys, step="post", color=color, alpha=0.3, lw=0)
    ax.step(xs, ys, where="post", color=color, lw=1.4, gid=f"offered:{address}")
    drawn = [(s.t - t0, s.drawn_da / 10) for s in series if s.drawn_da is not None]
    if drawn:
        xs, ys = _steps(drawn, end)
        ax.step(xs, ys, where="post", color="black", lw=0.9, linestyle="--", alpha=0.8, gid=f"drawn:{address}")
    ax.set_ylim(0, top * 1.22)
    ax.set_yticks([0, top])
    ax.tick_params(axis="y", labelsize="x-small")
    ax.set_ylabel(f"EVSE {address}", rotation=0, ha="right", va="center", fontsize="small")
    ax.grid(True, axis="x", alpha=0.3)


def _total(ax: Any, samples: list[Sample], limit_a: float, t0: float, end: float) -> None:
    latest: dict[int, tuple[int, int]] = {}
    offered: list[tuple[float, float]] = []
    drawn: list[tuple[float, float]] = []
    for s in samples:
        latest[s.address] = (s.offered_da, s.drawn_da or 0)
        offered.append((s.t - t0, sum(o for o, _ in latest.values()) / 10))
        drawn.append((s.t - t0, sum(d for _, d in latest.values()) / 10))
    ax.axhline(limit_a, color="black", linewidth=1.2, linestyle=":")
    xs, ys = _steps(offered, end)
    ax.step(xs, ys, where="post", color="tab:blue", lw=1.4)
    xs, ys = _steps(drawn, end)
    ax.step(xs, ys, where="post", color="black", lw=0.9, linestyle="--", alpha=0.8)
    ax.set_ylabel("total (A)")
    ax.set_ylim(0, max(limit_a, max(v for _, v in offered)) * 1.15 or 1.0)
    ax.grid(True, alpha=0.3)


def _site(ax: Any, timeline: Timeline, colors: list[Any], t0: float, end: float) -> None:
    """The main service: the house's load, each EV's draw (its offer when unmetered) stacked on it, the limit."""
    import numpy as np

    times = sorted({t for t, _ in timeline.house} | {s.t for s in timeline.samples} | {t0})
    xs = [t - t0 for t in times] + [end]
    house_at = _holder(timeline.house)
    base = np.array([house_at(t) / 10 for t in times] + [house_at(times[-1]) / 10])
    ax.fill_between(xs, 0, base, step="post", color="0.6", alpha=0.6, lw=0, gid="house")
    for address, color in zip(timeline.addresses(), colors, strict=True):
        ev_at = _holder([(s.t, s.drawn_da if s.drawn_da is not None else s.offered_da)
                         for s in timeline.series(address)])
        top = base + np.array([ev_at(t) / 10 for t in times] + [ev_at(times[-1]) / 10])
        ax.fill_between(xs, base, top, step="post", color=color, alpha=0.45, lw=0, gid=f"site-ev:{address}")
        base = top
    main = timeline.main_limit_da
    if main is not None:
        ax.axhline(main / 10, color="crimson", lw=1.2, linestyle="-.", gid="main-limit")
    ax.set_ylabel("site (A)")
    ax.set_ylim(0, max(float(base.max()), (main or 0) / 10) * 1.15 or 1.0)
    ax.grid(True, alpha=0.3)


def _holder(points: list[tuple[float, int]]) -> Any:
    """The value in force at ``t`` of a step function given on change (0 before its first point)."""
    import bisect

    ts = [t for t, _ in points]

    def at(t: float) -> int:
        i = bisect.bisect_right(ts, t) - 1
        return points[i][1] if i >= 0 else 0

    return at


def _instant(inst: Instant, lanes: dict[int, Any], whole: list[Any], t0: float) -> Any:
    style = INSTANT_STYLES[inst.kind]
    gid = mark_gid(inst.kind, inst.address, inst.t)
    x = inst.t - t0
    if inst.address in lanes and style.marker:
        ax = lanes[inst.address]
        return ax.plot([x], [0.86], marker=style.marker, color=style.color, markersize=6, linestyle="none",
                       transform=ax.get_xaxis_transform(), clip_on=False, gid=gid)[0]
    axes = [lanes[inst.address]] if inst.address in lanes else whole
    line = None
    for ax in axes:
        line = ax.axvline(x, color=style.color, lw=1.1, linestyle=(0, (4, 2)), alpha=0.8, gid=gid)
    return line


def _legend(fig: Any, kinds: dict[str, Any], limit_a: float, timeline: Timeline) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Patch(facecolor="tab:blue", alpha=0.4, edgecolor="tab:blue", label="offered (one colour per EVSE)"),
        Line2D([], [], color="black", lw=0.9, linestyle="--", label="drawn"),
        Line2D([], [], color="black", lw=1.2, linestyle=":", label=f"limit {limit_a:.1f} A"),
    ]
    if timeline.budget:
        handles.append(Line2D([], [], color="crimson", lw=1.3, label="effective budget"))
    if timeline.house:
        handles.append(Patch(facecolor="0.6", alpha=0.6, label="house load (site panel)"))
        handles.append(Patch(facecolor="tab:blue", alpha=0.45, label="EVs stacked on it"))
        if timeline.main_limit_da is not None:
            handles.append(Line2D([], [], color="crimson", lw=1.2, linestyle="-.",
                                  label=f"main limit {timeline.main_limit_da / 10:.1f} A"))
    for kind, _ in sorted(kinds.items(), key=lambda kv: list(SPAN_STYLES).index(kv[0])
                          if kv[0] in SPAN_STYLES else len(SPAN_STYLES) + list(INSTANT_STYLES).index(kv[0])):
        if kind in SPAN_STYLES:
            s = SPAN_STYLES[kind]
            handles.append(Patch(facecolor=s.color, alpha=0.3, hatch=s.hatch or None, label=s.label))
        else:
            s = INSTANT_STYLES[kind]
            if s.marker:
                handles.append(Line2D([], [], color=s.color, marker=s.marker, linestyle="none", label=s.label))
            else:
                handles.append(Line2D([], [], color=s.color, lw=1.1, linestyle=(0, (4, 2)), label=s.label))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1 - (LEGEND_WIDTH_IN - 0.1) / WIDTH_IN, 0.98),
               fontsize="small", frameon=False)


