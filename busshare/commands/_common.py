"""Shared bits of the node commands (`master`, `servant`): amps parsing and record printing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from ..errors import UserError

Record = dict[str, Any]


def amps_to_da(text: str, what: str) -> int:
    """'32' or '6.5' (A) -> 0.1 A units; one-line error otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{what}: {text!r} is not a current in A") from None
    if not 0 <= value <= 1638.3:
        raise UserError(f"{what}: {value:g} A out of range")
    return round(value * 10)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status-interval", type=float, default=None, metavar="S",
                   help="print a one-line status every S seconds")
    p.add_argument("--json", action="store_true",
                   help="JSON lines on stdout (times are time.monotonic() seconds, comparable across processes)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="exit gracefully after S seconds")


def since(t: float, start: float) -> float:
    """Seconds from `start` to `t` as printed (ms), never -0.000.

    Records carry `t` rounded to 6 digits (runtime) while `start` is a raw clock
    reading, so an event at the start instant comes out a hair negative.
    """
    return round(t - start, 3) + 0.0  # -0.0 + 0.0 == 0.0


UNHEARD = ("unknown", "absent", "silent")  # the master counts these at a worst case, not at a grant


def _committed(rec: Record) -> str:
    """What the master counts against the limit, with what it merely holds for units it does not hear.

    Unheard units count at their worst case (an unknown one at its maximum, rule 7; a silent one at
    its failsafe, rule 3), so the sum may exceed the limit while nothing is granted: a reservation.
    """
    of = f" of {rec['limit_a']:.1f} A" if "limit_a" in rec else ""
    held = [v["committed_a"] for v in (rec.get("servants") or {}).values() if v["state"] in UNHEARD]
    if not any(held):
        return f"committed {rec['committed_a']:.1f} A{of}"
    reserved = sum(held)
    units = "unit" if len(held) == 1 else "units"
    return (f"committed {rec['committed_a'] - reserved:.1f} A{of}, plus {reserved:.1f} A reserved for "
            f"{len(held)} unheard {units}")


def _human(rec: Record, start: float) -> str:
    t = since(rec["t"], start)
    kind = rec["event"]
    if kind == "status":
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
    return f"{t:9.3f} {kind}{who}: {rec.get('detail', '')}"


def printer(as_json: bool, start: float, out: TextIO | None = None,
            skip: frozenset[str] = frozenset()) -> Callable[[Record], None]:
    """A record sink: JSON lines or human lines, flushed (pipes into tests and tools).  Default: sys.stdout."""

    def emit(rec: Record) -> None:
        stream = out if out is not None else sys.stdout
        if as_json:
            stream.write(json.dumps(rec) + "\n")
        elif rec["event"] in skip:
            return
        else:
            stream.write(_human(rec, start) + "\n")
        stream.flush()

    return emit
