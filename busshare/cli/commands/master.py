"""`busshare master --config site.toml`: the real master process, on CAN or (``--modbus``) a Modbus RTU line."""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import time
from typing import Any

from ...core.budget import BudgetPolicy
from ...core.config import Config
from ...core.config import config_problems
from ...core.config import load_config
from ...core.setpoint import Topics
from ...errors import ConfigError
from ...io.budget_feed import BudgetFeed
from ...io.runtime import Runtime
from ...io.runtime import event_record
from ...master import Master
from ...transport.base import Transport
from ...transport.modbus import registers as mm
from ...transport.modbus.master import ModbusMasterTransport
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


def add_parser(subparsers: Any) -> None:
    p = command_parser(
        subparsers, "master",
        "Run the master: heartbeats, learns who is on the bus, hands out the circuit's current "
        "(cut first, grant after the acks).  On SIGINT/SIGTERM it sends a leaving heartbeat so servants fail "
        "safe at once.  Without -i the bus is udp_multicast (python-can's CAN_INTERFACE or ~/can.conf win if set).",
    )
    p.add_argument("--config", required=True, metavar="SITE.toml", help="the installation's config file")
    p.add_argument("--master-id", type=opt.master_id, default=None, metavar="N",
                   help="override the config's master id (0-15)")
    p.add_argument("--epoch", type=opt.byte, default=None, metavar="N",
                   help="boot epoch 0-255 (default: random, so servants see a reboot)")
    add_output_arguments(p)
    add_bus_arguments(p, Role.MASTER)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    epoch = secrets.randbelow(256) if args.epoch is None else args.epoch
    transport: Transport
    if on_modbus(args):
        # the line decides the timing (docs/MODBUS.md)
        addresses = [s.address for s in config.servants]
        config = dataclasses.replace(config, timing=mm.modbus_timing(args.baud, len(addresses), args.reply_timeout))
        _check_budget_on_the_line(config, args)
        transport = ModbusMasterTransport(open_line(args), args.baud, addresses, reply_timeout=args.reply_timeout)
    else:
        transport = open_can(args)
    clock = time.monotonic
    now = clock()
    node = Master(config, now, master_id=args.master_id, epoch=epoch, budget=BudgetPolicy.from_config(config, now))
    feed = None if config.budget is None else BudgetFeed.from_config(node, config, clock)
    emit = printer(args.json, node_times(args, now))
    try:
        emit(event_record(now, "started", 0, f"master id {args.master_id or config.master_id} epoch {epoch} "
                                             f"limit {config.limit_da / 10:.1f} A, {_where(args, config)}"))
        if config.budget is not None:
            emit(event_record(now, "budget", 0, budget_words(config)))
    except OSError:  # stdout fails (| head, a full disk): stop before starting, the bus or port closed
        transport.shutdown()
        raise
    runtime = Runtime(node, transport, clock=clock, on_record=emit, status_interval=args.status_interval,
                      tick_period=config.timing.tick_period, feed=feed)
    runtime.run(duration=args.duration)
    return 0


def budget_words(config: Config) -> str:
    """The "budget" line after "started": where the limit comes from, and where it is published."""
    b = config.budget
    assert b is not None
    parts = [f"static {config.limit_da / 10:.1f} A, fallback {b.fallback_da / 10:.1f} A"]
    if b.meter is not None:
        parts.append(f"mains meter {b.meter.kind.value} at {b.meter.link} every {b.meter.poll_s:g} s "
                     f"(main {(b.main_limit_da or 0) / 10:.1f} A less {b.margin_da / 10:.1f} A)")
    if b.mqtt is not None:
        topics = Topics(config.site_id)
        parts.append(f"MQTT {b.mqtt.broker}: setpoints on {topics.limit_set}, the limit on {topics.limit}")
    return "; ".join(parts)


def _check_budget_on_the_line(config: Config, args: argparse.Namespace) -> None:
    """The line's timing lengthens the compliance window: the file's budget must still fit it (rule 9)."""
    found = [p for p in config_problems(config) if p.key.startswith("budget.")]
    if found:
        p, n = found[0], len(config.servants)
        raise ConfigError(f"{p.text}, with this Modbus line's timing ({args.baud} baud, {n} servant{'' if n == 1 else 's'}, "
                          f"--reply-timeout {args.reply_timeout:g} s)", p.key, args.config)


def _where(args: argparse.Namespace, config: Config) -> str:
    """The end of the "started" line: the servants and, on Modbus, the line and its timing."""
    if not on_modbus(args):
        return f"{len(config.servants)} servants configured"
    timing, n = config.timing, len(config.servants)
    return (f"{n} servants on Modbus {args.modbus} at {args.baud} baud (heartbeat "
            f"{timing.heartbeat_period:.2f} s, failsafe {timing.failsafe_timeout:.2f} s, bound cycle "
            f"{mm.cycle_wire_time(args.baud, n) * 1000:.0f} ms)")
