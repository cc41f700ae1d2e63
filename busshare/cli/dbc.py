"""``python -m busshare.cli.dbc``: write the DBC for another id base or 29-bit ids (busshare.analysis.dbc)."""

from __future__ import annotations

import argparse
import sys

from ..analysis.dbc import generate
from ..protocol.canid import IdScheme


def generate_doc() -> str:
    return "Generate the DBC that lets CAN tools decode busshare traffic."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m busshare.cli.dbc", description=generate_doc())
    parser.add_argument("--base", default="0x000", help="id base, a multiple of 0x200 (default 0x000)")
    parser.add_argument("--extended", action="store_true", help="29-bit extended ids")
    args = parser.parse_args(argv)
    try:
        scheme = IdScheme(int(args.base, 0), args.extended)
    except ValueError as exc:
        problem = str(exc) if "id base" in str(exc) else f"--base {args.base!r} is not a number"
        print(f"busshare.cli.dbc: {problem}", file=sys.stderr)
        return 2
    sys.stdout.write(generate(scheme))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
