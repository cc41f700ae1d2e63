"""Settings of the live-budget sources, from the site file's ``[budget.meter]`` and ``[budget.mqtt]`` tables.

``meter_settings_from_mapping`` and ``mqtt_settings_from_mapping`` take the parsed TOML table
(a plain mapping) and return frozen settings, or raise ``SettingsError`` listing every problem,
each naming its key path (``budget.meter.poll_s: ...``) so ``check-config`` can print one line
per problem and a program starting up can print the first.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from .meter_maps import BUILT_IN_MAPS, Endian, Function, MeterKind, MeterMap, Register, RegisterType

MODBUS_TCP_PORT = 502
MQTT_PORT = 1883
MQTTS_PORT = 8883
DEFAULT_BAUD = 9600  # Eastron's factory setting


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a setting: its key path from the site file's root, and why."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class SettingsError(ValueError):
    """Every problem found; ``str()`` is the first, one line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(str(problems[0]) if problems else "invalid settings")
        self.problems = tuple(problems)


class Parity(StrEnum):
    NONE = "N"
    EVEN = "E"
    ODD = "O"


@dataclass(frozen=True)
class TcpEndpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SerialLine:
    port: str  # /dev/ttyUSB0, or a pty of the emulated RS-485 line
    baud: int = DEFAULT_BAUD
    parity: Parity = Parity.NONE
    stopbits: int = 1

    def __str__(self) -> str:
        return f"{self.port} {self.baud} 8{self.parity.value}{self.stopbits}"


@dataclass(frozen=True)
class MeterSettings:
    """A mains meter and how to poll it (``[budget.meter]``)."""

    kind: MeterKind
    link: TcpEndpoint | SerialLine
    meter_map: MeterMap
    device_id: int = 1
    poll_s: float = 1.0
    timeout_s: float = 5.0  # no good reading for this long: the budget falls back
    request_timeout_s: float = 1.0  # one Modbus request without a reply is a failed poll
    frozen_s: float = 60.0  # the same registers for longer than this: a failed poll (0 = never)


@dataclass(frozen=True)
class MqttSettings:
    """The MQTT broker (``[budget.mqtt]``)."""

    broker: TcpEndpoint
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # with tls: the CA bundle to trust (default: the system's)
    client_id: str | None = None  # default: busshare-<site id>-<random>
    keepalive_s: int = 30


# ---------------------------------------------------------------------------
# parsing helpers: each records a Problem and returns None when the value is bad


E = TypeVar("E", bound=StrEnum)


class _Reader:
    def __init__(self, table: Mapping[str, object], where: str) -> None:
        self.table = table
        self.where = where
        self.problems: list[Problem] = []

    def bad(self, key: str | None, message: str) -> None:
        self.problems.append(Problem(self.where if key is None else f"{self.where}.{key}", message))

    def unknown(self, known: set[str]) -> None:
        for key in sorted(set(self.table) - known):
            self.bad(key, f"unknown key (known: {', '.join(sorted(known))})")

    def number(self, key: str, default: float, *, positive: bool = True) -> float | None:
        v = self.table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.bad(key, f"{v!r} is not a number of seconds")
            return None
        if v < 0 or (positive and v == 0):
            self.bad(key, f"{v!r} must be {'above' if positive else 'at least'} 0")
            return None
        return float(v)

    def integer(self, key: str, default: int, lo: int, hi: int) -> int | None:
        v = self.table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.bad(key, f"{v!r} must be an integer {lo}-{hi}")
            return None
        return v

    def text(self, key: str) -> str | None:
        v = self.table.get(key)
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip():
            self.bad(key, f"{v!r} must be a non-empty string")
            return None
        return v

    def choice(self, key: str, enum: type[E], default: E, aliases: Mapping[str, E] | None = None) -> E | None:
        v = self.table.get(key, default)
        if isinstance(v, enum):
            return v
        if isinstance(v, str):
            if aliases and v.lower() in aliases:
                return aliases[v.lower()]
            try:
                return enum(v.lower())
            except ValueError:
                pass
        self.bad(key, f"{v!r} is not one of {', '.join(repr(e.value) for e in enum)}")
        return None


def parse_endpoint(text: str, default_port: int, *, listen: bool = False) -> TcpEndpoint:
    """'host:port', 'host', '[v6]:port' or '[v6]' -> TcpEndpoint; ValueError (one line) otherwise.

    ``listen``: port 0 is allowed (a server picks a free port).
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not [ipv6-address]:port")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
        if ":" in host:  # more than one colon: a bare IPv6 address, no port
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"{text!r} is not host:port (write an IPv6 address as [address]:port)") from None
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{text!r} has no host")
    if not port_text:
        return TcpEndpoint(host, default_port)
    lowest = 0 if listen else 1
    if not port_text.isdigit() or not lowest <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be {lowest}-65535")
    return TcpEndpoint(host, int(port_text))


# ---------------------------------------------------------------------------
# [budget.meter]


_METER_KEYS = {"kind", "tcp", "serial", "baud", "parity", "stopbits", "device_id", "poll_s", "timeout_s",
               "request_timeout_s", "frozen_s", "phase"}
_PHASE_KEYS = {"current", "power"}
_REGISTER_KEYS = {"register", "function", "type", "byte_order", "word_order", "scale"}


def _register(r: _Reader, key: str, value: object) -> Register | None:
    if not isinstance(value, Mapping):
        r.bad(key, "must be a table such as { register = 6, type = \"float32\" }")
        return None
    sub = _Reader(value, f"{r.where}.{key}")
    sub.unknown(_REGISTER_KEYS)
    address = sub.integer("register", -1, 0, 0xFFFF) if "register" in value else None
    if "register" not in value:
        sub.bad(None, "missing register (its 0-based address, e.g. 0x0006)")
    function = sub.integer("function", 4, 3, 4)
    rtype = sub.choice("type", RegisterType, RegisterType.FLOAT32)
    byte_order = sub.choice("byte_order", Endian, Endian.BIG)
    word_order = sub.choice("word_order", Endian, Endian.BIG)
    scale = value.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
        sub.bad("scale", f"{scale!r} must be a positive number (value = raw * scale, in A or W)")
        scale = None
    if address is not None and rtype is not None and address + rtype.words - 1 > 0xFFFF:
        sub.bad("register", f"{address} + {rtype.words} registers runs past 65535")
        address = None
    r.problems += sub.problems
    if None in (address, function, rtype, byte_order, word_order, scale) or sub.problems:
        return None
    assert address is not None and function is not None and rtype is not None and byte_order is not None
    assert word_order is not None and scale is not None
    return Register(address, Function(function), rtype, byte_order, word_order, float(scale))


def _generic_map(r: _Reader) -> MeterMap | None:
    phases = r.table.get("phase")
    if phases is None:
        r.bad(None, "kind = \"generic\" needs one [[budget.meter.phase]] table per phase (1 or 3)")
        return None
    if not isinstance(phases, list) or len(phases) not in (1, 3):
        r.bad("phase", "must be 1 or 3 [[budget.meter.phase]] tables (L1, L2, L3 in order)")
        return None
    currents: list[Register | None] = []
    powers: list[Register | None] = []
    for i, t in enumerate(phases):
        where = f"phase[{i}]"
        if not isinstance(t, Mapping):
            r.bad(where, "must be a table")
            currents.append(None)
            continue
        for k in sorted(set(t) - _PHASE_KEYS):
            r.bad(f"{where}.{k}", f"unknown key (known: {', '.join(sorted(_PHASE_KEYS))})")
        if "current" not in t:
            r.bad(where, "missing current = { register = ... }")
            currents.append(None)
        else:
            currents.append(_register(r, f"{where}.current", t["current"]))
        if "power" in t:
            powers.append(_register(r, f"{where}.power", t["power"]))
    if powers and len(powers) != len(phases):
        r.bad("phase", "give a power register for every phase or for none")
        return None
    if any(c is None for c in currents) or any(p is None for p in powers):
        return None
    return MeterMap("generic", tuple(c for c in currents if c is not None), tuple(p for p in powers if p is not None))


def meter_settings_from_mapping(table: Mapping[str, object], where: str = "budget.meter") -> MeterSettings:
    """``[budget.meter]`` as a mapping -> MeterSettings.  Raises SettingsError with every problem."""
    r = _Reader(table, where)
    r.unknown(_METER_KEYS)
    kind = r.choice("kind", MeterKind, MeterKind.GENERIC) if "kind" in table else None
    if "kind" not in table:
        r.bad(None, "missing kind (\"sdm630\", \"sdm120\" or \"generic\")")
    meter_map: MeterMap | None = None
    if kind is MeterKind.GENERIC:
        meter_map = _generic_map(r)
    elif kind is not None:
        meter_map = BUILT_IN_MAPS[kind]
        if "phase" in table:
            r.bad("phase", f"a register table is only for kind = \"generic\" ({kind} has its own map)")
    link: TcpEndpoint | SerialLine | None = None
    tcp, serial_port = r.text("tcp"), r.text("serial")
    if ("tcp" in table) == ("serial" in table):
        r.bad(None, "give tcp = \"host:port\" (Modbus TCP) or serial = \"/dev/ttyUSB0\" (Modbus RTU), one of them")
    elif tcp is not None:
        try:
            link = parse_endpoint(tcp, MODBUS_TCP_PORT)
        except ValueError as exc:
            r.bad("tcp", str(exc))
        for k in ("baud", "parity", "stopbits"):
            if k in table:
                r.bad(k, "only for a serial meter")
    elif serial_port is not None:
        baud = r.integer("baud", DEFAULT_BAUD, 300, 921600)
        parity = r.choice("parity", Parity, Parity.NONE, {"none": Parity.NONE, "even": Parity.EVEN, "odd": Parity.ODD,
                                                        "n": Parity.NONE, "e": Parity.EVEN, "o": Parity.ODD})
        stopbits = r.integer("stopbits", 1, 1, 2)
        if baud is not None and parity is not None and stopbits is not None:
            link = SerialLine(serial_port, baud, parity, stopbits)
    serial_link = "serial" in table
    device_id = r.integer("device_id", 1, 1, 247) if serial_link else r.integer("device_id", 1, 0, 255)
    poll_s = r.number("poll_s", 1.0)
    timeout_s = r.number("timeout_s", 5.0)
    request_default = 1.0 if timeout_s is None else min(1.0, timeout_s / 3)
    request_s = r.number("request_timeout_s", request_default)
    frozen_s = r.number("frozen_s", 60.0, positive=False)
    if poll_s is not None and timeout_s is not None and 2 * poll_s > timeout_s:
        r.bad("poll_s", f"{poll_s:g} s leaves fewer than two polls within timeout_s {timeout_s:g} s: "
                        "one lost reply would already fall back")
    if request_s is not None and timeout_s is not None and request_s > timeout_s:
        r.bad("request_timeout_s", f"{request_s:g} s is longer than timeout_s {timeout_s:g} s")
    if frozen_s and poll_s is not None and frozen_s < 2 * poll_s:
        r.bad("frozen_s", f"{frozen_s:g} s must be 0 (off) or at least two polls ({2 * poll_s:g} s)")
    if r.problems:
        raise SettingsError(r.problems)
    assert kind is not None and link is not None and meter_map is not None and device_id is not None
    assert poll_s is not None and timeout_s is not None and request_s is not None and frozen_s is not None
    return MeterSettings(kind, link, meter_map, device_id, poll_s, timeout_s, request_s, frozen_s)


# ---------------------------------------------------------------------------
# [budget.mqtt]


_MQTT_KEYS = {"broker", "username", "password", "tls", "ca_file", "client_id", "keepalive_s"}


def mqtt_settings_from_mapping(table: Mapping[str, object], where: str = "budget.mqtt") -> MqttSettings:
    """``[budget.mqtt]`` as a mapping -> MqttSettings.  Raises SettingsError with every problem."""
    r = _Reader(table, where)
    r.unknown(_MQTT_KEYS)
    tls = table.get("tls", False)
    if not isinstance(tls, bool):
        r.bad("tls", f"{tls!r} must be true or false")
        tls = False
    ca_file = r.text("ca_file")
    if ca_file is not None and not tls:
        r.bad("ca_file", "only with tls = true")
    broker: TcpEndpoint | None = None
    text = r.text("broker")
    if "broker" not in table:
        r.bad(None, "missing broker = \"host:port\"")
    elif text is not None:
        try:
            broker = parse_endpoint(text, MQTTS_PORT if tls else MQTT_PORT)
        except ValueError as exc:
            r.bad("broker", str(exc))
    username, password = r.text("username"), r.text("password")
    if "password" in table and "username" not in table:
        r.bad("password", "a password needs a username")
    client_id = r.text("client_id")
    keepalive = r.integer("keepalive_s", 30, 5, 3600)
    if r.problems:
        raise SettingsError(r.problems)
    assert broker is not None and keepalive is not None
    return MqttSettings(broker, username, password, tls, ca_file, client_id, keepalive)
