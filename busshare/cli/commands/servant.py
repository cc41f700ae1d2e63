"""`busshare servant --address N`: a real servant process, on CAN or (``--modbus``) a Modbus RTU line."""

from __future__ import annotations

import argparse
import random
import socket
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...core.config import Config
from ...core.config import ServantConfig
from ...core.config import Timing
from ...core.config import load_config
from ...core.config import servant_problems
from ...core.hardware import EvseHardware
from ...devtools.bench import BenchHardware
from ...devtools.bench import FileControlledHardware
from ...errors import UserError
from ...io.runtime import Runtime
from ...io.runtime import event_record
from ...io.servant_state import StateFile
from ...io.servant_state import StateFileError
from ...io.servant_state import default_path
from ...protocol.pilot import PilotState
from ...report.records import serial_hex
from ...servant import Servant
from ...transport.base import Transport
from ...transport.modbus.registers import modbus_timing
from ...transport.modbus.servant import ModbusServantTransport
from ...transport.modbus.servant import Snapshot
from ..transports import Role
from ..transports import add_bus_arguments
from ..transports import on_modbus
from ..transports import open_can
from ..transports import open_line
from . import _options as opt
from . import command_parser
from ._common import add_output_arguments
from ._common import node_times
from ._common import printer
from ._stdout import silence


def add_parser(subparsers: Any) -> None:
    p = command_parser(
        subparsers, "servant",
        "Run one servant: it joins the master, requests current for its EV, applies limits "
        "(cut-then-grant with acks) and falls to its failsafe current when the master goes silent.  "
        "Without -i the bus is udp_multicast on this host (python-can's CAN_INTERFACE or ~/can.conf win if set).",
    )
    p.add_argument("--address", type=opt.address, required=True, metavar="N", help="servant address, 1-62")
    p.add_argument("--config", default=None, metavar="SITE.toml",
                   help="take this servant's settings and the timing from the installation's config "
                   "(options given here still win)")
    p.add_argument("--max", type=opt.evse_amps, default=None, metavar="A",
                   help="this EVSE's maximum current, 6-80 A (default 32 A)")
    p.add_argument("--min", type=opt.evse_amps, default=None, metavar="A",
                   help="lowest current its EV can use, 6-80 A (default 6 A)")
    p.add_argument("--failsafe", type=opt.failsafe_amps, default=None, metavar="A",
                   help="current when the master is silent (default 6 A; 0 = pause)")
    p.add_argument("--priority", type=opt.byte, default=None, help="higher is served first under shortage (0-255)")
    p.add_argument("--serial", type=opt.serial, default=None, metavar="N",
                   help="unique unit serial (default: derived from host name and address)")
    p.add_argument("--ev", choices=("sim", "bench"), default="bench",
                   help="hardware: 'sim' a simulated car that charges, 'bench' a fixed pilot state that logs "
                   "every pilot change (default)")
    p.add_argument("--pilot", choices=[s.name for s in PilotState], default="C",
                   help="bench: the fixed pilot state (default C, charging)")
    p.add_argument("--meter", type=opt.meter_amps, default=None, metavar="A",
                   help="bench: a fixed meter reading, 0-102.2 A (default: no meter)")
    p.add_argument("--need-kwh", type=opt.kwh, default=50.0, help="sim: energy the car wants (default 50 kWh)")
    p.add_argument("--seed", type=opt.integer(), default=None, help="sim: random seed of the car's reactions")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--state", default=None, metavar="FILE",
                       help="where the unit keeps its txn and heartbeat orders across restarts of this process, so "
                       "that a late copy of a frame the last process took is never taken as new (PROTOCOL.md 8.4; "
                       "default $XDG_STATE_HOME/busshare/servant-N.json, i.e. ~/.local/state/...)")
    state.add_argument("--no-state", action="store_true",
                       help="keep nothing across restarts (a restarted process knows no txn order: PROTOCOL.md 8.7)")
    add_output_arguments(p)
    add_bus_arguments(p, Role.SERVANT)
    p.set_defaults(func=run)


def default_serial(address: int) -> int:
    """Stable across restarts of one unit, different between hosts: what a real unit's serial is."""
    return zlib.crc32(f"{socket.gethostname()}/{address}".encode()) & 0xFFFFFFFF


def servant_config(args: argparse.Namespace, site: Config | None, has_meter: bool) -> ServantConfig:
    """This servant's settings: its [[servant]] of the site file (if given), then the options.

    The options are each checked when parsed; this checks them together (``--min`` above
    ``--max``...), naming the option, or the file's key when the value came from the file.
    """
    base = ServantConfig(args.address)
    path = "servant"
    if site is not None:
        found = site.servant(args.address)
        if found is None:
            raise UserError(f"{args.config}: no [[servant]] with address {args.address}")
        base, path = found, f"servant[{site.servants.index(found)}]"
    given = {"min_a": args.min, "max_a": args.max, "failsafe_a": args.failsafe, "priority": args.priority}
    config = replace(
        base,
        min_da=base.min_da if args.min is None else args.min,
        max_da=base.max_da if args.max is None else args.max,
        priority=base.priority if args.priority is None else args.priority,
        failsafe_da=base.failsafe_da if args.failsafe is None else args.failsafe,
        serial=args.serial if args.serial is not None else base.serial or default_serial(args.address),
        has_meter=has_meter,
    )
    for p in servant_problems(config, path):
        def option(key: str) -> str | None:
            name = key.rpartition(".")[2]
            return f"--{name.removesuffix('_a')}" if given.get(name) is not None else None

        shown = option(p.key) or (f"{args.config}: {p.key}" if site is not None else f"{p.key.rpartition('.')[2]} (default)")
        others = [o for o in map(option, sorted(p.involves)) if o]
        raise UserError(f"{shown} {p.value} {p.message}" + (f" (given {', '.join(others)})" if others else ""))
    return config


def build_hardware(args: argparse.Namespace, max_da: int, now: float) -> EvseHardware:
    if args.ev == "sim":
        from ...sim.ev import EvProfile
        from ...sim.ev import SimEvse

        evse = SimEvse(meter=True, rng=random.Random(args.seed), now=now)
        evse.plug(EvProfile(max_a=max_da / 10, need_kwh=args.need_kwh), now)
        return evse
    measured: int | None = args.meter
    log_out = sys.stderr if args.json else sys.stdout

    def log(line: str) -> None:
        try:
            print(line, file=log_out, flush=True)
        except OSError:  # stdout fails (| head, a full disk): stop, and the pilot still goes off on the way out
            silence(log_out)
            raise

    return BenchHardware(PilotState[args.pilot], measured, log=log, origin=now)


def run(args: argparse.Namespace) -> int:
    modbus = on_modbus(args)
    site = None if args.config is None else load_config(args.config)
    # on Modbus the line decides the timing (docs/MODBUS.md)
    timing = modbus_timing(args.baud) if modbus else Timing() if site is None else site.timing
    if args.pilot_file and not modbus:  # (a Modbus bench option: on CAN the bench pilot is --pilot)
        raise UserError("--pilot-file is an option of the Modbus servant (--modbus PORT); on CAN, --ev bench "
                        "takes the pilot state from --pilot")
    pilot_file: str | None = args.pilot_file if modbus else None
    config = servant_config(args, site, has_meter=args.ev == "sim" or args.meter is not None or pilot_file is not None)
    serial, max_da = config.serial, config.max_da
    clock = time.monotonic
    transport: Transport
    if modbus:
        now = clock()
        line = ModbusServantTransport(open_line(args), args.address, args.baud, timing.failsafe_timeout, clock)
        transport = line
    else:
        transport = open_can(args)
        now = clock()
    hardware = Watched(FileControlledHardware(pilot_file) if pilot_file else build_hardware(args, max_da, now))
    state = None if args.no_state else StateFile(Path(args.state) if args.state else default_path(args.address),
                                                   args.address, clock, period=timing.heartbeat_period)
    memory, unreadable = None, None
    if state is not None:
        try:
            memory = state.load()
        except StateFileError as exc:  # start as a new unit: said once, the file rewritten at the first change
            unreadable = str(exc)
    node = Servant(config, timing, now, memory)
    if modbus:
        skip = frozenset({"pilot"}) if args.ev == "bench" and not pilot_file else frozenset()
        where = (f"on Modbus {args.modbus} at {args.baud} baud (failsafe timeout {timing.failsafe_timeout:.2f} s)")
    else:
        skip = frozenset({"offer"}) if args.ev == "bench" else frozenset()
        where = f"ev {args.ev}"
    emit = printer(args.json, node_times(args, now), skip=skip)
    try:
        emit(event_record(now, "started", args.address, f"servant {args.address} serial {serial_hex(serial)} "
                          f"max {max_da / 10:.1f} A failsafe {config.failsafe_da / 10:.1f} A {where}"))
        if state is not None and memory is not None:  # (a first start, nothing kept yet, says nothing)
            emit(event_record(now, "state", args.address, f"{state.path}: the last process's txn order "
                              f"({len(memory.set_limits)} epochs) and heartbeat order ({len(memory.heartbeats)} "
                              "masters) taken back"))
        elif unreadable is not None:
            emit(event_record(now, "state", args.address, f"{unreadable}: starting as a new unit (PROTOCOL.md 8.7)"))
    except OSError:  # stdout fails (| head, a full disk): stop before starting, the bus or port closed
        transport.shutdown()
        raise
    runtime = Runtime(node, transport, hardware=hardware, clock=clock, on_record=emit,
                      status_interval=args.status_interval, tick_period=timing.tick_period, state=state)
    if modbus:
        _show_in_registers(line, config, node, hardware, runtime)
    runtime.run(duration=args.duration)
    return 0


class Watched:
    """Wraps the hardware so the Modbus plain registers can show its last reading."""

    def __init__(self, inner: EvseHardware) -> None:
        self.inner = inner
        self.pilot = PilotState.A
        self.measured: int | None = None

    def apply(self, offer_da: int, ev_stopped: bool, now: float) -> None:
        self.inner.apply(offer_da, ev_stopped, now)

    def read(self, now: float) -> tuple[PilotState, int | None]:
        self.pilot, self.measured = self.inner.read(now)
        return self.pilot, self.measured


def _show_in_registers(line: ModbusServantTransport, config: ServantConfig, node: Servant, hardware: Watched,
                       runtime: Runtime) -> None:
    """Fill the servant's plain registers: its settings now, its state whenever the line is heard."""

    def refresh(s: Snapshot, t: float) -> None:
        s.pilot, s.measured_da = int(hardware.pilot), hardware.measured
        s.offered_da = node.offer_da
        s.failsafe = node.in_failsafe
        s.ev_stopped = node.ev_stopped
        s.requested_da = node.requested_da
        s.granted_da = node.limit_da
        s.fault = hardware.pilot in (PilotState.E, PilotState.F)
        s.e2e_drops = runtime.stats.rejected

    snap = line.server.snapshot
    snap.serial, snap.max_da, snap.min_da = config.serial, config.max_da, config.min_da
    snap.priority, snap.failsafe_da = config.priority, config.failsafe_da
    line.refresh = refresh
