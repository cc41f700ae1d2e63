"""Shared test settings: hypothesis never asserts timings (machines here are shared and noisy); each test's
servant processes keep their memory across restarts (``busshare servant --state``) in the test's own directory."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings

settings.register_profile(
    "busshare",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("busshare")


@pytest.fixture(autouse=True)
def _servant_state_of_its_own(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A servant process a test starts keeps its state in a directory of the test's, never the user's, and never
    one another test's servant on that address left (which would make it refuse a fixed-epoch master's
    heartbeats for 60 s: PROTOCOL.md 8.4)."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    yield state
