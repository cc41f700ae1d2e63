"""Open findings the simulator has made in the core, recognised precisely so tests can name them.

A test that hits one of these reports it with ``pytest.xfail`` and the seeds
involved; any other violation still fails the test.  Delete an entry once the
core is fixed: the tests then hold the core to the full bound.

There are no open findings today. The last two (issue 10 points 1 and 4: a
servant that hears but is not heard, chaos seed 1505; a servant in failsafe
re-acking a re-sent SET_LIMIT, chaos seed 1983) are fixed in the core
(docs/SIM.md, findings 16, 21, 29 and 30), so every violation fails its test.
"""

from __future__ import annotations


def known_finding(text: str) -> str | None:
    """The open core finding this violation text shows, or None (there are none today)."""
    return None
