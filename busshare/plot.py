"""A picture of a run or a capture: each EVSE's offered and drawn current against the limit.

matplotlib is an optional extra (``pip install busshare[plot]``), imported
only here and only when a plot is asked for.
"""

from __future__ import annotations

from typing import Any

from .errors import UserError
from .timeline import Timeline

MARK_STYLE = {
    "failsafe": ("dimgray", "failsafe"),
    "heartbeat-gap": ("darkgoldenrod", "heartbeat gap"),
    "master-silent": ("black", "master silent"),
    "master-stop": ("black", "master stop"),
    "over-limit": ("magenta", "over limit"),
}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UserError("plotting needs matplotlib: install busshare[plot]") from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _steps(points: list[tuple[float, float]], t_end: float) -> tuple[list[float], list[float]]:
    xs = [t for t, _ in points] + [t_end]
    ys = [v for _, v in points] + [points[-1][1]]
    return xs, ys


def plot_timeline(timeline: Timeline, path: str, title: str = "busshare", t0: float = 0.0,
                  t_end: float | None = None) -> None:
    """Write ``path`` (format from its extension: .png, .svg, .pdf); times are shown as ``t - t0``.

    ``t_end`` (in the same time base as the samples) is where the run or capture stopped: the last
    sample holds until then.
    """
    plt = _pyplot()
    samples = timeline.samples
    if not samples:
        raise UserError("nothing to plot: no EVSE status in the run or capture")
    end = max(s.t for s in samples) - t0
    for m in timeline.events:
        end = max(end, m.t - t0)
    if t_end is not None:
        end = max(end, t_end - t0)
    t_end = end or 1.0
    fig, (ax, ax_sum) = plt.subplots(2, 1, sharex=True, figsize=(11, 7), height_ratios=(3, 1.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    latest: dict[int, tuple[int, int]] = {}
    totals_offered: list[tuple[float, float]] = []
    totals_drawn: list[tuple[float, float]] = []
    for s in samples:
        latest[s.address] = (s.offered_da, s.drawn_da or 0)
        t = s.t - t0
        totals_offered.append((t, sum(o for o, _ in latest.values()) / 10))
        totals_drawn.append((t, sum(d for _, d in latest.values()) / 10))
    for i, address in enumerate(timeline.addresses()):
        series = timeline.series(address)
        color = colors[i % len(colors)]
        xs, ys = _steps([(s.t - t0, s.offered_da / 10) for s in series], t_end)
        ax.step(xs, ys, where="post", color=color, label=f"EVSE {address} offered")
        drawn = [(s.t - t0, s.drawn_da / 10) for s in series if s.drawn_da is not None]
        if drawn:
            xs, ys = _steps(drawn, t_end)
            ax.step(xs, ys, where="post", color=color, linestyle="--", alpha=0.7, label=f"EVSE {address} drawn")
    limit_a = timeline.limit_da / 10
    for axis in (ax, ax_sum):
        axis.axhline(limit_a, color="black", linewidth=1.2, linestyle=":", label=f"limit {limit_a:.1f} A")
    xs, ys = _steps(totals_offered, t_end)
    ax_sum.step(xs, ys, where="post", color="tab:blue", label="total offered")
    xs, ys = _steps(totals_drawn, t_end)
    ax_sum.step(xs, ys, where="post", color="tab:green", linestyle="--", label="total drawn")
    seen: set[str] = set()
    for m in timeline.events:
        style = MARK_STYLE.get(m.kind)
        if style is None:
            continue
        color, label = style
        ax.axvline(m.t - t0, color=color, alpha=0.5, linewidth=1, linestyle=(0, (4, 3)),
                   label=None if label in seen else label)
        seen.add(label)
    ax.set_ylabel("current per EVSE (A)")
    ax_sum.set_ylabel("total (A)")
    ax_sum.set_xlabel("time (s)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax_sum.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    for axis in (ax, ax_sum):
        axis.grid(True, alpha=0.3)
        axis.set_ylim(bottom=0)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    finally:
        plt.close(fig)
