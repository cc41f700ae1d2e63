"""``busshare busload``: the protocol's CAN bus utilisation for an installation size."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ...analysis.busload import BusLoad
from ...analysis.busload import busload
from ...errors import UserError
from ...report.records import RecordKind
from . import _options as opt
from . import command_parser


def add_parser(subparsers: Any) -> None:
    p = command_parser(
        subparsers, "busload",
        "Bus utilisation computed from the real encoded frames: exact bit stuffing for the "
        "steady state, the worst-case stuffing bound for the worst case.",
    )
    p.add_argument("-b", "--bitrate", type=opt.can_bitrate, default=125000,
                   help=f"bit rate in bit/s, {opt.CAN_BITRATES[0]}-{opt.CAN_BITRATES[1]} (default 125000)")
    p.add_argument("count", nargs="?", type=opt.servant_count, metavar="SERVANTS", help="number of servants (as --servants)")
    p.add_argument("--servants", type=opt.servant_count, default=None, help="number of servants, 1-62 (default 4)")
    p.add_argument("--extended", action="store_true", help="29-bit identifiers")
    p.add_argument("--heartbeat-period", type=opt.seconds(), default=None, metavar="S",
                   help="seconds (default: the protocol's)")
    p.add_argument("--status-period", type=opt.seconds(), default=None, metavar="S",
                   help="seconds (default: the protocol's)")
    p.add_argument("--json", action="store_true", help="one JSON object, a busload record (docs/JSON.md)")
    p.set_defaults(func=run)


def format_load(r: BusLoad) -> str:
    ids = "29-bit" if r.extended else "11-bit"
    return "\n".join([
        f"{r.servants} servants + master at {r.bitrate} bit/s, {ids} ids "
        f"(heartbeat every {r.heartbeat_period:g} s, status every {r.status_period:g} s)",
        f"  frames:        {r.frames_per_s:.1f} /s",
        f"  steady state:  {r.steady_percent:.2f} %  ({r.steady_bits_per_s:.0f} bit/s, "
        f"{r.mean_frame_bits:.1f} bits/frame with exact stuffing)",
        f"  worst case:    {r.worst_percent:.2f} %  ({r.worst_bits_per_s:.0f} bit/s, "
        f"{r.worst_frame_bits} bits/frame with worst-case stuffing)",
        f"  reallocation:  {r.realloc_frames} frames = {r.realloc_ms:.1f} ms of bus time "
        f"(every servant: request, cut, ack, grant, ack)",
    ])


def load_record(r: BusLoad) -> dict[str, Any]:
    """The ``busload`` record: periods and the reallocation time in seconds, as every record has them."""
    d: dict[str, Any] = {"record": RecordKind.BUSLOAD.value}
    for key, value in r.as_dict().items():
        if key in ("heartbeat_period", "status_period"):
            key += "_s"
        elif key == "realloc_ms":
            key, value = "realloc_s", value / 1000
        d[key] = value
    return d


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.servants is not None and args.count != args.servants:
        raise UserError(f"two servant counts: {args.count} and --servants {args.servants}")
    servants = args.count if args.count is not None else args.servants if args.servants is not None else 4
    r = busload(args.bitrate, servants, args.extended, args.heartbeat_period, args.status_period)
    if r.worst_percent > 100:
        print(f"busshare busload: warning: the worst case needs {r.worst_percent:.0f} % of the bus: "
              f"{r.bitrate} bit/s cannot carry {r.servants} servants", file=sys.stderr)
    print(json.dumps(load_record(r)) if args.json else format_load(r))
    return 0
