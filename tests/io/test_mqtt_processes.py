"""The MQTT link against a real Mosquitto broker; setpoints from mosquitto_pub, the limit read with mosquitto_sub.

Waits are for real events with generous timeouts; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from busshare.core.setpoint import LimitSource
from busshare.core.setpoint import Setpoint
from busshare.core.setpoint import SetpointRejected
from busshare.core.source_settings import mqtt_settings_from_mapping
from busshare.io.mqtt import BrokerConnected
from busshare.io.mqtt import BrokerLost
from busshare.io.mqtt import MqttBudgetLink
from busshare.io.mqtt import MqttEvent
from tests.support.meterproc import LIMIT_TOPIC
from tests.support.meterproc import SET_TOPIC
from tests.support.meterproc import SITE_ID
from tests.support.meterproc import STATUS_TOPIC
from tests.support.meterproc import WAIT
from tests.support.meterproc import Mosquitto
from tests.support.meterproc import needs_mosquitto
from tests.support.meterproc import wait_for

pytestmark = [
    pytest.mark.slow,
    needs_mosquitto(),
]


def link_to(broker: Mosquitto) -> MqttBudgetLink:
    settings = mqtt_settings_from_mapping({"broker": f"127.0.0.1:{broker.port}", "keepalive_s": 5})
    return MqttBudgetLink(settings, SITE_ID, default_ttl_s=60.0)


def connected(e: MqttEvent) -> bool:
    return isinstance(e, BrokerConnected)


def test_setpoints_from_mosquitto_pub_and_bad_payloads_counted(broker: Mosquitto) -> None:
    with link_to(broker) as link:
        wait_for(link.drain, connected, "a connection")
        broker.pub(SET_TOPIC, "40")
        assert wait_for(link.drain, lambda e: isinstance(e, Setpoint), "a setpoint").limit_da == 400
        broker.pub(SET_TOPIC, '{"limit_a": 16.5, "ttl_s": 30}')
        sp = wait_for(link.drain, lambda e: isinstance(e, Setpoint), "a JSON setpoint")
        assert isinstance(sp, Setpoint) and (sp.limit_da, sp.ttl_s) == (165, 30.0)
        for bad in ["forty", "-3", '{"limit_a": 40, "ttl": 5}', ""]:
            broker.pub(SET_TOPIC, bad)
            rejected = wait_for(link.drain, lambda e: isinstance(e, SetpointRejected), f"{bad!r} rejected")
            assert isinstance(rejected, SetpointRejected) and rejected.payload == bad
        broker.pub(f"busshare/{SITE_ID}/limit/other", "10")  # not subscribed: never seen
        broker.pub(SET_TOPIC, "12")
        last = wait_for(link.drain, lambda e: isinstance(e, Setpoint), "a good setpoint after the bad ones")
        assert isinstance(last, Setpoint) and last.limit_da == 120
        assert (link.stats.received, link.stats.accepted, link.stats.rejected) == (7, 3, 4)


def test_the_limit_is_published_retained_for_any_later_subscriber(broker: Mosquitto) -> None:
    with link_to(broker) as link:
        wait_for(link.drain, connected, "a connection")
        watcher = broker.subscribe(LIMIT_TOPIC)
        try:
            assert link.publish_limit(640, LimitSource.STATIC)
            assert link.publish_limit(183, LimitSource.METER)
            # publishing never waits: once a subscriber has seen the last one, the broker retains it
            wait_for(watcher.new, lambda line: "meter" in line, "the second limit at a subscriber")
        finally:
            watcher.close()
        topic, _, payload = broker.sub_one(LIMIT_TOPIC).partition(" ")
        assert topic == LIMIT_TOPIC and json.loads(payload) == {"limit_a": 18.3, "source": "meter"}


def test_the_status_says_whether_the_retained_limit_is_live(broker: Mosquitto) -> None:
    """A retained limit outlives its master: ``status`` (retained) tells a reader whether it is still enforced."""
    with link_to(broker) as link:
        wait_for(link.drain, connected, "a connection")
        link.publish_limit(640, LimitSource.STATIC)
        assert broker.sub_one(STATUS_TOPIC) == f"{STATUS_TOPIC} online"
    # stopped: a clean disconnect sends no last will, so the link says it itself
    assert broker.sub_one(STATUS_TOPIC) == f"{STATUS_TOPIC} offline"
    assert json.loads(broker.sub_one(LIMIT_TOPIC).partition(" ")[2])["limit_a"] == 64.0  # kept, marked not live


def test_a_process_that_dies_leaves_offline_by_the_brokers_last_will(broker: Mosquitto) -> None:
    script = textwrap.dedent(f"""
        import time
        from busshare.core.source_settings import mqtt_settings_from_mapping
        from busshare.io.mqtt import BrokerConnected, MqttBudgetLink
        settings = mqtt_settings_from_mapping({{"broker": "127.0.0.1:{broker.port}", "keepalive_s": 5}})
        link = MqttBudgetLink(settings, {SITE_ID!r}, default_ttl_s=60.0).start()
        while not any(isinstance(e, BrokerConnected) for e in link.drain()):
            time.sleep(0.05)
        print("up", flush=True)
        time.sleep(3600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    watcher = broker.subscribe(STATUS_TOPIC)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        wait_for(watcher.new, lambda line: line.endswith(" online"), "online from the running process")
        os.kill(proc.pid, signal.SIGKILL)  # no stop(), no DISCONNECT: only the broker can tell
        proc.wait(WAIT)
        # the broker publishes the will when the connection drops without a DISCONNECT (or stays silent 1.5 keepalives)
        wait_for(watcher.new, lambda line: line.endswith(" offline"), "the last will's offline")
    finally:
        watcher.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)


def test_a_lost_broker_blocks_nothing_and_the_latest_limit_is_republished(broker: Mosquitto) -> None:
    with link_to(broker) as link:
        wait_for(link.drain, connected, "a connection")
        link.publish_limit(400, LimitSource.SETPOINT)
        broker.stop()
        lost = wait_for(link.drain, lambda e: isinstance(e, BrokerLost), "the loss reported")
        assert isinstance(lost, BrokerLost) and str(broker.port) in lost.reason
        assert link.publish_limit(240, LimitSource.FALLBACK) is False  # returns at once, raises nothing
        broker.start()  # same port; no persistence: the broker has forgotten every retained message
        wait_for(link.drain, connected, "a reconnection")
        assert json.loads(broker.sub_one(LIMIT_TOPIC).partition(" ")[2]) == {"limit_a": 24.0, "source": "fallback"}
        broker.pub(SET_TOPIC, "10")  # subscribed again after the reconnect
        wait_for(link.drain, lambda e: isinstance(e, Setpoint), "a setpoint after the reconnect")
        assert link.stats.losses == 1 and link.stats.connects == 2


def test_the_link_starts_before_its_broker_and_reports_it_once(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    broker.stop()
    try:
        with link_to(broker) as link:
            lost = wait_for(link.drain, lambda e: isinstance(e, BrokerLost), "cannot connect reported")
            assert isinstance(lost, BrokerLost) and "cannot connect" in lost.reason
            assert link.publish_limit(100, LimitSource.STATIC) is False
            broker.start()
            wait_for(link.drain, connected, "a connection once the broker is up")
            assert link.stats.losses == 1  # one report for the whole outage, not one per retry
            assert json.loads(broker.sub_one(LIMIT_TOPIC).partition(" ")[2])["limit_a"] == 10.0
    finally:
        broker.stop()


def test_a_retained_setpoint_is_taken_on_connect(broker: Mosquitto) -> None:
    broker.pub(SET_TOPIC, '{"limit_a": 20, "ttl_s": 120}', retain=True)
    with link_to(broker) as link:
        sp = wait_for(link.drain, lambda e: isinstance(e, Setpoint), "the retained setpoint")
        assert isinstance(sp, Setpoint) and (sp.limit_da, sp.ttl_s) == (200, 120.0)
