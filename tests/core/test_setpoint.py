"""MQTT setpoints and the published limit: topics, payloads, and bad payloads that change nothing."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busshare.core.setpoint import MAX_TTL_S
from busshare.core.setpoint import LimitSource
from busshare.core.setpoint import Setpoint
from busshare.core.setpoint import SetpointRejected
from busshare.core.setpoint import SetpointWithdrawn
from busshare.core.setpoint import Topics
from busshare.core.setpoint import limit_payload
from busshare.core.setpoint import parse_setpoint
from busshare.core.setpoint import site_id_problem


def parse(payload: bytes | str) -> Setpoint | SetpointWithdrawn | SetpointRejected:
    return parse_setpoint(payload.encode() if isinstance(payload, str) else payload, 100.0, 60.0)


def test_the_site_topics() -> None:
    t = Topics("garage")
    assert (t.base, t.limit, t.limit_set) == ("busshare/garage", "busshare/garage/limit", "busshare/garage/limit/set")


@pytest.mark.parametrize("site_id", ["", "a/b", "a+b", "house#1", "a\0b", "tab\there", "x" * 65])
def test_a_site_id_is_one_topic_level(site_id: str) -> None:
    assert site_id_problem(site_id) is not None
    with pytest.raises(ValueError):
        Topics(site_id)


@pytest.mark.parametrize("site_id", ["site", "garage", "Maison-Dupont_2", "ferme aux ânes"])
def test_good_site_ids(site_id: str) -> None:
    assert site_id_problem(site_id) is None


@pytest.mark.parametrize("payload, limit_da, ttl_s", [
    ("40", 400, 60.0),
    (" 32.5\n", 325, 60.0),
    ("0", 0, 60.0),
    ("4e1", 400, 60.0),
    ("16.09", 160, 60.0),  # a ceiling: rounded down to 0.1 A
    ('{"limit_a": 40.0, "ttl_s": 60}', 400, 60.0),
    ('{"limit_a": 18.3}', 183, 60.0),
    ('{"ttl_s": 0.5, "limit_a": 6}', 60, 0.5),
    ("1638.3", 16383, 60.0),
])
def test_accepted_setpoints(payload: str, limit_da: int, ttl_s: float) -> None:
    assert parse(payload) == Setpoint(100.0, limit_da, ttl_s)


def test_a_setpoint_expires_after_its_ttl() -> None:
    sp = parse('{"limit_a": 10, "ttl_s": 30}')
    assert isinstance(sp, Setpoint) and sp.expires == 130.0


@pytest.mark.parametrize("payload, reason", [
    ("", "empty payload"),
    ("  \n", "empty payload"),
    ("forty", "not a number or a JSON object: Expecting value: line 1 column 1 (char 0)"),
    ("-1", "limit_a -1 is negative"),
    ("1638.4", "limit_a 1638.4 is above 1638.3 A"),
    ("NaN", "not a number or a JSON object: NaN is not a number"),
    ("Infinity", "not a number or a JSON object: Infinity is not a number"),
    ("1e400", "limit_a inf is not a number of amps"),
    ("true", "not a number or a JSON object"),
    ('"40"', "not a number or a JSON object"),
    ("[40]", "not a number or a JSON object"),
    ("{}", "missing limit_a"),
    ('{"limit": 40}', "unknown key 'limit' (known: limit_a, ttl_s)"),
    ('{"limit_a": "40"}', "limit_a '40' is not a number of amps"),
    ('{"limit_a": null, "ttl_s": 60}', "ttl_s with a withdrawal (limit_a null)"),
    ("null", "not a number or a JSON object"),
    ('{"limit_a": 40, "ttl_s": 0}', "ttl_s 0 must be above 0 and at most 86400 s"),
    ('{"limit_a": 40, "ttl_s": 86401}', "ttl_s 86401 must be above 0 and at most 86400 s"),
    ('{"limit_a": 40, "ttl_s": "60"}', "ttl_s '60' is not a number of seconds"),
    ('{"limit_a": 40, "ttl_s": true}', "ttl_s True is not a number of seconds"),
])
def test_rejected_setpoints_say_why(payload: str, reason: str) -> None:
    assert parse(payload) == SetpointRejected(100.0, reason, payload.replace("\n", "?"))


def test_limit_a_null_withdraws_the_setpoint() -> None:
    """An energy manager that stops on purpose says so; the limit returns to the meter or the static one."""
    assert parse('{"limit_a": null}') == SetpointWithdrawn(100.0)
    assert parse(' { "limit_a" : null } ') == SetpointWithdrawn(100.0)


def test_a_non_utf8_or_oversized_payload_is_rejected_with_a_printable_excerpt() -> None:
    bad = parse(b"\xff\xfe4\x00")
    assert isinstance(bad, SetpointRejected) and bad.reason == "payload is not UTF-8"
    assert bad.payload.isprintable()
    big = parse(b"4" * 300)
    assert isinstance(big, SetpointRejected) and big.reason == "payload of 300 bytes (at most 256)"
    assert big.payload.endswith("...") and len(big.payload) == 51


@given(st.binary(max_size=400))
def test_any_bytes_are_a_setpoint_or_a_rejection_never_an_exception(payload: bytes) -> None:
    got = parse_setpoint(payload, 5.0, 60.0)
    if isinstance(got, Setpoint):
        assert 0 <= got.limit_da <= 16383 and 0 < got.ttl_s <= MAX_TTL_S
    else:
        assert isinstance(got, SetpointWithdrawn | SetpointRejected)
        assert isinstance(got, SetpointWithdrawn) or (got.reason and "\n" not in got.reason)


@given(st.one_of(st.floats(allow_nan=True), st.integers(-10**30, 10**30)),
       st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-10**9, 10**9)))
def test_json_setpoints_accept_exactly_the_valid_ranges(limit: float, ttl: float | None) -> None:
    doc: dict[str, float] = {"limit_a": limit}
    if ttl is not None:
        doc["ttl_s"] = ttl
    got = parse(json.dumps(doc))
    valid_limit = math.isfinite(limit) and 0 <= limit < 2000 and math.floor(round(limit * 10, 6)) <= 16383
    valid_ttl = ttl is None or (math.isfinite(ttl) and 0 < ttl <= MAX_TTL_S)
    assert isinstance(got, Setpoint) == (valid_limit and valid_ttl)


@pytest.mark.parametrize("source", list(LimitSource))
def test_the_limit_payload(source: LimitSource) -> None:
    assert json.loads(limit_payload(400, source)) == {"limit_a": 40.0, "source": source.value}


def test_the_limit_payload_shows_tenths_exactly() -> None:
    assert limit_payload(183, LimitSource.METER) == b'{"limit_a": 18.3, "source": "meter"}'
