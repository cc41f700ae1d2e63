"""The master's sans-IO state machine: who may offer how much, with cut-then-grant.

The caller feeds it accepted messages (``receive``) and time (``tick``) and
sends what each call returns, in order.  The master never reads a clock.

Rule 1 accounting (``committed_da``): each servant counts at
max(acked limit, pending limit) while a set-limit is unacked, so a cut counts
at its old value until its ack and a grant from the moment it is sent.  A
grant is only sent when the counted sum stays within the limit; freed current
therefore reaches others only after the cut's ack.  The armed failsafe
currents are accounted the same way, against the same limit.

The full set of rules and their reasons is docs/PROTOCOL.md section 8.
"""

from __future__ import annotations

from dataclasses import dataclass

from .core import allocation
from .core.allocation import Demand
from .core.config import Config, ServantConfig, Timing
from .core.events import Event, EventLog
from .frames import (
    HEARD_PAGE_SIZE,
    HEARTBEAT_SEQ_MODULO,
    MASTER_ADDRESS,
    MAX_EVSE_DA,
    MAX_MASTER_ID,
    MIN_OFFER_DA,
    Ack,
    Heartbeat,
    Join,
    Message,
    Nack,
    NackCode,
    Release,
    ReleaseReason,
    Request,
    SetLimit,
    Status,
    heard_page,
    serial_tag,
)
from .protocol.pilot import PilotState, clamp_da

INF = float("inf")


def _a(da: int) -> str:
    return f"{da / 10:.1f} A"


@dataclass(frozen=True)
class ServantView:
    """A read-only snapshot of one servant, as the master accounts for it (for UIs and tests)."""

    address: int
    state: str  # unknown, absent, silent, conflict, idle, waiting, charging
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


class _Slot:
    """Everything the master knows about one configured servant."""

    def __init__(self, cfg: ServantConfig, rank: int) -> None:
        self.cfg = cfg
        self.standalone = clamp_da(cfg.failsafe_da, cfg.max_da)
        self.rank = rank
        self.limit = cfg.max_da  # unknown until learned: worst case (rule 7)
        self.failsafe = self.standalone
        self.pending: _Pending | None = None
        self.eased_cut = False  # an unacked cut was replaced by a shallower one since the last ack
        # a STATUS showed it offering this, more than we count for it: counted so until it acks a set-limit sent
        # since (the STATUS may be a late copy, so this is never what it is told: only what it is counted at)
        self.over_offer = 0
        self.over_offer_at = -INF
        self.known = False  # heard since this master started
        self.absent = False  # never heard, learning over: counted at its standalone failsafe
        self.confirmed = False  # acked a set-limit of this master and still following it
        self.last_heard = -INF
        self.silent_since: float | None = None
        self.conflict_until = -INF
        self.conflict_extra = 0  # the twin's worst case while contested
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

    # -- accounting ------------------------------------------------------------------

    def inputs(self) -> tuple[object, ...]:
        """Everything allocation reads from this slot that a STATUS can change.

        A STATUS that leaves all of it as it was needs no new allocation; one that changes any of it (the
        failsafe flag of a unit we had just counted as confirmed, say) must not be skipped.
        """
        p = self.pending
        return (self.known, self.absent, self.confirmed, self.limit, self.over_offer, self.failsafe,
                self.conflict_extra, None if p is None else p.applied, self.pilot, self.requested, self.measured,
                self.ev_stopped, self.status_failsafe, self.reclaim_cap, self.low_since)

    def counted_fs(self) -> int:
        f = self.failsafe
        if self.pending is not None:
            f = max(f, self.pending.msg.failsafe_da)
        return f

    def resend_at(self, t: Timing) -> float:
        """When its unacked set-limit is next re-sent (INF without one)."""
        p = self.pending
        return INF if p is None else p.resend_at(t, p.msg.limit_da < self.limit)

    def deaf(self, now: float, t: Timing) -> bool:
        """Unconfirmed and not answering a set-limit: it may not hear us (e.g. rebooted behind a bad link)."""
        return (not self.confirmed and self.known and self.pending is not None and not self.pending.applied
                and now >= self.pending.first_sent + t.ack_timeout)

    def own_count(self, now: float) -> int:
        """What its own pilot may offer by our count: acked or pending limit, or its current while going down."""
        base = self.limit
        if self.pending is not None:
            base = max(base, self.pending.msg.limit_da)
        if now < self.leaving_until:
            base = max(base, self.leaving_da)
        return base if base >= self.over_offer else self.over_offer

    def counted(self, now: float, t: Timing) -> int:
        base = self.own_count(now)
        if self.silent_since is not None:
            if now >= self.silent_since + t.silent_count_after:
                base = min(base, self.counted_fs())  # it has failed safe and its EV has followed
            # it may have rebooted where it hears no master: then it offers its standalone failsafe
            base = max(base, self.standalone)
        elif self.deaf(now, t) or (self.status_failsafe and not self.confirmed):
            # not answering, or in failsafe and not confirmed by us: it may be a servant that never heard
            # a master since it booted, which raises itself to its standalone failsafe
            base = max(base, self.standalone)
        return base + self.conflict_extra

    def reserved_fs(self, now: float, t: Timing) -> int:
        f = self.counted_fs()
        if self.silent_since is not None or self.deaf(now, t):
            f = max(f, self.standalone)
        return f

    def contested(self, now: float) -> bool:
        return self.conflict_extra > 0

    def want(self) -> int:
        if not self.pilot.vehicle_present or self.ev_stopped or self.requested <= 0:
            return 0
        w = min(self.requested, self.cfg.max_da)
        if self.reclaim_cap is not None:
            w = min(w, self.reclaim_cap)
        return w


class Master:
    """The master node.  See the module docstring and docs/PROTOCOL.md section 8."""

    def __init__(self, config: Config, now: float, master_id: int | None = None, epoch: int = 0) -> None:
        self.config = config
        self.timing = config.timing
        self.master_id = config.master_id if master_id is None else master_id
        if not 0 <= self.master_id <= MAX_MASTER_ID or not 0 <= epoch <= 255:
            raise ValueError(f"master id {self.master_id} must be 0-{MAX_MASTER_ID} and epoch {epoch} 0-255")
        self.epoch = epoch
        self.limit_da = config.limit_da
        self.started = now
        self._events = EventLog()
        self._slots = {s.address: _Slot(s, i) for i, s in enumerate(config.servants)}
        self._order = [s.address for s in config.servants]  # rotation order (index = rank)
        # the heartbeat pages that carry configured servants, sent in turn (PROTOCOL.md 5.2)
        self._pages = sorted({heard_page(a) for a in self._slots})
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
        self._rival_until = -INF
        self._rotation_at = INF
        self._rotated_at = -INF
        self._stranger_until: dict[int, float] = {}
        self._deadline = now
        self._dirty = True
        self._events.add(now, "learning", None,
                         f"master {self.master_id} epoch {epoch}: learning what {len(self._slots)} servants offer")

    # -- public API ------------------------------------------------------------------

    def receive(self, msg: Message, now: float) -> list[Message]:
        out: list[Message] = []
        if self.left:
            return out  # a set-limit now would pull a servant out of the failsafe its leaving heartbeat started
        if not isinstance(msg, Status):
            self._dirty = True
        if isinstance(msg, Heartbeat):
            self._rival(now, f"heartbeat from master {msg.master_id} epoch {msg.epoch}", out)
        elif isinstance(msg, Nack):
            self._on_nack(msg, now, out)
        elif isinstance(msg, SetLimit):
            self._rival(now, f"set-limit to servant {msg.address} from another master", out)
        else:
            slot = self._slots.get(msg.address)
            if slot is None:
                self._stranger(msg.address, now, out)
            else:
                self._heard(slot, now)
                if isinstance(msg, Status):
                    # allocation reads only the slot: skip it when the report changed nothing there
                    before = slot.inputs()
                    self._on_status(slot, msg, now, out)
                    if slot.inputs() != before:
                        self._dirty = True
                elif isinstance(msg, Ack):
                    self._on_ack(slot, msg, now)
                elif isinstance(msg, Release):
                    self._on_release(slot, msg, now)
                elif isinstance(msg, Request):
                    self._on_request(slot, msg, now)
                elif isinstance(msg, Join):
                    self._on_join(slot, msg, now, out)
        self._step(now, out)
        return out

    def tick(self, now: float) -> list[Message]:
        out: list[Message] = []
        if self.left:
            return out
        if now >= self._next_hb:
            out.append(self._heartbeat(now))
            self._next_hb += self.timing.heartbeat_period
            if self._next_hb <= now:  # called late: do not burst to catch up
                self._next_hb = now + self.timing.heartbeat_period
        resend: list[tuple[_Slot, _Pending]] = []
        for slot in self._slots.values():
            p = slot.pending
            if p is not None and now >= slot.resend_at(self.timing):
                p.sent_at = now
                resend.append((slot, p))
        self._step(now, out)
        # after the step: an unanswered set-limit it replaced (e.g. a grant become a cut) is not sent as well
        out.extend(p.msg for slot, p in resend if slot.pending is p)
        return out

    def shutdown(self, now: float) -> list[Message]:
        """Graceful stop: a leaving heartbeat makes every servant fail safe at once (rule 5)."""
        self._events.add(now, "leaving", None, "master shutting down: servants fail safe now")
        self.left = True
        self._deadline = self._next_hb = INF
        return [self._heartbeat(now, leaving=True)]

    def next_deadline(self) -> float:
        """Latest time ``tick`` must next be called."""
        return self._next_hb if self._next_hb < self._deadline else self._deadline

    def drain_events(self) -> list[Event]:
        return self._events.drain()

    def committed_da(self) -> int:
        """Sum counted against the limit now (rule 1).

        Never above ``limit_da`` once learning is over, except while an address is contested (a twin counts
        as two units).  While learning, servants not heard yet count at their maximum (rule 7 worst case).
        """
        return self._sum_counted(self._last_now)

    def servants(self) -> list[ServantView]:
        now = self._last_now
        return [
            ServantView(
                s.cfg.address, self._state(s, now), s.counted(now, self.timing), s.limit,
                None if s.pending is None else s.pending.msg.limit_da, s.want(), s.counted_fs(),
                s.offered, s.measured, s.reclaim_cap,
            )
            for s in self._slots.values()
        ]

    def view(self, address: int) -> ServantView | None:
        for v in self.servants():
            if v.address == address:
                return v
        return None

    @property
    def rival(self) -> bool:
        return self._rival_until > self._last_now

    _last_now = -INF

    # -- helpers ------------------------------------------------------------------------

    def _heartbeat(self, now: float, leaving: bool = False) -> Heartbeat:
        page = self._pages[self._page_turn % len(self._pages)]
        self._page_turn += 1
        heard = 0
        window = self.timing.servant_silent_after
        for a, s in self._slots.items():
            # heard within the silent bound: once it is silent the bit is clear, so a servant that hears us but
            # cannot be heard (a mute transmitter) fails safe heard_timeout later (rule 3, rule 4)
            if heard_page(a) == page and s.known and now < s.last_heard + window:
                heard |= 1 << (a % HEARD_PAGE_SIZE)
        self._seq = (self._seq + 1) % HEARTBEAT_SEQ_MODULO
        return Heartbeat(self.master_id, self.epoch, self.limit_da, page, heard, self._seq, leaving=leaving,
                         learning=self.learning, conflict=self._rival_until > now)

    def _sum_counted(self, now: float) -> int:
        return sum(s.counted(now, self.timing) for s in self._slots.values())

    def _state(self, s: _Slot, now: float) -> str:
        if s.contested(now):
            return "conflict"
        if not s.known:
            return "absent" if s.absent else "unknown"
        if s.silent_since is not None:
            return "silent"
        if s.deaf(now, self.timing):
            return "unanswering"
        if s.status_failsafe and not s.confirmed:
            return "failsafe"
        if s.want() == 0:
            return "idle"
        return "charging" if max(s.limit, 0) > 0 else "waiting"

    def _heard(self, slot: _Slot, now: float) -> None:
        slot.last_heard = now
        if slot.silent_since is not None:
            self._dirty = True
            self._events.add(now, "servant-back", slot.cfg.address,
                             f"heard again after {now - slot.silent_since:.2f} s silent")
            if now >= slot.silent_since + self.timing.silent_count_after:
                # it was counted at its failsafe and the rest may have been granted to others: it comes back
                # from there (a raise is a grant again; easing its cut back up would over-commit)
                slot.limit = min(slot.limit, slot.counted_fs())
            slot.silent_since = None
            slot.confirmed = False

    def _rival(self, now: float, why: str, out: list[Message]) -> None:
        fresh = self._rival_until <= now
        self._rival_until = now + self.timing.conflict_hold
        if fresh:
            self._events.add(now, "rival-master", None, why + ": granting nothing, servants fail safe")
            out.append(Nack(MASTER_ADDRESS, NackCode.SECOND_MASTER, MASTER_ADDRESS))

    def _stranger(self, address: int, now: float, out: list[Message]) -> None:
        """A servant that is not in the config: it is not in the budget, so pause it."""
        if self._stranger_until.get(address, -INF) <= now:
            self._events.add(now, "unconfigured", address, "servant not in the config: told to pause")
            out.append(SetLimit(address, self._next_txn(address), 0, 0, self.epoch))
        self._stranger_until[address] = now + self.timing.conflict_hold

    def _conflict(self, slot: _Slot, now: float, why: str, out: list[Message], twin_max: int | None = None) -> None:
        fresh = slot.conflict_extra == 0
        slot.conflict_until = now + self.timing.conflict_hold
        # the other unit hears our set-limits to this address too: it offers at most what we allowed it,
        # or its standalone failsafe if it follows no master
        worst = max(slot.limit, slot.standalone, 0 if slot.pending is None else slot.pending.msg.limit_da)
        if twin_max is not None:
            worst = min(worst, twin_max)
        slot.conflict_extra = max(slot.conflict_extra, worst)
        if fresh:
            self._events.add(now, "twin", slot.cfg.address, why + ": no grants, cut to 0, counted as two units")
            out.append(Nack(slot.cfg.address, NackCode.ADDRESS_CONFLICT, MASTER_ADDRESS))
            slot.confirmed = False

    def _check_tag(self, slot: _Slot, tag: int, now: float, out: list[Message], twin_max: int | None = None) -> None:
        cfg_serial = slot.cfg.serial
        if cfg_serial and tag != serial_tag(cfg_serial):
            self._conflict(slot, now, f"unit with serial tag {tag:#x}, config says {serial_tag(cfg_serial):#x}",
                           out, twin_max)
            return
        if slot.tag is not None and tag != slot.tag:
            if now - slot.tag_seen <= self.timing.conflict_hold:
                self._conflict(slot, now, f"serial tags {slot.tag:#x} and {tag:#x} on one address", out, twin_max)
            else:
                self._events.add(now, "unit-replaced", slot.cfg.address, f"serial tag {slot.tag:#x} -> {tag:#x}")
        slot.tag = tag
        slot.tag_seen = now

    # -- message handlers ------------------------------------------------------------------

    def _on_status(self, slot: _Slot, st: Status, now: float, out: list[Message]) -> None:
        self._check_tag(slot, st.serial_tag, now, out)
        if st.conflict:
            self._conflict(slot, now, "servant reports a twin", out)
        if not slot.known:
            slot.known = True
            slot.absent = False
            # what it offers now (rule 5), or what its car still draws if more: a cut (or failsafe) another
            # master sent just before us that its car is still following
            slot.limit = st.offered_da
            drawing = ""
            if st.measured_da is not None and st.measured_da > st.offered_da:
                slot.limit = min(st.measured_da, slot.cfg.max_da)
                drawing = f", its car still draws {_a(st.measured_da)}: counted at {_a(slot.limit)}"
            slot.failsafe = slot.standalone
            waits = ""
            if (st.pilot.vehicle_present and not st.ev_stopped and min(st.requested_da, MAX_EVSE_DA) >= MIN_OFFER_DA
                    and st.offered_da == 0 and not st.measured_da):
                # its car wants current and gets none: it waited under the master before us (or that one armed
                # it a 0 A failsafe). How long is not on the wire; it goes first in our rotation order
                slot.wait_since = now
                waits = ", its car waits"
            self._events.add(now, "learned", slot.cfg.address, f"offers {_a(st.offered_da)}{drawing}{waits}")
        elif st.offered_da > slot.own_count(now) + slot.conflict_extra:  # (a twin reports on the same address)
            # it offers more than it may (a late copy of an old grant applied, a cut it never got, a reboot to
            # its standalone failsafe): an over-commit in progress, confirmed or not. Count it at what it
            # offers and cut it (a grant is counted from the moment it is sent, so one just applied is not here).
            # Only counted: the STATUS may itself be a late copy, and telling it that much would be a grant
            self._events.add(now, "offer-above-count", slot.cfg.address,
                             f"reports {_a(st.offered_da)} above the {_a(slot.own_count(now))} counted: "
                             "counting it, and cutting it")
            slot.over_offer = st.offered_da
            slot.over_offer_at = now
            slot.confirmed = False
        if st.failsafe and slot.confirmed:
            slot.confirmed = False  # it fell to failsafe: confirm its limit again
        elif (slot.confirmed and slot.pending is None and not st.conflict
              and st.offered_da < clamp_da(slot.limit, slot.cfg.max_da)):
            # it offers less than we confirmed, with nothing of ours outstanding: it lost what we told it, e.g.
            # it rebooted too fast to go silent and its JOIN did not get through (lost, or taken for a repeat:
            # a rebooted unit's first frames can be byte-identical to those after its previous boot; chaos
            # seed 2387). It waits for a SET_LIMIT: confirm it again (still counted at its limit meanwhile)
            slot.confirmed = False
            self._events.add(now, "offer-below-count", slot.cfg.address,
                             f"reports {_a(st.offered_da)}, below the {_a(slot.limit)} confirmed: confirming again")
        p = slot.pending
        if p is not None and not p.applied and st.offered_da == min(p.msg.limit_da, slot.cfg.max_da):
            # (a meterless unit acks a cut only after the reaction allowance: it is not "unanswering" meanwhile)
            p.applied = True
        slot.pilot = st.pilot
        slot.requested = st.requested_da
        slot.offered = st.offered_da
        slot.measured = st.measured_da
        if st.ev_stopped and not slot.ev_stopped:
            self._events.add(now, "ev-stopped", slot.cfg.address, "servant stopped an overdrawing EV")
        slot.ev_stopped = st.ev_stopped
        slot.status_failsafe = st.failsafe
        if not st.pilot.vehicle_present:
            slot.reclaim_cap = None
            slot.low_since = None

    def _on_ack(self, slot: _Slot, ack: Ack, now: float) -> None:
        p = slot.pending
        if p is None or ack.txn != p.msg.txn:
            return  # a duplicate of an ack already taken
        slot.pending = None
        slot.eased_cut = False
        if p.first_sent >= slot.over_offer_at:
            slot.over_offer = 0  # it applied a set-limit sent since it showed more: it offers at most that now
        old = slot.limit
        slot.limit = min(ack.applied_da, p.msg.limit_da)
        slot.failsafe = min(p.msg.failsafe_da, clamp_da(p.msg.failsafe_da, slot.cfg.max_da))
        slot.confirmed = slot.over_offer == 0  # (else a set-limit sent since it showed more must still be acked)
        slot.status_failsafe = False  # applying our set-limit ended its failsafe
        kind = "cut-acked" if slot.limit < old else "grant-acked" if slot.limit > old else "acked"
        self._events.add(now, kind, slot.cfg.address,
                         f"txn {ack.txn}: {_a(slot.limit)} ({ack.how.name.lower()}) after {now - p.first_sent:.2f} s")

    def _on_release(self, slot: _Slot, rel: Release, now: float) -> None:
        if rel.reason is ReleaseReason.SHUTDOWN:
            # going down: its pilot is off, but unlike a finished, unplugged or faulted car this one may still
            # draw what it was offered until its reaction allowance has passed (rule 2): keep counting that
            held = max(slot.counted(now, self.timing) - slot.conflict_extra, rel.released_da)
            slot.leaving_da = max(slot.leaving_da if now < slot.leaving_until else 0, held)
            slot.leaving_until = now + self.timing.reaction_allowance
            slot.pending = None
            self._events.add(now, "release", slot.cfg.address,
                             f"shutdown: {_a(rel.released_da)} back, counted at {_a(held)} for "
                             f"{self.timing.reaction_allowance:g} s while its car follows the pilot")
        else:
            self._events.add(now, "release", slot.cfg.address,
                             f"{rel.reason.name.lower()}: {_a(rel.released_da)} back")
        if slot.pending is not None and slot.pending.msg.limit_da <= slot.limit:
            slot.pending = None  # a cut: offering 0 now is certainly within it
        slot.limit = 0
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
            self._conflict(slot, now, f"unit serial {join.serial:#x} is not the configured {cfg_serial:#x}",
                           out, join.max_da)
            return
        self._check_tag(slot, serial_tag(join.serial), now, out, join.max_da)
        # it (re)booted or followed us anew: its armed failsafe may be back at standalone
        slot.failsafe = max(slot.failsafe, slot.standalone)
        slot.confirmed = False

    def _on_nack(self, nack: Nack, now: float, out: list[Message]) -> None:
        if nack.reporter == MASTER_ADDRESS:
            self._rival(now, "Nack from another master", out)
            return
        slot = self._slots.get(nack.reporter)
        if slot is not None:
            self._heard(slot, now)
        if nack.code is NackCode.SECOND_MASTER:
            self._rival(now, f"servant {nack.reporter} hears two masters", out)
        elif nack.code is NackCode.ADDRESS_CONFLICT and slot is not None:
            self._conflict(slot, now, "servant reports a twin", out)
        elif nack.code is NackCode.OLD_TXN and slot is not None:
            p = slot.pending
            if p is not None and nack.txn == p.msg.txn:
                # it applied a newer txn of this epoch than the one we wait on (we restarted with the same
                # epoch): go on numbering after it, and send what we want again under the next number
                self._txns[slot.cfg.address] = nack.detail & 0xFF
                self._events.add(now, "renumber", nack.reporter,
                                 f"txn {nack.txn} is older than its txn {nack.detail}: sent again as a newer one")
                slot.pending = None
                self._send(slot, p.msg.limit_da, p.msg.failsafe_da, now, out)
        elif nack.code is NackCode.EV_OVERDRAW:
            self._events.add(now, "ev-overdraw", nack.reporter,
                             f"EV ignored its pilot (drawing {_a(nack.detail)}): stopped by its servant")
        else:
            self._events.add(now, "nack", nack.reporter, f"{nack.code.name.lower()} txn {nack.txn}")

    # -- timers --------------------------------------------------------------------------

    def _timers(self, now: float) -> None:
        t = self.timing
        if self.learning:
            if any(s.status_failsafe for s in self._slots.values()):
                self._failsafe_seen = True
            settled = not self._failsafe_seen or now >= self._settle_until
            if (all(s.known for s in self._slots.values()) and settled) or now >= self._learn_deadline:
                self.learning = False
                # the cars that waited under the master before us go first (a restart is no reason to wait again)
                self._order.sort(key=lambda a: self._slots[a].wait_since is None)
                for s in self._slots.values():
                    if not s.known:
                        s.absent = True
                        s.limit = s.standalone
                        s.failsafe = s.standalone
                missing = [s.cfg.address for s in self._slots.values() if not s.known]
                self._events.add(now, "learned-all", None,
                                 "learning over" + (f"; never heard {missing}: counted at standalone failsafe"
                                                    if missing else ""))
        for s in self._slots.values():
            if s.known and s.silent_since is None and now >= s.last_heard + t.servant_silent_after:
                s.silent_since = now
                s.confirmed = False
                self._events.add(now, "servant-silent", s.cfg.address,
                                 f"nothing heard for {now - s.last_heard:.2f} s: reserved, cut to its failsafe")
            if s.conflict_extra and now >= s.conflict_until and s.pending is None and s.limit == 0:
                s.conflict_extra = 0
                self._events.add(now, "twin-gone", s.cfg.address, "one unit again")
        if self._rival_until > -INF and now >= self._rival_until:
            self._rival_until = -INF
            self._events.add(now, "rival-gone", None, "no other master heard")
            for s in self._slots.values():
                s.confirmed = False

    # -- allocation and cut-then-grant ------------------------------------------------------

    def _allocatable(self, s: _Slot) -> bool:
        """Heard, answering and uncontested: it takes part in the allocation."""
        return (s.known and s.silent_since is None and not s.contested(0.0)
                and not s.deaf(self._last_now, self.timing))

    def _reclaim(self, now: float, unmet: bool) -> None:
        cfg = self.config
        for s in self._slots.values():
            m = s.measured
            if s.pending is not None:
                continue  # judge the draw against an acked limit only
            if not self._allocatable(s) or m is None or not s.pilot.charging:
                s.low_since = None
                continue
            if s.reclaim_cap is not None:
                if m >= s.limit - cfg.reclaim_margin_da // 2:
                    self._give_back(s, now, f"draws {_a(m)}, near its {_a(s.limit)}")
                continue
            if s.limit > 0 and m < s.limit - cfg.reclaim_threshold_da:
                if s.low_since is None:
                    s.low_since = now
                elif unmet and now >= s.low_since + self.timing.reclaim_after:
                    cap = max(m + cfg.reclaim_margin_da, s.req_min, MIN_OFFER_DA)
                    if cap < s.limit:
                        s.reclaim_cap = cap
                        self._dirty = True
                        self._events.add(now, "reclaim", s.cfg.address,
                                         f"draws {_a(m)} of {_a(s.limit)} for {now - s.low_since:.0f} s: "
                                         f"capped at {_a(cap)}")
                    s.low_since = None
            else:
                s.low_since = None

    def _give_back(self, s: _Slot, now: float, why: str) -> None:
        self._dirty = True
        s.reclaim_cap = None
        s.low_since = None
        self._events.add(now, "reclaim-end", s.cfg.address, why + ": full share again")

    def _targets(self, now: float) -> tuple[dict[int, int], dict[int, int]]:
        """(limit targets, failsafe targets) for every slot that can be told something."""
        reserved = 0
        reserved_fs = 0
        demands: list[Demand] = []
        rank = {a: i for i, a in enumerate(self._order)}
        lt: dict[int, int] = {}
        ft: dict[int, int] = {}
        for a, s in self._slots.items():
            if self._allocatable(s):
                demands.append(Demand(a, s.want(), s.req_min, s.cfg.priority, rank[a]))
            elif s.known and not s.contested(now):  # silent (rule 3) or not answering
                f = s.counted_fs()
                lt[a] = min(s.limit, f)  # cut it to its failsafe
                ft[a] = f
                reserved += s.counted(now, self.timing)
                reserved_fs += s.reserved_fs(now, self.timing)
            elif s.contested(now):
                lt[a] = 0
                ft[a] = 0
                reserved += s.counted(now, self.timing)
                reserved_fs += s.counted_fs() + s.conflict_extra
            else:
                reserved += s.counted(now, self.timing)
                reserved_fs += s.reserved_fs(now, self.timing)
        budget = max(0, self.limit_da - reserved)
        got = allocation.allocate(budget, demands)
        lt.update(got)
        # failsafe currents: cars first, then the rest; never more than the limit in total
        fs_budget = max(0, self.limit_da - reserved_fs)
        # (every failsafe target below is 0 or >= 6 A: a pilot cannot offer less than 6 A)
        lo = {d.address: min(self._slots[d.address].standalone, got[d.address]) for d in demands}
        order = sorted(demands, key=lambda d: (got[d.address] > 0, d.priority, -d.rank), reverse=False)
        total = sum(lo.values())
        for d in order:  # over budget (contested / silent units counted high): lowest first to 0
            if total <= fs_budget:
                break
            total -= lo[d.address]
            lo[d.address] = 0
        # A failsafe current is the unit's low, safe current (IEC 61851-1 minimum, or 0 to pause),
        # never a share topped up to its grant: a master that falls silent must drop every car to it.
        ft.update(lo)
        return lt, ft

    def _step(self, now: float, out: list[Message]) -> None:
        self._last_now = now
        # allocation only depends on what servants said and on timers: skip it when neither changed
        if self._dirty or now >= self._deadline:
            self._dirty = False
            self._timers(now)
            if not self.learning:
                self._allocate(now, out)
                if self._dirty:  # a reclaim decision changed a demand: act on it now
                    self._dirty = False
                    self._allocate(now, out)
        self._deadline = self._compute_deadline(now)

    def _allocate(self, now: float, out: list[Message]) -> None:
        lt, ft = self._targets(now)
        unmet = any(s.want() > lt.get(a, 0) for a, s in self._slots.items() if self._allocatable(s))
        self._reclaim(now, unmet)
        self._waits(now, lt)
        if now >= self._rotation_at:
            self._rotate(now)
            self._rotated_at = now
            lt, ft = self._targets(now)
            self._waits(now, lt)
        total = self._sum_counted(now)
        total_fs = sum(s.reserved_fs(now, self.timing) + s.conflict_extra for s in self._slots.values())
        raises: list[tuple[_Slot, int, int]] = []
        rival = self._rival_until > now
        for a, s in self._slots.items():
            if a not in lt:
                continue
            L, F = lt[a], ft.get(a, 0)
            eased = False
            if s.pending is not None:
                p = s.pending.msg
                if self._allocatable(s):
                    if s.pending.while_silent and p.limit_da < L and p.limit_da < s.limit and not s.eased_cut:
                        # a cut sent while a servant was silent (it, or another that counted at its standalone
                        # failsafe), deeper than now needed because the silent one is heard again: replace it by
                        # a shallower one, still counted at its old limit until acked, so a meterless unit is not
                        # held at the deep cut for a whole reaction allowance after two lost status frames. Once
                        # per unacked run, so it cannot become a cycle
                        eased = s.eased_cut = True
                    elif L >= p.limit_da:
                        continue  # wait for its ack (re-sent every ack_timeout)
                elif p.limit_da <= L and p.failsafe_da <= F:
                    continue
                # another set-limit is needed now (demand changed, it is silent / not answering, or the cut above
                # is eased): it may have applied the outstanding one, so count that, and replace it
                s.limit = max(s.limit, p.limit_da)
                s.failsafe = max(s.failsafe, p.failsafe_da)
                L, F = min(L, s.limit), min(F, s.failsafe)
                why = f"{_a(L)} is enough now" if eased else "cut instead"
                self._events.add(now, "superseded", a, f"txn {p.txn} ({_a(p.limit_da)}) unanswered: {why}")
                s.pending = None
            if F > s.failsafe and L == s.limit and not self._worth_fs_raise(s, F):
                F = s.failsafe  # no set-limit just to nudge a failsafe up a little
            if s.confirmed and L == s.limit and F == s.failsafe and not eased:
                continue  # (an eased cut is sent even so: the unit may have applied the deep one)
            if rival and L >= s.limit and F >= s.failsafe:
                continue  # two masters: servants fail safe; only lower, never confirm or grant
            if L <= s.limit and F <= s.failsafe:
                before = s.counted(now, self.timing)
                self._send(s, L, F, now, out)  # a cut (or a confirm): always allowed
                total += s.counted(now, self.timing) - before
            else:
                raises.append((s, L, F))
        if rival:
            raises = []  # two masters: grant nothing
        raises.sort(key=lambda x: (-x[0].cfg.priority, x[0].rank))
        for s, L, F in raises:
            before = s.counted(now, self.timing)
            fs_before = s.counted_fs()
            if (total - before + max(s.limit, L, s.over_offer) + s.conflict_extra <= self.limit_da
                    and total_fs - fs_before + max(s.failsafe, F) <= self.limit_da):
                self._send(s, L, F, now, out)  # a grant: counted from now
            else:
                L, F = min(L, s.limit), min(F, s.failsafe)  # only the lowering part, or a confirm
                if s.confirmed and L == s.limit and F == s.failsafe:
                    continue
                self._send(s, L, F, now, out)
            total += s.counted(now, self.timing) - before
            total_fs += s.counted_fs() - fs_before

    def _worth_fs_raise(self, s: _Slot, f: int) -> bool:
        """Raise only the failsafe of a confirmed servant when it is a real step (no chatter)."""
        return f >= s.failsafe + 20

    def _waits(self, now: float, lt: dict[int, int]) -> None:
        """Who waits for current under shortage, since when, and so when the next rotation is due.

        A car waits while it wants at least the smallest offer and its target is 0. Its wait goes on
        through a moment of silence (two lost STATUS frames): had that restarted the clock, every such
        blip would put the rotation off by a whole interval (chaos seed 802235). Rotations come at most
        once per ``rotation_interval``.
        """
        oldest = INF
        for a, s in self._slots.items():
            wants = s.known and not s.contested(now) and min(s.want(), MAX_EVSE_DA) >= MIN_OFFER_DA
            if not wants:
                s.wait_since = None
            elif self._allocatable(s):
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
        self._order = waiting + rest
        self._events.add(now, "rotate", None, f"shortage: {waiting} charge next, the others may wait")

    def _send(self, s: _Slot, limit: int, failsafe: int, now: float, out: list[Message]) -> None:
        limit = limit if limit >= MIN_OFFER_DA else 0  # (rounding down is always safe)
        failsafe = failsafe if failsafe >= MIN_OFFER_DA else 0
        txn = self._next_txn(s.cfg.address)
        msg = SetLimit(s.cfg.address, txn, limit, failsafe, self.epoch)
        silence = any(x.silent_since is not None for x in self._slots.values())
        s.pending = _Pending(msg, now, now, silence)
        kind = "cut" if limit < s.limit else "grant" if limit > s.limit else "confirm"
        self._events.add(now, kind, s.cfg.address,
                         f"txn {txn}: {_a(s.limit)} -> {_a(limit)}, failsafe {_a(failsafe)}")
        out.append(msg)

    def _next_txn(self, address: int) -> int:
        txn = (self._txns.get(address, 0) + 1) & 0xFF
        self._txns[address] = txn
        return txn

    def _compute_deadline(self, now: float) -> float:
        t = self.timing
        d = INF  # timers only: the heartbeat has its own (next_deadline takes the earlier)
        if self.learning:
            d = min(d, self._learn_deadline)
            if self._failsafe_seen and now < self._settle_until:
                d = min(d, self._settle_until)
        d = min(d, self._rotation_at, self._rival_until if self._rival_until > now else INF)
        # (runs after every received frame: plain comparisons rather than min() calls)
        silent_after, count_after = t.servant_silent_after, t.silent_count_after
        for s in self._slots.values():
            x = s.resend_at(t)
            if x < d:
                d = x
            if s.silent_since is None:
                if s.known:
                    x = s.last_heard + silent_after
                    if x < d:
                        d = x
            else:
                x = s.silent_since + count_after
                if now < x < d:
                    d = x
            if s.conflict_extra and now < s.conflict_until < d:
                d = s.conflict_until
            if now < s.leaving_until < d:
                d = s.leaving_until
            if s.low_since is not None:
                x = s.low_since + t.reclaim_after
                if now < x < d:
                    d = x
        return d if d > now else now + t.tick_period  # a due timer whose condition does not hold: not a spin
