"""A servant driven by hand with a virtual clock: the one unit, heartbeats and set-up the servant tests share."""

from __future__ import annotations

import itertools

from busshare.core.config import ServantConfig
from busshare.core.config import Timing
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import SetLimit
from busshare.protocol.pilot import PilotState
from busshare.servant import Servant

T = Timing()
C = PilotState.C
HEARS_1_TO_7 = 0xFE  # page 0: the master hears every servant on it


def make(meter: bool = True, max_da: int = 320, failsafe_da: int = 60) -> Servant:
    return Servant(ServantConfig(1, max_da=max_da, failsafe_da=failsafe_da, serial=0xABC, has_meter=meter), T, 0.0)


_SEQ = itertools.count(1)


def hb(epoch: int = 7, master_id: int = 1, *, page: int = 0, heard: int = HEARS_1_TO_7, **flags: bool) -> Heartbeat:
    """A fresh heartbeat (each one's seq follows the last: PROTOCOL.md 5.2), by default one that hears servants 1-7."""
    return Heartbeat(master_id, epoch, 640, page, heard, next(_SEQ) % 1024, **flags)


def of(kind: type, msgs: list[Message]) -> list[Message]:
    return [m for m in msgs if isinstance(m, kind)]


def following(meter: bool = True, limit: int = 320, now: float = 0.1, **kw: int) -> Servant:
    """A servant that hears master (1, 7), has a charging car and was granted ``limit``."""
    s = make(meter=meter, **kw)
    s.receive(hb(), now)
    s.observe(PilotState.B, 0 if meter else None, now)  # booted before the car charges: no PWM, no car in C
    s.observe(C, 0 if meter else None, now)
    out = s.receive(SetLimit(1, 1, limit, 60, 7), now)
    assert of(Ack, out) == [Ack(1, 1, limit, 0 if meter else None, AckHow.IMMEDIATE)]
    return s
