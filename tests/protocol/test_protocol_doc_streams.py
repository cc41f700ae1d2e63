"""PROTOCOL.md 6.3's stream rules in C, as a firmware engineer copies them, decide as the Link does.

A timed mix of frames with every case the rules are there for (duplicates, servants rebooting with their
counters back at 0, silences around 1 s, masters restarting and alternating) goes through the document's
C and through ``Link.receive``: each frame is acted on by both or dropped by both.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from busshare.frames import Heartbeat, Join, Message, Release, ReleaseReason, Request, SetLimit, Status
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
TITLE = "/* PROTOCOL.md 6.3: stream memory and the stream rules */"


def c_program() -> str:
    (block,) = [b for b in re.findall(r"^```c\n(.*?)^```", DOC.read_text(), re.M | re.S) if b.startswith(TITLE)]
    return block + "\n".join([
        "#include <stdio.h>",
        "int main(void) {",
        "  unsigned long t; unsigned off, b[8];",
        "  while (scanf(\"%lu %x %x %x %x %x %x %x %x %x\", &t, &off, b, b+1, b+2, b+3, b+4, b+5, b+6, b+7) == 10) {",
        "    uint8_t d[8];",
        "    for (int i = 0; i < 8; i++) d[i] = (uint8_t)b[i];",
        "    printf(\"%d\\n\", check_counter((uint16_t)off, d, (uint32_t)t) ? 1 : 0);",
        "  }",
        "  return 0;",
        "}",
    ])


def traffic(rng: random.Random, n: int) -> list[tuple[int, int, bytes]]:
    """(time in ms, offset, data): a master and three servants that reboot, repeat and fall silent."""
    senders: dict[str, Link] = {name: Link() for name in ("m", "1", "2", "3")}
    epoch, master_id = 7, 1
    t, out = 0, []
    for _ in range(n):
        t += rng.choice([0, 1, 5, 200, 500, 999, 1000, 1001, 1500])
        who = rng.choice(list(senders))
        if rng.random() < 0.05:
            senders[who] = Link()  # a reboot: counters at 0 again
            if who == "m":
                epoch, master_id = rng.choice([(epoch + 1) % 256, epoch]), rng.choice([1, 1, 2])
        a = 1 if who == "m" else int(who)
        msg: Message
        if who == "m":
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


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")
def test_the_c_stream_rules_decide_as_the_link(tmp_path: Path) -> None:
    source, binary = tmp_path / "streams.c", tmp_path / "streams"
    source.write_text(c_program())
    cc = ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-o", str(binary), str(source)]
    built = subprocess.run(cc, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, f"the C of PROTOCOL.md 6.3 does not compile cleanly:\n{built.stderr}"
    frames = traffic(random.Random(63), 3000)
    stdin = "".join(f"{t} {off:x} {data.hex(' ')}\n" for t, off, data in frames)
    run = subprocess.run([str(binary)], input=stdin, capture_output=True, text=True, check=True, timeout=60)
    rx = Link()
    python = [rx.receive(off, data, t / 1000).accepted for t, off, data in frames]
    c = [line == "1" for line in run.stdout.splitlines()]
    assert c == python
    assert python.count(False) > 50 and rx.restarts  # the mix does exercise every rule
    assert len(rx.restarts) == 3
