"""Settings of the live-budget sources: ``[budget.meter]`` and ``[budget.mqtt]`` of the site file, as frozen data.

They are read like every other table of the site file, with the one ``Reader`` of
``core.problems``: ``read_meter`` and ``read_mqtt`` turn a table into settings (placeholders
where a value cannot be read, each such value a ``Problem`` with its key path and the value as
written), and ``meter_problems`` and ``mqtt_problems`` check the typed settings (ranges, and the
rules that read several keys), so settings built in code meet the same rules.
``busshare.core.config`` does this for a whole site file; ``meter_settings_from_mapping`` and
``mqtt_settings_from_mapping`` do it for one table and raise ``ConfigError`` for the first problem.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .meter_maps import BUILT_IN_MAPS
from .meter_maps import SDM630
from .meter_maps import Endian
from .meter_maps import Function
from .meter_maps import MeterKind
from .meter_maps import MeterMap
from .meter_maps import Register
from .meter_maps import RegisterType
from .problems import Invalid
from .problems import Problem
from .problems import Reader
from .problems import Table
from .problems import boolean
from .problems import integer
from .problems import key_path
from .problems import member
from .problems import number
from .problems import read_table
from .problems import seconds_text
from .problems import text
from .problems import written

MODBUS_TCP_PORT = 502
MQTT_PORT = 1883
MQTTS_PORT = 8883
DEFAULT_BAUD = 9600  # Eastron's factory setting
MAX_SOURCE_S = 3600.0  # a meter timer longer than an hour is a typo (and no live budget)


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
# endpoints


def _endpoint_or_why(spec: str, default_port: int, *, listen: bool = False) -> TcpEndpoint | str:
    """'host:port', 'host', '[v6]:port' or '[v6]' -> TcpEndpoint, or why not (words that read after ``spec``).

    ``listen``: port 0 is allowed (a server picks a free port).
    """
    spec = spec.strip()
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return "is not [ipv6-address]:port"
        port_text = rest[1:] if rest else ""
    elif spec.count(":") == 1:
        host, _, port_text = spec.partition(":")
    else:
        host, port_text = spec, ""
        if ":" in host:  # more than one colon: a bare IPv6 address, no port
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                return "is not host:port (write an IPv6 address as [address]:port)"
    if not host or any(c.isspace() for c in host):
        return "has no host"
    if not port_text:
        return TcpEndpoint(host, default_port)
    lowest = 0 if listen else 1
    if not port_text.isdigit() or not lowest <= int(port_text) <= 65535:
        return f"must have a port {lowest}-65535"
    return TcpEndpoint(host, int(port_text))


def parse_endpoint(spec: str, default_port: int, *, listen: bool = False) -> TcpEndpoint:
    """An endpoint for a command-line option: ValueError (one line, quoting the text) when it is not one."""
    got = _endpoint_or_why(spec, default_port, listen=listen)
    if isinstance(got, str):
        raise ValueError(f"{spec!r} {got}")
    return got


def endpoint(default_port: int) -> Callable[[object], TcpEndpoint]:
    """A converter for the Reader: a written ``"host:port"`` -> TcpEndpoint."""

    def convert(value: object) -> TcpEndpoint:
        got = _endpoint_or_why(text(value), default_port)
        if isinstance(got, str):
            raise Invalid(got)
        return got

    return convert


def _function(value: object) -> Function:
    n = integer(value)
    if n not in (3, 4):
        raise Invalid("is not 3 (holding registers) or 4 (input registers)")
    return Function(n)


_PLACEHOLDER_TCP = TcpEndpoint("-", MODBUS_TCP_PORT)  # a link that cannot be read (its problem says why)
_PARITY = member(Parity, {"none": Parity.NONE, "even": Parity.EVEN, "odd": Parity.ODD})


# ---------------------------------------------------------------------------
# [budget.meter]


METER_BAUDS = (300, 921600)  # a meter's serial line: the rates Modbus RTU meters offer
METER_KEYS = ("kind", "tcp", "serial", "baud", "parity", "stopbits", "device_id", "poll_s", "timeout_s",
              "request_timeout_s", "frozen_s", "phase")
SERIAL_KEYS = ("baud", "parity", "stopbits")
PHASE_KEYS = ("current", "power")
REGISTER_KEYS = ("register", "function", "type", "byte_order", "word_order", "scale")


def _register(r: Reader, t: Table, path: str) -> Register:
    r.unknown(t, path, REGISTER_KEYS)
    return Register(
        address=r.require(t, "register", path, integer, 0, "its 0-based address, e.g. 0x0006"),
        function=r.get(t, "function", path, _function, Function.INPUT),
        type=r.get(t, "type", path, member(RegisterType), RegisterType.FLOAT32),
        byte_order=r.get(t, "byte_order", path, member(Endian), Endian.BIG),
        word_order=r.get(t, "word_order", path, member(Endian), Endian.BIG),
        scale=r.get(t, "scale", path, number, 1.0),
    )


def _generic_map(r: Reader, t: Table, path: str) -> MeterMap:
    """``[[budget.meter.phase]]`` tables, L1 first, each a current and maybe a power register."""
    where = key_path(path, "phase")
    if "phase" not in t:
        r.add(where, f'is missing: kind = "generic" needs one [[{where}]] table per phase (1 or 3)')
        return SDM630  # a placeholder
    phases = r.tables(t, "phase", path)
    if isinstance(t["phase"], list) and len(t["phase"]) not in (1, 3):
        r.add(where, f"has {len(t['phase'])} tables: a meter has 1 or 3 phases, one [[{where}]] each, L1 first")
    currents: list[Register] = []
    powers: list[Register] = []
    for p, pt in phases:
        r.unknown(pt, p, PHASE_KEYS)
        if "current" not in pt:
            r.add(key_path(p, "current"), "is missing: { register = ... }, the phase current")
        for key, registers in (("current", currents), ("power", powers)):
            sub = r.optional_table(pt, key, p)
            if sub is not None:
                registers.append(_register(r, sub, key_path(p, key)))
    if powers and len(powers) != len(phases):
        r.add(where, "gives a power register for some phases: give one for every phase or for none")
    if where in r.bad or any(p.key.startswith(f"{where}[") for p in r.problems):
        return SDM630
    return MeterMap("generic", tuple(currents), tuple(powers))


def read_meter(r: Reader, t: Table, path: str = "budget.meter") -> MeterSettings:
    """``[budget.meter]`` -> MeterSettings, every problem of a value on its own added to ``r``.

    Valid only with ``meter_problems`` of the result (merged by ``r``) empty too.
    """
    r.unknown(t, path, METER_KEYS)
    kind = r.require(t, "kind", path, member(MeterKind), MeterKind.SDM630, '"sdm630", "sdm120" or "generic"')
    if key_path(path, "kind") in r.bad:
        meter_map = SDM630  # a placeholder
    elif kind is MeterKind.GENERIC:
        meter_map = _generic_map(r, t, path)
    else:
        meter_map = BUILT_IN_MAPS[kind]
        if "phase" in t:
            r.add(key_path(path, "phase"), f'is only for kind = "generic" ({kind} has its own register map)')
    link: TcpEndpoint | SerialLine
    if ("tcp" in t) == ("serial" in t):
        r.add(path, 'give tcp = "host:port" (Modbus TCP) or serial = "/dev/ttyUSB0" (Modbus RTU), one of them')
        link = _PLACEHOLDER_TCP
    elif "serial" in t:
        link = SerialLine(r.get(t, "serial", path, text, "-"), r.get(t, "baud", path, integer, DEFAULT_BAUD),
                          r.get(t, "parity", path, _PARITY, Parity.NONE), r.get(t, "stopbits", path, integer, 1))
    else:
        link = r.get(t, "tcp", path, endpoint(MODBUS_TCP_PORT), _PLACEHOLDER_TCP)
        for key in SERIAL_KEYS:
            if key in t:
                r.add(key_path(path, key), "is only for a serial meter (serial = ...)", written(t[key]))
    timeout_s = r.get(t, "timeout_s", path, number, MeterSettings.timeout_s)
    request_default = min(1.0, timeout_s / 3) if timeout_s > 0 else MeterSettings.request_timeout_s
    return MeterSettings(
        kind=kind,
        link=link,
        meter_map=meter_map,
        device_id=r.get(t, "device_id", path, integer, MeterSettings.device_id),
        poll_s=r.get(t, "poll_s", path, number, MeterSettings.poll_s),
        timeout_s=timeout_s,
        request_timeout_s=r.get(t, "request_timeout_s", path, number, request_default),
        frozen_s=r.get(t, "frozen_s", path, number, MeterSettings.frozen_s),
    )


def _register_problems(reg: Register, path: str) -> list[Problem]:
    out: list[Problem] = []
    if not 0 <= reg.address <= 0xFFFF:
        out.append(Problem(key_path(path, "register"), "must be 0-65535", str(reg.address)))
    elif reg.address + reg.words - 1 > 0xFFFF:
        out.append(Problem(key_path(path, "register"), f"+ {reg.words} registers runs past 65535", str(reg.address),
                           frozenset({key_path(path, "type")})))
    if not reg.scale > 0:
        out.append(Problem(key_path(path, "scale"), "must be above 0 (value = raw * scale, in A or W)",
                           f"{reg.scale:g}"))
    return out


def meter_problems(m: MeterSettings, path: str = "budget.meter") -> list[Problem]:
    """Every problem of typed meter settings: ranges, and the rules between keys."""
    out: list[Problem] = []

    def add(key: str, value: str, message: str, *others: str) -> None:
        out.append(Problem(key_path(path, key), message, value, frozenset(key_path(path, o) for o in others)))

    seconds = {"poll_s": m.poll_s, "timeout_s": m.timeout_s, "request_timeout_s": m.request_timeout_s}
    bad = {k for k, v in seconds.items() if not 0 < v <= MAX_SOURCE_S}
    for key in sorted(bad, key=METER_KEYS.index):
        add(key, seconds_text(seconds[key]), f"must be a number of seconds above 0 and at most {MAX_SOURCE_S:g}")
    if not 0 <= m.frozen_s <= MAX_SOURCE_S:
        add("frozen_s", seconds_text(m.frozen_s), f"must be 0 (off) or a number of seconds up to {MAX_SOURCE_S:g}")
        bad.add("frozen_s")
    if isinstance(m.link, SerialLine):
        if not METER_BAUDS[0] <= m.link.baud <= METER_BAUDS[1]:
            add("baud", str(m.link.baud), f"must be {METER_BAUDS[0]}-{METER_BAUDS[1]}")
        if m.link.stopbits not in (1, 2):
            add("stopbits", str(m.link.stopbits), "must be 1 or 2")
        if not 1 <= m.device_id <= 247:
            add("device_id", str(m.device_id), "must be 1-247 on a serial line (Modbus RTU)", "serial")
    elif not 0 <= m.device_id <= 255:
        add("device_id", str(m.device_id), "must be 0-255", "tcp")
    if not bad & {"poll_s", "timeout_s"} and 2 * m.poll_s > m.timeout_s:
        add("poll_s", seconds_text(m.poll_s), f"s leaves fewer than two polls within timeout_s "
            f"{seconds_text(m.timeout_s)} s: one lost reply would already fall back", "timeout_s")
    if not bad & {"request_timeout_s", "timeout_s"} and m.request_timeout_s > m.timeout_s:
        add("request_timeout_s", seconds_text(m.request_timeout_s),
            f"s is longer than timeout_s {seconds_text(m.timeout_s)} s", "timeout_s")
    if not bad & {"frozen_s", "poll_s"} and m.frozen_s and m.frozen_s < 2 * m.poll_s:
        add("frozen_s", seconds_text(m.frozen_s),
            f"s must be 0 (off) or at least two polls ({seconds_text(2 * m.poll_s)} s)", "poll_s")
    if m.kind is MeterKind.GENERIC:
        for i, reg in enumerate(m.meter_map.currents):
            out += _register_problems(reg, f"{path}.phase[{i}].current")
        for i, reg in enumerate(m.meter_map.powers):
            out += _register_problems(reg, f"{path}.phase[{i}].power")
    return out


def meter_settings_from_mapping(table: Table, where: str = "budget.meter") -> MeterSettings:
    """One ``[budget.meter]`` table -> MeterSettings; ConfigError (one line, its key path) for its first problem."""
    return read_table(read_meter, meter_problems, table, where)


# ---------------------------------------------------------------------------
# [budget.mqtt]


MQTT_KEYS = ("broker", "username", "password", "tls", "ca_file", "client_id", "keepalive_s")


def read_mqtt(r: Reader, t: Table, path: str = "budget.mqtt") -> MqttSettings:
    """``[budget.mqtt]`` -> MqttSettings, every problem of a value on its own added to ``r``."""
    r.unknown(t, path, MQTT_KEYS)
    tls = r.get(t, "tls", path, boolean, False)
    return MqttSettings(
        broker=r.require(t, "broker", path, endpoint(MQTTS_PORT if tls else MQTT_PORT), _PLACEHOLDER_TCP,
                         '"host:port"'),
        username=r.get(t, "username", path, text, None),
        password=r.get(t, "password", path, text, None),
        tls=tls,
        ca_file=r.get(t, "ca_file", path, text, None),
        client_id=r.get(t, "client_id", path, text, None),
        keepalive_s=r.get(t, "keepalive_s", path, integer, MqttSettings.keepalive_s),
    )


def mqtt_problems(m: MqttSettings, path: str = "budget.mqtt") -> list[Problem]:
    """Every problem of typed MQTT settings.  A password is never shown."""
    out: list[Problem] = []
    if m.password is not None and m.username is None:
        out.append(Problem(key_path(path, "password"), "needs a username (username = ...)",
                           involves=frozenset({key_path(path, "username")})))
    if m.ca_file is not None and not m.tls:
        out.append(Problem(key_path(path, "ca_file"), "is only for tls = true", written(m.ca_file),
                           frozenset({key_path(path, "tls")})))
    if not 5 <= m.keepalive_s <= 3600:
        out.append(Problem(key_path(path, "keepalive_s"), "must be 5-3600 (seconds)", str(m.keepalive_s)))
    return out


def mqtt_settings_from_mapping(table: Table, where: str = "budget.mqtt") -> MqttSettings:
    """One ``[budget.mqtt]`` table -> MqttSettings; ConfigError (one line, its key path) for its first problem."""
    return read_table(read_mqtt, mqtt_problems, table, where)
