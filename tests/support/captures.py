"""Realistic bus traffic for decoder tests and benchmarks, encoded by the real ``Link``.

A master heartbeating every 0.2 s and servants sending status every 0.5 s;
every ``session`` seconds one car plugs in or leaves, so the master cuts the
others (with acks) and grants the newcomer: cut-then-grant, as on a real bus.
Meter readings jitter by a few tenths of an amp, so frames repeat but not all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import can

from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Heartbeat
from busshare.frames import Join
from busshare.frames import Message
from busshare.frames import Release
from busshare.frames import ReleaseReason
from busshare.frames import Request
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState

LIMIT_DA = 640
FAILSAFE_DA = 60


def traffic(n_frames: int, servants: int = 4, seed: int = 1, t0: float = 1_700_000_000.0,
            session: float = 60.0) -> Iterator[tuple[float, int, bytes]]:
    """(t, offset, data) for ``n_frames`` frames of a healthy installation."""
    rng = random.Random(seed)
    master, nodes = Link(), {a: Link() for a in range(1, servants + 1)}
    limits = {a: 0 for a in nodes}
    charging: list[int] = []
    txn = 0
    seq = 0
    out: list[tuple[float, int, bytes]] = []
    t = 0.0
    next_event = 5.0
    emitted = 0

    def send(link: Link, msg: Message, at: float) -> None:
        offset, data = link.encode(msg)
        out.append((t0 + at, offset, data))

    tick = 0
    while emitted < n_frames:
        t = tick * 0.1
        if tick % 2 == 0:
            send(master, Heartbeat(1, 7, LIMIT_DA), t)
            seq += 1
        if tick % 5 == 0:
            for a, link in nodes.items():
                on = a in charging
                measured = max(0, limits[a] - rng.randint(0, 4)) if on and limits[a] else 0
                send(link, Status(a, 0x100 + a, PilotState.C if on else PilotState.A, limits[a],
                                  measured, 320 if on else 0), t + 0.001 * a)
        if t >= next_event:
            next_event += session
            idle = [a for a in nodes if a not in charging]
            if idle and (len(charging) < 2 or rng.random() < 0.5):
                new = rng.choice(idle)
                send(nodes[new], Request(new, 320, 60, 0), t + 0.01)
                share = LIMIT_DA // (len(charging) + 1)
                for a in charging:
                    txn = (txn + 1) % 256
                    send(master, SetLimit(a, txn, min(share, 320), FAILSAFE_DA, 7), t + 0.02)
                    send(nodes[a], Ack(a, txn, min(share, 320), min(share, 320) - 2, AckHow.MEASURED), t + 0.5)
                    limits[a] = min(share, 320)
                txn = (txn + 1) % 256
                send(master, SetLimit(new, txn, min(share, 320), FAILSAFE_DA, 7), t + 0.6)
                send(nodes[new], Ack(new, txn, min(share, 320), None, AckHow.IMMEDIATE), t + 0.61)
                limits[new] = min(share, 320)
                charging.append(new)
            elif charging:
                gone = charging.pop(0)
                send(nodes[gone], Release(gone, limits[gone], ReleaseReason.EV_DONE), t + 0.01)
                limits[gone] = 0
        # in time order, as a bus capture is: what a tick schedules later (an ack 0.5 s on) waits for its time
        out.sort()
        horizon = t0 + t + 0.1
        while out and out[0][0] < horizon and emitted < n_frames:
            yield out.pop(0)
            emitted += 1
        tick += 1


def write_candump_l(path: str, frames: Iterator[tuple[float, int, bytes]], base: int = 0) -> None:
    """The same text ``candump -L`` and python-can's .log writer produce."""
    with open(path, "w") as f:
        f.writelines(f"({t:.6f}) vcan0 {base + off:03X}#{data.hex().upper()}\n" for t, off, data in frames)


def write_with_python_can(path: str, frames: Iterator[tuple[float, int, bytes]], base: int = 0,
                          extended: bool = False) -> None:
    """Any format python-can writes, chosen by the extension."""
    with can.Logger(path) as logger:
        for t, off, data in frames:
            logger.on_message_received(
                can.Message(timestamp=t, arbitration_id=base + off, is_extended_id=extended, data=data, channel="vcan0")
            )


def stream_rule_traffic(rng: random.Random, n: int) -> list[tuple[int, int, bytes]]:
    """(time in ms, offset, data) that exercises every stream rule of PROTOCOL.md 6.3: a master and three
    servants that reboot (counters back at 0), masters that restart or change id, duplicates, copies just
    inside and just past the 1 s stream memory, silences."""
    senders: dict[str, Link] = {name: Link() for name in ("m", "rival", "1", "2", "3")}
    epoch, master_id = 7, 1
    t, out = 0, []
    for _ in range(n):
        t += rng.choice([0, 1, 5, 200, 500, 999, 1000, 1001, 1500])
        who = rng.choice(list(senders))
        if rng.random() < 0.05:
            senders[who] = Link()  # a reboot: counters at 0 again
            if who == "m":
                epoch, master_id = rng.choice([(epoch + 1) % 256, epoch]), rng.choice([1, 1, 2])
        a = int(who) if who.isdigit() else 1
        msg: Message
        if who == "rival":  # a second master, heartbeating between the first one's heartbeats
            msg = Heartbeat(9, 3, 640)
        elif who == "m":
            msg = rng.choice([Heartbeat(master_id, epoch, 640), SetLimit(rng.randint(1, 3), 0, 320, 60, epoch)])
        else:
            msg = rng.choice([Join(a, 0x100 + a, 320), Request(a, 320, 60, 0), Release(a, 0, ReleaseReason.EV_DONE),
                              Status(a, a, PilotState.C, 320, 310, 320)])
        frame = senders[who].encode(msg)
        out.append((t, *frame))
        if rng.random() < 0.15:  # a copy: a duplicate within the stream memory, or one just past it
            t += rng.choice([0, 1, 10, 999, 1000, 1001, 3000])
            out.append((t, *frame))
    return out
