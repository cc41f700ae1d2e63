"""Site files shared by the tests and benchmarks: issue 13's own block, a whole site around a [budget] table,
and the text of the small sites the process, CLI and benchmark runs write to disk."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

# issue 13's site file, exactly as the issue writes it (tools and installers script against these names)
ISSUE_BLOCK = """
[site]
id = "garage"              # MQTT topics: busshare/garage/...
[budget]
main_limit_a = 80.0        # the main service's continuous limit (per phase)
margin_a = 2.0             # kept free below it
fallback_a = 24.0          # what the EVSE circuit may always take; used when a source is stale
setpoint_ttl_s = 60        # default time-to-live of an external setpoint
[budget.meter]
kind = "sdm630"            # or "sdm120", or "generic" with a register table
tcp = "127.0.0.1:5020"     # Modbus TCP; or serial = "/dev/ttyUSB0" with baud = 9600
device_id = 1
poll_s = 1.0
timeout_s = 5.0            # no good reading for this long: fall back
[budget.mqtt]
broker = "127.0.0.1:1883"  # plus optional username, password, tls
"""

# what the issue's block leaves out: the circuit (63 A) and four servants with 6 A standalone failsafes
SERVANTS = "".join(f"[[servant]]\naddress = {a}\nmax_a = 32\n" for a in (1, 2, 3, 4))
ISSUE_SITE = ISSUE_BLOCK.replace("[budget]\n", "limit_a = 63\n[budget]\n", 1) + SERVANTS

BUDGET: dict[str, Any] = {"main_limit_a": 80.0, "fallback_a": 24.0}


def site(budget: dict[str, Any] | None = None, *, meter: dict[str, Any] | None = None,
         mqtt: dict[str, Any] | None = None, **site_keys: Any) -> dict[str, Any]:
    """A whole site (63 A, four servants at 6 A failsafe) with ``budget`` (default: main 80 A, fallback 24 A)."""
    doc: dict[str, Any] = {
        "site": {"limit_a": 63, **site_keys},
        "servant": [{"address": a, "max_a": 32} for a in (1, 2, 3, 4)],
        "budget": copy.deepcopy(BUDGET if budget is None else budget),
    }
    if meter is not None:
        doc["budget"]["meter"] = meter
    if mqtt is not None:
        doc["budget"]["mqtt"] = mqtt
    return doc


def site_toml(addresses: Sequence[int], *, max_a: int, limit_a: int | None = None,
              breaker_a: int | None = None) -> str:
    """A site file's text: the circuit, then one ``[[servant]]`` table of ``max_a`` per address."""
    circuit = "".join(f"{key} = {value}\n" for key, value in (("limit_a", limit_a), ("breaker_a", breaker_a))
                      if value is not None)
    return "[site]\n" + circuit + "".join(f"\n[[servant]]\naddress = {a}\nmax_a = {max_a}\n" for a in addresses)


def scenario_servants(*addresses: int, max_a: int = 32, serial_base: int = 0x1000, **keys: float | bool) -> str:
    """``[[installation.servant]]`` tables for a scenario file (serial ``serial_base`` + address), each with ``keys``."""
    extra = "".join(f"{key} = {str(value).lower() if isinstance(value, bool) else value}\n"
                    for key, value in keys.items())
    return "".join(f"[[installation.servant]]\naddress = {a}\nmax_a = {max_a}\nserial = {serial_base + a:#x}\n{extra}"
                   for a in addresses)


METERED_STATIC_A = 32.0  # 80 % of the 40 A breaker
METERED_FALLBACK_A = 18.0  # three standalone failsafes of 6 A fit under it


def metered_site(meter_port: int, broker_port: int | None = None) -> str:
    """The real-process budget stories' site (CAN and Modbus): three 16 A servants on a 32 A circuit, the
    emulated meter on Modbus TCP with a fast timeout, one short raise hold so a story is brief, and an MQTT
    broker when given.  The emulator holds a constant house load (``set``): the frozen-register check is off.
    """
    mqtt = "" if broker_port is None else f"""
[budget.mqtt]
broker = "127.0.0.1:{broker_port}"
keepalive_s = 5
"""
    return f"""
[site]
id = "garage"
breaker_a = 40

[budget]
main_limit_a = 63.0
margin_a = 2.0
fallback_a = {METERED_FALLBACK_A}
raise_hold_s = 6.5
raise_step_a = 20.0

[budget.meter]
kind = "sdm630"
tcp = "127.0.0.1:{meter_port}"
poll_s = 0.5
timeout_s = 3.0
frozen_s = 0
""" + mqtt + "".join(f"\n[[servant]]\naddress = {a}\nmax_a = 16\nfailsafe_a = 6\n" for a in (1, 2, 3))


def two_on_32(name: str, duration_s: float, cars: tuple[tuple[int, float, float | None], ...],
              car_defaults: str = "") -> str:
    """A scenario's text: two 32 A EVSEs on a 32 A circuit, cars of 32 A wanting 40 kWh given as (evse, at, leave),
    ``car_defaults`` lines added to their defaults (faults are appended by the caller)."""
    return (f'name = "{name}"\nduration_s = {duration_s:g}\n[installation.site]\nlimit_a = 32\n'
            + scenario_servants(1, 2) + "[car_defaults]\nmax_a = 32\nneed_kwh = 40\n" + car_defaults
            + "".join(f"[[car]]\nevse = {evse}\nat = {at:g}\n" + ("" if leave is None else f"leave = {leave:g}\n")
                      for evse, at, leave in cars))
