"""Which heartbeats of a master are fresh: a later ``seq`` than the newest one taken (PROTOCOL.md 5.2).

A gateway, a UDP bridge or a multi-mailbox CAN driver can deliver a copy of an old heartbeat seconds
late.  Taken at face value it would tell a servant the master is alive (rule 4), or that the master
hears it while it no longer does (a mute transmitter, rule 3): the servant would keep its offer past
the bound.  A heartbeat is taken only when its 10-bit ``seq`` is ahead of the newest one taken, in
serial-number order (1-511 ahead); a copy up to 511 heartbeats (102 s) old is always behind.

A master restarted with the same epoch counts its ``seq`` from 1 again, behind the newest taken: its
heartbeats are taken again once ``forget_after`` seconds passed without a fresh one (its servants are in
failsafe meanwhile).  Nothing earlier tells it from late copies: copies that come over a second path
(a bridge, a UDP loop) arrive as a steady run, in order and one period apart, just like a live master,
and taking such a run would hold a dead master's servants up, or a mute one's, by the path's delay.
"""

from __future__ import annotations

from ..frames import HEARTBEAT_SEQ_MODULO

HALF = HEARTBEAT_SEQ_MODULO // 2
FORGET_AFTER_S = 60.0  # longer than any late copy the protocol expects, far shorter than the 102 s of seq order


class HeartbeatOrder:
    """Fresh heartbeats of one master (one id and epoch), by their ``seq``."""

    __slots__ = ("period", "forget_after", "newest", "at")

    def __init__(self, period: float, forget_after: float = FORGET_AFTER_S) -> None:
        self.period = period
        self.forget_after = forget_after
        self.newest: int | None = None
        self.at = 0.0

    @classmethod
    def taken(cls, period: float, seq: int, now: float) -> HeartbeatOrder:
        """An order whose newest ``seq`` was taken at ``now`` (one a previous process of the servant kept)."""
        order = cls(period)
        order.newest = seq
        order.at = now
        return order

    def fresh(self, seq: int, now: float) -> bool:
        """Take ``seq`` if it is ``newer`` than every one taken (or it is the first, or the newest is forgotten)."""
        # (``newer``'s predicate, repeated rather than called: this runs twice per heartbeat per servant in the
        # simulator, and the call cost 0.7 % of a chaos run's instructions; tests/core/test_heartbeat_order.py
        # holds the two to the same answers)
        newest = self.newest
        if newest is None or now >= self.at + self.forget_after or 0 < (seq - newest) % HEARTBEAT_SEQ_MODULO < HALF:
            self.newest = seq
            self.at = now
            return True
        return False

    def newer(self, seq: int, now: float) -> bool:
        """Whether ``fresh`` would take ``seq`` now, without taking it: ahead of the newest in serial order."""
        newest = self.newest
        return (newest is None or now >= self.at + self.forget_after
                or 0 < (seq - newest) % HEARTBEAT_SEQ_MODULO < HALF)

    def forgotten(self, now: float) -> bool:
        """Nothing taken, or the newest forgotten: any ``seq`` is fresh (the order can be dropped)."""
        return self.newest is None or now >= self.at + self.forget_after
