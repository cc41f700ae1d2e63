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

from tests.support.nodeproc import Installation
from tests.support.nodeproc import assert_failsafe_in_bound
from tests.support.nodeproc import assert_sum_within_limit
from tests.support.nodeproc import failsafe
from tests.support.nodeproc import granted
from tests.support.site_files import site_toml

pytestmark = pytest.mark.slow

FAILSAFE_BOUND_S = 2.0  # the protocol's bound on CAN (designed: 1.5 s timeout + one 0.05 s tick)
LIMIT_A = 32.0
FAILSAFE_A = 6.0
ADDRESSES = (1, 2, 3)

SITE = site_toml((1, 2, 3), limit_a=32, breaker_a=40, max_a=16)


@pytest.fixture
def inst(tmp_path: Path):  # type: ignore[no-untyped-def]
    i = Installation(tmp_path, SITE, ADDRESSES)
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
    assert_sum_within_limit(inst, LIMIT_A)

    # 2. kill -9 the master: no leaving heartbeat, just silence
    marks = {a: len(inst.current(a).snapshot()) for a in ADDRESSES}
    master.kill9()
    assert_failsafe_in_bound(inst, marks, FAILSAFE_A, FAILSAFE_BOUND_S)

    # 3. a new master relearns and grants again, safely
    marks = {a: len(inst.current(a).snapshot()) for a in ADDRESSES}
    master = inst.start_master()
    for a in ADDRESSES:
        inst.current(a).wait_for(granted, timeout=60, after=marks[a])
    assert_sum_within_limit(inst, LIMIT_A)

    # 4. a servant dies and comes back with the same address and serial
    inst.current(2).kill9()
    again = inst.start_servant(2)
    again.wait_for(granted, timeout=60)
    assert_sum_within_limit(inst, LIMIT_A)
    assert not [r for r in master.snapshot() if r.get("event") in ("twin", "second-master")]

    # 5. SIGTERM: the master says it is leaving, the servants fail safe without waiting for the timeout
    marks = {a: len(inst.current(a).snapshot()) for a in ADDRESSES}
    assert master.terminate() == 0
    for a in ADDRESSES:
        rec = inst.current(a).wait_for(failsafe, timeout=30, after=marks[a])
        assert rec["offer_a"] <= FAILSAFE_A
    assert_sum_within_limit(inst, LIMIT_A)
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
