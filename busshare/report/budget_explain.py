"""What a site file's moving budget means, in plain words and as data (``busshare check-config``).

``budget_record`` gives the ``budget`` object of check-config's JSON record: every setting
in the record's units (``*_a``, ``*_s``), the MQTT topics with the real site id, and
``meaning``, the lines the text output prints.  Text and JSON come from this one place.
"""

from __future__ import annotations

from typing import Any

from ..core.budget_config import BudgetConfig
from ..core.config import Config
from ..core.meter_maps import MeterKind
from ..core.problems import seconds_text
from ..core.setpoint import DEFAULT_SITE_ID
from ..core.setpoint import Topics
from ..core.source_settings import MeterSettings
from ..core.source_settings import MqttSettings
from ..core.source_settings import SerialLine

_KINDS = {MeterKind.SDM630: "an Eastron SDM630 (three-phase)", MeterKind.SDM120: "an Eastron SDM120 (single-phase)"}


def _a(da: int) -> str:
    return f"{da / 10:.1f} A"


def _s(seconds: float) -> str:
    return f"{seconds_text(seconds)} s"


def _meter_kind(m: MeterSettings) -> str:
    return _KINDS.get(m.kind, f"a generic meter ({m.meter_map.phases} phase{'s' if m.meter_map.phases > 1 else ''}, "
                              "its registers from the site file)")


def _link(m: MeterSettings) -> str:
    if isinstance(m.link, SerialLine):
        line = m.link
        return f"Modbus RTU on {line.port} at {line.baud} baud 8{line.parity.value}{line.stopbits}"
    return f"Modbus TCP at {m.link}"


def _meter_record(m: MeterSettings) -> dict[str, Any]:
    serial = m.link if isinstance(m.link, SerialLine) else None
    return {
        "kind": m.kind.value,
        "phases": m.meter_map.phases,
        "tcp": None if serial is not None else str(m.link),
        "serial": None if serial is None else {"port": serial.port, "baud": serial.baud,
                                               "parity": serial.parity.value, "stopbits": serial.stopbits},
        "device_id": m.device_id,
        "poll_s": m.poll_s,
        "timeout_s": m.timeout_s,
        "request_timeout_s": m.request_timeout_s,
        "frozen_s": m.frozen_s,
    }


def _mqtt_record(m: MqttSettings, topics: Topics) -> dict[str, Any]:
    return {
        "broker": str(m.broker),
        "tls": m.tls,
        "username": m.username,
        "client_id": m.client_id,
        "keepalive_s": m.keepalive_s,
        "setpoint_topic": topics.limit_set,
        "limit_topic": topics.limit,
    }


def _meaning(cfg: Config, b: BudgetConfig, topics: Topics) -> list[str]:
    static = _a(cfg.limit_da)
    sources = [s for s, on in (("what the mains meter leaves", b.meter), ("a fresh setpoint", b.mqtt)) if on]
    lines = [f"the EVSEs share the least of the static limit {static}" + "".join(
        f"{' and' if i == len(sources) - 1 else ','} {s}" for i, s in enumerate(sources))]
    if b.main_limit_da is not None:
        free = b.main_limit_da - b.margin_da
        lines.append(f"main service {_a(b.main_limit_da)} per phase, {_a(b.margin_da)} kept free: the EVSEs get at "
                     f"most {_a(free)} minus what the house draws on its most loaded phase")
    failsafes = sum(s.failsafe_da for s in cfg.servants)
    lines.append(f"fallback {_a(b.fallback_da)}: what the EVSE circuit may always take, even with the house at its "
                 "maximum; the limit drops to it while a source is stale"
                 + (" (and until the first good meter reading)" if b.meter else "")
                 + f"; the standalone failsafe currents ({_a(failsafes)}) fit under it, so servants left "
                 "without a master stay within it")
    if b.meter is not None:
        m = b.meter
        frozen = f"; registers unchanged for {_s(m.frozen_s)} count as a failed read" if m.frozen_s else ""
        lines.append(f"mains meter: {_meter_kind(m)} over {_link(m)}, device id {m.device_id}, read every "
                     f"{_s(m.poll_s)} (each read times out after {_s(m.request_timeout_s)}); no good reading for "
                     f"{_s(m.timeout_s)}: fall back to {_a(b.fallback_da)}{frozen}")
    if b.mqtt is not None:
        q = b.mqtt
        login = f"user {q.username}" if q.username else "no login"
        lines.append(f"MQTT broker {q.broker} ({'TLS' if q.tls else 'no TLS'}, {login}): setpoints in on "
                     f"{topics.limit_set} (valid {_s(b.setpoint_ttl_s)} unless they say ttl_s), the effective limit "
                     f"out, retained, on {topics.limit}")
    lines.append(f"a lower budget is applied at once (what is counted fits it again within "
                 f"{_s(cfg.timing.budget_compliance_bound)}); a higher one only after {_s(b.raise_hold_s)} of room (up to "
                 f"{_s(b.raise_hold_max_s)} when the load cycles), in steps of at most {_a(b.raise_step_da)}, "
                 f"{_a(b.deadband_da)} under the measured room")
    return lines


def budget_record(cfg: Config) -> dict[str, Any] | None:
    """The ``budget`` object of a valid installation's config record (None: a fixed limit, no [budget])."""
    b = cfg.budget
    if b is None:
        return None
    topics = Topics(cfg.site_id)
    return {
        "main_limit_a": None if b.main_limit_da is None else b.main_limit_da / 10,
        "margin_a": b.margin_da / 10,
        "fallback_a": b.fallback_da / 10,
        "setpoint_ttl_s": b.setpoint_ttl_s,
        "raise_hold_s": b.raise_hold_s,
        "raise_hold_max_s": b.raise_hold_max_s,
        "raise_step_a": b.raise_step_da / 10,
        "deadband_a": b.deadband_da / 10,
        "resolution_a": b.resolution_da / 10,
        "align_s": b.align_s,
        "compliance_window_s": round(cfg.timing.budget_compliance_bound, 3),
        "meter": None if b.meter is None else _meter_record(b.meter),
        "mqtt": None if b.mqtt is None else _mqtt_record(b.mqtt, topics),
        "meaning": _meaning(cfg, b, topics),
    }


def budget_notes(cfg: Config) -> list[str]:
    """What a valid budget may not do as its installer expects (check-config's notes)."""
    b = cfg.budget
    if b is None:
        return []
    notes = []
    if b.meter is None and b.mqtt is None:
        notes.append("[budget] has no [budget.meter] and no [budget.mqtt]: the limit never moves from the static "
                     f"limit {_a(cfg.limit_da)}")
    if b.mqtt is not None and cfg.site_id == DEFAULT_SITE_ID:
        notes.append(f'the site id is the default "{DEFAULT_SITE_ID}": give [site] id so that sites sharing a broker '
                     "do not share topics")
    if b.fallback_da == 0:
        notes.append("fallback 0 A: every car pauses while a source is stale")
    return notes
