"""`busshare` imports only the module of the command it runs.

The test suite and every user pay the start-up of the CLI on each call; a
command that never touches a bus must not load python-can, pymodbus,
pyserial or matplotlib.  These tests look at `sys.modules`, never at a clock.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from busshare.cli import COMMANDS
from busshare.cli import build_parser
from busshare.cli import chosen_command

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "examples" / "site.toml"
HEAVY = ("can", "pymodbus", "serial", "matplotlib", "asyncio")

# Runs one command in a fresh interpreter and prints what it imported.
PROBE = """\
import json, sys
from busshare.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported_by(*argv: str) -> tuple[int, set[str]]:
    """(exit code, modules loaded) of `busshare ARGV` run in-process in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True,
                          cwd=ROOT, timeout=60)
    last = json.loads(done.stdout.strip().splitlines()[-1])
    return last["code"], set(last["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("check-config", str(SITE)),
        ("check-config", "--json", str(SITE)),
        ("busload", "--servants", "8"),
        ("decode", "--help"),
        ("sim", "--help"),
        ("sim", "--speed", "max", "--quiet", "--duration", "5"),
    ],
    ids=" ".join,
)
def test_commands_off_the_bus_load_no_bus_library(argv: tuple[str, ...]) -> None:
    code, modules = imported_by(*argv)
    assert code == 0
    assert heavy(modules) == []


def test_help_imports_no_command_module() -> None:
    code, modules = imported_by("--help")
    assert code == 0
    assert sorted(m for m in modules if m.startswith("busshare.cli.commands.")) == []


def test_a_command_imports_its_own_module_only() -> None:
    code, modules = imported_by("check-config", str(SITE))
    assert code == 0
    # (the commands' small shared helpers, ``_options``, ``_stdout`` and such, may come along: no other command)
    commands = [m for m in modules if m.startswith("busshare.cli.commands.") and not m.rsplit(".", 1)[1].startswith("_")]
    assert commands == ["busshare.cli.commands.check_config"]


def test_decoding_a_candump_text_capture_needs_no_python_can(tmp_path: Path) -> None:
    capture = tmp_path / "c.log"
    capture.write_text("(0.000000) can0 123#00\n")
    code, modules = imported_by("decode", str(capture))
    assert code == 0
    assert heavy(modules) == []


def test_the_placeholder_summaries_match_the_real_parsers() -> None:
    """`busshare --help` built from the summaries alone equals the one with every command loaded."""
    assert build_parser(()).format_help() == build_parser(COMMANDS).format_help()


@pytest.mark.parametrize("name", COMMANDS)
def test_each_loaded_command_has_its_runner(name: str) -> None:
    parser = build_parser((name,))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert callable(sub.choices[name].get_default("func"))
    assert all(sub.choices[other].get_default("func") is None for other in COMMANDS if other != name)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        ([], None),
        (["--help"], None),
        (["--version"], None),
        (["check-config", "site.toml"], "check-config"),
        (["-h", "master"], "master"),
        (["--", "decode", "x.log"], "decode"),
        (["--"], None),
        (["nonsense"], "nonsense"),
    ],
)
def test_the_command_word_is_the_first_positional(argv: list[str], command: str | None) -> None:
    assert chosen_command(argv) == command
