"""Frames as one readable line each, for `monitor` and `decode`.

    12.345 master→3 CUT 64.0→32.0 A tx 17 failsafe 6.0 A epoch 7

A set-limit reads CUT when it lowers the servant's limit, GRANT when it
raises it and SET when there is no direction to tell: the first limit seen
for a servant, or a confirm of the limit it already has (tagged ``confirm``,
e.g. the master's 0 A after a RELEASE), so ``Describer`` remembers the last
limit sent to each servant.
Use one ``Describer`` per bus (or per capture) and feed it every accepted
message in order; ``line`` gives the text, ``record`` the same as a dict for
JSON lines.
"""

from __future__ import annotations

from typing import Any

from ..frames import BROADCAST_ADDRESS
from ..frames import HEARD_PAGE_SIZE
from ..frames import MASTER_ADDRESS
from ..frames import Ack
from ..frames import FrameError
from ..frames import Heartbeat
from ..frames import Join
from ..frames import Message
from ..frames import Nack
from ..frames import Release
from ..frames import Request
from ..frames import SetLimit
from ..frames import Status
from ..frames import decode
from ..protocol.e2e import E2EStatus
from ..protocol.link import Received
from ..protocol.pilot import PilotState
from ..report.records import RecordKind
from ..report.records import serial_hex
from ..report.records import serial_tag_hex


def amps(da: int | None) -> str:
    return "?" if da is None else f"{da / 10:.1f}"


def node_name(address: int) -> str:
    if address == MASTER_ADDRESS:
        return "master"
    if address == BROADCAST_ADDRESS:
        return "all"
    return str(address)


def route(msg: Message) -> tuple[int, int]:
    """(sender, receiver) addresses of a message."""
    if isinstance(msg, Heartbeat):
        return MASTER_ADDRESS, BROADCAST_ADDRESS
    if isinstance(msg, SetLimit):
        return MASTER_ADDRESS, msg.address
    if isinstance(msg, Nack):
        return msg.reporter, (msg.address if msg.reporter == MASTER_ADDRESS else MASTER_ADDRESS)
    return msg.address, MASTER_ADDRESS


def heard_addresses(hb: Heartbeat) -> list[int]:
    """The servants a heartbeat says the master hears (of the 8 addresses of its page)."""
    return [hb.page * HEARD_PAGE_SIZE + i for i in range(HEARD_PAGE_SIZE) if hb.heard >> i & 1]


def heard_text(hb: Heartbeat) -> str:
    """The servants a heartbeat says the master hears, as ranges, and the page it covers: ``1-4,7 (page 0)``."""
    heard = heard_addresses(hb)
    runs: list[str] = []
    for a in heard:
        if runs and a - 1 in heard:
            runs[-1] = f"{runs[-1].split('-')[0]}-{a}"
        else:
            runs.append(str(a))
    return f"{','.join(runs) or 'none'} (page {hb.page})"


def _flags(msg: Message, names: tuple[str, ...]) -> str:
    on = [n.replace("_", "-") for n in names if getattr(msg, n)]
    return f" [{','.join(on)}]" if on else ""


class Describer:
    """Stateful frame formatter: remembers each servant's last limit (for CUT/GRANT old→new)."""

    def __init__(self) -> None:
        self.limits: dict[int, int] = {}
        # per servant: the last set-limit (txn, limit) and how it read, so a resend reads the same
        self._last_set: dict[int, tuple[int, int, str, int | None]] = {}

    def verb(self, msg: SetLimit) -> tuple[str, int | None]:
        """('CUT' | 'GRANT' | 'SET', previous limit or None); call before ``remember``.

        SET: the first limit seen for this servant (previous None) or an unchanged one (a confirm).
        A retransmission (same txn and limit as the last set-limit) reads like the original.
        """
        last = self._last_set.get(msg.address)
        if last is not None and last[:2] == (msg.txn, msg.limit_da):
            return last[2], last[3]
        old = self.limits.get(msg.address)
        if old is None:
            return "SET", None  # first limit seen for this servant: no direction to tell
        if msg.limit_da == old:
            return "SET", old  # a confirm: no change to name
        return ("CUT" if msg.limit_da < old else "GRANT"), old

    def remember(self, msg: Message) -> None:
        if isinstance(msg, SetLimit):
            verb, old = self.verb(msg)
            self._last_set[msg.address] = (msg.txn, msg.limit_da, verb, old)
            self.limits[msg.address] = msg.limit_da
        elif isinstance(msg, Release):
            self.limits[msg.address] = 0

    def text(self, msg: Message) -> str:
        """The message without its timestamp; updates the remembered limits."""
        src, dst = route(msg)
        head = f"{node_name(src)}→{node_name(dst)}"
        body = self._body(msg)
        self.remember(msg)
        return f"{head} {body}"

    def line(self, t: float, msg: Message, counter: int | None = None, status: E2EStatus | None = None) -> str:
        extra = ""
        if status is not None and status is not E2EStatus.OK:
            extra = f"  <{status.value}>"
        return f"{t:.3f} {self.text(msg)}{extra}"

    def record(self, t: float | None, msg: Message, counter: int | None = None) -> dict[str, Any]:
        """The message as a flat ``frame`` record (docs/JSON.md) for JSON lines; updates limits like ``text``.

        Currents in A, pilot states as their letters, serials in hex, other enums in lowercase
        words as the text shows them.  Call either ``text``/``line`` or ``record`` for a message, not both.
        """
        src, dst = route(msg)
        rec: dict[str, Any] = {"record": RecordKind.FRAME.value, "t": None if t is None else round(t, 6),
                               "type": msg.TYPE.name, "from": node_name(src), "to": node_name(dst)}
        if isinstance(msg, SetLimit):
            verb, old = self.verb(msg)
            rec["verb"] = verb
            rec["previous_a"] = None if old is None else old / 10
        for key, value in vars(msg).items():
            if key.endswith("_da"):
                rec[key[:-3] + "_a"] = None if value is None else value / 10
            elif isinstance(value, PilotState):
                rec[key] = value.name
            elif hasattr(value, "name"):
                rec[key] = value.name.lower().replace("_", "-")
            elif key == "serial":
                rec[key] = serial_hex(value)
            elif key == "serial_tag":
                rec[key] = serial_tag_hex(value)
            else:
                rec[key] = value
        if isinstance(msg, Heartbeat):
            rec["heard"] = heard_addresses(msg)  # the servants the master hears, not the raw bits
        if counter is not None:
            rec["counter"] = counter
        self.remember(msg)
        return rec

    def _body(self, msg: Message) -> str:
        if isinstance(msg, SetLimit):
            verb, old = self.verb(msg)
            change = amps(msg.limit_da) if verb == "SET" else f"{amps(old)}→{amps(msg.limit_da)}"
            tags = [tag for tag, on in (("pause", msg.limit_da == 0), ("confirm", old == msg.limit_da)) if on]
            notes = f" ({', '.join(tags)})" if tags else ""
            return f"{verb} {change} A{notes} tx {msg.txn} failsafe {amps(msg.failsafe_da)} A epoch {msg.epoch}"
        if isinstance(msg, Heartbeat):
            return (
                f"HEARTBEAT id {msg.master_id} epoch {msg.epoch} seq {msg.seq} limit {amps(msg.limit_da)} A "
                f"hears {heard_text(msg)}" + _flags(msg, ("leaving", "learning", "second_master"))
            )
        if isinstance(msg, Ack):
            measured = "" if msg.measured_da is None else f" measured {amps(msg.measured_da)} A"
            return f"ACK tx {msg.txn} at {amps(msg.applied_da)} A{measured} ({msg.how.name.lower()})"
        if isinstance(msg, Nack):
            about = f" about {node_name(msg.address)}"
            return f"NACK {msg.code.name.lower().replace('_', '-')}{about} tx {msg.txn} detail {msg.detail}"
        if isinstance(msg, Release):
            return f"RELEASE {amps(msg.released_da)} A {msg.reason.name.lower().replace('_', '-')}"
        if isinstance(msg, Request):
            return f"REQUEST {amps(msg.requested_da)} A min {amps(msg.min_da)} A prio {msg.priority}"
        if isinstance(msg, Status):
            measured = "no meter" if msg.measured_da is None else f"measured {amps(msg.measured_da)} A"
            return (
                f"STATUS {msg.pilot.name} offered {amps(msg.offered_da)} A {measured} "
                f"requested {amps(msg.requested_da)} A serial {serial_tag_hex(msg.serial_tag)}"
                + _flags(msg, ("failsafe", "fault", "ev_stopped", "twin"))
            )
        assert isinstance(msg, Join)
        return f"JOIN serial {serial_hex(msg.serial)} max {amps(msg.max_da)} A v{msg.version}"


def bad_frame_line(t: float, can_id: int, data: bytes, why: FrameError | E2EStatus) -> str:
    """A frame that was not acted on: its id, bytes and the reason."""
    reason = f"{why.kind}: {why}" if isinstance(why, FrameError) else f"e2e {why.value}"
    return f"{t:.3f} BAD id {can_id:#05x} [{data.hex(' ')}] {reason}"


def can_id_hex(can_id: int) -> str:
    """A CAN id as JSON records write it: ``0x181``, ``0x1c000181``."""
    return f"{can_id:#05x}"


def frame_record(describer: Describer, t: float | None, msg: Message, counter: int, can_id: int,
                 status: E2EStatus) -> dict[str, Any]:
    """The ``frame`` record of one decoded frame: the message, its counter, id and E2E check."""
    rec = describer.record(t, msg, counter)
    rec["id"] = can_id_hex(can_id)
    rec["e2e"] = status.value
    return rec


def bad_frame_record(t: float | None, can_id: int, data: bytes, error: str, reason: str) -> dict[str, Any]:
    """The ``bad-frame`` record of a frame that is not acted on: its id, bytes, the kind of error and why."""
    return {"record": RecordKind.BAD_FRAME.value, "t": t, "id": can_id_hex(can_id), "data": data.hex(),
            "error": error, "reason": reason}


def received_record(describer: Describer, t: float, offset: int, can_id: int, data: bytes,
                    got: Received) -> dict[str, Any]:
    """What a monitor heard, as a record: a ``frame`` (with its E2E result, also when that result means it
    is not acted on) or a ``bad-frame`` (it does not decode)."""
    if got.error is not None:
        return bad_frame_record(t, can_id, data, got.error.kind, str(got.error))
    assert got.status is not None
    if got.message is not None and got.counter is not None:
        return frame_record(describer, t, got.message, got.counter, can_id, got.status)
    msg, counter = decode(offset, data)  # decodes (the link did), but the E2E check refused it
    return frame_record(describer, t, msg, counter, can_id, got.status)
