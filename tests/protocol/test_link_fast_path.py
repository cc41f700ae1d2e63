"""The link's fast paths (issue 12, Performance) receive what the full path does.

A heartbeat from the master the link already follows skips ``heartbeat_from``, the ``Received`` of every
frame is built without its Python-level constructor, and a frame sent takes its alive counter by the id offset
the link has worked out already.  Two links get the same random frames (heartbeats from a
few masters and epochs, late and repeated copies, servant frames, a corrupted byte now and then): one takes
the fast paths, the other (a subclass) receives without ``Link.receive`` (it decodes and checks as the
protocol words it, calls ``heartbeat_from`` for every heartbeat and builds ``Received`` with its constructor),
and their senders count by type and address.  After every frame what they send, return
and count must agree.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from busshare.frames import FrameError
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import MsgType
from busshare.frames import decode
from busshare.frames import encode
from busshare.frames import offset_of
from busshare.protocol.link import JOIN_STREAMS
from busshare.protocol.link import STREAM_MEMORY_S
from busshare.protocol.link import Link
from busshare.protocol.link import Received
from busshare.protocol.link import Restart
from busshare.protocol.link import join_streams
from tests.support.frame_strategies import random_message


class FullLink(Link):
    """The receive policy worked out independently of ``Link.receive``: ``frames.decode``, the stream rules as
    PROTOCOL.md 6.3 words them, every heartbeat through ``heartbeat_from``, every counter through the checker's
    ``check_counter``, every ``Received`` through its constructor; every counter sent by message type and
    address."""

    def encode(self, msg: Message) -> tuple[int, bytes]:
        return offset_of(msg), encode(msg, self.counters.next(int(msg.TYPE), msg.address))

    def receive(self, offset: int, data: bytes, now: float) -> Received:
        try:
            msg, counter = decode(offset, data)
        except FrameError as exc:
            self.last_error = exc
            if exc.kind == "crc":
                return Received(None, self.checker.wrong_crc(), exc, None)
            self.malformed[exc.kind] += 1
            return Received(None, None, exc, None)
        if now - self.heard[offset] > STREAM_MEMORY_S:
            self.checker.forget(offset)
            self.restarts[Restart.SILENCE] += 1
        self.heard[offset] = now
        if offset >= JOIN_STREAMS:
            self.forget(join_streams(offset & 0x3F), Restart.JOIN)
        elif isinstance(msg, Heartbeat):
            self.heartbeat_from((msg.master_id, msg.epoch))
        status = self.checker.check_counter(offset, counter, bytes(data))
        return Received(msg if status.accepted else None, status, None, counter)


@settings(max_examples=100)
@given(st.randoms(use_true_random=False), st.integers(20, 200))
def test_a_link_taking_the_fast_paths_receives_what_the_full_path_does(rng: random.Random, n: int) -> None:
    senders = [Link() for _ in range(3)]
    full_senders = [FullLink() for _ in range(3)]
    fast, full = Link(), FullLink()
    now = 0.0
    sent: list[tuple[int, bytes]] = []
    for _ in range(n):
        now += rng.choice([0.0, 0.05, 0.2, 1.5])
        if sent and rng.random() < 0.2:
            offset, data = rng.choice(sent)  # a late or repeated copy
        else:
            kind = rng.choice([MsgType.HEARTBEAT, MsgType.HEARTBEAT, MsgType.STATUS, MsgType.JOIN, MsgType.SET_LIMIT])
            msg = random_message(kind, rng)
            if isinstance(msg, Heartbeat):
                msg = Heartbeat(rng.choice([1, 2]), rng.choice([7, 8]), msg.limit_da, msg.page, msg.heard, msg.seq)
            i = rng.randrange(3)
            offset, data = senders[i].encode(msg)
            assert (offset, data) == full_senders[i].encode(msg)
            if rng.random() < 0.05:
                data = data[:3] + bytes((data[3] ^ 0x10,)) + data[4:]
            sent.append((offset, data))
        got, want = fast.receive(offset, data, now), full.receive(offset, data, now)
        assert type(got) is Received
        assert got._replace(error=str(got.error)) == want._replace(error=str(want.error))  # (errors: by identity)
        assert (fast.master, fast.restarts, fast.checker.counts, fast.malformed) == (
            full.master, full.restarts, full.checker.counts, full.malformed)
