"""``python -m busshare.cli.meter_emulator``: an Eastron SDM630/SDM120 on Modbus TCP or RTU, for tests and demos.

    python -m busshare.cli.meter_emulator --kind sdm630 --tcp 127.0.0.1:5020
    python -m busshare.cli.meter_emulator --kind sdm120 --serial /dev/pts/7 --baud 9600

Control: one command per line on stdin (``freeze``, ``silent``, ``garbage``, ``error``, ``normal``,
``set L1 [L2 L3]``, ``profile``, ``status``, ``quit``), or scheduled with ``--at SECONDS:COMMAND``.
Every answer is one JSON line on stdout; the first is ``{"event": "listening", ...}`` with the
real TCP port (``--tcp 127.0.0.1:0`` picks a free one).  See docs/BUDGET.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
import time

from ..core.meter_maps import BUILT_IN_MAPS
from ..core.meter_maps import MeterKind
from ..core.source_settings import DEFAULT_BAUD
from ..core.source_settings import METER_BAUDS
from ..core.source_settings import MODBUS_TCP_PORT
from ..core.source_settings import Parity
from ..core.source_settings import SerialLine
from ..core.source_settings import TcpEndpoint
from ..core.source_settings import parse_endpoint
from ..devtools.load_profile import CsvProfile
from ..devtools.load_profile import HouseProfile
from ..devtools.load_profile import LoadProfile
from ..devtools.meter_server import HELP
from ..devtools.meter_server import MeterEmulator
from ..devtools.meter_server import dumps


class _LastWarning(logging.Handler):
    """Keeps pymodbus's last warning (why a server did not start) for our one-line error, off stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.last = " ".join(record.getMessage().split())


_PYMODBUS = _LastWarning()
logging.getLogger("pymodbus").addHandler(_PYMODBUS)


def _hours(text: str) -> float:
    """'17.5' or '17:30' -> seconds of the day."""
    h, _, m = text.partition(":")
    value = float(h) + (float(m) / 60 if m else 0.0)
    if not 0 <= value < 24:
        raise ValueError(text)
    return value * 3600


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m busshare.cli.meter_emulator",
                                description="Emulate an Eastron mains meter (Modbus TCP or RTU) driven by a load "
                                            "profile; control it with commands on stdin. " + HELP)
    p.add_argument("--kind", choices=[k.value for k in BUILT_IN_MAPS], default="sdm630")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT", help="serve Modbus TCP (port 0: a free one)")
    where.add_argument("--serial", metavar="PORT", help="serve Modbus RTU on a serial port or pty")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    p.add_argument("--parity", choices=["N", "E", "O"], default="N")
    p.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    p.add_argument("--device-id", type=int, default=1, help="Modbus device id 1-247 (default 1)")
    p.add_argument("--csv", metavar="FILE", help="load profile: rows time,L1[,L2,L3] (s, A) instead of the house")
    p.add_argument("--seed", type=int, default=1, help="the built-in house's day, and the garbage")
    p.add_argument("--solar", action="store_true", help="the built-in house has solar panels")
    p.add_argument("--start", default="17:30", metavar="HH:MM", help="time of day the house starts at (17:30)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="profile seconds per real second (60: a day in 24 min; 0 holds the house still)")
    p.add_argument("--at", action="append", default=[], metavar="SECONDS:COMMAND",
                   help="run COMMAND this many seconds after start (repeatable), e.g. --at 30:freeze")
    return p.parse_args(argv)


def _fail(text: str) -> int:
    print(f"meter_emulator: {text}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    kind = MeterKind(args.kind)
    meter_map = BUILT_IN_MAPS[kind]
    try:
        start_s = _hours(args.start)
    except ValueError:
        return _fail(f"--start {args.start!r} is not a time of day (HH:MM)")
    if not 0 <= args.speed < float("inf"):  # 0 holds the profile still
        return _fail(f"--speed must be 0 or more profile seconds per second, not {args.speed}")
    if not METER_BAUDS[0] <= args.baud <= METER_BAUDS[1]:  # (as budget.meter.baud of a site file)
        return _fail(f"--baud must be {METER_BAUDS[0]}-{METER_BAUDS[1]} baud, not {args.baud}")
    schedule: list[tuple[float, str]] = []
    for item in args.at:
        delay, sep, command = item.partition(":")
        try:
            seconds = float(delay)
        except ValueError:
            seconds = -1.0
        if not sep or not 0 <= seconds < float("inf") or not command.strip():
            return _fail(f"--at {item!r}: want SECONDS:COMMAND, e.g. 30:freeze")
        schedule.append((seconds, command))
    profile: LoadProfile
    try:
        profile = CsvProfile.load(args.csv) if args.csv else HouseProfile(args.seed, meter_map.phases, args.solar)
    except OSError as exc:
        return _fail(f"cannot read {args.csv}: {exc.strerror}")
    except ValueError as exc:
        return _fail(str(exc))
    link: TcpEndpoint | SerialLine
    if args.tcp is not None:
        try:
            link = parse_endpoint(args.tcp, MODBUS_TCP_PORT, listen=True)
        except ValueError as exc:
            return _fail(f"--tcp: {exc}")
    else:
        link = SerialLine(args.serial, args.baud, Parity(args.parity), args.stopbits)
    try:
        emulator = MeterEmulator(meter_map, profile, device_id=args.device_id, seed=args.seed, speed=args.speed,
                                 start_s=start_s)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        return asyncio.run(_serve(emulator, link, kind, schedule))
    except KeyboardInterrupt:
        return 0


async def _serve(emulator: MeterEmulator, link: TcpEndpoint | SerialLine, kind: MeterKind,
                 schedule: list[tuple[float, str]]) -> int:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    try:
        server, where = await emulator.serve(link)
    except (RuntimeError, OSError) as exc:
        return _fail(f"cannot serve on {link}: {_PYMODBUS.last or exc}")

    def out(record: dict[str, object]) -> None:
        print(dumps(record), flush=True)

    def handle(line: str) -> None:
        if line.strip().lower() == "quit":
            done.set()
            return
        record = emulator.command(line)
        if record is not None:
            out(record)

    def read_stdin() -> None:
        for line in sys.stdin:  # EOF (stdin closed or /dev/null) ends the reader, not the emulator
            loop.call_soon_threadsafe(handle, line)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    for delay, command in schedule:
        loop.call_later(delay, handle, command)
    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
    out({"event": "listening", "t": round(time.monotonic(), 6), "kind": kind.value, "device_id": emulator.device_id,
         ("serial" if isinstance(link, SerialLine) else "tcp"): where})
    await done.wait()
    await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it untyped
    out({"event": "stopped", "t": round(time.monotonic(), 6), "answered": emulator.answered,
         "unanswered": emulator.unanswered})
    return 0


if __name__ == "__main__":
    sys.exit(main())
