"""The oracle's fast path (issue 12, Performance) keeps the books the plain one does.

A heartbeat's heard bit is read without ``Heartbeat.hears``.  Two oracles get the same random heartbeats and
set-limits (a few masters and epochs, pages and heard bits, leaving ones, late copies): one as it is, the other
(a subclass) with the plain ``heartbeat``, through ``hears``.  After every frame their servants' books and the checks they
asked for must agree.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.config import ServantConfig
from busshare.core.heartbeat_order import HeartbeatOrder
from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.sim.ev import SimEvse
from busshare.sim.loop import Check
from busshare.sim.oracle import INF
from busshare.sim.oracle import FailsafeOracle
from busshare.sim.oracle import OracleBounds
from busshare.sim.procs import ServantProc

Queued = list[tuple[float, Check, int]]
BOUNDS = OracleBounds(failsafe_s=1.55, unheard_s=3.05, leaving_s=0.05, hold_s=10.05, conflict_hold_s=3.0,
                      heartbeat_period_s=0.2)


def proc(address: int) -> ServantProc:
    p = ServantProc(f"s{address}", ServantConfig(address=address, max_da=320, failsafe_da=60, serial=0x100 + address),
                    SimEvse())
    p.alive = True
    return p


class PlainOracle(FailsafeOracle):
    """``heartbeat`` as written before the fast path: the heard bit by ``hears``."""

    def heartbeat(self, p: ServantProc, hb: Heartbeat, t: float, arrived: float | None = None) -> None:
        at = t if arrived is None else arrived
        key = (hb.master_id, hb.epoch)
        self.follow(p, hb, key, t)
        order = p.hb_orders.get(key)
        if order is None:
            order = p.hb_orders[key] = HeartbeatOrder(self.b.heartbeat_period_s)
        if not hb.leaving and not order.fresh(hb.seq, t):
            return
        if key == p.followed and (key != p.hb_key or hb.hears(p.address)):
            p.hb_key = key
            p.heard_deadline = at + self.b.unheard_s
        if hb.leaving:
            self.arm(p, at + self.b.leaving_s, leaving=True)
        else:
            p.last_hb = at
            self.arm(p, at + self.b.failsafe_s)
        if at < t:
            self._due_by(p, t)


FIELDS = ("fs_da", "grant_fs", "grant_epoch", "hb_key", "hb_deadline", "heard_deadline", "followed", "masters_seen",
          "second_master_until", "fs_deadline", "fs_check_sched", "last_hb", "hold_deadline", "hold_sched")

frames = st.lists(st.tuples(
    st.sampled_from([0.0, 0.05, 0.2, 0.2, 1.0, 4.0]),
    st.one_of(
        st.builds(lambda mid, epoch, page, heard, step, leaving, second, waited: ("hb", mid, epoch, page, heard, step,
                                                                                    leaving, second, waited),
                  st.sampled_from([1, 1, 1, 2]), st.sampled_from([7, 7, 7, 8]), st.sampled_from([0, 0, 1, 7]),
                  st.sampled_from([0, 0x02, 0x7E, 0x04]), st.sampled_from([1, 1, 1, 0, -2]),
                  st.sampled_from([False, False, False, True]), st.sampled_from([False, False, False, False, True]),
                  st.sampled_from([0.0, 0.0, 0.0, 0.3, 2.0])),  # (read after a stall: counted from its arrival)
        st.builds(lambda epoch, fs: ("set", epoch, fs), st.sampled_from([7, 8]), st.sampled_from([0, 60, 100])),
    ),
), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(frames, st.sampled_from([1, 2, 9, 62]))
def test_the_oracles_fast_heartbeat_keeps_the_books_the_plain_one_does(
        steps: list[tuple[float, tuple[object, ...]]], address: int) -> None:
    queued: dict[str, Queued] = {"fast": [], "plain": []}
    fast = FailsafeOracle(BOUNDS, lambda t, what, p: queued["fast"].append((t, what, 0 if p is None else p.address)))
    plain = PlainOracle(BOUNDS, lambda t, what, p: queued["plain"].append((t, what, 0 if p is None else p.address)))
    pf, pp = proc(address), proc(address)
    fast.boot(pf, 0.0)
    plain.boot(pp, 0.0)
    now = 0.0
    seq = 0
    for delay, frame in steps:
        now = round(now + delay, 3)
        for p in (pf, pp):  # the checks that came due (as the invariants run them): re-armed, or done
            if p.fs_check_sched <= now:
                p.fs_check_sched = p.fs_deadline if p.fs_deadline > now else INF
            if p.hold_sched <= now:
                p.hold_sched = p.hold_deadline if p.hold_deadline > now else INF
        if frame[0] == "hb":
            _, mid, epoch, page, heard, step, leaving, second, waited = frame
            assert isinstance(mid, int) and isinstance(epoch, int) and isinstance(page, int)
            assert isinstance(heard, int) and isinstance(step, int) and isinstance(waited, float)
            arrived = now - waited if waited else None
            seq = (seq + step) % 1024
            heard &= 0xFE if page == 0 else 0x7F if page == 7 else 0xFF
            hb = Heartbeat(mid, epoch, 160, page, heard, seq, leaving=bool(leaving), second_master=bool(second))
            fast.heartbeat(pf, hb, now, arrived)
            plain.heartbeat(pp, hb, now, arrived)
        else:
            _, epoch, fs = frame
            assert isinstance(epoch, int) and isinstance(fs, int)
            msg = SetLimit(address, 1, 100, fs, epoch)
            for o, p in ((fast, pf), (plain, pp)):
                if o.accepts(p, msg, now):
                    o.granted(p, msg, now)
        assert {f: getattr(pf, f) for f in FIELDS} == {f: getattr(pp, f) for f in FIELDS}
        assert queued["fast"] == queued["plain"]
