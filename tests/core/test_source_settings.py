"""[budget.meter] and [budget.mqtt]: the issue's site file works as written, and every mistake names its key.

The tables are read by the site file's one Reader (``busshare.core.config.problems`` lists every
problem with its key path and the value as written); ``meter_settings_from_mapping`` and
``mqtt_settings_from_mapping`` read one table and raise ConfigError for its first problem.
"""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from busshare.core.config import ConfigError
from busshare.core.config import problems
from busshare.core.meter_maps import SDM120
from busshare.core.meter_maps import SDM630
from busshare.core.meter_maps import Endian
from busshare.core.meter_maps import Function
from busshare.core.meter_maps import MeterKind
from busshare.core.meter_maps import MeterMap
from busshare.core.meter_maps import Register
from busshare.core.meter_maps import RegisterType
from busshare.core.source_settings import MeterSettings
from busshare.core.source_settings import MqttSettings
from busshare.core.source_settings import Parity
from busshare.core.source_settings import SerialLine
from busshare.core.source_settings import TcpEndpoint
from busshare.core.source_settings import meter_settings_from_mapping
from busshare.core.source_settings import mqtt_settings_from_mapping
from busshare.core.source_settings import parse_endpoint
from tests.support.site_files import ISSUE_BLOCK
from tests.support.site_files import site


def meter(toml: str) -> MeterSettings:
    return meter_settings_from_mapping(tomllib.loads(toml)["budget"]["meter"])


def problems_of(table: dict[str, Any], mqtt: bool = False) -> list[str]:
    """Every problem of one [budget.meter] (or [budget.mqtt]) table in a whole, otherwise valid, site file."""
    doc = site(mqtt=table) if mqtt else site(meter=table)
    found = [str(p) for p in problems(doc)]
    with pytest.raises(ConfigError) as exc:
        (mqtt_settings_from_mapping if mqtt else meter_settings_from_mapping)(table)
    assert str(exc.value) == found[0] and "\n" not in str(exc.value), "the first problem is the one raised"
    return found


def test_the_issues_site_file_as_written() -> None:
    doc = tomllib.loads(ISSUE_BLOCK)["budget"]
    m = meter_settings_from_mapping(doc["meter"])
    assert m == MeterSettings(MeterKind.SDM630, TcpEndpoint("127.0.0.1", 5020), SDM630, device_id=1, poll_s=1.0,
                              timeout_s=5.0, request_timeout_s=1.0, frozen_s=60.0)
    assert mqtt_settings_from_mapping(doc["mqtt"]) == MqttSettings(TcpEndpoint("127.0.0.1", 1883))


def test_a_serial_sdm120_with_its_line_settings() -> None:
    m = meter('[budget.meter]\nkind = "sdm120"\nserial = "/dev/ttyUSB0"\nbaud = 2400\nparity = "even"\n'
              'device_id = 12\ntimeout_s = 11\n')
    assert m.link == SerialLine("/dev/ttyUSB0", 2400, Parity.EVEN, 1)
    assert (m.meter_map, m.device_id, m.request_timeout_s) == (SDM120, 12, 1.0)
    assert str(m.link) == "/dev/ttyUSB0 2400 8E1"


def test_request_timeout_leaves_room_for_three_tries_within_a_short_timeout() -> None:
    m = meter('[budget.meter]\nkind = "sdm630"\ntcp = "meter.local"\ntimeout_s = 1.5\npoll_s = 0.5\nfrozen_s = 0\n')
    assert (m.link, m.request_timeout_s, m.frozen_s) == (TcpEndpoint("meter.local", 502), 0.5, 0.0)


def test_a_generic_meter_register_by_register() -> None:
    m = meter("""
[budget.meter]
kind = "generic"
tcp = "10.0.0.9:502"
device_id = 3
[[budget.meter.phase]]
current = { register = 0x0100, function = 3, type = "int32", word_order = "little", scale = 0.001 }
power = { register = 0x0200, type = "int16", scale = 10 }
[[budget.meter.phase]]
current = { register = 0x0102, function = 3, type = "int32", word_order = "little", scale = 0.001 }
power = { register = 0x0201, type = "int16", scale = 10 }
[[budget.meter.phase]]
current = { register = 0x0104, function = 3, type = "int32", word_order = "little", scale = 0.001 }
power = { register = 0x0202, type = "int16", scale = 10, byte_order = "LITTLE" }
""")
    cur = [Register(0x100 + 2 * i, Function.HOLDING, RegisterType.INT32, Endian.BIG, Endian.LITTLE, 0.001)
           for i in range(3)]
    pw = [Register(0x200 + i, Function.INPUT, RegisterType.INT16, Endian.BIG, Endian.BIG, 10.0) for i in range(3)]
    pw[2] = Register(0x202, Function.INPUT, RegisterType.INT16, Endian.LITTLE, Endian.BIG, 10.0)
    assert m.meter_map == MeterMap("generic", tuple(cur), tuple(pw))
    assert [(b.function, b.address, b.count) for b in m.meter_map.blocks()] == [(3, 0x100, 6), (4, 0x200, 3)]


def test_a_single_phase_generic_meter_needs_only_a_current() -> None:
    m = meter('[budget.meter]\nkind = "generic"\nserial = "/dev/ttyS0"\n[[budget.meter.phase]]\n'
              'current = { register = 6 }\n')
    assert m.meter_map == MeterMap("generic", (Register(6),))


@pytest.mark.parametrize("table, expected", [
    ({"tcp": "x:1"}, ['budget.meter.kind: is missing ("sdm630", "sdm120" or "generic")']),
    ({"kind": "sdm999", "tcp": "x:1"}, ['budget.meter.kind: "sdm999" is not one of sdm630, sdm120, generic']),
    ({"kind": 630, "tcp": "x:1"}, ["budget.meter.kind: 630 is not one of sdm630, sdm120, generic"]),
    ({"kind": "sdm630"}, ['budget.meter: give tcp = "host:port" (Modbus TCP) or serial = "/dev/ttyUSB0" '
                          "(Modbus RTU), one of them"]),
    ({"kind": "sdm630", "tcp": "x:1", "serial": "/dev/ttyS0"},
     ['budget.meter: give tcp = "host:port" (Modbus TCP) or serial = "/dev/ttyUSB0" (Modbus RTU), one of them']),
    ({"kind": "sdm630", "tcp": "x:99999"}, ['budget.meter.tcp: "x:99999" must have a port 1-65535']),
    ({"kind": "sdm630", "tcp": "x:0"}, ['budget.meter.tcp: "x:0" must have a port 1-65535']),
    ({"kind": "sdm630", "tcp": "a:b:c"},
     ['budget.meter.tcp: "a:b:c" is not host:port (write an IPv6 address as [address]:port)']),
    ({"kind": "sdm630", "tcp": ""}, ['budget.meter.tcp: "" is empty']),
    ({"kind": "sdm630", "tcp": 502}, ["budget.meter.tcp: 502 is not a string"]),
    ({"kind": "sdm630", "tcp": "x", "baud": 9600}, ["budget.meter.baud: 9600 is only for a serial meter (serial = ...)"]),
    ({"kind": "sdm630", "serial": "/dev/ttyS0", "baud": 9600.5}, ["budget.meter.baud: 9600.5 is not an integer"]),
    ({"kind": "sdm630", "serial": "/dev/ttyS0", "baud": 100}, ["budget.meter.baud: 100 must be 300-921600"]),
    ({"kind": "sdm630", "serial": "/dev/ttyS0", "parity": "X"}, ['budget.meter.parity: "X" is not one of N, E, O']),
    ({"kind": "sdm630", "serial": "/dev/ttyS0", "stopbits": 3}, ["budget.meter.stopbits: 3 must be 1 or 2"]),
    ({"kind": "sdm630", "serial": "/dev/ttyS0", "device_id": 0},
     ["budget.meter.device_id: 0 must be 1-247 on a serial line (Modbus RTU)"]),
    ({"kind": "sdm630", "tcp": "x", "device_id": 256}, ["budget.meter.device_id: 256 must be 0-255"]),
    ({"kind": "sdm630", "tcp": "x", "device_id": True}, ["budget.meter.device_id: true is not an integer"]),
    ({"kind": "sdm630", "tcp": "x", "poll_s": "1"}, ['budget.meter.poll_s: "1" is not a number']),
    ({"kind": "sdm630", "tcp": "x", "poll_s": float("nan")}, ["budget.meter.poll_s: nan is not a finite number"]),
    ({"kind": "sdm630", "tcp": "x", "timeout_s": float("inf")}, ["budget.meter.timeout_s: inf is not a finite number"]),
    ({"kind": "sdm630", "tcp": "x", "timeout_s": 0},
     ["budget.meter.timeout_s: 0 must be a number of seconds above 0 and at most 3600"]),
    ({"kind": "sdm630", "tcp": "x", "timeout_s": 1e9, "poll_s": 1},
     ["budget.meter.timeout_s: 1000000000.0 must be a number of seconds above 0 and at most 3600"]),
    ({"kind": "sdm630", "tcp": "x", "poll_s": 3, "timeout_s": 5},
     ["budget.meter.poll_s: 3 s leaves fewer than two polls within timeout_s 5 s: one lost reply would already "
      "fall back"]),
    ({"kind": "sdm630", "tcp": "x", "request_timeout_s": 6},
     ["budget.meter.request_timeout_s: 6 s is longer than timeout_s 5 s"]),
    ({"kind": "sdm630", "tcp": "x", "frozen_s": 1},
     ["budget.meter.frozen_s: 1 s must be 0 (off) or at least two polls (2 s)"]),
    ({"kind": "sdm630", "tcp": "x", "frozen_s": -1},
     ["budget.meter.frozen_s: -1 must be 0 (off) or a number of seconds up to 3600"]),
    ({"kind": "sdm630", "tcp": "x", "pol_s": 1}, ["budget.meter.pol_s: unknown key (known: baud, device_id, frozen_s, "
                                                  "kind, parity, phase, poll_s, request_timeout_s, serial, stopbits, "
                                                  "tcp, timeout_s)"]),
    ({"kind": "sdm630", "tcp": "x", "phase": [{"current": {"register": 0}}]},
     ['budget.meter.phase: is only for kind = "generic" (sdm630 has its own register map)']),
    ({"kind": "generic", "tcp": "x"}, ['budget.meter.phase: is missing: kind = "generic" needs one '
                                       "[[budget.meter.phase]] table per phase (1 or 3)"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"register": 0}}] * 2},
     ["budget.meter.phase: has 2 tables: a meter has 1 or 3 phases, one [[budget.meter.phase]] each, L1 first"]),
    ({"kind": "generic", "tcp": "x", "phase": {"current": {"register": 0}}},
     ["budget.meter.phase: a table must be an array of tables, written [[budget.meter.phase]]"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"power": {"register": 0}}]},
     ["budget.meter.phase[0].current: is missing: { register = ... }, the phase current"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"type": "float32"}}]},
     ["budget.meter.phase[0].current.register: is missing (its 0-based address, e.g. 0x0006)"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"register": 0, "type": "float64", "scale": 0}}]},
     ['budget.meter.phase[0].current.type: "float64" is not one of float32, int16, uint16, int32, uint32']),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"register": 0, "scale": 0}}]},
     ["budget.meter.phase[0].current.scale: 0 must be above 0 (value = raw * scale, in A or W)"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"register": 0, "scale": float("nan")}}]},
     ["budget.meter.phase[0].current.scale: nan is not a finite number"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"register": 65535}}]},
     ["budget.meter.phase[0].current.register: 65535 + 2 registers runs past 65535"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"register": -1}}]},
     ["budget.meter.phase[0].current.register: -1 must be 0-65535"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"register": 0, "function": 6}}]},
     ["budget.meter.phase[0].current.function: 6 is not 3 (holding registers) or 4 (input registers)"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": 6}]},
     ["budget.meter.phase[0].current: 6 must be a table"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"register": 0}, "voltage": {"register": 6}}]},
     ["budget.meter.phase[0].voltage: unknown key (known: current, power)"]),
    ({"kind": "generic", "tcp": "x", "phase": [{"current": {"register": 0}, "power": {"register": 6}},
                                               {"current": {"register": 2}}, {"current": {"register": 4}}]},
     ["budget.meter.phase: gives a power register for some phases: give one for every phase or for none"]),
])
def test_every_mistake_names_its_key(table: dict[str, Any], expected: list[str]) -> None:
    assert problems_of(table) == expected


def test_every_problem_is_listed_not_only_the_first() -> None:
    got = problems_of({"kind": "nope", "tcp": "h:0", "poll_s": -1, "colour": "red"})
    assert [p.split(":")[0] for p in got] == ["budget.meter.colour", "budget.meter.kind", "budget.meter.tcp",
                                              "budget.meter.poll_s"]


def test_a_rule_is_not_reported_when_a_key_it_reads_is_bad() -> None:
    assert problems_of({"kind": "sdm630", "tcp": "x", "poll_s": 3, "timeout_s": "5"}) == [
        'budget.meter.timeout_s: "5" is not a number']


def test_the_key_path_prefix_is_the_callers() -> None:
    with pytest.raises(ConfigError) as exc:
        meter_settings_from_mapping({"kind": "sdm630"}, where="meters[1]")
    assert exc.value.key == "meters[1]"


def test_a_meter_is_one_table_of_a_whole_site_file() -> None:
    doc = tomllib.loads(ISSUE_BLOCK)
    doc["budget"]["meter"]["poll_s"] = 3
    doc["budget"]["mqtt"]["keepalive_s"] = 1
    assert [str(p) for p in problems(site(doc["budget"]))] == [
        "budget.meter.poll_s: 3 s leaves fewer than two polls within timeout_s 5 s: one lost reply would already "
        "fall back",
        "budget.mqtt.keepalive_s: 1 must be 5-3600 (seconds)",
    ]


# -- [budget.mqtt] ---------------------------------------------------------------------


def test_mqtt_with_credentials_and_tls_defaults_to_port_8883() -> None:
    s = mqtt_settings_from_mapping({"broker": "mqtt.example.org", "username": "evse", "password": "s3cret",
                                    "tls": True, "ca_file": "/etc/ssl/ca.pem", "client_id": "garage-master"})
    assert s == MqttSettings(TcpEndpoint("mqtt.example.org", 8883), "evse", "s3cret", True, "/etc/ssl/ca.pem",
                             "garage-master")


@pytest.mark.parametrize("table, expected", [
    ({}, ['budget.mqtt.broker: is missing ("host:port")']),
    ({"broker": "h", "password": "x"}, ["budget.mqtt.password: needs a username (username = ...)"]),
    ({"broker": "h", "username": ""}, ['budget.mqtt.username: "" is empty']),
    ({"broker": "h", "ca_file": "/ca.pem"}, ['budget.mqtt.ca_file: "/ca.pem" is only for tls = true']),
    ({"broker": "h", "tls": "yes"}, ['budget.mqtt.tls: "yes" is not true or false']),
    ({"broker": "h:x"}, ['budget.mqtt.broker: "h:x" must have a port 1-65535']),
    ({"broker": ["h"]}, ["budget.mqtt.broker: an array is not a string"]),
    ({"broker": "h", "keepalive_s": 1}, ["budget.mqtt.keepalive_s: 1 must be 5-3600 (seconds)"]),
    ({"broker": "h", "keepalive_s": 30.5}, ["budget.mqtt.keepalive_s: 30.5 is not an integer"]),
    ({"broker": "h", "port": 1883}, ["budget.mqtt.port: unknown key (known: broker, ca_file, client_id, keepalive_s, "
                                     "password, tls, username)"]),
])
def test_every_mqtt_mistake_names_its_key(table: dict[str, Any], expected: list[str]) -> None:
    assert problems_of(table, mqtt=True) == expected


def test_a_password_is_never_shown() -> None:
    assert problems_of({"broker": "h", "password": "s3cret"}, mqtt=True) == [
        "budget.mqtt.password: needs a username (username = ...)"]


@pytest.mark.parametrize("text, endpoint", [
    ("127.0.0.1:5020", TcpEndpoint("127.0.0.1", 5020)),
    ("meter", TcpEndpoint("meter", 502)),
    ("[::1]:1502", TcpEndpoint("::1", 1502)),
    ("[fe80::1]", TcpEndpoint("fe80::1", 502)),
])
def test_endpoints(text: str, endpoint: TcpEndpoint) -> None:
    assert parse_endpoint(text, 502) == endpoint
    assert parse_endpoint(str(endpoint), 1) == endpoint


@pytest.mark.parametrize("text", ["", ":502", "a:b:c", "[::1", "[::1]x", "host:0", "two words"])
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text, 502)


def test_a_server_may_listen_on_port_zero() -> None:
    assert parse_endpoint("127.0.0.1:0", 502, listen=True) == TcpEndpoint("127.0.0.1", 0)


def test_a_bare_ipv6_address_takes_the_default_port() -> None:
    assert parse_endpoint("fe80::1", 502) == TcpEndpoint("fe80::1", 502)
