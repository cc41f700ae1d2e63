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

from busshare.protocol.link import Link
from tests.support.captures import stream_rule_traffic

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


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")
def test_the_c_stream_rules_decide_as_the_link(tmp_path: Path) -> None:
    source, binary = tmp_path / "streams.c", tmp_path / "streams"
    source.write_text(c_program())
    cc = ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-o", str(binary), str(source)]
    built = subprocess.run(cc, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, f"the C of PROTOCOL.md 6.3 does not compile cleanly:\n{built.stderr}"
    frames = stream_rule_traffic(random.Random(63), 3000)
    stdin = "".join(f"{t} {off:x} {data.hex(' ')}\n" for t, off, data in frames)
    run = subprocess.run([str(binary)], input=stdin, capture_output=True, text=True, check=True, timeout=60)
    rx = Link()
    python = [rx.receive(off, data, t / 1000).accepted for t, off, data in frames]
    c = [line == "1" for line in run.stdout.splitlines()]
    assert c == python
    assert python.count(False) > 50 and rx.restarts  # the mix does exercise every rule
    assert len(rx.restarts) == 3
