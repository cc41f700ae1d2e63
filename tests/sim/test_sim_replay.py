"""A store-and-forward gateway replaying old frames after a master restart (PROTOCOL.md 5.2, rules 1 and 5).

A heartbeat of the master's previous epoch, seconds late, looks like a master restart: a servant that
followed it would forget the newest txn it applied, and a late copy of that master's grant, right behind
it in the burst, would be taken as new. Found by a hunt for shapes the sweep did not draw; the sweep draws
it now (``replay-after-restart``).
"""

from __future__ import annotations

import pytest

from busshare.core.heartbeat_order import FORGET_AFTER_S
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.servant import Servant
from busshare.sim import Simulation
from busshare.sim import parse_scenario
from busshare.sim.chaos import chaos_scenario
from busshare.sim.chaos import shapes_in
from busshare.sim.scenario import ScenarioError
from tests.support.sim_caught import caught
from tests.support.site_files import two_on_32

# 32 A shared by two EVSEs: s1's car alone gets 32 A; s2's car plugs in (s1 cut to 16 A) and leaves at 40 s
# (s1 granted 32 A again); the master crashes at 46 s and a new one starts at 46.5 s; s2's car comes back at
# 50 s, so s1 holds 16 A when a gateway on s1's drop replays what it kept of 38-42 s, at 65 s.
GATEWAY = two_on_32("replay", 120, ((1, 1, None), (2, 20, 40), (2, 50, None)), "reaction_max_s = 3.0\n") + """\
[[fault]]
kind = "replay"
address = 1
at = 38
duration_s = 4
hold_s = 23
[[fault]]
kind = "master_crash"
at = 46
[[fault]]
kind = "master_restart"
at = 46.5
"""


class FollowsTheMasterItLeft(Servant):
    """Deliberately broken, as servants were before this shape was drawn: takes a late copy of a heartbeat of a
    master it left for a master restart (it forgets the heartbeats of every master but the one it follows), and
    then orders that master's set-limits afresh (it forgets the txns it applied under the epochs it left)."""

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        if isinstance(msg, Heartbeat):
            self._orders = {k: o for k, o in self._orders.items() if k == self._master}
            self._left.clear()
        return super().receive(msg, now, arrived)


class FollowsTheMasterItLeftButKeepsItsTxns(FollowsTheMasterItLeft):
    """Broken in the first layer only: the second (5.1) still refuses the old grant's copy."""

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        left = dict(self._left)
        out = super().receive(msg, now, arrived)
        self._left.update({k: v for k, v in left.items() if k not in self._left})
        return out


def test_a_burst_of_the_old_epochs_frames_raises_nothing() -> None:
    sim = Simulation(parse_scenario(GATEWAY), record=True)
    result = sim.run()
    assert result.ok
    marks = [m.detail for m in sim.timeline.events if m.kind == "replay"]
    assert len(marks) == 2 and "replayed at 65.000 s" in marks[1]
    assert sim.bus.late > 20, "the burst reached the nodes"


def test_a_servant_that_follows_the_master_it_left_again_is_caught() -> None:
    v = caught(parse_scenario(GATEWAY), 1, servant_cls=FollowsTheMasterItLeft)
    assert v.check == "rule1-offered", v


def test_the_txns_kept_for_the_epochs_left_hold_when_a_copy_is_followed_after_all() -> None:
    sim = Simulation(parse_scenario(GATEWAY), record=True, servant_cls=FollowsTheMasterItLeftButKeepsItsTxns)
    assert sim.run().ok
    # the old grant's copy is the newest set-limit applied under the epoch left: a repeat, never above the offer
    assert any(m.kind == "repeat" and m.address == 1 and "never above" in m.detail for m in sim.timeline.events), \
        "the txn order of the epoch left held the old grant's copy (PROTOCOL.md 5.1)"


def test_a_replay_needs_its_window() -> None:
    text = GATEWAY.replace("duration_s = 4\n", "")
    with pytest.raises(ScenarioError, match=r"fault\[0\]\.duration_s.*required"):
        parse_scenario(text)


def test_the_sweep_draws_the_shape_and_it_catches_the_broken_servant() -> None:
    seeds = [s for s in range(1000, 1300) if "replay-after-restart" in shapes_in(chaos_scenario(s))]
    assert len(seeds) >= 10
    replays = [f for s in seeds for f in chaos_scenario(s).faults if f.kind == "replay"]
    assert all(f.hold_s is not None and f.duration_s is not None for f in replays)
    # copies younger than the servants' memory of a master (5.2): hold_s is at least their age at the burst
    assert max(f.hold_s or 0.0 for f in replays) < FORGET_AFTER_S
    found = 0
    for seed in seeds[:12]:
        try:
            caught(chaos_scenario(seed), seed, servant_cls=FollowsTheMasterItLeft)
            found += 1
        except AssertionError:
            pass
    assert found >= 1, "no drawn replay caught a servant that follows the master it left"
