"""External setpoints and the published limit over MQTT: the topic tree and the payloads (pure).

Topics live under ``busshare/<site id>/``.  The limit topics and the status are built; the rest of
the tree is reserved so the full MQTT and Home Assistant integration fits (docs/BUDGET.md)::

    busshare/<site>/limit/set        in   a setpoint: 40 or {"limit_a": 40.0, "ttl_s": 60};
                                          {"limit_a": null} withdraws it
    busshare/<site>/limit            out  retained {"limit_a": 40.0, "source": "setpoint"}
    busshare/<site>/status           out  retained online/offline (offline: the broker's last will)
    busshare/<site>/servant/<n>/...  out  (later) each EVSE's state
    homeassistant/...                out  (later) discovery

A payload is parsed here, never trusted: a bad one is a ``SetpointRejected`` (counted and
reported by the caller) and nothing else happens.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum

from ..frames import MAX_CIRCUIT_DA
from .problems import Invalid
from .problems import string

TOPIC_ROOT = "busshare"
DEFAULT_SITE_ID = "site"  # [site] id when the file gives none
MAX_SITE_ID_BYTES = 64  # one MQTT topic level, short enough to type
MAX_PAYLOAD = 256  # bytes: a setpoint is a number or a small JSON object
MAX_TTL_S = 86400.0  # a setpoint lives at most a day; an energy manager renews it
ONLINE = b"online"  # busshare/<site>/status while the link is up
OFFLINE = b"offline"  # ... after it stopped, or the broker's last will when it died


class LimitSource(StrEnum):
    """Where the effective limit comes from (``Budget.source``, and the ``source`` of the published limit)."""

    STATIC = "static"  # the site file's circuit limit
    METER = "meter"  # the headroom the mains meter leaves
    SETPOINT = "setpoint"  # an external setpoint, while fresh
    FALLBACK = "fallback"  # a source is stale or failed: degraded


def site_id_problem(site_id: str) -> str | None:
    """Why ``site_id`` cannot be one MQTT topic level (``busshare/<id>/limit``), or None.

    The words read after the id as written: ``"a/b" contains '/' (...)``.
    """
    if not site_id:
        return "is empty"
    bad = sorted({c for c in site_id if c in "/+#\0" or not c.isprintable()})
    if bad:
        return f"contains {', '.join(repr(c) for c in bad)} (the site id is one MQTT topic level)"
    if len(site_id.encode("utf-8")) > MAX_SITE_ID_BYTES:
        return f"is longer than {MAX_SITE_ID_BYTES} bytes"
    return None


def site_id(value: object) -> str:
    """``[site] id`` as written -> the site id; Invalid when it is not one MQTT topic level."""
    why = site_id_problem(string(value))
    if why is not None:
        raise Invalid(why)
    return str(value)


@dataclass(frozen=True)
class Topics:
    """The topics of one site."""

    site_id: str

    def __post_init__(self) -> None:
        why = site_id_problem(self.site_id)
        if why is not None:
            raise ValueError(f"site id {self.site_id!r} {why}")

    @property
    def base(self) -> str:
        return f"{TOPIC_ROOT}/{self.site_id}"

    @property
    def limit(self) -> str:
        return f"{self.base}/limit"

    @property
    def limit_set(self) -> str:
        return f"{self.base}/limit/set"

    @property
    def status(self) -> str:
        """Whether the retained limit is live: ``online`` while the master's link is up, ``offline`` after it
        stops or (the broker's last will) dies; Home Assistant's availability payloads."""
        return f"{self.base}/status"


@dataclass(frozen=True)
class Setpoint:
    """An accepted setpoint: at most ``limit_da`` from ``t`` until ``t + ttl_s``."""

    t: float  # when it arrived
    limit_da: int
    ttl_s: float

    @property
    def expires(self) -> float:
        return self.t + self.ttl_s


@dataclass(frozen=True)
class SetpointWithdrawn:
    """``{"limit_a": null}``: the energy manager is done; the limit returns to the other sources.

    Without it, a setpoint that is not renewed runs out into the fallback and stays there, which is
    right for a manager that died and wrong for one that stopped on purpose."""

    t: float


@dataclass(frozen=True)
class SetpointRejected:
    t: float
    reason: str
    payload: str  # the start of the payload, printable, for the report


def _excerpt(payload: bytes) -> str:
    text = payload[:48].decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else "?" for c in text) + ("..." if len(payload) > 48 else "")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _limit_da(value: object) -> int | str:
    """Amps -> 0.1 A rounded down (a setpoint is a ceiling), or why not."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"limit_a {value!r} is not a number of amps"
    if value < 0:
        return f"limit_a {value:g} is negative"
    if value > MAX_CIRCUIT_DA or math.floor(round(value * 10, 6)) > MAX_CIRCUIT_DA:  # the first: no overflow
        return f"limit_a {value:g} is above {MAX_CIRCUIT_DA / 10:g} A"
    return math.floor(round(value * 10, 6))


def parse_setpoint(payload: bytes, t: float,
                   default_ttl_s: float) -> Setpoint | SetpointWithdrawn | SetpointRejected:
    """A ``limit/set`` payload: a number of amps, ``{"limit_a": 40.0, "ttl_s": 60}``, or
    ``{"limit_a": null}`` to withdraw the setpoint."""

    def reject(reason: str) -> SetpointRejected:
        return SetpointRejected(t, reason, _excerpt(payload))

    if not payload.strip():
        return reject("empty payload")
    if len(payload) > MAX_PAYLOAD:
        return reject(f"payload of {len(payload)} bytes (at most {MAX_PAYLOAD})")
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        return reject("payload is not UTF-8")
    except (ValueError, RecursionError) as exc:
        return reject(f"not a number or a JSON object: {str(exc).splitlines()[0]}")
    ttl: object = default_ttl_s
    if isinstance(doc, dict):
        unknown = sorted(set(doc) - {"limit_a", "ttl_s"})
        if unknown:
            return reject(f"unknown key {unknown[0]!r} (known: limit_a, ttl_s)")
        if "limit_a" not in doc:
            return reject("missing limit_a")
        value: object = doc["limit_a"]
        if value is None:
            return reject("ttl_s with a withdrawal (limit_a null)") if "ttl_s" in doc else SetpointWithdrawn(t)
        ttl = doc.get("ttl_s", default_ttl_s)
    elif isinstance(doc, int | float) and not isinstance(doc, bool):
        value = doc
    else:
        return reject("not a number or a JSON object")
    da = _limit_da(value)
    if isinstance(da, str):
        return reject(da)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        return reject(f"ttl_s {ttl!r} is not a number of seconds")
    if not 0 < ttl <= MAX_TTL_S:
        return reject(f"ttl_s {ttl:g} must be above 0 and at most {MAX_TTL_S:g} s")
    return Setpoint(t, da, float(ttl))


def limit_payload(limit_da: int, source: LimitSource) -> bytes:
    """The retained ``busshare/<site>/limit`` message."""
    return json.dumps({"limit_a": limit_da / 10, "source": source.value}).encode()
