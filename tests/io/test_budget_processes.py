"""A moving budget with real processes: `busshare master --config` with [budget], servants, the meter
emulator over Modbus TCP and a Mosquitto broker, all on udp_multicast (loopback).

The heartbeats' limit is watched on the bus by a `busshare monitor --json` process; the retained
``busshare/<site>/limit`` is read with mosquitto_sub; setpoints come from mosquitto_pub.  The story:

1. the master starts at the fallback (no mains reading yet), then rises to the static limit;
2. a setpoint below it lowers the heartbeat's limit; the retained topic says "setpoint";
3. the setpoint is left to expire: the limit falls back;
4. a fresh setpoint (above the static limit) lets it recover; a lower one withdrawn with
   ``{"limit_a": null}`` gives the static limit back;
5. the meter emulator is killed: the limit falls back;
6. SIGINT: the master exits 0 without a traceback, and ``busshare/<site>/status`` says ``offline``:
   the retained limit is no longer enforced.

Waits poll with generous deadlines; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.report.test_json_schema import validator
from tests.support.meterproc import LIMIT_TOPIC
from tests.support.meterproc import SET_TOPIC
from tests.support.meterproc import STATUS_TOPIC
from tests.support.meterproc import EmulatorProc
from tests.support.meterproc import Mosquitto
from tests.support.meterproc import free_tcp_port
from tests.support.meterproc import needs_mosquitto
from tests.support.meterproc import wait_for
from tests.support.nodeproc import Installation
from tests.support.nodeproc import NodeProc
from tests.support.nodeproc import Record
from tests.support.nodeproc import assert_sum_within_limit
from tests.support.nodeproc import event
from tests.support.nodeproc import granted
from tests.support.site_files import METERED_FALLBACK_A
from tests.support.site_files import METERED_STATIC_A
from tests.support.site_files import metered_site

pytestmark = [
    pytest.mark.slow,
    needs_mosquitto(),
]

STATIC_A = METERED_STATIC_A
FALLBACK_A = METERED_FALLBACK_A
ADDRESSES = (1, 2, 3)
WAIT = 90.0  # s: a learning pause, a raise hold and a meter timeout, on a loaded machine


def heartbeat(limit_a: float) -> Callable[[Record], bool]:
    return lambda r: r.get("type") == "HEARTBEAT" and r.get("limit_a") == limit_a


def retained(b: Mosquitto) -> dict[str, object]:
    topic, _, payload = b.sub_one(LIMIT_TOPIC).partition(" ")
    assert topic == LIMIT_TOPIC
    doc: dict[str, object] = json.loads(payload)
    return doc


def retained_becomes(b: Mosquitto, expected: dict[str, object]) -> None:
    """The retained limit reaches ``expected`` (each read shows the broker's current retained message)."""
    wait_for(lambda: [retained(b)], lambda doc: doc == expected, f"retained {expected}", timeout=WAIT)


def marks(*procs: NodeProc) -> tuple[int, ...]:
    """Where each process's records stand now: what comes after an action is waited for from here."""
    return tuple(len(p.snapshot()) for p in procs)


def no_traceback(p: NodeProc) -> None:
    assert "Traceback" not in p.stderr, p.stderr


def test_setpoints_expiry_and_a_dead_meter_move_the_heartbeats_limit(tmp_path: Path, broker: Mosquitto,
                                                                   meter: EmulatorProc) -> None:
    inst = Installation(tmp_path, metered_site(meter.port, broker.port), ADDRESSES)
    try:
        monitor = NodeProc(["monitor", "--json", *inst.bus], "monitor")
        inst.procs.append(monitor)
        master = inst.start_master()
        for a in ADDRESSES:
            inst.start_servant(a)

        # 1. the fallback until the first reading, then up to the static limit in one step
        monitor.wait_for(heartbeat(FALLBACK_A), timeout=WAIT)
        monitor.wait_for(heartbeat(STATIC_A), timeout=WAIT)
        master.wait_for(event("broker-connected"), timeout=WAIT)
        for a in ADDRESSES:
            inst.current(a).wait_for(granted, timeout=WAIT)
        retained_becomes(broker, {"limit_a": STATIC_A, "source": "static"})

        # 2. a setpoint below the static limit: the heartbeat carries it
        bus, log = marks(monitor, master)
        broker.pub(SET_TOPIC, '{"limit_a": 26, "ttl_s": 5}')
        monitor.wait_for(heartbeat(26.0), timeout=WAIT, after=bus)
        master.wait_for(event("setpoint"), timeout=WAIT, after=log)
        retained_becomes(broker, {"limit_a": 26.0, "source": "setpoint"})

        # 3. not renewed: it expires and the budget falls back
        bus, log = marks(monitor, master)
        monitor.wait_for(heartbeat(FALLBACK_A), timeout=WAIT, after=bus)
        master.wait_for(event("setpoint-expired"), timeout=WAIT, after=log)
        retained_becomes(broker, {"limit_a": FALLBACK_A, "source": "fallback"})

        # 4. a fresh setpoint above the static limit: every source fresh again, the limit recovers
        bus, log = marks(monitor, master)
        broker.pub(SET_TOPIC, '{"limit_a": 40, "ttl_s": 600}')
        monitor.wait_for(heartbeat(STATIC_A), timeout=WAIT, after=bus)
        retained_becomes(broker, {"limit_a": STATIC_A, "source": "static"})

        # 4b. a long setpoint below it, then withdrawn on purpose: the limit returns to the static one
        bus, log = marks(monitor, master)
        broker.pub(SET_TOPIC, '{"limit_a": 26, "ttl_s": 600}')
        monitor.wait_for(heartbeat(26.0), timeout=WAIT, after=bus)
        bus, log = marks(monitor, master)
        broker.pub(SET_TOPIC, '{"limit_a": null}')
        master.wait_for(event("setpoint-cleared"), timeout=WAIT, after=log)
        monitor.wait_for(heartbeat(STATIC_A), timeout=WAIT, after=bus)
        retained_becomes(broker, {"limit_a": STATIC_A, "source": "static"})

        # 5. the meter process dies: no reading for timeout_s, the budget falls back
        bus, log = marks(monitor, master)
        meter.kill()
        monitor.wait_for(heartbeat(FALLBACK_A), timeout=WAIT, after=bus)
        failed = master.wait_for(event("meter-failed"), timeout=WAIT, after=log)
        assert "127.0.0.1" in failed["detail"]
        retained_becomes(broker, {"limit_a": FALLBACK_A, "source": "fallback"})
        assert_sum_within_limit(inst, STATIC_A)

        # 6. Ctrl-C: a clean exit
        assert broker.sub_one(STATUS_TOPIC) == f"{STATUS_TOPIC} online"
        master.proc.send_signal(signal.SIGINT)
        assert master.proc.wait(30) == 0
        master.wait_for(event("stopped"), timeout=WAIT)
        # the retained limit is not live any more (the master says so before it disconnects; were it to die
        # instead, the broker's last will would, a moment after the connection drops: waited for, not raced)
        wait_for(lambda: [broker.sub_one(STATUS_TOPIC)], lambda line: line == f"{STATUS_TOPIC} offline",
                 "the status offline after the master's exit")
        no_traceback(master)
        v = validator()  # the budget's status and events are in the one JSON language (docs/JSON.md)
        for rec in master.snapshot():
            assert not list(v.iter_errors(rec)), rec
        assert any("budget" in r for r in master.snapshot() if r.get("record") == "status")
        for a in ADDRESSES:
            assert inst.current(a).terminate() == 0
    finally:
        inst.close()


def test_a_meter_and_broker_down_at_start_are_reported_and_fallen_back_on(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    broker.stop()  # its port is known, nobody listens yet
    meter_port = free_tcp_port()
    inst = Installation(tmp_path, metered_site(meter_port, broker.port), ADDRESSES)
    emulator: EmulatorProc | None = None
    try:
        master = inst.start_master()
        failed = master.wait_for(event("meter-failed"), timeout=WAIT)
        assert f"cannot connect to 127.0.0.1:{meter_port}" in failed["detail"]
        lost = master.wait_for(event("broker-lost"), timeout=WAIT)
        assert f"cannot connect to 127.0.0.1:{broker.port}" in lost["detail"]
        status = master.wait_for(lambda r: r.get("record") == "status", timeout=WAIT)
        assert status["limit_a"] == FALLBACK_A
        assert status["budget"]["source"] == "fallback" and status["budget"]["degraded"] is True

        # both come up: the broker gets the current limit, retained; the meter's first reading is taken
        broker.start()
        master.wait_for(event("broker-connected"), timeout=WAIT)
        retained_becomes(broker, {"limit_a": FALLBACK_A, "source": "fallback"})
        emulator = EmulatorProc(["--kind", "sdm630", "--tcp", f"127.0.0.1:{meter_port}"])
        emulator.command("set 5 5 5")
        master.wait_for(event("meter-back"), timeout=WAIT)

        master.proc.send_signal(signal.SIGINT)
        assert master.proc.wait(30) == 0
        no_traceback(master)
    finally:
        if emulator is not None:
            emulator.close()
        inst.close()
        broker.stop()


def test_the_master_exits_cleanly_while_its_broker_dies_under_it(tmp_path: Path, broker: Mosquitto,
                                                                meter: EmulatorProc) -> None:
    inst = Installation(tmp_path, metered_site(meter.port, broker.port), ADDRESSES)
    try:
        master = inst.start_master()
        master.wait_for(event("broker-connected"), timeout=WAIT)
        broker.stop()
        master.wait_for(event("broker-lost"), timeout=WAIT)
        assert master.terminate() == 0
        no_traceback(master)
    finally:
        inst.close()
