"""docs/PROTOCOL.md cannot drift from the code: every worked example is decoded and re-encoded here."""

from __future__ import annotations

import dataclasses
import enum
import re
from pathlib import Path
from typing import Any

import pytest

from busshare.canid import IdScheme
from busshare.frames import MESSAGE_TYPES, AckHow, Message, MsgType, NackCode, ReleaseReason, decode, encode
from busshare.pilot import PilotState

DOC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"
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
