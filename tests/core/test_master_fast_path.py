"""The master's fast paths (issue 12, Performance) leave it where it would be without them.

Two masters get the same random messages, mains readings and ticks: one takes the fast paths, the other (a
subclass) the full ones: every estimate stamped at every step, an allocation after every STATUS that changed
a slot's inputs, every ACK and REQUEST and every sign of a second master, its sums from a whole ``_Ledger`` (counts and unreachable
part too, never kept), every allocation computed afresh, every slot's timer worked out again after every call,
every tick looking for set-limits to re-send.  After every call their outputs, events, budgets, estimates,
counts, views and deadlines must agree, and the counts also when only time moved.  The acks and the STATUS
frames answer what the master sent (or not, or late), so cuts, grants, silence, pauses and reclaims all happen.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.core.allocation import Demand
from busshare.core.budget import BudgetPolicy
from busshare.core.budget import MainsReading
from busshare.core.budget_config import BudgetConfig
from busshare.core.config import Config
from busshare.core.config import ServantConfig
from busshare.core.config import Timing
from busshare.core.currents import PhaseCurrents
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Heartbeat
from busshare.frames import Join
from busshare.frames import Message
from busshare.frames import Release
from busshare.frames import ReleaseReason
from busshare.frames import Request
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.frames import serial_tag
from busshare.master import _AS_READ_DRAW
from busshare.master import _AS_READ_OFFERED
from busshare.master import _AS_READ_PILOT
from busshare.master import _RECLAIM_READS
from busshare.master import INF
from busshare.master import UNREACHABLE_STATES
from busshare.master import Master
from busshare.master import _Ledger
from busshare.master import _Slot
from busshare.protocol.pilot import PilotState
from tests.support.budget_inputs import Tick  # (a tick: the same action as the policy tests draw)

SERVANTS = tuple(ServantConfig(a, max_da=320, failsafe_da=60 if a < 3 else 0, serial=0x100 + a,
                               has_meter=a % 2 == 1) for a in range(1, 5))
CONFIG = Config(limit_da=400, servants=SERVANTS, timing=Timing())
# a reclaim margin above the threshold: a due reclaim whose cap would not be below the limit stops its timer
WIDE_MARGIN = Config(limit_da=400, servants=SERVANTS, timing=Timing(), reclaim_margin_da=50)
BUDGET = BudgetConfig(fallback_da=200, main_limit_da=800, margin_da=20, raise_hold_s=6.0, raise_step_da=100)


def master(kind: type[Master], budgeted: bool, config: Config = CONFIG) -> Master:
    """A master of ``config``, with a metered budget policy of its own when ``budgeted``."""
    policy = BudgetPolicy(BUDGET, config.limit_da, config.timing, 0.0, meter_timeout_s=5.0) if budgeted else None
    return kind(config, 0.0, epoch=7, budget=policy)


class FullMaster(Master):
    """Takes every full path: the sums from a whole ledger, allocations computed afresh, every due worked out."""

    def _status_allocates(self, slot: _Slot, st: Status, now: float, out: list[Message]) -> bool:
        before = slot.inputs()  # every STATUS that changed what allocation reads allocates, settled or not
        self._heard(slot, now)
        self._on_status(slot, st, now, out)
        return slot.inputs() != before

    def _second_master_allocates(self, now: float, why: str, out: list[Message]) -> bool:
        self._on_second_master(now, why, out)
        return True  # every sign of a second master allocates

    def _ack_allocates(self, slot: _Slot, ack: Ack, now: float) -> bool:
        self._heard(slot, now)
        self._on_ack(slot, ack, now)
        return True  # every ACK allocates

    def _request_allocates(self, slot: _Slot, req: Request, now: float) -> bool:
        self._heard(slot, now)
        self._on_request(slot, req, now)
        return True  # every REQUEST allocates

    def _note_estimates(self, now: float, touched: tuple[_Slot, ...] | None = None) -> None:
        super()._note_estimates(now, None)  # every slot's estimate, every step

    def committed_da(self, now: float) -> int:
        return _Ledger.open(self._slots.values(), self.limit_da, now, self.timing).counted()

    def unreachable_da(self, now: float) -> int:
        return sum(v.committed_da for v in self.servants(now) if v.state in UNREACHABLE_STATES)

    def reserved_failsafe_da(self, now: float) -> int:
        return _Ledger.open(self._slots.values(), self.limit_da, now, self.timing, self._floor).reserved_failsafe()

    def _allocation(self, budget: int, demands: list[Demand]) -> dict[int, int]:
        self._last_allocation = None
        return super()._allocation(budget, demands)

    def _slot_dues(self, now: float, touched: tuple[_Slot, ...] | None) -> float:
        return super()._slot_dues(now, None)

    def tick(self, now: float) -> list[Message]:
        self._dues_min = -INF  # every tick looks for set-limits to re-send, however far the earliest slot timer
        return super().tick(now)


@dataclass(frozen=True)
class Report:
    """A STATUS: the unit offers what it was last told (``follows``) or keeps its old offer."""

    address: int
    pilot: PilotState
    requested: int
    measured: int | None
    follows: bool
    failsafe: bool


@dataclass(frozen=True)
class Answer:
    """An ACK of the set-limit outstanding to ``address`` (if any), applying all of it or less."""

    address: int
    short_da: int


@dataclass(frozen=True)
class Other:
    msg: Message


@dataclass(frozen=True)
class Mains:
    """A mains reading (a tick without a budget): the house plus what the units offer, measured ``lag`` ago."""

    house_da: int
    lag: float


Action = Report | Answer | Other | Tick | Mains
addresses = st.integers(1, 4)
pilots = st.sampled_from([PilotState.A, PilotState.B, PilotState.C, PilotState.C])
actions = st.tuples(
    st.sampled_from([0.0, 0.05, 0.1, 0.3, 1.0, 2.5, 6.0]),
    st.one_of(
        st.builds(Report, addresses, pilots, st.sampled_from([0, 100, 160, 320]),
                  st.sampled_from([None, 0, 40, 100, 160, 300]), st.booleans(), st.booleans()),
        st.builds(Answer, addresses, st.sampled_from([0, 0, 0, 30])),
        st.builds(Other, st.one_of(
            st.builds(Request, addresses, st.sampled_from([0, 100, 320]), st.just(60), st.integers(0, 1)),
            st.builds(Release, addresses, st.just(0), st.sampled_from(list(ReleaseReason))),
            addresses.map(lambda a: Join(a, 0x100 + a, 320)),
            st.integers(0, 1023).map(lambda seq: Heartbeat(2, 9, 400, 0, 0xFE, seq)),  # a second master
            addresses.map(lambda a: SetLimit(a, 200, 60, 60, 9)),  # its set-limit
        )),
        st.just(Tick()),
        st.builds(Mains, st.sampled_from([0, 200, 450, 700]), st.sampled_from([0.0, 0.5, 6.0])),
    ),
)


class Units:
    """What each unit was last told (the offers it would make), from the fast master's set-limits."""

    def __init__(self) -> None:
        self.told: dict[int, SetLimit] = {}
        self.offer: dict[int, int] = {a.address: 0 for a in SERVANTS}

    def heard(self, out: list[Message]) -> None:
        for m in out:
            if isinstance(m, SetLimit):
                self.told[m.address] = m

    def message(self, act: Report | Answer | Other) -> Message | None:
        if isinstance(act, Other):
            return act.msg
        a = act.address
        told = self.told.get(a)
        if isinstance(act, Answer):
            if told is None:
                return None
            applied = told.limit_da - act.short_da
            self.offer[a] = applied if applied >= 60 else 0
            return Ack(a, told.txn, self.offer[a], None, AckHow.IMMEDIATE)
        if act.follows and told is not None:
            self.offer[a] = told.limit_da
        return Status(a, serial_tag(0x100 + a), act.pilot, self.offer[a], act.measured, act.requested,
                      failsafe=act.failsafe)


def call(m: Master, act: Action, msg: Message | None, now: float, drawn_da: int = 0) -> list[Message]:
    if isinstance(act, Mains) and m.budget_policy is not None:
        return m.mains_reading(MainsReading(now - act.lag, PhaseCurrents.single(act.house_da + drawn_da)), now)
    if msg is None:
        return m.tick(now)
    return m.receive(msg, now)


# a STATUS showing a cut applied, right after the pass that sent it: that pass stirred (it cut a deaf unit, which
# is no longer deaf), so the STATUS allocates although it changed nothing as a pass reads it (the new cut eases)
STIRRED = [(0.0, Answer(1, 0)), (2.5, Report(3, PilotState.B, 100, 0, False, False)),
           (0.0, Report(3, PilotState.B, 100, 0, False, False))]

# a second master heard again right after a pass that stirred (a cut while a unit was silent): that heartbeat
# allocates, and the pass eases the cut
SECOND_MASTER = Other(Heartbeat(2, 9, 400, 0, 0xFE, 0))
HELD = [(0.0, SECOND_MASTER), (0.0, Report(1, PilotState.A, 0, None, False, False)),
        (0.3, Report(3, PilotState.B, 100, None, False, False)), (1.0, Tick()), (0.0, SECOND_MASTER),
        (0.0, Report(1, PilotState.A, 0, None, False, False)), (0.0, Report(1, PilotState.A, 0, None, False, False)),
        (0.0, Report(1, PilotState.A, 0, None, False, False)), (0.0, Answer(1, 0)), (0.0, Answer(1, 0))]


@settings(max_examples=300, deadline=None)
@example(STIRRED, False, CONFIG)
@example(HELD, False, CONFIG)
@given(st.lists(actions, min_size=10, max_size=150), st.booleans(), st.sampled_from([CONFIG, WIDE_MARGIN]))
def test_a_master_taking_the_fast_paths_ends_where_the_full_paths_do(steps: list[tuple[float, Action]],
                                                                      budgeted: bool, config: Config) -> None:
    fast, full = master(Master, budgeted, config), master(FullMaster, budgeted, config)
    units = Units()
    now = 0.0
    learned = [(0.1, Report(a, PilotState.C if a % 2 else PilotState.A, 320 if a % 2 else 0, None, False, False))
               for a in range(1, 5)]
    for delay, act in learned + steps:
        # the kept counts, asked when time alone moved (as the simulator does between calls), halfway and now
        for later in (round(now + delay / 2, 3), round(now + delay, 3)):
            assert fast.committed_da(later) == full.committed_da(later)
            assert fast.unreachable_da(later) == full.unreachable_da(later)
        now = round(now + delay, 3)
        msg = None if isinstance(act, (Tick, Mains)) else units.message(act)
        drawn = sum(units.offer.values())
        out = call(fast, act, msg, now, drawn)
        assert out == call(full, act, msg, now, drawn)
        units.heard(out)
        assert fast.budget == full.budget
        assert [(s.estimate_da, s.estimate_since) for s in fast._slots.values()] == [
            (s.estimate_da, s.estimate_since) for s in full._slots.values()]
        assert fast.drain_events() == full.drain_events()
        assert fast.next_deadline() == full.next_deadline()
        assert fast.committed_da(now) == full.committed_da(now)
        assert fast.unreachable_da(now) == full.unreachable_da(now)
        assert fast.reserved_failsafe_da(now) == full.reserved_failsafe_da(now)
        assert fast.servants(now) == full.servants(now)


def test_the_random_frames_reach_grants_cuts_and_acks() -> None:
    """(The comparison above is only as good as what its frames make the master do.)"""
    m = Master(CONFIG, 0.0, epoch=7)
    units = Units()
    script: list[tuple[float, Action]] = [(0.1, Report(a, PilotState.C, 320, None, False, False)) for a in range(1, 5)]
    script += [(0.2, Answer(a, 0)) for a in range(1, 5)] + [(0.5, Report(a, PilotState.C, 320, 100, True, False))
                                                            for a in range(1, 5)]
    now, sent = 0.0, []
    for delay, act in script:
        now += delay
        out = call(m, act, None if isinstance(act, (Tick, Mains)) else units.message(act), now)
        units.heard(out)
        sent += out
    assert any(isinstance(x, SetLimit) and x.limit_da > 0 for x in sent)
    assert m.committed_da(now) <= CONFIG.limit_da


def test_a_reclaim_timer_restarted_by_a_pass_is_not_skipped_as_settled() -> None:
    """Review finding: a pass that stops a due reclaim (its cap would not be below the limit) changes what the
    next pass does (it starts the timer again), so that pass is not settled.  Two metered cars on 20 A; car 1
    draws about 6 A, then about 1 A: the full paths cap it and grant car 2 the rest, and so must the fast ones."""
    servants = tuple(ServantConfig(a, max_da=320, failsafe_da=0, serial=0x100 + a, has_meter=True) for a in (1, 2))
    config = Config(limit_da=200, servants=servants, timing=Timing(), reclaim_margin_da=50)
    fast, full = Master(config, 0.0, epoch=7), FullMaster(config, 0.0, epoch=7)
    units = Units()
    now = 0.0
    granted_to_2 = 0
    while now < 300.0:
        now = round(now + 0.25, 3)
        acts: list[Action] = [Tick()]
        if now % 0.5 == 0:
            jitter = 2 if now % 1 else 0  # the draw moves by 0.2 A: a change, but none a pass reads differently
            acts += [Report(1, PilotState.C, 320, min(units.offer[1], (60 if now < 90 else 10) - jitter), True, False),
                     Report(2, PilotState.C, 320, units.offer[2], True, False)]
        for act in acts:
            msg = None if isinstance(act, Tick) else units.message(act)
            out = call(fast, act, msg, now)
            assert out == call(full, act, msg, now), now
            units.heard(out)
            for m in out:
                if isinstance(m, SetLimit):
                    answer = units.message(Answer(m.address, 0))
                    assert answer is not None
                    assert call(fast, Answer(m.address, 0), answer, now) == call(full, Answer(m.address, 0), answer, now)
                    if m.address == 2:
                        granted_to_2 = max(granted_to_2, m.limit_da)
    assert granted_to_2 > 100  # the reclaim happened: car 2 got more than half


class CountingMaster(Master):
    passes = 0

    def _allocate(self, now: float, out: list[Message]) -> bool:
        self.passes += 1
        return super()._allocate(now, out)


def both_take(fast: Master, full: Master, units: Units, act: Report | Answer, now: float) -> list[Message]:
    """Both masters take the unit's frame for ``act`` and send the same frames, which the units hear."""
    msg = units.message(act)
    assert msg is not None
    out = fast.receive(msg, now)
    assert out == full.receive(msg, now)
    units.heard(out)
    return out


def learned_pair(config: Config, pilot: PilotState) -> tuple[CountingMaster, FullMaster, Units, float]:
    """A counting fast master and a full one that learned 4 units (cars in ``pilot`` wanting 32 A, or none in
    A), with the set-limits they sent outstanding, at the time returned."""
    fast, full = CountingMaster(config, 0.0, epoch=7), FullMaster(config, 0.0, epoch=7)
    units = Units()
    now = 0.0
    for a in range(1, 5):
        now += 0.01
        both_take(fast, full, units, Report(a, pilot, 0 if pilot is PilotState.A else 320, None, False, False), now)
    return fast, full, units, now


def test_acks_of_the_grants_after_learning_take_no_allocation_pass() -> None:
    """The pass that sent the grants settled (it waits for what it sent), and every ACK leaves its unit
    confirmed as planned with nothing held back: no pass (the full paths run one each). A unit that applies
    less than it was told is not as planned: a pass tells it again."""
    fast, full, units, now = learned_pair(Config(limit_da=2000, servants=SERVANTS, timing=Timing()), PilotState.C)
    assert [units.told[a].limit_da for a in range(1, 5)] == [320] * 4
    before = fast.passes
    for a, short in ((1, 0), (2, 0), (3, 0), (4, 30)):
        now += 0.01
        both_take(fast, full, units, Answer(a, short), now)
    assert fast.passes - before == 1  # the short ack
    assert fast.drain_events() == full.drain_events()
    assert fast.servants(now) == full.servants(now)


def granted_pair(config: Config, pilot: PilotState) -> tuple[CountingMaster, FullMaster, Units, float]:
    """``learned_pair`` with every set-limit they sent acked, at the time returned."""
    fast, full, units, now = learned_pair(config, pilot)
    for a in range(1, 5):
        now += 0.01
        both_take(fast, full, units, Answer(a, 0), now)
    return fast, full, units, now


def test_a_request_for_a_car_not_seen_plugged_in_takes_no_allocation_pass() -> None:
    """A REQUEST after a settled pass changes what a pass reads only through ``want``: a unit whose car is not
    seen plugged in (pilot A) wants nothing whatever it asks, so no pass (the full paths run one); its STATUS
    with the car in B then allocates and grants it."""
    fast, full, units, now = granted_pair(Config(limit_da=2000, servants=SERVANTS, timing=Timing()), PilotState.A)
    before = fast.passes
    now += 0.5
    req = Request(2, 320, 60, 0)
    assert fast.receive(req, now) == full.receive(req, now) == []
    assert fast.passes == before
    now += 0.5
    msg = units.message(Report(2, PilotState.B, 320, None, False, False))
    assert msg is not None
    out = fast.receive(msg, now)
    assert out == full.receive(msg, now)
    assert [(m.address, m.limit_da) for m in out if isinstance(m, SetLimit)] == [(2, 320)]
    assert fast.passes == before + 1
    assert fast.drain_events() == full.drain_events()


def test_a_draw_crossing_the_reclaim_threshold_moves_the_timer_without_an_allocation_pass() -> None:
    """After a settled pass, a STATUS whose draw falls clearly under the limit only starts the reclaim timer,
    and one whose draw is back near it only stops it: no pass, the timer as the full paths' pass leaves it."""
    fast, full, units, now = granted_pair(Config(limit_da=2000, servants=SERVANTS, timing=Timing()), PilotState.C)
    for a in (1, 2, 3, 4, 1, 2, 3, 4):  # every unit reports what it offers now, and acks what that brings
        now += 0.1
        for m in both_take(fast, full, units, Report(a, PilotState.C, 320, None, True, False), now):
            both_take(fast, full, units, Answer(m.address, 0), now)
    before = fast.passes
    for measured, low in ((100, True), (310, False)):
        now += 0.5
        msg = units.message(Report(1, PilotState.C, 320, measured, True, False))
        assert msg is not None
        assert fast.receive(msg, now) == full.receive(msg, now) == []
        assert (fast._slots[1].low_since == now) is low
        assert fast._slots[1].low_since == full._slots[1].low_since
    assert fast.passes == before
    assert fast.drain_events() == full.drain_events()
    assert fast.servants(now) == full.servants(now)


def test_the_positions_the_reclaim_step_alone_reads_are_the_pilot_the_offer_and_the_draw() -> None:
    """(``Master._reclaim_reads_only`` names them by position in ``_Slot.inputs_as_read``.)"""
    m = Master(WIDE_MARGIN, 0.0, epoch=7)
    s = m._slots[1]
    s.pilot, s.offered, s.measured, s.limit = PilotState.C, 0, 100, 320
    before = s.inputs_as_read(1.0, m.timing, m.config)
    s.pilot, s.offered, s.measured = PilotState.D, 160, 310
    after = s.inputs_as_read(1.0, m.timing, m.config)
    changed = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
    assert changed == sorted(_RECLAIM_READS)
    assert after[_AS_READ_PILOT] is PilotState.D
    assert after[_AS_READ_OFFERED] is True
    assert after[_AS_READ_DRAW] == (True, False)


def test_a_car_that_starts_charging_on_its_grant_only_starts_the_reclaim_timer_without_a_pass() -> None:
    """After a settled pass, the STATUS of a granted car going from B to C, offering and drawing little yet,
    changes only what the reclaim step reads (no car paused, the same want): it starts the timer itself, with
    no pass, as the full paths' pass does."""
    fast, full, units, now = granted_pair(Config(limit_da=2000, servants=SERVANTS, timing=Timing()), PilotState.B)
    before = fast.passes
    now += 0.5
    msg = units.message(Report(1, PilotState.C, 320, 40, True, False))
    assert msg is not None
    assert fast.receive(msg, now) == full.receive(msg, now) == []
    assert fast.passes == before
    assert fast._slots[1].low_since == full._slots[1].low_since == now
    assert fast.drain_events() == full.drain_events()
    assert fast.servants(now) == full.servants(now)
