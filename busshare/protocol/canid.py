"""CAN identifiers: ``base + (type << 6) + address``.

The protocol uses 512 consecutive identifiers.  The message type sits in the
high bits so that safety-relevant frames win arbitration (lower ID wins), the
node address in the low 6 bits: 0 master, 1-62 servants, 63 broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..frames import FrameError
from ..frames import Message
from ..frames import MsgType
from ..frames import offset_of
from .layout import ID_OFFSETS
from .layout import id_offset

ID_SPAN = ID_OFFSETS
STD_MAX = 0x7FF
EXT_MAX = 0x1FFFFFFF


@dataclass(frozen=True)
class IdScheme:
    """Where the protocol's 512 identifiers sit on a bus shared with other traffic."""

    base: int = 0x000
    extended: bool = False

    def __post_init__(self) -> None:
        top = EXT_MAX if self.extended else STD_MAX
        kind = "29-bit" if self.extended else "11-bit"
        if self.base % ID_SPAN or not 0 <= self.base <= top + 1 - ID_SPAN:
            raise ValueError(
                f"id base {self.base:#x} must be a multiple of 0x200 with base+0x1FF a valid {kind} id"
            )

    def can_id(self, msg: Message) -> int:
        return self.base + offset_of(msg)

    def id_for(self, msg_type: MsgType, address: int) -> int:
        return self.base + id_offset(int(msg_type), address)

    def offset(self, can_id: int, is_extended: bool) -> int | None:
        """The ID's offset (type << 6 | address), or None if the frame is not ours."""
        if is_extended != self.extended:
            return None
        off = can_id - self.base
        return off if 0 <= off < ID_SPAN else None

    def require_offset(self, can_id: int, is_extended: bool) -> int:
        off = self.offset(can_id, is_extended)
        if off is None:
            raise FrameError("type", f"id {can_id:#x} is not in the protocol's range")
        return off

    def can_filters(self) -> list[dict[str, int | bool]]:
        """python-can receive filters matching exactly the protocol's identifiers."""
        top = EXT_MAX if self.extended else STD_MAX
        return [{"can_id": self.base, "can_mask": top & ~(ID_SPAN - 1), "extended": self.extended}]
