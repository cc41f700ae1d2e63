"""CAN bus utilisation of the protocol, from the real bits of the real frames.

A classic CAN data frame is: SOF, arbitration field, control field, data,
CRC-15 (these are bit-stuffed: after five equal bits the sender inserts one
of opposite level), then the CRC delimiter, ACK slot and delimiter, 7 EOF
bits and 3 bits of interframe space (never stuffed).

* steady state: the periodic frames (master heartbeat, one status per
  servant) encoded with ``frames.encode``, their stuff bits counted exactly on
  the actual bit stream and averaged over the 16 alive-counter values;
* worst case: the same frames, each at the worst-case stuffing bound
  ``floor((stuffable - 1) / 4)`` (Davis et al., 2007);
* a full reallocation (every servant requests, is cut, acks, is granted,
  acks): the extra bus time one such burst costs, at worst-case length.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass

from ..core.config import Timing
from ..frames import Ack
from ..frames import AckHow
from ..frames import Heartbeat
from ..frames import Message
from ..frames import Request
from ..frames import SetLimit
from ..frames import Status
from ..frames import encode
from ..protocol.canid import IdScheme
from ..protocol.pilot import PilotState

#: bits after the CRC: CRC delimiter 1, ACK slot 1, ACK delimiter 1, EOF 7, interframe space 3
UNSTUFFED_TAIL_BITS = 13


def _bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def crc15(bits: list[int]) -> int:
    """The CAN CRC-15 (polynomial 0x4599) over a bit sequence, as the controller computes it."""
    crc = 0
    for bit in bits:
        nxt = bit ^ (crc >> 14)
        crc = (crc << 1) & 0x7FFF
        if nxt:
            crc ^= 0x4599
    return crc


def stuffable_bits(can_id: int, data: bytes, extended: bool) -> list[int]:
    """SOF through CRC of a data frame, before stuffing."""
    dlc = len(data)
    if extended:
        head = [0] + _bits(can_id >> 18, 11) + [1, 1] + _bits(can_id & 0x3FFFF, 18) + [0, 0, 0]
    else:
        head = [0] + _bits(can_id, 11) + [0, 0, 0]  # SOF, id, RTR, IDE, r0
    bits = head + _bits(dlc, 4)
    for byte in data:
        bits += _bits(byte, 8)
    return bits + _bits(crc15(bits), 15)


def count_stuff_bits(bits: list[int]) -> int:
    """Stuff bits a transmitter inserts: one after every run of five equal bits (stuff bits count in runs)."""
    stuffed = 0
    run_level = -1
    run = 0
    for bit in bits:
        if bit == run_level:
            run += 1
        else:
            run_level, run = bit, 1
        if run == 5:
            stuffed += 1
            run_level, run = 1 - bit, 1  # the stuff bit starts a new run
    return stuffed


def frame_bits(can_id: int, data: bytes, extended: bool) -> int:
    """Exact length on the wire, interframe space included."""
    bits = stuffable_bits(can_id, data, extended)
    return len(bits) + count_stuff_bits(bits) + UNSTUFFED_TAIL_BITS


def worst_case_frame_bits(dlc: int, extended: bool) -> int:
    """Upper bound on the wire length of any data frame with ``dlc`` bytes."""
    stuffable = (54 if extended else 34) + 8 * dlc
    return stuffable + (stuffable - 1) // 4 + UNSTUFFED_TAIL_BITS


def _timing_periods() -> tuple[float, float]:
    """(heartbeat period, status period) of the default ``Timing``."""
    t = Timing()
    return t.heartbeat_period, t.status_period


def _status(address: int) -> Status:
    """A typical status: a car charging at 16 A with a meter."""
    return Status(address, serial_tag=(0x1F00 + address * 37) & 0x7FFF, pilot=PilotState.C,
                  offered_da=160, measured_da=158, requested_da=320)


def _mean_bits(msg: Message, scheme: IdScheme) -> float:
    can_id = scheme.can_id(msg)
    return sum(frame_bits(can_id, encode(msg, c), scheme.extended) for c in range(16)) / 16


def _realloc_messages(address: int) -> list[Message]:
    return [
        Request(address, requested_da=320, min_da=60, priority=0),
        SetLimit(address, txn=address, limit_da=160, failsafe_da=60, epoch=7),
        Ack(address, txn=address, applied_da=160, measured_da=158, how=AckHow.MEASURED),
        SetLimit(address, txn=address + 1, limit_da=320, failsafe_da=60, epoch=7),
        Ack(address, txn=address + 1, applied_da=320, measured_da=None, how=AckHow.IMMEDIATE),
    ]


@dataclass(frozen=True)
class BusLoad:
    bitrate: int
    servants: int
    extended: bool
    heartbeat_period: float
    status_period: float
    frames_per_s: float
    steady_bits_per_s: float
    worst_bits_per_s: float
    steady_percent: float
    worst_percent: float
    mean_frame_bits: float  # steady state, exact stuffing
    worst_frame_bits: int
    realloc_frames: int  # one full reallocation of every servant
    realloc_ms: float  # bus time of that burst at worst-case length

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def busload(bitrate: int, servants: int, extended: bool = False,
            heartbeat_period: float | None = None, status_period: float | None = None) -> BusLoad:
    """Utilisation of a bus carrying a master and ``servants`` servants."""
    if bitrate <= 0:
        raise ValueError(f"bitrate must be positive, not {bitrate}")
    if not 1 <= servants <= 62:
        raise ValueError(f"servants must be 1-62 (the CAN id scheme's addresses), not {servants}")
    hb_default, st_default = _timing_periods()
    hb = hb_default if heartbeat_period is None else heartbeat_period
    st = st_default if status_period is None else status_period
    if hb <= 0 or st <= 0:
        raise ValueError("periods must be positive")
    scheme = IdScheme(base=0, extended=extended)
    heartbeat = Heartbeat(master_id=1, epoch=7, limit_da=640, page=0, heard=0xFE, seq=1)
    hb_rate, st_rate = 1 / hb, 1 / st
    steady = _mean_bits(heartbeat, scheme) * hb_rate
    steady += sum(_mean_bits(_status(a), scheme) for a in range(1, servants + 1)) * st_rate
    frames_per_s = hb_rate + servants * st_rate
    worst_len = worst_case_frame_bits(8, extended)
    worst = frames_per_s * worst_len
    realloc_frames = sum(len(_realloc_messages(a)) for a in range(1, servants + 1))
    return BusLoad(
        bitrate=bitrate, servants=servants, extended=extended, heartbeat_period=hb, status_period=st,
        frames_per_s=frames_per_s, steady_bits_per_s=steady, worst_bits_per_s=worst,
        steady_percent=100 * steady / bitrate, worst_percent=100 * worst / bitrate,
        mean_frame_bits=steady / frames_per_s, worst_frame_bits=worst_len,
        realloc_frames=realloc_frames, realloc_ms=1000 * realloc_frames * worst_len / bitrate,
    )
