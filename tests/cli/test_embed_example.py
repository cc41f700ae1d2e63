"""examples/embed_servant.py, the program docs/CLI-RUNTIME.md shows and runs (session can-embedded).

Its shown output must not depend on how long the machine took to open the bus: the node boots once the
bus is open (as ``busshare servant`` does), so its first step comes well inside its failsafe time and
prints the plain offer before the failsafe, however slow the start.  Run here on a virtual clock and a
python-can ``virtual`` bus: opening the bus takes 2 s of that clock, longer than the 1.5 s failsafe.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import uuid
from pathlib import Path

import can
import pytest

import busshare.cli.transports as transports
from busshare.io.runtime import Runtime
from busshare.transport.can import CanTransport

ROOT = Path(__file__).resolve().parents[2]
SLOW_OPEN_S = 2.0  # longer than Timing().failsafe_timeout (1.5 s)


def test_the_first_step_comes_before_the_failsafe_however_long_the_bus_took_to_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clock = [1000.0]
    buses: list[can.BusABC] = []

    def slow_open_can(args: argparse.Namespace) -> CanTransport:
        clock[0] += SLOW_OPEN_S
        bus = can.Bus(interface="virtual", channel=f"embed-{uuid.uuid4()}")
        buses.append(bus)
        return CanTransport(bus, transports.can_ids(args))

    def first_step(self: Runtime, duration: float | None = None, handle_signals: bool = True) -> None:
        self.service(clock[0])  # what run() does first, at the time it starts
        self.transport.shutdown()

    monkeypatch.setattr("time.monotonic", lambda: clock[0])
    monkeypatch.setattr(transports, "open_can", slow_open_can)
    monkeypatch.setattr(Runtime, "run", first_step)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["embed_servant.py"])
    runpy.run_path(str(ROOT / "examples" / "embed_servant.py"), run_name="__main__")
    assert len(buses) == 1
    assert capsys.readouterr().out.splitlines() == ["pilot PWM 100.0 % (0.0 A)", "offer 0.0 A", "pilot pilot A -> C"]
