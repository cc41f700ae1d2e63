"""The closing ``summary`` record of ``sim``, ``monitor`` and ``decode`` (docs/JSON.md).

One kind for all three: ``command`` says which, ``start_t`` is when the run or
the capture started (in the chosen time base) and ``duration_s`` how long it
lasted; the rest is what that command counts, under the same names wherever
two commands count the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..protocol.kinds import E2E_KINDS
from ..protocol.kinds import FOREIGN_KINDS
from .records import RecordKind
from .records import TimeBase
from .records import serial_hex

Record = dict[str, Any]


def _head(command: str, start_t: float | None, duration_s: float | None) -> Record:
    return {"record": RecordKind.SUMMARY.value, "command": command, "start_t": start_t,
            "duration_s": None if duration_s is None else round(duration_s, 3)}


def sim_summary(fields: Mapping[str, Any], duration_s: float, interrupted: bool) -> Record:
    """``fields``: the simulator's summary with currents in A (``sim_seconds`` becomes ``duration_s``)."""
    rec = _head("sim", 0.0, duration_s)
    rec.update((k, v) for k, v in fields.items() if k != "sim_seconds")
    rec["interrupted"] = interrupted
    return rec


def monitor_summary(start_t: float, duration_s: float, frames: int, rejected: Mapping[str, int],
                    anomalies: Mapping[str, int], link: Mapping[str, Any]) -> Record:
    """``rejected``: frames not acted on by reason, in decode's words (E2E kinds, malformed kinds and the
    kinds that are not the protocol's); ``link``: the transport's own counts (``error_frames`` on CAN,
    ``modbus`` on RS-485)."""
    rec = _head("monitor", start_t, duration_s)
    rec.update(frames=frames, rejected=sum(rejected.values()),
               e2e_errors={k: n for k, n in sorted(rejected.items()) if k in E2E_KINDS},
               malformed={k: n for k, n in sorted(rejected.items()) if k not in (*E2E_KINDS, *FOREIGN_KINDS)},
               not_protocol={k: n for k, n in sorted(rejected.items()) if k in FOREIGN_KINDS},
               anomalies=dict(sorted(anomalies.items())), **link)
    return rec


def decode_summary(totals: Mapping[str, Any], source: str, first_t: float | None, span_s: float | None,
                   times: TimeBase, reconstruction: Mapping[str, Any] | None = None) -> Record:
    """The closing record of ``decode``: its totals, and with ``--summary`` the installation reconstructed.

    ``span_s``: from the capture's earliest timestamp to its latest (a reordered capture's first and last
    records are not its ends); ``first_t``: the first record's, the base of the reconstruction's times.

    The reconstruction (``decode_summary.CaptureSummary.result``) counts its times in seconds from the
    capture's first frame (``*_s``); here they become points in time (``*_t``) in the chosen base, and
    serials are written as everywhere else.
    """
    start = times.opt(first_t)
    rec = _head("decode", start, span_s)
    rec["source"] = source
    rec.update(totals)
    if reconstruction is None:
        return rec

    def at(offset: float | None) -> float | None:
        return None if offset is None or first_t is None else times(first_t + offset)

    r = dict(reconstruction)
    for key in ("source", "records", "first_t", "duration_s"):
        r.pop(key, None)
    r["masters"] = [{**_without(m, "first_s", "last_s"), "first_t": at(m["first_s"]), "last_t": at(m["last_s"])}
                    for m in r.get("masters", [])]
    r["servants"] = [
        {"address": s["address"], "serial_tags": s["serials"], "serials": [serial_hex(x) for x in s["join_serials"]],
         **_without(s, "address", "serials", "join_serials", "first_s", "last_s"),
         "first_t": at(s["first_s"]), "last_t": at(s["last_s"])}
        for s in r.get("servants", [])
    ]
    r["heartbeat_gaps"] = [{"t": at(g["t_s"]), "detail": g["text"]} for g in r.get("heartbeat_gaps", [])]
    r["master_leaving_t"] = [at(x) for x in r.pop("master_leaving_s", [])]
    r["limit_changes"] = [{"t": at(c["t_s"]), "limit_a": c["limit_a"]} for c in r.get("limit_changes", [])]
    r["failsafe_entries"] = [{**_without(e, "t_s"), "t": at(e["t_s"])} for e in r.get("failsafe_entries", [])]
    r["over_limit"] = [{**_without(e, "start_s", "end_s"), "start_t": at(e["start_s"]), "end_t": at(e["end_s"])}
                       for e in r.get("over_limit", [])]
    young = r.get("over_limit_at_end")
    if young is not None:
        r["over_limit_at_end"] = {"start_t": at(young["start_s"]), **_without(young, "start_s")}
    rec.update(r)
    return rec


def _without(d: Mapping[str, Any], *keys: str) -> Record:
    return {k: v for k, v in d.items() if k not in keys}
