"""Messages for the codec tests: Hypothesis strategies for every protocol message (valid values only), and one
fixed sample per type."""

from __future__ import annotations

from hypothesis import strategies as st

from busshare.frames import (
    ACK_MEASURED_MAX_DA,
    HEARD_PAGES,
    MAX_CIRCUIT_DA,
    STATUS_MEASURED_MAX_DA,
    Ack,
    AckHow,
    Heartbeat,
    Join,
    Message,
    MsgType,
    Nack,
    NackCode,
    Release,
    ReleaseReason,
    Request,
    SetLimit,
    Status,
)
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
    conflict=st.booleans(),
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
