"""Fixtures the process tests of this layer share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.meterproc import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto broker, stopped after the test."""
    b = Mosquitto(tmp_path)
    yield b
    b.stop()
