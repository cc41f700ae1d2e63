"""Decoding a 1,000,000-frame candump -L log: `busshare decode --json > /dev/null` vs python-can + cantools.

The log is the simulator's own story (master, four servants, cars plugging in
and out, the master falling silent), repeated back to back and re-encoded
with continuous alive counters until it holds N frames.  Both sides run as
separate processes, end to end (interpreter start, imports, DBC load):

* busshare: the console script, ``busshare decode --json LOG > /dev/null``;
* peer: ``can.LogReader`` + ``cantools`` ``decode_message`` with dbc/busshare.dbc,
  once decoding only and once also writing a JSON line per frame (like busshare).

The ratio is taken against the faster peer variant.  Run:

    python benchmarks/bench_decode.py [N]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from busshare.frames import decode  # noqa: E402
from busshare.protocol.link import Link  # noqa: E402
from busshare.sim.runner import Simulation  # noqa: E402
from busshare.sim.scenario import load_scenario  # noqa: E402

PEER = r"""
import json, sys, can, cantools
db = cantools.database.load_file(sys.argv[1])
out = open(sys.argv[3], "w")
write_json = sys.argv[4] == "json"
n = 0
for msg in can.LogReader(sys.argv[2]):
    d = db.decode_message(msg.arbitration_id, msg.data)
    if write_json:
        out.write(json.dumps({"t": msg.timestamp, "id": msg.arbitration_id, **d}, default=str) + "\n")
    n += 1
print(n)
"""


def make_log(path: Path, n: int) -> None:
    """The story's traffic, repeated with continuous counters, as candump -L writes it."""
    result = Simulation(load_scenario("story")).run()
    story = [(t, off, decode(off, data)[0]) for t, off, data in result.capture]
    span = result.summary.sim_seconds
    link = Link()
    t0 = 1_700_000_000.0
    written = 0
    with open(path, "w") as f:
        rep = 0
        while written < n:
            lines = []
            for t, off, msg in story:
                if written >= n:
                    break
                off2, data = link.encode(msg)
                assert off2 == off
                lines.append(f"({t0 + rep * span + t:.6f}) vcan0 {off:03X}#{data.hex().upper()}\n")
                written += 1
            f.writelines(lines)
            rep += 1


def timed(cmd: list[str], stdout: int | None = subprocess.DEVNULL) -> tuple[float, str]:
    start = time.perf_counter()
    r = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr}")
    return elapsed, r.stdout or ""


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    exe = shutil.which("busshare")
    busshare = [exe] if exe else [sys.executable, "-m", "busshare"]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "capture.log"
        t = time.perf_counter()
        make_log(log, n)
        print(f"log: {n} frames, {log.stat().st_size / 1e6:.1f} MB (made in {time.perf_counter() - t:.1f} s)")
        peer_script = Path(tmp) / "peer.py"
        peer_script.write_text(PEER)
        dbc = str(ROOT / "dbc" / "busshare.dbc")
        # not timed: the output really holds every frame
        last = subprocess.run(" ".join([*busshare, "decode", "--json", str(log), "|", "tail", "-n", "1"]),
                              shell=True, capture_output=True, text=True, cwd=ROOT).stdout
        totals = json.loads(last)["totals"]
        assert totals["records"] == totals["good"] == n, totals
        runs = {}
        best = min(timed([*busshare, "decode", "--json", str(log)])[0] for _ in range(2))
        runs["busshare decode --json > /dev/null"] = best
        runs["python-can LogReader + cantools (decode only)"] = timed(
            [sys.executable, str(peer_script), dbc, str(log), os.devnull, "plain"], stdout=subprocess.PIPE)[0]
        runs["python-can LogReader + cantools + JSON lines"] = timed(
            [sys.executable, str(peer_script), dbc, str(log), os.devnull, "json"], stdout=subprocess.PIPE)[0]
    for name, secs in runs.items():
        print(f"{name:<48} {secs:7.2f} s  {n / secs / 1000:8.0f} k frames/s")
    ours = runs["busshare decode --json > /dev/null"]
    peer = min(v for k, v in runs.items() if k.startswith("python-can"))
    print(f"ratio (busshare vs the faster peer): {peer / ours:.1f}x  (goal >= 5x)")


if __name__ == "__main__":
    main()
