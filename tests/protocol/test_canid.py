"""CAN identifiers: base + (type << 6) + address, and receive filters proven on a real python-can bus."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import can
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.frames import BROADCAST_ADDRESS
from busshare.frames import LAST_SERVANT
from busshare.frames import MASTER_ADDRESS
from busshare.frames import FrameError
from busshare.frames import Message
from busshare.frames import MsgType
from busshare.frames import offset_of
from busshare.protocol.canid import EXT_MAX
from busshare.protocol.canid import ID_SPAN
from busshare.protocol.canid import STD_MAX
from busshare.protocol.canid import IdScheme
from tests.support.frame_strategies import messages

ARBITRATION_ORDER = [
    MsgType.SET_LIMIT,
    MsgType.HEARTBEAT,
    MsgType.ACK,
    MsgType.NACK,
    MsgType.RELEASE,
    MsgType.REQUEST,
    MsgType.STATUS,
    MsgType.JOIN,
]


def test_default_scheme_is_11_bit_at_base_0() -> None:
    scheme = IdScheme()
    assert (scheme.base, scheme.extended) == (0x000, False)
    assert scheme.id_for(MsgType.SET_LIMIT, 1) == 0x001
    assert scheme.id_for(MsgType.HEARTBEAT, MASTER_ADDRESS) == 0x040
    assert scheme.id_for(MsgType.STATUS, 3) == 0x183
    assert scheme.id_for(MsgType.JOIN, BROADCAST_ADDRESS) == 0x1FF


@pytest.mark.parametrize(
    ("base", "extended"),
    [(0x200, False), (0x400, False), (0x600, False), (0x000, True), (0x18DA0000, True), (EXT_MAX + 1 - 0x200, True)],
)
def test_other_bases(base: int, extended: bool) -> None:
    scheme = IdScheme(base, extended)
    assert scheme.id_for(MsgType.STATUS, 3) == base + 0x183
    assert scheme.offset(base + 0x183, extended) == 0x183
    assert scheme.offset(base + 0x1FF, extended) == 0x1FF
    assert scheme.offset(base - 1, extended) is None
    assert scheme.offset(base + ID_SPAN, extended) is None
    assert scheme.offset(base + 0x183, not extended) is None  # other frame format: not ours
    assert scheme.id_for(MsgType.JOIN, 63) <= (EXT_MAX if extended else STD_MAX)


@pytest.mark.parametrize(
    ("base", "extended"),
    [(0x100, False), (0x001, False), (-0x200, False), (0x800, False), (0x1FF, True), (EXT_MAX + 1, True)],
)
def test_bad_bases_are_rejected_in_one_line(base: int, extended: bool) -> None:
    with pytest.raises(ValueError) as info:
        IdScheme(base, extended)
    text = str(info.value)
    assert "\n" not in text
    assert "multiple of 0x200" in text
    assert ("29-bit" if extended else "11-bit") in text


@settings(deadline=None)
@given(messages)
def test_can_id_is_base_plus_offset(msg: Message) -> None:
    for scheme in (IdScheme(), IdScheme(0x600), IdScheme(0x1000, extended=True)):
        can_id = scheme.can_id(msg)
        assert can_id == scheme.base + (int(msg.TYPE) << 6) + msg.address
        assert scheme.require_offset(can_id, scheme.extended) == offset_of(msg)


def test_require_offset_names_the_problem() -> None:
    with pytest.raises(FrameError) as info:
        IdScheme(0x200).require_offset(0x100, False)
    assert info.value.kind == "type"
    assert "0x100" in str(info.value)


def test_arbitration_order() -> None:
    """Every frame of a more safety-relevant type has a lower ID (wins arbitration) than any of the next."""
    scheme = IdScheme()
    for higher, lower in zip(ARBITRATION_ORDER, ARBITRATION_ORDER[1:], strict=False):
        assert max(scheme.id_for(higher, a) for a in range(64)) < min(scheme.id_for(lower, a) for a in range(64))
    assert sorted(MsgType) == ARBITRATION_ORDER


def test_room_for_62_servants() -> None:
    scheme = IdScheme()
    ids = {scheme.id_for(MsgType.STATUS, a) for a in range(1, LAST_SERVANT + 1)}
    assert len(ids) == 62


@pytest.fixture
def bus_pair() -> Iterator[tuple[str, can.BusABC]]:
    channel = f"busshare-canid-{uuid.uuid4()}"
    tx = can.Bus(interface="virtual", channel=channel)
    try:
        yield channel, tx
    finally:
        tx.shutdown()


def _passes(rx: can.BusABC, tx: can.BusABC, can_id: int, extended: bool) -> bool:
    """Send one frame; the virtual bus delivers synchronously, so it is either there now or filtered."""
    tx.send(can.Message(arbitration_id=can_id, is_extended_id=extended, data=bytes(8)))
    got = rx.recv(timeout=0)
    assert got is None or got.arbitration_id == can_id
    return got is not None


@pytest.mark.parametrize("base", [0x000, 0x200, 0x400, 0x600])
def test_filters_pass_exactly_the_512_protocol_ids(bus_pair: tuple[str, can.BusABC], base: int) -> None:
    channel, tx = bus_pair
    scheme = IdScheme(base)
    rx = can.Bus(interface="virtual", channel=channel, can_filters=scheme.can_filters())
    try:
        passed = {i for i in range(STD_MAX + 1) if _passes(rx, tx, i, False)}
        # the same numbers as 29-bit ids are someone else's traffic
        assert not any(_passes(rx, tx, i, True) for i in (base, base + 0x183, base + 0x1FF))
    finally:
        rx.shutdown()
    assert passed == set(range(base, base + ID_SPAN))
    assert passed == {scheme.id_for(t, a) for t in MsgType for a in range(64)}


def test_extended_filters(bus_pair: tuple[str, can.BusABC]) -> None:
    channel, tx = bus_pair
    scheme = IdScheme(0x18DA0000, extended=True)
    rx = can.Bus(interface="virtual", channel=channel, can_filters=scheme.can_filters())
    try:
        inside = [scheme.base, scheme.base + 1, scheme.base + 0x183, scheme.base + 0x1FF]
        outside = [scheme.base - 1, scheme.base + 0x200, 0x183, scheme.base ^ (1 << 28), EXT_MAX]
        assert all(_passes(rx, tx, i, True) for i in inside)
        assert not any(_passes(rx, tx, i, True) for i in outside)
        assert not any(_passes(rx, tx, i, False) for i in (0x000, 0x183, 0x1FF))  # 11-bit frames
    finally:
        rx.shutdown()


@settings(deadline=None)
@given(st.integers(0, EXT_MAX))
def test_extended_filter_mask_matches_offset(can_id: int) -> None:
    scheme = IdScheme(0x18DA0000, extended=True)
    f = scheme.can_filters()[0]
    matched = (can_id ^ int(f["can_id"])) & int(f["can_mask"]) == 0
    assert matched == (scheme.offset(can_id, True) is not None)
