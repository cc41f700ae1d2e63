"""Open findings the simulator has made in the core, recognised precisely so tests can name them.

A test that hits one of these reports it with ``pytest.xfail`` and the seeds
involved; any other violation still fails the test.  Delete an entry once the
core is fixed: the tests then hold the core to the full bound.

Open today: two of issue 10's core findings, which the chaos sweep's
generator 2 draws (docs/SIM.md, findings) and whose fixes are under way:

* point 1, a servant that hears but is not heard: chaos seed 1505
  (rule1-offered 31.6 A on 28.7 A);
* point 4, a servant in failsafe re-acks a re-sent SET_LIMIT without leaving
  failsafe: chaos seed 1983 (waste, 4.7 A for 7 s).

Each is recognised from the violation and its trace, by the shape the issue
describes, not by seed.
"""

from __future__ import annotations

import re

from busshare.config import Timing

_HEAD = re.compile(r"seed \d+: t=([\d.]+) s (\S+): ")
_MARK = re.compile(r"^\s+([\d.]+) (\S+) \[(\d+)\] (.*)$")


def _marks(text: str) -> list[tuple[float, str, int, str]]:
    out = []
    for line in text.splitlines():
        m = _MARK.match(line)
        if m:
            out.append((float(m.group(1)), m.group(2), int(m.group(3)), m.group(4)))
    return out


def _mute_servant_counted_down(t: float, marks: list[tuple[float, str, int, str]]) -> bool:
    """Issue 10 point 1: a unit partitioned 'out' (it hears the master, is not heard) went silent, and the
    violation comes at least silent_count_after later, with the partition not healed."""
    after = Timing().silent_count_after
    for i, (_, kind, unit, detail) in enumerate(marks):
        if kind != "partition" or not detail.endswith(" out"):
            continue
        later = marks[i + 1:]
        if any(k == "heal" and u == unit for _, k, u, _ in later):
            continue
        if any(k == "servant-silent" and u == unit and t >= ts + after for ts, k, u, _ in later):
            return True
    return False


def _failsafe_reack(marks: list[tuple[float, str, int, str]]) -> bool:
    """Issue 10 point 4: the master took an ACK from a unit that entered failsafe and never left it."""
    for i, (_, kind, unit, detail) in enumerate(marks):
        if kind != "failsafe" or not detail.startswith(f"s{unit} offers"):
            continue
        later = marks[i + 1:]
        if any(k == "failsafe-end" and u == unit for _, k, u, _ in later):
            continue
        if any(k in ("acked", "grant-acked") and u == unit for _, k, u, _ in later):
            return True
    return False


def known_finding(text: str) -> str | None:
    """The open core finding this violation text shows, or None."""
    head = _HEAD.search(text)
    if head is None:
        return None
    t, check = float(head.group(1)), head.group(2)
    marks = _marks(text)
    if check in ("rule1-offered", "drawn") and _mute_servant_counted_down(t, marks):
        return "issue 10 point 1: a servant that hears but is not heard was counted at its failsafe"
    if check == "waste" and _failsafe_reack(marks):
        return "issue 10 point 4: a servant in failsafe re-acked a re-sent SET_LIMIT"
    return None
