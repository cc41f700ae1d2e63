"""docs/PROTOCOL.md cannot drift from the code: every worked example is decoded and re-encoded here."""

from __future__ import annotations

import dataclasses
import enum
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from busshare.frames import MESSAGE_TYPES
from busshare.frames import AckHow
from busshare.frames import FrameError
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import MsgType
from busshare.frames import NackCode
from busshare.frames import ReleaseReason
from busshare.frames import Status
from busshare.frames import decode
from busshare.frames import encode
from busshare.protocol.canid import IdScheme
from busshare.protocol.e2e import frame_crc
from busshare.protocol.link import Link
from busshare.protocol.pilot import PilotState
from tests.support.frame_strategies import random_message

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
BLOCK = re.compile(r"^```frame\n(.*?)^```", re.MULTILINE | re.DOTALL)
ENUMS: dict[str, type[enum.Enum]] = {"pilot": PilotState, "how": AckHow, "code": NackCode, "reason": ReleaseReason}


@dataclasses.dataclass
class Example:
    can_id: int
    data: bytes
    msg_type: MsgType
    address: int
    counter: int
    fields: dict[str, str]

    def __str__(self) -> str:
        return f"id={self.can_id:#05x} data={self.data.hex(' ')}"


def parse(block: str) -> Example:
    first, *rest = block.strip().splitlines()
    m = re.fullmatch(r"id=(0x[0-9a-fA-F]+) data=((?:[0-9a-fA-F]{2} ?)+)", first.strip())
    assert m, f"first line must be 'id=0x... data=xx xx ...': {first!r}"
    fields: dict[str, str] = {}
    for line in rest:
        for token in line.split():
            key, sep, value = token.partition("=")
            assert sep and value, f"not name=value: {token!r}"
            assert key not in fields, f"{key} given twice"
            fields[key] = value
    return Example(
        int(m.group(1), 16),
        bytes.fromhex(m.group(2)),
        MsgType[fields.pop("type")],
        int(fields.pop("address")),
        int(fields.pop("counter")),
        fields,
    )


def examples() -> list[Example]:
    return [parse(b) for b in BLOCK.findall(DOC.read_text())]


def value_of(cls: type, name: str, text: str) -> Any:
    field_type = {f.name: f for f in dataclasses.fields(cls)}[name]
    if text == "unknown":
        return None
    if name in ENUMS:
        return ENUMS[name][text]
    if field_type.type in ("bool", bool):
        assert text in ("0", "1"), f"{name} is a boolean: 0 or 1"
        return text == "1"
    return int(text, 0)


def expected_message(ex: Example) -> Message:
    cls = MESSAGE_TYPES[ex.msg_type]
    names = [f.name for f in dataclasses.fields(cls)]
    missing = set(names) - {"address"} - set(ex.fields)
    extra = set(ex.fields) - set(names)
    assert not missing and not extra, f"{ex}: missing fields {sorted(missing)}, unknown fields {sorted(extra)}"
    kwargs = {k: value_of(cls, k, v) for k, v in ex.fields.items()}
    if "address" in names:
        kwargs["address"] = ex.address
    msg: Message = cls(**kwargs)
    return msg


def test_doc_has_examples_for_every_message_type() -> None:
    found = {ex.msg_type for ex in examples()}
    missing = set(MsgType) - found
    assert not missing, f"docs/PROTOCOL.md has no worked example for {sorted(t.name for t in missing)}"


@pytest.mark.parametrize("ex", examples(), ids=str)
def test_worked_example(ex: Example) -> None:
    offset = IdScheme().require_offset(ex.can_id, False)  # examples use the default base 0x000
    assert (offset >> 6, offset & 0x3F) == (ex.msg_type, ex.address), "id does not match type and address"
    msg = expected_message(ex)
    assert decode(offset, ex.data) == (msg, ex.counter)
    assert encode(msg, ex.counter).hex(" ") == ex.data.hex(" ")


def test_section_8_is_present() -> None:
    assert "\n## 8. State machines and safety rules\n" in DOC.read_text()


def test_parser_catches_a_wrong_example() -> None:
    """The checks above can fail: a one-bit change in a documented frame is caught."""
    ex = examples()[0]
    bad = dataclasses.replace(ex, data=bytes((ex.data[0] ^ 1,)) + ex.data[1:])
    with pytest.raises(Exception):  # noqa: B017  (FrameError or AssertionError, either is a failure)
        test_worked_example(bad)


# --------------------------------------------------------------------------- the C snippets

C_BLOCK = re.compile(r"^```c\n(.*?)^```", re.MULTILINE | re.DOTALL)


def c_snippet(title: str) -> str:
    for block in C_BLOCK.findall(DOC.read_text()):
        if block.startswith(f"/* {title} */"):
            return str(block)
    raise AssertionError(f"docs/PROTOCOL.md has no C block titled {title!r}")


def c_program() -> str:
    """The document's C snippets, wrapped into a filter: one frame per line in, decoded fields out."""
    return "\n".join([
        "#include <stdio.h>",
        c_snippet("CRC-8 SAE J1850 and the frame CRC"),
        c_snippet("HEARTBEAT: does it say the master hears this servant?"),
        c_snippet("HEARTBEAT: is seq newer than the newest fresh one? (modulo 1024)"),
        "static void hb(const uint8_t *d, unsigned out[6]) {",
        c_snippet("HEARTBEAT: decode bytes 2-7"),
        "out[0] = limit_da; out[1] = page; out[2] = 0; out[3] = master_id; out[4] = epoch; out[5] = seq;",
        "for (uint8_t a = 0; a < 64; a++) if (hb_hears(page, heard, a)) out[2]++;",
        "if (!hb_newer((uint16_t)((seq + 1) & 0x3FF), seq) || hb_newer(seq, seq)) out[2] = 999; }",
        "static void st(const uint8_t *d, unsigned out[5]) {",
        c_snippet("STATUS: decode bytes 2-7"),
        "out[0] = pilot; out[1] = offered_da; out[2] = measured_da; out[3] = requested_da; out[4] = serial_tag; }",
        "static void st_enc(uint8_t d[8], unsigned pilot, unsigned offered_da, unsigned measured_da,",
        "    unsigned requested_da, uint32_t serial, unsigned flags, unsigned counter, unsigned address) {",
        c_snippet("STATUS: encode"),
        "}",
        "int main(void) {",
        "  unsigned off, b[8];",
        "  while (scanf(\"%x %x %x %x %x %x %x %x %x\", &off, b, b+1, b+2, b+3, b+4, b+5, b+6, b+7) == 9) {",
        "    uint8_t d[8], e[8]; unsigned o[6];",
        "    for (int i = 0; i < 8; i++) d[i] = (uint8_t)b[i];",
        "    printf(\"crc=%u\", frame_crc((uint16_t)off, d));",
        "    if (off == 0x40) { hb(d, o); printf(\" limit_da=%u page=%u heard=%u id=%u epoch=%u seq=%u\", o[0], o[1], o[2], o[3], o[4], o[5]); }",
        "    if (off >> 6 == 6) {",
        "      st(d, o);",
        "      printf(\" pilot=%u offered_da=%u measured_da=%u requested_da=%u serial_tag=%u\", o[0], o[1], o[2], o[3], o[4]);",
        "      st_enc(e, o[0], o[1], o[2], o[3], o[4], d[1] >> 4, d[1] & 15, off & 63);",
        "      printf(\" reencoded=\"); for (int i = 0; i < 8; i++) printf(\"%02x\", e[i]);",
        "    }",
        "    printf(\"\\n\");",
        "  }",
        "  return 0;",
        "}",
    ])


def python_view(offset: int, data: bytes) -> str:
    """What the C filter must print for a valid frame, computed with the Python codec."""
    msg, _ = decode(offset, data)
    out = f"crc={data[0]}"
    if isinstance(msg, Heartbeat):
        out += (f" limit_da={msg.limit_da} page={msg.page} heard={sum(msg.hears(a) for a in range(64))}"
                f" id={msg.master_id} epoch={msg.epoch} seq={msg.seq}")
    if isinstance(msg, Status):
        measured = 1023 if msg.measured_da is None else msg.measured_da
        out += (f" pilot={int(msg.pilot)} offered_da={msg.offered_da} measured_da={measured}"
                f" requested_da={msg.requested_da} serial_tag={msg.serial_tag} reencoded={data.hex()}")
    return out


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")
def test_c_snippets_agree_with_the_codec(tmp_path: Path) -> None:
    """A firmware engineer copies the C from the spec: compiled with -Wall -Werror, it must agree."""
    source = tmp_path / "spec.c"
    source.write_text(c_program())
    binary = tmp_path / "spec"
    cc = ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-o", str(binary), str(source)]
    built = subprocess.run(cc, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, f"the C in docs/PROTOCOL.md does not compile cleanly:\n{built.stderr}"
    rng = random.Random(8)
    frames = [(ex.can_id, ex.data) for ex in examples()]
    for t in MsgType:
        for _ in range(100):
            frames.append(Link().encode(random_message(t, rng)))
    stdin = "".join(f"{off:x} {data.hex(' ')}\n" for off, data in frames)
    result = subprocess.run([str(binary)], input=stdin, capture_output=True, text=True, check=True, timeout=60)
    lines = result.stdout.splitlines()
    assert len(lines) == len(frames)
    for (off, data), line in zip(frames, lines, strict=True):
        assert line == python_view(off, data), f"{off:#05x} {data.hex(' ')}"


# --------------------------------------------------------------------------- frames that must be rejected

REJECT_BLOCK = re.compile(r"^```reject\n(.*?)^```", re.MULTILINE | re.DOTALL)
REJECT_LINE = re.compile(r"id=(0x[0-9a-fA-F]+) data=((?:[0-9a-fA-F]{2} ?)*) reject=(\w+)")


def rejects() -> list[tuple[int, bytes, str]]:
    out = []
    for block in REJECT_BLOCK.findall(DOC.read_text()):
        for line in block.strip().splitlines():
            m = REJECT_LINE.fullmatch(line.strip())
            assert m, f"not 'id=0x... data=.. reject=kind': {line!r}"
            out.append((int(m.group(1), 16), bytes.fromhex(m.group(2)), m.group(3)))
    return out


def test_doc_has_a_rejected_frame_for_every_check() -> None:
    assert {kind for *_, kind in rejects()} >= {"length", "crc", "address", "reserved", "range", "enum"}


@pytest.mark.parametrize(("can_id", "data", "kind"), rejects(), ids=lambda v: f"{v:#05x}" if isinstance(v, int) else None)
def test_documented_rejection(can_id: int, data: bytes, kind: str) -> None:
    offset = IdScheme().require_offset(can_id, False)
    with pytest.raises(FrameError) as info:
        decode(offset, data)
    assert info.value.kind == kind
    if kind != "crc" and len(data) == 8:  # the document says the CRC is right: the later check must be the reason
        assert data[0] == frame_crc(offset, data[1:])


def test_the_cantools_run_decodes_the_worked_examples_it_names() -> None:
    """Section 11.2 shows cantools on "three frames of section 9 (9.x, ...)": the capture it reads
    (docs/examples/capture.log) must hold exactly those examples' frames, in that order."""
    text = DOC.read_text()
    names = re.search(r"frames of section 9 \(([0-9., ]+);", text)
    assert names, "the cantools run no longer names its examples"
    sections = re.split(r"^### (9\.\d+) ", text, flags=re.MULTILINE)
    example = {sections[i]: parse(BLOCK.findall(sections[i + 1])[0]) for i in range(1, len(sections) - 1, 2)
               if BLOCK.findall(sections[i + 1])}
    wanted = [example[n.strip()] for n in names.group(1).split(",")]
    capture = (DOC.parent / "examples" / "capture.log").read_text().split()
    got = [tuple(capture[i].split("#")) for i in range(2, len(capture), 3)]
    assert got == [(f"{ex.can_id:03X}", ex.data.hex().upper()) for ex in wanted]
