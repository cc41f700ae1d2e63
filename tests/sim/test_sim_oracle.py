"""The simulator's parts on their own: the rule-4 oracle and the checks, without a Simulation.

The checks return what they find and never call back into a simulation; the oracle only asks for a
check at each deadline.  Both are driven here by hand, with a list as the event queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from busshare.core.config import ServantConfig
from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.sim.ev import SimEvse
from busshare.sim.invariants import Bounds
from busshare.sim.invariants import Invariants
from busshare.sim.invariants import Service
from busshare.sim.invariants import Violation
from busshare.sim.loop import Check
from busshare.sim.oracle import FailsafeOracle
from busshare.sim.oracle import OracleBounds
from busshare.sim.procs import ServantProc

BOUNDS = OracleBounds(failsafe_s=1.55, unheard_s=3.05, leaving_s=0.05, hold_s=10.05, conflict_hold_s=3.0,
                      heartbeat_period_s=0.2)
CHECK_BOUNDS = Bounds(limit_da=160, failsafe_bound_s=1.55, unheard_bound_s=3.05, leaving_bound_s=0.05,
                      cutoff_bound_s=2.05, settle_s=4.0, rotation_s=0.0, waste_slack_da=11, retry_s=0.5)
Queued = list[tuple[float, Check, "ServantProc | None"]]


class View:
    """A stand-in for the installation the checks read."""

    def __init__(self, servants: list[ServantProc]) -> None:
        self._servants = servants

    @property
    def servants(self) -> Sequence[ServantProc]:
        return self._servants

    quiet = False
    quiet_since = 0.0

    def contested(self, address: int) -> bool:
        return False


def proc(address: int = 1, failsafe_da: int = 60) -> ServantProc:
    cfg = ServantConfig(address=address, max_da=320, failsafe_da=failsafe_da, serial=0x100 + address)
    p = ServantProc(f"s{address}", cfg, SimEvse())
    p.alive = True
    return p


def oracle() -> tuple[FailsafeOracle, Queued]:
    queued: Queued = []
    return FailsafeOracle(BOUNDS, lambda t, what, p: queued.append((t, what, p))), queued


def test_boot_starts_the_failsafe_clock_and_asks_for_both_checks() -> None:
    o, queued = oracle()
    p = proc()
    o.boot(p, 10.0)
    assert p.fs_deadline == 10.0 + 1.55 and p.fs_da == 60
    assert queued == [(11.55, Check.FAILSAFE, p), (11.55 + 10.05, Check.HOLD, p)]


def test_a_fresh_heartbeat_moves_the_deadline_and_a_late_copy_does_not() -> None:
    o, _ = oracle()
    p = proc()
    o.boot(p, 0.0)
    o.heartbeat(p, Heartbeat(master_id=1, epoch=7, limit_da=160, seq=5), 1.0)
    assert p.fs_deadline == 1.0 + 1.55 and p.followed == (1, 7) and p.last_hb == 1.0
    o.heartbeat(p, Heartbeat(master_id=1, epoch=7, limit_da=160, seq=4), 1.2)  # older seq: a late copy
    assert p.fs_deadline == 1.0 + 1.55 and p.last_hb == 1.0


def test_the_heard_clock_of_a_master_runs_from_when_the_servant_begins_to_follow_it() -> None:
    """PROTOCOL.md 8.2, rule 4: from the later of the last heartbeat showing its bit and the moment it began to
    follow that master. Heard while a rival kept it from following either (two masters, rule 6), a master is
    followed only once the rival is gone: its heard clock starts then (chaos seed 1590), not at its first
    heartbeat, which said nothing about this servant."""
    o, _ = oracle()
    p = proc(address=1)
    o.boot(p, 0.0)
    deaf, hears = 0, 0b10  # heartbeats that do not show servant 1's heard bit, and one that does

    def beat(master_id: int, epoch: int, seq: int, t: float, heard: int = deaf) -> None:
        o.heartbeat(p, Heartbeat(master_id=master_id, epoch=epoch, limit_da=160, heard=heard, seq=seq), t)

    beat(1, 9, 1, 1.0)
    beat(7, 1, 1, 1.1)  # a new (id, epoch): a restart, followed at once
    assert p.followed == (7, 1)
    beat(1, 9, 2, 1.2)  # A, B, A: two masters, it follows neither's set-limits
    assert p.followed == (7, 1) and p.second_master_until > 1.2
    for i, t in enumerate((1.4, 2.6, 3.8)):  # (7, 1) is gone; (1, 9) goes on, once saying it hears servant 1
        beat(1, 9, 3 + i, t, hears if t == 1.4 else deaf)
    assert p.followed == (7, 1), "(7, 1) was heard within conflict_hold"
    beat(1, 9, 6, 4.4)
    assert p.followed == (1, 9)
    assert p.heard_deadline == 4.4 + BOUNDS.unheard_s, "from when it began to follow (1, 9) again, not from 1.4"


def test_a_set_limit_counts_only_from_the_followed_epoch_and_a_grant_sets_the_failsafe() -> None:
    o, _ = oracle()
    p = proc()
    o.boot(p, 0.0)
    grant = SetLimit(address=1, epoch=7, txn=1, limit_da=100, failsafe_da=0)
    assert not o.accepts(p, grant, 0.5)  # no heartbeat yet: no master followed
    o.heartbeat(p, Heartbeat(master_id=1, epoch=7, limit_da=160, seq=1), 1.0)
    assert o.accepts(p, grant, 1.1)
    assert not o.accepts(p, SetLimit(address=1, epoch=8, txn=1, limit_da=100, failsafe_da=0), 1.1)
    o.granted(p, grant, 1.1)
    assert p.fs_da == 0 and p.last_hb == 1.1 and p.fs_deadline == 1.1 + 1.55


def test_the_checks_return_violations_instead_of_stopping_anything() -> None:
    p = proc()
    queued: Queued = []
    inv = Invariants(View([p]), CHECK_BOUNDS, Service(waste=False, starvation=False, single_priority=True,
                                                       max_min_da=60), lambda t, what, q: queued.append((t, what, q)))
    p.evse.offer_da = 200  # over the 16 A limit
    found = inv.sync(p, 5.0)
    assert [v.check for v in found] == ["rule1-offered"]
    assert isinstance(found[0], Violation) and found[0].t == 5.0
    assert inv.sync(p, 5.1) == []  # nothing changed: nothing new
    p.fs_deadline = 4.0
    v = inv.check_failsafe(p, 6.0)
    assert v is not None and v.check == "rule4-failsafe"
    p.evse.offer_da = 60
    assert inv.check_failsafe(p, 6.5) is None


def test_stopping_at_the_first_violation_leaves_the_totals_as_they_were_when_it_broke() -> None:
    """A run that stops at a violation reports the peaks it had reached then (the summary after the failure)."""
    p = proc()
    service = Service(waste=False, starvation=False, single_priority=True, max_min_da=60)
    inv = Invariants(View([p]), CHECK_BOUNDS, service, lambda t, what, q: None, first_only=True)
    p.evse.offer_da = 200
    p.evse.draw_da = 200
    assert [v.check for v in inv.sync(p, 5.0)] == ["rule1-offered"]
    assert inv.peak_offered == 200 and inv.peak_drawn == 0 and p.draw == 0


def test_rule6_verdicts_hold_for_the_followed_masters_heartbeats_after_restarts_and_second_master_flags() -> None:
    """The followed master's own heartbeats take a short path through ``follow``: a fifth key still prunes
    the keys long gone, and a ``second_master`` flag on the followed master still holds SET_LIMITs off."""
    o, _ = oracle()
    p = proc()
    o.boot(p, 0.0)
    for epoch in range(5):  # five restarts, 10 s apart: each followed at once
        o.heartbeat(p, Heartbeat(master_id=1, epoch=epoch, limit_da=160, seq=1), 10.0 * epoch)
        assert p.followed == (1, epoch)
    assert list(p.masters_seen) == [(1, 3), (1, 4)]  # (the fifth key pruned those long gone but the followed)
    o.heartbeat(p, Heartbeat(master_id=1, epoch=4, limit_da=160, seq=2), 40.2)
    grant = SetLimit(address=1, txn=1, limit_da=160, failsafe_da=60, epoch=4)
    assert o.accepts(p, grant, 40.3)
    o.heartbeat(p, Heartbeat(master_id=1, epoch=4, limit_da=160, seq=3, second_master=True), 40.4)
    assert p.followed == (1, 4) and not o.accepts(p, grant, 43.3) and o.accepts(p, grant, 43.4)
    o.heartbeat(p, Heartbeat(master_id=2, epoch=9, limit_da=160, seq=1), 41.0)  # a new (id, epoch): followed
    o.heartbeat(p, Heartbeat(master_id=1, epoch=4, limit_da=160, seq=4), 41.1)  # the old one, still alive
    assert p.followed == (2, 9) and p.second_master_until == 41.1 + 3.0
