"""``python -m busshare.cli.rs485``: a multi-drop RS-485 line emulated on pseudo-terminals (busshare.devtools.rs485)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TextIO

from ..devtools.rs485 import Rs485Bus
from .commands._options import MODBUS_BAUDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m busshare.cli.rs485",
        description="Emulate a multi-drop RS-485 line on pseudo-terminals; prints one pty path per port.",
    )
    parser.add_argument("--ports", type=int, default=3, help="number of endpoints (master + servants + spare)")
    parser.add_argument("--baud", type=int, default=19200)
    parser.add_argument("--capture", metavar="FILE", help="write the line as timestamped hex lines ('-' = stdout)")
    parser.add_argument("--corrupt", type=float, default=0.0, metavar="P", help="probability a burst gets one bit flipped")
    parser.add_argument("--drop", type=float, default=0.0, metavar="P", help="probability a burst is lost")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    if not 2 <= args.ports <= 250:
        print(f"rs485: --ports must be 2-250, not {args.ports}", file=sys.stderr)
        return 2
    low, high = MODBUS_BAUDS
    problem = (f"--baud must be {low}-{high} baud (what the nodes take), not {args.baud}"
               if not low <= args.baud <= high
               else f"--corrupt must be a probability in 0..1, not {args.corrupt}" if not 0 <= args.corrupt <= 1
               else f"--drop must be a probability in 0..1, not {args.drop}" if not 0 <= args.drop <= 1
               else f"--duration must be a positive number of seconds, not {args.duration}"
               if args.duration is not None and not 0 < args.duration < float("inf") else None)
    if problem is not None:
        print(f"rs485: {problem}", file=sys.stderr)
        return 2
    capture: TextIO | None = None
    if args.capture == "-":
        capture = sys.stdout
    elif args.capture:
        try:
            capture = open(args.capture, "w", encoding="ascii")  # noqa: SIM115
        except OSError as exc:
            print(f"rs485: cannot write {args.capture}: {exc.strerror}", file=sys.stderr)
            return 2
    bus = Rs485Bus(args.ports, args.baud, capture, args.corrupt, args.drop, args.seed)
    for path in bus.paths:
        print(path, file=sys.stderr if capture is sys.stdout else sys.stdout)
    sys.stdout.flush()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    bus.start()
    done.wait(args.duration)
    bus.close()
    if capture is not None and capture is not sys.stdout:
        capture.close()
    print(f"rs485: {bus.stats.as_dict()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
