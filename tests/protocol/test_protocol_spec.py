"""Statements of docs/PROTOCOL.md checked against the codec, field by field (issue 12: nothing left to guess)."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.frames import MESSAGE_TYPES
from busshare.frames import AckHow
from busshare.frames import FrameError
from busshare.frames import MsgType
from busshare.frames import ReleaseReason
from busshare.frames import decode
from busshare.frames import encode
from busshare.frames import offset_of
from busshare.protocol import layout
from busshare.protocol.e2e import frame_crc
from busshare.protocol.kinds import FOREIGN_KINDS
from busshare.protocol.kinds import CanKind
from busshare.protocol.pilot import PilotState
from tests.support.frame_strategies import SAMPLES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
CHECKS = ("reserved", "enum", "range")  # checks 5, 6, 7 of section 4.3, in order


def table_after(marker: str) -> list[list[str]]:
    """The rows (cells stripped) of the markdown table that follows ``marker`` in PROTOCOL.md."""
    lines = DOC[DOC.index(marker):].splitlines()[1:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not set("".join(cells)) <= set("-: "):
            rows.append(cells)
    return rows[1:]  # (the header)


def _set(data: bytes, f: layout.Field, value: int) -> bytes:
    w = int.from_bytes(data, "little")
    w = (w & ~(f.mask << f.start)) | ((value & f.mask) << f.start)
    return w.to_bytes(layout.FRAME_LENGTH, "little")


def _byte(index: int, value: int) -> Callable[[MsgType, bytes], bytes]:
    return lambda t, d: _set(d, layout.Field("byte", index * 8, 8), value)


#: how to break each item the table names (an item the test does not know fails it: the table is the spec)
RESERVED: dict[str, Callable[[MsgType, bytes], bytes]] = {
    "flag nibble": lambda t, d: _set(d, layout.FLAGS, 1),
    "flag bit 7": lambda t, d: _set(d, layout.FLAGS, 8),
    "byte 2 bit 7": lambda t, d: _set(d, layout.field(t, "reserved"), 1),
    "the `heard` bits of addresses 0 and 63": lambda t, d: _set(d, layout.field(t, "heard"), 1),  # page 0: address 0
    "byte 7": _byte(7, 1),
    "bytes 5-7": _byte(5, 1),
    "`reporter` above 63": lambda t, d: _set(d, layout.field(t, "reporter"), 64),
}
BAD_ENUM = {"how": len(AckHow), "code": 0, "reason": len(ReleaseReason), "pilot": len(PilotState)}
BAD_CURRENT = 50  # 5.0 A: neither 0 nor an offer


def _items(cell: str) -> list[str]:
    """The items of a cell: ``-`` (and its explanation) is none."""
    if cell.startswith("-"):
        return []
    return re.split(r", (?![^`]*`,)", cell)


def _breakers(t: MsgType, check: str, cell: str) -> list[Callable[[bytes], bytes]]:
    out: list[Callable[[bytes], bytes]] = []
    for item in _items(cell):
        if check == "reserved":
            out.append(lambda d, b=RESERVED[item]: b(t, d))
        else:
            name = item.strip("`")
            f = layout.field(t, name)
            value = BAD_ENUM[name] if check == "enum" else BAD_CURRENT
            out.append(lambda d, f=f, v=value: _set(d, f, v))
    return out


def _with_crc(offset: int, data: bytes) -> bytes:
    return bytes((frame_crc(offset, data[layout.PROTECTED_FROM:]),)) + data[layout.PROTECTED_FROM:]


def _kind(offset: int, data: bytes) -> str | None:
    try:
        decode(offset, data)
    except FrameError as exc:
        return exc.kind
    return None


def _per_type() -> dict[MsgType, dict[str, list[Callable[[bytes], bytes]]]]:
    rows = table_after("<!-- checks per type")
    assert [r[0] for r in rows] == [t.name for t in MsgType]
    return {MsgType[r[0]]: {check: _breakers(MsgType[r[0]], check, cell) for check, cell in zip(CHECKS, r[1:],
                                                                                               strict=True)}
            for r in rows}


PER_TYPE = _per_type()


@pytest.mark.parametrize("t", list(MsgType), ids=lambda t: t.name)
def test_each_listed_check_rejects_its_field(t: MsgType) -> None:
    offset = offset_of(SAMPLES[t])
    good = encode(SAMPLES[t], 0)
    assert _kind(offset, good) is None
    for check, breakers in PER_TYPE[t].items():
        for brk in breakers:
            assert _kind(offset, _with_crc(offset, brk(good))) == check, (t.name, check)


@pytest.mark.parametrize("t", list(MsgType), ids=lambda t: t.name)
def test_the_first_check_in_order_names_the_rejection(t: MsgType) -> None:
    """A frame failing several of checks 5-7 is rejected by the earliest (4.3: the same order for every type)."""
    offset = offset_of(SAMPLES[t])
    good = encode(SAMPLES[t], 0)
    applicable = [(check, brk) for check in CHECKS for brk in PER_TYPE[t][check]]
    for i, (first, brk) in enumerate(applicable):
        data = brk(good)
        for _, later in applicable[i + 1:]:
            data = later(data)
        assert _kind(offset, _with_crc(offset, data)) == first, (t.name, first)


def test_checks_1_to_4_come_first_and_in_order() -> None:
    status = encode(SAMPLES[MsgType.STATUS], 0)
    bad_crc = bytes((status[0] ^ 1,)) + status[1:]
    assert _kind(0x200, bad_crc[:7]) == "length"
    assert _kind(0x200, bad_crc) == "type"
    assert _kind(0x180, bad_crc) == "address"  # STATUS from address 0
    broken = _set(bad_crc, layout.field(MsgType.STATUS, "pilot"), 7)
    assert _kind(offset_of(SAMPLES[MsgType.STATUS]), broken) == "crc"


@settings(deadline=None, max_examples=400)
@given(st.sampled_from(list(MsgType)), st.binary(min_size=7, max_size=7))
def test_a_check_the_table_does_not_list_for_a_type_never_fails(t: MsgType, tail: bytes) -> None:
    offset = offset_of(SAMPLES[t])
    kind = _kind(offset, _with_crc(offset, b"\0" + tail))
    assert kind is None or PER_TYPE[t][kind], (t.name, kind)


# -- the field tables of section 5 are the messages' fields --------------------------------------------------


def _section(number: str) -> str:
    start = DOC.index(f"\n### {number} ")
    return DOC[start:DOC.index("\n### ", start + 1)]


@pytest.mark.parametrize("number,t", [("5.1", MsgType.SET_LIMIT), ("5.2", MsgType.HEARTBEAT), ("5.3", MsgType.ACK),
                                      ("5.4", MsgType.NACK), ("5.5", MsgType.RELEASE), ("5.6", MsgType.REQUEST),
                                      ("5.7", MsgType.STATUS), ("5.8", MsgType.JOIN)])
def test_section_5_field_tables_name_exactly_the_message_fields(number: str, t: MsgType) -> None:
    """A section's byte table names every field of its message and nothing else (5.2: no failsafe current in v2)."""
    text = _section(number)
    lines = text[text.index("\n| byte |") + 1:].splitlines()
    table = [line for line in itertools.takewhile(lambda x: x.startswith("|"), lines)]
    named = {n for line in table for n in re.findall(r"`([a-z_]+)`", "|".join(line.split("|")[1:4]))}
    assert named == {f.name for f in dataclasses.fields(MESSAGE_TYPES[t])} - {"address"}, number


# -- the byte and bit tables of section 5 are the named layout (protocol/layout.py, bound to SPEC) ---------------

SECTIONS = {"5.1": MsgType.SET_LIMIT, "5.2": MsgType.HEARTBEAT, "5.3": MsgType.ACK, "5.4": MsgType.NACK,
            "5.5": MsgType.RELEASE, "5.6": MsgType.REQUEST, "5.7": MsgType.STATUS, "5.8": MsgType.JOIN}


def _span(text: str) -> tuple[int, int]:
    """``"3-4"`` -> (3, 2): first and count."""
    low, _, high = text.partition("-")
    return int(low), int(high or low) - int(low) + 1


def _documented_positions(t: MsgType, number: str) -> dict[str, tuple[int, int]]:
    """Field -> (frame bit, length) as the section's byte table gives them."""
    text = _section(number)
    lines = text[text.index("\n| byte |") + 1:].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in
            itertools.takewhile(lambda x: x.startswith("|"), lines)][2:]
    out: dict[str, tuple[int, int]] = {}
    word = 0
    for row in rows:
        if t in (MsgType.HEARTBEAT, MsgType.STATUS):  # byte | bits | field
            byte, bits, name = row[0], row[1], row[2]
            if "word" in name:
                word = _span(byte)[0] * 8
                continue
            if bits.startswith("W bits "):
                first, count = _span(bits[len("W bits "):])
                start = word + first
            else:
                first, count = _span(bits)
                start = int(byte) * 8 + first
        else:  # byte (or "1 bits 4-7") | field
            byte, name = row[0], row[1]
            if " bits " in byte:
                b, _, bits = byte.partition(" bits ")
                first, count = _span(bits)
                start = int(b) * 8 + first
            else:
                first, n = _span(byte)
                start, count = first * 8, n * 8
        found = re.fullmatch(r"`([a-z_]+)`", name)
        if found:
            out[found.group(1)] = (start, count)
    return out


@pytest.mark.parametrize("number", list(SECTIONS))
def test_byte_tables_are_the_layout(number: str) -> None:
    t = SECTIONS[number]
    named = {f.name: (f.start, f.length) for f in layout.FIELDS[t] if f.name != "reserved"}
    flags = {MsgType.HEARTBEAT: layout.HEARTBEAT_FLAGS, MsgType.STATUS: layout.STATUS_FLAGS}.get(t, ())
    named.update({name: (layout.FLAGS.start + i, 1) for i, name in enumerate(flags)})
    if t is MsgType.JOIN:
        named["version"] = (layout.FLAGS.start, layout.FLAGS.length)
    assert _documented_positions(t, number) == named


SHORT = {"limit": "limit_da", "seq": "seq", "pilot": "pilot", "offered": "offered_da", "measured": "measured_da",
         "requested": "requested_da", "tag": "serial_tag"}


@pytest.mark.parametrize("number", ["5.2", "5.7"])
def test_bit_by_bit_tables_are_the_layout(number: str) -> None:
    t = SECTIONS[number]
    text = _section(number)
    lines = text[text.index("\n| byte | bit 7 |") + 1:].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in
            itertools.takewhile(lambda x: x.startswith("|"), lines)][2:]
    seen: dict[str, set[int]] = {}
    for row in rows:
        byte = int(row[0])
        for column, cell in enumerate(row[1:]):
            short, _, index = cell.rpartition(" ")
            f = layout.field(t, SHORT[short])
            assert f.start + int(index) == byte * 8 + 7 - column, cell
            seen.setdefault(f.name, set()).add(int(index))
    for name, indexes in seen.items():
        assert indexes == set(range(layout.field(t, name).length)), name


def test_the_frames_that_are_no_protocol_frames_are_the_kinds_the_code_names() -> None:
    """4.3's list of what is dropped before the checks (each with its kind in brackets) is the code's
    ``FOREIGN_KINDS``, one ``CanKind`` each but the data frame, and ``CanKind.of`` sorts them as the spec
    does: a classic frame with 8 data bytes and a DLC of 9-15 is no protocol frame; fewer bytes fail check 1."""
    section = DOC[DOC.index("### 4.3 Receiver checks"):DOC.index("A receiver decodes a protocol frame only if")]
    named = re.findall(r"\[`([a-z-]+)`\]", section)
    assert sorted(named) == sorted(FOREIGN_KINDS)
    assert {k.value for k in CanKind if k is not CanKind.DATA} <= set(named)
    assert "DLC of 9-15" in " ".join(section.split())
    for dlc in range(9, 16):
        assert CanKind.of(error=False, remote=False, fd=False, dlc=dlc, length=8) is CanKind.DLC
    assert CanKind.of(error=False, remote=False, fd=False, dlc=8, length=8) is CanKind.DATA
    assert CanKind.of(error=False, remote=False, fd=False) is CanKind.DATA  # (a source that gives no DLC)
    assert CanKind.of(error=False, remote=False, fd=False, dlc=5, length=5) is CanKind.DATA  # then `length`
    assert CanKind.of(error=False, remote=False, fd=True, dlc=9, length=12) is CanKind.FD
