"""The master's sans-IO state machine: who may offer how much, with cut-then-grant.

The caller feeds it accepted messages (``receive``) and time (``tick``) and
sends what each call returns, in order.  The master never reads a clock: every
call and every query (``committed_da``, ``servants``, ``view``,
``second_master``) takes ``now``.  The rules and their reasons are
docs/PROTOCOL.md section 8; the words are its words (a *twin* is a second
unit on one address, a *second master* another master on the bus).

State machines (PROTOCOL.md 8.5)
--------------------------------
The master:  learning --every servant reported (+ a reaction allowance after a
             failsafe STATUS), or learning_timeout--> running --shutdown()--> left.
             A second master heard: only cuts until conflict_hold after it.
Per servant (``_Slot``), stored and moved by the handlers and ``_timers``:

* ``Presence``: UNKNOWN --STATUS--> HEARD --servant_silent_after--> SILENT
  --any frame--> HEARD; UNKNOWN --learning over--> ABSENT --STATUS--> HEARD.
* ``Follow``: FOLLOWING --ACK of this master's set-limit--> CONFIRMED, and
  back to FOLLOWING on silence, a JOIN, a failsafe STATUS, an offer above or
  below its count, a twin, or the second master gone.
* twin: ``twin_extra`` > 0 from a sign of the twin until conflict_hold after
  the last one, once its address is cut to 0 and acked.
* at most one outstanding set-limit (``_Pending``), re-sent every ack_timeout.
* ``Pause``: NONE --its car in B while offered--> PAUSED --reclaim_after--> PARKED;
  PAUSED or PARKED --the car charges (C/D), wants nothing or leaves--> NONE.

``ServantView.state`` (a ``ServantState``) is read from these, plus what the
timers say at ``now`` (unanswering, failsafe) and the demand (idle, waiting,
charging).  Allocation runs when a message needs it (``_dispatch`` decides:
all but a STATUS that changed nothing allocation reads, or, after a pass that
settled everything (``_settled_at``: it dropped and reclaimed nothing and
stopped no due reclaim timer, so one more pass would do nothing), nothing as a
pass reads it but what only moves its reclaim timer, which it moves itself
(``_status_allocates``); after such a pass, an ACK that leaves its slot as the
pass planned it and frees no raise it held back (``_ack_allocates``), a REQUEST
that changes no ``want`` (``_request_allocates``), and a sign of a second
master already heard (``_second_master_allocates``)) or a timer is due.  Counts are
kept between calls and recounted for the slots a call touched, or all of them
once time reaches a point where one can change (``_count``).

Where each rule of PROTOCOL.md 8.2 is enforced
----------------------------------------------
rule 1  never over-commit: ``_Slot.counted`` (max of acked and pending, an
        offer above it, a leaving car), ``_Ledger.can_grant`` (a raise only if
        it fits), ``_cuts`` (cuts always sent), ``_supersede``, ``_over_offer``,
        ``_Pending.resend_at``; ``committed_da`` is the sum.
rule 2  a cut acked once it took effect: in the servant; here ``_on_release``
        keeps counting a car going down for a reaction allowance.
rule 3  silent servant: ``_timers`` (Presence.SILENT), ``_Slot.counted`` and
        ``_Slot.deaf`` (the standalone hedge), ``_targets`` (cut to its
        failsafe), ``_heard`` (back from silence: a raise is a grant).
rule 4  master silent -> failsafe: in the servant; here ``_heartbeat`` (heard
        bits) and ``shutdown`` (the leaving heartbeat).
rule 5  master start: ``learning`` and ``_timers``, ``_learn``, ``shutdown``.
rule 6  conflicts: ``_twin``, ``_check_tag``, ``_stranger``,
        ``_on_second_master``, ``_cuts`` (only cuts while a second master).
rule 7  local limits: ``_on_ack`` counts min(applied, sent); a servant not
        heard yet counts at its max.
rule 8  integrity: ``protocol/link.py``; the master sees accepted messages only.
rule 9  a moving limit: ``mains_reading``, ``mains_failed``, ``setpoint``, ``clear_setpoint`` and ``tick``
        feed the budget policy; ``_take_budget`` makes its limit ``limit_da`` (the ledger's and the
        heartbeat's) and the allocation runs in the same step, so ``_cuts`` go out at once and what is
        counted fits within ``Timing.budget_compliance_bound``; ``_announce`` sends a changed limit in
        a heartbeat ahead of that step's set-limits; ``_ev_draws`` is the EV estimate.
8.3     failsafe currents: ``_targets`` (assignment), ``_Ledger`` (the sum, against ``_floor``: the
        limit, or a budget's fallback).
8.6     allocation: ``core/allocation.py``, called from ``_targets``; a paused car: ``_pause``,
        ``_Slot.demand`` (parked: its minimum, from leftovers only), ``_targets`` (parked: failsafe 0).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from enum import StrEnum

from .core import allocation
from .core.allocation import Demand
from .core.budget import Budget
from .core.budget import BudgetPolicy
from .core.budget import EvDraw
from .core.budget import MainsReading
from .core.config import Config
from .core.config import ServantConfig
from .core.config import Timing
from .core.events import Event
from .core.events import EventKind
from .core.events import EventLog
from .core.setpoint import LimitSource
from .frames import HEARD_PAGE_SIZE
from .frames import HEARTBEAT_SEQ_MODULO
from .frames import MASTER_ADDRESS
from .frames import MAX_EVSE_DA
from .frames import MAX_MASTER_ID
from .frames import MIN_OFFER_DA
from .frames import Ack
from .frames import Heartbeat
from .frames import Join
from .frames import Message
from .frames import Nack
from .frames import NackCode
from .frames import Release
from .frames import ReleaseReason
from .frames import Request
from .frames import SetLimit
from .frames import Status
from .frames import heard_page
from .frames import serial_tag
from .protocol.pilot import PilotState
from .protocol.pilot import clamp_da

INF = float("inf")
_new_tuple = tuple.__new__


def _a(da: int) -> str:
    return f"{da / 10:.1f} A"


class Presence(Enum):
    """What the master has heard of a servant (8.5); the handlers and timers move it."""

    UNKNOWN = "unknown"  # no STATUS since this master started, learning: counted at its max (rule 5, rule 7)
    ABSENT = "absent"  # no STATUS, learning over: counted at its standalone failsafe (rule 5)
    HEARD = "heard"  # it reports: it takes part in the allocation unless unanswering or contested
    SILENT = "silent"  # reported, then nothing for servant_silent_after (rule 3)


_KNOWN = (Presence.HEARD, Presence.SILENT)  # (a tuple: found by identity, no Enum hash)
# positions in ``_Slot.inputs_as_read`` of what, with the car neither in B nor paused, only the reclaim step reads
# (``Master._reclaim_reads_only``): the pilot (but whether a car is there), whether it offers, the draw
_AS_READ_PILOT, _AS_READ_OFFERED, _AS_READ_DRAW = 6, 12, 16
_RECLAIM_READS = (_AS_READ_PILOT, _AS_READ_OFFERED, _AS_READ_DRAW)


class Follow(Enum):
    """Whether the servant follows this master's set-limit (8.4 and 8.5).

    One that re-joins, reports failsafe, offers more (rule 1) or less than counted, comes back from silence,
    gets a twin or sees the second master gone (rule 6) is following again, and is confirmed with a SET_LIMIT.
    """

    FOLLOWING = "following"  # to be (re)confirmed with a SET_LIMIT
    CONFIRMED = "confirmed"  # acked a set-limit of this master and still following it


class Pause(Enum):
    """A plugged-in car that stopped charging while offered current (8.5): its own timer, balancing, full.

    A J1772 car resumes only on a PWM offer, so it is never taken as finished: it keeps its allocation for a
    grace of ``reclaim_after`` (short pauses cause no churn), then is parked at its minimum (8.6).
    """

    NONE = "none"  # charging, waiting for current, or no car
    PAUSED = "paused"  # in B while offered, for less than reclaim_after: keeps its allocation
    PARKED = "parked"  # paused longer: its minimum, after every other car, from leftovers only; failsafe 0


# the hot paths (every frame) compare with these: in Python 3.11 each read of Presence.SILENT costs ~45 ns
_HEARD, _SILENT, _CONFIRMED = Presence.HEARD, Presence.SILENT, Follow.CONFIRMED
_NO_PAUSE, _PAUSED, _PARKED = Pause.NONE, Pause.PAUSED, Pause.PARKED
_B = PilotState.B


class ServantState(StrEnum):
    """The state ``ServantView`` shows (8.5): the stored ones, and those read from the timers at ``now``."""

    UNKNOWN = "unknown"
    ABSENT = "absent"
    SILENT = "silent"  # rule 3
    UNANSWERING = "unanswering"  # heard, but not acking a set-limit (rule 3): treated like silent
    FAILSAFE = "failsafe"  # reports failsafe, not yet re-confirmed (rule 4)
    TWIN = "twin"  # a twin on its address (rule 6)
    IDLE = "idle"
    WAITING = "waiting"  # demand, paused by shortage
    CHARGING = "charging"
    PAUSED = "paused"  # its car in B while offered: keeps its allocation for reclaim_after (8.5)
    PARKED = "parked"  # paused longer: its minimum from leftovers (or 0 while none), failsafe 0 (8.6)


# the states of servants this master cannot steer now (``Master.unreachable_da``): rule 3 and 6 hold them, not
# its set-limits; ``Master._state`` tells them before it reads any demand, ``_Slot.unreachable`` says which
UNREACHABLE_STATES = frozenset((ServantState.TWIN, ServantState.UNKNOWN, ServantState.ABSENT, ServantState.SILENT,
                                ServantState.UNANSWERING, ServantState.FAILSAFE))


@dataclass(frozen=True)
class ServantView:
    """A read-only snapshot of one servant, as the master accounts for it (for UIs and tests)."""

    address: int
    state: ServantState
    committed_da: int  # counted against the limit now (rule 1)
    limit_da: int  # last acked (or learned) limit
    pending_da: int | None  # limit of the unacked set-limit, if any
    demand_da: int  # what it could use now (0: nothing)
    failsafe_da: int  # armed failsafe as counted (max of acked and pending)
    offered_da: int | None  # as last reported in its Status
    measured_da: int | None
    reclaim_cap_da: int | None


@dataclass
class _Pending:
    msg: SetLimit
    sent_at: float  # last (re)transmission
    first_sent: float
    while_silent: bool = False  # sent while a servant (this one or another) was silent (rule 3)
    applied: bool = False  # a STATUS since shows it offering this limit: it hears us, its ack is just not due yet

    def resend_at(self, t: Timing, cut: bool) -> float:
        """Every ack_timeout; a cut outstanding for the reaction allowance every half of that.

        By then even a meterless unit has acked (TIMED), so the ack was probably lost: the
        car waiting for the freed current should not wait a whole ack_timeout more for it.
        """
        half = self.sent_at + t.ack_timeout / 2
        if cut and half > self.first_sent + t.reaction_allowance:
            return half
        return self.sent_at + t.ack_timeout

    def deaf_from(self, t: Timing) -> float:
        """From when its servant may not hear us if it still has not answered: an ack_timeout after the first
        send (INF once a STATUS shows it applied). ``_Slot.deaf`` and every horizon that waits for it read this."""
        return INF if self.applied else self.first_sent + t.ack_timeout


@dataclass(slots=True)
class _Planned:
    """What the last allocation pass planned, kept for ``Master._ack_allocates``: which slots took part
    (``able``), the limit and failsafe targets, whether a car wants more than its target (``unmet``, as the
    reclaim step read it; None when the pass rotated after that: the next pass reads it anew), and what it
    held back for the count, the one thing an ACK can change for the other slots (it lowers its slot's count,
    never raises it): the raises that did not fit (``held``, against the pass's sums ``counted`` and
    ``failsafe``, moved by each ACK taken without a pass since, as that pass would have opened them), and
    whether a deeper cut waited for rule 9's window (``complied``)."""

    able: dict[int, bool]
    lt: dict[int, int]
    ft: dict[int, int]
    unmet: bool | None
    held: list[tuple[_Slot, int, int]] | None = None
    counted: int = 0
    failsafe: int = 0
    complied: bool = False


class _Ledger:
    """Rule 1 (and 8.3) for one allocation pass: the sums counted against the limit, and the grant check.

    It opens with what every servant counts now; each set-limit sent in the pass is booked as it goes.
    """

    def __init__(self, limit_da: int, now: float, timing: Timing, counted_da: int, failsafe_da: int,
                 floor_da: int | None = None) -> None:
        self.limit_da = limit_da  # the effective limit (a budget's, rule 9), for what is counted
        self.floor_da = limit_da if floor_da is None else floor_da  # for the armed failsafes (8.3, BUDGET.md 6.2)
        self.now = now
        self.timing = timing
        self._counted = counted_da
        self._failsafe = failsafe_da

    @classmethod
    def open(cls, slots: Iterable[_Slot], limit_da: int, now: float, timing: Timing,
             floor_da: int | None = None) -> _Ledger:
        counted = failsafe = 0
        for s in slots:
            counted += s.counted(now, timing)
            failsafe += s.reserved_failsafe(now, timing) + s.twin_extra
        return cls(limit_da, now, timing, counted, failsafe, floor_da)

    def counted(self) -> int:
        """Rule 1: the sum counted against the limit (acked or pending, whichever is higher, per servant)."""
        return self._counted

    def reserved_failsafe(self) -> int:
        """8.3: the sum of armed failsafe currents reserved, counted like limits (a twin's too)."""
        return self._failsafe

    def can_grant(self, s: _Slot, limit_da: int, failsafe_da: int) -> bool:
        """Rule 1: a set-limit that raises anything is sent only if what is counted stays within the limit and the
        armed failsafes within the floor (the limit, or a budget's fallback: 8.3).

        ``s`` counts from then on at the most it may offer: the higher of its acked and new limit, or what a
        STATUS showed it offering, plus its twin's share; its failsafe likewise.
        """
        s_counted = s.counted(self.now, self.timing)
        counted = self.counted() - s_counted + max(s.limit, limit_da, s.over_offer) + s.twin_extra
        failsafe = self.reserved_failsafe() - s.counted_fs() + max(s.failsafe, failsafe_da)
        return counted <= self.limit_da and failsafe <= self.floor_da

    def book(self, s: _Slot, counted_before: int, failsafe_before: int | None = None) -> None:
        """A set-limit was just sent to ``s``: move the sums by what it changed (a cut's failsafe stays booked)."""
        self._counted += s.counted(self.now, self.timing) - counted_before
        if failsafe_before is not None:
            self._failsafe += s.counted_fs() - failsafe_before


class _Slot:
    """Everything the master knows about one configured servant."""

    def __init__(self, cfg: ServantConfig, rank: int) -> None:
        self.cfg = cfg
        self.standalone = clamp_da(cfg.failsafe_da, cfg.max_da)
        self.cfg_tag = serial_tag(cfg.serial) if cfg.serial else None  # the tag its STATUS frames must carry (rule 6)
        self.rank = rank
        self.limit = cfg.max_da  # unknown until learned: worst case (rule 7)
        self.failsafe = self.standalone
        self.pending: _Pending | None = None
        self.eased_cut = False  # an unacked cut was replaced by a shallower one since the last ack
        # a STATUS showed it offering this, more than we count for it: counted so until it acks a set-limit sent
        # since (the STATUS may be a late copy, so this is never what it is told: only what it is counted at)
        self.over_offer = 0
        self.over_offer_at = -INF
        self.presence = Presence.UNKNOWN
        self.follow = Follow.FOLLOWING
        self.last_heard = -INF
        self.silent_since = -INF  # when it went silent (Presence.SILENT)
        self.twin_until = -INF
        self.twin_extra = 0  # the twin's worst case while contested
        self.tag: int | None = None
        self.tag_seen = -INF
        # demand and readings
        self.pilot = PilotState.A
        self.requested = 0
        self.req_min = cfg.min_da
        self.offered: int | None = None
        self.measured: int | None = None
        self.ev_stopped = False
        self.status_failsafe = False
        self.reclaim_cap: int | None = None
        self.low_since: float | None = None
        # since when its car has waited for current under shortage (rotation): kept while it is silent for a
        # moment (its car still waits), cleared once it is admitted or wants nothing
        self.wait_since: float | None = None
        # a RELEASE(SHUTDOWN): the pilot is off but the car may draw its old current for a reaction allowance
        self.leaving_da = 0
        self.leaving_until = -INF
        self.pause = Pause.NONE
        self.paused_since = -INF  # when its car was last seen in B while offered (Pause.PAUSED)
        # the EV estimate a budget's mains reading is taken against (docs/BUDGET.md 4.2, 6.4), never allocation:
        # the latest measured draw and when it was measured (a STATUS or an ACK), and for a meterless unit the
        # estimate (counted while its car charges, else 0) and since when it has held
        self.draw_da: int | None = None
        self.measured_at = -INF
        self.estimate_da = 0
        self.estimate_since = -INF

    # -- accounting ------------------------------------------------------------------

    def inputs(self) -> tuple[object, ...]:
        """Everything allocation reads from this slot that a STATUS can change.

        A STATUS that leaves all of it as it was needs no new allocation; one that changes any of it (the
        failsafe flag of a unit we had just counted as confirmed, say) must not be skipped.
        """
        p = self.pending
        return self._inputs_alike() + (self.requested, None if p is None else p.applied, self.measured)

    def inputs_as_read(self, now: float, t: Timing, cfg: Config) -> tuple[object, ...]:
        """``inputs`` as an allocation pass at ``now`` reads them: a set-limit shown applied only once ``deaf``
        could tell (an ack_timeout after it was sent), the measured draw only as ``_reclaim`` judges it against
        the limit (its value is read when a reclaim is due: a timer). See ``Master._status_allocates``."""
        p = self.pending
        m = self.measured
        draw = None if m is None else (m >= self.limit - cfg.reclaim_margin_da // 2,
                                       m < self.limit - cfg.reclaim_threshold_da)
        return self._inputs_alike() + (self.requested, p is None, p is not None and now >= p.deaf_from(t), draw)

    def _inputs_alike(self) -> tuple[object, ...]:
        """What ``inputs`` and ``inputs_as_read`` take as they are, but the request (``Master._request_allocates``
        reads it through ``want``)."""
        return (self.presence, self.follow, self.limit, self.over_offer, self.failsafe, self.twin_extra, self.pilot,
                self.ev_stopped, self.status_failsafe, self.reclaim_cap, self.low_since, self.pause,
                self.offered is not None and self.offered > 0)  # (with the car in B: paused, 8.5)

    @property
    def known(self) -> bool:
        """It has reported since this master started (silent or not)."""
        return self.presence in _KNOWN

    @property
    def confirmed(self) -> bool:
        return self.follow is _CONFIRMED

    def unconfirm(self) -> None:
        """It must be confirmed with a SET_LIMIT again (8.5)."""
        self.follow = Follow.FOLLOWING

    # (the accounting below runs for every slot in every allocation pass: comparisons, not min()/max() calls)

    def counted_fs(self) -> int:
        f = self.failsafe
        p = self.pending
        if p is not None and p.msg.failsafe_da > f:
            f = p.msg.failsafe_da
        return f

    def resend_at(self, t: Timing) -> float:
        """When its unacked set-limit is next re-sent (INF without one)."""
        p = self.pending
        return INF if p is None else p.resend_at(t, p.msg.limit_da < self.limit)

    def deaf(self, now: float, t: Timing) -> bool:
        """Unconfirmed and not answering a set-limit: it may not hear us (e.g. rebooted behind a bad link)."""
        p = self.pending
        return (p is not None and self.follow is not _CONFIRMED and self.presence in _KNOWN
                and now >= p.deaf_from(t))

    def own_count(self, now: float, once_acked: bool = False) -> int:
        """What its own pilot may offer by our count: acked or pending limit, or its current while going down.

        ``once_acked``: as it will count when its outstanding set-limit is acked (rule 9's question: do the
        cuts already sent meet the limit?)."""
        base = self.limit
        p = self.pending
        if p is not None and (once_acked or p.msg.limit_da > base):
            base = p.msg.limit_da
        if now < self.leaving_until and self.leaving_da > base:
            base = self.leaving_da
        return base if base >= self.over_offer else self.over_offer

    def counted(self, now: float, t: Timing, once_acked: bool = False) -> int:
        base = self.own_count(now, once_acked)
        if self.presence is _SILENT:
            if now >= self.silent_since + t.silent_count_after:
                f = self.counted_fs()  # it has failed safe and its EV has followed
                if f < base:
                    base = f
            # it may have rebooted where it hears no master: then it offers its standalone failsafe
            if self.standalone > base:
                base = self.standalone
        elif ((self.pending is not None and self.deaf(now, t))  # (deaf() needs one: most slots have none)
              or (self.status_failsafe and self.follow is not _CONFIRMED)):
            # not answering, or in failsafe and not confirmed by us: it may be a servant that never heard
            # a master since it booted, which raises itself to its standalone failsafe
            if self.standalone > base:
                base = self.standalone
        return base + self.twin_extra

    def reserved_failsafe(self, now: float, t: Timing) -> int:
        """8.3: its armed failsafe as counted; a silent or unanswering one may have rebooted to its standalone."""
        f = self.counted_fs()
        if (self.presence is _SILENT or (self.pending is not None and self.deaf(now, t))) and self.standalone > f:
            f = self.standalone
        return f

    def due(self, now: float, t: Timing) -> float:
        """Its next timer (INF: none): a re-send, going silent, counted at its failsafe, twin gone, leaving car
        gone, reclaim, a paused car parked. Unchanged until one of its fields changes or ``now`` reaches it (``Master._slot_dues``)."""
        d = INF
        if self.pending is not None:  # (resend_at is INF without one: most slots, skip the call)
            d = self.resend_at(t)
        presence = self.presence
        if presence is _HEARD:
            x = self.last_heard + t.servant_silent_after
            if x < d:
                d = x
        elif presence is _SILENT:
            x = self.silent_since + t.silent_count_after
            if now < x < d:
                d = x
        if self.twin_extra and now < self.twin_until < d:
            d = self.twin_until
        if now < self.leaving_until < d:
            d = self.leaving_until
        if self.low_since is not None:
            x = self.low_since + t.reclaim_after
            if now < x < d:
                d = x
        if self.pause is _PAUSED:
            x = self.paused_since + t.reclaim_after
            if now < x < d:
                d = x
        return d

    def unreachable(self, now: float, t: Timing) -> bool:
        """Its state at ``now`` is one of ``UNREACHABLE_STATES``: contested, not reporting or not answering, or
        in failsafe and not confirmed (as ``Master._state`` tells them; a time changes it only where
        ``count_changes_at`` says: the set-limit going deaf)."""
        return (self.twin_extra > 0 or self.presence is not _HEARD or self.deaf(now, t)
                or (self.status_failsafe and self.follow is not _CONFIRMED))

    @property
    def contested(self) -> bool:
        """A twin is counted on this address (rule 6); the timers end it, so it does not depend on the time."""
        return self.twin_extra > 0

    def count_changes_at(self, now: float, t: Timing) -> float:
        """The first time after ``now`` its ``counted`` may change with time alone (INF: only with a frame or a
        pass): a leaving car's allowance over, silent long enough to count at its failsafe, a set-limit deaf."""
        d = self.leaving_until if now < self.leaving_until else INF
        if self.presence is _SILENT:
            x = self.silent_since + t.silent_count_after
            if now < x < d:
                d = x
        p = self.pending
        if p is not None:
            x = p.deaf_from(t)
            if now < x < d:
                d = x
        return d

    def note_estimate(self, now: float, t: Timing) -> None:
        """Stamp a change of the meterless estimate: a car may still follow it for a reaction allowance."""
        est = self.counted(now, t) - self.twin_extra if self.pilot.charging else 0
        if est != self.estimate_da:
            self.estimate_da = est
            self.estimate_since = now

    def ev_draw(self, now: float, reachable: bool) -> EvDraw:
        """What its car draws as far as the master knows, for a mains reading at ``now`` (BUDGET.md 4.2).

        Measured if it has a meter; else the estimate, stamped ``now`` when the unit cannot be reached (what it
        does is not known: the reading may lower the budget, not raise it).
        """
        a = self.cfg.address
        if self.draw_da is not None:
            return EvDraw(a, self.draw_da, True, self.measured_at)
        return EvDraw(a, self.estimate_da, False, self.estimate_since if reachable else now)

    def want(self) -> int:
        if self.requested <= 0 or self.ev_stopped or not self.pilot.vehicle_present:  # (the property call last)
            return 0
        # (comparisons, not min() calls: every allocation pass asks every slot, up to three times)
        w = self.requested
        if w > self.cfg.max_da:
            w = self.cfg.max_da
        cap = self.reclaim_cap
        return cap if cap is not None and cap < w else w

    def demand(self) -> int:
        """What allocation gives it at most: its request, or parked only its minimum (a PWM to resume on)."""
        w = self.want()
        if self.pause is _PARKED:
            return min(w, max(self.req_min, MIN_OFFER_DA))
        return w


class Master:
    """The master node.  See the module docstring and docs/PROTOCOL.md section 8."""

    def __init__(self, config: Config, now: float, master_id: int | None = None, epoch: int = 0, *,
                 budget: BudgetPolicy | None = None) -> None:
        self.config = config
        self.timing = config.timing
        self.master_id = config.master_id if master_id is None else master_id
        if not 0 <= self.master_id <= MAX_MASTER_ID or not 0 <= epoch <= 255:
            raise ValueError(f"master id {self.master_id} must be 0-{MAX_MASTER_ID} and epoch {epoch} 0-255")
        self.epoch = epoch
        self._budget = budget
        self._check_budget(config, budget)
        # the effective limit (rule 9): the policy's, which a restarted master has at the fallback until its
        # first good mains reading; what is counted is held within it and the heartbeat carries it
        self.limit_da = config.limit_da if budget is None else budget.budget.limit_da
        # the armed failsafe currents are summed against the floor (8.3, BUDGET.md 6.2): the fallback, what the
        # circuit may always take, so a master that dies right after a lowering leaves the site within it
        self._floor = config.limit_da if budget is None else budget.cfg.fallback_da
        self.started = now
        self._events = EventLog()
        self._slots = {s.address: _Slot(s, i) for i, s in enumerate(config.servants)}
        self._order: list[int] = []  # rotation order (index = rank), set with _reorder
        self._rank: dict[int, int] = {}  # address -> its index in _order, for every allocation pass
        self._last_allocation: tuple[int, list[Demand], dict[int, int]] | None = None  # (budget, demands, targets)
        self._reorder([s.address for s in config.servants])
        # the heartbeat pages that carry configured servants, sent in turn (PROTOCOL.md 5.2)
        self._pages = sorted({heard_page(a) for a in self._slots})
        # per page, its servants and their heard bits: a heartbeat looks at its own page's servants only
        self._page_slots = {page: [(1 << (a % HEARD_PAGE_SIZE), s) for a, s in self._slots.items()
                                   if heard_page(a) == page] for page in self._pages}
        self._page_turn = 0
        self._seq = 0  # +1 per heartbeat: a servant tells a late copy of an old one by it (PROTOCOL.md 5.2)
        # txn numbers per servant address: a servant orders them modulo 256 (PROTOCOL 5.1), so set-limits to
        # the others must not move its window (128 of them between two of its own would make a late copy look new)
        self._txns: dict[int, int] = {}
        self._next_hb = now
        self.learning = True
        self.left = False  # shutdown() sent the leaving heartbeat: it says nothing more
        self._learn_deadline = now + self.timing.learning_timeout
        # a servant that reports failsafe fell (when the old master died, or when it heard us) less than a
        # reaction allowance ago, maybe: its EV may still draw more than it offers, so learning lasts that long
        self._settle_until = now + self.timing.reaction_allowance + self.timing.tick_period
        self._failsafe_seen = False
        self._second_master_until = -INF
        self._rotation_at = INF
        self._rotated_at = -INF
        self._stranger_until: dict[int, float] = {}
        self._init_step(now)
        self._events.add(now, EventKind.LEARNING, None,
                         f"master {self.master_id} epoch {epoch}: learning what {len(self._slots)} servants offer")
        self._budget_events()

    def _init_step(self, now: float) -> None:
        """What ``_step`` keeps from one call to the next, so that most calls do little."""
        self._deadline = now  # (so the first call runs the timers)
        # each slot's ``due`` as last worked out, and the least: a STATUS that needs no allocation changes only
        # its own slot
        self._dues = {a: INF for a in self._slots}
        self._dues_min = INF
        # (due, address) of every kept due, and stale entries (None: made when needed): see ``_least_due``
        self._dues_heap: list[tuple[float, int]] | None = None
        self._again = False  # a reclaim decision of the last step's second pass still wants an allocation
        # the last allocation pass dropped and reclaimed nothing, so one more on the inputs it read would do
        # nothing, at least until the first set-limit outstanding could go deaf (``_status_allocates``): what it
        # sent it waits for, a raise it held back still does not fit (its sums only grew), a reclaim timer it
        # started is not due (one it stopped as the cap would not be below the limit is started again: stirred)
        self._stirred = False  # the pass under way dropped or reclaimed something, or stopped a due reclaim timer
        self._complied = False  # the pass under way held a deeper cut back for rule 9's window (``_supersede``)
        self._planned: _Planned | None = None  # what the last pass planned (``_ack_allocates``)
        self._settled = False
        self._settled_until = -INF
        self._estimates_until = -INF  # no count may change with time alone before this (``_note_estimates``)
        # every slot's count and whether it is unreachable, as last worked out (``_counts``): each holds from
        # ``_counts_at`` until ``_counts_until`` unless a call wrote its slot, which ``_step`` notes in
        # ``_counts_stale`` (None: any slot may have changed)
        self._counts: dict[int, tuple[int, bool]] = {}
        self._counts_at = INF
        self._counts_until = -INF
        self._counts_stale: set[_Slot] | None = None
        self._counted_total = 0
        self._unreachable_total = 0

    @staticmethod
    def _check_budget(config: Config, budget: BudgetPolicy | None) -> None:
        """A policy must share this site's static limit, and the standalone failsafes must fit its fallback."""
        if budget is None:
            return
        if budget.static_da != config.limit_da:
            raise ValueError(f"the budget's static limit {_a(budget.static_da)} is not the site's {_a(config.limit_da)}")
        total = sum(clamp_da(s.failsafe_da, s.max_da) for s in config.servants)
        if total > budget.cfg.fallback_da:
            raise ValueError(f"the standalone failsafe currents sum to {_a(total)}, above the budget's fallback "
                             f"{_a(budget.cfg.fallback_da)}")

    # -- public API ------------------------------------------------------------------

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        """Act on ``msg`` at ``now``.  ``arrived`` (when it reached the interface) is not read: the master's
        clocks for a unit run from when it reads the unit's frames, the conservative order (a STATUS read late keeps
        the unit's share counted longer; its own failsafe clock is the unit's, from the heard bits)."""
        out: list[Message] = []
        if self.left:
            return out  # a set-limit now would pull a servant out of the failsafe its leaving heartbeat started
        changed = self._dispatch(msg, now, out)
        slot = None if changed else self._slots.get(msg.address)  # (no allocation: it wrote its own slot at most)
        self._step(now, out, changed, None if slot is None else (slot,))
        return out

    def _dispatch(self, msg: Message, now: float, out: list[Message]) -> bool:
        """Hand ``msg`` to its handler; True when it needs an allocation.

        This is the one place that decides: every message does, except a STATUS that changed nothing
        allocation reads (``_status_allocates``) and a sign of a second master already heard after a settled
        pass (``_second_master_allocates``). A new handler thus gets an allocation by default.
        """
        if isinstance(msg, Heartbeat):
            return self._second_master_allocates(now, f"heartbeat from master {msg.master_id} epoch {msg.epoch}", out)
        if isinstance(msg, Nack):
            self._on_nack(msg, now, out)
            return True
        if isinstance(msg, SetLimit):
            return self._second_master_allocates(now, f"set-limit to servant {msg.address} from another master", out)
        slot = self._slots.get(msg.address)
        if slot is None:
            self._stranger(msg.address, now, out)
            return not isinstance(msg, Status)
        if isinstance(msg, Status):
            return self._status_allocates(slot, msg, now, out)
        if isinstance(msg, Ack):
            return self._ack_allocates(slot, msg, now)
        if isinstance(msg, Request):
            return self._request_allocates(slot, msg, now)
        self._heard(slot, now)
        if isinstance(msg, Release):
            self._on_release(slot, msg, now)
        elif isinstance(msg, Join):
            self._on_join(slot, msg, now, out)
        return True

    def _status_allocates(self, slot: _Slot, st: Status, now: float, out: list[Message]) -> bool:
        """Take a STATUS; True when it needs an allocation: it changed the slot's ``inputs``, and either the
        last pass stirred something (dropped or reclaimed: one more may act on that) or it changed
        them as a pass at ``now`` reads them. Allocation reads only the slot, and a pass on what a settled
        one read does nothing, until a set-limit could go deaf (``_settled_until``)."""
        # (one fingerprint or the other, taken before _heard: back from silence is a change. An unchanged raw one
        # is an unchanged one as read, so after a settled pass the one as read decides alone)
        if self._settled_at(now):
            t, cfg = self.timing, self.config
            read = slot.inputs_as_read(now, t, cfg)
            self._heard(slot, now)
            self._on_status(slot, st, now, out)
            after = slot.inputs_as_read(now, t, cfg)
            return after != read and not (self._reclaim_reads_only(slot, read, after)
                                          and self._reclaim_moves_timer_only(slot, now))
        raw = slot.inputs()
        self._heard(slot, now)
        self._on_status(slot, st, now, out)
        return slot.inputs() != raw

    def _ack_allocates(self, slot: _Slot, ack: Ack, now: float) -> bool:
        """Take an ACK; True when it needs an allocation: unless the last pass settled everything (as for a
        STATUS), the slot took part in it and is now confirmed at its targets (``_as_planned``), and no raise
        that pass held back fits with the slot's lower count (``_held_still``). Then a pass reads what the
        settled one read but that count, which only a held-back raise or cut reads: it would do nothing (most
        acks while set-limits go out in turn, the 62 confirms after learning say)."""
        if not (self._settled_at(now) and slot.presence is _HEARD):
            self._heard(slot, now)
            self._on_ack(slot, ack, now)
            return True
        t = self.timing
        counted, failsafe = slot.counted(now, t), slot.reserved_failsafe(now, t)
        self._heard(slot, now)
        self._on_ack(slot, ack, now)
        counted, failsafe = slot.counted(now, t) - counted, slot.reserved_failsafe(now, t) - failsafe
        plan = self._planned
        if plan is None or not self._as_planned(slot, now) or not self._held_still(counted, failsafe, now):
            return True
        plan.counted += counted
        plan.failsafe += failsafe
        self._settled_until = self._deaf_horizon(now)  # (as that pass would: the acked set-limit goes deaf never)
        return False

    def _as_planned(self, slot: _Slot, now: float) -> bool:
        """The last pass planned ``slot`` as it is: it took part (and does), ``_cuts`` would tell it nothing,
        and ``_reclaim`` (which skipped it with its set-limit outstanding) would leave its timer alone."""
        plan = self._planned
        a = slot.cfg.address
        if (plan is None or plan.complied or plan.unmet is None or not plan.able.get(a, False)
                or not self._allocatable(slot, now)):
            return False
        L = plan.lt.get(a)
        if L is not None and not self._tells_nothing(slot, L, plan.ft.get(a, 0)):
            return False
        timer_only, since = self._reclaim_timer(slot, now, plan.unmet, True)
        return timer_only and since == slot.low_since

    def _held_still(self, counted_by: int, failsafe_by: int, now: float) -> bool:
        """No raise the last pass held back fits once the sums have moved by ``counted_by`` and ``failsafe_by``
        (an acked slot's count: ``_Ledger.can_grant`` on the pass's sums so moved; a settled pass sent nothing,
        so it held them all, each against the sums it opened with)."""
        plan = self._planned
        if plan is None or not plan.held:
            return True
        ledger = _Ledger(self.limit_da, now, self.timing, plan.counted + counted_by, plan.failsafe + failsafe_by,
                         self._floor)
        return not any(ledger.can_grant(s, L, F) for s, L, F in plan.held)

    @staticmethod
    def _reclaim_reads_only(slot: _Slot, read: tuple[object, ...], after: tuple[object, ...]) -> bool:
        """Of what a pass reads of ``slot`` (``inputs_as_read``, from ``read`` to ``after``) only what
        ``_reclaim_slot`` alone reads changed: the draw, and with its car still present (the same ``want``) but
        neither in B nor paused (no ``_pause``) the pilot (charging or not) and the offer (read only in B)."""
        if slot.pilot is _B or slot.pause is not _NO_PAUSE:
            return False
        for i, (x, y) in enumerate(zip(read, after, strict=True)):
            if x != y and i not in _RECLAIM_READS:
                return False
        pilot = read[_AS_READ_PILOT]
        return isinstance(pilot, PilotState) and pilot.vehicle_present == slot.pilot.vehicle_present

    def _reclaim_moves_timer_only(self, slot: _Slot, now: float) -> bool:
        """After a settled pass, a STATUS changed only what the pass would read in ``_reclaim_slot`` alone
        (``_reclaim_reads_only``). When that would at most start or stop the slot's reclaim timer
        (``_reclaim_timer``, which leaves a pass settled), do just that here: True, no pass needed."""
        plan = self._planned
        if slot.pending is not None:
            return True  # (``_reclaim`` judges no draw against a set-limit outstanding)
        if plan is None or plan.unmet is None:
            return False
        timer_only, since = self._reclaim_timer(slot, now, plan.unmet, plan.able.get(slot.cfg.address, False))
        if timer_only:
            slot.low_since = since
        return timer_only

    def _request_allocates(self, slot: _Slot, req: Request, now: float) -> bool:
        """Take a REQUEST; True when it needs an allocation: unless the last pass settled everything, only when it
        changed what a pass reads of it: the request only through ``want`` (a car not seen plugged in wants
        nothing), its minimum, and a reclaim cap it gave back (``_inputs_alike``)."""
        if not self._settled_at(now):
            self._heard(slot, now)
            self._on_request(slot, req, now)
            return True
        read = slot._inputs_alike() + (slot.want(), slot.req_min)
        self._heard(slot, now)
        self._on_request(slot, req, now)
        return slot._inputs_alike() + (slot.want(), slot.req_min) != read

    def _second_master_allocates(self, now: float, why: str, out: list[Message]) -> bool:
        """Rule 6: a sign of a second master; True when it needs an allocation. A pass reads only whether one is
        heard, so one that only holds it longer (already heard) changes nothing for a pass after a settled one."""
        fresh = self._second_master_until <= now
        self._on_second_master(now, why, out)
        return fresh or not self._settled_at(now)

    def _settled_at(self, now: float) -> bool:
        """The last pass settled everything, and no set-limit could have gone deaf since (``_status_allocates``)."""
        return self._settled and now < self._settled_until

    # -- the live budget (rule 9, docs/BUDGET.md 6.4) ------------------------------------------

    def mains_reading(self, reading: MainsReading, now: float) -> list[Message]:
        """A good mains meter reading: the policy takes it against the EV draws as known now (BUDGET.md 4.2).

        Returns the frames to send now: the cuts of a lowering go out in this call (rule 9).
        """
        policy = self._policy("a mains reading")
        return self._budget_input(policy.meter(reading, self._ev_draws(now), now), now)

    def mains_failed(self, now: float, detail: str) -> list[Message]:
        """A failed mains read (error, timeout, frozen or impossible values): never raises anything."""
        return self._budget_input(self._policy("a failed mains read").meter_failed(now, detail), now)

    def setpoint(self, limit_da: int, ttl_s: float | None, now: float) -> list[Message]:
        """An external setpoint: at most ``limit_da`` for ``ttl_s`` (None: ``[budget] setpoint_ttl_s``)."""
        return self._budget_input(self._policy("a setpoint").setpoint(limit_da, ttl_s, now), now)

    def clear_setpoint(self, now: float) -> list[Message]:
        """The energy manager withdraws its setpoint (not a failure: nothing falls back)."""
        return self._budget_input(self._policy("a setpoint").clear_setpoint(now), now)

    @property
    def budget(self) -> Budget:
        """The budget in force: ``limit_da`` is the effective limit (the static one without a policy)."""
        if self._budget is None:
            lim = self.config.limit_da
            return Budget(lim, LimitSource.STATIC, False, lim, None, None, 0)
        return self._budget.budget

    @property
    def budget_policy(self) -> BudgetPolicy | None:
        """The policy behind ``budget`` (its ``stats``, its tuning), None for a fixed limit."""
        return self._budget

    def _policy(self, what: str) -> BudgetPolicy:
        if self._budget is None:
            raise ValueError(f"{what} given to a master without a budget (Master(..., budget=BudgetPolicy...))")
        return self._budget

    def _budget_input(self, b: Budget, now: float) -> list[Message]:
        out: list[Message] = []
        changed = self._take_budget(b)
        if not self.left:
            if changed:
                self._announce(now, out)
            self._step(now, out, changed=changed)
        return out

    def _announce(self, now: float, out: list[Message]) -> None:
        """Rule 9: a changed limit goes out in a heartbeat at once, ahead of the set-limits that use it, so
        that a monitor never sees new room granted before the limit allowing it; the schedule is not moved."""
        out.append(self._heartbeat(now))

    def _take_budget(self, b: Budget) -> bool:
        """The policy's limit becomes the effective limit; True when it changed (the allocation must run now)."""
        self._budget_events()
        if b.limit_da == self.limit_da:
            return False
        self.limit_da = b.limit_da
        return True

    def _budget_events(self) -> None:
        if self._budget is not None:
            for e in self._budget.drain_events():
                self._events.add(e.t, e.kind, None, e.detail)

    def _ev_draws(self, now: float) -> list[EvDraw]:
        """Every servant's EV draw as the master knows it now (BUDGET.md 4.2, 6.4)."""
        self._note_estimates(now)
        return [s.ev_draw(now, self._allocatable(s, now)) for s in self._slots.values()]

    def _note_estimates(self, now: float, touched: tuple[_Slot, ...] | None = None) -> None:
        """Stamp every changed estimate. With ``touched`` (see ``_step``) only those slots changed since the last
        time all were stamped; the others' counts hold until one may change with time (``_estimates_until``)."""
        t = self.timing
        if touched is not None and now < self._estimates_until:
            for s in touched:
                s.note_estimate(now, t)
                x = s.count_changes_at(now, t)  # (a touched slot may now change with time sooner)
                if x < self._estimates_until:
                    self._estimates_until = x
            return
        until = INF
        for s in self._slots.values():
            s.note_estimate(now, t)
            x = s.count_changes_at(now, t)
            if x < until:
                until = x
        self._estimates_until = until

    def tick(self, now: float) -> list[Message]:
        out: list[Message] = []
        if self.left:
            return out
        # the policy's own deadlines first (a source gone stale, a raise hold over): the heartbeat then carries
        # the limit this step shares, and a lowering's cuts go out in this step
        changed = self._budget is not None and self._take_budget(self._budget.tick(now))
        if now >= self._next_hb:
            out.append(self._heartbeat(now))
            self._next_hb += self.timing.heartbeat_period
            if self._next_hb <= now:  # called late: do not burst to catch up
                self._next_hb = now + self.timing.heartbeat_period
        elif changed:
            self._announce(now, out)
        resend = self._resends(now) if now >= self._dues_min else []
        if not resend:  # (most ticks: no generators built for nothing)
            self._step(now, out, changed, ())
            return out
        self._step(now, out, changed, tuple(slot for slot, _ in resend))  # (only a re-send wrote a slot)
        # after the step: an unanswered set-limit it replaced (e.g. a grant become a cut) is not sent as well
        out.extend(p.msg for slot, p in resend if slot.pending is p)
        return out

    def _resends(self, now: float) -> list[tuple[_Slot, _Pending]]:
        """The set-limits due to be sent again at ``now``, stamped sent. ``tick`` asks only from the earliest
        slot timer on (``_dues_min``, kept by ``_slot_dues``): each slot's ``due`` is at most its ``resend_at``."""
        resend: list[tuple[_Slot, _Pending]] = []
        for slot in self._slots.values():
            p = slot.pending
            if p is not None and now >= slot.resend_at(self.timing):
                p.sent_at = now
                resend.append((slot, p))
        return resend

    def shutdown(self, now: float) -> list[Message]:
        """Graceful stop: a leaving heartbeat makes every servant fail safe at once (rule 5)."""
        self._events.add(now, EventKind.LEAVING, None, "master shutting down: servants fail safe now")
        self.left = True
        self._deadline = self._next_hb = INF
        self._counts_stale = None  # (it writes no slot, but a master that left is asked seldom: count afresh)
        return [self._heartbeat(now, leaving=True)]

    def next_deadline(self) -> float:
        """Latest time ``tick`` must next be called (the budget policy's deadlines included)."""
        d = self._next_hb if self._next_hb < self._deadline else self._deadline
        if self._budget is not None and not self.left:
            b = self._budget.next_deadline()  # (asked several times per call by the runtimes: no min())
            if b < d:
                d = b
        return d

    def drain_events(self) -> Sequence[Event]:
        return self._events.drain()

    def committed_da(self, now: float) -> int:
        """Sum counted against the limit at ``now`` (rule 1).

        Never above ``limit_da`` once learning is over, except while an address is contested (a twin counts
        as two units) and within the compliance window after the limit was lowered (rule 9).  While learning,
        servants not heard yet count at their maximum (rule 7 worst case).
        """
        self._count(now)  # (as ``_Ledger.open(...).counted()``, kept: the simulator asks after every call)
        return self._counted_total

    def unreachable_da(self, now: float) -> int:
        """The part of ``committed_da`` counted for servants in ``UNREACHABLE_STATES`` at ``now``: what a lowered
        limit cannot take back by a set-limit (rule 3 and 6 hold them)."""
        self._count(now)
        return self._unreachable_total

    def _count(self, now: float) -> None:
        """Bring ``_counts`` and its sums to ``now``: only the slots written since (``_counts_stale``), unless
        ``now`` is outside the span every kept count holds for (a count changes with time only where
        ``_Slot.count_changes_at`` says, and then every slot is worked out again)."""
        stale = self._counts_stale
        if stale is not None and self._counts_at <= now < self._counts_until:
            if not stale:
                return
            slots: Iterable[_Slot] = stale
            total, unreachable, until = self._counted_total, self._unreachable_total, self._counts_until
        else:
            slots = self._slots.values()
            total = unreachable = 0
            until = INF
            self._counts.clear()
        t = self.timing
        counts = self._counts
        for s in slots:
            a = s.cfg.address
            old = counts.get(a)
            if old is not None:
                total -= old[0]
                if old[1]:
                    unreachable -= old[0]
            c = s.counted(now, t)
            u = s.unreachable(now, t)
            counts[a] = (c, u)
            total += c
            if u:
                unreachable += c
            x = s.count_changes_at(now, t)
            if x < until:
                until = x
        self._counted_total, self._unreachable_total = total, unreachable
        self._counts_at, self._counts_until = now, until
        self._counts_stale = set()

    def reserved_failsafe_da(self, now: float) -> int:
        """Sum of the armed failsafe currents as counted at ``now`` (8.3): what servants fall to if this master dies.

        Held within the floor: the limit, or with a budget its fallback (docs/BUDGET.md 6.2).
        """
        t = self.timing
        total = 0
        for s in self._slots.values():  # (as ``_Ledger.open(...).reserved_failsafe()``)
            total += s.reserved_failsafe(now, t) + s.twin_extra
        return total

    def servants(self, now: float) -> list[ServantView]:
        """How the master accounts for each servant at ``now`` (read-only)."""
        return [
            ServantView(
                s.cfg.address, self._state(s, now), s.counted(now, self.timing), s.limit,
                None if s.pending is None else s.pending.msg.limit_da, s.demand(), s.counted_fs(),
                s.offered, s.measured, s.reclaim_cap,
            )
            for s in self._slots.values()
        ]

    def view(self, address: int, now: float) -> ServantView | None:
        for v in self.servants(now):
            if v.address == address:
                return v
        return None

    def second_master(self, now: float) -> bool:
        """Another master has been heard within ``conflict_hold`` (rule 6): only cuts are sent."""
        return self._second_master_until > now

    # -- helpers ------------------------------------------------------------------------

    def _heartbeat(self, now: float, leaving: bool = False) -> Heartbeat:
        page = self._pages[self._page_turn % len(self._pages)]
        self._page_turn += 1
        heard = 0
        window = self.timing.servant_silent_after
        for bit, s in self._page_slots[page]:
            # heard within the silent bound: once it is silent the bit is clear, so a servant that hears us but
            # cannot be heard (a mute transmitter) fails safe heard_timeout later (rule 3, rule 4)
            if s.presence in _KNOWN and now < s.last_heard + window:
                heard |= bit
        self._seq = (self._seq + 1) % HEARTBEAT_SEQ_MODULO
        return Heartbeat(self.master_id, self.epoch, self.limit_da, page, heard, self._seq, leaving=leaving,
                         learning=self.learning, second_master=self._second_master_until > now)

    def _state(self, s: _Slot, now: float) -> ServantState:
        if s.contested:
            return ServantState.TWIN
        if s.presence is Presence.UNKNOWN:
            return ServantState.UNKNOWN
        if s.presence is Presence.ABSENT:
            return ServantState.ABSENT
        if s.presence is Presence.SILENT:
            return ServantState.SILENT
        if s.deaf(now, self.timing):
            return ServantState.UNANSWERING
        if s.status_failsafe and not s.confirmed:
            return ServantState.FAILSAFE
        if s.want() == 0:
            return ServantState.IDLE
        if s.pause is _PARKED:
            return ServantState.PARKED
        if s.pause is _PAUSED:
            return ServantState.PAUSED
        return ServantState.CHARGING if max(s.limit, 0) > 0 else ServantState.WAITING

    def _heard(self, slot: _Slot, now: float) -> None:
        """Any frame from it: back from silence (rule 3) it is counted from its failsafe and confirmed again."""
        slot.last_heard = now
        if slot.presence is Presence.SILENT:
            self._events.add(now, EventKind.SERVANT_BACK, slot.cfg.address,
                             f"heard again after {now - slot.silent_since:.2f} s silent")
            if now >= slot.silent_since + self.timing.silent_count_after:
                # it was counted at its failsafe and the rest may have been granted to others: it comes back
                # from there (a raise is a grant again; easing its cut back up would over-commit)
                slot.limit = min(slot.limit, slot.counted_fs())
            if slot.pause is _PAUSED:
                # what its car did while we could not hear it is not known (in failsafe at 0 A, say, behind a
                # partition): that time is not its pause (8.5), or a car that wants current would be parked
                slot.paused_since += now - slot.silent_since
            slot.presence = Presence.HEARD
            slot.unconfirm()

    def _on_second_master(self, now: float, why: str, out: list[Message]) -> None:
        """Rule 6, second master: report it, flag it in our heartbeats, and only cut while it is heard."""
        fresh = self._second_master_until <= now
        self._second_master_until = now + self.timing.conflict_hold
        if fresh:
            self._events.add(now, EventKind.SECOND_MASTER, None, why + ": granting nothing, servants fail safe")
            out.append(Nack(MASTER_ADDRESS, NackCode.SECOND_MASTER, MASTER_ADDRESS))

    def _stranger(self, address: int, now: float, out: list[Message]) -> None:
        """Rule 6: a servant that is not in the config is not in the budget, so pause it."""
        if self._stranger_until.get(address, -INF) <= now:
            self._events.add(now, EventKind.UNCONFIGURED, address, "servant not in the config: told to pause")
            out.append(SetLimit(address, self._next_txn(address), 0, 0, self.epoch))
        self._stranger_until[address] = now + self.timing.conflict_hold

    def _twin(self, slot: _Slot, now: float, why: str, out: list[Message], twin_max: int | None = None) -> None:
        """Rule 6, twin: report it, cut the address to 0, grant it nothing and count it as two units."""
        fresh = slot.twin_extra == 0
        slot.twin_until = now + self.timing.conflict_hold
        # the other unit hears our set-limits to this address too: it offers at most what we allowed it,
        # or its standalone failsafe if it follows no master
        worst = max(slot.limit, slot.standalone, 0 if slot.pending is None else slot.pending.msg.limit_da)
        if twin_max is not None:
            worst = min(worst, twin_max)
        slot.twin_extra = max(slot.twin_extra, worst)
        if fresh:
            self._events.add(now, EventKind.TWIN, slot.cfg.address, why + ": no grants, cut to 0, counted as two units")
            out.append(Nack(slot.cfg.address, NackCode.TWIN, MASTER_ADDRESS))
            slot.unconfirm()

    def _check_tag(self, slot: _Slot, tag: int, now: float, out: list[Message], twin_max: int | None = None) -> None:
        """Rule 6: a serial tag other than the configured one, or two alternating within conflict_hold: a twin."""
        cfg_tag = slot.cfg_tag
        if cfg_tag is not None and tag != cfg_tag:
            self._twin(slot, now, f"unit with serial tag {tag:#x}, config says {cfg_tag:#x}", out, twin_max)
            return
        if slot.tag is not None and tag != slot.tag:
            if now - slot.tag_seen <= self.timing.conflict_hold:
                self._twin(slot, now, f"serial tags {slot.tag:#x} and {tag:#x} on one address", out, twin_max)
            else:
                self._events.add(now, EventKind.UNIT_REPLACED, slot.cfg.address, f"serial tag {slot.tag:#x} -> {tag:#x}")
        slot.tag = tag
        slot.tag_seen = now

    # -- message handlers ------------------------------------------------------------------

    def _on_status(self, slot: _Slot, st: Status, now: float, out: list[Message]) -> None:
        self._check_tag(slot, st.serial_tag, now, out)
        if st.twin:
            self._twin(slot, now, "servant reports a twin", out)
        if not slot.known:
            self._learn(slot, st, now)
        elif st.offered_da > slot.own_count(now) + slot.twin_extra:  # (a twin reports on the same address)
            self._over_offer(slot, st, now)
        if st.failsafe and slot.confirmed:
            slot.unconfirm()  # it fell to failsafe (rule 4): confirm its limit again
        elif (slot.confirmed and slot.pending is None and not st.twin
              and st.offered_da < clamp_da(slot.limit, slot.cfg.max_da)):
            # it offers less than we confirmed, with nothing of ours outstanding: it lost what we told it, e.g.
            # it rebooted too fast to go silent and its JOIN did not get through (lost, or taken for a repeat:
            # a rebooted unit's first frames can be byte-identical to those after its previous boot; chaos
            # seed 2387). It waits for a SET_LIMIT: confirm it again (still counted at its limit meanwhile)
            slot.unconfirm()
            self._events.add(now, EventKind.OFFER_BELOW_COUNT, slot.cfg.address,
                             f"reports {_a(st.offered_da)}, below the {_a(slot.limit)} confirmed: confirming again")
        p = slot.pending
        if p is not None and not p.applied and st.offered_da == min(p.msg.limit_da, slot.cfg.max_da):
            # (a meterless unit acks a cut only after the reaction allowance: it is not "unanswering" meanwhile)
            p.applied = True
        slot.pilot = st.pilot
        slot.requested = st.requested_da
        slot.offered = st.offered_da
        slot.measured = st.measured_da
        slot.draw_da, slot.measured_at = st.measured_da, now
        if st.ev_stopped and not slot.ev_stopped:
            self._events.add(now, EventKind.EV_STOPPED, slot.cfg.address, "servant stopped an overdrawing EV")
        slot.ev_stopped = st.ev_stopped
        slot.status_failsafe = st.failsafe
        if not st.pilot.vehicle_present:
            slot.reclaim_cap = None
            slot.low_since = None

    def _learn(self, slot: _Slot, st: Status, now: float) -> None:
        """Its first STATUS since this master started (rule 5): count it at what it offers now."""
        slot.presence = Presence.HEARD
        # what it offers now (rule 5), or what its car still draws if more: a cut (or failsafe) another
        # master sent just before us that its car is still following. Its limit stays what the pilot offers, the
        # draw counted above it as an over-offer: a SET_LIMIT above the offer is then a raise, sent after the cuts
        # are acked (confirming it at the draw raised its pilot beside a cut still pending: seed 1702, drawn)
        slot.limit = st.offered_da
        drawing = ""
        if st.measured_da is not None and st.measured_da > st.offered_da:
            slot.over_offer = min(st.measured_da, slot.cfg.max_da)
            slot.over_offer_at = now
            drawing = f", its car still draws {_a(st.measured_da)}: counted at {_a(slot.over_offer)}"
        elif st.measured_da is None and st.pilot.charging and st.offered_da < slot.cfg.max_da:
            # no meter, its car charging: its pilot may have been lowered (a cut of the master before us, its
            # failsafe) less than a reaction allowance ago, and the car may still draw the old offer, which no
            # frame tells. Counted at its max, as if unheard, until it acks a SET_LIMIT of ours: it acks only once
            # its car has followed (rule 2). (Learned at the offer: a grant of the current freed beside a car still
            # drawing it, master restarted within the allowance of a cut or of the unit's failsafe: drawn 42 A
            # on 32 A, tests/sim/test_sim_learn_meterless.py)
            slot.over_offer = slot.cfg.max_da
            slot.over_offer_at = now
            drawing = f", no meter and its car charging: counted at {_a(slot.over_offer)} until it acks"
        slot.failsafe = slot.standalone
        waits = ""
        if (st.pilot.vehicle_present and not st.ev_stopped and min(st.requested_da, MAX_EVSE_DA) >= MIN_OFFER_DA
                and st.offered_da == 0 and not st.measured_da):
            # its car wants current and gets none: it waited under the master before us (or that one armed
            # it a 0 A failsafe). How long is not on the wire; it goes first in our rotation order
            slot.wait_since = now
            waits = ", its car waits"
        self._events.add(now, EventKind.LEARNED, slot.cfg.address, f"offers {_a(st.offered_da)}{drawing}{waits}")

    def _over_offer(self, slot: _Slot, st: Status, now: float) -> None:
        """Rule 1: it offers more than it may (a late copy of an old grant applied, a cut it never got, a reboot
        to its standalone failsafe): an over-commit in progress, confirmed or not.

        Count it at what it offers and cut it (a grant is counted from the moment it is sent, so one just
        applied is not here). Only counted: the STATUS may itself be a late copy, and telling it that much
        would be a grant.
        """
        self._events.add(now, EventKind.OFFER_ABOVE_COUNT, slot.cfg.address,
                         f"reports {_a(st.offered_da)} above the {_a(slot.own_count(now))} counted: "
                         "counting it, and cutting it")
        slot.over_offer = st.offered_da
        slot.over_offer_at = now
        slot.unconfirm()

    def _on_ack(self, slot: _Slot, ack: Ack, now: float) -> None:
        """Rule 1: its set-limit took effect; it counts at min(applied, sent) from now (rule 7)."""
        p = slot.pending
        if p is None or ack.txn != p.msg.txn:
            return  # a duplicate of an ack already taken
        slot.pending = None
        slot.eased_cut = False
        if ack.measured_da is not None:
            slot.draw_da, slot.measured_at = ack.measured_da, now
        if p.first_sent >= slot.over_offer_at:
            slot.over_offer = 0  # it applied a set-limit sent since it showed more: it offers at most that now
        old = slot.limit
        slot.limit = min(ack.applied_da, p.msg.limit_da)
        slot.failsafe = min(p.msg.failsafe_da, clamp_da(p.msg.failsafe_da, slot.cfg.max_da))
        # (else a set-limit sent since it showed more must still be acked)
        slot.follow = Follow.CONFIRMED if slot.over_offer == 0 else Follow.FOLLOWING
        slot.status_failsafe = False  # applying our set-limit ended its failsafe
        kind = EventKind.CUT_ACKED if slot.limit < old else EventKind.GRANT_ACKED if slot.limit > old else EventKind.ACKED
        self._events.add(now, kind, slot.cfg.address,
                         f"txn {ack.txn}: {_a(slot.limit)} ({ack.how.name.lower()}) after {now - p.first_sent:.2f} s")

    def _on_release(self, slot: _Slot, rel: Release, now: float) -> None:
        if rel.reason is ReleaseReason.SHUTDOWN:
            # going down: its pilot is off, but unlike a finished, unplugged or faulted car this one may still
            # draw what it was offered until its reaction allowance has passed (rule 2): keep counting that
            held = max(slot.counted(now, self.timing) - slot.twin_extra, rel.released_da)
            slot.leaving_da = max(slot.leaving_da if now < slot.leaving_until else 0, held)
            slot.leaving_until = now + self.timing.reaction_allowance
            slot.pending = None
            self._events.add(now, EventKind.RELEASE, slot.cfg.address,
                             f"shutdown: {_a(rel.released_da)} back, counted at {_a(held)} for "
                             f"{self.timing.reaction_allowance:g} s while its car follows the pilot")
            slot.limit = 0
        else:
            # A RELEASE is a claim, and a late copy of an old one (a bridge, a UDP path) claims what is no
            # longer true: its servant may be offering a new grant. It is counted as before until it acks
            # the cut to 0 the allocation now sends (rule 1: cut, then grant), like any other cut.
            self._events.add(now, EventKind.RELEASE, slot.cfg.address,
                             f"{rel.reason.name.lower()}: {_a(rel.released_da)} back")
        slot.requested = 0
        slot.reclaim_cap = None
        slot.low_since = None

    def _on_request(self, slot: _Slot, req: Request, now: float) -> None:
        slot.requested = req.requested_da
        slot.req_min = min(max(slot.cfg.min_da, req.min_da), slot.cfg.max_da)
        if slot.reclaim_cap is not None and req.requested_da > slot.reclaim_cap:
            self._give_back(slot, now, "asks for more")

    def _on_join(self, slot: _Slot, join: Join, now: float, out: list[Message]) -> None:
        cfg_serial = slot.cfg.serial
        if cfg_serial and join.serial != cfg_serial:
            self._twin(slot, now, f"unit serial {join.serial:#x} is not the configured {cfg_serial:#x}",
                           out, join.max_da)
            return
        self._check_tag(slot, serial_tag(join.serial), now, out, join.max_da)
        # it (re)booted or followed us anew: its armed failsafe may be back at standalone
        slot.failsafe = max(slot.failsafe, slot.standalone)
        slot.unconfirm()

    def _on_nack(self, nack: Nack, now: float, out: list[Message]) -> None:
        if nack.reporter == MASTER_ADDRESS:
            self._on_second_master(now, "Nack from another master", out)
            return
        slot = self._slots.get(nack.reporter)
        if slot is not None:
            self._heard(slot, now)
        if nack.code is NackCode.SECOND_MASTER:
            self._on_second_master(now, f"servant {nack.reporter} hears two masters", out)
        elif nack.code is NackCode.TWIN and slot is not None:
            self._twin(slot, now, "servant reports a twin", out)
        elif nack.code is NackCode.OLD_TXN and slot is not None:
            p = slot.pending
            if p is not None and nack.txn == p.msg.txn:
                # it applied a newer txn of this epoch than the one we wait on (we restarted with the same
                # epoch): go on numbering after it, and send what we want again under the next number
                self._txns[slot.cfg.address] = nack.detail & 0xFF
                self._events.add(now, EventKind.RENUMBER, nack.reporter,
                                 f"txn {nack.txn} is older than its txn {nack.detail}: sent again as a newer one")
                slot.pending = None
                self._send(slot, p.msg.limit_da, p.msg.failsafe_da, now, out)
        elif nack.code is NackCode.EV_OVERDRAW:
            self._events.add(now, EventKind.EV_OVERDRAW, nack.reporter,
                             f"EV ignored its pilot (drawing {_a(nack.detail)}): stopped by its servant")
        else:
            self._events.add(now, EventKind.NACK, nack.reporter, f"{nack.code.name.lower()} txn {nack.txn}")

    # -- timers --------------------------------------------------------------------------

    def _timers(self, now: float) -> None:
        """The timed transitions: learning over (rule 5), silent (rule 3), twin and second master gone (rule 6)."""
        t = self.timing
        if self.learning:
            if any(s.status_failsafe for s in self._slots.values()):
                self._failsafe_seen = True
            settled = not self._failsafe_seen or now >= self._settle_until
            if (all(s.known for s in self._slots.values()) and settled) or now >= self._learn_deadline:
                self.learning = False
                # the cars that waited under the master before us go first (a restart is no reason to wait again)
                self._reorder(sorted(self._order, key=lambda a: self._slots[a].wait_since is None))
                for s in self._slots.values():
                    if not s.known:
                        s.presence = Presence.ABSENT
                        s.limit = s.standalone
                        s.failsafe = s.standalone
                missing = [s.cfg.address for s in self._slots.values() if not s.known]
                self._events.add(now, EventKind.LEARNED_ALL, None,
                                 "learning over" + (f"; never heard {missing}: counted at standalone failsafe"
                                                    if missing else ""))
        for s in self._slots.values():
            if s.presence is _HEARD and now >= s.last_heard + t.servant_silent_after:
                s.presence = Presence.SILENT
                s.silent_since = now
                s.unconfirm()
                self._events.add(now, EventKind.SERVANT_SILENT, s.cfg.address,
                                 f"nothing heard for {now - s.last_heard:.2f} s: reserved, cut to its failsafe")
            if s.presence is _HEARD and (s.pilot is _B or s.pause is not _NO_PAUSE):
                self._pause(s, now)  # (else nothing to do: not paused, so paused_since is -INF already)
            if s.twin_extra and now >= s.twin_until and s.pending is None and s.limit == 0:
                s.twin_extra = 0
                self._events.add(now, EventKind.TWIN_GONE, s.cfg.address, "one unit again")
        if self._second_master_until > -INF and now >= self._second_master_until:
            self._second_master_until = -INF
            self._events.add(now, EventKind.SECOND_MASTER_GONE, None, "no other master heard")
            for s in self._slots.values():
                s.unconfirm()

    def _pause(self, s: _Slot, now: float) -> None:
        """8.5: a car in B while offered is paused, parked after reclaim_after; charging again, it resumes."""
        if s.want() == 0 or s.pilot is not _B:  # (charging, gone, stopped or wanting nothing)
            if s.pause is _PARKED and s.pilot.charging:
                self._events.add(now, EventKind.RESUMED, s.cfg.address,
                                 f"charges again on its {_a(s.limit)}: demand {_a(s.want())} again")
            s.pause = Pause.NONE
            s.paused_since = -INF
            return
        if s.pause is _NO_PAUSE:
            # its servant reports it offers current with the car in B: the car's own doing (in B at 0 A, B1,
            # it cannot charge: it waits, not pauses; a car that follows a cut to 0 is reported at 0 too)
            if s.offered is not None and s.offered > 0:
                s.pause = Pause.PAUSED
                s.paused_since = now
        elif s.pause is _PAUSED and now >= s.paused_since + self.timing.reclaim_after:
            s.pause = Pause.PARKED
            self._events.add(now, EventKind.PARKED, s.cfg.address,
                             f"in B while offered for {now - s.paused_since:.0f} s: parked at "
                             f"{_a(s.demand())} from leftovers, failsafe 0")

    # -- allocation and cut-then-grant ------------------------------------------------------

    def _allocatable(self, s: _Slot, now: float) -> bool:
        """Heard, answering and uncontested: it takes part in the allocation."""
        # (runs for every slot in every allocation pass: deaf() needs a pending set-limit, test that first)
        return (s.presence is _HEARD and s.twin_extra <= 0
                and (s.pending is None or not s.deaf(now, self.timing)))

    def _reclaim(self, now: float, unmet: bool, able: dict[int, bool]) -> bool:
        """Cap a car that draws clearly less than offered, or give its share back; True if a demand changed.

        A due timer stopped because its cap would not be below the limit makes the pass unsettled (``_stirred``):
        the next pass starts it again. A timer started (not yet due) or stopped as the draw is no longer low, the
        next pass leaves as it is."""
        changed = False
        for s in self._slots.values():
            if s.pending is not None:
                continue  # judge the draw against an acked limit only
            changed = self._reclaim_slot(s, now, unmet, able[s.cfg.address]) or changed
        return changed

    def _reclaim_slot(self, s: _Slot, now: float, unmet: bool, allocatable: bool) -> bool:
        """One slot's reclaim step (``_reclaim``; ``allocatable``: it takes part in the pass); True if its demand
        changed."""
        cfg = self.config
        m = s.measured
        if not allocatable or m is None or not s.pilot.charging:
            s.low_since = None
            return False
        if s.reclaim_cap is not None:
            if m >= s.limit - cfg.reclaim_margin_da // 2:
                self._give_back(s, now, f"draws {_a(m)}, near its {_a(s.limit)}")
                return True
            return False
        if not (s.limit > 0 and m < s.limit - cfg.reclaim_threshold_da):
            s.low_since = None
            return False
        if s.low_since is None:
            s.low_since = now
            if self.timing.reclaim_after <= 0:
                self._stirred = True  # (due at once: the next pass acts on it)
            return False
        if not (unmet and now >= s.low_since + self.timing.reclaim_after):
            return False
        cap = max(m + cfg.reclaim_margin_da, s.req_min, MIN_OFFER_DA)
        held, s.low_since = now - s.low_since, None
        if cap >= s.limit:
            self._stirred = True  # (the next pass starts the timer again)
            return False
        s.reclaim_cap = cap
        self._events.add(now, EventKind.RECLAIM, s.cfg.address,
                         f"draws {_a(m)} of {_a(s.limit)} for {held:.0f} s: capped at {_a(cap)}")
        return True

    def _reclaim_timer(self, s: _Slot, now: float, unmet: bool, allocatable: bool) -> tuple[bool, float | None]:
        """What ``_reclaim_slot`` would do to ``s`` (nothing outstanding) at ``now``, branch for branch: (True, its
        timer's start after it: kept, started or None) when it would at most start a timer not due yet or stop one
        as the draw is no longer low, so leave the pass settled; (False, ...) when it would decide something: give
        the share back, cap, or stop a due timer."""
        m = s.measured
        if not allocatable or m is None or not s.pilot.charging:
            return True, None
        cfg = self.config
        if s.reclaim_cap is not None:
            return m < s.limit - cfg.reclaim_margin_da // 2, s.low_since
        if not (s.limit > 0 and m < s.limit - cfg.reclaim_threshold_da):
            return True, None
        if s.low_since is None:
            return self.timing.reclaim_after > 0, now
        return not (unmet and now >= s.low_since + self.timing.reclaim_after), s.low_since

    def _give_back(self, s: _Slot, now: float, why: str) -> None:
        s.reclaim_cap = None
        s.low_since = None
        self._events.add(now, EventKind.RECLAIM_END, s.cfg.address, why + ": full share again")

    def _targets(self, now: float, able: dict[int, bool]) -> tuple[dict[int, int], dict[int, int]]:
        """(limit targets, failsafe targets) for every slot that can be told something (``able``: the slots that
        take part in the allocation, ``_allocatable``)."""
        t = self.timing
        reserved = 0
        reserved_fs = 0
        demands: list[Demand] = []
        rank = self._rank
        lt: dict[int, int] = {}
        ft: dict[int, int] = {}
        for a, s in self._slots.items():
            if able[a]:
                # (as ``Demand(...)``, without its Python-level constructor: one per servant per pass)
                demands.append(_new_tuple(Demand, (a, s.demand(), s.req_min, s.cfg.priority, rank[a], s.pause is _PARKED)))
                continue
            reserved += s.counted(now, t)
            if s.contested:
                lt[a] = 0
                ft[a] = 0
                reserved_fs += s.counted_fs() + s.twin_extra
                continue
            reserved_fs += s.reserved_failsafe(now, t)
            if s.known:  # silent (rule 3) or not answering: cut it to its failsafe
                f = s.counted_fs()
                lt[a] = s.limit if s.limit < f else f
                ft[a] = f
        got = self._allocation(max(0, self.limit_da - reserved), demands)
        lt.update(got)
        ft.update(self._failsafe_targets(demands, got, max(0, self._floor - reserved_fs)))
        return lt, ft

    def _failsafe_targets(self, demands: list[Demand], got: dict[int, int], fs_budget: int) -> dict[int, int]:
        """The failsafe currents of the demands: cars first, then the rest; never more than the floor in total (8.3).

        Every one is 0 or >= 6 A (a pilot cannot offer less than 6 A); a parked car's is 0: the cars that charge
        come first on the floor, and a parked one cannot resume while no master is heard, which hurts nobody.
        A failsafe current is the unit's low, safe current (IEC 61851-1 minimum, or 0 to pause), never a share
        topped up to its grant: a master that falls silent must drop every car to it.
        """
        slots = self._slots
        lo = {d.address: 0 if d.parked else min(slots[d.address].standalone, got[d.address]) for d in demands}
        total = sum(lo.values())
        if total > fs_budget:  # over budget (contested / silent units counted high): lowest first to 0
            for d in sorted(demands, key=lambda d: (got[d.address] > 0, d.priority, -d.rank)):
                if total <= fs_budget:
                    break
                total -= lo[d.address]
                lo[d.address] = 0
        return lo

    def _step(self, now: float, out: list[Message], changed: bool, touched: tuple[_Slot, ...] | None = None) -> None:
        """Run the timers and the allocation when a message changed something, or a timer is due.

        ``touched``: when nothing changed, the slots the call may have written (None: any of them).
        """
        # allocation only depends on what servants said and on timers: skip it when neither changed
        if changed or self._again or now >= self._deadline:
            self._again = False
            self._timers(now)
            if not self.learning and self._allocate(now, out):
                # a reclaim decision changed a demand: act on it now (one made in that pass, at the next call)
                self._again = self._allocate(now, out)
            self._settled = not (self.learning or self._again or self._stirred)
            self._settled_until = self._deaf_horizon(now)
            touched = None
        if self._budget is not None and self._budget.meter_timeout_s is not None:
            self._note_estimates(now, touched)  # (a change of what a meterless car may draw is stamped when it happens)
        stale = self._counts_stale
        if touched is None:
            self._counts_stale = None
        elif stale is not None and touched:  # (most calls touched no slot)
            stale.update(touched)
        d = self._compute_deadline(now, touched)
        if d <= now:  # a due timer whose condition does not hold: not a spin, but a pass may act on it
            d = now + self.timing.tick_period
            self._settled = False
        self._deadline = d

    def _deaf_horizon(self, now: float) -> float:
        """The first time after ``now`` an outstanding set-limit, not shown applied, could make its servant deaf."""
        t = self.timing
        return min((x for s in self._slots.values() if (p := s.pending) is not None and (x := p.deaf_from(t)) > now),
                   default=INF)

    def _allocate(self, now: float, out: list[Message]) -> bool:
        """One allocation pass (8.5): the targets, then supersede/ease and cuts, then the raises that fit.

        True when a reclaim decision changed a demand: the caller runs a second pass at once.
        """
        self._stirred = self._complied = False
        plan, reclaimed = self._plan(now)
        ledger = _Ledger.open(self._slots.values(), self.limit_da, now, self.timing, self._floor)
        second_master = self._second_master_until > now  # rule 6: servants fail safe; only lower, never grant
        raises = self._cuts(now, plan.lt, plan.ft, ledger, second_master, out)
        plan.held = [] if second_master else self._grants(now, raises, ledger, out)
        plan.counted, plan.failsafe, plan.complied = ledger.counted(), ledger.reserved_failsafe(), self._complied
        self._planned = plan
        self._stirred = self._stirred or reclaimed
        return reclaimed

    def _plan(self, now: float) -> tuple[_Planned, bool]:
        """(the plan: who takes part, the targets, unmet; a reclaim changed a demand), after the reclaim and
        rotation steps."""
        # which slots take part, asked once per pass: none of these steps changes what ``_allocatable`` reads
        able = {a: self._allocatable(s, now) for a, s in self._slots.items()}
        lt, ft = self._targets(now, able)
        unmet = any(s.want() > lt.get(a, 0) for a, s in self._slots.items()
                    if s.pause is _NO_PAUSE and able[a])  # (a car in B needs nothing now)
        reclaimed = self._reclaim(now, unmet, able)
        self._waits(now, lt, able)
        if now >= self._rotation_at:
            self._rotate(now)
            self._rotated_at = now
            lt, ft = self._targets(now, able)
            self._waits(now, lt, able)
            return _Planned(able, lt, ft, None), reclaimed
        return _Planned(able, lt, ft, unmet), reclaimed

    def _cuts(self, now: float, lt: dict[int, int], ft: dict[int, int], ledger: _Ledger, second_master: bool,
              out: list[Message]) -> list[tuple[_Slot, int, int]]:
        """Send every cut and confirm now (always allowed, rule 1); return the raises, for ``_grants``."""
        raises: list[tuple[_Slot, int, int]] = []
        for a, s in self._slots.items():
            if a not in lt:
                continue
            if s.pending is None:
                L, F, eased = lt[a], ft.get(a, 0), False  # (as ``_supersede`` says without a set-limit outstanding)
            else:
                step = self._supersede(s, lt[a], ft.get(a, 0), now, ledger)
                if step is None:
                    continue  # wait for its ack (re-sent every ack_timeout)
                L, F, eased = step
            # (as ``_tells_nothing``, inline: this runs for every slot in every pass)
            if F > s.failsafe and L == s.limit and not self._worth_fs_raise(s, F):
                F = s.failsafe  # no set-limit just to nudge a failsafe up a little
            if s.confirmed and L == s.limit and F == s.failsafe and not eased:
                continue  # (an eased cut is sent even so: the unit may have applied the deep one)
            if second_master and L >= s.limit and F >= s.failsafe:
                continue  # rule 6: two masters: servants fail safe; only lower, never confirm or grant
            if L <= s.limit and F <= s.failsafe:
                before = s.counted(now, self.timing)
                self._send(s, L, F, now, out)  # a cut (or a confirm): always allowed
                ledger.book(s, before)
            else:
                raises.append((s, L, F))
        return raises

    def _supersede(self, s: _Slot, L: int, F: int, now: float, ledger: _Ledger) -> tuple[int, int, bool] | None:
        """What to tell ``s`` with its set-limit outstanding: (limit, failsafe, eased), or None to wait for its ack.

        Rule 1: a set-limit that must be replaced (a deeper cut, silent or not answering, or an eased cut)
        may have been applied already, so it is counted as if it were, and replaced.
        """
        if s.pending is None:
            return L, F, False
        p = s.pending.msg
        eased = False
        if self._allocatable(s, now):
            if s.pending.while_silent and p.limit_da < L and p.limit_da < s.limit and not s.eased_cut:
                # a cut sent while a servant was silent (it, or another that counted at its standalone
                # failsafe), deeper than now needed because the silent one is heard again: replace it by
                # a shallower one, still counted at its old limit until acked, so a meterless unit is not
                # held at the deep cut for a whole reaction allowance after two lost status frames. Once
                # per unacked run, so it cannot become a cycle
                eased = s.eased_cut = True
            elif L >= p.limit_da:
                return None
            elif p.limit_da < s.limit and self._complying(ledger):
                # rule 9: the count is above a lowered limit and the cuts outstanding already meet it, each
                # acked within the window of the lowering that sent it; a deeper cut for a demand (a car
                # plugged in) would restart this one's reaction allowance and keep the count above the limit
                # past that window. It waits for the ACK
                self._complied = True
                return None
        elif p.limit_da <= L and p.failsafe_da <= F:
            return None
        s.limit = max(s.limit, p.limit_da)
        s.failsafe = max(s.failsafe, p.failsafe_da)
        L, F = min(L, s.limit), min(F, s.failsafe)
        why = f"{_a(L)} is enough now" if eased else "cut instead"
        self._events.add(now, EventKind.SUPERSEDED, s.cfg.address, f"txn {p.txn} ({_a(p.limit_da)}) unanswered: {why}")
        s.pending = None
        self._stirred = True
        return L, F, eased

    def _complying(self, ledger: _Ledger) -> bool:
        """Rule 9's window: what is counted (the pass's ledger) is above the limit, and fits it once the
        outstanding set-limits are acked (never with a fixed limit: rule 1 keeps the count within it)."""
        if ledger.counted() <= ledger.limit_da:
            return False
        now, t = ledger.now, self.timing
        return sum(s.counted(now, t, once_acked=True) for s in self._slots.values()) <= ledger.limit_da

    def _grants(self, now: float, raises: list[tuple[_Slot, int, int]], ledger: _Ledger,
                out: list[Message]) -> list[tuple[_Slot, int, int]]:
        """Send the raises that fit under the limit (rule 1), by priority then rotation order; of the rest only
        the lowering part, or a confirm. Returns the raises held back with nothing sent (``_Planned.held``)."""
        raises.sort(key=lambda x: (-x[0].cfg.priority, x[0].rank))
        held: list[tuple[_Slot, int, int]] = []
        for raised in raises:
            s, L, F = raised
            before = s.counted(now, self.timing)
            fs_before = s.counted_fs()
            if not ledger.can_grant(s, L, F):
                L, F = min(L, s.limit), min(F, s.failsafe)  # only the lowering part, or a confirm
                if s.confirmed and L == s.limit and F == s.failsafe:
                    held.append(raised)
                    continue
            self._send(s, L, F, now, out)  # a grant: counted from now
            ledger.book(s, before, fs_before)
        return held

    def _tells_nothing(self, s: _Slot, L: int, F: int) -> bool:
        """``_cuts`` sends ``s`` nothing for targets ``L`` and ``F`` without a set-limit outstanding: it is confirmed
        at them already (a failsafe raise too small to be worth one aside). ``_cuts`` decides it inline."""
        if F > s.failsafe and L == s.limit and not self._worth_fs_raise(s, F):
            F = s.failsafe
        return s.confirmed and L == s.limit and F == s.failsafe

    def _worth_fs_raise(self, s: _Slot, f: int) -> bool:
        """Raise only the failsafe of a confirmed servant when it is a real step (no chatter)."""
        return f >= s.failsafe + 20

    def _waits(self, now: float, lt: dict[int, int], able: dict[int, bool]) -> None:
        """Who waits for current under shortage, since when, and so when the next rotation is due.

        A car waits while it wants at least the smallest offer and its target is 0. Its wait goes on
        through a moment of silence (two lost STATUS frames): had that restarted the clock, every such
        blip would put the rotation off by a whole interval (chaos seed 802235). Rotations come at most
        once per ``rotation_interval``.
        """
        oldest = INF
        for a, s in self._slots.items():
            # (a paused or parked car does not wait: in B it needs nothing now, and a parked one is served
            # from leftovers only, so moving it to the front would change nothing)
            wants = s.known and not s.contested and s.pause is _NO_PAUSE and s.want() >= MIN_OFFER_DA
            if not wants:
                s.wait_since = None
            elif able[a]:
                if lt.get(a, 0) > 0:
                    s.wait_since = None
                elif s.wait_since is None:
                    s.wait_since = now
            if s.wait_since is not None and s.wait_since < oldest:
                oldest = s.wait_since
        if oldest == INF:
            self._rotation_at = INF
        else:
            self._rotation_at = max(oldest, self._rotated_at) + self.timing.rotation_interval

    def _rotate(self, now: float) -> None:
        """Shortage: the ones that waited go first for the next interval, longest wait first (no starvation)."""
        slots = self._slots
        waiting = sorted((a for a in self._order if slots[a].wait_since is not None),
                         key=lambda a: slots[a].wait_since or 0.0)
        if not waiting:
            return
        rest = [a for a in self._order if a not in waiting]
        self._reorder(waiting + rest)
        self._events.add(now, EventKind.ROTATE, None, f"shortage: {waiting} charge next, the others may wait")

    def _allocation(self, budget: int, demands: list[Demand]) -> dict[int, int]:
        """``allocation.allocate``, remembered for the last inputs: most passes (an ACK, a STATUS showing a
        set-limit applied) come with the same budget and demands as the one before, and it is a pure function."""
        last = self._last_allocation
        if last is not None and last[0] == budget and last[1] == demands:
            return dict(last[2])
        got = allocation.allocate(budget, demands)
        self._last_allocation = (budget, demands, dict(got))
        return got

    def _reorder(self, order: list[int]) -> None:
        """A new rotation order, and the ranks every allocation pass reads from it (kept, not rebuilt each pass)."""
        self._order = order
        self._rank = {a: i for i, a in enumerate(order)}

    def _send(self, s: _Slot, limit: int, failsafe: int, now: float, out: list[Message]) -> None:
        limit = limit if limit >= MIN_OFFER_DA else 0  # (rounding down is always safe)
        failsafe = failsafe if failsafe >= MIN_OFFER_DA else 0
        txn = self._next_txn(s.cfg.address)
        msg = SetLimit(s.cfg.address, txn, limit, failsafe, self.epoch)
        silence = any(x.presence is _SILENT for x in self._slots.values())
        s.pending = _Pending(msg, now, now, silence)
        kind = EventKind.CUT if limit < s.limit else EventKind.GRANT if limit > s.limit else EventKind.CONFIRM
        self._events.add(now, kind, s.cfg.address,
                         f"txn {txn}: {_a(s.limit)} -> {_a(limit)}, failsafe {_a(failsafe)}")
        out.append(msg)

    def _next_txn(self, address: int) -> int:
        txn = (self._txns.get(address, 0) + 1) & 0xFF
        self._txns[address] = txn
        return txn

    def _compute_deadline(self, now: float, touched: tuple[_Slot, ...] | None = None) -> float:
        """The next timer: the master's own, and the earliest slot's (``touched``: see ``_slot_dues``)."""
        d = self._slot_dues(now, touched)
        if self.learning:
            d = min(d, self._learn_deadline)
            if self._failsafe_seen and now < self._settle_until:
                d = min(d, self._settle_until)
        if self._rotation_at < d:  # (after every call: comparisons, not min())
            d = self._rotation_at
        second = self._second_master_until
        return second if now < second < d else d

    def _slot_dues(self, now: float, touched: tuple[_Slot, ...] | None) -> float:
        """The earliest ``_Slot.due``, kept up to date rather than worked out for every slot after every frame.

        With ``touched`` only those slots may have changed since the last call, so only their dues are worked
        out again; every other kept one still holds as long as it is after ``now`` (a slot's due only changes
        with its fields or once ``now`` reaches it). If one is not, or ``touched`` is None, all are. The least
        is kept too (``_dues_min``): it is looked for again (``_least_due``) only when a touched slot that
        held it moved later.
        """
        t = self.timing
        dues = self._dues
        if touched is not None:
            heap = self._dues_heap
            low = self._dues_min
            lost = False  # the slot holding the least moved later: the least may be another's now
            for s in touched:
                a = s.cfg.address
                x = s.due(now, t)
                if x == dues[a]:
                    continue
                if x > low and dues[a] == low:
                    lost = True
                dues[a] = x
                if heap is not None:
                    heapq.heappush(heap, (x, a))
                if x < low:
                    low = x
            if lost:
                low = self._least_due()
            if low > now:
                self._dues_min = low
                return low
        for a, s in self._slots.items():
            dues[a] = s.due(now, t)
        self._dues_heap = None  # (made again from the dues when next needed: most full scans are not followed by one)
        self._dues_min = min(dues.values(), default=INF)
        return self._dues_min

    def _least_due(self) -> float:
        """The least of the kept dues (INF: no slot), from ``_dues_heap``, made from them when there is none.

        (A heap, not a scan of every slot: the slot whose silence timer is the earliest is the one heard longest
        ago, so with STATUS frames in turn nearly every STATUS moved the least, and a scan of 62 slots ran for each.)
        An entry whose slot's due has moved since it was pushed is dropped when it comes to the top; the heap
        is made afresh when such entries are most of it.
        """
        heap, dues = self._dues_heap, self._dues
        if heap is None or len(heap) > 4 * len(dues) + 8:
            heap = self._dues_heap = [(x, a) for a, x in dues.items()]
            heapq.heapify(heap)
        while heap and dues[heap[0][1]] != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else INF
