"""What a plot marks on a timeline: spans (a fault or a state that lasts) and instants, with their style.

The simulator and the capture decoder record ``timeline.Mark``s (plug-ins,
unplugs, every injected fault and its end, failsafe entries and exits, the
decoder's anomaly flags).  Here they are paired into spans (a partition
until it heals, a crashed servant until it boots, the master gone until it
restarts, a second master while it runs...) and the rest kept as instants,
each with the label and style the legend shows.  Pure: no matplotlib.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..core.events import EventKind
from .timeline import Mark


@dataclass(frozen=True)
class Style:
    label: str
    color: str
    marker: str = ""  # instants: a marker in the lane; "" = a vertical line
    hatch: str = ""  # spans: a hatch over the shading


@dataclass(frozen=True)
class Span:
    start: float
    end: float  # the run or capture's end when it never ended
    address: int | None  # None: the whole bus
    kind: str


@dataclass(frozen=True)
class Instant:
    t: float
    address: int | None
    kind: str


SPAN_STYLES: dict[str, Style] = {
    EventKind.FAILSAFE: Style("in failsafe", "tab:gray"),
    "partition": Style("partitioned", "tab:orange", hatch="//"),
    "servant-down": Style("servant crashed", "tab:red", hatch="xx"),
    EventKind.TWIN: Style("twin on the address", "tab:purple", hatch=".."),
    "bus-faults": Style("lossy / corrupting bus", "gold", hatch="\\\\"),
    "no-master": Style("no master", "dimgray", hatch="//"),
    EventKind.SECOND_MASTER: Style("second master", "tab:brown", hatch="++"),
    "meter-fault": Style("mains meter fault", "tab:cyan", hatch="--"),
}
INSTANT_STYLES: dict[str, Style] = {
    "plug-in": Style("car plugged in", "tab:green", marker="v"),
    "plug-in-noncompliant": Style("non-compliant car plugged in", "tab:red", marker="v"),
    "unplug": Style("car unplugged", "tab:olive", marker="^"),
    "watchdog": Style("watchdog reset the pilot", "tab:red", marker="X"),
    EventKind.EV_STOPPED: Style("overdrawing EV stopped", "darkred", marker="s"),
    "heartbeat-gap": Style("heartbeat gap", "darkgoldenrod"),
    "master-silent": Style("master silent", "black"),
    "master-leaving": Style("master leaving", "dimgray"),
    "two-masters": Style("two masters", "tab:brown"),
    "twin-servants": Style("two servants on an address", "tab:purple"),
    "unacked-cut": Style("cut never acked", "tab:pink"),
    "over-limit": Style("over the limit", "magenta"),
    "house": Style("house load steps", "sienna"),
    "setpoint": Style("setpoint (demand response)", "darkviolet"),
    "budget-fallback": Style("budget falls back", "crimson"),
}
# start kind -> (span kind, end kind); both marks carry the same address
_PAIRS = {
    EventKind.FAILSAFE: (EventKind.FAILSAFE, EventKind.FAILSAFE_END),
    "partition": ("partition", "heal"),
    "meter-fault": ("meter-fault", "meter-fault-end"),
    "servant-crash": ("servant-down", "servant-boot"),
    EventKind.TWIN: (EventKind.TWIN, EventKind.TWIN_GONE),
}
PRIMARY_MASTER = "master"  # the simulator's name for the installation's own master


def _master_name(detail: str) -> str:
    """The simulator's marks name the master first: ``master7 id 7 epoch 3``, ``master crashed``."""
    return detail.split(" ", 1)[0] if detail else PRIMARY_MASTER


def classify(marks: Iterable[Mark], t_end: float) -> tuple[list[Span], list[Instant]]:
    """Pair the marks into spans and keep the instants the plot shows (in time order)."""
    spans: list[Span] = []
    instants: list[Instant] = []
    open_: dict[tuple[str, int | None], float] = {}
    ends = {end: (start, kind) for start, (kind, end) in _PAIRS.items()}

    def close(key: tuple[str, int | None], t: float) -> None:
        start = open_.pop(key, None)
        if start is not None:
            spans.append(Span(start, t, key[1], key[0]))

    for m in sorted(marks, key=lambda m: m.t):
        if m.kind in _PAIRS:
            kind = _PAIRS[m.kind][0]
            open_.setdefault((kind, m.address), m.t)
        elif m.kind in ends:
            close((ends[m.kind][1], m.address), m.t)
        elif m.kind == "bus":
            if m.detail == "restored":
                close(("bus-faults", None), m.t)
            else:
                open_.setdefault(("bus-faults", None), m.t)
        elif m.kind == "master-stop":
            if _master_name(m.detail) == PRIMARY_MASTER:
                open_.setdefault(("no-master", None), m.t)
            else:
                close((EventKind.SECOND_MASTER, None), m.t)
        elif m.kind == "master-start":
            if _master_name(m.detail) == PRIMARY_MASTER:
                close(("no-master", None), m.t)
            else:
                open_.setdefault((EventKind.SECOND_MASTER, None), m.t)
        elif m.kind == "plug-in" and "NON-COMPLIANT" in m.detail:  # the simulator's car that ignores cuts
            instants.append(Instant(m.t, m.address, "plug-in-noncompliant"))
        elif m.kind in INSTANT_STYLES:
            instants.append(Instant(m.t, m.address, m.kind))
    for key in list(open_):
        close(key, max(t_end, open_[key]))
    spans.sort(key=lambda s: (s.start, s.kind))
    return spans, instants
