"""Real `busshare` processes for the multi-process and vcan tests, read through their --json output.

Every wait polls for a condition with a generous timeout (shared, noisy
machines); safety bounds are checked on the timestamps the nodes report.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.ports import free_port

Record = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]


def free_udp_port() -> int:
    """A port of our own for udp_multicast, so tests running at once on one host never hear each other."""
    return free_port(socket.SOCK_DGRAM)


class NodeProc:
    """One `python -m busshare ...` process; its JSON lines are collected by a thread."""

    def __init__(self, args: Sequence[str], name: str, cwd: Path | None = None, command: Sequence[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        """``command`` (default: this interpreter's ``-m busshare``, this checkout's code) runs ``args``."""
        self.name = name
        self.args = [*(command or (sys.executable, "-m", "busshare")), *args]
        if env is None:  # this checkout's busshare, installed or not
            path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
            env = dict(os.environ, PYTHONPATH=path)
        env = dict(env, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
        )
        self.records: list[Record] = []
        self.other: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr: list[str] = []
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                with self._lock:
                    self.other.append(line)
                continue
            with self._lock:
                self.records.append(rec)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self.records)

    def wait_for(self, pred: Callable[[Record], bool], timeout: float = 30.0, after: int = 0) -> Record:
        """The first record (from index ``after``) matching ``pred``; fails with context after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.snapshot()[after:]:
                if pred(rec):
                    return rec
            if self.proc.poll() is not None and self._reader.is_alive() is False:
                break
            time.sleep(0.05)
        tail = "\n".join(json.dumps(r) for r in self.snapshot()[-15:])
        raise AssertionError(f"{self.name}: condition not met within {timeout} s; last records:\n{tail}\n"
                             f"stderr:\n{self.stderr[-2000:]}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
            self._reader.join(10)  # everything it wrote before exiting is read
            return code
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name} did not exit on SIGTERM within {timeout} s") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        self._err_reader.join(5)


def granted(rec: Record) -> bool:
    """An offer record: the master's grant is on the pilot (not the failsafe)."""
    return rec.get("event") == "offer" and rec.get("offer_a", 0) > 0 and not rec.get("failsafe")


def failsafe(rec: Record) -> bool:
    return rec.get("event") == "offer" and bool(rec.get("failsafe"))


def event(kind: str) -> Callable[[Record], bool]:
    """An event record of this kind (``wait_for(event("stopped"))``)."""
    return lambda r: r.get("event") == kind


def assert_sum_within_limit(inst: Installation, limit_a: float) -> None:
    """Replay every servant's offers in time order (one clock for all): the sum never exceeds the limit."""
    offers: dict[int, float] = {}
    for t, address, offer in inst.pilot_timeline():
        offers[address] = offer
        total = sum(offers.values())
        assert total <= limit_a + 1e-9, f"at t={t:.3f} the servants offered {offers} = {total} A > {limit_a} A"


def assert_failsafe_in_bound(inst: Installation, after: dict[int, int], failsafe_a: float, bound_s: float) -> None:
    """Every servant's first failsafe offer after ``after`` came within ``bound_s`` of the last heartbeat it heard."""
    for address, procs in inst.servants.items():
        rec = procs[-1].wait_for(failsafe, timeout=30, after=after[address])
        assert rec["offer_a"] <= failsafe_a
        assert rec["last_heartbeat"] is not None
        took = rec["t"] - rec["last_heartbeat"]
        print(f"servant {address}: failsafe {took:.3f} s after the last heartbeat it heard")
        assert took < bound_s, f"servant {address} reached its failsafe {took:.3f} s after the last heartbeat"


def offer_of(rec: Record) -> float | None:
    """The offered current a record reports (pilot changes and status lines), else None."""
    if (rec.get("event") == "offer" or rec.get("record") == "status") and "offer_a" in rec:
        return float(rec["offer_a"])
    return None


class Installation:
    """A master, servants and a monitor as real processes on one bus, started and restarted at will."""

    def __init__(self, tmp: Path, site: str, addresses: Sequence[int], bus: Sequence[str] | None = None,
                 failsafe_a: float = 6.0) -> None:
        self.bus = list(bus) if bus is not None else ["-i", "udp_multicast", "--bus-kwargs", f"port={free_udp_port()}"]
        self.site = tmp / "site.toml"
        self.site.write_text(site)
        self.failsafe_a = failsafe_a
        self.procs: list[NodeProc] = []
        self.servants: dict[int, list[NodeProc]] = {a: [] for a in addresses}
        self.masters: list[NodeProc] = []

    def start_monitor(self) -> NodeProc:
        p = NodeProc(["monitor", *self.bus], "monitor")
        self.procs.append(p)
        return p

    def start_master(self) -> NodeProc:
        p = NodeProc(["master", "--config", str(self.site), "--json", "--status-interval", "1", *self.bus],
                     f"master#{len(self.masters) + 1}")
        self.masters.append(p)
        self.procs.append(p)
        return p

    def start_servant(self, address: int, bus: Sequence[str] | None = None) -> NodeProc:
        """A servant with a simulated car; on ``bus`` when given (e.g. another vcan behind a gateway)."""
        p = NodeProc(["servant", "--address", str(address), "--max", "16", "--failsafe", str(self.failsafe_a),
                      "--ev", "sim", "--seed", str(address), "--json", "--status-interval", "1",
                      *(self.bus if bus is None else bus)],
                     f"servant{address}#{len(self.servants[address]) + 1}")
        self.servants[address].append(p)
        self.procs.append(p)
        return p

    def current(self, address: int) -> NodeProc:
        return self.servants[address][-1]

    def pilot_timeline(self) -> list[tuple[float, int, float]]:
        """(t, address, offer A) of every pilot change any servant process reported."""
        out = []
        for address, procs in self.servants.items():
            for p in procs:
                out.extend((r["t"], address, float(r["offer_a"])) for r in p.snapshot()
                           if r.get("event") == "offer" and "offer_a" in r)
        return sorted(out)

    def close(self) -> None:
        for p in self.procs:
            p.close()
