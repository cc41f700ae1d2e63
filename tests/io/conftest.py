"""Fixtures the process tests of this layer share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.meterproc import EmulatorProc
from tests.support.meterproc import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto broker, stopped after the test."""
    b = Mosquitto(tmp_path)
    yield b
    b.stop()


@pytest.fixture
def meter() -> Iterator[EmulatorProc]:
    """The meter emulator on Modbus TCP (a free port) holding a constant 5 A house load per phase."""
    emu = EmulatorProc(["--kind", "sdm630", "--tcp", "127.0.0.1:0"])
    emu.command("set 5 5 5")
    yield emu
    emu.close()
