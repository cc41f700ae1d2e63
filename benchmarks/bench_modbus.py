"""Modbus RTU figures on the emulated RS-485 line: poll cycle, request-to-grant latency, failsafe engagement.

    python benchmarks/bench_modbus.py [--cycles 40] [--skip-cycle] [--skip-nodes]

Poll cycle (8 and 32 servants, 19200 and 115200 baud): the emulator runs in
its own process (``python -m busshare.cli.rs485`` with a capture), the
servants' Modbus servers in another (one select loop over N ptys, each server
following the whole line as a real unit would), and the master's transport in
this one, polling round-robin with a heartbeat broadcast every heartbeat
period.  Three figures per case:

* bound: the bytes-on-the-wire cycle from the frame sizes (``cycle_wire_time``);
* wire: the same computed from the bytes actually captured on the line
  (characters + one 3.5-char gap per burst), per measured cycle;
* measured: the median time between the starts of two cycles on the master.

Target: measured <= 1.5 x bound.

Latency and failsafe (real processes: ``busshare master --modbus`` and
``busshare servant --modbus`` at 19200 baud): request-to-grant is the time
from a car plugging in (the pilot file turns to C) to the servant applying a
granted current; failsafe engagement is, after ``kill -9`` of the master, the
time from the last heartbeat the servant heard to its failsafe pilot record
(the servant's own record) and from the kill.  Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

from busshare.frames import Heartbeat
from busshare.protocol.link import Link
from busshare.transport.modbus import registers as mm
from busshare.transport.modbus import rtu
from busshare.transport.modbus.master import ModbusMasterTransport
from busshare.transport.modbus.servant import ModbusServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the site files the tests write too
from tests.support.site_files import site_toml  # noqa: E402


def start_line(ports: int, baud: int, capture: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "busshare.cli.rs485", "--ports", str(ports), "--baud",
                             str(baud), "--capture", capture], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, [proc.stdout.readline().strip() for _ in range(ports)]


def servant_farm(paths: list[str], baud: int, seconds: float) -> None:
    """N Modbus servers, one per pty, in one process (a process per unit would measure the scheduler).

    Real units work in parallel, each on its own microcontroller: here the bytes are parsed once and the
    frame handed to the server it addresses (every port still has its bytes read, as a unit's UART would).
    """
    ports = [serial.Serial(p, baud, timeout=0) for p in paths]
    fds = [p.fileno() for p in ports]
    servers = {i + 1: ModbusServer(i + 1, time.monotonic()) for i in range(len(ports))}
    fd_of = {i + 1: fd for i, fd in enumerate(fds)}
    parser = rtu.StreamParser()
    gap = rtu.gap_time(baud)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select(fds, [], [], 0.05)
        if not ready:
            parser.idle()
            parser.drain_junk()
            continue
        data = b""
        for fd in ready:  # every unit's UART is read; the first port's bytes stand for all of them
            chunk = os.read(fd, 4096)
            if fd == fds[0]:
                data = chunk
        now = time.monotonic()
        for frame in parser.feed(data):
            server = servers.get(frame[0])
            if server is None:
                continue
            reply = server.handle(frame, now)
            if reply is not None:
                pause = now + gap - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                os.write(fd_of[frame[0]], reply)


def captured_wire_time(capture: str, baud: int, t_from: float, t_to: float) -> float:
    """Line time of what was captured between two monotonic instants: characters plus one gap per frame.

    Lines that follow each other without a pause are one burst; a burst holding several frames (written
    back to back) still needs a gap after each of them.
    """
    t0 = 0.0
    bursts: list[tuple[float, bytearray]] = []
    prev_end = float("-inf")
    for line in open(capture, encoding="ascii"):
        if line.startswith("# rs485 line:"):
            t0 = float(line.rsplit("- ", 1)[1])
        if line.startswith("#"):
            continue
        head, _, _ = line.partition("#")
        t_text, _, hexes = head.strip().partition(" ")
        t, data = t0 + float(t_text), bytes.fromhex(hexes)
        if bursts and t - prev_end <= rtu.gap_time(baud) / 2:
            bursts[-1][1].extend(data)
        else:
            bursts.append((t, bytearray(data)))
        prev_end = max(prev_end, t) + rtu.wire_time(len(data), baud)
    total = 0.0
    for t, burst in bursts:
        if t_from <= t < t_to:
            frames = max(1, sum(c.ok for c in rtu.split_by_crc(bytes(burst))))
            total += rtu.wire_time(len(burst), baud) + frames * rtu.gap_time(baud)
    return total


def bench_cycle(servants: int, baud: int, cycles: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        capture = os.path.join(tmp, "line.txt")
        line, paths = start_line(servants + 1, baud, capture)
        seconds = cycles * mm.cycle_wire_time(baud, servants) * 4 + 10
        farm = mp.Process(target=servant_farm, args=(paths[1:], baud, seconds), daemon=True)
        farm.start()
        time.sleep(0.5)
        master = ModbusMasterTransport(serial.Serial(paths[0], baud, timeout=0), baud, range(1, servants + 1))
        link = Link()
        hb_period = mm.heartbeat_period_for(baud)
        next_hb = time.monotonic()
        seq = 0
        starts: list[float] = []
        try:
            while len(starts) < cycles + 2:
                now = time.monotonic()
                if now >= next_hb:
                    master.send(*link.encode(Heartbeat(1, 1, 640, seq & 7, 0b1110, seq % 1024)))
                    seq += 1
                    next_hb += hb_period
                master.recv(max(0.0, next_hb - time.monotonic()))
                if len(starts) < master.stats.cycles:
                    starts.append(time.monotonic())
        finally:
            master.shutdown()
            farm.terminate()
            line.send_signal(signal.SIGTERM)
            line.wait(10)
        measured = list(master.cycle_times)[1:]  # the first one includes start-up
        # the cycles' boundaries, back from the start of the latest one
        last = master._cycle_start
        assert last is not None
        window = (last - sum(measured), last)
        wire = captured_wire_time(capture, baud, *window) / len(measured)
        return {
            "servants": servants,
            "baud": baud,
            "bound_ms": mm.cycle_wire_time(baud, servants) * 1000,
            "wire_ms": wire * 1000,
            "measured_ms": statistics.median(measured) * 1000,
            "p90_ms": sorted(measured)[int(len(measured) * 0.9)] * 1000,
            "timeouts": master.stats.timeouts,
            "bad": master.stats.bad_replies,
        }


# ---------------------------------------------------------------------------
# latency and failsafe with real processes


SITE = site_toml((1,), limit_a=64, breaker_a=80, max_a=64)


class Proc:
    def __init__(self, args: list[str]) -> None:
        self.p = subprocess.Popen([sys.executable, "-m", "busshare", *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                                  env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.records: list[dict[str, object]] = []
        os.set_blocking(self.p.stdout.fileno(), False)  # type: ignore[union-attr]
        self._buf = ""

    def poll(self) -> list[dict[str, object]]:
        assert self.p.stdout is not None
        try:
            chunk = self.p.stdout.read()
        except (BlockingIOError, TypeError):
            chunk = None
        if chunk:
            self._buf += chunk
            *lines, self._buf = self._buf.split("\n")
            for ln in lines:
                try:
                    self.records.append(json.loads(ln))
                except json.JSONDecodeError:
                    pass
        return self.records

    def wait_for(self, pred: object, timeout: float, after: int = 0) -> dict[str, object] | None:
        end = time.monotonic() + timeout
        seen = after
        while time.monotonic() < end:
            recs = self.poll()
            for r in recs[seen:]:
                if pred(r):  # type: ignore[operator]
                    return r
            seen = len(recs)
            time.sleep(0.01)
        return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def bench_nodes(rounds: int) -> dict[str, list[float]]:
    baud = 19200
    out: dict[str, list[float]] = {"grant_ms": [], "failsafe_after_heartbeat_s": [], "failsafe_after_kill_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        site = os.path.join(tmp, "site.toml")
        Path(site).write_text(SITE)
        capture = os.path.join(tmp, "line.txt")
        line, paths = start_line(3, baud, capture)
        ev = os.path.join(tmp, "ev1")
        Path(ev).write_text("A")
        servant = Proc(["servant", "--modbus", paths[1], "--baud", str(baud), "--address", "1", "--max", "64",
                        "--pilot-file", ev, "--json"])
        try:
            for _ in range(rounds):
                master = Proc(["master", "--modbus", paths[0], "--baud", str(baud), "--config", site, "--json"])
                # wait until the master has learned the servant (it confirms its 0 A with a set-limit)
                n = len(servant.poll())
                master.wait_for(lambda r: r.get("event") == "acked", 60)
                servant.wait_for(lambda r: r.get("event") == "master", 5, after=n)
                time.sleep(0.5)
                n0 = len(servant.poll())
                t_plug = time.monotonic()
                Path(ev).write_text("C")
                rec = servant.wait_for(lambda r: r.get("event") == "offer" and float(r.get("offer_a", 0)) > 6.0
                                       and not r.get("failsafe"), 30, after=n0)
                if rec is not None:
                    out["grant_ms"].append((float(rec["t"]) - t_plug) * 1000)  # type: ignore[arg-type]
                time.sleep(0.5)
                n1 = len(servant.poll())
                t_kill = time.monotonic()
                master.stop(signal.SIGKILL)
                rec = servant.wait_for(lambda r: r.get("event") == "failsafe", 30, after=n1)
                if rec is not None and rec.get("last_heartbeat") is not None:
                    out["failsafe_after_heartbeat_s"].append(float(rec["t"]) - float(rec["last_heartbeat"]))  # type: ignore[arg-type]
                    out["failsafe_after_kill_s"].append(float(rec["t"]) - t_kill)  # type: ignore[arg-type]
                n2 = len(servant.poll())
                Path(ev).write_text("A")
                servant.wait_for(lambda r: r.get("event") == "pilot", 10, after=n2)
        finally:
            servant.stop()
            line.send_signal(signal.SIGTERM)
            line.wait(10)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=40, help="poll cycles measured per case")
    ap.add_argument("--rounds", type=int, default=3, help="plug/kill rounds for latency and failsafe")
    ap.add_argument("--skip-cycle", action="store_true")
    ap.add_argument("--skip-nodes", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.skip_cycle:
        print("poll cycle (one function-23 transaction per servant, heartbeat broadcasts included)")
        print(f"{'servants':>8} {'baud':>7} {'bound ms':>9} {'wire ms':>8} {'measured ms':>12} {'p90 ms':>7} "
              f"{'ratio':>6} {'timeouts':>8} {'bad':>4}")
        for baud in (19200, 115200):
            for n in (8, 32):
                r = bench_cycle(n, baud, args.cycles)
                ratio = r["measured_ms"] / r["bound_ms"]
                print(f"{n:>8} {baud:>7} {r['bound_ms']:>9.1f} {r['wire_ms']:>8.1f} {r['measured_ms']:>12.1f} "
                      f"{r['p90_ms']:>7.1f} {ratio:>6.2f} {int(r['timeouts']):>8} {int(r['bad']):>4}", flush=True)
    if not args.skip_nodes:
        r2 = bench_nodes(args.rounds)
        for key, vals in r2.items():
            shown = ", ".join(f"{v:.3f}" for v in vals) or "none"
            med = f"median {statistics.median(vals):.3f}" if vals else ""
            print(f"{key}: {med} ({shown})")
        t = mm.modbus_timing(19200, 2)
        print(f"failsafe bound at 19200 baud: timeout {t.failsafe_timeout} s + tick {t.tick_period} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
