"""One JSON language: every command's real JSON output follows the schemas shipped with the package.

The outputs come from real runs: ``sim`` in-process, ``master``, ``servant``
and ``monitor`` as processes on udp_multicast (a port of their own, with a few
malformed frames injected), ``decode`` over a capture the simulator wrote (and
a damaged one, and a Modbus one), ``busload`` and ``check-config``.  Each line
is validated against ``record.schema.json`` with ``jsonschema``; together the
runs must show every record kind, so no schema goes untested.
"""

from __future__ import annotations

import json
import os
import pty
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import can
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing import Resource

from busshare.analysis.describe import Describer
from busshare.analysis.describe import frame_record
from busshare.cli import main
from busshare.frames import Nack
from busshare.frames import NackCode
from busshare.frames import offset_of
from busshare.protocol.e2e import E2EStatus
from busshare.report.records import RecordKind
from busshare.report.schema import NAMES
from busshare.report.schema import all_schemas
from busshare.report.schema import load
from tests.analysis.test_modbus_decode import BAUD
from tests.analysis.test_modbus_decode import line_bytes
from tests.analysis.test_modbus_decode import timed_text
from tests.support.nodeproc import Installation
from tests.support.nodeproc import NodeProc
from tests.support.nodeproc import granted
from tests.support.site_files import site_toml

Record = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]

SITE = site_toml((1, 2), limit_a=32, max_a=16)

DAMAGED = """\
(1700000000.000000) vcan0 040#AA0001070080020F
this line is not a frame
(1700000000.100000) vcan0 040#AA0001070080020F
(1700000000.200000) vcan0 7FF#0011223344556677
(1700000000.300000) vcan0 040#AB0001070080020F
(1700000000.400000) vcan0 181#1400
(1700000000.500000) vcan0 040#R
"""


def validator() -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resources(
        (uri, Resource.from_contents(schema)) for uri, schema in all_schemas().items())
    return Draft202012Validator(load("record"), registry=registry)


def records(text: str, source: str) -> list[Record]:
    """Every line of ``text`` as a JSON object valid against the schemas (fails naming the line)."""
    v = validator()
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{source}: not a JSON line: {line!r}") from None
        errors = sorted(v.iter_errors(rec), key=lambda e: list(e.absolute_path))
        assert not errors, f"{source}: {line}\n" + "\n".join(
            f"  at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors[:5])
        out.append(rec)
    return out


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code in (0, 1), f"busshare {' '.join(argv)}: exit {code}\n{err}"
    return out


# ---------------------------------------------------------------------------------------------- the schemas


@pytest.mark.parametrize("name", NAMES)
def test_every_schema_is_a_valid_json_schema(name: str) -> None:
    Draft202012Validator.check_schema(load(name))


def test_every_record_kind_has_a_schema_and_the_dispatcher_knows_it() -> None:
    kinds = {k.value for k in RecordKind}
    assert kinds <= set(NAMES)
    assert set(load("record")["properties"]["record"]["enum"]) == kinds


def test_the_schemas_ship_with_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"report/schemas/*.json"' in pyproject


def test_a_record_that_breaks_the_language_is_refused() -> None:
    v = validator()
    good = {"record": "frame", "t": 1.0, "type": "STATUS", "from": "1", "to": "master", "id": "0x181",
            "counter": 3, "e2e": "ok", "address": 1, "serial_tag": "0x0461", "pilot": "C", "offered_a": 16.0,
            "measured_a": None, "requested_a": 16.0, "failsafe": False, "fault": False, "ev_stopped": False,
            "twin": False}
    assert not list(v.iter_errors(good))
    for change in ({"pilot": "c"}, {"serial_tag": 1121}, {"id": 385}, {"extra": 1}, {"record": "totals"}):
        assert list(v.iter_errors({**good, **change})), change


# ---------------------------------------------------------------------------------------------- real outputs


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A candump log written by the simulator: the story's first 60 s, failsafe included."""
    d = tmp_path_factory.mktemp("capture")
    path = d / "story.log"
    assert main(["sim", "--speed", "max", "--quiet", "--duration", "60", "--log", str(path)]) == 0
    return path


def test_sim(capsys: pytest.CaptureFixture[str]) -> None:
    recs = records(cli(capsys, "sim", "--speed", "max", "--json", "--duration", "30"), "sim --json")
    assert [r["record"] for r in recs] == ["state", "state", "state", "summary"]  # at 0, 10 and 20 s
    recs = records(cli(capsys, "sim", "faults", "--speed", "max", "--json", "--duration", "120",
                       "--time", "relative"), "sim faults --json --time relative")
    assert recs[-1]["command"] == "sim"
    recs = records(cli(capsys, "sim", "mains", "--speed", "max", "--json", "--duration", "200"), "sim mains --json")
    assert {"budget", "site"} <= set(recs[-1])  # a moving budget's summary objects, validated too


def test_decode(capsys: pytest.CaptureFixture[str], capture: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.log"
    damaged.write_text(DAMAGED)
    asc = tmp_path / "story.asc"
    with can.LogReader(str(capture)) as reader, can.Logger(str(asc)) as writer:
        for msg in reader:
            writer.on_message_received(msg)
    kinds: set[str] = set()
    for argv in (["decode", "--json", str(capture)],  # the fast candump path
                 ["decode", "--json", str(asc)],  # python-can's LogReader
                 ["decode", "--json", "--time", "relative", str(capture)],
                 ["decode", "--json", str(damaged)],
                 ["decode", "--summary", "--json", str(capture)],
                 ["decode", "--summary", "--json", "--time", "relative", str(damaged)]):
        recs = records(cli(capsys, *argv), " ".join(argv))
        assert recs[-1]["record"] == "summary" and recs[-1]["command"] == "decode"
        kinds |= {r["record"] for r in recs}
    assert kinds == {"frame", "bad-frame", "unreadable", "summary"}


def test_decode_modbus(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frames, _ = line_bytes()
    cap = tmp_path / "line.txt"
    cap.write_bytes(timed_text(frames) + b"10.5 01 02 03\n")
    for argv in (["decode", "--modbus", "--json", str(cap)], ["decode", "--modbus", "--summary", "--json", str(cap)]):
        recs = records(cli(capsys, *argv), " ".join(argv))
        assert recs[-1]["record"] == "summary"


def test_monitor_modbus_on_a_real_pty(capsys: pytest.CaptureFixture[str]) -> None:
    """The passive Modbus monitor hears a session written on the line."""
    frames, _ = line_bytes()
    line, device = pty.openpty()
    tty.setraw(device)
    tty.setraw(line)
    try:
        os.write(line, b"".join(frames))
        recs = records(cli(capsys, "monitor", "--modbus", os.ttyname(device), "--baud", str(BAUD),
                           "--duration", "0.5", "--json"), "monitor --modbus --json")
    finally:
        os.close(line)
        os.close(device)
    assert recs[-1]["record"] == "summary" and "modbus" in recs[-1]


def test_busload_and_check_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    records(cli(capsys, "busload", "--json", "12"), "busload --json")
    records(cli(capsys, "busload", "--json", "--extended", "-b", "500000", "62"), "busload --json")
    site = tmp_path / "site.toml"
    site.write_text(SITE.replace("max_a = 16", "max_a = 16\nserial = 0x6bb08461", 1))
    ok = records(cli(capsys, "check-config", "--json", str(site)), "check-config --json")
    assert ok[0]["ok"] and ok[0]["servants"][0]["serial"] == "0x6bb08461"
    assert ok[0]["budget"] is None and ok[0]["site_id"] == "site"
    mains = records(cli(capsys, "check-config", "--json", str(ROOT / "examples" / "site-mains.toml")),
                    "check-config --json (a moving budget)")
    assert mains[0]["budget"]["meter"]["kind"] == "sdm630" and mains[0]["budget"]["mqtt"]["broker"]
    serial = tmp_path / "serial.toml"
    serial.write_text((ROOT / "examples" / "site-mains.toml").read_text().replace(
        'tcp = "127.0.0.1:5020"', 'serial = "/dev/ttyUSB0"\nbaud = 2400\nparity = "even"').replace(
        'broker = "127.0.0.1:1883"', 'broker = "mqtt.example.org"\ntls = true\nusername = "evse"\npassword = "s3cret-pw"'))
    on_a_line = records(cli(capsys, "check-config", "--json", str(serial)), "check-config --json (a serial meter)")
    assert on_a_line[0]["budget"]["meter"]["serial"] == {"port": "/dev/ttyUSB0", "baud": 2400, "parity": "E",
                                                         "stopbits": 1}
    assert on_a_line[0]["budget"]["mqtt"]["broker"] == "mqtt.example.org:8883"
    assert "s3cret-pw" not in json.dumps(on_a_line)  # a password is never printed
    site.write_text(SITE.replace("max_a = 16", "max_a = 99"))
    bad = records(cli(capsys, "check-config", "--json", str(site)), "check-config --json (a bad file)")
    assert not bad[0]["ok"]
    assert {r["record"] for r in ok + mains + on_a_line + bad} == {"config"}
    assert {r["record"] for r in records(cli(capsys, "busload", "--json"), "busload")} == {"busload"}


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Record]]]:
    """A master, a simulated-car servant, a bench servant and a monitor as processes on one bus."""
    inst = Installation(tmp_path_factory.mktemp("procs"), SITE, (1, 2))
    try:
        monitor = NodeProc(["monitor", "--json", *inst.bus], "monitor")
        inst.procs.append(monitor)
        master = inst.start_master()
        inst.start_servant(1)
        bench = NodeProc(["servant", "--address", "2", "--max", "16", "--ev", "bench", "--meter", "9",
                          "--json", "--status-interval", "1", *inst.bus], "bench servant 2")
        inst.procs.append(bench)
        inst.current(1).wait_for(granted, timeout=60)
        bench.wait_for(granted, timeout=60)
        port = inst.bus[inst.bus.index("--bus-kwargs") + 1].split("=")[1]
        with can.Bus(interface="udp_multicast", port=int(port)) as bus:  # type: ignore[call-arg]
            for can_id, data in ((0x181, b"\x00\x11"), (0x040, bytes(8)), (0x1FF, bytes(8))):
                bus.send(can.Message(arbitration_id=can_id, data=data, is_extended_id=False))
        monitor.wait_for(lambda r: r.get("record") == "bad-frame", timeout=30)
        master.wait_for(lambda r: r.get("record") == "status", timeout=30)
        time.sleep(0.5)  # a moment for every process to hear the injected frames (not an assertion)
        out: dict[str, list[Record]] = {}
        for p in (master, inst.current(1), bench, monitor):
            assert p.terminate() == 0, f"{p.name}: {p.stderr}"
            assert not p.other, f"{p.name}: non-JSON lines on stdout: {p.other[:3]}"
            out[p.name] = p.snapshot()
        yield out
    finally:
        inst.close()


@pytest.mark.slow
def test_master_servant_and_monitor_processes(processes: dict[str, list[Record]]) -> None:
    v = validator()
    kinds: set[str] = set()
    for name, recs in processes.items():
        for rec in recs:
            errors = list(v.iter_errors(rec))
            assert not errors, f"{name}: {json.dumps(rec)}\n{errors[0].message}"
            kinds.add(rec["record"])
    assert kinds == {"event", "status", "frame", "bad-frame", "anomaly", "summary"}
    monitor = processes["monitor"]
    assert monitor[-1]["record"] == "summary" and monitor[-1]["command"] == "monitor"


def test_every_record_kind_comes_from_a_real_command() -> None:
    """The tests above between them show every kind (listed here so a new kind needs a real source)."""
    shown = {"frame", "bad-frame", "unreadable", "anomaly", "event", "status", "state", "summary", "busload",
             "config"}
    assert shown == {k.value for k in RecordKind}


@pytest.mark.parametrize("code", list(NackCode), ids=lambda c: c.name)
def test_every_nack_code_makes_a_valid_frame_record(code: NackCode) -> None:
    """The schema's NACK ``code`` enum names every code a NACK can carry (OLD_TXN was missing)."""
    msg = Nack(address=5, code=code, reporter=5, txn=9, detail=7)
    rec = frame_record(Describer(), 1.0, msg, 3, offset_of(msg), E2EStatus.OK)
    errors = [e.message for e in validator().iter_errors(rec)]
    assert not errors, (rec, errors)
