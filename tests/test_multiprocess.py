"""Real master and servant processes on python-can's udp_multicast (loopback), watched through --json.

One installation: a 32 A limit, three servants of 16 A with simulated cars
(so there is a shortage), failsafe 6 A each.  The story:

1. the master learns the servants and grants; the sum of offers never exceeds the limit;
2. kill -9 the master: every servant falls to its failsafe current within the bound
   (< 2 s of the last heartbeat *it* heard, by its own clock);
3. a new master process: it relearns and grants again, never above the limit;
4. a servant is killed and restarted: it rejoins and is granted again;
5. SIGTERM to the master: it announces that it leaves, exits 0, and the servants fail safe at once.

A `busshare monitor` process watches the whole story from the outside.

Waits poll with generous timeouts; only the safety bound is asserted on time,
and it is measured on the servants' own timestamps.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nodeproc import NodeProc, Record, free_udp_port

pytestmark = pytest.mark.slow

FAILSAFE_BOUND_S = 2.0  # the protocol's bound on CAN (designed: 1.5 s timeout + one 0.05 s tick)
LIMIT_A = 32.0
FAILSAFE_A = 6.0
ADDRESSES = (1, 2, 3)

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

[[servant]]
address = 3
max_a = 16
"""


class Installation:
    def __init__(self, tmp: Path) -> None:
        self.port = free_udp_port()
        self.bus = ["-i", "udp_multicast", "--bus-kwargs", f"port={self.port}"]
        self.site = tmp / "site.toml"
        self.site.write_text(SITE)
        self.procs: list[NodeProc] = []
        self.servants: dict[int, list[NodeProc]] = {a: [] for a in ADDRESSES}
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

    def start_servant(self, address: int) -> NodeProc:
        p = NodeProc(["servant", "--address", str(address), "--max", "16", "--failsafe", str(FAILSAFE_A),
                      "--ev", "sim", "--seed", str(address), "--json", "--status-interval", "1", *self.bus],
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


def granted(rec: Record) -> bool:
    return rec.get("event") == "offer" and rec.get("offer_a", 0) > 0 and not rec.get("failsafe")


def failsafe(rec: Record) -> bool:
    return rec.get("event") == "offer" and bool(rec.get("failsafe"))


def assert_sum_within_limit(inst: Installation) -> None:
    offers: dict[int, float] = {}
    for t, address, offer in inst.pilot_timeline():
        offers[address] = offer
        total = sum(offers.values())
        assert total <= LIMIT_A + 1e-9, f"at t={t:.3f} the servants offered {offers} = {total} A > {LIMIT_A} A"


def assert_failsafe_in_bound(inst: Installation, after: dict[int, int]) -> None:
    for address in ADDRESSES:
        p = inst.current(address)
        rec = p.wait_for(failsafe, timeout=30, after=after[address])
        assert rec["offer_a"] <= FAILSAFE_A
        assert rec["last_heartbeat"] is not None
        took = rec["t"] - rec["last_heartbeat"]
        print(f"servant {address}: failsafe {took:.3f} s after the last heartbeat it heard")
        assert took < FAILSAFE_BOUND_S, f"servant {address} reached its failsafe {took:.3f} s after the last heartbeat"


@pytest.fixture
def inst(tmp_path: Path):  # type: ignore[no-untyped-def]
    i = Installation(tmp_path)
    yield i
    i.close()


def test_failsafe_restart_and_rejoin_on_separate_processes(inst: Installation) -> None:
    monitor = inst.start_monitor()
    master = inst.start_master()
    for a in ADDRESSES:
        inst.start_servant(a)

    # 1. everyone gets a grant
    for a in ADDRESSES:
        inst.current(a).wait_for(granted, timeout=60)
    assert_sum_within_limit(inst)

    # 2. kill -9 the master: no leaving heartbeat, just silence
    marks = {a: len(inst.current(a).snapshot()) for a in ADDRESSES}
    master.kill9()
    assert_failsafe_in_bound(inst, marks)

    # 3. a new master relearns and grants again, safely
    marks = {a: len(inst.current(a).snapshot()) for a in ADDRESSES}
    master = inst.start_master()
    for a in ADDRESSES:
        inst.current(a).wait_for(granted, timeout=60, after=marks[a])
    assert_sum_within_limit(inst)

    # 4. a servant dies and comes back with the same address and serial
    inst.current(2).kill9()
    again = inst.start_servant(2)
    again.wait_for(granted, timeout=60)
    assert_sum_within_limit(inst)
    assert not [r for r in master.snapshot() if "conflict" in str(r.get("event", ""))]

    # 5. SIGTERM: the master says it is leaving, the servants fail safe without waiting for the timeout
    marks = {a: len(inst.current(a).snapshot()) for a in ADDRESSES}
    assert master.terminate() == 0
    for a in ADDRESSES:
        rec = inst.current(a).wait_for(failsafe, timeout=30, after=marks[a])
        assert rec["offer_a"] <= FAILSAFE_A
    assert_sum_within_limit(inst)
    for a in ADDRESSES:
        assert inst.current(a).terminate() == 0

    # the monitor saw it all, one readable line per frame, and flagged the silence only
    assert monitor.terminate() == 0
    lines = monitor.other
    assert any(re.fullmatch(r"\d+\.\d{3} master→[123] (GRANT|SET) .* A tx \d+ .*\n", line) for line in lines)
    assert any(re.fullmatch(r"\d+\.\d{3} [123]→master ACK tx \d+ at .*\n", line) for line in lines)
    assert any("!! master-silent" in line for line in lines)
    flagged = {line.split("!! ")[1].split(":")[0] for line in lines if "!! " in line}
    assert not flagged & {"two-masters", "twin-servants", "over-limit", "unacked-cut", "malformed"}, flagged
    assert lines[-1].startswith("-- ")
