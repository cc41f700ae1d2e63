"""The servant's memory across restarts, in a file (``busshare servant --state``; PROTOCOL.md 8.4).

``StateFile.load()`` gives back what the unit's previous process kept (a missing file: nothing), and
``keep(memory)`` writes it whenever the file no longer covers it: a small JSON file replaced atomically
and durably (written to ``NAME.tmp`` beside it, synced, renamed over it, the directory synced), so a
process killed or a power cut mid-write leaves the old file whole.  ``load`` reads the file only: a
``.tmp`` left by a crash mid-write is never taken as the state, and the next write replaces it.

A heartbeat order moves with every heartbeat: written as it is, that is five writes a second, 430 000 a
day on the flash of an EVSE controller.  So the file keeps each order ``reserve_s`` ahead (its ``seq``
that many heartbeat periods on, its time as far): every copy the process took or could take until then
is behind the order on file, and the file is rewritten only when a heartbeat passes it, once per
``reserve_s`` (PROTOCOL.md 8.4).  The price is paid after a restart only: the new process does not take
the live master's heartbeats until they pass the reserve (at most ``reserve_s`` more as without a master).

Synced to the disk at each write: without it a power cut can leave the renamed file empty or partly
written on filesystems that do not order a rename after its data (and the unit would start as a new one,
PROTOCOL.md 8.7).  It costs one journal commit per write, and the writes are already few (the reserve
below); a file that is still unreadable (a corrupt medium) is one ``StateFileError`` line, never a crash.

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
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"{self.path}: cannot read: {exc.strerror or exc}") from exc
        try:  # (bytes that are not UTF-8, a corrupt medium: a UnicodeDecodeError, a ValueError)
            memory = self._parse(json.loads(raw.decode("utf-8")))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
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
        try:
            write_durably(self.path, json.dumps(data, separators=(",", ":")) + "\n")
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
        beats = tuple(HeartbeatMemory(_int(i, 16, "master_id"), _int(e, 256, "epoch"),
                                      _int(q, HEARTBEAT_SEQ_MODULO, "seq"), _finite(at) - offset)
                      for i, e, q, at in data["heartbeats"])
        return ServantMemory(set_limits, beats)


def write_durably(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a crash or a power cut leaves the old file or the new, whole.

    ``NAME.tmp`` in the same directory (a rename is atomic within one filesystem), its data synced before
    the rename, the directory synced after it so the rename itself survives (POSIX; skipped where
    ``os.O_DIRECTORY`` is missing).  OSError when it cannot; the temporary file is then removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    o_directory: int | None = getattr(os, "O_DIRECTORY", None)
    if o_directory is not None:
        fd = os.open(path.parent, os.O_RDONLY | o_directory)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


def _int(value: object, below: int | None = None, name: str = "") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    if below is not None and not 0 <= value < below:
        raise ValueError(f"{name} {value} out of range (0-{below - 1})")
    return value


def _finite(value: object) -> float:
    """A time on file: a finite number (an infinite one would keep its heartbeat order forever)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"time {value!r} is not a finite number")
    return float(value)
