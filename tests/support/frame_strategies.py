"""Messages for the codec tests and benchmarks: Hypothesis strategies for every protocol message (valid values
only), one fixed sample per type, and random ones drawn from a seeded ``random.Random``."""

from __future__ import annotations

import random

from hypothesis import strategies as st

from busshare.frames import ACK_MEASURED_MAX_DA
from busshare.frames import HEARD_PAGES
from busshare.frames import MAX_CIRCUIT_DA
from busshare.frames import STATUS_MEASURED_MAX_DA
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Heartbeat
from busshare.frames import Join
from busshare.frames import Message
from busshare.frames import MsgType
from busshare.frames import Nack
from busshare.frames import NackCode
from busshare.frames import Release
from busshare.frames import ReleaseReason
from busshare.frames import Request
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.protocol.pilot import PilotState

u8 = st.integers(0, 255)
servant = st.integers(1, 62)
offer = st.one_of(st.just(0), st.integers(60, 800))  # 0 (pause) or 6.0-80.0 A
min_current = st.integers(60, 800)




@st.composite
def heartbeats(draw: st.DrawFn) -> Heartbeat:
    page = draw(st.integers(0, HEARD_PAGES - 1))
    not_servants = (1 if page == 0 else 0) | (1 << 7 if page == HEARD_PAGES - 1 else 0)
    return Heartbeat(
        draw(st.integers(0, 15)), draw(u8), draw(st.integers(0, MAX_CIRCUIT_DA)), page,
        draw(st.integers(0, 0xFF)) & ~not_servants, draw(st.integers(0, 1023)),
        draw(st.booleans()), draw(st.booleans()), draw(st.booleans()),
    )


set_limits = st.builds(SetLimit, address=servant, txn=u8, limit_da=offer, failsafe_da=offer, epoch=u8)
acks = st.builds(
    Ack,
    address=servant,
    txn=u8,
    applied_da=offer,
    measured_da=st.none() | st.integers(0, ACK_MEASURED_MAX_DA),
    how=st.sampled_from(AckHow),
)
nacks = st.builds(
    Nack,
    address=st.integers(0, 63),
    code=st.sampled_from(NackCode),
    reporter=st.integers(0, 63),
    txn=u8,
    detail=st.integers(0, 0xFFFF),
)
releases = st.builds(Release, address=servant, released_da=offer, reason=st.sampled_from(ReleaseReason))
requests = st.builds(Request, address=servant, requested_da=offer, min_da=min_current, priority=u8)
statuses = st.builds(
    Status,
    address=servant,
    serial_tag=st.integers(0, 0x7FFF),
    pilot=st.sampled_from(PilotState),
    offered_da=offer,
    measured_da=st.none() | st.integers(0, STATUS_MEASURED_MAX_DA),
    requested_da=offer,
    failsafe=st.booleans(),
    fault=st.booleans(),
    ev_stopped=st.booleans(),
    twin=st.booleans(),
)
joins = st.builds(Join, address=servant, serial=st.integers(0, 0xFFFFFFFF), max_da=min_current, version=st.integers(0, 15))

BY_TYPE: dict[MsgType, st.SearchStrategy[Message]] = {
    MsgType.HEARTBEAT: heartbeats(),
    MsgType.SET_LIMIT: set_limits,
    MsgType.ACK: acks,
    MsgType.NACK: nacks,
    MsgType.RELEASE: releases,
    MsgType.REQUEST: requests,
    MsgType.STATUS: statuses,
    MsgType.JOIN: joins,
}
assert set(BY_TYPE) == set(MsgType)

messages: st.SearchStrategy[Message] = st.one_of(*BY_TYPE.values())
counters = st.integers(0, 15)

# one valid message per type: the spec and DBC tests probe the checks and ranges by changing one field of it
SAMPLES: dict[MsgType, Message] = {
    MsgType.SET_LIMIT: SetLimit(1, 17, 320, 60, 7),
    MsgType.HEARTBEAT: Heartbeat(1, 7, 640, 0, 0x1E, 42),
    MsgType.ACK: Ack(2, 17, 320, 301, AckHow.MEASURED),
    MsgType.NACK: Nack(4, NackCode.BAD_LIMIT, 4, 23, 900),
    MsgType.RELEASE: Release(3, 160, ReleaseReason.EV_DONE),
    MsgType.REQUEST: Request(3, 320, 60, 1),
    MsgType.STATUS: Status(3, 4660, PilotState.C, 320, 315, 320),
    MsgType.JOIN: Join(3, 0xDEADBEEF, 320),
}
assert set(SAMPLES) == set(MsgType)


def random_message(t: MsgType, rng: random.Random) -> Message:
    """A valid message of type ``t`` with random fields (extremes included)."""
    def offer() -> int:
        return rng.choice([0, 60, 800, rng.randint(60, 800)])

    a = rng.randint(1, 62)
    if t is MsgType.STATUS:
        return Status(a, rng.randint(0, 0x7FFF), rng.choice(list(PilotState)), offer(), rng.choice([None, 0, 1022,
                      rng.randint(0, 1022)]), offer(), *(rng.random() < 0.5 for _ in range(4)))
    if t is MsgType.HEARTBEAT:
        page = rng.randint(0, 7)
        heard = rng.randint(0, 0xFF) & ~((1 if page == 0 else 0) | (1 << 7 if page == 7 else 0))
        return Heartbeat(rng.randint(0, 15), rng.randint(0, 255), rng.choice([0, 16383, rng.randint(0, 16383)]), page,
                         heard, rng.randint(0, 1023), *(rng.random() < 0.5 for _ in range(3)))
    if t is MsgType.SET_LIMIT:
        return SetLimit(a, rng.randint(0, 255), offer(), offer(), rng.randint(0, 255))
    if t is MsgType.ACK:
        return Ack(a, rng.randint(0, 255), offer(), rng.choice([None, rng.randint(0, 0xFFFE)]), rng.choice(list(AckHow)))
    if t is MsgType.NACK:
        return Nack(rng.randint(0, 63), rng.choice(list(NackCode)), rng.randint(0, 63), rng.randint(0, 255),
                    rng.randint(0, 0xFFFF))
    if t is MsgType.RELEASE:
        return Release(a, offer(), rng.choice(list(ReleaseReason)))
    if t is MsgType.REQUEST:
        return Request(a, offer(), rng.randint(60, 800), rng.randint(0, 255))
    return Join(a, rng.getrandbits(32), rng.randint(60, 800), rng.randint(0, 15))
