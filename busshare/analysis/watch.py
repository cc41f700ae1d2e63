"""Anomalies seen from the outside of a bus, as they happen (for `monitor`, reusable by `decode`).

A ``BusWatcher`` is fed every frame after the link layer (accepted messages
and rejected frames alike, with the status the link's receive policy gave them) and ``tick(t)`` now and then; it returns short
flags: E2E failures by kind, heartbeat gaps and silences, two masters, twin
servants, cuts never acked, and the sum of grants in force above the limit.
It knows only what is on the wire, so a cut counts at its old value until
its ack is seen, and a servant silent for ``silent_count_s`` counts at its
armed failsafe from then on (PROTOCOL.md rule 3): what the master must
assume too, so a correct installation is never flagged over its limit.
When the heartbeat limit drops (a moving budget, rule 9), the grants in force
may stay above it for the compliance window, no higher than they were at the
drop; above the new limit after it, they are flagged.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from ..core.config import Timing
from ..frames import Ack
from ..frames import FrameError
from ..frames import Heartbeat
from ..frames import Join
from ..frames import Message
from ..frames import MsgType
from ..frames import Release
from ..frames import Request
from ..frames import SetLimit
from ..frames import Status
from ..protocol.e2e import E2EStatus
from ..report.records import RecordKind
from ..report.records import TimeBase
from ..report.summaries import monitor_summary


@dataclass(frozen=True)
class Flag:
    t: float
    kind: str  # e2e, malformed, heartbeat-gap, master-silent, two-masters, twin-servants, unacked-cut, over-limit,
    #            missing-failsafe (SAFETY_KINDS: what `--strict` exits on)
    text: str


#: Flags that mean the installation broke a safety rule (or may: two masters, two units on one address),
#: as opposed to a damaged frame or a silence the servants are built to handle.  `decode --strict` and
#: `monitor --strict` exit 1 on them.
SAFETY_KINDS = frozenset({"over-limit", "unacked-cut", "missing-failsafe", "two-masters", "twin-servants"})
#: A STATUS sent this long past a servant's failsafe deadline must show the failsafe (the documented
#: bound is failsafe_timeout + tick_period; < failsafe_timeout + 0.5 s is the one stated for users).
FAILSAFE_SLACK_S = 0.5


def flag_line(flag: Flag, as_json: bool, times: TimeBase | None = None) -> str:
    """How `monitor` (CAN and Modbus) prints a flag: an ``anomaly`` record or `t !! kind: text`.

    ``times`` maps the flag's time (seconds since the monitor started) to the printed one.
    """
    t = flag.t if times is None else times(flag.t)
    if as_json:
        return json.dumps({"record": RecordKind.ANOMALY.value, "t": round(t, 6), "anomaly": flag.kind,
                           "detail": flag.text})
    return f"{t:.3f} !! {flag.kind}: {flag.text}"


def summary_line(frames: int, rejected: Mapping[str, int], anomalies: Mapping[str, int], *, as_json: bool,
                 link: Mapping[str, Any], link_text: str, start_t: float = 0.0, duration_s: float = 0.0) -> str:
    """The closing line of `monitor`; `link`/`link_text` carry the transport's own counts (JSON / text)."""
    if as_json:
        return json.dumps(monitor_summary(start_t, duration_s, frames, rejected, anomalies, link))
    bad = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none"
    flags = ", ".join(f"{k} {v}" for k, v in sorted(anomalies.items())) or "none"
    return f"-- {frames} frames; rejected: {bad}; anomalies: {flags}; {link_text}"


@dataclass
class _Cut:
    txn: int
    t: float
    old_da: int
    new_da: int


@dataclass
class BusWatcher:
    heartbeat_period: float = 0.2
    failsafe_timeout: float = 1.5
    reaction_allowance: float = 5.0
    counts: Counter[str] = field(default_factory=Counter)
    limit_da: int | None = None
    granted: dict[int, int] = field(default_factory=dict)  # address -> limit in force (0.1 A)
    _last_hb: float | None = None
    _silent_flagged: bool = False
    _masters: dict[tuple[int, int], float] = field(default_factory=dict)  # (id, epoch) -> last heartbeat
    _prev_master: tuple[int, int] | None = None
    _serials: dict[int, tuple[int, float]] = field(default_factory=dict)  # address -> (serial tag, t)
    _cuts: dict[int, _Cut] = field(default_factory=dict)  # (pending_cuts)
    _over: bool = False
    repeat_after: float = 5.0  # s: a repeating flag (same kind and source) is shown again only after this
    _shown: dict[tuple[str, object], float] = field(default_factory=dict)
    _twins: dict[int, float] = field(default_factory=dict)  # address -> last time two serials were seen
    servant_silent_after: float = 1.5  # Timing's: no frame this long and a servant is silent (rule 3)
    silent_margin: float = 1.5
    silenced: list[tuple[float, int, int]] = field(default_factory=list)  # (t, address, counted 0.1 A): drain it
    _heard: dict[int, float] = field(default_factory=dict)  # address -> last frame from that servant
    _silence_due: float = float("inf")  # no silence can have lasted silent_count_s before this
    #: frame types whose alive counter may skip on this bus without a loss: a Modbus servant's outbox keeps
    #: only its newest STATUS and REQUEST (an older one is stale), and the line loses nothing (a batch is
    #: sent again until confirmed), so there a skipped STATUS or REQUEST counter is no anomaly
    replaced_types: frozenset[MsgType] = frozenset()
    _hb_at: tuple[float, bool] | None = None  # the last heartbeat: (t, leaving)
    _restart_at: dict[int, float] = field(default_factory=dict)  # address -> its last set-limit or JOIN (rule 4)
    _fs_of_txn: dict[tuple[int, int], int] = field(default_factory=dict)  # (address, txn) -> failsafe it armed
    _fs_armed: dict[int, int] = field(default_factory=dict)  # address -> failsafe of its last acked set-limit
    _fs_pending: dict[int, int] = field(default_factory=dict)  # address -> highest failsafe sent since
    #: the line's timing (its ack_timeout and tick for the compliance window; ``reaction_allowance`` above wins)
    timing: Timing = field(default_factory=Timing)
    _drop_at: float = float("-inf")  # rule 9: when the heartbeat limit last dropped
    _drop_allow: int = 0  # the grants in force then: the most they may be within the compliance window
    _window_end: float = float("inf")  # the end of that window, until it has been checked

    @property
    def compliance_bound(self) -> float:
        """Rule 9: after the limit drops, what is in force fits it again within this (Timing's bound)."""
        return replace(self.timing, reaction_allowance=self.reaction_allowance).budget_compliance_bound

    @property
    def pending_cuts(self) -> dict[int, _Cut]:
        """Cuts sent and not acked yet, by address (kept until they time out)."""
        return self._cuts

    @property
    def silent_count_s(self) -> float:
        """No frame from a servant this long: the master counts it at its armed failsafe (rule 3)."""
        return self.servant_silent_after + self.failsafe_timeout + self.reaction_allowance + self.silent_margin

    def _flag(self, out: list[Flag], t: float, kind: str, text: str, key: object = None) -> None:
        """Count every occurrence; show one per ``key`` (when given) every ``repeat_after`` seconds."""
        self.counts[kind] += 1
        if key is not None:
            last = self._shown.get((kind, key))
            if last is not None and t - last < self.repeat_after:
                return
            self._shown[(kind, key)] = t
        out.append(Flag(t, kind, text))

    # -- frames ---------------------------------------------------------------

    def rejected(self, t: float, can_id: int, why: FrameError | E2EStatus) -> list[Flag]:
        out: list[Flag] = []
        if isinstance(why, FrameError) and why.kind == "crc":
            self._flag(out, t, "e2e", f"frame {can_id:#05x} failed E2E: wrong-crc ({why})")
        elif isinstance(why, FrameError):
            self._flag(out, t, "malformed", f"frame {can_id:#05x} rejected ({why.kind}): {why}")
        else:
            self._flag(out, t, "e2e", f"frame {can_id:#05x} failed E2E: {why.value}")
        return out

    def frame(self, t: float, msg: Message, status: E2EStatus = E2EStatus.OK) -> list[Flag]:
        out: list[Flag] = []
        self._silence(out, t)
        self._compliance(out, t)
        if isinstance(msg, Status | Join | Ack | Release | Request):
            self._hear(msg.address, t)
        if isinstance(msg, Heartbeat):
            self._heartbeat(out, t, msg)
        elif isinstance(msg, SetLimit):
            if msg.address not in self._heard:  # not heard (again) yet: silent from now on
                self._hear(msg.address, t)
            self._restart_at[msg.address] = t  # proves the master alive to that servant (rule 4)
            self._fs_of_txn[(msg.address, msg.txn)] = msg.failsafe_da
            self._fs_pending[msg.address] = max(self._fs_pending.get(msg.address, 0), msg.failsafe_da)
            old = self.granted.get(msg.address, 0)
            if msg.limit_da < old:
                self._cuts[msg.address] = _Cut(msg.txn, t, old, msg.limit_da)
            else:
                self.granted[msg.address] = msg.limit_da
                self._cuts.pop(msg.address, None)
            self._check_sum(out, t)
        elif isinstance(msg, Ack):
            armed = self._fs_of_txn.get((msg.address, msg.txn))
            if armed is not None:
                self._fs_armed[msg.address] = armed
                self._fs_pending.pop(msg.address, None)
            cut = self._cuts.get(msg.address)
            if cut is not None and cut.txn == msg.txn:
                del self._cuts[msg.address]
                self.granted[msg.address] = cut.new_da
                self._check_sum(out, t)
        elif isinstance(msg, Release):
            self.granted[msg.address] = 0
            self._cuts.pop(msg.address, None)
            self._check_sum(out, t)
        elif isinstance(msg, Status):
            self._servant_serial(out, t, msg.address, msg.serial_tag, msg.twin)
            self._failsafe_due(out, t, msg)
        elif isinstance(msg, Join):
            self._servant_serial(out, t, msg.address, msg.serial & 0x7FFF, False)
            self._restart_at[msg.address] = t  # a (re)boot: its failsafe clock starts now
        replaced = status is E2EStatus.OK_SOME_LOST and msg.TYPE in self.replaced_types
        # (a reboot is no e2e trouble: the link forgot the streams of a JOIN's sender and of a new master,
        # PROTOCOL.md 6.3, so those frames come as ok)
        if status in (E2EStatus.OK_SOME_LOST, E2EStatus.WRONG_SEQUENCE) and not replaced:
            address = getattr(msg, "address", 0)
            if t - self._twins.get(address, -1e9) > self.repeat_after:  # twins garble each other's counters
                self._flag(out, t, "e2e", f"{msg.TYPE.name} from {address}: {status.value}",
                           key=(int(msg.TYPE) << 6) | address)
        return out

    def _heartbeat(self, out: list[Flag], t: float, hb: Heartbeat) -> None:
        if self._last_hb is not None:
            gap = t - self._last_hb
            if gap > 2.5 * self.heartbeat_period:
                beyond = " (beyond the failsafe timeout)" if gap > self.failsafe_timeout else ""
                self._flag(out, t, "heartbeat-gap", f"heartbeat gap {gap:.3f} s{beyond}")
        self._last_hb = t
        self._silent_flagged = False
        self._hb_at = (t, hb.leaving)
        me = (hb.master_id, hb.epoch)
        window = 2.5 * self.heartbeat_period
        others = [m for m, seen in self._masters.items() if m != me and t - seen <= window]
        mine = self._masters.get(me)
        if others and mine is not None and any(self._masters[o] > mine for o in others):
            text = ", ".join(f"id {i} epoch {e}" for i, e in sorted([me, *others]))
            self._flag(out, t, "two-masters", f"two masters heartbeating: {text}", key=tuple(sorted([me, *others])))
        elif hb.second_master and self._prev_master != me:
            self._flag(out, t, "two-masters", f"master id {hb.master_id} reports a second master")
        elif self._prev_master is not None and self._prev_master != me and mine is None:
            # a new master (or a rebooted one): old grants are void, it relearns
            self.granted.clear()
            self._cuts.clear()
            self._fs_of_txn.clear()
            self._fs_armed.clear()
            self._fs_pending.clear()
            self._over = False
        if hb.leaving:
            self._silent_flagged = True  # a silence after this is announced, not an anomaly
            self._flag(out, t, "master-leaving", f"master {hb.master_id} epoch {hb.epoch} announces that it leaves: "
                       "servants fail safe now", key=me)
        self._masters[me] = t
        self._prev_master = me
        if hb.limit_da != self.limit_da:
            if self.limit_da is not None and hb.limit_da < self.limit_da:
                # rule 9: the cuts of a lowering are sent with it and take effect within the compliance window
                self._drop_at, self._window_end = t, t + self.compliance_bound
                self._drop_allow = self.in_force_da()
            self.limit_da = hb.limit_da
            self._check_sum(out, t)

    def _failsafe_due(self, out: list[Flag], t: float, st: Status) -> None:
        """Rule 4: a servant that heard no heartbeat (nor a set-limit) for failsafe_timeout since it booted,
        or heard the master leave, shows the failsafe flag in its STATUS (the stated bound: 0.5 s more)."""
        if st.failsafe or self._hb_at is None or self.twin_seen(st.address, t):
            return
        hb_t, leaving = self._hb_at
        other = self._restart_at.get(st.address, float("-inf"))
        if leaving and hb_t >= other:
            since, what, bound = hb_t, "the master announced it leaves", FAILSAFE_SLACK_S
        else:
            since, bound = max(hb_t, other), self.failsafe_timeout + FAILSAFE_SLACK_S
            what = "the last heartbeat" if hb_t >= other else "its last set-limit or boot"
        if t - since > bound:
            self._flag(out, t, "missing-failsafe", f"servant {st.address} not in failsafe {t - since:.3f} s after "
                       f"{what} (bound {bound:.2f} s)", key=st.address)

    def twin_seen(self, address: int, t: float) -> bool:
        """Two units answered on ``address`` lately: its frames are not one servant's."""
        return t - self._twins.get(address, -1e9) <= self.repeat_after

    def _servant_serial(self, out: list[Flag], t: float, address: int, tag: int, twin: bool) -> None:
        prev = self._serials.get(address)
        if prev is not None and prev[0] != tag and t - prev[1] <= 5.0:
            self._twins[address] = t
            pair = tuple(sorted((prev[0], tag)))
            self._flag(out, t, "twin-servants", f"two servants on address {address}: serial {pair[0]:#06x} and "
                       f"{pair[1]:#06x}", key=(address, pair))
        elif twin and (prev is None or prev[0] == tag) and self.counts["twin-servants"] == 0:
            self._flag(out, t, "twin-servants", f"servant {address} reports another unit on its address")
        self._serials[address] = (tag, t)

    def _hear(self, address: int, t: float) -> None:
        self._heard[address] = t
        self._silence_due = min(self._silence_due, t + self.silent_count_s)

    def _silence(self, out: list[Flag], t: float) -> None:
        """Rule 3: a servant silent for ``silent_count_s`` counts at min(what it had, its armed failsafe)."""
        if t <= self._silence_due:  # a lower bound of the next expiry: nothing to do (the usual case)
            return
        changed = False
        for address, heard in list(self._heard.items()):
            if t - heard <= self.silent_count_s:
                continue
            del self._heard[address]  # counted once; its next frame starts a new watch
            cut = self._cuts.get(address)
            had = max(self.granted.get(address, 0), 0 if cut is None else cut.old_da)
            armed = max(self._fs_armed.get(address, 0), self._fs_pending.pop(address, 0))
            counted = min(had, armed)
            self.silenced.append((t, address, counted))
            if cut is not None:  # still flagged if never acked, but no longer counted at its old value
                cut.old_da = min(cut.old_da, counted)
            if counted != self.granted.get(address, 0):
                self.granted[address] = counted
                changed = True
        self._silence_due = min(self._heard.values(), default=float("inf")) + self.silent_count_s
        if changed:
            self._check_sum(out, t)

    def in_force_da(self) -> int:
        """Sum of grants in force: a cut counts at its old value until acked."""
        total = sum(self.granted.values())
        return total + sum(c.old_da - self.granted.get(a, 0) for a, c in self._cuts.items())

    def _check_sum(self, out: list[Flag], t: float, why: str = "") -> None:
        if self.limit_da is None:
            return
        total = self.in_force_da()
        window = t < self._drop_at + self.compliance_bound
        over = total > (max(self.limit_da, self._drop_allow) if window else self.limit_da)
        if over and not self._over:
            text = f"grants in force {total / 10:.1f} A exceed the limit {self.limit_da / 10:.1f} A"
            if window:
                text += f" and rose above the {self._drop_allow / 10:.1f} A in force when it dropped"
            self._flag(out, t, "over-limit", text + why)
        self._over = over

    def _compliance(self, out: list[Flag], t: float) -> None:
        """Rule 9: once the window after a drop is over, the lowered limit holds."""
        if t >= self._window_end:
            self._window_end = float("inf")
            self._check_sum(out, t, f" {t - self._drop_at:.2f} s after it dropped (rule 9 allows "
                                    f"{self.compliance_bound:.2f} s)")

    # -- time -----------------------------------------------------------------

    def tick(self, t: float) -> list[Flag]:
        """Flags that only the passing of time raises: a silent master, a cut never acked."""
        out: list[Flag] = []
        self._silence(out, t)
        self._compliance(out, t)
        if self._last_hb is not None and not self._silent_flagged and t - self._last_hb > self.failsafe_timeout:
            self._silent_flagged = True
            self._flag(out, t, "master-silent",
                       f"no heartbeat for {t - self._last_hb:.3f} s: servants should be in failsafe")
        for address, cut in list(self._cuts.items()):
            if t - cut.t > self.compliance_bound:  # its ACK is due within the allowance, one re-send and a tick
                del self._cuts[address]
                self.granted[address] = min(cut.new_da, cut.old_da)  # stop counting it twice; it is flagged
                self._flag(out, t, "unacked-cut",
                           f"cut of servant {address} to {cut.new_da / 10:.1f} A (tx {cut.txn}) not acked after "
                           f"{t - cut.t:.1f} s")
        return out

