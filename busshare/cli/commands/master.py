"""`busshare master --config site.toml`: the real master process on any python-can bus."""

from __future__ import annotations

import argparse
import secrets
import time
from typing import Any

from ...io.runtime import Runtime, event_record
from ...transport.can import CanTransport, add_bus_arguments, id_scheme_from, open_bus
from . import SUMMARIES
from . import _options as opt
from ._common import add_output_arguments, node_times, printer


def add_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "master",
        help=SUMMARIES["master"],
        description="Run the master: heartbeats, learns who is on the bus, hands out the circuit's current "
        "(cut first, grant after the acks).  On SIGINT/SIGTERM it sends a leaving heartbeat so servants fail "
        "safe at once.  Without -i the bus is udp_multicast (python-can's CAN_INTERFACE or ~/can.conf win if set).",
    )
    p.add_argument("--config", required=True, metavar="SITE.toml", help="the installation's config file")
    p.add_argument("--master-id", type=opt.master_id, default=None, metavar="N",
                   help="override the config's master id (0-15)")
    p.add_argument("--epoch", type=opt.byte, default=None, metavar="N",
                   help="boot epoch 0-255 (default: random, so servants see a reboot)")
    add_output_arguments(p)
    add_bus_arguments(p)
    from ...transport.modbus.master import add_arguments as add_modbus_arguments

    add_modbus_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "modbus", None):
        from ...transport.modbus.master import run_modbus_master

        return run_modbus_master(args)
    from ...core.config import load_config
    from ...master import Master

    config = load_config(args.config)
    epoch = secrets.randbelow(256) if args.epoch is None else args.epoch
    ids = id_scheme_from(args)
    transport = CanTransport(open_bus(args), ids)
    clock = time.monotonic
    now = clock()
    node = Master(config, now, master_id=args.master_id, epoch=epoch)
    emit = printer(args.json, node_times(args, now))
    emit(event_record(now, "started", 0, f"master id {args.master_id or config.master_id} epoch {epoch} "
                                         f"limit {config.limit_da / 10:.1f} A, {len(config.servants)} servants configured"))
    runtime = Runtime(node, transport, clock=clock, on_record=emit, status_interval=args.status_interval,
                      tick_period=config.timing.tick_period)
    runtime.run(duration=args.duration)
    return 0
