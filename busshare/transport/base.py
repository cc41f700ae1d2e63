"""What every transport is: the shape the runtime drives, and the frames and events it hands over.

Shared by the CAN and Modbus transports (which do not know each other) and by
``busshare.io.runtime``; nothing here imports a bus library.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ..protocol.kinds import CanKind


@dataclass(frozen=True)
class RxFrame:
    """One received frame inside the protocol's id range."""

    offset: int  # type << 6 | address
    data: bytes
    timestamp: float  # the interface's timestamp (not necessarily monotonic)
    can_id: int  # the id on the wire (on Modbus, the offset: the CAN id at base 0)
    kind: CanKind = CanKind.DATA  # a remote, FD or DLC-not-8 frame is no protocol frame (the monitor says so)
    #: how long it had waited in the receive queue when ``recv`` returned it (s; 0: not known): the runtime tells
    #: the node when it arrived (``Node.receive``'s ``arrived``)
    waited: float = 0.0


class BusEventKind(StrEnum):
    """What a transport reports besides frames (printed as the value: ``send-failed``)."""

    # every transport
    SEND_FAILED = "send-failed"
    RECV_FAILED = "recv-failed"
    # CAN
    ERROR_FRAME = "error-frame"
    BUS_OFF = "bus-off"
    BUS_RECOVERED = "bus-recovered"
    # the Modbus master
    SERVANT_SILENT = "servant-silent"
    SERVANT_BACK = "servant-back"
    SUSPECT_DUPLICATE = "suspect-duplicate"
    # a Modbus servant
    LINE_GARBAGE = "line-garbage"
    TWIN = "twin"  # another unit answered with this servant's address
    LINK_LOST = "link-lost"
    LINK_BACK = "link-back"
    CONFIG_UNLOCKED = "config-unlocked"
    CONFIG_REFUSED = "config-refused"
    CONFIG_WRITTEN = "config-written"


@dataclass(frozen=True)
class BusEvent:
    """Something the bus said that is not a frame: an error frame, a state change, a failed send."""

    kind: BusEventKind
    detail: str


class Counters(Protocol):
    """The counters a transport keeps, as the runtime prints them on exit."""

    def as_dict(self) -> dict[str, int]: ...


class Transport(Protocol):
    """Moves protocol frames (id offset, 8 bytes) for one node; never raises on bus trouble.

    ``recv`` waits at most ``timeout`` seconds; ``bus_off`` says the node cannot
    reach the bus now (it then counts as hearing no master), and ``link_down_words``
    is what that is called on this medium, for the node's log.
    """

    @property
    def bus_off(self) -> bool: ...

    @property
    def link_down_words(self) -> str: ...

    @property
    def stats(self) -> Counters: ...

    def send(self, offset: int, data: bytes) -> bool: ...

    def recv(self, timeout: float) -> RxFrame | None: ...

    def drain_events(self) -> list[BusEvent]: ...

    def shutdown(self) -> None: ...
