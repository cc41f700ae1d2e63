"""The named frame layout (protocol/layout.py) is the construct SPEC's, field for field (issue 12, point 6)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import settings

from busshare.frames import MESSAGE_TYPES
from busshare.frames import Join
from busshare.frames import Message
from busshare.frames import MsgType
from busshare.frames import encode
from busshare.frames import offset_of
from busshare.frames import spec_fields
from busshare.frames import spec_head
from busshare.frames import split_offset
from busshare.protocol import layout
from busshare.protocol.pilot import PilotState
from tests.support.frame_strategies import counters
from tests.support.frame_strategies import messages
from tests.support.fresh import packages_loaded

#: message attributes carried in the flag nibble, not in the body
FLAG_ATTRIBUTES = {
    MsgType.HEARTBEAT: set(layout.HEARTBEAT_FLAGS),
    MsgType.STATUS: set(layout.STATUS_FLAGS),
    MsgType.JOIN: {"version"},
}


def test_named_fields_are_the_spec_fields() -> None:
    for t in MsgType:
        assert layout.FIELDS[t] == spec_fields(t), t.name
    assert (layout.CRC, layout.COUNTER, layout.FLAGS) == spec_head()


def test_fields_tile_the_body() -> None:
    """Every body bit belongs to exactly one field, and every field lies inside the body."""
    for t, fields in layout.FIELDS.items():
        bits = sorted(b for f in fields for b in range(f.start, f.start + f.length))
        assert bits == list(range(layout.BODY_FROM * 8, layout.FRAME_LENGTH * 8)), t


def test_every_message_attribute_has_a_place() -> None:
    for t, cls in MESSAGE_TYPES.items():
        attrs = {f.name for f in dataclasses.fields(cls)} - {"address"}
        body = {f.name for f in layout.FIELDS[t]} - {"reserved"}
        assert attrs == body | FLAG_ATTRIBUTES.get(t, set()), t.name


def _value(msg: Message, name: str, unknown: int) -> int:
    value = getattr(msg, name)
    if value is None:
        return unknown
    return int(value)


@settings(deadline=None, max_examples=300)
@given(messages, counters)
def test_named_positions_read_the_encoded_frame(msg: Message, counter: int) -> None:
    data = encode(msg, counter)
    assert layout.COUNTER.get(data) == counter
    assert data[layout.CRC_BYTE] == layout.CRC.get(data)
    for f in layout.FIELDS[msg.TYPE]:
        got = f.get(data)
        if f.name == "reserved":
            assert got == 0
        else:
            assert got == _value(msg, f.name, f.mask), f.name
    if isinstance(msg, Join):
        assert layout.FLAGS.get(data) == msg.version
    assert split_offset(offset_of(msg)) == (msg.TYPE, msg.address)
    assert layout.split_id_offset(offset_of(msg)) == (int(msg.TYPE), msg.address)


def test_field_lookup() -> None:
    assert layout.field(MsgType.STATUS, "pilot") == layout.Field("pilot", 16, 3)
    assert len(PilotState) <= 1 << layout.field(MsgType.STATUS, "pilot").length


def test_the_production_codec_does_not_import_construct() -> None:
    """encode/decode of valid frames run on struct and the named layout; construct loads for the spec path only."""
    code = (
        "from busshare.frames import Status, decode, encode, offset_of\n"
        "from busshare.protocol.link import Link\n"
        "from busshare.protocol.pilot import PilotState\n"
        "m = Status(3, 4660, PilotState.C, 320, 315, 320)\n"
        "assert decode(offset_of(m), encode(m, 0))[0] == m\n"
    )
    assert packages_loaded(code, ("construct",)) == []


def test_the_probe_refuses_a_field_that_is_not_little_endian_and_contiguous() -> None:
    import construct as c

    from busshare.protocol import spec

    assert spec._probe(c.Struct("a" / c.Int16ul), 2, 16) == (layout.Field("a", 16, 16),)
    with pytest.raises(ValueError, match="little-endian"):
        spec._probe(c.Struct("a" / c.Int16ub), 2, 16)
