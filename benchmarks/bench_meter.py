"""Mains-meter poll round trip on the meter emulator: Modbus TCP and Modbus RTU, busshare against mbpoll.

    python benchmarks/bench_meter.py [--polls 200] [--kind sdm630] [--baud 9600]

The emulator (``python -m busshare.cli.meter_emulator``) runs in its own process; for
RTU so does the RS-485 line emulator (``python -m busshare.cli.rs485``, paced at the
baud rate).  Figures per transport, in the same run:

* busshare: ``MeterClient.poll_once()``, a whole poll (every read block of the map, then the
  decoding and checks into a ``MeterReading``), timed around the call;
* pymodbus alone: the same read with the bare pymodbus client (what the poll costs beyond it);
* mbpoll (libmodbus), the same read, polling continuously: mbpoll sleeps its poll rate
  (``-l``) after each read, so its round trip is the interval between two printed results
  minus that rate (printing included, which favours busshare slightly).

The RTU wire time is the bytes of the request and the reply at 11 bits per character.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from busshare.core.meter_maps import BUILT_IN_MAPS
from busshare.core.meter_maps import MeterKind
from busshare.core.meter_maps import MeterReading
from busshare.core.source_settings import meter_settings_from_mapping
from busshare.io.meter import MeterClient

ROOT = Path(__file__).resolve().parent.parent
MBPOLL_RATE_MS = 20
ENV = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))


def stats_ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000


def timed(call: Callable[[], object], n: int) -> list[float]:
    call()  # connect, warm up
    out = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        out.append(time.perf_counter() - t)
    return out


def mbpoll_round_trips(args: list[str], n: int) -> list[float]:
    mbpoll = shutil.which("mbpoll")
    if mbpoll is None:
        return []
    p = subprocess.Popen(["stdbuf", "-oL", mbpoll, *args, "-l", str(MBPOLL_RATE_MS)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    assert p.stdout is not None
    stamps: list[float] = []
    for line in p.stdout:
        if line.startswith("[7]"):  # the first value of each read
            stamps.append(time.perf_counter())
            if len(stamps) > n + 1:
                break
    p.kill()
    p.wait()
    gaps = [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]  # the first includes the connect
    return [g - MBPOLL_RATE_MS / 1000 for g in gaps]


def start_emulator(kind: str, where: list[str]) -> tuple[subprocess.Popen[str], dict[str, object]]:
    p = subprocess.Popen([sys.executable, "-m", "busshare.cli.meter_emulator", "--kind", kind, *where],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    assert p.stdout is not None
    return p, json.loads(p.stdout.readline())


def report(label: str, figures: dict[str, list[float]]) -> None:
    print(label)
    for name, samples in figures.items():
        if not samples:
            print(f"  {name:<36} (not installed)")
            continue
        median, p95 = stats_ms(samples)
        print(f"  {name:<36} median {median:7.2f} ms   p95 {p95:7.2f} ms   ({len(samples)} polls)")
    ours, peer = figures.get("busshare MeterClient.poll_once"), figures.get("mbpoll (libmodbus), same read")
    if ours and peer:
        print(f"  ratio busshare / mbpoll (median): {stats_ms(ours)[0] / stats_ms(peer)[0]:.2f}")


def one_poll(client: MeterClient) -> Callable[[], object]:
    def poll() -> object:
        ev = client.poll_once()
        if not isinstance(ev, MeterReading):
            raise SystemExit(f"the poll failed: {ev}")
        return ev
    return poll


def bench_tcp(kind: str, polls: int) -> None:
    emu, rec = start_emulator(kind, ["--tcp", "127.0.0.1:0"])
    port = int(str(rec["tcp"]).rsplit(":", 1)[1])
    meter_map = BUILT_IN_MAPS[MeterKind(kind)]
    block = meter_map.blocks()[0]
    try:
        client = MeterClient(meter_settings_from_mapping({"kind": kind, "tcp": f"127.0.0.1:{port}"}))
        ours = timed(one_poll(client), polls)
        client.stop()
        from pymodbus.client import ModbusTcpClient

        bare = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        bare.connect()  # type: ignore[no-untyped-call]  # (pymodbus leaves it untyped)
        alone = timed(lambda: bare.read_input_registers(block.address, count=block.count, device_id=1), polls)
        bare.close()  # type: ignore[no-untyped-call]
        peer = mbpoll_round_trips(["-m", "tcp", "-p", str(port), "-a", "1", "-t", "3:float", "-B", "-r",
                                   str(block.address + 1), "-c", str(block.count // 2), "127.0.0.1"], polls)
    finally:
        emu.kill()
        emu.wait()
    reads = len(meter_map.blocks())
    report(f"Modbus TCP, {kind} ({reads} read{'s' if reads > 1 else ''} per poll; mbpoll and pymodbus do the first)",
           {"busshare MeterClient.poll_once": ours, "pymodbus read alone": alone,
            "mbpoll (libmodbus), same read": peer})


def bench_rtu(kind: str, baud: int, polls: int) -> None:
    line = subprocess.Popen([sys.executable, "-m", "busshare.cli.rs485", "--ports", "3", "--baud", str(baud)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
    assert line.stdout is not None
    paths = [line.stdout.readline().strip() for _ in range(3)]
    emu, _ = start_emulator(kind, ["--serial", paths[0], "--baud", str(baud)])
    meter_map = BUILT_IN_MAPS[MeterKind(kind)]
    block = meter_map.blocks()[0]
    try:
        client = MeterClient(meter_settings_from_mapping({"kind": kind, "serial": paths[1], "baud": baud}))
        ours = timed(one_poll(client), polls)
        client.stop()
        peer = mbpoll_round_trips(["-m", "rtu", "-b", str(baud), "-P", "none", "-a", "1", "-t", "3:float", "-B",
                                   "-r", str(block.address + 1), "-c", str(block.count // 2), paths[2]], polls)
    finally:
        emu.kill()
        emu.wait()
        line.terminate()
        line.wait()
    request, reply = 8, 5 + 2 * block.count
    wire = [(request + 5 + 2 * b.count) * 11 / baud for b in meter_map.blocks()]
    print(f"(RTU wire time of one read of {block.count} registers: {(request + reply) * 11 / baud * 1000:.1f} ms; "
          f"of the whole {kind} poll: {sum(wire) * 1000:.1f} ms)")
    report(f"Modbus RTU at {baud} baud on the emulated RS-485 line, {kind}",
           {"busshare MeterClient.poll_once": ours, "mbpoll (libmodbus), same read": peer})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--polls", type=int, default=200)
    p.add_argument("--kind", choices=[k.value for k in BUILT_IN_MAPS], default="sdm630")
    p.add_argument("--baud", type=int, default=9600)
    args = p.parse_args()
    bench_tcp(args.kind, args.polls)
    print()
    bench_rtu(args.kind, args.baud, max(20, args.polls // 4))


if __name__ == "__main__":
    main()
