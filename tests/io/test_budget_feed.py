"""The budget feed: what the sources' threads queued reaches the master on the loop thread, the limit goes out.

Fake sources stand in for the meter thread and paho's thread (their queues), a recording master for
the sans-IO one; no sleeps, no clock: every call gets its ``now``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from dataclasses import field

import can

from busshare.core.budget import Budget
from busshare.core.budget import BudgetPolicy
from busshare.core.budget import MainsReading
from busshare.core.config import parse_config
from busshare.core.currents import PhaseCurrents
from busshare.core.meter_maps import FailureKind
from busshare.core.meter_maps import MeterEvent
from busshare.core.meter_maps import MeterFailure
from busshare.core.meter_maps import MeterReading
from busshare.core.setpoint import LimitSource
from busshare.core.setpoint import Setpoint
from busshare.core.setpoint import SetpointRejected
from busshare.core.setpoint import SetpointWithdrawn
from busshare.devtools.bench import BenchHardware
from busshare.frames import Message
from busshare.frames import SetLimit
from busshare.io.budget_feed import BudgetFeed
from busshare.io.budget_feed import FeedEventKind
from busshare.io.budget_feed import mains_reading_of
from busshare.io.mqtt import BrokerConnected
from busshare.io.mqtt import BrokerLost
from busshare.io.mqtt import MqttEvent
from busshare.io.runtime import Record
from busshare.io.runtime import Runtime
from busshare.master import Master
from busshare.protocol.pilot import PilotState
from busshare.servant import Servant
from busshare.transport.can import CanTransport
from tests.support.site_files import site_toml

CUT = SetLimit(1, 1, 60, 60, 7)


@dataclass
class FakeMeter:
    queued: list[MeterEvent] = field(default_factory=list)
    running: bool = False
    starts: int = 0
    stops: int = 0

    def start(self) -> FakeMeter:
        self.running, self.starts = True, self.starts + 1
        return self

    def stop(self) -> None:
        self.running, self.stops = False, self.stops + 1

    def drain(self) -> list[MeterEvent]:
        out, self.queued = self.queued, []
        return out


@dataclass
class FakeLink:
    queued: list[MqttEvent] = field(default_factory=list)
    published: list[tuple[int, LimitSource]] = field(default_factory=list)
    running: bool = False

    def start(self) -> FakeLink:
        self.running = True
        return self

    def stop(self) -> None:
        self.running = False

    def drain(self) -> list[MqttEvent]:
        out, self.queued = self.queued, []
        return out

    def publish_limit(self, limit_da: int, source: LimitSource) -> bool:
        self.published.append((limit_da, source))
        return True

    @property
    def connected(self) -> bool:
        return self.running


class RecordingMaster:
    """Records each budget input with its ``now``; a mains reading answers with a cut."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, float]] = []
        self.budget = Budget(180, LimitSource.FALLBACK, True, 180, None, None, 0)

    def mains_reading(self, reading: MainsReading, now: float) -> list[Message]:
        self.calls.append(("mains_reading", reading, now))
        return [CUT]

    def mains_failed(self, now: float, detail: str) -> list[Message]:
        self.calls.append(("mains_failed", detail, now))
        return []

    def setpoint(self, limit_da: int, ttl_s: float | None, now: float) -> list[Message]:
        self.calls.append(("setpoint", (limit_da, ttl_s), now))
        return []

    def clear_setpoint(self, now: float) -> list[Message]:
        self.calls.append(("clear_setpoint", None, now))
        return []


def feed() -> tuple[BudgetFeed, RecordingMaster, FakeMeter, FakeLink]:
    master, meter, link = RecordingMaster(), FakeMeter(), FakeLink()
    return BudgetFeed(master, meter=meter, link=link), master, meter, link


def test_a_reading_takes_the_sign_of_its_phase_power() -> None:
    r = MeterReading(3.0, (100, 50, 20), (2300.0, -1150.0, 0.0))
    assert mains_reading_of(r) == MainsReading(3.0, PhaseCurrents((100, -50, 20)))
    assert mains_reading_of(MeterReading(4.0, (70,), None)) == MainsReading(4.0, PhaseCurrents((70,)))


def test_queued_inputs_reach_the_master_at_the_loops_now_and_their_frames_are_returned() -> None:
    f, master, meter, link = feed()
    meter.queued += [MeterReading(9.8, (100, 50, 20), (1.0, 1.0, 1.0)),
                     MeterFailure(9.9, FailureKind.TIMEOUT, "no reply")]
    link.queued += [Setpoint(9.7, 260, 5.0), SetpointWithdrawn(9.75)]
    assert f.service(10.0) == [CUT]  # the cut of the reading, to be sent in this step
    assert master.calls == [
        ("mains_reading", MainsReading(9.8, PhaseCurrents((100, 50, 20))), 10.0),
        ("mains_failed", "timeout: no reply", 10.0),
        ("setpoint", (260, 5.0), 10.0),
        ("clear_setpoint", None, 10.0),
    ]
    assert f.service(10.05) == [] and len(master.calls) == 4  # each input once


def test_the_links_own_news_are_events_not_inputs() -> None:
    f, master, _, link = feed()
    link.queued += [BrokerLost(1.0, "cannot connect to 127.0.0.1:1883"), BrokerConnected(2.0, "127.0.0.1:1883"),
                    SetpointRejected(3.0, "empty payload", "")]
    f.service(3.5)
    assert master.calls == []
    events = f.drain_events()
    assert [(e.t, e.kind) for e in events] == [(1.0, FeedEventKind.BROKER_LOST), (2.0, FeedEventKind.BROKER_CONNECTED),
                                                (3.0, FeedEventKind.SETPOINT_REJECTED)]
    assert "cannot connect to 127.0.0.1:1883" in events[0].detail and "empty payload" in events[2].detail
    assert f.drain_events() == []


def test_the_limit_is_published_on_every_change_of_limit_or_source_and_only_then() -> None:
    f, master, _, link = feed()
    f.service(0.0)
    f.service(0.05)
    assert link.published == [(180, LimitSource.FALLBACK)]
    master.budget = Budget(180, LimitSource.METER, False, 320, 200, 10, 0)  # same amps, another source
    f.service(0.1)
    master.budget = Budget(320, LimitSource.STATIC, False, 320, 400, 10, 0)
    f.service(0.15)
    f.service(0.2)
    assert link.published == [(180, LimitSource.FALLBACK), (180, LimitSource.METER), (320, LimitSource.STATIC)]


def test_start_and_stop_are_idempotent_and_a_feed_without_sources_is_inert() -> None:
    f, _, meter, link = feed()
    f.start()
    f.start()
    assert meter.running and link.running and meter.starts == 1
    f.stop()
    f.stop()
    assert not meter.running and not link.running and meter.stops == 1
    bare = BudgetFeed(RecordingMaster())
    bare.start()
    assert bare.service(1.0) == [] and bare.drain_events() == []
    bare.stop()


# -- the real master, on python-can's virtual bus, stepped on a virtual clock --------------------------

BUDGET_SITE = site_toml((1, 2, 3), breaker_a=40, max_a=16) + """
[budget]
main_limit_a = 63.0
margin_a = 2.0
fallback_a = 18.0
raise_hold_s = 6.5
raise_step_a = 20.0
[budget.meter]
kind = "sdm630"
tcp = "127.0.0.1:5020"
[budget.mqtt]
broker = "127.0.0.1:1883"
"""
_channels = itertools.count()


class BudgetSite:
    """A master fed by fake sources and three bench servants (pilot C, 0 A measured) on one virtual channel."""

    def __init__(self) -> None:
        config = parse_config(BUDGET_SITE)
        channel = f"busshare-budget-feed-{next(_channels)}"
        self.meter, self.link = FakeMeter(), FakeLink()
        self.master = Master(config, 0.0, epoch=5, budget=BudgetPolicy.from_config(config, 0.0))
        self.feed = BudgetFeed(self.master, meter=self.meter, link=self.link)
        self.records: list[Record] = []
        self.runtimes = [Runtime(self.master, CanTransport(can.Bus(interface="virtual", channel=channel)),
                                 on_record=self.records.append, status_interval=1.0, feed=self.feed)]
        for sc in config.servants:
            self.runtimes.append(Runtime(Servant(sc, config.timing, 0.0),
                                         CanTransport(can.Bus(interface="virtual", channel=channel)),
                                         hardware=BenchHardware(PilotState.C, 0, log=lambda line: None)))
        self.t = 0.0

    def run(self, seconds: float, house: tuple[int, int, int] = (50, 50, 50)) -> None:
        """Step every 50 ms; the meter thread queues a reading of ``house`` every second."""
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.t = round(self.t + 0.05, 6)
            if round(self.t * 20) % 20 == 0:
                self.meter.queued.append(MeterReading(self.t, house, (1000.0, 1000.0, 1000.0)))
            for r in self.runtimes:
                r.pump(self.t)

    def close(self) -> None:
        for r in self.runtimes:
            r.transport.shutdown()


def test_a_reading_that_shows_an_overload_is_cut_in_the_same_step_and_the_limit_published() -> None:
    site = BudgetSite()
    try:
        assert site.link.published == []
        site.run(0.05)
        assert site.link.published == [(180, LimitSource.FALLBACK)]  # waiting for the first reading
        site.run(15.0)  # a reading every second, the room held: raised to the static limit
        assert (site.master.budget.limit_da, site.master.budget.source) == (320, LimitSource.STATIC)
        assert site.link.published[-1] == (320, LimitSource.STATIC)
        status = [r for r in site.records if r.get("record") == "status"][-1]
        assert status["limit_a"] == 32.0 and status["budget"]["source"] == "static"
        assert status["budget"]["broker"] == "away"  # the fake link was never started (pump, not run)

        # the house jumps to 55 A on L1: 63 - 2 - 55 = 6 A left, cut in the step that takes the reading
        mark = len(site.records)
        site.t = round(site.t + 0.05, 6)
        site.meter.queued.append(MeterReading(site.t, (550, 100, 100), (12000.0, 2000.0, 2000.0)))
        site.runtimes[0].pump(site.t)
        now = [r for r in site.records[mark:] if r.get("t") == site.t]
        assert [r["event"] for r in now if r.get("event") == "budget-lowered"]
        assert [r for r in now if r.get("event") == "cut"]
        assert site.master.budget.limit_da == 60
        assert site.link.published[-1] == (60, LimitSource.METER)

        # a setpoint from the broker's thread, taken on the loop: the heartbeat carries it
        site.link.queued.append(Setpoint(site.t, 40, 30.0))
        site.run(0.5, house=(550, 100, 100))
        assert site.master.budget.limit_da == 40 and site.link.published[-1] == (40, LimitSource.SETPOINT)
    finally:
        site.close()
