"""``decode --summary``: reconstruct an installation from its frames alone, with no configuration.

The anomaly rules (heartbeat gaps, two masters, twin servants, cuts never
acked, grants in force above the limit) are ``watch.BusWatcher``'s, shared
with ``monitor``; this module adds what only a whole capture can tell: who
was there, for how long, every over-limit episode from start to end, and how
the limit was known.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from ..core.events import EventKind
from ..frames import Ack
from ..frames import Heartbeat
from ..frames import Join
from ..frames import Message
from ..frames import Nack
from ..frames import Release
from ..frames import SetLimit
from ..frames import Status
from ..protocol.e2e import E2EStatus
from ..protocol.kinds import E2E_KINDS
from ..protocol.kinds import FOREIGN_KINDS
from ..protocol.kinds import MALFORMED_KINDS
from ..protocol.pilot import PilotState
from ..report.timeline import Mark
from ..report.timeline import Sample
from ..report.timeline import Timeline
from .decode import CaptureDecoder
from .decode import Decoded
from .watch import BusWatcher
from .watch import Flag


@dataclass
class ServantSeen:
    address: int
    serials: set[int] = field(default_factory=set)  # 15-bit tags from status and join
    full_serials: set[int] = field(default_factory=set)  # 32-bit, from join
    max_da: int | None = None
    frames: int = 0
    first_t: float = 0.0
    last_t: float = 0.0
    pilot: PilotState | None = None
    offered_da: int = 0
    measured_da: int | None = None
    metered: bool = False  # some STATUS or ACK carried a meter reading (a meterless unit sends none)
    reports: int = 0  # STATUS and ACK frames: a unit none of whose reports has a reading has no meter
    peak_offered_da: int = 0
    peak_measured_da: int = 0
    charge_das: float = 0.0  # measured current integrated over time, 0.1 A * s
    failsafe: bool = False
    failsafe_entries: int = 0
    last_status_t: float | None = None
    meas_t: float | None = None
    status_gaps: list[tuple[float, float]] = field(default_factory=list)
    status_intervals: list[float] = field(default_factory=list)


@dataclass
class CaptureSummary:
    """Feed it every ``Decoded`` frame in capture order, then ask for ``result``."""

    limit_da: int | None = None  # from --limit: used only when no heartbeat carries one
    watcher: BusWatcher = field(default_factory=BusWatcher)
    servants: dict[int, ServantSeen] = field(default_factory=dict)
    masters: dict[tuple[int, int], list[float]] = field(default_factory=dict)  # (id, epoch) -> [first, last, n]
    heartbeat_limits: list[tuple[float, int]] = field(default_factory=list)  # changes of the heartbeat limit
    hb_intervals: list[float] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    failsafe_events: list[tuple[float, int, int]] = field(default_factory=list)  # t, address, offered
    leaving: list[float] = field(default_factory=list)
    nacks: Counter[str] = field(default_factory=Counter)
    in_force: list[tuple[float, int]] = field(default_factory=list)  # changes of the grants in force
    peak_offered_da: int = 0
    peak_drawn_da: int = 0
    samples: list[Sample] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    timestamps: bool = False
    _last_hb: float | None = None
    _after_announce: bool = False
    _last_tick: float = float("-inf")

    def frame(self, d: Decoded) -> None:
        t = 0.0 if d.t is None else d.t
        self.timestamps = self.timestamps or d.t is not None
        w = self.watcher
        before = w.in_force_da()
        if t - self._last_tick >= 0.05:  # the watcher's clock-driven checks, at the tick period
            self._last_tick = t
            self._flags(w.tick(t))
        self._message_frame(t, d)
        self._silenced()
        after = w.in_force_da()
        if after != before or not self.in_force:
            self.in_force.append((t, after))

    def _message_frame(self, t: float, d: Decoded) -> None:
        w = self.watcher
        if d.message is None:
            assert d.bad is not None
            if d.bad.kind in ("crc", *MALFORMED_KINDS):
                self._flags(w.rejected(t, d.can_id, _why(d)))
            return
        msg = d.message
        assert d.status is not None
        if not d.status.accepted:  # a duplicate is not acted on (wrong-sequence is, and flagged: PROTOCOL.md 6.3)
            self._flags(w.rejected(t, d.can_id, d.status))
            if isinstance(msg, Status | Join):  # but a different serial is a second unit, not a copy
                self.servants.setdefault(msg.address, ServantSeen(msg.address, first_t=t)).serials.add(
                    msg.serial_tag if isinstance(msg, Status) else msg.serial & 0x7FFF)
            return
        if isinstance(msg, Heartbeat):
            self._heartbeat_period(t, msg.limit_da)
        self._flags(w.frame(t, msg, d.status))
        self._message(t, msg)

    def _silenced(self) -> None:
        """A servant silent long enough to count at its failsafe (rule 3) is shown there too: a correct one
        fell to it on its own (it heard no master, or none confirmed it), and its last STATUS is stale."""
        for t, address, counted in self.watcher.silenced:
            s = self.servants.get(address)
            if s is None:
                continue
            measured = None if s.measured_da is None else min(s.measured_da, counted)
            if s.offered_da > counted or measured != s.measured_da:
                self.marks.append(Mark(t, address, "silent", f"not heard for {self.watcher.silent_count_s:.1f} s: "
                                       f"counted at its failsafe {counted / 10:.1f} A"))
                self._offer(t, s, min(s.offered_da, counted), measured, s.pilot or PilotState.A)
        self.watcher.silenced.clear()

    def _heartbeat_period(self, t: float, limit_da: int) -> None:
        """No config: gaps are judged against this master's own period (the smallest interval
        until five are known, then their median), not the default.

        A heartbeat announcing a changed limit goes out off the schedule (rule 9): the intervals on either
        side of it are not samples of the period."""
        announced = bool(self.heartbeat_limits) and self.heartbeat_limits[-1][1] != limit_da
        skip, self._after_announce = announced or self._after_announce, announced
        if self._last_hb is None or skip or t <= self._last_hb:
            return  # (a record back in time, in a reordered capture, is no sample of the period either)
        self.hb_intervals.append(t - self._last_hb)
        n = len(self.hb_intervals)
        if n <= 32:
            period = min(self.hb_intervals) if n < 5 else statistics.median(self.hb_intervals)
            self.watcher.heartbeat_period = max(period, 1e-3)

    def _flags(self, flags: list[Flag]) -> None:
        for f in flags:
            self.flags.append(f)
            if f.kind not in ("e2e", "malformed"):
                self.marks.append(Mark(f.t, None, f.kind, f.text))

    def _message(self, t: float, msg: Message) -> None:
        if isinstance(msg, Heartbeat):
            key = (msg.master_id, msg.epoch)
            seen = self.masters.setdefault(key, [t, t, 0])
            seen[1] = t
            seen[2] += 1
            self._last_hb = t
            if not self.heartbeat_limits or self.heartbeat_limits[-1][1] != msg.limit_da:
                self.heartbeat_limits.append((t, msg.limit_da))
            if msg.leaving:
                self.leaving.append(t)
            return
        if isinstance(msg, Nack):
            self.nacks[msg.code.name.lower().replace("_", "-")] += 1
            return
        if isinstance(msg, SetLimit):
            return
        s = self.servants.get(msg.address)
        if s is None:
            s = self.servants[msg.address] = ServantSeen(msg.address, first_t=t)
        s.frames += 1
        s.last_t = t
        if isinstance(msg, Join):
            s.full_serials.add(msg.serial)
            s.serials.add(msg.serial & 0x7FFF)
            s.max_da = msg.max_da
        elif isinstance(msg, Release):
            self._offer(t, s, 0, s.measured_da, s.pilot or PilotState.A)
        elif isinstance(msg, Ack):
            # The servant applied the limit before it acked (a cut: once its car slowed down), so its
            # offer is the acked one from now on, whatever its last STATUS said: statuses come every
            # status period (once a poll cycle or slower on Modbus), and a stale one would count a cut
            # unit at its old current next to the newcomer it made room for.
            measured = s.measured_da if msg.measured_da is None else msg.measured_da
            s.reports += 1
            self._offer(t, s, msg.applied_da, measured, s.pilot or PilotState.A)
        elif isinstance(msg, Status):
            s.serials.add(msg.serial_tag)
            if s.last_status_t is not None:
                gap = t - s.last_status_t
                s.status_intervals.append(gap)
            s.last_status_t = t
            if msg.failsafe and not s.failsafe:
                s.failsafe_entries += 1
                self.failsafe_events.append((t, msg.address, msg.offered_da))
                self.marks.append(Mark(t, msg.address, EventKind.FAILSAFE, f"offers {msg.offered_da / 10:.1f} A"))
            elif s.failsafe and not msg.failsafe:  # the plot shades the failsafe until here
                self.marks.append(Mark(t, msg.address, EventKind.FAILSAFE_END, f"offers {msg.offered_da / 10:.1f} A"))
            s.failsafe = msg.failsafe
            if s.measured_da is not None and s.meas_t is not None:
                s.charge_das += s.measured_da * max(0.0, t - s.meas_t)
            s.meas_t = t
            s.reports += 1
            self._offer(t, s, msg.offered_da, msg.measured_da, msg.pilot)

    def _offer(self, t: float, s: ServantSeen, offered: int, measured: int | None, pilot: PilotState) -> None:
        changed = (offered, measured, pilot) != (s.offered_da, s.measured_da, s.pilot) or not self.samples
        s.offered_da, s.measured_da, s.pilot = offered, measured, pilot
        s.metered = s.metered or measured is not None
        s.peak_offered_da = max(s.peak_offered_da, offered)
        if measured is not None:
            s.peak_measured_da = max(s.peak_measured_da, measured)
        if changed:
            self.samples.append(Sample(t, s.address, offered, measured, pilot))
        total_offered = sum(x.offered_da for x in self.servants.values())
        total_drawn = sum(x.measured_da or 0 for x in self.servants.values())
        self.peak_offered_da = max(self.peak_offered_da, total_offered)
        self.peak_drawn_da = max(self.peak_drawn_da, total_drawn)

    # ------------------------------------------------------------------ results

    def limit(self) -> tuple[int | None, str]:
        """(limit in 0.1 A, how it is known)."""
        if self.heartbeat_limits:
            values = sorted({v for _, v in self.heartbeat_limits})
            how = "from the master heartbeat"
            if len(values) > 1:
                how += f" (it changed: {', '.join(f'{v / 10:.1f}' for v in values)} A; the check uses the one in force)"
            return self.heartbeat_limits[0][1], how
        if self.limit_da is not None:
            return self.limit_da, "from --limit (no master heartbeat in the capture)"
        peak = max((v for _, v in self.in_force), default=0)
        if peak:
            return None, (f"unknown: no master heartbeat in the capture; at least {peak / 10:.1f} A "
                          "(the largest sum of grants in force) if the master is correct; pass --limit A to check")
        return None, "unknown: no master heartbeat and no grants in the capture"

    def over_limit(self, end: float = float("inf")) -> tuple[list[dict[str, float]], dict[str, float] | None]:
        """Every stretch of time up to ``end`` (the capture's) in which the grants in force exceeded the limit
        in force; and the one still open at ``end`` inside a compliance window, if any.

        After the heartbeat limit drops (rule 9) they may stay above it for the compliance window, no higher
        than they were at the drop: a stretch starts at the window's end if they are still above it then.  A
        capture that stops inside the window (before the cuts could be acked) cannot tell: that stretch is
        younger than the bound, no violation, and returned apart.
        """
        base, _ = self.limit()
        if base is None:
            return [], None
        bound = self.watcher.compliance_bound
        # the points at which the sum is judged: its changes, the limit's changes (a raise can end a stretch),
        # and the end of each window after a drop
        points = [(t, 1, v) for t, v in self.in_force]
        points += [(t, 2, 0) for t, _ in self.heartbeat_limits[1:]]
        points += [(t + bound, 2, 0) for (_, before), (t, v) in zip(self.heartbeat_limits, self.heartbeat_limits[1:],
                                                                     strict=False) if v < before]
        points = sorted(p for p in points if p[0] <= end)  # what comes after the capture is not known
        changes = self.heartbeat_limits
        episodes: list[dict[str, float]] = []
        current: dict[str, float] | None = None
        i = 0
        limit, total, allow, until = base, 0, 0, float("-inf")
        for t, kind, value in points:
            while i < len(changes) and changes[i][0] <= t:
                if changes[i][1] < limit:  # a drop: what was in force then may stay for the window
                    allow, until = total, changes[i][0] + bound
                limit = changes[i][1]
                i += 1
            if kind == 1:
                total = value
            if total > (max(limit, allow) if t < until else limit):
                if current is None:
                    current = {"start": t, "end": t, "peak_a": total / 10, "limit_a": limit / 10}
                    episodes.append(current)
                current["peak_a"] = max(current["peak_a"], total / 10)
            elif current is not None:
                current["end"] = t
                current = None
        if current is not None:
            current["end"] = float("nan")  # still over at the end of the capture
        young = None
        if current is None and end < until and total > limit:  # over the lowered limit, its window not over
            young = {"start": until - bound, "peak_a": total / 10, "limit_a": limit / 10, "bound_s": round(bound, 3)}
        return episodes, young

    def heartbeat_period(self) -> float | None:
        return statistics.median(self.hb_intervals) if self.hb_intervals else None

    def timeline(self) -> Timeline:
        limit, _ = self.limit()
        if limit is None:
            limit = max((v for _, v in self.in_force), default=0)
        moving = list(self.heartbeat_limits) if len(self.heartbeat_limits) > 1 else []
        return Timeline(limit, list(self.samples), list(self.marks), budget=moving)

    def result(self, dec: CaptureDecoder, source: str = "") -> dict[str, Any]:
        end = dec.last_t if dec.last_t is not None else 0.0
        self._flags(self.watcher.tick(end))
        # cuts still waiting for their ack when the capture stops (BusWatcher keeps them until they time out)
        # (younger than the compliance bound, or tick(end) would have flagged them: no finding, the capture
        # stopped before their acks were due)
        pending = [
            f"cut of servant {a} to {c.new_da / 10:.1f} A (tx {c.txn}) sent {end - c.t:.1f} s before the capture "
            f"ended: no ack seen yet (due within {self.watcher.compliance_bound:.2f} s)"
            for a, c in sorted(self.watcher.pending_cuts.items())
        ]
        episodes, young = self.over_limit(end)
        limit, how = self.limit()
        flags_by_kind: dict[str, list[Flag]] = {}
        for f in self.flags:
            flags_by_kind.setdefault(f.kind, []).append(f)
        t0 = dec.first_t or 0.0

        def rel(t: float) -> float:
            return round(t - t0, 3)

        servants: list[dict[str, Any]] = []
        for a in sorted(self.servants):
            s = self.servants[a]
            gaps = _gaps(s.status_intervals)
            servants.append({
                "address": a,
                "serials": [f"{x:#06x}" for x in sorted(s.serials)],
                "join_serials": sorted(s.full_serials),
                "max_a": None if s.max_da is None else s.max_da / 10,
                "frames": s.frames,
                "first_s": rel(s.first_t), "last_s": rel(s.last_t),
                "pilot": None if s.pilot is None else s.pilot.name,
                "offered_a": s.offered_da / 10,
                "peak_offered_a": s.peak_offered_da / 10,
                "meter": s.metered if s.reports else None,  # None: no STATUS or ACK seen
                "peak_measured_a": s.peak_measured_da / 10 if s.metered else None,
                "charge_ah": round(s.charge_das / 36000, 3) if s.metered else None,
                "failsafe_entries": s.failsafe_entries,
                "status_gaps": gaps,
            })
        period = self.heartbeat_period()
        e2e = {k: dec.counts[k] for k in E2E_KINDS if dec.counts[k]}
        unacked = [f"{rel(f.t):.3f} s  {f.text}" for f in flags_by_kind.get("unacked-cut", [])]
        return {
            "source": source,
            "records": dec.records,
            # earliest to latest: a reordered capture's last record is not its end (times stay relative to the first)
            "first_t": dec.first_t, "duration_s": None if dec.span_s is None else round(dec.span_s, 3),
            "timestamps": self.timestamps,
            "timestamps_backwards": {"count": dec.backwards, "largest_s": round(dec.backwards_largest_s, 3),
                                     "first_record": dec.backwards_first},
            "masters": [
                {"master_id": k[0], "epoch": k[1], "heartbeats": int(v[2]), "first_s": rel(v[0]), "last_s": rel(v[1])}
                for k, v in self.masters.items()
            ],
            "heartbeat_period_s": None if period is None else round(period, 4),
            "limit_a": None if limit is None else limit / 10,
            "limit_source": how,
            # the effective limit over time (rule 9: a moving budget); one entry for a fixed limit
            "limit_changes": [{"t_s": rel(t), "limit_a": v / 10} for t, v in self.heartbeat_limits],
            "servants": servants,
            "heartbeat_gaps": [{"t_s": rel(f.t), "text": f.text} for f in flags_by_kind.get("heartbeat-gap", [])]
            + [{"t_s": rel(f.t), "text": f.text} for f in flags_by_kind.get("master-silent", [])],
            "master_leaving_s": [rel(t) for t in self.leaving],
            "failsafe_entries": [{"t_s": rel(t), "address": a, "offered_a": o / 10} for t, a, o in self.failsafe_events],
            "missing_failsafe": [f"{rel(f.t):.3f} s  {f.text}" for f in flags_by_kind.get("missing-failsafe", [])],
            "e2e_errors": e2e,
            "some_lost": dec.counts["ok-some-lost"],
            "wrong_sequence": dec.counts["wrong-sequence"],
            "malformed": {k: dec.counts[k] for k in MALFORMED_KINDS if dec.counts[k]},
            "not_protocol": {k: dec.counts[k] for k in FOREIGN_KINDS if dec.counts[k]},
            "unreadable": dec.counts["unreadable"],
            "cuts_never_acked": unacked,
            "cuts_awaiting_ack": pending,  # not findings
            "duplicate_addresses": [f"{rel(f.t):.3f} s  {f.text}" for f in flags_by_kind.get("twin-servants", [])]
            + [f"servant {s['address']}: {len(s['serials'])} units answer (serial tags {', '.join(s['serials'])})"
               for s in servants if len(s["serials"]) > 1],
            "second_master": [f.text for f in flags_by_kind.get("two-masters", [])]
            + ([f"{len({k[0] for k in self.masters})} master ids heartbeating"]
               if len({k[0] for k in self.masters}) > 1 else []),
            "nacks": dict(self.nacks),
            "over_limit": [
                {"start_s": rel(e["start"]), "end_s": None if e["end"] != e["end"] else rel(e["end"]),
                 "peak_a": e["peak_a"], "limit_a": e["limit_a"]}
                for e in episodes
            ],
            # grants above a lowered limit when the capture ended inside its compliance window: not a finding
            "over_limit_at_end": None if young is None else {
                "start_s": rel(young["start"]), "peak_a": young["peak_a"], "limit_a": young["limit_a"],
                "bound_s": young["bound_s"]},
            "peak_in_force_a": max((v for _, v in self.in_force), default=0) / 10,
            "peak_offered_a": self.peak_offered_da / 10,
            "peak_drawn_a": self.peak_drawn_da / 10,
        }


#: The summary's lists that are safety findings (`decode --strict` exits 1 when one is not empty).
FINDINGS = {"over_limit": "over the limit", "cuts_never_acked": "cuts never acked",
            "missing_failsafe": "missing failsafe", "second_master": "second master",
            "duplicate_addresses": "duplicate addresses"}


def findings(r: dict[str, Any]) -> dict[str, int]:
    """What a summary found against the safety rules: {title: count}, only the non-empty ones."""
    return {title: len(r[key]) for key, title in FINDINGS.items() if r.get(key)}


def _why(d: Decoded) -> Any:
    from ..frames import FrameError

    assert d.bad is not None
    return E2EStatus.WRONG_CRC if d.bad.kind == "crc" else FrameError(d.bad.kind, d.bad.reason)


def _gaps(intervals: list[float]) -> int:
    """Status gaps: intervals over 3x the usual one (and over 1 s)."""
    if len(intervals) < 3:
        return 0
    usual = statistics.median(intervals)
    return sum(1 for x in intervals if x > max(3 * usual, 1.0))


def _list(title: str, items: list[str], none: str = "none") -> str:
    if not items:
        return f"{title}: {none}"
    return f"{title}: {len(items)}\n" + "\n".join(f"    {x}" for x in items)


def format_summary(r: dict[str, Any]) -> str:
    out = []
    if r["duration_s"] is None:
        out.append(f"capture {r['source']}: {r['records']} records, no timestamps (time-based checks skipped)")
    else:
        out.append(f"capture {r['source']}: {r['records']} records over {r['duration_s']:.1f} s")
    back = r["timestamps_backwards"]
    if back["count"]:
        times = "once" if back["count"] == 1 else f"{back['count']} times"
        out.append(f"timestamps go back {times} (by up to {back['largest_s']:.3f} s, first at record "
                   f"{back['first_record']}): a merged or reordered capture? Records are judged in file order, "
                   "so the time-based findings below may be wrong; sort it by time first")
    if r["masters"]:
        ms = "; ".join(f"id {m['master_id']} epoch {m['epoch']} ({m['heartbeats']} heartbeats, "
                       f"{m['first_s']:.1f}-{m['last_s']:.1f} s)" for m in r["masters"])
        period = r["heartbeat_period_s"]
        out.append(f"master: {ms}" + (f", every {period:.3f} s" if period else ""))
    else:
        out.append("master: no heartbeat in the capture")
    limit = "unknown" if r["limit_a"] is None else f"{r['limit_a']:.1f} A"
    out.append(f"limit: {limit} ({r['limit_source']})")
    if len(r["limit_changes"]) > 1:
        out.append("limit over time: " + ", ".join(f"{c['limit_a']:.1f} A from {c['t_s']:.3f} s"
                                                   for c in r["limit_changes"]))
    out.append(f"servants seen: {len(r['servants'])}")
    for s in r["servants"]:
        serial = ",".join(s["serials"]) or "?"
        mx = "" if s["max_a"] is None else f" max {s['max_a']:.1f} A"
        out.append(
            f"  {s['address']:>2}  serial {serial}{mx}  {s['frames']} frames  pilot {s['pilot'] or '?'}  "
            f"offered {s['offered_a']:.1f} A (peak {s['peak_offered_a']:.1f})  "
            + (f"drawn peak {s['peak_measured_a']:.1f} A  {s['charge_ah']:.2f} Ah" if s["meter"]
               else "no meter" if s["meter"] is False else "drawn unknown (no STATUS seen)")
            + (f"  failsafe x{s['failsafe_entries']}" if s["failsafe_entries"] else "")
            + (f"  status gaps {s['status_gaps']}" if s["status_gaps"] else "")
        )
    out.append(_list("heartbeat gaps", [f"{g['t_s']:.3f} s  {g['text']}" for g in r["heartbeat_gaps"]]))
    if r["master_leaving_s"]:
        out.append(f"master leaving announced at: {', '.join(f'{t:.3f} s' for t in r['master_leaving_s'])}")
    out.append(_list("failsafe entries",
        [f"{e['t_s']:.3f} s  servant {e['address']} at {e['offered_a']:.1f} A" for e in r["failsafe_entries"]]))
    out.append(_list("missing failsafe", r["missing_failsafe"]))
    e2e = ", ".join(f"{k} {n}" for k, n in r["e2e_errors"].items()) or "none"
    accepted = [f"{r['some_lost']} frames after a small loss"] if r["some_lost"] else []
    accepted += [f"{r['wrong_sequence']} out of sequence, acted on"] if r["wrong_sequence"] else []
    out.append(f"E2E errors: {e2e}" + (f" (and {', '.join(accepted)})" if accepted else ""))
    other = {**r["malformed"], **r["not_protocol"]}
    if r["unreadable"]:
        other["unreadable"] = r["unreadable"]
    out.append("other bad records: " + (", ".join(f"{k} {n}" for k, n in other.items()) or "none"))
    out.append(_list("cuts never acked", r["cuts_never_acked"]))
    if r["cuts_awaiting_ack"]:
        out.append(_list("cuts awaiting their ack at the end of the capture (no finding)", r["cuts_awaiting_ack"]))
    out.append(_list("duplicate addresses", r["duplicate_addresses"]))
    out.append(_list("second master", r["second_master"]))
    if r["nacks"]:
        out.append("nacks: " + ", ".join(f"{k} {n}" for k, n in r["nacks"].items()))
    over = [f"{e['start_s']:.3f}-{'end' if e['end_s'] is None else format(e['end_s'], '.3f')} s  "
            f"grants {e['peak_a']:.1f} A > limit {e['limit_a']:.1f} A" for e in r["over_limit"]]
    if r["limit_a"] is None:
        out.append("over the limit: cannot tell (limit unknown)")
    else:
        out.append(_list("over the limit", over))
    young = r["over_limit_at_end"]
    if young is not None:
        out.append(f"open at the end of the capture, younger than the bound (no finding): grants "
                   f"{young['peak_a']:.1f} A > limit {young['limit_a']:.1f} A lowered at {young['start_s']:.3f} s, "
                   f"allowed {young['bound_s']:.2f} s to follow (rule 9)")
    out.append(f"peaks: grants in force {r['peak_in_force_a']:.1f} A, offered {r['peak_offered_a']:.1f} A, "
               f"drawn {r['peak_drawn_a']:.1f} A")
    return "\n".join(out)
