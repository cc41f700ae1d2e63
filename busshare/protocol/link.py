"""The sans-IO link layer shared by every transport, both monitors, the decoder and the simulator.

It turns messages into (id offset, 8 bytes) with per-stream alive counters,
and received bytes back into messages, classifying each frame with the E2E
checker.  Frames that fail are counted here and never reach a node: this is
where rule 8 (integrity) is enforced, once, for CAN, Modbus and the simulator.

It also owns the stream rules of PROTOCOL.md 6.3, which say when a stream's
memory is forgotten so that a rebooted sender's counters, back at 0, are not
taken for duplicates: after ``STREAM_MEMORY_S`` of silence on the stream; on a
JOIN, every stream its servant sends (the JOIN's own included); on a HEARTBEAT
from another (master id, epoch) than the last one, the heartbeat stream and
every SET_LIMIT stream.  Time is passed in (``now``): no clock is read here.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import NamedTuple

from ..frames import FIRST_SERVANT
from ..frames import LAST_SERVANT
from ..frames import FrameError
from ..frames import Heartbeat
from ..frames import Message
from ..frames import MsgType
from ..frames import decode
from ..frames import encode
from ..frames import offset_of
from .e2e import ACCEPTED
from .e2e import STREAMS
from .e2e import AliveCounters
from .e2e import E2EChecker
from .e2e import E2EStatus

#: s: a stream silent longer than this is forgotten before its next frame is checked (PROTOCOL.md 6.3).
#: A duplicate arrives within milliseconds; after a silence this long the sender may have rebooted.
STREAM_MEMORY_S = 1.0
HEARTBEAT_STREAM = int(MsgType.HEARTBEAT) << 6
JOIN_STREAMS = int(MsgType.JOIN) << 6  # offsets from here on are JOINs (type 7 is the highest)
#: the types a servant sends on its own address, whose streams its JOIN restarts
SERVANT_TYPES = (MsgType.ACK, MsgType.RELEASE, MsgType.REQUEST, MsgType.STATUS, MsgType.JOIN)
#: the SET_LIMIT streams, to servants 1..62: offsets FIRST_SERVANT..LAST_SERVANT (SET_LIMIT is type 0)
_SET_LIMIT_STREAMS = ((int(MsgType.SET_LIMIT) << 6) | FIRST_SERVANT, (int(MsgType.SET_LIMIT) << 6) | LAST_SERVANT)
_NEVER = float("inf")  # "last heard" of a stream never heard: no silence to measure


class Restart(enum.Enum):
    """Why the link forgot streams (PROTOCOL.md 6.3); each occurrence is counted in ``Link.restarts``."""

    SILENCE = "silence"  # the stream was silent longer than STREAM_MEMORY_S
    JOIN = "join"  # a servant (re)joined: it starts its counters afresh
    NEW_MASTER = "new-master"  # a heartbeat from another (master id, epoch): a new master counts from 0

    __hash__ = object.__hash__  # (as E2EStatus: counted per frame, identity hash is right and cheaper)


def join_streams(address: int) -> tuple[int, ...]:
    """The streams a JOIN from ``address`` restarts: all its servant sends on its address, the JOIN's included."""
    return tuple((int(t) << 6) | address for t in SERVANT_TYPES)


Decoder = Callable[[int, bytes], tuple[Message, int]]
_new_tuple = tuple.__new__


class Received(NamedTuple):
    """One received frame after the checks: ``message`` is None when it was dropped.

    (A named tuple: one is made per frame per receiver, and this is the cheapest immutable record.)
    """

    message: Message | None
    status: E2EStatus | None  # None when the frame is malformed (see ``error``)
    error: FrameError | None = None
    counter: int | None = None  # the alive counter, when the frame decoded

    @property
    def accepted(self) -> bool:
        return self.message is not None


@dataclass
class Link:
    """One node's (or one monitor's) end of the bus: counters out, checks and stream rules in."""

    max_delta: int = 3
    counters: AliveCounters = field(default_factory=AliveCounters)
    #: ``frames.decode`` or a ``frames.CachedDecoder`` shared by many links (the simulator's receivers)
    decoder: Decoder = decode
    checker: E2EChecker = field(init=False)
    malformed: Counter[str] = field(default_factory=Counter)  # FrameError.kind -> count
    last_error: FrameError | None = None
    restarts: Counter[Restart] = field(default_factory=Counter)
    #: the (master id, epoch) of the last heartbeat this link checked
    master: tuple[int, int] | None = None
    #: per stream: when a frame of it last passed the checks of 4.3 (inf: never)
    heard: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.checker = E2EChecker(self.max_delta)
        self.heard = [_NEVER] * STREAMS

    def encode(self, msg: Message) -> tuple[int, bytes]:
        offset = offset_of(msg)
        return offset, encode(msg, self.counters.next_at(offset))

    def receive(self, offset: int, data: bytes, now: float) -> Received:
        """Decode, apply the stream rules and the alive-counter check; ``message`` is None if dropped."""
        try:
            msg, counter = self.decoder(offset, data)
        except FrameError as exc:
            self.last_error = exc
            if exc.kind == "crc":
                return Received(None, self.checker.wrong_crc(), exc)
            self.malformed[exc.kind] += 1
            return Received(None, None, exc)
        return self.receive_decoded(offset, msg, counter, data, now)

    def receive_decoded(self, offset: int, msg: Message, counter: int, data: bytes, now: float) -> Received:
        """``receive`` of a frame decoded already: ``check``, then ``message`` is None if dropped."""
        status = self.check(offset, msg, counter, data, now)
        # (as ``Received(...)`` and ``status.accepted``, without their Python-level calls: every frame a runtime
        # receives comes here)
        return _new_tuple(Received, (msg if status in ACCEPTED else None, status, None, counter))

    def check(self, offset: int, msg: Message, counter: int, data: bytes, now: float) -> E2EStatus:
        """PROTOCOL.md 6.3 for a frame decoded already that passed the checks of 4.3: forget what the stream
        rules say, then classify its counter; the frame is dropped unless the status is in ``e2e.ACCEPTED``.

        (The status alone, no ``Received``: for callers that decode themselves, as the capture decoder, which
        keeps dropped frames, and the simulator, which decodes a broadcast once for all its receivers and
        wants only whether each one takes it.)
        """
        heard = self.heard
        if now - heard[offset] > STREAM_MEMORY_S:
            self.checker.forget(offset)
            self.restarts[Restart.SILENCE] += 1
        heard[offset] = now
        if offset >= JOIN_STREAMS:
            self.forget(join_streams(offset & 0x3F), Restart.JOIN)
        elif offset == HEARTBEAT_STREAM:
            assert isinstance(msg, Heartbeat)
            master = self.master
            if master is None or msg.master_id != master[0] or msg.epoch != master[1]:
                self.heartbeat_from((msg.master_id, msg.epoch))
        return self.checker.check_counter(offset, counter, data if type(data) is bytes else bytes(data))

    def heartbeat_from(self, master: tuple[int, int]) -> None:
        """The new-master rule: a heartbeat from another (master id, epoch) than the last one (not the first
        heartbeat) forgets the heartbeat stream and every SET_LIMIT stream, before the heartbeat is checked."""
        if master != self.master:
            if self.master is not None:
                self.checker.forget_range(*_SET_LIMIT_STREAMS)
                self.forget((HEARTBEAT_STREAM,), Restart.NEW_MASTER)
            self.master = master

    def forget(self, streams: tuple[int, ...], why: Restart) -> None:
        """Restart the tracking of ``streams`` (their next frame is a first frame), counted under ``why``."""
        forget = self.checker.forget
        for did in streams:
            forget(did)
        self.restarts[why] += 1

    @property
    def dropped(self) -> int:
        c = self.checker.counts
        return c[E2EStatus.WRONG_CRC] + c[E2EStatus.REPEATED] + sum(self.malformed.values())

    def stats(self) -> dict[str, int]:
        out = {f"e2e_{s.value}": n for s, n in self.checker.counts.items()}
        out.update({f"malformed_{k}": n for k, n in self.malformed.items()})
        out.update({f"restart_{r.value}": n for r, n in self.restarts.items()})
        return out
