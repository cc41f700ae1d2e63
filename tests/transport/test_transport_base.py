"""Every transport is a ``busshare.transport.base.Transport``, and the Modbus path does without python-can."""

from __future__ import annotations

import pytest

from busshare.transport.base import Transport
from busshare.transport.can import CanTransport
from busshare.transport.modbus.master import ModbusMasterTransport
from busshare.transport.modbus.servant import ModbusServantTransport
from tests.support.fresh import packages_loaded

MEMBERS = [name for name in dir(Transport) if not name.startswith("_")]


@pytest.mark.parametrize("cls", [CanTransport, ModbusMasterTransport, ModbusServantTransport])
def test_each_transport_has_what_the_runtime_uses(cls: type) -> None:
    assert sorted(MEMBERS) == ["bus_off", "drain_events", "link_down_words", "recv", "send", "shutdown", "stats"]
    instance_attributes = {"bus_off", "stats"}  # (set in __init__ by some)
    missing = [m for m in MEMBERS if m not in instance_attributes and not hasattr(cls, m)]
    assert not missing


def test_the_modbus_transports_load_without_python_can() -> None:
    assert packages_loaded("import busshare.transport.modbus.master, busshare.transport.modbus.servant", ("can",)) == []
