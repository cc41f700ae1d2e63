"""The servant's memory across restarts, in a file (``busshare servant --state``; PROTOCOL.md 8.4).

``StateFile.load()`` gives back what the unit's previous process kept (a missing file: nothing), and
``keep(memory)`` writes it whenever it changed: a small JSON file replaced atomically (written beside
it, then renamed), so a process killed mid-write leaves the old one whole.  Not synced to the disk: a
restart of the process (the hazard) keeps the page cache; after a power cut the file may be seconds
old, and the unit starts with its pilot off anyway.

The heartbeat orders' times are on the node's clock (``time.monotonic``), which restarts with the
machine: the file stores them as wall-clock times and ``load`` turns them back (a wall clock that
jumped only makes an order kept for longer or shorter, never a copy fresh within it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..core.servant_memory import HeartbeatMemory
from ..core.servant_memory import ServantMemory
from ..errors import BusshareError
from ..frames import SetLimit

FORMAT = 1


class StateFileError(BusshareError):
    """The state file cannot be read or written (its path and the problem, in one line)."""


def default_path(address: int) -> Path:
    """``$XDG_STATE_HOME/busshare/servant-N.json`` (``~/.local/state`` without it): one per unit address."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "busshare" / f"servant-{address}.json"


class StateFile:
    """One unit's memory on disk."""

    def __init__(self, path: Path, address: int, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.address = address
        self.clock = clock
        self.wall = wall
        self.writes = 0
        self._last: ServantMemory | None = None

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
        """Write ``memory`` if it changed since the last write or load.  StateFileError when it cannot."""
        if memory == self._last:
            return
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


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    return value
