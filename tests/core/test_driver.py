"""The one node driver (busshare.core.driver): the order every caller follows after a call into a node."""

from __future__ import annotations

from collections.abc import Sequence

from busshare.core.config import Config
from busshare.core.config import ServantConfig
from busshare.core.config import Timing
from busshare.core.driver import FEEDBACK_ROUNDS
from busshare.core.driver import settle
from busshare.core.driver import settle_servant
from busshare.core.events import Event
from busshare.core.events import EventKind
from busshare.core.node import ServantNode
from busshare.frames import Message
from busshare.frames import Release
from busshare.frames import ReleaseReason
from busshare.master import Master
from busshare.protocol.pilot import PilotState
from busshare.servant import Servant

MSG = Release(1, 0, ReleaseReason.UNPLUGGED)


class Recorder:
    """A host that writes down what the driver asks of it, in order."""

    def __init__(self, readings: list[tuple[PilotState, int | None]] | None = None) -> None:
        self.offer_da = -1  # (nothing applied yet: no call is quiet)
        self.ev_stopped = False
        self.changed = False
        self.calls: list[str] = []
        self.readings = list(readings or [])

    def apply(self, now: float) -> None:
        self.calls.append("apply")

    def send(self, msgs: list[Message], now: float) -> None:
        self.calls.append(f"send {len(msgs)}")

    def record(self, events: Sequence[Event], now: float) -> None:
        self.calls.append(f"record {[e.kind.value for e in events]}")

    def schedule(self, deadline: float, now: float) -> None:
        self.calls.append(f"schedule {deadline}")

    def reading(self, now: float) -> tuple[PilotState, int | None] | None:
        self.calls.append("reading")
        return self.readings.pop(0) if self.readings else None


class FakeServant:
    """Answers every observe with one frame; an event per call."""

    address = 1
    offer_da = 0
    ev_stopped = False
    in_failsafe = False
    heard_at = None
    requested_da = 0
    limit_da = 0
    last_set_limit = None

    def __init__(self) -> None:
        self.observed: list[tuple[PilotState, int | None]] = []
        self._events: list[Event] = []

    def receive(self, msg: Message, now: float, arrived: float | None = None) -> list[Message]:
        return []

    def tick(self, now: float) -> list[Message]:
        return []

    def shutdown(self, now: float) -> list[Message]:
        return []

    def observe(self, pilot: PilotState, measured_da: int | None, now: float) -> list[Message]:
        self.observed.append((pilot, measured_da))
        self._events.append(Event(now, EventKind.PILOT, None, pilot.name))
        return [MSG]

    def link_down(self, now: float) -> list[Message] | None:
        return None

    def next_deadline(self) -> float:
        return 9.0

    def drain_events(self) -> Sequence[Event]:
        out, self._events = self._events, []
        return out


def test_settle_applies_then_sends_then_drains_then_schedules() -> None:
    host, node = Recorder(), FakeServant()
    node._events.append(Event(0.0, EventKind.CUT, 1, ""))
    settle(node, host, [MSG, MSG], 1.0)
    assert host.calls == ["apply", "send 2", "record ['cut']", "schedule 9.0"]


def test_settle_sends_nothing_when_the_call_returned_nothing() -> None:
    host = Recorder()
    settle(FakeServant(), host, [], 1.0)
    assert host.calls == ["apply", "record []", "schedule 9.0"]


def test_a_changed_reading_is_observed_and_its_answer_applied_then_sent_before_the_events() -> None:
    host, node = Recorder([(PilotState.C, 100)]), FakeServant()
    settle_servant(node, host, [MSG], 1.0)
    assert node.observed == [(PilotState.C, 100)]
    assert host.calls == ["apply", "send 1", "reading", "apply", "send 1", "reading", "record ['pilot']",
                          "schedule 9.0"]


def test_readings_are_fed_back_a_bounded_number_of_times() -> None:
    """A car and a servant that keep answering each other cannot hang the caller; the last offer waits."""
    host, node = Recorder([(PilotState.C, i) for i in range(3 * FEEDBACK_ROUNDS)]), FakeServant()
    settle_servant(node, host, [], 1.0)
    assert len(node.observed) == FEEDBACK_ROUNDS
    assert host.calls.count("apply") == FEEDBACK_ROUNDS  # the first, then one per round but the last
    assert host.calls[-2:] == [f"record {['pilot'] * FEEDBACK_ROUNDS}", "schedule 9.0"]


def test_a_quiet_call_only_sends_drains_and_schedules() -> None:
    """The hardware untouched and holding the offer already: applying and reading could do nothing."""
    host, node = Recorder([(PilotState.C, 100)]), FakeServant()
    host.offer_da = node.offer_da
    node._events.append(Event(0.0, EventKind.CUT, 1, ""))
    settle_servant(node, host, [MSG], 1.0)
    assert host.calls == ["send 1", "record ['cut']", "schedule 9.0"]
    assert node.observed == []


def test_a_call_is_not_quiet_when_the_hardware_was_touched_or_the_offer_moved_or_the_shortcut_is_off() -> None:
    for touched, offer, shortcut in ((True, 0, True), (False, 5, True), (False, 0, False)):
        host, node = Recorder([(PilotState.C, 100)]), FakeServant()
        host.offer_da, host.changed = offer, touched
        settle_servant(node, host, [], 1.0, shortcut)
        assert host.calls[:2] == ["apply", "reading"] and node.observed == [(PilotState.C, 100)]


def test_the_real_nodes_are_what_the_drivers_take() -> None:
    config = Config(limit_da=320, servants=(ServantConfig(1),))
    servant = Servant(ServantConfig(1), Timing(), 0.0)
    assert isinstance(servant, ServantNode)
    assert not isinstance(Master(config, 0.0), ServantNode)
    host = Recorder()
    settle(servant, host, servant.tick(0.0), 0.0)
    assert host.calls[0] == "apply" and host.calls[-1] == f"schedule {servant.next_deadline()}"
