"""Notable things a node saw or did, for logs and UIs (never for control)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    """What a node's event is about.

    The value is the slug printed in logs and written to JSON records (``"event": "cut-acked"``): a
    ``StrEnum`` prints and serialises as its value, so logs, records and docs read as they always did.
    """

    # the master
    LEARNING = "learning"  # just booted: listening before it grants (§8.3)
    LEARNED = "learned"  # a servant's first STATUS since boot: its offer is known
    LEARNED_ALL = "learned-all"  # every configured servant learned (or its wait is over)
    LEAVING = "leaving"  # shutting down: servants fail safe now
    SERVANT_BACK = "servant-back"  # a silent servant answers again
    SERVANT_SILENT = "servant-silent"  # a servant stopped sending STATUS
    UNCONFIGURED = "unconfigured"  # a servant not in the config: told to pause
    UNIT_REPLACED = "unit-replaced"  # a new serial tag on a known address
    OFFER_BELOW_COUNT = "offer-below-count"
    OFFER_ABOVE_COUNT = "offer-above-count"
    CUT_ACKED = "cut-acked"
    GRANT_ACKED = "grant-acked"
    ACKED = "acked"  # a confirm (the same limit) acked
    RENUMBER = "renumber"
    EV_OVERDRAW = "ev-overdraw"
    NACK = "nack"
    RECLAIM = "reclaim"
    RECLAIM_END = "reclaim-end"
    PAUSED = "paused"  # its car went to B while offered: it keeps its allocation for a grace (8.5)
    PARKED = "parked"  # paused past the grace: its minimum, from leftovers only, failsafe 0 (8.6)
    RESUMED = "resumed"  # a paused or parked car charges again: its demand is its request again
    SUPERSEDED = "superseded"  # an unanswered set-limit replaced by a new one
    ROTATE = "rotate"  # shortage: who charges next
    # the master's live budget (core/budget.py, docs/BUDGET.md): the policy's events, through the master's log
    BUDGET_LOWERED = "budget-lowered"
    BUDGET_RAISED = "budget-raised"
    BUDGET_FALLBACK = "budget-fallback"  # degraded: a source is stale or failed
    BUDGET_RECOVERED = "budget-recovered"  # every source fresh again; the limit recovers in steps
    BUDGET_BACKOFF = "budget-backoff"  # a raise was undone soon: the hold doubles
    METER_FAILED = "meter-failed"  # the first failed mains read of a run
    METER_BACK = "meter-back"  # a good mains reading after failures or staleness
    SETPOINT = "setpoint"
    SETPOINT_EXPIRED = "setpoint-expired"
    SETPOINT_CLEARED = "setpoint-cleared"
    BUDGET_INPUT_IGNORED = "budget-input-ignored"  # an input older than one already taken
    # the master's set-limits, and the servant's offer after one
    CUT = "cut"
    GRANT = "grant"
    CONFIRM = "confirm"
    # both nodes
    RELEASE = "release"
    TWIN = "twin"  # two units on one address
    TWIN_GONE = "twin-gone"
    SECOND_MASTER = "second-master"  # another master on the bus
    SECOND_MASTER_GONE = "second-master-gone"
    EV_STOPPED = "ev-stopped"  # the servant stopped an overdrawing EV
    # the servant
    PILOT = "pilot"  # the EV's pilot state changed
    EV_PAUSED = "ev-paused"  # C -> B while offered: a pause (or full); offer and demand kept (8.4)
    EV_STOP_CLEARED = "ev-stop-cleared"
    STALE_HEARTBEAT = "stale-heartbeat"
    DISARM = "disarm"
    MASTER = "master"  # following a (new) master
    STALE_SET_LIMIT = "stale-set-limit"
    OLD_SET_LIMIT = "old-set-limit"
    GRANT_HELD = "grant-held"
    CLAMPED = "clamped"
    REPEAT = "repeat"
    FAILSAFE = "failsafe"
    FAILSAFE_END = "failsafe-end"
    FAILSAFE_HOLD = "failsafe-hold"
    UNCONFIRMED = "unconfirmed"
    STANDALONE = "standalone"


@dataclass(frozen=True)
class Event:
    t: float  # the ``now`` of the call that produced it
    kind: EventKind
    address: int | None  # the servant concerned (None: the node itself / the whole bus)
    detail: str  # one human line

    def __str__(self) -> str:
        who = "-" if self.address is None else str(self.address)
        return f"{self.t:10.3f} {self.kind:<16} {who:>3} {self.detail}"


class EventLog:
    """A list a node appends to and a caller drains."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    def add(self, t: float, kind: EventKind, address: int | None, detail: str) -> None:
        self._events.append(Event(t, kind, address, detail))

    def drain(self) -> Sequence[Event]:
        """The events since the last drain, oldest first (nothing allocated when there are none: most calls)."""
        out = self._events
        if not out:
            return ()
        self._events = []
        return out
