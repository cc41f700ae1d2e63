"""Interop: cantools' own `cantools decode dbc/busshare.dbc` agrees with `busshare decode` on a sim capture.

Both real console scripts read the same candump text on stdin; every signal
cantools prints must equal the field busshare prints for that frame.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from busshare.sim.runner import Simulation
from busshare.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
DBC = ROOT / "dbc" / "busshare.dbc"

SPECIAL = {"AliveCounter": "counter", "MaxCurrent": "max_a", "Min": "min_a"}


def command(name: str, module: str) -> list[str]:
    exe = shutil.which(name)
    return [exe] if exe else [sys.executable, "-m", module]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def parse_cantools(line: str) -> tuple[str, dict[str, str]]:
    """'  vcan0  001   [8]  5F ... :: SetLimit_01(Crc: 95, Limit: 0.0 A, ...)' -> ('SetLimit', {...})."""
    _, _, decoded = line.partition(" :: ")
    m = re.fullmatch(r"(\w+?)_?(\d*)\((.*)\)", decoded.strip())
    assert m, line
    signals = re.split(r", (?=[A-Z][A-Za-z0-9]*: )", m.group(3))
    return m.group(1), dict(s.split(": ", 1) for s in signals)


def agree(signal: str, value: str, rec: dict[str, Any]) -> None:
    if signal == "Crc":
        return
    heard = re.fullmatch(r"HeardS(\d\d)", signal)
    if heard:  # one signal per servant of the page; busshare lists the servants heard
        assert (int(heard.group(1)) in rec["heard"]) == (value == "1"), (signal, value, rec)
        return
    if value.endswith(" A"):
        key = SPECIAL.get(signal, snake(signal) + "_a")
        assert rec[key] == pytest.approx(float(value[:-2])), (signal, value, rec)
        return
    key = SPECIAL.get(signal, snake(signal))
    mine = rec[key]
    if value == "unknown":
        assert mine is None or rec.get(key + "_a", "x") is None, (signal, rec)
    elif isinstance(mine, bool):
        assert mine == bool(int(value)), (signal, value, rec)
    elif isinstance(mine, int):
        assert mine == int(value), (signal, value, rec)
    elif key in ("serial", "serial_tag"):  # hex text in busshare's JSON, a number in cantools'
        assert int(mine, 16) == int(value), (signal, value, rec)
    elif key == "pilot":  # the IEC 61851 letter, as the DBC names it
        assert mine == value.split(":")[0], (signal, value, rec)
    elif isinstance(mine, str):  # an enum: cantools prints the DBC value name
        assert mine == value.lower().replace("_", "-"), (signal, value, rec)
    else:
        raise AssertionError(f"no rule for {signal}={value!r} vs {mine!r}")


def agree_unknown_measured(signal: str, value: str, rec: dict[str, Any]) -> bool:
    """cantools prints the raw 'unknown' choice; busshare says null for the current."""
    return signal == "Measured" and value == "unknown" and rec.get("measured_a") is None


@pytest.fixture(scope="module")
def capture_text() -> str:
    result = Simulation(load_scenario("story")).run()
    assert result.ok and len(result.capture) > 1000
    # exactly what `candump vcan0` prints
    return "".join(f"  vcan0  {off:03X}   [8]  {data.hex(' ').upper()}\n" for _, off, data in result.capture)


def test_cantools_and_busshare_agree_on_every_frame_of_a_sim_capture(capture_text: str) -> None:
    ct = subprocess.run([*command("cantools", "cantools"), "decode", "--single-line", str(DBC)],
                        input=capture_text, capture_output=True, text=True, timeout=300)
    assert ct.returncode == 0, ct.stderr
    bs = subprocess.run([*command("busshare", "busshare"), "decode", "--json", "-"], input=capture_text,
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bs.returncode == 0, bs.stderr
    theirs = [line for line in ct.stdout.splitlines() if line.strip()]
    mine = [json.loads(line) for line in bs.stdout.splitlines()]
    totals = mine.pop()
    assert totals["record"] == "summary"
    assert totals["bad"] == 0 and totals["good"] == len(theirs) == len(mine)
    kinds = set()
    for line, rec in zip(theirs, mine, strict=True):
        name, signals = parse_cantools(line)
        assert name.upper() == rec["type"].replace("_", ""), (line, rec)
        kinds.add(rec["type"])
        for signal, value in signals.items():
            if not agree_unknown_measured(signal, value, rec):
                agree(signal, value, rec)
    # the story exercises the whole sharing cycle
    assert {"HEARTBEAT", "STATUS", "JOIN", "SET_LIMIT", "ACK", "REQUEST", "RELEASE"} <= kinds


def test_a_frame_cantools_rejects_is_a_bad_frame_for_busshare_too() -> None:
    """A wrong CRC still decodes in cantools (it knows no E2E); busshare reports it, never acts on it."""
    line = "  vcan0  040   [8]  AB 00 01 07 00 80 02 0F\n"
    bs = subprocess.run([*command("busshare", "busshare"), "decode", "--json", "-"], input=line,
                        capture_output=True, text=True, cwd=ROOT, timeout=60)
    recs = [json.loads(x) for x in bs.stdout.splitlines()]
    assert recs[0]["error"] == "crc" and recs[-1]["e2e_errors"] == {"crc": 1}
    ct = subprocess.run([*command("cantools", "cantools"), "decode", "--single-line", str(DBC)], input=line,
                        capture_output=True, text=True, timeout=60)
    assert "Heartbeat(" in ct.stdout  # the DBC alone cannot tell: this is what the E2E check adds
