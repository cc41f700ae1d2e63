"""Bus load from real frame bits: CRC-15, exact stuffing, the worst-case bound, and the 10 % budget."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busshare.analysis.busload import busload
from busshare.analysis.busload import count_stuff_bits
from busshare.analysis.busload import crc15
from busshare.analysis.busload import frame_bits
from busshare.analysis.busload import stuffable_bits
from busshare.analysis.busload import worst_case_frame_bits
from busshare.frames import encode
from busshare.protocol.canid import IdScheme
from tests.support.frame_strategies import counters
from tests.support.frame_strategies import messages


def stuff(bits: list[int]) -> list[int]:
    """Reference transmitter: insert the complement after five equal bits of the *stuffed* stream."""
    out: list[int] = []
    for bit in bits:
        out.append(bit)
        if len(out) >= 5 and len(set(out[-5:])) == 1:
            out.append(1 - bit)
    return out


def destuff(bits: list[int]) -> list[int]:
    out: list[int] = []
    i = 0
    run_bit, run = -1, 0
    while i < len(bits):
        bit = bits[i]
        out.append(bit)
        run = run + 1 if bit == run_bit else 1
        run_bit = bit
        i += 1
        if run == 5 and i < len(bits):
            run_bit, run = bits[i], 1  # skip the stuff bit, which starts the next run
            i += 1
    return out


def test_crc15_check_value() -> None:
    # CRC-15/CAN from the CRC catalogue: check("123456789") = 0x059E
    bits = [(b >> (7 - i)) & 1 for b in b"123456789" for i in range(8)]
    assert crc15(bits) == 0x059E


def test_stuff_bits_count_in_following_runs() -> None:
    assert count_stuff_bits([0] * 5) == 1
    assert count_stuff_bits([0] * 10) == 2  # the stuff bit after five 0s starts a run of 1s, not 0s
    assert count_stuff_bits([0] * 5 + [1] * 5) == 2  # stuff 1 + four 1s make five: stuffed again
    assert count_stuff_bits([0, 1] * 20) == 0


@given(st.lists(st.integers(0, 1), max_size=200))
def test_stuff_count_agrees_with_a_reference_transmitter(bits: list[int]) -> None:
    stuffed = stuff(bits)
    assert len(stuffed) - len(bits) == count_stuff_bits(bits)
    assert destuff(stuffed) == bits


@given(messages, counters, st.booleans())
def test_every_real_frame_fits_the_worst_case_bound(msg, counter: int, extended: bool) -> None:  # type: ignore[no-untyped-def]
    scheme = IdScheme(base=0x1000 if extended else 0x200, extended=extended)
    data = encode(msg, counter)
    bits = stuffable_bits(scheme.can_id(msg), data, extended)
    assert len(bits) == (54 if extended else 34) + 64
    n = frame_bits(scheme.can_id(msg), data, extended)
    assert 111 + (20 if extended else 0) <= n <= worst_case_frame_bits(8, extended)


def test_worst_case_lengths_match_the_textbook() -> None:
    # 8-byte frame, 11-bit id: 111 bits + up to 24 stuff bits (IFS included); 29-bit: 131 + 29
    assert worst_case_frame_bits(8, extended=False) == 135
    assert worst_case_frame_bits(8, extended=True) == 160


def test_an_all_dominant_frame_hits_the_bound_region() -> None:
    # id 0, data all zero: long runs of 0 get stuffed every 4 bits after the first 5
    n = frame_bits(0, bytes(8), extended=False)
    assert n > 111 + 15


def test_32_servants_at_125k_stay_under_10_percent() -> None:
    r = busload(125000, 32)
    assert r.steady_percent < 10
    assert r.worst_percent < 10


def test_worst_case_is_above_steady_state_and_grows_with_servants() -> None:
    prev = 0.0
    for n in (4, 8, 16, 32, 62):
        r = busload(125000, n)
        assert r.steady_percent < r.worst_percent
        assert r.worst_percent > prev
        prev = r.worst_percent
    assert busload(500000, 32).worst_percent == pytest.approx(busload(125000, 32).worst_percent / 4)


def test_frame_rate_follows_default_timing() -> None:
    r = busload(125000, 32)
    assert r.heartbeat_period == 0.2 and r.status_period == 0.5
    assert r.frames_per_s == pytest.approx(5 + 32 * 2)


def test_cli_json_and_user_errors() -> None:
    out = subprocess.run([sys.executable, "-m", "busshare", "busload", "--bitrate", "125000", "--servants", "32",
                          "--json"], capture_output=True, text=True, check=True).stdout
    d = json.loads(out)
    assert d["servants"] == 32 and d["worst_percent"] < 10
    bad = subprocess.run([sys.executable, "-m", "busshare", "busload", "--servants", "70"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("usage: busshare busload")  # a usage error, checked when parsed
    assert bad.stderr.splitlines()[-1] == "busshare busload: error: argument --servants: 70 must be 1-62"


def test_the_servant_count_may_be_given_plainly() -> None:
    def load(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "busshare", "busload", *argv, "--json"], capture_output=True,
                              text=True)

    assert json.loads(load("8").stdout)["servants"] == 8
    assert json.loads(load().stdout)["servants"] == 4
    both = load("8", "--servants", "9")
    assert both.returncode != 0 and both.stderr.count("\n") == 1 and "Traceback" not in both.stderr
