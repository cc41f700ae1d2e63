"""What a servant keeps across a restart of its software (PROTOCOL.md 8.4, "Memory across restarts").

A new process knows nothing of the frames the one before it took.  A late copy (a store-and-forward
gateway, a bridge, a driver that reorders) of a grant the old process applied, and a later cut of the
master superseded, would be applied as new (rule 1: 48 A offered on 32 A, tests/sim/test_sim_memory.py);
late copies of a dead master's heartbeats would be fresh to it and hold it out of failsafe (rule 4).
So a servant keeps, across a restart of its process (a supervisor restarting it, an update, a reboot of
its controller), the two orders that tell a late copy from a new frame:

* per epoch, the newest SET_LIMIT it applied (5.1's txn order): the one of the master it follows and
  those of the last epochs it left;
* per master (id and epoch), the newest fresh heartbeat ``seq`` and when it was taken (5.2's heartbeat
  order), forgotten 60 s after that as before the restart (a clock that restarted with the controller
  counts it from the restart).

Firmware keeps them in RAM that survives a reset, or writes them with each change (the heartbeat order
may be written a reserve ahead, PROTOCOL.md 8.4); the reference runtime writes a small file
(``busshare servant --state``, io/servant_state.py).  A unit whose memory is lost (a replaced
controller, a wiped file) is a new unit: the known limit of PROTOCOL.md 8.7.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..frames import SetLimit


@dataclass(frozen=True)
class HeartbeatMemory:
    """The newest fresh heartbeat of one master (id and epoch)."""

    master_id: int
    epoch: int
    seq: int
    at: float  # when it was taken, on the node's clock: kept ``forget_after`` from then, as the process would have


@dataclass(frozen=True)
class ServantMemory:
    """The orders a servant keeps across a restart of its process; ``Servant(memory=...)`` takes them back."""

    set_limits: tuple[SetLimit, ...] = ()  # per epoch the newest applied, the epoch followed last
    heartbeats: tuple[HeartbeatMemory, ...] = ()
