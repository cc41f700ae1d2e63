"""The rule-4 oracle: when each servant process must be in failsafe, worked out from the frames it accepted.

Independent of the servant under test: it follows PROTOCOL.md (rules 4 and 6, and 5.2's fresh
heartbeats) from what reached the servant's ``Link``, and keeps its verdict on the ``ServantProc``:
``fs_da`` (the failsafe it must be at or below), ``fs_deadline`` (from then on), ``hold_deadline``
(from then on, at most min(assigned, standalone)) and ``last_hb``.  The invariants compare the
EVSE's offer with these; the oracle only asks for a check at each deadline (``schedule``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.heartbeat_order import HeartbeatOrder
from ..frames import HEARD_BITS
from ..frames import Heartbeat
from ..frames import SetLimit
from .loop import Check
from .procs import ServantProc

INF = float("inf")

Schedule = Callable[[float, Check, "ServantProc | None"], None]


@dataclass(frozen=True)
class OracleBounds:
    """The rule-4 clocks, from the timing (see ``invariants.Bounds``)."""

    failsafe_s: float  # failsafe_timeout + tick_period after the last valid heartbeat (or grant)
    unheard_s: float  # heard_timeout + tick_period without a heartbeat saying the master hears it
    leaving_s: float  # tick_period after a ``leaving`` heartbeat
    hold_s: float  # failsafe_hold + tick_period after the failsafe deadline
    conflict_hold_s: float  # rule 6: how long two masters' heartbeats hold off SET_LIMITs
    heartbeat_period_s: float  # for the fresh-heartbeat order (5.2)


class FailsafeOracle:
    """Rule-4 bookkeeping per servant process; ``schedule(t, check, p)`` queues a check at a deadline."""

    __slots__ = ("b", "schedule")

    def __init__(self, bounds: OracleBounds, schedule: Schedule) -> None:
        self.b = bounds
        self.schedule = schedule

    def boot(self, p: ServantProc, now: float) -> None:
        """A process starts: it has accepted nothing yet, and boot starts its failsafe clock. The fresh-heartbeat
        orders stay: a servant keeps them across a restart of its process (PROTOCOL.md 8.4), so a late copy of a
        heartbeat its predecessor took restarts no rule-4 clock of the new one either."""
        p.grant_fs = p.grant_epoch = p.hb_key = None
        p.followed = None
        p.masters_seen = {}
        p.second_master_until = -INF
        p.fs_da = p.cfg.failsafe_da
        p.last_hb = -INF
        p.hb_deadline = p.heard_deadline = INF
        self.arm(p, now + self.b.failsafe_s)

    @staticmethod
    def stop(p: ServantProc) -> None:
        """A process died: no deadline of its own binds the pilot it leaves behind."""
        p.fs_deadline = p.hb_deadline = p.heard_deadline = INF
        p.hold_deadline = INF

    @staticmethod
    def accepts(p: ServantProc, msg: SetLimit, t: float) -> bool:
        """Whether the spec lets the servant act on this SET_LIMIT (rules 4 and 6).

        Only one of the master it follows (same epoch), and none while it holds off two masters. Worked
        out here from the heartbeats it accepted, not read from the servant under test.
        """
        return p.followed is not None and msg.epoch == p.followed[1] and t >= p.second_master_until

    def granted(self, p: ServantProc, msg: SetLimit, t: float, arrived: float | None = None) -> None:
        """The servant applied this SET_LIMIT: a grant from a master, which rule 4 lets end the failsafe (its
        clock from the frame's arrival, ``arrived``, when it waited in a stalled process's queue)."""
        at = t if arrived is None else arrived
        p.grant_fs = msg.failsafe_da
        p.grant_epoch = msg.epoch
        p.fs_da = failsafe_of(p)
        if at > p.last_hb:
            p.last_hb = at
        self.arm(p, p.last_hb + self.b.failsafe_s)
        if at < t:
            self._due_by(p, t)

    def follow(self, p: ServantProc, hb: Heartbeat, key: tuple[int, int], t: float) -> None:
        """Which master the servant follows, by rule 6: a new (id, epoch) ``key`` is a restart, followed at once;
        two (id, epoch) pairs interleaved within conflict_hold, or a heartbeat flagged ``second_master``, are
        two masters: it follows neither's SET_LIMITs until conflict_hold after the last sign. A heartbeat of a
        master heard before that is not fresh (5.2) is a late copy: never followed."""
        hold = self.b.conflict_hold_s
        followed = p.followed
        seen = p.masters_seen
        before = None if key == followed else seen.get(key)  # (only a master it does not follow needs it)
        seen[key] = t
        if len(seen) > 4:  # (restarts add keys: forget those long gone)
            p.masters_seen = {k: v for k, v in seen.items() if t - v <= hold or k == followed}
        if hb.second_master:
            p.second_master_until = t + hold
        if key == followed:
            return
        ours = p.masters_seen.get(followed) if followed is not None else None
        if before is not None and t - before <= hold and ours is not None and t - ours <= hold:
            p.second_master_until = t + hold  # a master it had left behind, heard again while its own is alive
            return
        order = p.hb_orders.get(key)
        if order is not None and not order.newer(hb.seq, t):
            return  # a late copy of a master it heard before is not a restart (5.2)
        p.followed = key

    def heartbeat(self, p: ServantProc, hb: Heartbeat, t: float, arrived: float | None = None) -> None:
        """The servant's Link accepted a heartbeat at ``t``: a fresh one restarts its rule-4 clocks, from its
        arrival (``arrived``: it waited in a stalled process's queue; else ``t``)."""
        at = t if arrived is None else arrived
        key = (hb.master_id, hb.epoch)
        self.follow(p, hb, key, t)
        order = p.hb_orders.get(key)
        if order is None:
            order = p.hb_orders[key] = HeartbeatOrder(self.b.heartbeat_period_s)
        if not hb.leaving and not order.fresh(hb.seq, t):
            return  # a late copy of an old heartbeat restarts no rule-4 clock (PROTOCOL.md 5.2, fresh heartbeats)
        page, mask = HEARD_BITS[p.address]
        if key == p.followed and (key != p.hb_key or (page == hb.page and hb.heard & mask)):  # (hb.hears inline)
            # only the master it follows counts (8.2, rule 4: "no fresh heartbeat of the master it follows has
            # shown its heard bit ... counted from the later of that heartbeat and the moment it began to follow
            # that master"): one it begins to follow gets heard_timeout from then, not from a heartbeat of it
            # heard while two masters kept it from following either (chaos seed 1590); after that only a
            # heartbeat of it saying it hears the servant keeps the servant out of failsafe
            p.hb_key = key
            p.heard_deadline = at + self.b.unheard_s
        if hb.leaving:
            self.arm(p, at + self.b.leaving_s, leaving=True)
        else:
            p.last_hb = at
            self.arm(p, at + self.b.failsafe_s)
        if at < t:
            self._due_by(p, t)

    def arm(self, p: ServantProc, deadline: float, leaving: bool = False) -> None:
        """Move the heartbeat deadline (a ``leaving`` one only closer) and queue the checks it implies."""
        # (locals, not attribute reads: it runs once per heartbeat per servant)
        d = p.hb_deadline
        if not leaving or deadline < d:
            d = p.hb_deadline = deadline
        heard = p.heard_deadline
        fs = p.fs_deadline = d if d < heard else heard
        if fs < p.fs_check_sched:
            p.fs_check_sched = fs
            self.schedule(fs, Check.FAILSAFE, p)
        hold = p.hold_deadline = fs + self.b.hold_s
        if hold < p.hold_sched:
            p.hold_sched = hold
            self.schedule(hold, Check.HOLD, p)

    def _due_by(self, p: ServantProc, now: float) -> None:
        """A frame read at ``now`` that arrived earlier (it waited out a stall): a deadline it set that has
        passed already is checked now (the queue runs nothing in the past), after the frames read with it."""
        if p.fs_deadline <= now:
            p.fs_check_sched = now
            self.schedule(now, Check.FAILSAFE, p)
        if p.hold_deadline <= now:
            p.hold_sched = now
            self.schedule(now, Check.HOLD, p)


def failsafe_of(p: ServantProc) -> int:
    """The failsafe current a servant must fall to, from the frames it accepted (rule 4).

    The one sent with its last set-limit (from whichever master); without one, its standalone one.
    """
    if p.grant_fs is not None:
        return p.grant_fs
    return int(p.cfg.failsafe_da)
