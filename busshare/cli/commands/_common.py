"""Shared bits of the node commands (`master`, `servant`): output options and record printing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any
from typing import TextIO

from ...report.records import RecordKind
from ...report.records import TimeBase
from ...report.records import TimeMode
from . import _options as opt
from ._stdout import silence

Record = dict[str, Any]


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status-interval", type=opt.seconds(low=opt.MIN_STATUS_INTERVAL), default=None, metavar="S",
                   help="print a one-line status every S seconds (at least 0.1)")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout: event and status records (docs/JSON.md)")
    add_time_argument(p)
    p.add_argument("--duration", type=opt.duration, default=None, metavar="S", help="exit gracefully after S seconds")


def add_time_argument(p: argparse.ArgumentParser, absolute: str = "UNIX time", relative: str = "since the start",
                      note: str = "default relative for text, absolute for --json") -> None:
    """The ``--time`` choice every command that prints times offers (docs/JSON.md)."""
    p.add_argument("--time", choices=[m.value for m in TimeMode], default=None,
                   help=f"times printed: 'absolute' ({absolute}) or 'relative' (seconds {relative}); {note}")


def node_times(args: argparse.Namespace, start: float) -> TimeBase:
    """How a node process (clock: ``time.monotonic()``, started at ``start``) prints its times."""
    return TimeBase.monotonic(TimeMode.choose(args.time, args.json), start)


UNHEARD = ("unknown", "absent", "silent")  # the master counts these at a worst case, not at a grant


def _committed(rec: Record) -> str:
    """What the master counts against the limit, with what it merely holds for units it does not hear.

    Unheard units count at their worst case (an unknown one at its maximum, rule 7; a silent one at
    its failsafe, rule 3), so the sum may exceed the limit while nothing is granted: a reservation.
    """
    of = f" of {rec['limit_a']:.1f} A" if "limit_a" in rec else ""
    if isinstance(rec.get("budget"), dict):  # a moving budget: where the limit comes from now
        of += f" ({rec['budget']['source']})"
    held = [v["committed_a"] for v in (rec.get("servants") or {}).values() if v["state"] in UNHEARD]
    if not any(held):
        return f"committed {rec['committed_a']:.1f} A{of}"
    reserved = sum(held)
    units = "unit" if len(held) == 1 else "units"
    return (f"committed {rec['committed_a'] - reserved:.1f} A{of}, plus {reserved:.1f} A reserved for "
            f"{len(held)} unheard {units}")


def _human(rec: Record, times: TimeBase) -> str:
    t = round(times(rec["t"]), 3) + 0.0
    if rec.get("record") == RecordKind.STATUS:
        parts = []
        if "offer_a" in rec:
            parts.append(f"offer {rec['offer_a']:.1f} A" + (" FAILSAFE" if rec.get("failsafe") else "")
                         + (" EV-STOPPED" if rec.get("ev_stopped") else ""))
        if "committed_a" in rec:
            parts.append(_committed(rec))
        if rec.get("servants"):
            parts.append(" ".join(f"{a}:{v['state']} {v['committed_a']:.1f}" for a, v in rec["servants"].items()))
        age = rec.get("heartbeat_age")
        if "offer_a" in rec:
            parts.append("no heartbeat yet" if age is None else f"heartbeat {age:.2f} s ago")
        parts.append(f"rx {rec['frames_in']} tx {rec['sent']} rejected {rec['rejected']}"
                     + (f" send-failed {rec['send_failed']}" if rec["send_failed"] else "")
                     + (f" {str(rec.get('link_down', 'bus-off')).upper()}" if rec.get("bus_off") else ""))
        return f"{t:9.3f} status: " + " | ".join(parts)
    who = "" if rec.get("address") is None else f" [{rec['address']}]"
    return f"{t:9.3f} {rec['event']}{who}: {rec.get('detail', '')}"


def printer(as_json: bool, times: TimeBase, out: TextIO | None = None,
            skip: frozenset[str] = frozenset()) -> Callable[[Record], None]:
    """A record sink: JSON lines or human lines, flushed (pipes into tests and tools).  Default: sys.stdout.

    A stdout that fails (closed, full) raises its OSError once, to stop the command; the records of its shutdown
    are then dropped.
    Records come in the node's own clock; ``times`` maps ``t``, ``last_heartbeat`` and ``last_heard`` to the printed base.
    """

    closed = False

    def emit(rec: Record) -> None:
        nonlocal closed
        if closed:
            return
        stream = out if out is not None else sys.stdout
        try:
            write(stream, rec)
        except OSError:  # the reader went away (| head) or a full disk: stop, but what follows is the shutdown
            closed = True
            silence(stream)
            raise

    def write(stream: TextIO, rec: Record) -> None:
        if as_json:
            shown = dict(rec, t=times(rec["t"]))
            for key in ("last_heartbeat", "last_heard"):
                if key in rec:
                    shown[key] = times.opt(rec[key])
            stream.write(json.dumps(shown) + "\n")
        elif rec.get("event") in skip:
            return
        else:
            stream.write(_human(rec, times) + "\n")
        stream.flush()

    return emit
