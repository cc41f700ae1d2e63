"""A servant's memory across a restart of its process (PROTOCOL.md 8.4): the txn and heartbeat orders."""

from __future__ import annotations

from busshare.core.events import EventKind
from busshare.core.servant_memory import HeartbeatMemory
from busshare.core.servant_memory import ServantMemory
from busshare.frames import Heartbeat
from busshare.frames import Nack
from busshare.frames import NackCode
from busshare.frames import SetLimit
from busshare.servant import Servant
from tests.support.servant_steps import C
from tests.support.servant_steps import T
from tests.support.servant_steps import following
from tests.support.servant_steps import hb
from tests.support.servant_steps import of


def restarted(old: Servant, now: float) -> Servant:
    """A new process of the same unit, given what the old one kept."""
    new = Servant(old.config, T, now, old.memory(now))
    new.observe(C, 160, now)  # its first look: the car charging on the held pilot
    return new


def test_a_new_process_refuses_a_late_copy_of_a_grant_its_predecessor_saw_superseded() -> None:
    old = following(limit=320)  # txn 1: 32 A
    old.receive(SetLimit(1, 2, 160, 60, 7), 1.0)  # txn 2: cut to 16 A
    live = hb()
    old.receive(live, 1.1)
    new = restarted(old, 2.0)
    new.receive(hb(), 2.1)  # the master's next heartbeat: followed
    out = new.receive(SetLimit(1, 1, 320, 60, 7), 2.2)  # a gateway's copy of txn 1
    assert of(Nack, out) == [Nack(1, NackCode.OLD_TXN, 1, 1, 2)] and new.limit_da != 320
    new.receive(SetLimit(1, 3, 200, 60, 7), 2.3)  # the master's next one: numbered on
    assert new.limit_da == 200


def test_the_newest_set_limit_taken_again_by_a_new_process_is_applied_not_held_down() -> None:
    """The master re-sends the cut the old process applied but had not acked yet: the new process applies it
    (the master counts it), where a repeat of a left master's newest never raises the offer."""
    old = following(limit=320)
    old.receive(SetLimit(1, 2, 160, 60, 7), 1.0)
    new = restarted(old, 2.0)
    new.receive(hb(), 2.1)
    new.receive(SetLimit(1, 2, 160, 60, 7), 2.2)
    assert new.limit_da == 160


def test_a_new_process_does_not_follow_a_late_copy_of_a_heartbeat_its_predecessor_took() -> None:
    old = following()
    copy = hb()
    old.receive(copy, 1.0)
    old.receive(hb(), 1.2)
    new = restarted(old, 2.0)
    new.receive(copy, 2.05)  # an echo of an old heartbeat: not fresh, not followed
    assert new.heard_at is None
    assert any(e.kind is EventKind.STALE_HEARTBEAT for e in new.drain_events())
    new.receive(hb(), 2.1)
    assert new.heard_at == 2.1


def test_the_memory_keeps_when_each_heartbeat_was_taken_and_forgets_it_as_the_process_would() -> None:
    old = following()
    newest = old.memory(0.5).heartbeats[-1].seq
    last = Heartbeat(1, 7, 640, 0, 0xFE, (newest + 1) % 1024)
    old.receive(last, 1.0)
    memory = old.memory(1.5)
    assert HeartbeatMemory(1, 7, last.seq, 1.0) in memory.heartbeats
    assert memory.set_limits[-1] == SetLimit(1, 1, 320, 60, 7)
    # a master restarted with the same id and epoch counts seq from 1 (here: far behind the newest taken): 60 s
    # after the old process took its newest, a new process follows it, as the old one would have
    again = Heartbeat(1, 7, 640, 0, 0xFE, (last.seq + 600) % 1024)
    late = Servant(old.config, T, 30.0, memory)
    late.receive(again, 30.0)
    assert late.heard_at is None
    later = Servant(old.config, T, 61.5, memory)
    later.receive(again, 61.5)
    assert later.heard_at == 61.5


def test_a_clock_restarted_with_the_controller_keeps_the_orders_from_the_restart() -> None:
    memory = ServantMemory((SetLimit(1, 9, 320, 60, 7),), (HeartbeatMemory(1, 7, 500, 9000.0),))
    s = Servant(following().config, T, 5.0, memory)  # a monotonic clock from the reboot: 5 s < 9000 s
    s.receive(Heartbeat(1, 7, 640, 0, 0xFE, 499), 5.1)
    assert s.heard_at is None  # older than the newest kept: a late copy
    s.receive(Heartbeat(1, 7, 640, 0, 0xFE, 501), 5.2)
    assert s.heard_at == 5.2
