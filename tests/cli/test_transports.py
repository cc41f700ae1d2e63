"""`master`, `servant` and `monitor` share one set of bus options: python-can's, and one Modbus group."""

from __future__ import annotations

import argparse

import pytest

from busshare.cli import build_parser
from busshare.cli.transports import bus_config
from busshare.cli.transports import can_ids

GROUP = "Modbus RTU (instead of CAN)"
ROLE_OPTIONS = {
    "master": {"--modbus", "--baud", "--reply-timeout"},
    "servant": {"--modbus", "--baud", "--pilot-file"},
    "monitor": {"--modbus", "--baud"},
}


def command(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser((name,))._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices[name]
    return parser


@pytest.mark.parametrize("name", sorted(ROLE_OPTIONS))
def test_one_modbus_group_with_what_the_command_needs(name: str) -> None:
    groups = [g for g in command(name)._action_groups if g.title == GROUP]
    assert len(groups) == 1
    assert {s for a in groups[0]._group_actions for s in a.option_strings} == ROLE_OPTIONS[name]


@pytest.mark.parametrize("name", sorted(ROLE_OPTIONS))
def test_the_can_options_name_the_bus_and_the_ids(name: str) -> None:
    extra = ["--config", "site.toml"] if name == "master" else ["--address", "1"] if name == "servant" else []
    args = command(name).parse_args([*extra, "-i", "virtual", "-c", "x", "--bus-kwargs", "receive_own_messages=True",
                                     "--id-base", "0x200", "--extended"])
    assert bus_config(args) == {"interface": "virtual", "channel": "x", "receive_own_messages": True}
    ids = can_ids(args)
    assert (ids.base, ids.extended) == (0x200, True)
