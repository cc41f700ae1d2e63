"""Behaviour unchanged: the simulator's frames and summaries match the recorded golden traces.

A refactor keeps these identical.  A change that is meant to alter what the simulator does
re-records them with ``python tools/golden.py --record`` and says why in its commit message.
"""

from __future__ import annotations

import pytest

from tools import golden

GOLDEN = golden.load()


@pytest.mark.slow
@pytest.mark.parametrize("case", golden.cases())
def test_the_simulator_still_does_what_it_did(case: str) -> None:
    assert case in GOLDEN, f"{case} has no golden trace: python tools/golden.py --record"
    assert golden.trace(case) == GOLDEN[case]


def test_a_changed_trace_is_caught() -> None:
    """The comparison can fail: a run of another seed does not match the recorded one."""
    other = golden.trace("scenario:story")
    assert other != GOLDEN["scenario:faults"]
