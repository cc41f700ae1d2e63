"""``busshare check-config site.toml``: every problem of an installation file, one line each.

``config.parse_config`` stops at the first problem, which is right for a
program starting up; an installer fixing a file wants them all.  So the file
is checked in parts (site, timing, each servant on its own, then the whole),
each through the same validator, and every distinct problem is listed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, parse_config
from ..errors import UserError
from ..report.records import RecordKind, serial_hex
from . import SUMMARIES

_GOOD_SERVANT = {"address": 1, "max_a": 6}  # a servant no site check can object to
_ROOMY_SITE = {"limit_a": 1638}  # a site no servant check can object to


def add_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "check-config",
        help=SUMMARIES["check-config"],
        description="Validate an installation TOML file: every problem on its own line (exit 1), "
        "or what the installation is (exit 0).",
    )
    p.add_argument("config", metavar="site.toml")
    p.add_argument("--json", action="store_true",
                   help="one JSON object, a config record: ok, problems, and the installation (docs/JSON.md)")
    p.set_defaults(func=run)


def _problem(doc: dict[str, Any]) -> str | None:
    try:
        parse_config(_dump(doc))
    except ConfigError as exc:
        return str(exc)
    return None


def _dump(doc: dict[str, Any]) -> str:
    """Minimal TOML writer for the shapes a config has (tables of scalars, arrays of tables)."""
    out: list[str] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            out.append(f"[{key}]")
            out += [f"{k} = {_scalar(v)}" for k, v in value.items()]
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for item in value:
                out.append(f"[[{key}]]")
                out += [f"{k} = {_scalar(v)}" for k, v in item.items()]
        else:
            out.insert(0, f"{key} = {_scalar(value)}")
    return "\n".join(out) + "\n"


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_scalar(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


_ALIASES = {"min": "min_a", "max": "max_a", "failsafe": "failsafe_a", "tolerance": "tolerance_a",
            "limit": "limit_a", "breaker": "breaker_a"}


def _culprit(problem: str, table: dict[str, Any]) -> str | None:
    """The key of ``table`` a validator message is about (the first one it names)."""
    best: tuple[int, str] | None = None
    for word in re.finditer(r"[A-Za-z_]+", problem.split(":", 1)[-1] if problem.startswith("servant") else problem):
        name = word.group(0)
        key = name if name in table else _ALIASES.get(name)
        if key is not None and key in table and (best is None or word.start() < best[0]):
            best = (word.start(), key)
    return None if best is None else best[1]


def _table_problems(table: dict[str, Any], check: Callable[[dict[str, Any]], str | None],
                    required: dict[str, Any]) -> list[str]:
    """Every problem of one table: report one, drop (or repair) the key it names, check again."""
    t = dict(table)
    found: list[str] = []
    for _ in range(len(t) + 2):
        p = check(t)
        if p is None:
            break
        found.append(p)
        key = _culprit(p, t)
        missing = [k for k in required if k not in t]
        if missing:
            t[missing[0]] = required[missing[0]]
        elif key is None:
            break
        elif key in required:
            t[key] = required[key]
        else:
            del t[key]
    return found


def problems(text: str) -> list[str]:
    """Every problem of a config file's text, one line each; [] when it is valid."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [f"not valid TOML: {str(exc).splitlines()[0]}"]
    found: list[str] = []

    def add(p: str | None) -> None:
        if p is not None and p not in found:
            found.append(p)

    extra = sorted(set(doc) - {"site", "timing", "servant"})
    for key in extra:
        add(f"config: unknown key {key!r} (known: servant, site, timing)")
    site, timing, servants = doc.get("site", {}), doc.get("timing", {}), doc.get("servant", [])
    if isinstance(site, dict):
        for p in _table_problems(site, lambda t: _problem({"site": t, "servant": [_GOOD_SERVANT]}), {}):
            add(p)
    else:
        add("[site] must be a table")
    if isinstance(timing, dict):
        for p in _table_problems(timing, lambda t: _problem({"site": _ROOMY_SITE, "timing": t,
                                                              "servant": [_GOOD_SERVANT]}), {}):
            add(p)
    else:
        add("[timing] must be a table")
    if not isinstance(servants, list):
        add("servants are written as [[servant]] tables")
        servants = []
    for i, s in enumerate(servants):
        if not isinstance(s, dict):
            add(f"servant #{i + 1}: must be a table")
            continue
        address = s.get("address")
        fixed = {"address": 1, "max_a": 80}
        for p in _table_problems(s, lambda t: _problem({"site": _ROOMY_SITE, "servant": [t]}), fixed):
            p = p.replace("servant #1", f"servant #{i + 1}")
            if isinstance(address, int) and not isinstance(address, bool):
                p = re.sub(r"^servant 1:", f"servant {address}:", p)
            add(p)
    addresses: dict[Any, int] = {}
    for s in servants:
        if isinstance(s, dict) and "address" in s:
            addresses[s["address"]] = addresses.get(s["address"], 0) + 1
    for address, n in addresses.items():
        if n > 1:
            add(f"servant {address}: duplicate address ({n} servants use it)")
    if not found:
        try:
            parse_config(text)
        except ConfigError as exc:
            add(str(exc))
    return found


def explain(cfg: Config) -> dict[str, Any]:
    """What a valid installation is, in the terms an installer checks."""
    from ..busload import busload

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
    load = busload(125000, n, heartbeat_period=cfg.timing.heartbeat_period, status_period=cfg.timing.status_period)
    return {
        "limit_a": cfg.limit_da / 10,
        "breaker_a": cfg.breaker_a,
        "master_id": cfg.master_id,
        "servants": [
            {"address": s.address, "min_a": s.min_da / 10, "max_a": s.max_da / 10, "failsafe_a": s.failsafe_da / 10,
             "priority": s.priority, "meter": s.has_meter, "serial": serial_hex(s.serial) if s.serial else None}
            for s in cfg.servants
        ],
        "failsafe_sum_a": failsafe_sum / 10,
        "failsafe_within_s": round(cfg.timing.failsafe_timeout + cfg.timing.tick_period, 3),
        "busload_125k_worst_percent": round(load.worst_percent, 2),
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
    lines += [f"note: {n}" for n in e["notes"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path = args.config
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UserError(f"cannot read {path}: {reason}") from None
    found = problems(text)
    if found:
        if args.json:
            print(json.dumps({"record": RecordKind.CONFIG.value, "ok": False, "config": path, "problems": found}))
        else:
            for p in found:
                print(f"{path}: {p}")
            print(f"{path}: {len(found)} problem{'s' if len(found) > 1 else ''}")
        return 1
    e = explain(parse_config(text))
    if args.json:
        print(json.dumps({"record": RecordKind.CONFIG.value, "ok": True, "config": path, "problems": [], **e}))
    else:
        print(format_explanation(path, e))
    return 0
