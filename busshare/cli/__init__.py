"""The ``busshare`` command: a thin dispatcher over ``busshare.cli.commands.*``.

Each command module exposes ``add_parser(subparsers)`` (which sets
``func=run`` on its parser) and ``run(args) -> int``.  Only the module of the
command being run is imported (the others get a placeholder parser carrying
their one-line summary), so `busshare --help` or `busshare check-config` do not
pay for python-can, pymodbus or matplotlib.  Errors that are the input's
fault are ``BusshareError`` (``UserError``, ``ConfigError``, ``FrameError``,
...) or an ``OSError``, and are printed as one line, never a traceback (set
BUSSHARE_DEBUG=1 to see one); anything else is a bug and keeps its traceback.
A usage error of a command prints that command's usage, not the top level's.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Collection
from collections.abc import Sequence

from .. import __version__
from ..errors import BusshareError
from ..errors import printable
from .commands import SUMMARIES
from .commands import module_name

COMMANDS = tuple(SUMMARIES)


def build_parser(load: Collection[str] = COMMANDS) -> argparse.ArgumentParser:
    """The whole parser; commands not in `load` get only their name and summary (enough for --help)."""
    return _build(load)[0]


def _build(load: Collection[str]) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and each command's own parser."""
    parser = argparse.ArgumentParser(
        prog="busshare",
        description="Wired EV-charger current sharing over CAN and Modbus RTU.",
    )
    parser.add_argument("--version", action="version", version=f"busshare {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in SUMMARIES.items():
        if name in load:
            importlib.import_module(module_name(name)).add_parser(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser, sub.choices


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command word of a command line (the top level has no options taking a value), if any."""
    for i, arg in enumerate(argv):
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    command = chosen_command(argv)
    parser, commands = _build(() if command is None else (command,))
    args, extra = parser.parse_known_args(argv)
    if extra:  # the command's own usage, not the top level's
        commands.get(getattr(args, "command", None) or "", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except (BusshareError, OSError) as exc:
        if os.environ.get("BUSSHARE_DEBUG"):
            raise
        print(f"busshare {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    """An error as the line a user reads: ``x.toml: No such file or directory``, not ``[Errno 2] ...``."""
    if isinstance(exc, OSError) and exc.strerror:
        return printable(f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return printable(text) or type(exc).__name__  # (a file name from a glob may hold ESC or BEL)


if __name__ == "__main__":
    sys.exit(main())
