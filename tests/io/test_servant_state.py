"""The servant's state file (``busshare servant --state``): its memory across restarts, on disk."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from busshare.core.servant_memory import HeartbeatMemory
from busshare.core.servant_memory import ServantMemory
from busshare.frames import SetLimit
from busshare.io.servant_state import StateFile
from busshare.io.servant_state import StateFileError
from busshare.io.servant_state import covers
from busshare.io.servant_state import default_path
from busshare.servant import Servant
from tests.support.servant_steps import C
from tests.support.servant_steps import T
from tests.support.servant_steps import following
from tests.support.servant_steps import hb

MEMORY = ServantMemory((SetLimit(2, 7, 320, 60, 9), SetLimit(2, 41, 160, 60, 12)), (HeartbeatMemory(1, 12, 500, 100.0),))
# what the file keeps of it: the heartbeat order 5 s (25 heartbeats) ahead
KEPT = ServantMemory(MEMORY.set_limits, (HeartbeatMemory(1, 12, 525, 105.0),))


def test_what_one_process_keeps_the_next_takes_back_on_the_same_clock(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "servant-2.json"
    StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0).keep(MEMORY)
    assert StateFile(path, 2, clock=lambda: 160.0, wall=lambda: 1_000_160.0).load() == KEPT
    assert not list(path.parent.glob("*.tmp"))  # written beside it, then renamed


def test_a_machine_restarted_since_gets_its_heartbeat_times_back_on_its_new_clock(tmp_path: Path) -> None:
    path = tmp_path / "servant-2.json"
    StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0).keep(MEMORY)  # taken 50 s before the save
    loaded = StateFile(path, 2, clock=lambda: 20.0, wall=lambda: 1_000_200.0).load()  # rebooted: clock from 0
    assert loaded is not None and loaded.heartbeats[0].at == pytest.approx(-75.0)  # 100 s ago (+5 s reserve)


def test_no_file_is_a_first_start(tmp_path: Path) -> None:
    assert StateFile(tmp_path / "none.json", 2).load() is None


@pytest.mark.parametrize(("text", "problem"), [
    ("{", "not a busshare servant state file"),
    ('{"format": 9}', "format 9, expected 1"),
    ('{"format": 1, "address": 3, "set_limits": [], "heartbeats": []}', "servant 3's, not servant 2's"),
    ('{"format": 1, "address": 2, "set_limits": [[2, "7", 320, 60, 9]], "heartbeats": []}', "'7' is not an integer"),
    ('{"format": 1, "address": 2, "set_limits": []}', "heartbeats"),
])
def test_an_unreadable_file_is_one_line_naming_it_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "servant-2.json"
    path.write_text(text)
    with pytest.raises(StateFileError) as err:
        StateFile(path, 2).load()
    assert str(path) in str(err.value) and problem in str(err.value) and "\n" not in str(err.value)


def _written(tmp_path: Path) -> bytes:
    """The bytes of a real state file (MEMORY kept)."""
    path = tmp_path / "written" / "servant-2.json"
    StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0).keep(MEMORY)
    return path.read_bytes()


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda good: good[:len(good) // 2], "not a busshare servant state file"),  # cut mid-write
    (lambda good: b"", "not a busshare servant state file"),  # the rename reached the disk, the data not
    (lambda good: b"\0" * len(good), "not a busshare servant state file"),  # zero-filled blocks
    (lambda good: b"\xff\xfe" + good[2:], "not a busshare servant state file"),  # not UTF-8
    (lambda good: b"[" * 100_000, "not a busshare servant state file"),  # nested past the parser's depth
    (lambda good: good.replace(b",525,", b",-525,"), "seq -525 out of range"),
    (lambda good: good.replace(b",12,525,", b",300,525,"), "epoch 300 out of range"),
    (lambda good: good.replace(b"]]}", b"e400]]}"), "time inf is not a finite number"),
    (lambda good: good.replace(b'"heartbeats":[[1,', b'"heartbeats":[[99,'), "master_id 99 out of range"),
], ids=["truncated", "empty", "zeros", "not-utf8", "too-deep", "seq", "epoch", "infinite-time", "master-id"])
def test_a_truncated_or_garbage_file_is_one_line_not_a_crash(
        tmp_path: Path, damage: Callable[[bytes], bytes], problem: str) -> None:
    """What a power cut or a corrupt medium leaves: a StateFileError (the servant says so in one ``state``
    event and starts as a new unit), never another exception."""
    good = _written(tmp_path)
    path = tmp_path / "servant-2.json"
    path.write_bytes(damage(good))
    with pytest.raises(StateFileError) as err:
        StateFile(path, 2).load()
    assert str(path) in str(err.value) and problem in str(err.value) and "\n" not in str(err.value)


def test_a_temporary_file_left_by_a_crash_mid_write_is_not_the_state(tmp_path: Path) -> None:
    path = tmp_path / "servant-2.json"
    tmp = tmp_path / "servant-2.json.tmp"
    tmp.write_bytes(_written(tmp_path))  # a whole one, even: the rename never happened
    assert StateFile(path, 2).load() is None  # no state file: a first start
    tmp.write_bytes(b'{"format":1,"addr')  # a half-written one beside a good file
    state = StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0)
    state.keep(MEMORY)
    tmp.write_bytes(b'{"format":1,"addr')
    assert StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0).load() == KEPT
    state.keep(ServantMemory(MEMORY.set_limits[1:], MEMORY.heartbeats))  # the next write replaces it
    assert not tmp.exists()
    assert StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0).load() == ServantMemory(
        MEMORY.set_limits[1:], KEPT.heartbeats)


def test_the_data_is_synced_before_the_rename_and_the_directory_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without both, a power cut after the rename can leave the file empty, or the old one back."""
    path = tmp_path / "servant-2.json"
    path.write_text("old")
    synced: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        what = "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        synced.append((what, path.read_text()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    StateFile(path, 2).keep(MEMORY)
    new = path.read_text()
    assert new != "old"
    expected = [("file", "old"), ("directory", new)] if hasattr(os, "O_DIRECTORY") else [("file", "old")]
    assert synced == expected


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "servant-2.json"
    StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0).keep(MEMORY)

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(StateFileError, match="cannot write: Input/output error"):
        StateFile(path, 2).keep(ServantMemory(MEMORY.set_limits[1:], MEMORY.heartbeats))
    monkeypatch.undo()
    assert StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0).load() == KEPT
    assert not list(tmp_path.glob("*.tmp"))


def test_a_file_that_cannot_be_written_is_an_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateFileError, match="cannot write"):
        StateFile(blocker / "servant-2.json", 2).keep(MEMORY)


def test_it_is_written_only_when_the_memory_changed(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "servant-2.json", 2)
    state.keep(MEMORY)
    state.keep(MEMORY)
    assert state.writes == 1
    state.keep(ServantMemory(MEMORY.set_limits[1:], MEMORY.heartbeats))
    assert state.writes == 2 and json.loads(state.path.read_text())["set_limits"] == [[2, 41, 160, 60, 12]]


def test_a_minute_of_heartbeats_is_a_dozen_writes_and_the_file_always_covers_the_memory(tmp_path: Path) -> None:
    """Five heartbeats a second, each a new order: the file is rewritten once per 5 s, not 300 times (flash
    wear), and at every step a process taking the file back refuses what this one would (PROTOCOL.md 8.4)."""
    state = StateFile(tmp_path / "servant-2.json", 2, clock=lambda: 0.0, wall=lambda: 0.0)
    for i in range(300):  # across the seq's wrap: 900 .. 1023, 0 .. 175
        memory = ServantMemory(MEMORY.set_limits, (HeartbeatMemory(1, 12, (900 + i) % 1024, 100.0 + 0.2 * i),))
        state.keep(memory)
        kept = StateFile(state.path, 2, clock=lambda: 0.0, wall=lambda: 0.0).load()
        assert kept is not None and covers(kept, memory), i
    assert state.writes <= 12  # 300 heartbeats, one write per 26


@pytest.mark.parametrize(("kept", "covered"), [
    (HeartbeatMemory(1, 12, 500, 100.0), True),  # the same order
    (HeartbeatMemory(1, 12, 510, 102.0), True),  # ahead in seq and in time
    (HeartbeatMemory(1, 12, 499, 102.0), False),  # behind in seq: a copy of 500 would be fresh to it
    (HeartbeatMemory(1, 12, 510, 99.0), False),  # forgotten a second sooner than the memory's
    (HeartbeatMemory(1, 12, 500 + 512, 102.0), False),  # half the seq circle on: behind in serial order
    (HeartbeatMemory(1, 13, 510, 102.0), False),  # another epoch's
    (HeartbeatMemory(2, 12, 510, 102.0), False),  # another master's
])
def test_an_order_on_file_covers_the_memorys_when_it_is_at_or_ahead_in_seq_and_in_time(
        kept: HeartbeatMemory, covered: bool) -> None:
    assert covers(ServantMemory(MEMORY.set_limits, (kept,)), MEMORY) is covered


def test_without_a_margin_in_the_seq_order_the_file_keeps_the_orders_as_they_are(tmp_path: Path) -> None:
    """A heartbeat period so short that 511 seqs are less than the 60 s an order is kept: no reserve."""
    state = StateFile(tmp_path / "servant-2.json", 2, clock=lambda: 0.0, wall=lambda: 0.0, period=0.1)
    assert state.reserve == 0
    state.keep(MEMORY)
    assert state.load() == MEMORY


def test_a_process_taking_the_file_back_takes_the_live_master_past_the_reserve_and_no_copy(tmp_path: Path) -> None:
    """The new process refuses a late copy of a heartbeat its predecessor took, and every live heartbeat up to
    the reserve (at most 5 s as without a master), then follows the master again."""
    old = following()
    state = StateFile(tmp_path / "servant-1.json", 1, clock=lambda: 0.0, wall=lambda: 0.0)
    beats = [hb() for _ in range(10)]
    for i, beat in enumerate(beats):
        old.receive(beat, 0.2 + 0.2 * i)
        state.keep(old.memory(0.2 + 0.2 * i))
    new = Servant(old.config, T, 2.5, StateFile(state.path, 1, clock=lambda: 0.0, wall=lambda: 0.0).load())
    new.observe(C, 160, 2.5)
    new.receive(beats[-1], 2.6)  # a gateway's late copy
    assert new.heard_at is None
    live = [hb() for _ in range(30)]  # the master's heartbeats went on meanwhile: 10 more by now
    taken = []
    for i, beat in enumerate(live[10:]):
        new.receive(beat, 2.6 + 0.2 * i)
        taken.append(new.heard_at is not None)
    assert taken.index(True) <= 25  # within the reserve's 5 s
    assert taken[taken.index(True):] == [True] * (len(taken) - taken.index(True))


def test_the_default_is_one_file_per_address_under_xdg_state_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/var/lib/evse")
    assert default_path(5) == Path("/var/lib/evse/busshare/servant-5.json")
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_path(5) == Path.home() / ".local" / "state" / "busshare" / "servant-5.json"
