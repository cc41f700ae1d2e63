"""One JSON language: the same names, letters, serials and time bases in every command, text and JSON alike.

Each test runs the real commands (in-process, ``-i virtual`` for the nodes)
over real output: a capture the simulator wrote, a master, a servant and a
monitor on a bus of their own.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from busshare.cli import main
from tests.cli.test_node_commands import SITE

Record = dict[str, Any]
A_DAY = 86400.0  # "now" as UNIX time, loosely: absolute times are wall-clock readings, not seconds since start


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def lines(text: str) -> list[Record]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lang") / "story.log"
    assert main(["sim", "--speed", "max", "--quiet", "--duration", "45", "--log", str(path)]) == 0
    return path


def capture_times(path: Path) -> list[float]:
    return [float(line[1:line.index(")")]) for line in path.read_text().splitlines()]


def test_pilot_letters_are_the_same_in_json_and_text(capsys: pytest.CaptureFixture[str], capture: Path) -> None:
    text = [line for line in run(capsys, "decode", str(capture)).splitlines() if " STATUS " in line]
    recs = [r for r in lines(run(capsys, "decode", "--json", str(capture))) if r.get("type") == "STATUS"]
    assert len(text) == len(recs) > 20
    assert {r["pilot"] for r in recs} >= {"A", "B", "C"}
    for line, rec in zip(text, recs, strict=True):
        assert re.search(r" STATUS ([A-F]) ", line)[1] == rec["pilot"]  # type: ignore[index]


def test_a_serial_is_hex_everywhere_and_the_status_tag_is_its_low_bits(
        capsys: pytest.CaptureFixture[str], capture: Path) -> None:
    text = run(capsys, "decode", str(capture))
    recs = lines(run(capsys, "decode", "--json", str(capture)))
    joins = {r["address"]: r["serial"] for r in recs if r.get("type") == "JOIN"}
    tags = {r["address"]: r["serial_tag"] for r in recs if r.get("type") == "STATUS"}
    assert joins == {1: "0x00001001", 2: "0x00001002", 3: "0x00001003", 4: "0x00001004"}
    assert all(re.fullmatch(r"0x[0-9a-f]{8}", s) for s in joins.values())
    for address, serial in joins.items():
        assert int(tags[address], 16) == int(serial, 16) & 0x7FFF
        assert f"{address}→master JOIN serial {serial} " in text  # the same text in the listing
        assert f"serial {tags[address]}" in text
    summary = recs[-1]
    assert summary["record"] == "summary"
    recs = lines(run(capsys, "decode", "--summary", "--json", str(capture)))
    assert [s["serials"] for s in recs[-1]["servants"]] == [[joins[a]] for a in (1, 2, 3, 4)]
    assert [s["serial_tags"] for s in recs[-1]["servants"]] == [[tags[a]] for a in (1, 2, 3, 4)]


def test_a_servant_banner_writes_its_serial_as_join_does(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "servant", "--address", "2", "--serial", "0x1c0ffee", "--duration", "0.2", "--json",
              "-i", "virtual", "-c", "lang-banner")
    started = lines(out)[0]
    assert started["event"] == "started" and "serial 0x01c0ffee " in started["detail"]


def test_decode_times_are_the_capture_s_in_json_and_since_the_first_frame_in_text(
        capsys: pytest.CaptureFixture[str], capture: Path) -> None:
    raw = capture_times(capture)
    assert raw[0] == 0.0 or raw[0] > 0  # the simulator's clock starts at 0
    absolute = [r["t"] for r in lines(run(capsys, "decode", "--json", str(capture)))[:-1]]
    assert absolute == pytest.approx(raw, abs=1e-6)
    shifted = capture.with_name("shifted.log")  # the same traffic as captured at a real wall-clock time
    shifted.write_text("".join(f"({t + 1.7e9:.6f}){rest[rest.index(')') + 1:]}\n" for t, rest in
                               zip(raw, capture.read_text().splitlines(), strict=True)))
    for argv in (["--json"], ["--json", "--time", "absolute"]):
        recs = lines(run(capsys, "decode", *argv, str(shifted)))
        assert recs[0]["t"] == pytest.approx(raw[0] + 1.7e9, abs=1e-6)
        assert recs[-1]["start_t"] == pytest.approx(raw[0] + 1.7e9, abs=1e-6)
    rel = lines(run(capsys, "decode", "--json", "--time", "relative", str(shifted)))
    assert rel[0]["t"] == 0.0 and rel[-1]["start_t"] == 0.0
    assert [r["t"] for r in rel[:-1]] == pytest.approx([t - raw[0] for t in raw], abs=2e-6)
    text = run(capsys, "decode", str(shifted)).splitlines()
    assert text[0].startswith("0.000 ")
    text = run(capsys, "decode", "--time", "absolute", str(shifted)).splitlines()
    assert text[0].startswith(f"{raw[0] + 1.7e9:.3f} ")
    summary = lines(run(capsys, "decode", "--summary", "--json", str(shifted)))[-1]
    assert summary["servants"][0]["first_t"] == pytest.approx(raw[0] + 1.7e9, abs=1e-3)
    summary = lines(run(capsys, "decode", "--summary", "--json", "--time", "relative", str(shifted)))[-1]
    assert summary["servants"][0]["first_t"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("command", ["master", "servant"])
def test_node_times_are_unix_time_in_json_and_since_start_when_relative(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    argv = ["master", "--config", str(site)] if command == "master" else ["servant", "--address", "1"]
    argv += ["--duration", "0.3", "--status-interval", "0.1", "-i", "virtual", "-c", f"lang-{command}"]
    before = time.time()
    recs = lines(run(capsys, *argv, "--json"))
    assert all(abs(r["t"] - before) < A_DAY for r in recs)  # UNIX time, like candump -L's
    assert [r["t"] for r in recs] == sorted(r["t"] for r in recs)
    rel = lines(run(capsys, *argv, "--json", "--time", "relative"))
    assert rel[0]["t"] == 0.0 and all(0 <= r["t"] < A_DAY for r in rel)
    heard = [r["last_heartbeat"] for r in rel if r.get("last_heartbeat") is not None]
    assert all(0 <= t < A_DAY for t in heard)  # the same base as t
    text = run(capsys, *argv, "--time", "absolute").splitlines()
    assert abs(float(text[0].split()[0]) - before) < A_DAY
    assert run(capsys, *argv).splitlines()[0].split()[0] == "0.000"


def test_monitor_times(capsys: pytest.CaptureFixture[str]) -> None:
    before = time.time()
    argv = ["monitor", "--duration", "0.2", "-i", "virtual", "-c", "lang-monitor"]
    summary = lines(run(capsys, *argv, "--json"))[-1]
    assert abs(summary["start_t"] - before) < A_DAY and summary["duration_s"] >= 0.2
    summary = lines(run(capsys, *argv, "--json", "--time", "relative"))[-1]
    assert summary["start_t"] == 0.0


def test_sim_accepts_the_choice_and_its_clock_starts_at_zero(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sim", "--speed", "max", "--json", "--duration", "20"]
    a = lines(run(capsys, *argv, "--time", "absolute"))
    r = lines(run(capsys, *argv, "--time", "relative"))
    assert a == r and a[0]["t"] == 0.0 and a[-1]["start_t"] == 0.0


def test_the_node_printer_maps_last_heartbeat_like_t() -> None:
    import io

    from busshare.cli.commands._common import printer
    from busshare.report.records import TimeBase
    from busshare.report.records import TimeMode

    out = io.StringIO()
    printer(True, TimeBase.monotonic(TimeMode.RELATIVE, 100.0), out=out)(
        {"record": "event", "t": 102.5, "event": "failsafe", "address": 1, "detail": "", "last_heartbeat": 101.0})
    rec = json.loads(out.getvalue())
    assert (rec["t"], rec["last_heartbeat"]) == (2.5, 1.0)  # so t - last_heartbeat is the same in every base
