"""The sans-IO link layer shared by every transport and the simulator.

It turns messages into (id offset, 8 bytes) with per-stream alive counters,
and received bytes back into messages, classifying each frame with the E2E
checker.  Frames that fail are counted here and never reach a node: this is
where rule 8 (integrity) is enforced, once, for CAN, Modbus and the simulator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from ..frames import FrameError, Message, decode, encode, offset_of
from .e2e import AliveCounters, E2EChecker, E2EStatus

Decoder = Callable[[int, bytes], tuple[Message, int]]


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
    max_delta: int = 3
    counters: AliveCounters = field(default_factory=AliveCounters)
    #: ``frames.decode`` or a ``frames.CachedDecoder`` shared by many links (the simulator's receivers)
    decoder: Decoder = decode
    checker: E2EChecker = field(init=False)
    malformed: Counter[str] = field(default_factory=Counter)  # FrameError.kind -> count
    last_error: FrameError | None = None

    def __post_init__(self) -> None:
        self.checker = E2EChecker(self.max_delta)

    def encode(self, msg: Message) -> tuple[int, bytes]:
        offset = offset_of(msg)
        return offset, encode(msg, self.counters.next(int(msg.TYPE), msg.address))

    def receive(self, offset: int, data: bytes) -> Received:
        try:
            msg, counter = self.decoder(offset, data)
        except FrameError as exc:
            self.last_error = exc
            if exc.kind == "crc":
                return Received(None, self.checker.wrong_crc(), exc)
            self.malformed[exc.kind] += 1
            return Received(None, None, exc)
        status = self.checker.check_counter(offset, counter, bytes(data))
        return Received(msg if status.accepted else None, status, None, counter)

    @property
    def dropped(self) -> int:
        c = self.checker.counts
        return c[E2EStatus.WRONG_CRC] + c[E2EStatus.REPEATED] + sum(self.malformed.values())

    def stats(self) -> dict[str, int]:
        out = {f"e2e_{s.value}": n for s, n in self.checker.counts.items()}
        out.update({f"malformed_{k}": n for k, n in self.malformed.items()})
        return out
