"""The words for what a frame is when it is not acted on: one vocabulary for `decode` and `monitor`.

A CAN frame that is no classic data frame with a DLC of 8 (``CanKind``) is no protocol frame whatever its id; a data
frame may still be foreign (an id outside the protocol's range), malformed (a ``FrameError`` kind) or
fail the E2E check.  Both commands count and print these kinds by these names.
"""

from __future__ import annotations

from enum import StrEnum


class CanKind(StrEnum):
    """What a CAN frame is on the wire, before the protocol looks at its bytes."""

    DATA = "data"
    REMOTE = "remote"
    ERROR_FRAME = "error-frame"
    FD = "fd"
    DLC = "dlc"  # a classic data frame with 8 data bytes whose DLC is not 8 (classic CAN allows 9-15 for 8)

    @classmethod
    def of(cls, *, error: bool, remote: bool, fd: bool, dlc: int | None = None, length: int | None = None) -> CanKind:
        """The kind of a frame from its flags (python-can's ``is_error_frame``, ``is_remote_frame``, ``is_fd``) and,
        where the source gives them, its DLC field and data length (PROTOCOL.md 4.3: a DLC other than 8 is no
        protocol frame; with fewer than 8 bytes the frame is a data frame that fails the ``length`` check)."""
        if error or remote or fd:
            return cls.ERROR_FRAME if error else cls.REMOTE if remote else cls.FD
        return cls.DLC if dlc is not None and dlc != 8 and length == 8 else cls.DATA

    @property
    def reason(self) -> str:
        """Why a frame of this kind is not acted on (DATA: it is)."""
        return _REASONS[self]


_REASONS = {CanKind.DATA: "a classic data frame", CanKind.REMOTE: "remote frame, not a protocol frame",
            CanKind.ERROR_FRAME: "CAN error frame, not a protocol frame", CanKind.FD: "CAN FD frame, not a protocol frame",
            CanKind.DLC: "classic frame whose DLC is not 8, not a protocol frame"}

#: bad-frame kinds that are E2E failures, not acted on (the rest are malformed or not the protocol's);
#: ``wrong-sequence`` is acted on (PROTOCOL.md 6.3): good, and counted apart like ``ok-some-lost``
E2E_KINDS = ("crc", "repeated")
MALFORMED_KINDS = ("length", "type", "address", "reserved", "range", "enum")
#: not the protocol's: an id outside its range, or no classic data frame with a DLC of 8
FOREIGN_KINDS = ("foreign", CanKind.REMOTE.value, CanKind.ERROR_FRAME.value, CanKind.FD.value, CanKind.DLC.value)
