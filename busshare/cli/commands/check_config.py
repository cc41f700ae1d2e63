"""``busshare check-config site.toml``: every problem of an installation file, one line each.

``config.load_config`` stops at the first problem, which is right for a
program starting up; an installer fixing a file wants them all, so this
lists ``config.problems`` of the file's mapping: each with its key path and
the value as written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ...core.config import Config
from ...core.config import ConfigError
from ...core.config import config_from_mapping
from ...core.config import mapping_from_bytes
from ...core.config import problems
from ...errors import UserError
from ...errors import printable
from ...report.budget_explain import budget_notes
from ...report.budget_explain import budget_record
from ...report.records import RecordKind
from ...report.records import serial_hex
from . import command_parser
from ._stdout import silence


def add_parser(subparsers: Any) -> None:
    p = command_parser(
        subparsers, "check-config",
        "Validate an installation TOML file: every problem on its own line, with its key path "
        "(exit 1), or what the installation is (exit 0).",
    )
    p.add_argument("config", metavar="site.toml")
    p.add_argument("--json", action="store_true",
                   help="one JSON object, a config record: ok, problems, and the installation (docs/JSON.md)")
    p.set_defaults(func=run)


def explain(cfg: Config) -> dict[str, Any]:
    """What a valid installation is, in the terms an installer checks."""
    from ...analysis.busload import busload

    n = len(cfg.servants)
    failsafe_sum = sum(s.failsafe_da for s in cfg.servants)
    min_sum = sum(s.min_da for s in cfg.servants)
    notes = []
    if min_sum > cfg.limit_da:
        fit = cfg.limit_da // max(s.min_da for s in cfg.servants)
        notes.append(f"the minimums sum to {min_sum / 10:.1f} A > limit: at most about {fit} cars charge at "
                     "once, the others wait their turn (rotation)")
    if all(s.failsafe_da == 0 for s in cfg.servants):
        notes.append("every failsafe is 0 A: cars pause whenever the master is silent")
    for s in cfg.servants:
        if s.max_da > cfg.limit_da:
            notes.append(f"servant {s.address}: max {s.max_da / 10:.1f} A is above the whole limit "
                         f"(it never gets more than {cfg.limit_da / 10:.1f} A)")
    notes += budget_notes(cfg)
    load = busload(125000, n, heartbeat_period=cfg.timing.heartbeat_period, status_period=cfg.timing.status_period)
    if load.worst_percent > 100:  # (as busload warns)
        notes.append(f"at 125 kbit/s the worst case needs {load.worst_percent:.0f} % of the bus: raise heartbeat_period "
                     "and status_period, or use a faster bus")
    return {
        "limit_a": cfg.limit_da / 10,
        "breaker_a": cfg.breaker_a,
        "master_id": cfg.master_id,
        "site_id": cfg.site_id,
        "servants": [
            {"address": s.address, "min_a": s.min_da / 10, "max_a": s.max_da / 10, "failsafe_a": s.failsafe_da / 10,
             "priority": s.priority, "meter": s.has_meter, "serial": serial_hex(s.serial) if s.serial else None}
            for s in cfg.servants
        ],
        "failsafe_sum_a": failsafe_sum / 10,
        "failsafe_within_s": round(cfg.timing.failsafe_timeout + cfg.timing.tick_period, 3),
        "busload_125k_worst_percent": round(load.worst_percent, 2),
        "budget": budget_record(cfg),
        "notes": notes,
    }


def format_explanation(path: str, e: dict[str, Any]) -> str:
    breaker = "" if e["breaker_a"] is None else f" (breaker {e['breaker_a']:g} A)"
    lines = [
        f"{path}: ok",
        f"limit {e['limit_a']:.1f} A{breaker}, master id {e['master_id']}, {len(e['servants'])} servants",
    ]
    for s in e["servants"]:
        meter = "meter" if s["meter"] else "no meter"
        serial = "" if s["serial"] is None else f"  serial {s['serial']}"
        lines.append(f"  servant {s['address']:>2}: {s['min_a']:.1f}-{s['max_a']:.1f} A, failsafe {s['failsafe_a']:.1f} A, "
                     f"priority {s['priority']}, {meter}{serial}")
    lines.append(f"failsafe currents sum to {e['failsafe_sum_a']:.1f} A (<= limit {e['limit_a']:.1f} A); servants "
                 f"fail safe within {e['failsafe_within_s']:g} s of the last heartbeat")
    lines.append(f"CAN bus load at 125 kbit/s: {e['busload_125k_worst_percent']:.2f} % worst case")
    if e["budget"] is not None:
        lines.append(f"moving budget (site id {json.dumps(e['site_id'])}):")
        lines += [f"  {line}" for line in e["budget"]["meaning"]]
    lines += [f"note: {n}" for n in e["notes"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path = args.config
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        doc = mapping_from_bytes(data, path)
    except ConfigError as exc:  # not UTF-8, not TOML: the file has one problem
        found = [exc.message]
    else:
        found = [str(p) for p in problems(doc)]
    if found:
        try:
            if args.json:
                print(json.dumps({"record": RecordKind.CONFIG.value, "ok": False, "config": path, "problems": found}))
            else:
                shown = printable(path)
                for p in found:
                    print(f"{shown}: {p}")
                print(f"{shown}: {len(found)} problem{'s' if len(found) > 1 else ''}", flush=True)
        except BrokenPipeError:  # `check-config site.toml | grep -q KEY`: the verdict still stands
            silence(sys.stdout)
        return 1
    e = explain(config_from_mapping(doc, path))
    if args.json:
        print(json.dumps({"record": RecordKind.CONFIG.value, "ok": True, "config": path, "problems": [], **e}))
    else:
        print(format_explanation(printable(path), e))
    return 0
