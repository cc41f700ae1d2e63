"""The one node driver: what every caller does after every call into a node.

The runtime (real buses), the simulator (virtual time) and the core tests'
harness all drive nodes the same way, through ``settle``:

1. apply the offer (a servant's pilot follows its state machine first, so an
   ack never goes out before the change it acknowledges);
2. send the messages the call returned, in order;
3. (a servant) feed back hardware readings the new offer changed, each answer
   applied and sent the same way;
4. drain the node's events;
5. schedule the next deadline.

A servant's call that leaves its hardware alone (``settle_servant``'s quiet shortcut) only does 2, 4 and 5.

And one rule for the loop around it (``overslept``): a servant that wakes a tick period or more past its
node's deadline ticks before it takes the frames that queued while it stood still.

What each step means is the ``Host``'s: a hardware driver or a simulated EVSE,
a transport or a simulated bus, a log or a timeline, a loop's wake-up time or
an event queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..frames import Message
from ..protocol.pilot import PilotState
from .events import Event
from .node import Node
from .node import ServantNode

#: readings fed back after one call, at most: a car and a servant that kept answering each other must not
#: hang the caller (the offer of the last round waits for the next call)
FEEDBACK_ROUNDS = 8


class Host(Protocol):
    """Where a node runs: what applying, sending, recording and scheduling are there."""

    def apply(self, now: float) -> None:
        """Put the node's offer on the hardware (nothing for a master)."""
        ...

    def send(self, msgs: list[Message], now: float) -> None: ...

    def record(self, events: Sequence[Event], now: float) -> None: ...

    def schedule(self, deadline: float, now: float) -> None: ...


class ServantHost(Host, Protocol):
    #: the offer the hardware holds (what ``apply`` put there last; -1: none yet)
    offer_da: int
    ev_stopped: bool
    #: the hardware was touched since the last settle (by ``apply``, or before the call by a car or a reboot):
    #: its readings may have changed
    changed: bool

    def reading(self, now: float) -> tuple[PilotState, int | None] | None:
        """A hardware reading the last applied offer changed (pilot, measured), or None: nothing new to observe."""
        ...


def overslept(deadline: float, now: float, tick_period: float) -> bool:
    """Whether a servant's loop waking at ``now`` slept past its node's ``deadline`` by a tick period or more.

    Its process stood still (swap, a blocked write, SIGSTOP) while frames queued: it ticks before it reads
    them, so a heartbeat that waited in the queue is no news that the master lived past the deadline (the
    failsafe, PROTOCOL.md 8.2 rule 4, a stalled process).  The runtime's loop and the simulator's stalled
    processes both ask it.
    """
    return now >= deadline + tick_period


def settle(node: Node, host: Host, out: list[Message], now: float) -> None:
    """After any call into ``node`` that returned ``out``: apply, send, drain events, schedule."""
    host.apply(now)
    if out:
        host.send(out, now)
    host.record(node.drain_events(), now)
    host.schedule(node.next_deadline(), now)


def settle_servant(node: ServantNode, host: ServantHost, out: list[Message], now: float,
                   quiet_shortcut: bool = True) -> None:
    """``settle`` for a servant whose host feeds changed hardware readings back at once.

    A quiet call (the hardware untouched and holding the node's offer already: most heartbeats and STATUS
    ticks) skips applying and reading, which can do nothing then (``quiet_shortcut=False``: the tests' reference).
    """
    if quiet_shortcut and not host.changed and node.offer_da == host.offer_da and node.ev_stopped == host.ev_stopped:
        if out:
            host.send(out, now)
        host.record(node.drain_events(), now)
        host.schedule(node.next_deadline(), now)
        return
    host.apply(now)
    if out:
        host.send(out, now)
    rounds = 0
    while rounds < FEEDBACK_ROUNDS:
        reading = host.reading(now)
        if reading is None:
            break
        rounds += 1
        out = node.observe(reading[0], reading[1], now)
        if rounds < FEEDBACK_ROUNDS:
            host.apply(now)
        if out:
            host.send(out, now)
    host.record(node.drain_events(), now)
    host.schedule(node.next_deadline(), now)
