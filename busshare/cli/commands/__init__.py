"""One module per ``busshare`` subcommand (see cli.py for the contract).

The one-line summaries live here, not in the command modules, so that
``busshare --help`` and every other command can list all commands without
importing their modules (and python-can, pymodbus, ... with them).
"""

from __future__ import annotations

import argparse
from typing import Any

# Command name -> its one-line summary, in the order `busshare --help` lists them.
SUMMARIES: dict[str, str] = {
    "sim": "simulate an installation (default: the built-in story) with a live view",
    "master": "run the master on a CAN bus or a Modbus RTU line (--modbus)",
    "servant": "run a servant EVSE on a CAN bus or a Modbus RTU line (--modbus)",
    "monitor": "live decode of a CAN bus or a Modbus RTU line, with anomaly flags",
    "decode": "decode a capture (.log .asc .blf .trc .csv, or candump text on stdin)",
    "busload": "CAN bus utilisation (steady state and worst case) for N servants",
    "check-config": "validate an installation file and explain each problem",
}


def module_name(command: str) -> str:
    """`check-config` -> `busshare.cli.commands.check_config`."""
    return f"{__name__}.{command.replace('-', '_')}"


def command_parser(subparsers: Any, command: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``command``, its help the command's line above (so ``busshare --help`` says the same)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(command, help=SUMMARIES[command], description=description)
    return parser
