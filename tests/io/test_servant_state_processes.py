"""A servant process restarted keeps its orders (PROTOCOL.md 8.4): real processes on udp_multicast (loopback).

A master grants servant 2 (a process with ``--ev sim``); servant 2 and then the master are killed (-9). A new
servant 2 process starts on the same state file (``$XDG_STATE_HOME/busshare/servant-2.json``, the test's own
directory) and says it took its predecessor's orders back. A gateway's late copy of an old heartbeat of the
dead master then reaches it: it is not followed (a process that forgot would follow it, and start to trust
the dead master's late SET_LIMIT copies). A live heartbeat of that master, newer, still is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import can
import pytest

from busshare.frames import Heartbeat
from busshare.protocol.link import Link
from tests.support.nodeproc import Installation
from tests.support.nodeproc import event
from tests.support.nodeproc import granted
from tests.support.site_files import site_toml

pytestmark = pytest.mark.slow


def send(inst: Installation, hb: Heartbeat) -> None:
    port = inst.bus[inst.bus.index("--bus-kwargs") + 1].split("=")[1]
    offset, data = Link().encode(hb)
    with can.Bus(interface="udp_multicast", port=int(port)) as bus:  # type: ignore[call-arg]
        bus.send(can.Message(arbitration_id=offset, data=data, is_extended_id=False))


def test_a_restarted_servant_process_does_not_follow_a_late_copy_of_a_heartbeat_the_last_one_took(
        tmp_path: Path) -> None:
    inst = Installation(tmp_path, site_toml((1, 2), limit_a=32, max_a=16), (1, 2))
    try:
        master = inst.start_master()
        first = inst.start_servant(2)
        first.wait_for(granted, timeout=60)
        state = Path(os.environ["XDG_STATE_HOME"]) / "busshare" / "servant-2.json"
        first.kill9()
        master.kill9()
        kept = json.loads(state.read_text())
        master_id, epoch, seq, _ = kept["heartbeats"][-1]
        assert kept["set_limits"] and kept["set_limits"][-1][4] == epoch  # the grant's txn order, under that epoch

        again = inst.start_servant(2)
        taken = again.wait_for(event("state"), timeout=30)
        assert str(state) in taken["detail"] and "taken back" in taken["detail"]
        send(inst, Heartbeat(master_id, epoch, 320, 0, 0x06, (seq - 3) % 1024))  # a late copy of an old one
        stale = again.wait_for(event("stale-heartbeat"), timeout=30)
        assert "a late copy, not followed" in stale["detail"]
        send(inst, Heartbeat(master_id, epoch, 320, 0, 0x06, (seq + 1) % 1024))  # that master, alive
        followed = again.wait_for(event("master"), timeout=30)
        assert f"epoch {epoch}" in followed["detail"]
        assert not [r for r in again.snapshot() if r.get("event") == "master" and r is not followed]
        assert again.terminate() == 0
    finally:
        inst.close()
