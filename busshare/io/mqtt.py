"""The MQTT edge of the live budget (paho-mqtt 2.x): setpoints in, the effective limit out.

``MqttBudgetLink`` subscribes to ``busshare/<site>/limit/set`` and turns each message into a
``Setpoint`` or a ``SetpointRejected`` (``core.setpoint.parse_setpoint``: a bad payload is counted
and reported, never acted on).  ``publish_limit`` sends ``{"limit_a": ..., "source": ...}`` retained
to ``busshare/<site>/limit``, and the latest one again after every reconnect, so the broker
always holds the current limit.  ``busshare/<site>/status`` (retained) says whether that limit is live:
``online`` from each connect, ``offline`` when the link stops, and the broker's last will publishes
``offline`` when the process dies (its connection drops with no DISCONNECT, or is silent 1.5 keepalives), so nobody reads a dead master's limit as current.

paho's network thread does all the socket work (``connect_async`` + ``loop_start``): nothing here
blocks the node's loop or raises into it.  A lost broker is a ``BrokerLost`` event; paho keeps
reconnecting (1 s doubling to 30 s) and the setpoint meanwhile simply goes stale, which the
budget policy handles with its time-to-live.  Events go to ``sink`` (called in paho's thread)
or to a queue emptied with ``drain()``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from ..core.counters import Counts
from ..core.setpoint import OFFLINE
from ..core.setpoint import ONLINE
from ..core.setpoint import LimitSource
from ..core.setpoint import Setpoint
from ..core.setpoint import SetpointRejected
from ..core.setpoint import SetpointWithdrawn
from ..core.setpoint import Topics
from ..core.setpoint import limit_payload
from ..core.setpoint import parse_setpoint
from ..core.source_settings import MqttSettings
from .sink import EventSink

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
QOS = 1
OFFLINE_WAIT_S = 2.0  # how long ``stop`` waits for its ``offline`` to reach the broker


@dataclass(frozen=True)
class BrokerConnected:
    """Connected and subscribed to the setpoint topic."""

    t: float
    broker: str


@dataclass(frozen=True)
class BrokerLost:
    t: float
    reason: str


MqttEvent = Setpoint | SetpointWithdrawn | SetpointRejected | BrokerConnected | BrokerLost
Sink = Callable[[MqttEvent], None]


@dataclass
class MqttStats(Counts):
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    connects: int = 0
    losses: int = 0
    published: int = 0
    not_published: int = 0  # the broker was away: the latest limit goes out on the next connect


class MqttBudgetLink:
    """One site's setpoint subscription and limit publication."""

    def __init__(self, settings: MqttSettings, site_id: str, *, default_ttl_s: float,
                 clock: Callable[[], float] = time.monotonic, sink: Sink | None = None) -> None:
        self.settings = settings
        self.topics = Topics(site_id)  # ValueError for a site id that is not one topic level
        self.default_ttl_s = default_ttl_s
        self.clock = clock
        self.stats = MqttStats()
        self._events: EventSink[MqttEvent] = EventSink(sink)
        self._lock = threading.Lock()
        self._latest: bytes | None = None  # the limit payload to (re)publish
        client_id = settings.client_id or f"busshare-{site_id}-{secrets.token_hex(3)}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            self._client.tls_set(ca_certs=settings.ca_file)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        # a process that dies without stopping the link: the broker says the limit is no longer live
        self._client.will_set(self.topics.status, OFFLINE, qos=QOS, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._started = False
        self._down_reported = False  # one BrokerLost per outage, not one per reconnect attempt

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> MqttBudgetLink:
        """Connect in the background: returns at once, even with no broker (paho retries)."""
        broker = self.settings.broker
        self._client.connect_async(broker.host, broker.port, keepalive=self.settings.keepalive_s)
        self._client.loop_start()
        self._started = True
        return self

    def stop(self) -> None:
        """Say ``offline`` (a clean disconnect sends no last will), then disconnect; waits at most
        ``OFFLINE_WAIT_S`` for the broker."""
        if self._started:
            if self._client.is_connected():
                info = self._client.publish(self.topics.status, OFFLINE, qos=QOS, retain=True)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    try:
                        info.wait_for_publish(OFFLINE_WAIT_S)
                    except (RuntimeError, ValueError):
                        pass  # the broker went away meanwhile: its last will says offline
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False

    def __enter__(self) -> MqttBudgetLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    # -- out ----------------------------------------------------------------------

    def publish_limit(self, limit_da: int, source: LimitSource) -> bool:
        """Publish the effective limit (retained).  Never blocks; False while the broker is away
        (the latest value is published when it is back)."""
        payload = limit_payload(limit_da, source)
        with self._lock:
            self._latest = payload
            if not self._client.is_connected():
                self.stats.not_published += 1
                return False
            return self._publish(payload)

    def _publish(self, payload: bytes) -> bool:
        info = self._client.publish(self.topics.limit, payload, qos=QOS, retain=True)
        ok = info.rc == mqtt.MQTT_ERR_SUCCESS
        if ok:
            self.stats.published += 1
        else:
            self.stats.not_published += 1
        return ok

    # -- in (paho's thread) -------------------------------------------------------

    def _emit(self, event: MqttEvent) -> None:
        self._events.emit(event)

    def drain(self) -> list[MqttEvent]:
        """Events since the last drain (when no sink was given)."""
        return self._events.drain()

    def _lost(self, reason: str) -> None:
        if not self._down_reported:
            self._down_reported = True
            self.stats.losses += 1
            self._emit(BrokerLost(self.clock(), reason))

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: object) -> None:
        if reason_code.is_failure:
            self._lost(f"{self.settings.broker} refused the connection: {reason_code}")
            return
        self._down_reported = False
        self.stats.connects += 1
        client.subscribe(self.topics.limit_set, qos=QOS)
        client.publish(self.topics.status, ONLINE, qos=QOS, retain=True)
        with self._lock:
            if self._latest is not None:
                self._publish(self._latest)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reason_codes: list[ReasonCode],
                      properties: object) -> None:
        """Connected *and* subscribed: from here on a setpoint is received."""
        if any(rc.is_failure for rc in reason_codes):
            self._lost(f"{self.settings.broker} refused the subscription to {self.topics.limit_set}")
            return
        self._emit(BrokerConnected(self.clock(), str(self.settings.broker)))

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: object) -> None:
        self._lost(f"disconnected from {self.settings.broker}: {reason_code}")

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._lost(f"cannot connect to {self.settings.broker}")

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        if message.topic != self.topics.limit_set:
            return  # not subscribed: a broker bug, nothing to act on
        event = parse_setpoint(bytes(message.payload), self.clock(), self.default_ttl_s)
        if isinstance(event, Setpoint | SetpointWithdrawn):
            self.stats.accepted += 1
        else:
            self.stats.rejected += 1
        self._emit(event)
