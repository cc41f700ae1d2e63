"""Real SocketCAN: the multi-process installation on vcan0, a live candump capture, injected bad frames.

Run through the VM on machines without CAN in their kernel:

    /work/shared/tools/vcan-vm python -m pytest -m vcan tests/transport/test_vcan.py

The story on vcan0: a master and two servants (separate processes, ``-i
socketcan -c vcan0``) share 32 A while ``candump -L vcan0`` records; malformed
frames sent with ``cansend`` are rejected and counted by every node while
sharing goes on; the master is killed with -9 and every servant fails safe
within the bound (by its own clock); a new master regrants; finally
``busshare decode --summary`` explains the capture.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from busshare.core.config import Timing
from tests.support.nodeproc import Installation
from tests.support.nodeproc import assert_failsafe_in_bound
from tests.support.nodeproc import assert_sum_within_limit
from tests.support.nodeproc import failsafe
from tests.support.nodeproc import granted
from tests.support.site_files import site_toml

pytestmark = [
    pytest.mark.vcan,
    pytest.mark.skipif(not Path("/sys/class/net/vcan0").exists(),
                       reason="no vcan0 here: run through ../shared/tools/vcan-vm (this kernel has no SocketCAN)"),
    pytest.mark.skipif(shutil.which("candump") is None or shutil.which("cansend") is None,
                       reason="can-utils (candump, cansend) not installed"),
]

LIMIT_A = 32.0
FAILSAFE_A = 6.0
BOUND_S = 2.0
SITE = site_toml((1, 2), limit_a=32, breaker_a=40, max_a=16)
# (frame for cansend, the reason every node must give)
BAD_FRAMES = [
    ("181#0011", "length"),  # a STATUS from servant 1 only two bytes long
    ("040#0000000000000000", "crc"),  # a heartbeat whose CRC is wrong
    ("1FF#0000000000000000", "address"),  # a JOIN from the broadcast address
]


def latest_status(proc) -> dict:  # type: ignore[no-untyped-def]
    return [r for r in proc.snapshot() if r.get("record") == "status"][-1]


def test_installation_on_vcan0_with_capture_and_bad_frames(tmp_path: Path) -> None:
    capture = tmp_path / "session.log"
    with capture.open("w") as out:
        candump = subprocess.Popen(["candump", "-L", "vcan0"], stdout=out)
    inst = Installation(tmp_path, SITE, (1, 2), bus=["-i", "socketcan", "-c", "vcan0"], failsafe_a=FAILSAFE_A)
    try:
        master = inst.start_master()
        for a in (1, 2):
            inst.start_servant(a)
        for a in (1, 2):
            inst.current(a).wait_for(granted, timeout=120)

        # malformed frames: rejected and counted by every node, and sharing goes on
        for frame, _ in BAD_FRAMES:
            subprocess.run(["cansend", "vcan0", frame], check=True)
        nodes = [master, inst.current(1), inst.current(2)]
        reasons = {why for _, why in BAD_FRAMES}
        for p in nodes:
            p.wait_for(lambda r: r.get("record") == "status" and set(r.get("rejected_kinds", {})) >= reasons,
                       timeout=60, after=0)
        for p in nodes:
            kinds = latest_status(p)["rejected_kinds"]
            assert all(kinds[why] >= 1 for why in reasons), (p.name, kinds)
        mark = {a: len(inst.current(a).snapshot()) for a in (1, 2)}
        for a in (1, 2):  # still sharing: a status after the bad frames, heard from the master, not in failsafe
            rec = inst.current(a).wait_for(lambda r: r.get("record") == "status", timeout=30, after=mark[a])
            assert not rec["failsafe"] and rec["offer_a"] > 0 and rec["heartbeat_age"] < 1.0

        # kill -9 the master: the failsafe bound holds on real SocketCAN
        mark = {a: len(inst.current(a).snapshot()) for a in (1, 2)}
        master.kill9()
        assert_failsafe_in_bound(inst, mark, FAILSAFE_A, BOUND_S)

        # a new master relearns and regrants, never above the limit
        mark = {a: len(inst.current(a).snapshot()) for a in (1, 2)}
        inst.start_master()
        for a in (1, 2):
            inst.current(a).wait_for(granted, timeout=120, after=mark[a])
        assert_sum_within_limit(inst, LIMIT_A)
        time.sleep(0.5)  # let the capture hold a few more regular frames (not an assertion)
    finally:
        inst.close()
        candump.terminate()
        candump.wait(10)

    # the live capture, explained by the decoder with no configuration (in this process: a Python start
    # costs seconds inside the VM)
    code, summary = busshare_cli(tmp_path, "decode", "--summary", str(capture))
    assert code == 0
    print(summary)
    assert "servants seen: 2" in summary
    code, out = busshare_cli(tmp_path, "decode", "--summary", "--json", str(capture))
    assert code == 0
    last = json.loads(out.strip().splitlines()[-1])
    assert len(last["servants"]) == 2
    assert last["e2e_errors"].get("crc", 0) >= 1
    assert last["malformed"].get("length", 0) >= 1 and last["malformed"].get("address", 0) >= 1
    assert last["failsafe_entries"] and last["heartbeat_gaps"]  # the kill -9 is in the capture
    assert not last["over_limit"] and not last["second_master"] and not last["duplicate_addresses"]


def busshare_cli(tmp: Path, *argv: str) -> tuple[int, str]:
    """Run a `busshare` command in this process; (exit status, what it wrote on stdout)."""
    from busshare.cli import main

    path = tmp / "stdout.txt"
    with path.open("wb") as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
        old, sys.stdout = sys.stdout, out
        try:
            code = main(list(argv))
        finally:
            out.flush()
            sys.stdout = old
            out.detach()
    return code, path.read_text(encoding="utf-8")


UNHEARD_BOUND_S = Timing().unheard_bound  # heard_timeout + one tick (3.55 s): the bound PROTOCOL.md 8.1 states


def cangw(*args: str) -> None:
    subprocess.run(["cangw", *args], check=True, capture_output=True, timeout=30)


@pytest.mark.skipif(shutil.which("cangw") is None, reason="can-utils' cangw not installed")
def test_a_servant_whose_frames_stop_reaching_the_master_fails_safe_by_itself(tmp_path: Path) -> None:
    """A real one-way partition (PROTOCOL.md 5.2, rules 3-4): the kernel's CAN gateway joins vcan0 (master,
    servant 2) and vcan1 (servant 1); dropping the vcan1 -> vcan0 route leaves servant 1 hearing every
    heartbeat while none of its frames reach the master, as with a broken transmitter or termination.
    It must fall to its failsafe by its own clock, within the unheard bound, and come back when healed."""
    try:
        cangw("-F")
        cangw("-A", "-s", "vcan0", "-d", "vcan1", "-e")
        cangw("-A", "-s", "vcan1", "-d", "vcan0", "-e")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no CAN gateway in this kernel (can-gw): {exc.stderr.decode().strip()}")
    inst = Installation(tmp_path, SITE, (1, 2), bus=["-i", "socketcan", "-c", "vcan0"], failsafe_a=FAILSAFE_A)
    try:
        master = inst.start_master()
        inst.start_servant(1, bus=["-i", "socketcan", "-c", "vcan1"])
        inst.start_servant(2)
        for a in (1, 2):
            inst.current(a).wait_for(granted, timeout=120)

        mark = len(inst.current(1).snapshot())
        master_mark = len(master.snapshot())
        cangw("-D", "-s", "vcan1", "-d", "vcan0", "-e")  # servant 1 goes mute
        rec = inst.current(1).wait_for(failsafe, timeout=60, after=mark)
        assert rec["offer_a"] <= FAILSAFE_A
        took = rec["t"] - rec["last_heard"]
        print(f"servant 1: failsafe {took:.3f} s after the master last said it heard it")
        assert took < UNHEARD_BOUND_S
        assert rec["t"] - rec["last_heartbeat"] < 1.0, "it still heard the master: the heartbeat timeout did not fire"
        # the node's event is printed after the offer it caused (the driver applies the offer, then drains
        # events): wait for it rather than read a snapshot taken at the offer
        why = inst.current(1).wait_for(lambda r: r.get("event") == "failsafe", timeout=30, after=mark)
        assert "has not heard us" in why["detail"], why
        master.wait_for(lambda r: r.get("event") == "servant-silent" and r.get("address") == 1, timeout=30,
                        after=master_mark)
        assert_sum_within_limit(inst, LIMIT_A)

        mark = len(inst.current(1).snapshot())
        cangw("-A", "-s", "vcan1", "-d", "vcan0", "-e")  # healed: heard, re-confirmed, granted again
        inst.current(1).wait_for(granted, timeout=120, after=mark)
        assert_sum_within_limit(inst, LIMIT_A)
    finally:
        inst.close()
        subprocess.run(["cangw", "-F"], capture_output=True, timeout=30)


def send_error_frame(channel: str, error_class: int, data: bytes) -> None:
    """Put an error frame on a vcan, as a controller's driver would report its state (linux/can/error.h)."""
    import socket
    import struct

    with socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW) as s:
        s.bind((channel,))
        s.send(struct.pack("=IB3x8s", socket.CAN_ERR_FLAG | error_class, 8, data))


def test_bus_off_counts_as_no_master_and_error_passive_does_not(tmp_path: Path) -> None:
    """What the CAN transport does with a controller in trouble (PROTOCOL.md 8.2, rule 4; CLI-RUNTIME.md):
    bus-off fires ``link_down()`` and the servant fails safe at once; error-passive (its frames are not
    acknowledged) is only reported, because such a controller still transmits: the heard bit decides."""
    from busshare.transport.can import CAN_ERR_BUSOFF
    from busshare.transport.can import CAN_ERR_CRTL

    inst = Installation(tmp_path, SITE, (1,), bus=["-i", "socketcan", "-c", "vcan0"], failsafe_a=FAILSAFE_A)
    try:
        inst.start_master()
        servant = inst.start_servant(1)
        servant.wait_for(granted, timeout=120)

        mark = len(servant.snapshot())
        send_error_frame("vcan0", CAN_ERR_CRTL, bytes([0, 0x20, 0, 0, 0, 0, 0, 0]))
        servant.wait_for(lambda r: r.get("event") == "error-frame" and "tx-error-passive" in r.get("detail", ""),
                         timeout=30, after=mark)
        later = servant.wait_for(lambda r: r.get("record") == "status", timeout=30, after=mark)
        assert not later["failsafe"] and not later["bus_off"]

        mark = len(servant.snapshot())
        send_error_frame("vcan0", CAN_ERR_BUSOFF, bytes(8))
        servant.wait_for(lambda r: r.get("event") == "link-down", timeout=30, after=mark)
        rec = servant.wait_for(failsafe, timeout=30, after=mark)
        assert rec["offer_a"] <= FAILSAFE_A
        # the next good frame ends bus-off; the master re-confirms the servant
        servant.wait_for(lambda r: r.get("event") == "bus-recovered", timeout=30, after=mark)
        servant.wait_for(granted, timeout=60, after=mark)
    finally:
        inst.close()
