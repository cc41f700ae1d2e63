"""The bus-load figures of docs/PROTOCOL.md section 7 are what ``busshare busload`` computes at the defaults."""

from __future__ import annotations

import re
from pathlib import Path

from busshare.analysis.busload import busload
from busshare.analysis.busload import worst_case_frame_bits
from busshare.core.config import Timing

DOC = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
SECTION = " ".join(DOC[DOC.index("Bus load at the defaults"):DOC.index("## 8. ")].split())


def test_frame_rates() -> None:
    t = Timing()
    found = re.search(r"(\d+) HEARTBEAT/s plus (\d+) STATUS/s per servant, i.e. (\d+) \+ (\d+)n frames/s: "
                      r"(\d+) frames/s with 32 servants, (\d+) frames/s with 62", SECTION)
    assert found is not None
    hb, st, hb2, st2, f32, f62 = map(int, found.groups())
    assert hb == hb2 == 1 / t.heartbeat_period and st == st2 == 1 / t.status_period
    assert f32 == busload(125_000, 32).frames_per_s and f62 == busload(125_000, 62).frames_per_s


def test_frame_lengths_and_percentages() -> None:
    found = re.search(r"is (\d+) bits plus up to (\d+) stuff bits plus (\d+) bits of interframe space: "
                      r"(\d+) to (\d+) bits \((\d+) on average", SECTION)
    assert found is not None
    body, stuff, ifs, low, high, mean = map(int, found.groups())
    assert body + ifs == low and low + stuff == high == worst_case_frame_bits(8, extended=False)
    assert round(busload(125_000, 32).mean_frame_bits) == mean
    found = re.search(r"32 servants use ([\d.]+) % \(([\d.]+) % worst-case stuffing\) and 62 servants "
                      r"([\d.]+) % \(([\d.]+) %\)", SECTION)
    assert found is not None
    s32, w32, s62, w62 = map(float, found.groups())
    b32, b62 = busload(125_000, 32), busload(125_000, 62)
    assert (s32, w32, s62, w62) == tuple(round(x, 1) for x in (b32.steady_percent, b32.worst_percent,
                                                               b62.steady_percent, b62.worst_percent))
