"""The words for what a frame is when it is not acted on: one vocabulary for `decode` and `monitor`.

A CAN frame that is no classic data frame (``CanKind``) is no protocol frame whatever its id; a data
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

    @classmethod
    def of(cls, *, error: bool, remote: bool, fd: bool) -> CanKind:
        """The kind of a frame from its flags (python-can's ``is_error_frame``, ``is_remote_frame``, ``is_fd``)."""
        return cls.ERROR_FRAME if error else cls.REMOTE if remote else cls.FD if fd else cls.DATA

    @property
    def reason(self) -> str:
        """Why a frame of this kind is not acted on (DATA: it is)."""
        return _REASONS[self]


_REASONS = {CanKind.DATA: "a classic data frame", CanKind.REMOTE: "remote frame, not a protocol frame",
            CanKind.ERROR_FRAME: "CAN error frame, not a protocol frame", CanKind.FD: "CAN FD frame, not a protocol frame"}

#: bad-frame kinds that are E2E failures, not acted on (the rest are malformed or not the protocol's);
#: ``wrong-sequence`` is acted on (PROTOCOL.md 6.3): good, and counted apart like ``ok-some-lost``
E2E_KINDS = ("crc", "repeated")
MALFORMED_KINDS = ("length", "type", "address", "reserved", "range", "enum")
#: not the protocol's: an id outside its range, or no classic data frame
FOREIGN_KINDS = ("foreign", CanKind.REMOTE.value, CanKind.ERROR_FRAME.value, CanKind.FD.value)
