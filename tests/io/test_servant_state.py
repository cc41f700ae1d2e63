"""The servant's state file (``busshare servant --state``): its memory across restarts, on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from busshare.core.servant_memory import HeartbeatMemory
from busshare.core.servant_memory import ServantMemory
from busshare.frames import SetLimit
from busshare.io.servant_state import StateFile
from busshare.io.servant_state import StateFileError
from busshare.io.servant_state import default_path

MEMORY = ServantMemory((SetLimit(2, 7, 320, 60, 9), SetLimit(2, 41, 160, 60, 12)), (HeartbeatMemory(1, 12, 500, 100.0),))


def test_what_one_process_keeps_the_next_takes_back_on_the_same_clock(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "servant-2.json"
    StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0).keep(MEMORY)
    assert StateFile(path, 2, clock=lambda: 160.0, wall=lambda: 1_000_160.0).load() == MEMORY
    assert not list(path.parent.glob("*.tmp"))  # written beside it, then renamed


def test_a_machine_restarted_since_gets_its_heartbeat_times_back_on_its_new_clock(tmp_path: Path) -> None:
    path = tmp_path / "servant-2.json"
    StateFile(path, 2, clock=lambda: 150.0, wall=lambda: 1_000_150.0).keep(MEMORY)  # taken 50 s before the save
    loaded = StateFile(path, 2, clock=lambda: 20.0, wall=lambda: 1_000_200.0).load()  # rebooted: clock from 0
    assert loaded is not None and loaded.heartbeats[0].at == pytest.approx(-80.0)  # 100 s ago by the wall clock


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
    state.keep(ServantMemory(MEMORY.set_limits[1:]))
    assert state.writes == 2 and json.loads(state.path.read_text())["set_limits"] == [[2, 41, 160, 60, 12]]


def test_the_default_is_one_file_per_address_under_xdg_state_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/var/lib/evse")
    assert default_path(5) == Path("/var/lib/evse/busshare/servant-5.json")
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_path(5) == Path.home() / ".local" / "state" / "busshare" / "servant-5.json"
