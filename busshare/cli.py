"""The ``busshare`` command: a thin dispatcher over ``busshare.commands.*``.

Each command module exposes ``add_parser(subparsers)`` (which sets
``func=run`` on its parser) and ``run(args) -> int``.  User errors are raised
as ``UserError`` (or ``ConfigError``) and printed as one line, never a traceback (set BUSSHARE_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import UserError

COMMANDS = ("sim", "master", "servant", "monitor", "decode", "busload", "check_config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="busshare",
        description="Wired EV-charger current sharing over CAN and Modbus RTU.",
    )
    parser.add_argument("--version", action="version", version=f"busshare {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"busshare.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"busshare.commands.{name}":
                raise
            continue  # command not built yet
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except (UserError, ValueError, OSError) as exc:
        if os.environ.get("BUSSHARE_DEBUG"):
            raise
        # ConfigError and FrameError are ValueErrors whose text is already one line.
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"busshare {args.command.replace('_', '-')}: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
