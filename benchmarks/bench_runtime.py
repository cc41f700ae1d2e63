"""Runtime figures: request->grant latency on the virtual bus, and an idle servant's footprint.

    python benchmarks/bench_runtime.py [--cycles 30] [--idle-seconds 20]

Latency: a master runtime and a servant runtime, each in its own thread on its
own python-can ``virtual`` bus handle (the real runtime loop, real clock).  The
servant's bench car is plugged in (pilot A -> C), so it sends a REQUEST; we time from that frame
leaving the servant to the grant (SET_LIMIT raising its limit) arriving back.
The reference is one round trip on the same bus, measured in the same run by
two threads bouncing a frame.  Target: grant <= round trip + 10 ms.

Footprint: ``python -m busshare servant`` as a real process on udp_multicast,
with and without a master heartbeating, sampled from /proc: CPU % of one core
and RSS.  Target: < 1 % and < 60 MB.  Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import can

from busshare.core.config import Config
from busshare.core.config import ServantConfig
from busshare.core.config import Timing
from busshare.devtools.bench import BenchHardware
from busshare.frames import MsgType
from busshare.io.runtime import Runtime
from busshare.master import Master
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from busshare.servant import Servant
from busshare.transport.can import CanTransport

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support: the site files the tests write too
from tests.support.site_files import site_toml  # noqa: E402

CHANNEL = "bench-runtime"


class Stamping(CanTransport):
    """A transport that notes when REQUESTs leave and SET_LIMITs arrive (offsets: type << 6 | address)."""

    def __init__(self, bus: can.BusABC) -> None:
        super().__init__(bus)
        self.request_sent: list[float] = []
        self.setlimit_seen: list[tuple[float, bytes]] = []

    def send(self, offset: int, data: bytes) -> bool:
        ok = super().send(offset, data)
        if offset >> 6 == MsgType.REQUEST:
            self.request_sent.append(time.perf_counter())
        return ok

    def recv(self, timeout: float):  # type: ignore[no-untyped-def]
        frame = super().recv(timeout)
        if frame is not None and frame.offset >> 6 == MsgType.SET_LIMIT:
            self.setlimit_seen.append((time.perf_counter(), frame.data))
        return frame


def round_trip(n: int = 300) -> list[float]:
    """Frame A -> B -> A on the virtual bus, with a thread blocked in recv on each side."""
    a = can.Bus(interface="virtual", channel=CHANNEL + "-rt")
    b = can.Bus(interface="virtual", channel=CHANNEL + "-rt")
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            m = b.recv(0.1)
            if m is not None:
                b.send(m)

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    out = []
    msg = can.Message(arbitration_id=0x40, data=bytes(8), is_extended_id=False)
    for _ in range(n):
        t0 = time.perf_counter()
        a.send(msg)
        while a.recv(1.0) is None:
            pass
        out.append(time.perf_counter() - t0)
    stop.set()
    t.join()
    a.shutdown()
    b.shutdown()
    return out


def grant_latency(cycles: int) -> list[float]:
    timing = Timing()
    sc = ServantConfig(address=1, max_da=160, serial=1)
    config = Config(limit_da=320, servants=(sc,), timing=timing, breaker_a=40)
    now = time.monotonic()
    master_t = CanTransport(can.Bus(interface="virtual", channel=CHANNEL))
    servant_t = Stamping(can.Bus(interface="virtual", channel=CHANNEL))
    hw = BenchHardware(PilotState.A, None, log=lambda s: None)  # no car yet
    servant = Servant(sc, timing, now)
    rm = Runtime(Master(config, now, epoch=1), master_t, link=Link())
    rs = Runtime(servant, servant_t, hardware=hw)
    threads = [threading.Thread(target=r.run, kwargs={"handle_signals": False}, daemon=True) for r in (rm, rs)]
    for th in threads:
        th.start()
    out: list[float] = []
    deadline = time.monotonic() + 60 + cycles * 3
    for _ in range(cycles):
        hw.pilot = PilotState.C
        n_req = len(servant_t.request_sent)
        while time.monotonic() < deadline and not (servant.offer_da > 0 and len(servant_t.request_sent) > n_req):
            time.sleep(0.002)
        if len(servant_t.request_sent) > n_req:
            t_req = servant_t.request_sent[n_req]
            grants = [t for t, _ in servant_t.setlimit_seen if t >= t_req]
            if grants:
                out.append(grants[0] - t_req)
        hw.pilot = PilotState.A  # unplugged: the servant releases
        while time.monotonic() < deadline and servant.offer_da > 0:
            time.sleep(0.002)
        time.sleep(0.3)
    for r in (rm, rs):
        r.stop()
    for th in threads:
        th.join(5)
    return out


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def footprint(seconds: float, with_master: bool) -> tuple[float, float]:
    port = str(30000 + os.getpid() % 5000)
    bus = ["--bus-kwargs", f"port={port}"]
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        if with_master:
            site = Path(tmp) / "site.toml"
            site.write_text(SITE)
            procs.append(subprocess.Popen([sys.executable, "-m", "busshare", "master", "--config", str(site), *bus],
                                          stdout=subprocess.DEVNULL))
        servant = subprocess.Popen([sys.executable, "-m", "busshare", "servant", "--address", "1", "--pilot", "A",
                                    *bus], stdout=subprocess.DEVNULL)
        procs.append(servant)
        time.sleep(3.0)  # imports and joining are not "idle"
        hz = os.sysconf("SC_CLK_TCK")
        c0, t0 = _cpu_ticks(servant.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = _cpu_ticks(servant.pid), time.monotonic()
        rss = _rss_mb(servant.pid)
        for p in procs:
            p.terminate()
            p.wait(10)
    return 100.0 * (c1 - c0) / hz / (t1 - t0), rss


SITE = site_toml((1,), limit_a=32, breaker_a=40, max_a=16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=30)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    args = ap.parse_args()

    rt = round_trip()
    lat = grant_latency(args.cycles)
    rt_med = statistics.median(rt) * 1e3
    print(f"virtual bus round trip:  median {rt_med:.3f} ms, p95 {sorted(rt)[int(len(rt) * .95)] * 1e3:.3f} ms")
    if lat:
        med = statistics.median(lat) * 1e3
        p95 = sorted(lat)[int(len(lat) * .95)] * 1e3
        print(f"request -> grant:        median {med:.3f} ms, p95 {p95:.3f} ms, max {max(lat) * 1e3:.3f} ms "
              f"over {len(lat)} cycles")
        print(f"grant minus round trip:  median {med - rt_med:.3f} ms (target < 10 ms): "
              f"{'OK' if med - rt_med < 10 else 'OVER'}")
    else:
        print("request -> grant: no grant observed")
    for with_master in (False, True):
        cpu, rss = footprint(args.idle_seconds, with_master)
        who = "with a master heartbeating" if with_master else "alone on the bus"
        print(f"idle servant {who}: CPU {cpu:.2f} % of a core, RSS {rss:.1f} MB (targets < 1 %, < 60 MB)")


if __name__ == "__main__":
    main()
