"""Open findings the simulator has made in the core, recognised precisely so tests can name them.

A test that hits one of these reports it with ``pytest.xfail`` and the seeds
involved; any other violation still fails the test.  Delete an entry (and its
uses) once the core is fixed: the tests then hold the core to the full bound.
"""

from __future__ import annotations

import re

_MEASURED_ACK = re.compile(r"Ack\(address=\d+, txn=\d+, applied_da=(\d+), measured_da=(\d+), how=<AckHow.MEASURED")

TOLERANCE_ACK = (
    "core finding: a servant acks a cut MEASURED while its car still draws up to its tolerance (1 A) above the "
    "new limit, and the master re-grants the whole difference at once, so the total drawn exceeds the limit"
)


def is_tolerance_ack(text: str) -> bool:
    """A 'drawn' violation preceded by a MEASURED ack whose measured current is above the applied limit."""
    first = text.splitlines()[0] if text else ""
    if " drawn: " not in first:
        return False
    return any(int(m) > int(a) for a, m in _MEASURED_ACK.findall(text))
