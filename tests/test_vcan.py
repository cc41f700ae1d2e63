"""Real SocketCAN: the multi-process installation on vcan0, a live candump capture, injected bad frames.

Run through the VM on machines without CAN in their kernel:

    /work/shared/tools/vcan-vm python -m pytest -m vcan tests/test_vcan.py

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
from nodeproc import Installation, assert_failsafe_in_bound, assert_sum_within_limit, granted

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
SITE = """\
[site]
limit_a = 32
breaker_a = 40

[[servant]]
address = 1
max_a = 16

[[servant]]
address = 2
max_a = 16
"""
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
