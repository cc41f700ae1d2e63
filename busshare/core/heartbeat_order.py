"""Which heartbeats of a master are fresh: a later ``seq`` than the newest one taken (PROTOCOL.md 5.2).

A gateway, a UDP bridge or a multi-mailbox CAN driver can deliver a copy of an old heartbeat seconds
late.  Taken at face value it would tell a servant the master is alive (rule 4), or that the master
hears it while it no longer does (a mute transmitter, rule 3): the servant would keep its offer past
the bound.  A heartbeat is taken only when its 10-bit ``seq`` is ahead of the newest one taken, in
serial-number order (1-511 ahead); a copy up to 511 heartbeats (102 s) old is always behind.

A master restarted with the same epoch counts its ``seq`` from 0 again, behind the newest taken: its
heartbeats are taken again once ``RUN`` of them came in order, one heartbeat period apart, with no
fresh one between (late copies are scattered, a live master's heartbeats are a steady run), or once
``forget_after`` seconds passed without a fresh one.
"""

from __future__ import annotations

from ..frames import HEARTBEAT_SEQ_MODULO

HALF = HEARTBEAT_SEQ_MODULO // 2
RUN = 3  # heartbeats in order, one period apart: a master restarted with the same epoch
FORGET_AFTER_S = 60.0  # longer than any late copy the protocol expects, far shorter than the 102 s of seq order


def _ahead(seq: int, of: int) -> int:
    return (seq - of) % HEARTBEAT_SEQ_MODULO


class HeartbeatOrder:
    """Fresh heartbeats of one master (one id and epoch), by their ``seq``."""

    __slots__ = ("period", "forget_after", "newest", "at", "_run_seq", "_run_at", "_run")

    def __init__(self, period: float, forget_after: float = FORGET_AFTER_S) -> None:
        self.period = period
        self.forget_after = forget_after
        self.newest: int | None = None
        self.at = 0.0
        self._run_seq = 0
        self._run_at = 0.0
        self._run = 0  # stale heartbeats in order so far, one period apart, with no fresh one between

    def fresh(self, seq: int, now: float) -> bool:
        """Take ``seq`` if it is newer than every one taken (or it is the first, or the newest is forgotten,
        or it completes a run of ``RUN`` in order: a master restarted with the same epoch)."""
        newest = self.newest
        if newest is None or now >= self.at + self.forget_after or 0 < _ahead(seq, newest) < HALF:
            return self._take(seq, now)
        if self._run and 0 < _ahead(seq, self._run_seq) <= 2 and now >= self._run_at + self.period / 2:
            self._run += 1
        else:
            self._run = 1
        self._run_seq, self._run_at = seq, now
        if self._run >= RUN:
            return self._take(seq, now)
        return False

    def _take(self, seq: int, now: float) -> bool:
        self.newest = seq
        self.at = now
        self._run = 0
        return True
