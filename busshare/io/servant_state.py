"""The servant's memory across restarts, in a file (``busshare servant --state``; PROTOCOL.md 8.4).

``StateFile.load()`` gives back what the unit's previous process kept (a missing file: nothing), and
``keep(memory)`` writes it whenever the file no longer covers it: a small JSON file replaced atomically
(written beside it, then renamed), so a process killed mid-write leaves the old one whole.

A heartbeat order moves with every heartbeat: written as it is, that is five writes a second, 430 000 a
day on the flash of an EVSE controller.  So the file keeps each order ``reserve_s`` ahead (its ``seq``
that many heartbeat periods on, its time as far): every copy the process took or could take until then
is behind the order on file, and the file is rewritten only when a heartbeat passes it, once per
``reserve_s`` (PROTOCOL.md 8.4).  The price is paid after a restart only: the new process does not take
the live master's heartbeats until they pass the reserve (at most ``reserve_s`` more as without a master).

Not synced to the disk: a restart of the process (the hazard) keeps the page cache; after a power cut
the file may be seconds old, and the unit starts with its pilot off anyway.

The heartbeat orders' times are on the node's clock (``time.monotonic``), which restarts with the
machine: the file stores them as wall-clock times and ``load`` turns them back (a wall clock that
jumped only makes an order kept for longer or shorter, never a copy fresh within it).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..core.config import Timing
from ..core.heartbeat_order import FORGET_AFTER_S
from ..core.heartbeat_order import HALF
from ..core.servant_memory import HeartbeatMemory
from ..core.servant_memory import ServantMemory
from ..errors import BusshareError
from ..frames import HEARTBEAT_SEQ_MODULO
from ..frames import SetLimit

FORMAT = 1
RESERVE_S = 5.0  # how far ahead the file keeps a heartbeat order: one write per 5 s of heartbeats, not 25


class StateFileError(BusshareError):
    """The state file cannot be read or written (its path and the problem, in one line)."""


def default_path(address: int) -> Path:
    """``$XDG_STATE_HOME/busshare/servant-N.json`` (``~/.local/state`` without it): one per unit address."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "busshare" / f"servant-{address}.json"


class StateFile:
    """One unit's memory on disk."""

    def __init__(self, path: Path, address: int, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, period: float = Timing().heartbeat_period,
                 reserve_s: float = RESERVE_S) -> None:
        self.path = path
        self.address = address
        self.clock = clock
        self.wall = wall
        self.period = period
        # in heartbeats; a copy as old as an order is kept (60 s) must stay behind the reserve in serial order
        margin = HALF - 1 - math.ceil(FORGET_AFTER_S / period)
        self.reserve = max(0, min(math.ceil(reserve_s / period - 1e-9), margin))
        self.writes = 0
        self._last: ServantMemory | None = None  # what the file holds

    def load(self) -> ServantMemory | None:
        """What the previous process kept; None when there is no file.  StateFileError when it is unreadable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"{self.path}: cannot read: {exc.strerror or exc}") from exc
        try:
            memory = self._parse(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateFileError(f"{self.path}: not a busshare servant state file: {exc}") from exc
        self._last = memory
        return memory

    def keep(self, memory: ServantMemory) -> None:
        """Write ``memory`` (its heartbeat orders reserved ahead) unless the file covers it.

        StateFileError when it cannot."""
        if self._last is not None and covers(self._last, memory):
            return
        memory = self._reserved(memory)
        data = self._unparse(memory)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise StateFileError(f"{self.path}: cannot write: {exc.strerror or exc}") from exc
        self._last = memory
        self.writes += 1

    def _reserved(self, memory: ServantMemory) -> ServantMemory:
        """Each heartbeat order ``reserve`` heartbeats ahead, in ``seq`` and in time."""
        ahead, later = self.reserve, self.reserve * self.period
        return ServantMemory(memory.set_limits, tuple(
            HeartbeatMemory(h.master_id, h.epoch, (h.seq + ahead) % HEARTBEAT_SEQ_MODULO, h.at + later)
            for h in memory.heartbeats))

    def _unparse(self, memory: ServantMemory) -> dict[str, object]:
        offset = self.wall() - self.clock()  # node clock -> wall clock
        return {
            "format": FORMAT,
            "address": self.address,
            "set_limits": [[m.address, m.txn, m.limit_da, m.failsafe_da, m.epoch] for m in memory.set_limits],
            "heartbeats": [[h.master_id, h.epoch, h.seq, round(h.at + offset, 3)] for h in memory.heartbeats],
        }

    def _parse(self, data: object) -> ServantMemory:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format') if isinstance(data, dict) else None!r}, expected {FORMAT}")
        if data["address"] != self.address:
            raise ValueError(f"it is servant {data['address']}'s, not servant {self.address}'s")
        offset = self.wall() - self.clock()
        set_limits = tuple(SetLimit(*(_int(v) for v in row)) for row in data["set_limits"])
        beats = tuple(HeartbeatMemory(_int(i), _int(e), _int(q), float(at) - offset)
                      for i, e, q, at in data["heartbeats"])
        return ServantMemory(set_limits, beats)


def covers(kept: ServantMemory, memory: ServantMemory) -> bool:
    """Whether a process taking ``kept`` back refuses every copy one holding ``memory`` would.

    The same SET_LIMITs, and each heartbeat order at or ahead of the memory's, in ``seq`` (serial order)
    and in time (an order kept to a later time is forgotten later).
    """
    if kept.set_limits != memory.set_limits:
        return False
    orders = {(h.master_id, h.epoch): h for h in kept.heartbeats}
    for h in memory.heartbeats:
        k = orders.get((h.master_id, h.epoch))
        if k is None or k.at < h.at or (k.seq - h.seq) % HEARTBEAT_SEQ_MODULO >= HALF:
            return False
    return True


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    return value
