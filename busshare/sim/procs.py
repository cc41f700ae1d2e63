"""The simulator's view of each node process: the real node object plus what the bus and physics know.

A *process* is one running instance of a node.  A servant process owns an
EVSE (its pilot, contactor and meter, ``SimEvse``) which outlives the process:
when the process crashes the pilot keeps offering its last current until the
EVSE's hardware watchdog resets it (relay open, pilot off).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Literal

from ..core.config import ServantConfig
from ..core.heartbeat_order import HeartbeatOrder
from ..core.node import MasterNode
from ..core.node import ServantNode
from ..core.servant_memory import ServantMemory
from ..protocol.pilot import PilotState
from .bus import Port
from .ev import SimEvse

if TYPE_CHECKING:
    from .hosts import MasterHost
    from .hosts import ServantHost

INF = float("inf")


class Stallable:
    """A process that can stand still (faults.servant_stall, faults.master_stall: swap, a blocked write, SIGSTOP):
    it runs nothing, and the frames that reach it wait in ``backlog`` (arrival, offset, data, corrupted) until it
    resumes at ``resume_at``."""

    __slots__ = ("stalled", "stall_from", "resume_at", "backlog")

    def __init__(self) -> None:
        self.stalled = False
        self.stall_from = INF
        self.resume_at = INF
        self.backlog: list[tuple[float, int, bytes, bool]] = []

    def unstall(self) -> None:
        """It runs again (or died standing still: its queue with it)."""
        self.stalled, self.resume_at, self.backlog = False, INF, []


class MasterProc(Stallable):
    __slots__ = ("name", "node", "port", "master_id", "epoch", "started", "node_sched", "alive", "host", "held")
    is_master: Literal[True] = True  # a literal, so `if p.is_master` tells mypy which proc it is

    def __init__(self, name: str, node: MasterNode, port: Port | None, master_id: int, epoch: int, now: float) -> None:
        super().__init__()
        self.name = name
        self.node = node
        self.port = port  # (None until attached)
        self.host: MasterHost | None = None  # how the simulator drives it (core.driver.Host)
        self.master_id = master_id
        self.epoch = epoch
        self.started = now
        self.node_sched = INF
        self.alive = True
        # the inputs its budget feed queued while it stood still (a mains reading, a setpoint): each given at the
        # resume, after its tick, as the runtime's loop takes them (``Runtime.service``: the tick, then the feed)
        self.held: list[Callable[[float], None]] = []


class ServantProc(Stallable):
    __slots__ = (
        "name", "address", "cfg", "node", "port", "evse", "alive", "node_sched", "ev_sched",
        "r_pilot", "r_measured", "offer", "counted", "pilot", "draw", "fs_da", "grant_fs", "grant_epoch",
        "hb_key", "hb_orders", "hb_deadline", "heard_deadline", "followed", "masters_seen", "second_master_until", "fs_deadline",
        "fs_check_sched", "last_hb", "in_failsafe", "watchdog_at", "hold_deadline", "hold_sched", "twin", "unmet",
        "waiting_since", "starve_sched", "starve_reported", "cutoff_sched", "cutoff_from", "booted", "ev_stopped", "host",
        "paused_at", "paused_offer", "resumed_at", "deaf", "mute", "memory",
    )
    is_master: Literal[False] = False

    def __init__(self, name: str, cfg: ServantConfig, evse: SimEvse, twin: bool = False) -> None:
        super().__init__()
        self.name = name
        self.address: int = cfg.address
        self.cfg = cfg
        self.node: ServantNode | None = None  # the Servant object while the process runs
        self.host: ServantHost | None = None  # how the simulator drives it (core.driver.ServantHost)
        self.port: Port | None = None
        # a partition (faults.partition) is the wiring's, a transceiver's or a cable's, not the process's: each
        # port the unit's processes attach takes it, so it outlives a reboot (and one made while it is down holds)
        self.deaf = False
        self.mute = False
        self.memory: ServantMemory | None = None  # what its last process kept for the next (core.servant_memory)
        self.evse = evse
        self.alive = False
        self.node_sched = INF
        self.ev_sched = INF
        self.r_pilot: PilotState | None = None  # the last reading handed to observe()
        self.r_measured: int | None = None
        # physical state as last synchronised by the invariant checker
        self.offer = 0
        self.counted = 0  # drawn current counted against the limit
        self.pilot = PilotState.A
        self.draw = 0
        # rule 4 bookkeeping, from the frames this process accepted
        self.fs_da: int = cfg.failsafe_da  # the failsafe it must be at or below once the master is silent
        self.grant_fs: int | None = None
        self.grant_epoch: int | None = None
        self.hb_key: tuple[int, int] | None = None  # (master id, epoch) of the last heartbeat it accepted
        self.hb_orders: dict[tuple[int, int], HeartbeatOrder] = {}  # fresh heartbeats per master (5.2)
        self.hb_deadline = INF  # a valid heartbeat (or set-limit) must have arrived by then, else failsafe
        self.heard_deadline = INF  # a heartbeat saying the master hears it must have arrived by then, else failsafe
        # which master it follows and whether it holds off two masters, by the spec (rule 6), from the
        # heartbeats it accepted: a SET_LIMIT counts for rule 4 only if the servant may accept it
        self.followed: tuple[int, int] | None = None
        self.masters_seen: dict[tuple[int, int], float] = {}
        self.second_master_until = -INF
        self.fs_deadline = INF  # the earlier of the two
        self.fs_check_sched = INF
        self.last_hb = -INF
        self.in_failsafe = False
        self.watchdog_at = INF
        self.hold_deadline = INF  # from then on: at most min(failsafe, standalone failsafe)
        self.hold_sched = INF
        self.twin = twin
        self.unmet = False
        self.waiting_since = INF
        self.starve_sched = INF
        self.starve_reported = -INF  # collecting violations: the last starvation report of this wait
        self.cutoff_sched = INF
        # a process restart the EVSE did not see (servant_respawn): its car's cut-off bound runs from here at the
        # earliest, as the new process cannot know how long the car has drawn too much
        self.cutoff_from = -INF
        self.ev_stopped = False  # its EVSE's contactor was open at the last sync (a stop is a demand change)
        # a car that paused itself (sim/pause_checks.py): since when it is in B while offered, the offer at the
        # last sync, since when it charges again after a pause
        self.paused_at = INF
        self.paused_offer = 0
        self.resumed_at = INF
        self.booted = 0.0

    def wire(self, deaf: bool, mute: bool) -> None:
        """The unit's partition (deaf: hears nothing; mute: is not heard), on the port of the process running now
        and on each one a later process attaches (``World._boot_servant`` calls this with the flags kept)."""
        self.deaf, self.mute = deaf, mute
        if self.port is not None:
            self.port.deaf, self.port.mute = deaf, mute
