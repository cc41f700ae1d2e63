"""Frame codec throughput: busshare's encode/decode/E2E against peers, measured in the same run.

    python benchmarks/bench_frames.py            # about half a minute
    python benchmarks/bench_frames.py --quick

Prints frames/s for:
- busshare encode, decode (cold: every frame unique), CachedDecoder on realistic
  repeating traffic (the hot path; target >= 1,000,000 frames/s), the E2E CRC
  check, the alive-counter check and the full Link.receive;
- peers on the same frames: plain struct.unpack (a floor: no checks, no objects),
  construct compiled (the SPEC declaration with .compile()), cantools with the DBC.

Each figure is the best of several rounds (the machine is shared). Nothing here
is asserted: figures only.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from busshare.frames import CachedDecoder  # noqa: E402
from busshare.frames import Heartbeat  # noqa: E402
from busshare.frames import Message  # noqa: E402
from busshare.frames import MsgType  # noqa: E402
from busshare.frames import Status  # noqa: E402
from busshare.frames import decode  # noqa: E402
from busshare.frames import encode  # noqa: E402
from busshare.frames import offset_of  # noqa: E402
from busshare.frames import spec_decode  # noqa: E402
from busshare.protocol.e2e import E2EChecker  # noqa: E402
from busshare.protocol.e2e import frame_crc  # noqa: E402
from busshare.protocol.link import Link  # noqa: E402
from busshare.protocol.pilot import PilotState  # noqa: E402
from busshare.protocol.spec import SPEC  # noqa: E402
from busshare.protocol.spec import FrameSpec  # noqa: E402
from tests.support.frame_strategies import random_message  # noqa: E402

Frame = tuple[int, bytes]


def unique_frames(t: MsgType | None, n: int, rng: random.Random) -> tuple[list[Message], list[Frame]]:
    """n distinct frames of type t (None: the bus mix, 80 % STATUS), each with its counter."""
    types = [t] if t is not None else [MsgType.STATUS] * 16 + [MsgType.HEARTBEAT] * 2 + [
        MsgType.SET_LIMIT, MsgType.ACK, MsgType.REQUEST, MsgType.RELEASE]
    seen: dict[Frame, Message] = {}
    while len(seen) < n:
        msg = random_message(rng.choice(types), rng)
        seen.setdefault((offset_of(msg), encode(msg, rng.randint(0, 15))), msg)
    return list(seen.values()), list(seen)


def bus_traffic(servants: int, seconds: float, rng: random.Random) -> list[Frame]:
    """What a monitor sees: a heartbeat and every servant's STATUS each 0.2 s, values changing slowly."""
    link = Link()
    frames: list[Frame] = []
    offered = {a: 160 for a in range(1, servants + 1)}
    for tick in range(int(seconds / 0.2)):
        frames.append(link.encode(Heartbeat(1, 7, 640, tick % 8, 0, tick % 1024)))
        for a in offered:
            if rng.random() < 0.01:
                offered[a] = rng.choice([0, 60, 160, 320])
            measured = max(0, offered[a] - 5) if offered[a] else 0
            frames.append(link.encode(Status(a, a * 97, PilotState.C, offered[a], measured, 320)))
    return frames


def rate(fn: Callable[[], object], count: int, rounds: int) -> float:
    """Best frames/s over ``rounds`` runs of ``fn`` (which handles ``count`` frames)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def over(frames: Sequence[Frame], fn: Callable[[int, bytes], object]) -> Callable[[], None]:
    def run() -> None:
        for offset, data in frames:
            fn(offset, data)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and rounds")
    args = parser.parse_args(argv)
    # many short rounds, best kept: a shared machine's bursts of load hit some rounds, not all
    n, rounds = (5_000, 5) if args.quick else (10_000, 15)
    rng = random.Random(2026)

    rows: list[tuple[str, float]] = []

    def report(name: str, per_s: float) -> None:
        rows.append((name, per_s))
        print(f"  {name:<46} {per_s:>12,.0f} frames/s", flush=True)

    print(f"busshare frame codec benchmark, Python {sys.version.split()[0]}, {n:,} frames per run, best of {rounds}")
    msgs, frames = unique_frames(None, n, rng)
    print("\nbusshare (bus mix: 80 % STATUS; cold = every frame unique):")
    counters = [data[1] & 15 for _, data in frames]

    def enc() -> None:
        for msg, counter in zip(msgs, counters, strict=True):
            encode(msg, counter)

    report("encode", rate(enc, n, rounds))
    report("decode, cold", rate(over(frames, decode), n, rounds))
    for t in (MsgType.STATUS, MsgType.HEARTBEAT, MsgType.SET_LIMIT, MsgType.ACK, MsgType.NACK):
        _, typed = unique_frames(t, n, rng)
        report(f"  decode, cold, {t.name} only", rate(over(typed, decode), len(typed), rounds))
    traffic = bus_traffic(32, 60.0, rng)
    unique = len(set(traffic))

    def cached_run() -> None:
        over(traffic, CachedDecoder())()

    warm = CachedDecoder()
    over(traffic, warm)()
    report(f"CachedDecoder, 32 servants ({unique:,} distinct of {len(traffic):,})", rate(cached_run, len(traffic), rounds))
    report("CachedDecoder, warm (hot path)", rate(over(traffic, warm), len(traffic), rounds))
    report("E2E: CRC check (frame_crc == byte 0)", rate(over(frames, lambda o, d: frame_crc(o, d[1:]) == d[0]), n, rounds))
    checker = E2EChecker()
    report("E2E: alive counter check", rate(over(frames, lambda o, d: checker.check_counter(o, d[1] & 15)), n, rounds))

    def link_run() -> None:
        link = Link()
        over(frames, lambda o, d: link.receive(o, d, 0.0))()

    report("Link.receive (decode + E2E), cold", rate(link_run, n, rounds))
    report("spec_decode (construct, not compiled)", rate(over(frames[: n // 10], spec_decode), n // 10, rounds))

    print("\npeers on the same frames:")
    unpack = struct.Struct("<BBHI").unpack

    report("struct.unpack('<BBHI') (no checks, no objects)", rate(over(frames, lambda o, d: unpack(d)), n, rounds))
    head = FrameSpec.compile()
    bodies = {t: s.compile() for t, s in SPEC.items()}

    def construct_compiled(offset: int, data: bytes) -> object:
        frame = head.parse(data)
        return bodies[MsgType(offset >> 6)].parse(frame.body)

    def construct_body_only(offset: int, data: bytes) -> object:
        return bodies[MsgType(offset >> 6)].parse(data[2:])

    report("construct compiled, whole frame (no checks)", rate(over(frames, construct_compiled), n, rounds))
    report("construct compiled, body only (no checks)", rate(over(frames, construct_body_only), n, rounds))
    # the bit-level BitStructs (flag nibble, HEARTBEAT and STATUS words) dominate construct's time;
    # a byte-aligned body alone shows construct's best case
    _, set_limits = unique_frames(MsgType.SET_LIMIT, n // 4, rng)
    report("  construct compiled, SET_LIMIT body only", rate(over(set_limits, construct_body_only), len(set_limits), rounds))
    try:
        import cantools
    except ImportError:
        print("  cantools not installed: skipped")
    else:
        db = cantools.database.load_file(str(ROOT / "dbc" / "busshare.dbc"))
        assert isinstance(db, cantools.database.can.Database)
        report("cantools decode_message with dbc/busshare.dbc", rate(over(frames, db.decode_message), n, rounds))

    figures = dict(rows)
    cold, hot = figures["decode, cold"], figures["CachedDecoder, warm (hot path)"]
    print("\nratios (same run):")
    for label, peer in [
        ("decode cold / struct.unpack", "struct.unpack('<BBHI') (no checks, no objects)"),
        ("decode cold / construct compiled, whole frame", "construct compiled, whole frame (no checks)"),
        ("decode cold / construct compiled, body only", "construct compiled, body only (no checks)"),
        ("decode cold / cantools", "cantools decode_message with dbc/busshare.dbc"),
        ("hot path / decode cold", "decode, cold"),
        ("hot path / cantools", "cantools decode_message with dbc/busshare.dbc"),
    ]:
        if peer in figures:
            top = hot if label.startswith("hot") else cold
            print(f"  {label:<46} {top / figures[peer]:8.2f}")
    verdict = "meets" if hot >= 1_000_000 else "MISSES"
    print(f"\nhot path {hot:,.0f} frames/s {verdict} the 1,000,000 frames/s target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
