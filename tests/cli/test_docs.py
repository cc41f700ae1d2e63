"""Every output shown in README.md and docs/*.md is what a fresh run prints (tools/regen_docs.py).

Each marked block is regenerated and compared with the docs: exactly for deterministic commands, the
simulator and stored captures; after the block's documented normalisation (times, frame counters, the
order in which several units answer at once, pty numbers) for sessions of real processes.  A session
that differs is run once more before the test fails: a real multi-process run on a loaded machine can
meet a rare race (a unit booting between two heartbeats), and only a difference seen twice is drift.
Benchmark figures are measurements: compared only with BUSSHARE_DOCS_BENCH=1 (they take many minutes).
When a block fails, `python tools/regen_docs.py` rewrites the docs (review the diff: it is the change).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import doc_sessions  # noqa: E402
import regen_docs  # noqa: E402

BLOCKS = regen_docs.all_blocks()


@pytest.fixture(scope="module")
def ctx() -> Iterator[regen_docs.Context]:
    c = regen_docs.Context()
    yield c
    c.close()


def _param(b: regen_docs.Block) -> object:
    marks = [pytest.mark.slow] if b.recipe in ("session", "bench") else []
    return pytest.param(b, id=b.name, marks=marks)


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_the_shown_output_is_what_a_fresh_run_prints(block: regen_docs.Block, ctx: regen_docs.Context) -> None:
    if block.recipe == "bench" and not os.environ.get("BUSSHARE_DOCS_BENCH"):
        pytest.skip("benchmark figures: set BUSSHARE_DOCS_BENCH=1 to measure them again")
    try:
        diff = regen_docs.drift(block, regen_docs.regenerate(block, ctx))
    except doc_sessions.MissingTool as exc:
        pytest.skip(str(exc))
    if diff and block.recipe == "session":
        ctx.forget_session(block.args[0])  # a second, independent run
        diff = regen_docs.drift(block, regen_docs.regenerate(block, ctx))
    assert not diff, f"{diff}\n\nthe docs drifted: run `python tools/regen_docs.py` and review the diff"


def test_every_shown_output_is_marked() -> None:
    """A fence in the docs that shows a command's output (`$ ` lines) carries a regen marker."""
    unmarked = []
    for path in regen_docs.DOCS:
        marked = {b.start - 1 for b in regen_docs.find_blocks(path)}
        lines = path.read_text().split("\n")
        fence = None
        for i, line in enumerate(lines):
            if line.startswith("```"):
                if fence is None:
                    fence = i
                    continue
                body = lines[fence + 1:i]
                if any(x.startswith("$ ") for x in body) and fence not in marked:
                    unmarked.append(f"{path.name}:{fence + 1}")
                fence = None
    assert not unmarked, f"outputs shown without a regen marker: {unmarked}"


def test_a_drifted_block_is_caught_and_regenerating_fixes_it(tmp_path: Path, ctx: regen_docs.Context) -> None:
    """The check can fail: a figure changed in a copy of the docs is reported, and rewriting restores it."""
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    block = next(b for b in regen_docs.find_blocks(ROOT / "README.md") if "busload" in "\n".join(b.body))
    shown = "\n".join(block.body)
    assert "6.41 %" in shown
    readme.write_text(text.replace(shown, shown.replace("6.41 %", "6.14 %")))
    drifted = next(b for b in regen_docs.find_blocks(readme) if "busload" in "\n".join(b.body))
    fresh = regen_docs.regenerate(drifted, ctx)
    diff = regen_docs.drift(drifted, fresh)
    assert "-  steady state:  6.14 %" in diff and "+  steady state:  6.41 %" in diff
    regen_docs.rewrite([drifted], {id(drifted): fresh})
    assert readme.read_text() == text


def test_normalisation_is_narrow() -> None:
    """What the session blocks may differ in, and nothing else: a changed word or current is drift."""
    norm = ["times", "counts", "order"]
    shown = ["    5.054 grant-acked [2]: txn 2: 16.0 A (immediate) after 0.00 s",
             "    5.054 grant-acked [1]: txn 1: 16.0 A (immediate) after 0.00 s",
             "    8.003 status: committed 64.0 A of 64.0 A | 1:charging 16.0 | rx 83 tx 46 rejected 0"]
    same = ["    5.056 grant-acked [1]: txn 1: 16.0 A (immediate) after 0.01 s",
            "    5.060 grant-acked [2]: txn 2: 16.0 A (immediate) after 0.01 s",
            "   10.003 status: committed 64.0 A of 64.0 A | 1:charging 16.0 | rx 91 tx 50 rejected 0"]
    assert regen_docs.normalise(shown, norm) == regen_docs.normalise(same, norm)
    for old, new in (("16.0 A (immediate)", "19.0 A (immediate)"), ("committed 64.0 A", "committed 94.0 A"),
                     ("1:charging 16.0", "1:failsafe 16.0"), ("txn 2", "txn 3"), ("grant-acked [2]", "acked [2]")):
        other = [line.replace(old, new) for line in same]
        assert other != same and regen_docs.normalise(shown, norm) != regen_docs.normalise(other, norm), old


def test_a_masters_exchange_may_interleave_its_units_but_not_reorder_one() -> None:
    """A new master grants each unit as its confirm is acked (finding 44): the units interleave in any order, but
    one unit's grant before its own ack is drift."""
    norm = ["times", "order"]
    shown = ["    5.055 acked [1]: txn 1: 0.0 A (immediate) after 0.01 s",
             "    5.056 grant [1]: txn 2: 0.0 A -> 16.0 A, failsafe 6.0 A",
             "    5.059 acked [2]: txn 1: 0.0 A (immediate) after 0.01 s",
             "    5.060 grant [2]: txn 2: 0.0 A -> 16.0 A, failsafe 6.0 A"]
    same = [shown[2], shown[0], shown[1], shown[3]]
    assert regen_docs.normalise(shown, norm) == regen_docs.normalise(same, norm)
    swapped = [shown[1], shown[0], shown[2], shown[3]]
    assert regen_docs.normalise(shown, norm) != regen_docs.normalise(swapped, norm)


def test_json_records_and_event_reprs_are_normalised_narrowly() -> None:
    """JSON status and summary records differ in their times and frame counters only; an event's repr in
    its ``t=``; a changed current, kind or rejected count is still drift."""
    norm = ["times", "counts"]
    shown = ['{"record": "status", "t": 1796089928.982092, "address": 1, "offer_a": 46.0, "last_heartbeat": '
             '1796089928.803367, "heartbeat_age": 0.179, "heard_age": 0.179, "frames_in": 100, "rejected": 1, '
             '"sent": 45, "send_failed": 0}',
             '{"record": "summary", "command": "monitor", "start_t": 1796089907.774302, "duration_s": 21.357, '
             '"frames": 149, "rejected": 1, "malformed": {"length": 1}}',
             "Setpoint(t=548.839204412, limit_da=400, ttl_s=60.0)"]
    same = ['{"record": "status", "t": 1796090001.5, "address": 1, "offer_a": 46.0, "last_heartbeat": '
            '1796090001.42, "heartbeat_age": 0.08, "heard_age": 0.08, "frames_in": 97, "rejected": 1, '
            '"sent": 44, "send_failed": 0}',
            '{"record": "summary", "command": "monitor", "start_t": 1796089990.1, "duration_s": 23.001, '
            '"frames": 162, "rejected": 1, "malformed": {"length": 1}}',
            "Setpoint(t=3095.408288635, limit_da=400, ttl_s=60.0)"]
    assert regen_docs.normalise(shown, norm) == regen_docs.normalise(same, norm)
    for old, new in (('"offer_a": 46.0', '"offer_a": 48.0'), ('"rejected": 1,', '"rejected": 2,'),
                     ('"send_failed": 0', '"send_failed": 3'), ('"length": 1', '"length": 2'),
                     ("limit_da=400", "limit_da=401"), ("ttl_s=60.0", "ttl_s=61.0")):
        other = [line.replace(old, new) for line in same]
        assert other != same and regen_docs.normalise(shown, norm) != regen_docs.normalise(other, norm), old
    assert regen_docs.normalise(shown[1:2], []) != regen_docs.normalise(same[1:2], [])  # only where a block says


def test_meter_readings_are_normalised_only_where_a_block_says() -> None:
    """``readings``: a MeterReading's figures (a house moving with wall-clock time); its kind, a
    failure's kind and detail stay compared; pymodbus's ``0.000 seconds into read`` is a time."""
    shown = ["MeterReading(t=1029.284464233, currents_da=(137, 143, 58), powers_w=(3038.18, -3207.0341796875, 1e-05))",
             "MeterFailure(t=1041.28, kind=<FailureKind.READ_ERROR: 'read-error'>, detail='Connection unexpectedly "
             "closed 0.000 seconds into read of unbounded read bytes')"]
    same = ["MeterReading(t=987.596212326, currents_da=(136, 144, 59), powers_w=(3034.44, 3217.337158203125, 1310.1))",
            "MeterFailure(t=999.6, kind=<FailureKind.READ_ERROR: 'read-error'>, detail='Connection unexpectedly "
            "closed 0.001 seconds into read of unbounded read bytes')"]
    norm = ["times", "readings"]
    assert regen_docs.normalise(shown, norm) == regen_docs.normalise(same, norm)
    assert regen_docs.normalise(shown, ["times"]) != regen_docs.normalise(same, ["times"])
    for old, new in (("MeterReading", "MeterFailure"), ("READ_ERROR: 'read-error'", "TIMEOUT: 'timeout'"),
                     ("unexpectedly closed", "refused")):
        other = [line.replace(old, new) for line in same]
        assert other != same and regen_docs.normalise(shown, norm) != regen_docs.normalise(other, norm), old
