"""Fault shapes the chaos sweep does not draw (or draws too rarely), run against the real nodes.

Each test scripts one compound shape on a small installation and runs it with every invariant checked at
every step (``stop_on_violation``: a violation fails the test with its trace). The first two broke the nodes
before their fixes (docs/SIM.md, findings 35 and 36); the others held and document what is covered.
"""

from __future__ import annotations

import pytest

from busshare.frames import Heartbeat
from busshare.frames import SetLimit
from busshare.frames import decode
from busshare.sim import Simulation
from busshare.sim import parse_scenario
from busshare.sim.procs import ServantProc
from tests.support.site_files import scenario_servants

# 32 A shared by two EVSEs: s1's car alone gets 32 A, s2's car plugs in and leaves again (s1 back to 32 A),
# and comes back, so s1 holds 16 A of a 32 A circuit at the end.
TWO_ON_32 = """
name = "hunt"
duration_s = 160
[installation.site]
limit_a = 32
""" + scenario_servants(1, 2) + """[car_defaults]
max_a = 32
need_kwh = 40
reaction_max_s = 3.0
[[car]]
evse = 1
at = 1
[[car]]
evse = 2
at = 20
leave = 40
[[car]]
evse = 2
at = 60
"""


def _frames(sim: Simulation, t0: float, t1: float) -> list[tuple[float, int, bytes, object]]:
    return [(t, o, d, decode(o, d)[0]) for t, o, d in sim.bus.capture if t0 <= t < t1]


def _copy(sim: Simulation, to: ServantProc, frame: tuple[float, int, bytes, object], at: float) -> None:
    assert to.port is not None
    sim.bus.deliver_copy(to.port, frame[1], frame[2], at)


def test_late_copies_of_the_previous_epochs_heartbeat_and_grant_after_a_restart() -> None:
    """A gateway replays two frames about 20 s old in order, just after a real heartbeat: a heartbeat of the
    master's previous epoch, then the 32 A grant that master sent to s1 when s2's car left (PROTOCOL.md 5.1:
    late copies must never raise anything). The heartbeat comes more than conflict_hold after the restart, so
    s1 follows the dead epoch again; it used to forget the newest txn it had applied under it and took the
    old grant: 32 A beside s2's 16 A on 32 A (rule1-offered) until the next real heartbeat."""
    sim = Simulation(parse_scenario(TWO_ON_32))
    sim.run_until(45.0)
    s1 = sim.by_address[1][0]
    grant = next(f for f in _frames(sim, 40.0, 45.0) if isinstance(f[3], SetLimit) and f[3].address == 1
                 and f[3].limit_da == 320)
    beat = [f for f in _frames(sim, 35.0, grant[0]) if isinstance(f[3], Heartbeat)][-1]
    sim.master_crash(46.0)
    sim.run_until(46.5)
    sim.master_restart()
    sim.run_until(65.0)  # the new master has confirmed s1 and given s2's new car its share
    assert isinstance(beat[3], Heartbeat) and sim.masters[0].epoch != beat[3].epoch
    assert s1.offer == 160 and sim.by_address[2][0].offer == 160
    last = [f for f in _frames(sim, 64.0, 65.0) if isinstance(f[3], Heartbeat)][-1]
    at = last[0] + sim.config.timing.heartbeat_period + 0.002  # just after the next real heartbeat
    _copy(sim, s1, beat, at)
    _copy(sim, s1, grant, at + 0.001)
    result = sim.run()
    assert result.ok
    after = [(m.kind, m.detail) for m in result.timeline.events if m.t >= at and m.address == 1]
    assert ("master", f"s1: following master 1 epoch {beat[3].epoch}") in after, after[:5]
    # the grant was the newest set-limit s1 applied under that epoch: a repeat, applied never above its offer
    assert any(k == "repeat" and "never above" in d for k, d in after), after


# -- a servant process restarted while its cut is pending, the EVSE keeping the pilot ---------------------

def respawn_at_cut(at: float, meter: bool) -> str:
    """s1's car charges alone at 32 A; s2's car plugs in at 30 s; s1's process is restarted at ``at``."""
    return """
name = "respawn-at-cut"
duration_s = 60
[installation.site]
limit_a = 32
""" + scenario_servants(1, 2, meter=meter) + f"""[car_defaults]
max_a = 32
need_kwh = 40
[[car]]
evse = 1
at = 1
reaction_min_s = 4.9
reaction_max_s = 4.9
[[car]]
evse = 2
at = 30
[[fault]]
at = {at}
kind = "servant_respawn"
address = 1
"""


@pytest.mark.parametrize("meter", [True, False])
@pytest.mark.parametrize("at", [30.02, 30.6, 31.5])
def test_a_servant_process_restarted_while_its_cut_is_pending_acks_the_cut_only_once_the_car_followed(
        meter: bool, at: float) -> None:
    """s1's car (32 A, 4.9 s to follow a lowered pilot) is cut to 16 A at 30 s for s2's new car; s1's process
    restarts while the cut is pending, and the EVSE keeps the pilot until the new process takes it over. The
    master re-sends the cut; the new process knows nothing of the lowering and, offering 0 A, took it for a
    raise, acked at once (IMMEDIATE, measured 32 A): s2 was granted 16 A while s1's car still drew 32 A (42 A
    drawn on 32 A). A process that finds its car charging on its first look at the hardware takes that as a
    lowering from its max (rule 2), so the re-sent cut is acked once the car has followed."""
    result = Simulation(parse_scenario(respawn_at_cut(at, meter))).run()
    assert result.ok
    boots = [m for m in result.timeline.events if m.kind == "servant-boot"]
    assert [m.t for m in boots] == [at]
