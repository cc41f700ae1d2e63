"""The servant's sans-IO state machine: one EVSE obeying the master, safely.

The caller feeds it received messages (``receive``), hardware readings
(``observe``) and time (``tick``, ``link_down``), sends what each call
returns, and applies ``offer_da`` / ``ev_stopped`` to the pilot after every
call.  It never reads a clock.  The rules are docs/PROTOCOL.md section 8, in
its words (a *twin* is another unit on our address, a *second master* another
master on the bus).

State machines (PROTOCOL.md 8.4)
--------------------------------
* ``Phase``: BOOT --learning_timeout--> STANDALONE; BOOT or STANDALONE
  --heartbeat--> FOLLOWING(id, epoch) --SET_LIMIT applied--> CONFIRMED;
  FOLLOWING --failsafe_hold unconfirmed--> LAPSED (down to min(offer,
  standalone)); any --heartbeat of a new (id, epoch)--> FOLLOWING (disarmed
  to min(armed, standalone), JOIN); CONFIRMED --second master--> FOLLOWING.
* ``Failsafe``: OFF --no fresh heartbeat for failsafe_timeout (or since boot),
  not heard for heard_timeout, leaving heartbeat, ``link_down``, second
  master--> ON --failsafe_hold--> HELD (armed lowered to min(armed,
  standalone)); ON or HELD --SET_LIMIT of the master followed--> OFF.
* a cut not acked yet: ``PendingCut`` (at most one), acked by rule 2, which
  reads the pilot's and the meter's last reaction allowance (``PilotHistory``).
* twin and second master: ``_twin_until``, ``_second_master_until``
  (conflict_hold after the last sign).

Where each rule of PROTOCOL.md 8.2 is enforced
----------------------------------------------
rule 1  never over-commit: ``_on_set_limit`` (txn order: older never
        applied, NACK OLD_TXN), ``_on_repeat`` and ``_apply`` (a repeat never
        above the offer now); ``memory`` / ``_restore`` keep the orders across a
        restart of the process (8.4, core/servant_memory.py).
rule 2  a cut acked when it took effect: ``_ack_or_wait``, ``_check_pending``
        (MEASURED / TIMED / IMMEDIATE), ``PilotHistory.climb_ends`` (a car on
        its way up, core/pilot_history.py), ``_stop_ev`` (EV_OVERDRAW),
        ``shutdown``.
rule 3  silent servant: the master's; here ``_unheard`` (the heard bits).
rule 4  master silent -> failsafe: ``_timers``, ``_enter_failsafe``,
        ``_on_heartbeat`` (fresh heartbeats only), ``_apply`` (a grant held
        while unheard; one read past its arrival's deadline taken as a
        repeat), ``link_down``; ``receive`` (its clocks
        count from a frame's arrival, not its read: a stalled process).
rule 5  master start or restart: ``_follow`` (disarm, JOIN, unconfirmed).
rule 6  conflicts: ``_twin``, ``_on_second_master``, ``_on_heartbeat``.
rule 7  local limits: ``_apply`` clamps to its own max and acks what it applied.
rule 8  integrity: ``protocol/link.py``; the servant sees accepted messages only.
8.3     failsafe currents: ``_timers`` (the hold), ``_follow`` (disarm).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .core.config import ServantConfig
from .core.config import Timing
from .core.events import Event
from .core.events import EventKind
from .core.events import EventLog
from .core.heartbeat_order import HeartbeatOrder
from .core.pilot_history import PilotHistory
from .core.servant_memory import HeartbeatMemory
from .core.servant_memory import ServantMemory
from .frames import HEARD_BITS
from .frames import MASTER_ADDRESS
from .frames import STATUS_MEASURED_MAX_DA
from .frames import Ack
from .frames import AckHow
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
from .frames import serial_tag
from .protocol.pilot import PilotState
from .protocol.pilot import clamp_da

INF = float("inf")


def _a(da: int) -> str:
    return f"{da / 10:.1f} A"


class Phase(Enum):
    """Whom the servant follows (PROTOCOL.md 8.4); every step reads it, the handlers and timers change it."""

    BOOT = "boot"  # no master heard since boot: failsafe (offer 0) after failsafe_timeout
    STANDALONE = "standalone"  # no master heard for learning_timeout: it offers its standalone failsafe (rule 4)
    FOLLOWING = "following"  # follows a master (id, epoch) that has not confirmed it yet: failsafe_hold runs
    LAPSED = "lapsed"  # following, unconfirmed for failsafe_hold: fell to min(offer, standalone) (8.3)
    CONFIRMED = "confirmed"  # a SET_LIMIT of the master followed applied since it began to follow it


# a master has been heard since boot: its heartbeats (not the boot time) drive the failsafe
_FOLLOWS = (Phase.FOLLOWING, Phase.LAPSED, Phase.CONFIRMED)  # (a tuple: found by identity, no Enum hash)


class Failsafe(Enum):
    """The failsafe (rule 4): the offer only ever goes down, to min(offer, armed)."""

    OFF = "off"
    ON = "on"  # entered; the armed failsafe is held for failsafe_hold
    HELD = "held"  # the hold ran out: armed lowered to min(armed, standalone)


# the hot paths (every step) compare with these: in Python 3.11 each read of Failsafe.OFF costs ~45 ns
_OFF, _ON = Failsafe.OFF, Failsafe.ON
_BOOT, _FOLLOWING = Phase.BOOT, Phase.FOLLOWING


@dataclass(frozen=True)
class PendingCut:
    """A cut applied to the pilot and not acked yet: acked once it has taken effect (rule 2)."""

    txn: int
    limit_da: int
    since: float  # the reaction allowance runs from here (the last lowering from above the limit)


ORDERS_KEPT = 8  # masters whose newest fresh heartbeat a servant keeps (5.2), the one it follows included
_LEFT_KEPT = 4  # epochs of masters left behind whose newest set-limit is kept (restarts, second masters)


class Servant:
    """One EVSE.  The caller applies ``offer_da`` and ``ev_stopped``; ``in_failsafe`` and ``phase`` are for UIs."""

    def __init__(self, config: ServantConfig, timing: Timing, now: float, memory: ServantMemory | None = None) -> None:
        """``memory``: what the unit's previous process kept (``memory(now)``), so that late copies of frames it
        took stay known as such (PROTOCOL.md 8.4, memory across restarts)."""
        self.config = config
        self.timing = timing
        self.address = config.address
        self.offer_da = 0
        self.ev_stopped = False
        self._failsafe = Failsafe.OFF
        self._events = EventLog()
        self._standalone = clamp_da(config.failsafe_da, config.max_da)
        self._limit = 0  # what the master (or the failsafe logic) allows now
        self._armed = self._standalone  # failsafe current armed now
        self._boot = now
        self._master: tuple[int, int] | None = None  # (master_id, epoch) followed
        self._masters_seen: dict[tuple[int, int], float] = {}  # key -> last heard
        self._last_hb = -INF
        # the last heartbeat of the master we follow that said it hears us (or when we began to follow it)
        self._heard_at = -INF
        self._order: HeartbeatOrder | None = None  # the followed master's, one of ``_orders`` (None: none followed)
        # per (master_id, epoch): its fresh heartbeats (5.2), kept when the servant follows another, so that a late
        # copy of a master it left is known as one and never followed again (rule 5); dropped once forgotten
        self._orders: dict[tuple[int, int], HeartbeatOrder] = {}
        self._phase = Phase.BOOT
        self._follow_since = -INF  # when it began to follow the master (Phase.FOLLOWING's hold runs from here)
        self._failsafe_since = -INF  # when it entered the failsafe (Failsafe.ON's hold runs from here)
        self._second_master_until = -INF
        self._twin_until = -INF
        self._pending: PendingCut | None = None  # the cut waiting to take effect (rule 2)
        # the pilot's lowerings and raises and the meter's readings of the last reaction allowance (rule 2)
        self._history = PilotHistory(timing.reaction_allowance, config.tolerance_da)
        # the set-limit applied last (from the master and epoch followed; None before one): what rule 4 counts
        # from; older txns are never applied, a repeat must match it entirely to be re-acked. (A plain attribute,
        # not a property: the simulator reads it twice for every heartbeat every servant gets.) Read only.
        self.last_set_limit: SetLimit | None = None
        self._last_ack: Ack | None = None
        # per epoch of a master we followed and left (the last few), the newest set-limit applied under it: a
        # late copy of that master's heartbeat makes us follow it again, and its txn order must still hold then
        self._left: dict[int, SetLimit] = {}
        self._held: SetLimit | None = None  # a grant that came while the master did not hear us (rule 4)
        self._resumed: SetLimit | None = None  # see ``_restore``
        if memory is not None:
            self._restore(memory, now)
        self._init_step(now)

    def _init_step(self, now: float) -> None:
        """What the step keeps between calls: the hardware as last read, what was last sent, the deadline."""
        self._pilot = PilotState.A
        self._present = False  # self._pilot.vehicle_present, read on every step
        self._measured: int | None = None
        self._first_look = True  # no reading of the hardware yet since this process started (see ``observe``)
        self._over_since: float | None = None
        self._requested_sent: int | None = None
        self._last_status: tuple[tuple[object, ...], Status] | None = None  # (its fields, the STATUS): _status
        self._next_status = now
        self._join_due = True
        self._fallback = INF  # the last deadline ``_compute_deadline`` made up (no timer after now): see ``receive``
        self._deadline = self._compute_deadline(now)

    # -- public API ------------------------------------------------------------

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        """Act on ``msg`` at ``now``; ``arrived``: when it reached the interface, if the caller knows (a frame that
        waited in the receive queue while the process stood still): the rule-4 clocks count from then, so a
        heartbeat read late is no news that the master lived past its arrival (PROTOCOL.md 8.2 rule 4)."""
        out: list[Message] = []
        at = now if arrived is None or arrived > now else arrived
        if isinstance(msg, Heartbeat):
            last_hb, heard_at = self._last_hb, self._heard_at
            if self._on_heartbeat(msg, now, at, out) and self._pending is None and now < self._deadline:
                # a routine heartbeat (most frames a servant gets) only moved the rule-4 clocks later: no timer
                # is due before the deadline, and the step reads nothing else it changed; only the deadline moves.
                # It stays when it was a timer (not made up) earlier than both clocks were: the other timers are
                # as they were, so the earliest of them still is the deadline
                d = self._deadline
                t = self.timing
                if d < last_hb + t.failsafe_timeout and d < heard_at + t.heard_timeout and d != self._fallback:
                    return out
                self._deadline = self._compute_deadline(now)
                return out
        elif isinstance(msg, SetLimit):
            if msg.address == self.address:
                self._on_set_limit(msg, now, at, out)
        elif isinstance(msg, Nack):
            if msg.address == self.address and msg.code is NackCode.TWIN:
                if msg.reporter == MASTER_ADDRESS:
                    self._twin(now, "the master reports two units on this address", out)
                elif msg.reporter == self.address:
                    self._twin(now, "another unit on this address reports us", out)
        elif isinstance(msg, (Status, Join, Ack, Release, Request)):
            if msg.address == self.address:  # a node never receives its own frames: a twin
                self._twin(now, f"heard a {type(msg).__name__} from another unit on address {self.address}", out)
        self._step(now, out)
        return out

    def observe(self, pilot: PilotState, measured_da: int | None, now: float) -> list[Message]:
        out: list[Message] = []
        old = self._pilot
        self._pilot = pilot
        self._present = pilot.vehicle_present
        self._measured = measured_da if self.config.has_meter else None
        if self._measured is not None:
            self._history.note_reading(self._measured, now)
        if self._first_look:
            self._first_look = False
            m = self._measured
            if m > self.config.tolerance_da if m is not None else pilot.charging:
                # a car already charging when this process starts: a restart the EVSE did not see (its pilot kept
                # the old offer until we took it over). What it was offered is unknown, up to our max, and it may
                # draw that for a reaction allowance yet: a lowering from our max, now (rule 2), so a SET_LIMIT
                # in that allowance is a cut, acked once the car has followed, never at once as a raise from 0;
                # and a car charging may still be climbing toward a raise it saw late (chaos seed 1263): its
                # meter at or below the cut proves nothing for that allowance either
                self._history.note_start(self.config.max_da, self.offer_da, now, (m or 0) if pilot.charging else None)
        if pilot is not old:
            self._events.add(now, EventKind.PILOT, self.address, f"pilot {old.name} -> {pilot.name}")
            if pilot is PilotState.A:
                if self.ev_stopped:
                    self.ev_stopped = False
                    self._events.add(now, EventKind.EV_STOP_CLEARED, self.address, "EV unplugged: contactor may close again")
                self._release(now, ReleaseReason.UNPLUGGED, out)
            elif pilot is PilotState.B and old.charging and self.offer_da > 0 and not self.ev_stopped:
                # it stopped while current was offered: a pause (its own timer, balancing, preconditioning), or
                # full, which looks the same on the pilot (a full car is a paused car that never resumes). Not
                # the end: no RELEASE, the pilot keeps its offer so it can resume, the demand stays; the master
                # parks it at its minimum after a grace (PROTOCOL.md 8.4, 8.5)
                self._events.add(now, EventKind.EV_PAUSED, self.address,
                                 f"car paused at an offer of {_a(self.offer_da)}: offer and demand kept")
            elif pilot in (PilotState.E, PilotState.F):
                self._release(now, ReleaseReason.FAULT, out)
            self._next_status = now  # tell the master at once
        self._step(now, out)
        return out

    def tick(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._step(now, out)
        return out

    def shutdown(self, now: float) -> list[Message]:
        """Graceful exit: pilot to 0 and RELEASE(SHUTDOWN), so the master can free the share sooner.

        Its car may still draw for a reaction allowance, so no pending cut is acked, and the master
        keeps counting the old current until the allowance has passed (PROTOCOL.md 8.2, rule 2).
        """
        # what its car may still draw: its limit, or an offer lowered less than a reaction allowance ago
        released = max([self._limit, self.offer_da] + [before for _, before in self._history.recent_lowerings(now)])
        self._limit = 0
        self._pending = None
        self._update_offer(now)
        self._events.add(now, EventKind.RELEASE, self.address, f"shutdown: gave back {_a(released)}")
        return [Release(self.address, released, ReleaseReason.SHUTDOWN)]

    def link_down(self, now: float) -> list[Message]:
        """Bus-off or similar: we cannot hear the master, so fail safe now (rule 4).

        Returns what to send, like every other call: the STATUS that shows the failsafe at once.
        """
        if self._phase in _FOLLOWS:
            self._last_hb = min(self._last_hb, now - self.timing.failsafe_timeout)
        else:
            self._boot = min(self._boot, now - self.timing.failsafe_timeout)
        self._enter_failsafe(now, "link down: the master cannot be heard")
        out: list[Message] = []
        self._step(now, out)
        return out

    def next_deadline(self) -> float:
        """Latest time ``tick`` must next be called (kept up to date by every call into the servant)."""
        return self._deadline

    def _compute_deadline(self, now: float) -> float:
        # (runs after every received frame: plain comparisons rather than min() calls)
        t = self.timing
        d = self._failsafe_deadline(self._next_status)
        if self._pending is not None:
            x = self._pending.since + t.reaction_allowance
            if x < d:
                d = x
            x = self._history.climb_ends(self._pending.limit_da)  # (the meter may prove it earlier)
            if now < x < d:
                d = x
        if self._over_since is not None and not self.ev_stopped:
            x = self._over_since + t.reaction_allowance
            if x < d:
                d = x
        if self._twin_until > -INF:
            x = self._twin_until
            if x < d:
                d = x
        if self._second_master_until > -INF:
            x = self._second_master_until
            if x < d:
                d = x
        if d > now:
            return d
        self._fallback = d = now + t.tick_period
        return d

    def _failsafe_deadline(self, d: float) -> float:
        """The earlier of ``d`` and the next timer of the phase and failsafe state machines (rule 4, 8.3)."""
        t = self.timing
        phase, failsafe = self._phase, self._failsafe
        if phase in _FOLLOWS:
            if failsafe is _OFF:
                x = self._last_hb + t.failsafe_timeout
                if x < d:
                    d = x
                x = self._heard_at + t.heard_timeout
                if x < d:
                    d = x
            if phase is _FOLLOWING:
                x = self._follow_since + t.failsafe_hold
                if x < d:
                    d = x
        else:
            if failsafe is _OFF:
                x = self._boot + t.failsafe_timeout
                if x < d:
                    d = x
            if phase is _BOOT:
                x = self._boot + t.learning_timeout
                if x < d:
                    d = x
        if failsafe is _ON:
            x = self._failsafe_since + t.failsafe_hold
            if x < d:
                d = x
        return d

    def drain_events(self) -> Sequence[Event]:
        return self._events.drain()

    def memory(self, now: float) -> ServantMemory:
        """What a restart of this process must not forget (the txn and heartbeat orders), for the next one."""
        left = dict(self._left)
        last = self.last_set_limit
        if last is not None:  # the epoch followed: its newest, last
            left.pop(last.epoch, None)
            left[last.epoch] = last
        beats = tuple(HeartbeatMemory(key[0], key[1], order.newest, order.at) for key, order in self._orders.items()
                      if order.newest is not None and not order.forgotten(now))
        return ServantMemory(tuple(left.values()), beats)

    def _restore(self, memory: ServantMemory, now: float) -> None:
        """Take back a previous process's orders: its set-limits as those of masters left, its heartbeat orders as
        taken when they were (or at ``now``, when the clock restarted with the controller and cannot say)."""
        self._left = {sl.epoch: sl for sl in memory.set_limits}  # (one per epoch; the epoch followed last comes last)
        # the newest the previous process applied, from the master it followed last: the master counts it (or
        # more), so taken again it is applied as new; a repeat of a left master's newest never raises (5.1)
        self._resumed = memory.set_limits[-1] if memory.set_limits else None
        for beat in memory.heartbeats[-ORDERS_KEPT:]:
            order = HeartbeatOrder.taken(self.timing.heartbeat_period, beat.seq, min(beat.at, now))
            if not order.forgotten(now):
                self._orders[(beat.master_id, beat.epoch)] = order

    @property
    def limit_da(self) -> int:
        """What the servant currently allows (before twin/EV-stop overrides)."""
        return self._limit

    @property
    def heard_at(self) -> float | None:
        """When the master we follow last said it hears us (or we began to follow it); None before any master."""
        return self._heard_at if self._phase in _FOLLOWS else None

    @property
    def in_failsafe(self) -> bool:
        """In failsafe (rule 4): the offer is at most the armed failsafe."""
        return self._failsafe is not _OFF

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def failsafe(self) -> Failsafe:
        return self._failsafe

    @property
    def armed_failsafe_da(self) -> int:
        return self._armed

    @property
    def requested_da(self) -> int:
        if not self._present or self.ev_stopped:
            return 0
        return self.config.max_da

    # -- heartbeats and masters ---------------------------------------------------

    def _on_heartbeat(self, hb: Heartbeat, now: float, at: float, out: list[Message]) -> bool:
        """Rules 4-6 for one heartbeat (its rule-4 clocks from ``at``, when it arrived); True when it was routine:
        a fresh one of the master followed, with no flag, no new master and no held grant to take, so it changed
        nothing but the rule-4 clocks."""
        key = (hb.master_id, hb.epoch)
        previous = self._masters_seen.get(key)
        self._masters_seen[key] = now
        if len(self._masters_seen) > 1:  # (the one just heard is never stale)
            for k in [k for k, seen in self._masters_seen.items() if now - seen > self.timing.conflict_hold]:
                del self._masters_seen[k]
        routine = not hb.second_master and key == self._master
        if hb.second_master:
            self._on_second_master(now, f"master {hb.master_id} reports a second master", out)
        if key != self._master:
            order = self._orders.get(key)
            if previous is not None and self._master in self._masters_seen:
                # a master we had left behind is heard again while ours is alive: two masters
                self._order_for(key, now).fresh(hb.seq, now)  # (a copy of one of these later is known as one)
                self._on_second_master(now, f"heartbeats from two masters: {key} and {self._master}", out)
                return False
            if order is not None and not order.newer(hb.seq, now):
                # a late copy (a gateway, a bridge) of a master it followed before: following it would forget the
                # newest txn applied, and a late copy of that master's old grant would then be taken as new (rule 1)
                self._events.add(now, EventKind.STALE_HEARTBEAT, self.address,
                                 f"heartbeat seq {hb.seq} of master {key[0]} epoch {key[1]} is not newer than seq "
                                 f"{order.newest}: a late copy, not followed")
                return False
            self._follow(key, now, at, out)
        if hb.leaving:
            self._last_hb = -INF
            if not self.in_failsafe:
                self._enter_failsafe(now, f"master {hb.master_id} is leaving")
            return False
        order = self._order
        assert order is not None  # (the master of ``key`` is followed by now: ``_follow`` set it)
        if not order.fresh(hb.seq, now):
            # a late copy of an old heartbeat (a gateway, a bridge, a multi-mailbox driver): it proves neither that
            # the master is alive nor that it hears us now (rules 3-4)
            self._events.add(now, EventKind.STALE_HEARTBEAT, self.address,
                             f"heartbeat seq {hb.seq} is not newer than seq {order.newest}: ignored")
            return False
        self._last_hb = at
        page, mask = HEARD_BITS[self.address]
        if page == hb.page and hb.heard & mask:  # (hb.hears without its call: every heartbeat)
            self._heard_at = at
            if self._held is not None:  # it hears us now: the grant it sent meanwhile may be taken
                held, self._held = self._held, None
                self._on_set_limit(held, now, at, out)
                return False
        return routine

    def _follow(self, key: tuple[int, int], now: float, at: float, out: list[Message]) -> None:
        """Rule 5: start following a new master (first one, or another id/epoch: a restart); 8.3: disarm."""
        old = self._master
        self._master = key
        self._phase = Phase.FOLLOWING
        self._follow_since = now
        self._heard_at = at  # it has not heard us yet: it gets heard_timeout to do so (from the heartbeat's arrival)
        # its fresh heartbeats so far, if it was followed before (5.2): a late copy of an old heartbeat is not news
        self._order = self._order_for(key, now)
        self._held = None
        if self.last_set_limit is not None:
            left = self._left
            left.pop(self.last_set_limit.epoch, None)
            left[self.last_set_limit.epoch] = self.last_set_limit
            if len(left) > _LEFT_KEPT:
                del left[next(iter(left))]
        self.last_set_limit = None
        self._last_ack = None
        self._pending = None  # the old master's cut cannot be acked to the new one
        if old is not None:
            lowered = min(self._armed, self._standalone)
            if lowered != self._armed:
                self._events.add(now, EventKind.DISARM, self.address,
                                 f"new master {key}: failsafe disarmed {_a(self._armed)} -> {_a(lowered)}")
            self._armed = lowered
            if self.in_failsafe:
                self._limit = min(self._limit, self._armed)
        self._events.add(now, EventKind.MASTER, self.address, f"following master {key[0]} epoch {key[1]}")
        self._join_due = True
        self._next_status = now

    def _order_for(self, key: tuple[int, int], now: float) -> HeartbeatOrder:
        """The fresh-heartbeat order of master ``key``, made when new: forgotten ones are dropped then, and at
        most ``ORDERS_KEPT`` are kept (the one of the master followed always), the least recently fresh going."""
        orders = self._orders
        order = orders.get(key)
        if order is None:
            for k in [k for k, o in orders.items() if o.forgotten(now) and k != self._master]:
                del orders[k]
            if len(orders) >= ORDERS_KEPT:
                del orders[min((k for k in orders if k != self._master), key=lambda k: orders[k].at)]
            order = orders[key] = HeartbeatOrder(self.timing.heartbeat_period)
        return order

    def _on_second_master(self, now: float, why: str, out: list[Message]) -> None:
        """Rule 6, second master: report it, disarm to min(armed, standalone), fail safe, obey neither."""
        fresh = self._second_master_until <= now
        self._second_master_until = now + self.timing.conflict_hold
        if fresh:
            self._events.add(now, EventKind.SECOND_MASTER, self.address, why + ": failing safe")
            out.append(Nack(MASTER_ADDRESS, NackCode.SECOND_MASTER, self.address))
            self._armed = min(self._armed, self._standalone)
            self._enter_failsafe(now, "two masters on the bus")
            if self._phase is Phase.CONFIRMED:
                self._phase = Phase.FOLLOWING  # unconfirmed again (the hold still counts from following)

    def _twin(self, now: float, why: str, out: list[Message]) -> None:
        """Rule 6, twin: report it, JOIN again, offer 0 and disarm to 0 while it lasts."""
        fresh = self._twin_until <= now
        self._twin_until = now + self.timing.conflict_hold
        if fresh:
            self._events.add(now, EventKind.TWIN, self.address, why + ": pausing")
            out.append(Nack(self.address, NackCode.TWIN, self.address))
            self._join_due = True
            self._limit = 0
            self._armed = 0
            self._pending = None

    # -- set-limits ------------------------------------------------------------------

    def _on_set_limit(self, msg: SetLimit, now: float, at: float, out: list[Message]) -> None:
        """Rule 1: only the master followed, never an older txn (NACK OLD_TXN), a repeat re-acked; rule 6: none
        while two masters are heard.  ``at``: when the frame arrived (rule 4 counts from then)."""
        if self._master is None or msg.epoch != self._master[1]:
            self._events.add(now, EventKind.STALE_SET_LIMIT, self.address,
                             f"ignored set-limit txn {msg.txn} of epoch {msg.epoch} (following {self._master})")
            return
        if self._second_master_until > now:
            return  # two masters: obey neither
        last = self.last_set_limit
        if last is None:
            # none applied since we (re)followed this master: the newest we applied when we followed it before.
            # A late copy of an old heartbeat of a master restarted since (another epoch) makes us follow the dead
            # one again; a late copy of its old grant must not be applied then (5.1, 8.7)
            last = self._left.get(msg.epoch)
        if last is not None:
            # txn order, modulo 256 (RFC 1982): 1-127 ahead of the newest applied is newer, 128-255 is older
            ahead = (msg.txn - last.txn) & 0xFF
            if ahead >= 128:
                # a late duplicate or a reordered frame (or a master restarted with the same epoch and
                # numbering from scratch: the NACK tells it where to go on from)
                self._events.add(now, EventKind.OLD_SET_LIMIT, self.address,
                                 f"ignored txn {msg.txn} ({_a(msg.limit_da)}): older than txn {last.txn} applied")
                out.append(Nack(self.address, NackCode.OLD_TXN, self.address, msg.txn, last.txn))
                return
            if ahead == 0 and msg == last and last is not self._resumed:
                self._on_repeat(msg, now, at, out)
                return
        self._apply(msg, now, at, out)

    def _on_repeat(self, msg: SetLimit, now: float, at: float, out: list[Message]) -> None:
        """The set-limit applied last, again: the master re-sends it because our ack is lost (or it is a late copy).

        Re-acked, never applied twice, while the servant still stands where its ack said. In failsafe, or
        since moved (failsafe hold, twin, release), it is applied again as rule 4 wants, acked by rule 2,
        but never above the offer now: a late copy of an old frame must not raise anything (rule 1).
        """
        ack = self._last_ack
        if not self.in_failsafe:
            if self._pending is not None and self._pending.txn == msg.txn:
                return  # a cut still taking effect: its ack follows by rule 2
            if ack is not None and ack.applied_da == self._limit and self._armed == clamp_da(msg.failsafe_da,
                                                                                             self.config.max_da):
                out.append(ack)  # our ack was lost: say it again
                return
        self._apply(msg, now, at, out, repeat=True)

    def _apply(self, msg: SetLimit, now: float, at: float, out: list[Message], repeat: bool = False) -> None:
        cfg = self.config
        limit = clamp_da(msg.limit_da, cfg.max_da)  # rule 7: never above our own max (below 6 A: 0)
        fs = clamp_da(msg.failsafe_da, cfg.max_da)
        if self._twin_until > now:
            limit = fs = 0  # rule 6: a twin on our address: cuts only
        # a set-limit of the master we follow proves it alive as much as a heartbeat does (rule 4 counts
        # from the last of either): without this, one that arrives before the first heartbeat after a
        # partition would end the failsafe only for the stale heartbeat timer to start it again at once (counted
        # from its arrival: one read late proves the master alive only then)
        self._last_hb = max(self._last_hb, at)
        # read past the failsafe deadline of its own arrival (it waited out a stall in the receive queue): it
        # proves nothing of the master now, so it is taken as a repeat (rule 4, a stalled process)
        late = now >= self._last_hb + self.timing.failsafe_timeout
        if late and self._failsafe is Failsafe.OFF:  # (the step would enter it after: the ACK must say the truth)
            self._enter_failsafe(now, f"no heartbeat for {now - self._last_hb:.2f} s")
        unheard = self._unheard(now)
        if unheard and limit > self.offer_da:
            # a grant while no heartbeat has shown the master hears us: taken once one does (it hears us again,
            # or it sent this before we went mute and will count us down soon); not acked meanwhile (rule 4)
            if self._held != msg:
                self._events.add(now, EventKind.GRANT_HELD, self.address,
                                 f"txn {msg.txn} {_a(limit)} waits: the master has not shown it hears us")
            self._held = msg
            return
        self._held = None
        if limit != msg.limit_da:
            self._events.add(now, EventKind.CLAMPED, self.address,
                             f"set-limit {_a(msg.limit_da)} clamped to {_a(limit)} (local max {_a(cfg.max_da)})")
        if (repeat or late) and (limit > self._limit or fs > self._armed):
            limit, fs = min(limit, self._limit), min(fs, self._armed)
            what = f"read {now - at:.2f} s after it arrived" if late else "again"
            self._events.add(now, EventKind.REPEAT, self.address,
                             f"txn {msg.txn} {what}{' in failsafe' if self.in_failsafe else ''}: applied at "
                             f"{_a(limit)} (failsafe {_a(fs)}), never above what it offers now")
        old_offer = self.offer_da
        self.last_set_limit = msg
        self._last_ack = None
        self._limit = limit
        self._armed = fs
        self._phase = Phase.CONFIRMED
        self._pending = None
        if self.in_failsafe and not unheard and not late:  # (a cut while unheard, or one read late, is applied,
            # and the failsafe goes on)
            self._failsafe = Failsafe.OFF
            self._events.add(now, EventKind.FAILSAFE_END, self.address, f"master granted {_a(limit)}")
        self._update_offer(now)
        self._ack_or_wait(msg.txn, limit, old_offer, now, out)

    def _ack_or_wait(self, txn: int, limit: int, old_offer: int, now: float, out: list[Message]) -> None:
        """Rule 2: a raise is acked at once; a cut (also one that raises the pilot back up less than a reaction
        allowance after it was lowered) waits as a ``PendingCut`` until it has taken effect."""
        recent = self._history.recent_lowerings(now)
        may_draw = max([old_offer] + [before for _, before in recent])  # the most the EV may still draw
        if old_offer <= limit < may_draw:
            # not a raise although it raises the pilot: the pilot was lowered (a cut, the failsafe) less
            # than a reaction allowance ago and the EV may still draw what it had before. Acked as a cut,
            # on the clock of the last lowering from above this limit (the pilot has stayed at or below it since)
            since = max(t for t, before in recent if before > limit)
            if old_offer == limit:  # e.g. the master's confirm of a RELEASE: the pilot does not move
                self._events.add(now, EventKind.CONFIRM, self.address, f"offer stays {_a(limit)}; acked once the draw "
                                 f"has followed the lowering from {_a(may_draw)}")
            else:
                self._events.add(now, EventKind.CUT, self.address, f"offer {_a(old_offer)} -> {_a(limit)} (the EV may "
                                 f"still draw up to {_a(may_draw)})")
            self._pending = PendingCut(txn, limit, since)
            self._check_pending(now, out)
        elif limit >= old_offer:
            if limit > old_offer:
                self._events.add(now, EventKind.GRANT, self.address, f"offer {_a(old_offer)} -> {_a(limit)}")
            self._ack(txn, limit, AckHow.IMMEDIATE, out)
        else:
            self._events.add(now, EventKind.CUT, self.address, f"offer {_a(old_offer)} -> {_a(limit)}")
            self._pending = PendingCut(txn, limit, now)
            self._check_pending(now, out)

    def _ack(self, txn: int, applied: int, how: AckHow, out: list[Message]) -> None:
        measured = self._measured
        if measured is not None:
            measured = min(measured, 0xFFFE)
        ack = Ack(self.address, txn, applied, measured, how)
        self._last_ack = ack
        out.append(ack)

    def _check_pending(self, now: float, out: list[Message]) -> None:
        """Ack the pending cut once it has taken effect (rule 2)."""
        pending = self._pending
        if pending is None:
            return
        txn, limit, since = pending.txn, pending.limit_da, pending.since
        tol = self.config.tolerance_da
        m = self._measured
        how: AckHow | None = None
        # (no car, or its contactor open: it cannot climb)
        cannot_draw = not self._present or self.ev_stopped
        if m is not None and m <= limit and (cannot_draw or now >= self._history.climb_ends(limit)):
            how = AckHow.MEASURED  # at or below the new limit, and not on its way up: freed current really is free
        elif m is None and not self._pilot.charging and (cannot_draw or now >= self._history.raised_until(limit)):
            how = AckHow.IMMEDIATE  # no meter, and no EV drawing nor about to: nothing to wait for
        elif now >= since + self.timing.reaction_allowance:
            if m is not None and m > limit + tol:  # still above the new limit: the EV ignores the pilot
                self._stop_ev(now, txn, m, out)
            how = AckHow.TIMED  # (with a meter: within the tolerance band, i.e. meter error)
        if how is not None:
            self._pending = None
            self._ack(txn, limit, how, out)

    def _stop_ev(self, now: float, txn: int, measured: int, out: list[Message]) -> None:
        if self.ev_stopped:
            return
        self.ev_stopped = True
        self._over_since = None
        self._events.add(now, EventKind.EV_STOPPED, self.address,
                         f"EV draws {_a(measured)} above offer {_a(self.offer_da)} past the allowance: contactor open")
        out.append(Nack(self.address, NackCode.EV_OVERDRAW, self.address, txn, min(measured, 0xFFFF)))

    # -- failsafe ------------------------------------------------------------------------

    def _enter_failsafe(self, now: float, why: str) -> None:
        """Rule 4: the offer only ever goes down, to min(offer, armed)."""
        if self._failsafe is Failsafe.OFF:
            self._failsafe = Failsafe.ON
            self._failsafe_since = now
            self._limit = min(self._limit, self._armed)  # only ever lower
            self._events.add(now, EventKind.FAILSAFE, self.address, f"{why}: offer {_a(self._limit)}")
            self._next_status = now  # tell the master (and any monitor) at once: it re-confirms us sooner
        else:
            self._limit = min(self._limit, self._armed)

    def _timers(self, now: float, out: list[Message]) -> None:
        """The timed transitions of Phase and Failsafe (rule 4, 8.3), twin and second master."""
        t = self.timing
        if self._phase in _FOLLOWS:
            if self._failsafe is _OFF and now >= self._last_hb + t.failsafe_timeout:
                self._enter_failsafe(now, f"no heartbeat for {now - self._last_hb:.2f} s"
                                     if self._last_hb > -INF else "master gone")
            if self._failsafe is _OFF and self._unheard(now):
                # we hear the master but it does not hear us (a mute transmitter, a one-way partition): it will
                # count us at our failsafe soon (rule 3), so we must be there (rule 4)
                self._enter_failsafe(now, f"the master has not heard us for {now - self._heard_at:.2f} s")
            if self._phase is _FOLLOWING and now >= self._follow_since + t.failsafe_hold:
                self._phase = Phase.LAPSED
                lowered = min(self._limit, self._standalone)
                if lowered != self._limit:
                    self._events.add(now, EventKind.UNCONFIRMED, self.address,
                                     f"master never confirmed our {_a(self._limit)}: down to {_a(lowered)}")
                    self._limit = lowered
                self._armed = min(self._armed, self._standalone)
        else:
            if self._failsafe is _OFF and now >= self._boot + t.failsafe_timeout:
                self._enter_failsafe(now, "no master heard since boot")
            if self._phase is _BOOT and now >= self._boot + t.learning_timeout:
                # never heard a master: the standalone failsafe.  Only this late is the raise safe: a master
                # that cannot hear us has reserved it (rule 3) and its other servants' EVs have followed, and
                # servants holding an armed failsafe from a master that just died have fallen to standalone.
                self._phase = Phase.STANDALONE
                self._limit = self._standalone
                self._events.add(now, EventKind.STANDALONE, self.address,
                                 f"no master heard since boot: standalone failsafe {_a(self._standalone)}")
        if self._failsafe is _ON and now >= self._failsafe_since + t.failsafe_hold:
            self._failsafe = Failsafe.HELD
            self._armed = min(self._armed, self._standalone)
            if self._limit > self._armed:
                self._events.add(now, EventKind.FAILSAFE_HOLD, self.address,
                                 f"failsafe hold over: {_a(self._limit)} -> {_a(self._armed)}")
                self._limit = self._armed
        if self._twin_until > -INF and now >= self._twin_until:
            self._twin_until = -INF
            self._events.add(now, EventKind.TWIN_GONE, self.address, "no other unit heard on this address")
        if self._second_master_until > -INF and now >= self._second_master_until:
            self._second_master_until = -INF
            self._events.add(now, EventKind.SECOND_MASTER_GONE, self.address, "one master again")

    # -- the common step after every input -------------------------------------------

    def _unheard(self, now: float) -> bool:
        """No heartbeat of the master we follow has shown it hears us for heard_timeout (rule 4)."""
        return self._phase in _FOLLOWS and now >= self._heard_at + self.timing.heard_timeout

    def _update_offer(self, now: float) -> None:
        offer = clamp_da(self._limit, self.config.max_da)
        if self._twin_until > now:
            offer = 0
        old = self.offer_da
        if offer == old:
            return  # (every step comes here: the common case costs nothing more)
        self._history.note_offer(old, offer, now)
        if offer < old:
            m = self._measured
            if m is not None and m > offer + self.config.tolerance_da and self._over_since is None:
                # the EV's allowance starts with the lowered pilot; lowering it again while the EV already
                # overdraws does not restart the allowance
                self._over_since = now
        self.offer_da = offer

    def _step(self, now: float, out: list[Message]) -> None:
        self._timers(now, out)
        self._update_offer(now)
        if self._pending is not None:  # (most steps have no cut pending: no call then)
            self._check_pending(now, out)
        m = self._measured
        if m is not None and not self.ev_stopped and m > self.offer_da + self.config.tolerance_da:
            if self._over_since is None:
                self._over_since = now
            elif now >= self._over_since + self.timing.reaction_allowance:
                self._stop_ev(now, 0, m, out)
        else:
            self._over_since = None
        if self._join_due:
            self._join_due = False
            out.append(Join(self.address, self.config.serial, self.config.max_da))
        req = self.requested_da
        if req != self._requested_sent:
            self._requested_sent = req
            if req:
                out.append(Request(self.address, req, self.config.min_da, self.config.priority))
        if now >= self._next_status:
            out.append(self._status())
            self._next_status = now + self.timing.status_period
        self._deadline = self._compute_deadline(now)

    def _release(self, now: float, reason: ReleaseReason, out: list[Message]) -> None:
        released = self._limit
        self._limit = 0
        self._update_offer(now)
        if self._pending is not None:  # offering 0 now: the cut has certainly taken effect
            pending, self._pending = self._pending, None
            self._ack(pending.txn, pending.limit_da, AckHow.IMMEDIATE, out)
        # (unplugged or faulted: even when it held nothing; EV_DONE is a version 1 servant's, never sent here)
        self._events.add(now, EventKind.RELEASE, self.address, f"{reason.name.lower()}: gave back {_a(released)}")
        out.append(Release(self.address, released, reason))

    def _status(self) -> Status:
        """What it reports now; the last STATUS again (messages are immutable) while nothing in it changed, as
        between most status periods, since building one (and checking its fields) costs several times more."""
        m = self._measured
        if m is not None and m > STATUS_MEASURED_MAX_DA:
            m = STATUS_MEASURED_MAX_DA
        pilot = self._pilot
        fields = (pilot, self.offer_da, m, self.requested_da, self._failsafe is not _OFF, self.ev_stopped,
                  self._twin_until > -INF)
        last = self._last_status
        if last is not None and last[0] == fields:
            return last[1]
        st = Status(self.address, serial_tag(self.config.serial), pilot, fields[1], m, fields[3], failsafe=fields[4],
                    fault=pilot in (PilotState.E, PilotState.F), ev_stopped=fields[5], twin=fields[6])
        self._last_status = (fields, st)
        return st

