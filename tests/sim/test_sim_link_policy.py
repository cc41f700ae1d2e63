"""The simulator's receivers run the production receive policy (PROTOCOL.md 6.3, issue 12 deliverable 2).

The same timed frames, delivered to the simulated master's port and to a real runtime's master over a
virtual CAN bus, are accepted or dropped alike: a duplicate within the stream memory is dropped, a
rebooted servant's first frames (counter 0 again, byte-identical to its previous life's) are accepted
after its JOIN or after a silence, as the runtime accepts them.
"""

from __future__ import annotations

import uuid

import can

from busshare.frames import Join
from busshare.frames import Request
from busshare.io.runtime import Runtime
from busshare.master import Master
from busshare.protocol.e2e import E2EStatus
from busshare.protocol.link import Link
from busshare.sim.runner import Simulation
from busshare.sim.scenario import parse_scenario
from busshare.transport.can import CanTransport
from tests.support.site_files import scenario_servants

SCENARIO = """
name = "receive-policy"
duration_s = 30
[installation.site]
limit_a = 32
""" + scenario_servants(1)

REQUEST = Request(9, 320, 60, 0)  # from an address nobody else sends on: only these frames are on its streams


def timed_frames() -> list[tuple[float, int, bytes]]:
    """A servant's REQUEST, its duplicate, a reboot within the stream memory (JOIN, then the same REQUEST
    with counter 0 again), a duplicate of that, and the same frame once more after a 1.7 s silence."""
    life1, life2 = Link(), Link()  # the servant's sender side before and after its reboot
    first = life1.encode(REQUEST)
    join = life2.encode(Join(9, 0x9999, 320))
    again = life2.encode(REQUEST)
    assert again == first  # the rebooted servant's first REQUEST is byte-identical to its previous life's
    return [(10.00, *first), (10.10, *first), (10.20, *join), (10.21, *again), (10.30, *again), (12.00, *again)]


EXPECTED = [True, False, True, True, False, True]  # acted on?


def statuses_delta(before: dict[E2EStatus, int], after: dict[E2EStatus, int]) -> bool:
    """Whether the one frame checked between the two snapshots was acted on."""
    (status,) = [s for s in E2EStatus for _ in range(after[s] - before[s])]
    return status.accepted


def test_the_simulators_receivers_accept_and_drop_as_the_runtime_does() -> None:
    frames = timed_frames()
    sim = Simulation(parse_scenario(SCENARIO), stop_on_violation=False)
    port = sim.masters[0].port
    assert port is not None and type(port.link) is Link
    in_sim = []
    for t, offset, data in frames:
        sim.run_until(t - 1e-6)  # the simulated bus's own frames up to then (none arrive in the last us)
        before = dict(port.link.checker.counts)
        sim.bus.deliver_copy(port, offset, data, t)
        sim.run_until(t)
        in_sim.append(statuses_delta(before, port.link.checker.counts))

    channel = f"busshare-policy-{uuid.uuid4()}"
    rt = Runtime(Master(sim.config, 0.0, epoch=3), CanTransport(can.Bus(interface="virtual", channel=channel)))
    sender = can.Bus(interface="virtual", channel=channel)
    in_runtime = []
    try:
        for t, offset, data in frames:
            before = dict(rt.link.checker.counts)
            sender.send(can.Message(arbitration_id=offset, is_extended_id=False, data=data))
            rt.pump(t)
            in_runtime.append(statuses_delta(before, rt.link.checker.counts))
    finally:
        sender.shutdown()
        rt.transport.shutdown()

    assert in_sim == in_runtime == EXPECTED
