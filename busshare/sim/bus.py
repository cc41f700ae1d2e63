"""A simulated CAN bus: one frame at a time, with faults a real installation has.

Frames are real 8-byte payloads produced by each node's ``Link``; receivers
run them through their own ``Link``, so a bit flipped here is caught (or not)
by the real E2E code.  The bus is one shared medium: a frame waits for the bus
to be free, occupies it for its transmission time at ``bitrate``, and reaches
every other attached port at once (a node never hears its own frames, as on
CAN).  Faults are drawn per receiver from the bus's own seeded generator:

* ``loss``       the frame never reaches this receiver;
* ``duplicate``  it arrives twice (a retransmission after an error frame);
* ``corrupt``    1-2 random bits flipped in the 8 bytes this receiver gets;
* ``late``       it also gets a byte-identical copy ``late_min_s``..``late_max_s``
                 later (a gateway, bridge, UDP path or multi-mailbox driver
                 replaying an old frame): a late duplicate, out of order;
* ``jitter_s``   each copy is held back a further 0..``jitter_s``, so frames
                 can overtake each other (reordering; never on one CAN segment);
* ``echo_s``     a second path (a bridge, a UDP loop) delivers every frame
                 once more, ``echo_s`` later, to every receiver: a steady,
                 ordered stream of late copies, one period apart, that outlives
                 its sender (a dead master's heartbeats, a mute unit's frames
                 do not get onto it);
* replay         a store-and-forward gateway keeps the frames on the wire for a
                 while and delivers them all again later, in order, back to back
                 (``Faults.replay``): old heartbeats and set-limits of a master
                 that has since restarted arrive in one burst;
* partitions     a port can be deaf (hears nothing), mute (its frames reach no
                 one) or both, as with a broken or unplugged bus drop.

A port may carry an acceptance filter (like a CAN controller's): the set of
addresses whose frames it wants.  ``capture`` records every frame that made it
onto the wire, as (t, can id, data), which is what a sniffer on the bus sees.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import TypedDict

from ..frames import CachedDecoder
from ..frames import decode
from ..protocol.link import Decoder
from ..protocol.link import Link
from .clock import EventQueue

if TYPE_CHECKING:
    from .procs import MasterProc
    from .procs import ServantProc

#: an 8-byte classic CAN frame with an 11-bit id: 111 bits + worst-case stuffing (24) + interframe (3)
FRAME_BITS = 138


class BusSettings(TypedDict, total=False):
    """Some of ``BusFaults``'s fields, typed as there (``bitrate`` an int): a scenario's [bus] table, or the
    changes a bus fault makes (``Faults.bus_faults``)."""

    bitrate: int
    latency_s: float
    loss: float
    duplicate: float
    corrupt: float
    late: float
    late_min_s: float
    late_max_s: float
    jitter_s: float
    echo_s: float


@dataclass(frozen=True)  # (SimBus keeps figures worked out from it: replaced whole, never changed in place)
class BusFaults:
    bitrate: int = 125_000
    latency_s: float = 0.0  # extra fixed delay after transmission (controller, driver)
    loss: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    late: float = 0.0  # per receiver, probability of an extra copy delivered late_min_s..late_max_s later
    late_min_s: float = 1.0
    late_max_s: float = 30.0
    jitter_s: float = 0.0  # every copy held back a further 0..jitter_s: frames overtake each other
    echo_s: float = 0.0  # > 0: a second path delivers every frame again, in order, this much later

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "corrupt", "late"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"bus {name} must be a probability 0..1, got {p}")
        if self.bitrate <= 0 or self.latency_s < 0:
            raise ValueError("bus bitrate must be > 0 and latency_s >= 0")
        if not 0 <= self.late_min_s <= self.late_max_s or self.jitter_s < 0 or self.echo_s < 0:
            raise ValueError("bus needs 0 <= late_min_s <= late_max_s, jitter_s >= 0 and echo_s >= 0")

    @property
    def frame_time(self) -> float:
        return FRAME_BITS / self.bitrate


def bus_settings(f: BusFaults) -> BusSettings:
    """Every field of ``f``, as settings (a fault's changes are applied over these)."""
    return BusSettings(bitrate=f.bitrate, latency_s=f.latency_s, loss=f.loss, duplicate=f.duplicate,
                       corrupt=f.corrupt, late=f.late, late_min_s=f.late_min_s, late_max_s=f.late_max_s,
                       jitter_s=f.jitter_s, echo_s=f.echo_s)


class Port:
    """Where one node (one process) attaches to the bus."""

    __slots__ = ("name", "address", "link", "owner", "deaf", "mute", "accept", "attached", "sent")

    def __init__(self, name: str, address: int, owner: MasterProc | ServantProc, accept: frozenset[int] | None,
                 decoder: Decoder = decode) -> None:
        self.name = name
        self.address = address
        self.link = Link(decoder=decoder)
        self.owner = owner  # the simulator's process object for this node
        self.deaf = False
        self.mute = False
        self.accept = accept  # addresses (low 6 bits of the id) it listens to; None = all
        self.attached = True
        self.sent = 0


class SimBus:
    __slots__ = ("queue", "rng", "_faults", "ports", "capture", "free_at", "frames", "lost", "corrupted", "duplicated",
                 "late", "late_until", "decoder", "_hearers", "keeps_capture", "_frame_time", "_latency_s", "_clean", "_echo_s",
                 "kept")

    def __init__(self, queue: EventQueue, rng: random.Random, faults: BusFaults | None = None) -> None:
        self.queue = queue
        self.rng = rng
        self.faults = faults or BusFaults()  # (sets the figures ``send`` reads, below)
        self.ports: list[Port] = []
        self.capture: list[tuple[float, int, bytes]] = []
        self.keeps_capture = True  # False: ``capture`` stays empty (a run that records nothing)
        self.free_at = 0.0
        self.frames = 0
        self.lost = 0
        self.corrupted = 0
        self.duplicated = 0  # extra copies, on time or late
        self.late = 0  # of which delivered late (a replay of an old frame)
        self.late_until = 0.0  # when the last late copy scheduled so far arrives
        # every receiver decodes the same few hundred distinct frames over and over: one shared memo
        self.decoder = CachedDecoder()
        # (sender, address) -> the other attached ports whose filter takes the address, in attach order: a frame
        # to one servant is not offered to every port's filter in turn (ports come and go only with the nodes)
        self._hearers: dict[tuple[Port, int], list[Port]] = {}
        # while a replay gateway keeps frames (``Faults.replay``): its buffers, each gets every frame on the wire
        self.kept: list[list[tuple[Port, int, bytes]]] = []

    @property
    def faults(self) -> BusFaults:
        return self._faults

    @faults.setter
    def faults(self, f: BusFaults) -> None:
        """The bus's settings, and what ``send`` reads of them for every frame (a fault replaces them whole)."""
        self._faults = f
        self._frame_time = f.frame_time
        self._latency_s = f.latency_s
        self._clean = not (f.loss or f.duplicate or f.corrupt or f.late or f.jitter_s)  # no per-receiver draws
        self._echo_s = f.echo_s

    def attach(self, name: str, address: int, owner: MasterProc | ServantProc,
               accept: frozenset[int] | None = None) -> Port:
        port = Port(name, address, owner, accept, self.decoder)
        self.ports.append(port)
        self._hearers.clear()
        return port

    def detach(self, port: Port) -> None:
        port.attached = False
        self.ports = [p for p in self.ports if p is not port]
        self._hearers.clear()

    def hearers(self, port: Port, address: int) -> list[Port]:
        """The ports a frame from ``port`` about ``address`` reaches: every other one whose filter takes it."""
        key = (port, address)
        found = self._hearers.get(key)
        if found is None:
            found = self._hearers[key] = [p for p in self.ports
                                          if p is not port and (p.accept is None or address in p.accept)]
        return found

    def send(self, port: Port, offset: int, data: bytes, now: float) -> None:
        """Queue one frame from ``port``; deliveries are scheduled as DELIVER events."""
        if port.mute or not port.attached:
            return
        start = now if now > self.free_at else self.free_at
        done = start + self._frame_time
        self.free_at = done
        at = done + self._latency_s
        self.frames += 1
        port.sent += 1
        if self.keeps_capture:
            self.capture.append((done, offset, data))
        if self.kept:
            for buffer in self.kept:
                buffer.append((port, offset, data))
        hearers = self._hearers.get((port, offset & 0x3F))
        if hearers is None:
            hearers = self.hearers(port, offset & 0x3F)
        if self._clean:
            if hearers:
                self.queue.push_deliver(at, offset, [(p, data, False) for p in hearers])
        else:
            self._faulty(hearers, offset, data, at)
        echo_s = self._echo_s
        if echo_s:  # the second path: everyone but the sender, untouched, echo_s later and in order
            echo = [(p, data, False) for p in hearers]
            if echo:
                self.duplicated += len(echo)
                self.late += len(echo)
                if at + echo_s > self.late_until:
                    self.late_until = at + echo_s
                self.queue.push_deliver(at + echo_s, offset, echo)

    def _faulty(self, hearers: list[Port], offset: int, data: bytes, at: float) -> None:
        """Deliveries to ``hearers`` with the fault draws, per receiver in order."""
        f = self._faults
        frame_time = self._frame_time
        loss, dup, corrupt, late, jitter = f.loss, f.duplicate, f.corrupt, f.late, f.jitter_s
        rng = self.rng
        out: list[tuple[Port, bytes, bool]] = []
        for p in hearers:
            if loss and rng.random() < loss:
                self.lost += 1
                continue
            got = data
            bad = False
            if corrupt and rng.random() < corrupt:
                got = flip_bits(data, rng)
                bad = True
                self.corrupted += 1
            if jitter:
                self.queue.push_deliver(at + rng.uniform(0.0, jitter), offset, [(p, got, bad)])
            else:
                out.append((p, got, bad))
            if dup and rng.random() < dup:
                self.duplicated += 1
                self.queue.push_deliver(at + frame_time, offset, [(p, got, bad)])
            if late and rng.random() < late:
                self.deliver_copy(p, offset, got, at + rng.uniform(f.late_min_s, f.late_max_s), bad)
        if out:
            self.queue.push_deliver(at, offset, out)

    def deliver_copy(self, port: Port, offset: int, data: bytes, at: float, corrupted: bool = False) -> None:
        """Deliver one extra copy of a frame to ``port`` at ``at`` (a late duplicate; scripted replays too)."""
        self.duplicated += 1
        self.late += 1
        if at > self.late_until:
            self.late_until = at
        self.queue.push_deliver(at, offset, [(port, data, corrupted)])


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    """Flip 1 or 2 distinct bits.

    CRC-8 SAE J1850 over the 9 protected bytes has Hamming distance 3: it
    detects every 1- and 2-bit error but misses about 0.5 % of 3-bit errors
    (tests/sim/test_sim_bus.py counts them).  On CAN the controller's own CRC-15
    (distance 6) stops those first, so the bus model injects what the E2E layer
    is specified to catch, and ``rule8-integrity`` holds it to that.
    """
    buf = bytearray(data)
    for bit in rng.sample(range(len(buf) * 8), rng.randint(1, 2)):
        buf[bit >> 3] ^= 1 << (bit & 7)
    return bytes(buf)
