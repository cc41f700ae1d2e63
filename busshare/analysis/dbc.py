"""Generate the DBC that lets CAN tools (cantools, SavvyCAN, CANdb++) decode busshare traffic.

Each (type, address) is its own CAN ID, so the DBC has one message per valid
pair: 437 messages at a given base.  Integrators whose bus needs another base or
29-bit IDs generate their own:

    python -m busshare.cli.dbc --base 0x200 > busshare-0x200.dbc
    python -m busshare.cli.dbc --base 0x18DA0000 --extended > busshare-ext.dbc

Plain text, no cantools needed (cantools is only a test dependency).  The layout
below must agree with frames.py; tests/protocol/test_dbc.py proves it with hypothesis.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from ..core.config import Timing
from ..frames import (
    FIRST_SERVANT,
    LAST_SERVANT,
    MASTER_ADDRESS,
    MAX_CIRCUIT_DA,
    PROTOCOL_VERSION,
    AckHow,
    MsgType,
    NackCode,
    ReleaseReason,
    heard_page,
)
from ..protocol.canid import IdScheme
from ..protocol.e2e import data_id
from ..protocol.pilot import PilotState

EXTENDED_FLAG = 0x80000000  # how DBC marks a 29-bit frame id


@dataclass(frozen=True)
class Sig:
    """One DBC signal: little-endian (Intel), unsigned."""

    name: str
    start: int  # bit number of the least significant bit, byte * 8 + bit
    length: int
    factor: float = 1
    unit: str = ""
    minimum: float = 0
    maximum: float | None = None  # None: the raw maximum
    choices: tuple[tuple[int, str], ...] = ()
    comment: str = ""
    mux: str = ""  # "M": the multiplexer of its message; "m<n>": present when the multiplexer is n

    @property
    def scaled_max(self) -> float:
        if self.maximum is not None:
            return self.maximum
        return ((1 << self.length) - 1) * self.factor


def _named(enum_cls: type[enum.IntEnum]) -> tuple[tuple[int, str], ...]:
    return tuple((int(v), v.name.lower()) for v in enum_cls)


PILOT_CHOICES = tuple((int(v), f"{v.name}: {v.meaning}") for v in PilotState)
CRC = Sig("Crc", 0, 8, comment="CRC-8 SAE J1850 over the data ID (low byte, high byte) then bytes 1-7")
COUNTER = Sig("AliveCounter", 8, 4, comment="4-bit alive counter per (type, address) stream of a sender, wraps 15 -> 0")
OFFER_MAX = 80.0


def _current(name: str, start: int, length: int, maximum: float, comment: str, unknown: int | None = None,
             minimum: float = 0) -> Sig:
    choices = ((unknown, "unknown"),) if unknown is not None else ()
    return Sig(name, start, length, 0.1, "A", minimum, maximum, choices, comment)


LAYOUTS: dict[MsgType, tuple[Sig, ...]] = {
    MsgType.SET_LIMIT: (
        Sig("Txn", 16, 8, comment="transaction id, echoed by the ack"),
        _current("Limit", 24, 16, OFFER_MAX, "new limit; 0 = pause, else 6.0-80.0 A"),
        _current("Failsafe", 40, 16, OFFER_MAX, "current to fall to when the master goes silent"),
        Sig("Epoch", 56, 8, comment="boot epoch of the sending master"),
    ),
    MsgType.HEARTBEAT: (
        Sig("Leaving", 12, 1, comment="graceful shutdown: servants fail safe now"),
        Sig("Learning", 13, 1, comment="master just booted and is not granting yet"),
        Sig("Conflict", 14, 1, comment="master has heard another master"),
        Sig("MasterId", 16, 4, comment="configured identity of the master, 0-15"),
        Sig("Page", 20, 3, mux="M", comment="the servants HeardSnn covers: 8 * Page .. 8 * Page + 7"),
        Sig("Epoch", 24, 8, comment="changes on every master boot"),
        *(Sig(f"HeardS{a:02d}", 32 + (a & 7), 1, mux=f"m{heard_page(a)}",
              comment=f"1: the master hears servant {a} (its frames reach the master)")
          for a in range(FIRST_SERVANT, LAST_SERVANT + 1)),
        _current("Limit", 40, 14, MAX_CIRCUIT_DA / 10, "circuit limit"),
        Sig("Seq", 54, 10, comment="+1 per heartbeat, wraps 1023 -> 0: a late copy of an old heartbeat is behind"),
    ),
    MsgType.ACK: (
        Sig("Txn", 16, 8, comment="the set-limit transaction acknowledged"),
        _current("Applied", 24, 16, OFFER_MAX, "limit in effect"),
        _current("Measured", 40, 16, 6553.4, "measured current, 0xFFFF = unknown (no meter)", 0xFFFF),
        Sig("How", 56, 8, choices=_named(AckHow), comment="how the servant knows the limit took effect"),
    ),
    MsgType.NACK: (
        Sig("Txn", 16, 8, comment="the set-limit refused, if any"),
        Sig("Code", 24, 8, choices=_named(NackCode), comment="what is wrong"),
        Sig("Reporter", 32, 8, maximum=63, comment="address of the sender"),
        Sig("Detail", 40, 16, comment="code-specific, e.g. a current in 0.1 A"),
    ),
    MsgType.RELEASE: (
        _current("Released", 16, 16, OFFER_MAX, "limit given back"),
        Sig("Reason", 32, 8, choices=_named(ReleaseReason), comment="why the servant released"),
    ),
    MsgType.REQUEST: (
        _current("Requested", 16, 16, OFFER_MAX, "current the EV wants; 0 or 6.0-80.0 A"),
        _current("Min", 32, 16, OFFER_MAX, "least current the EV can use, 6.0-80.0 A", minimum=6),
        Sig("Priority", 48, 8, comment="higher is served first under shortage"),
    ),
    MsgType.STATUS: (
        Sig("Failsafe", 12, 1, comment="pilot is at the failsafe current"),
        Sig("Fault", 13, 1, comment="EVSE fault"),
        Sig("EvStopped", 14, 1, comment="EV overdrew and was stopped"),
        Sig("Conflict", 15, 1, comment="heard another servant on this address"),
        Sig("Pilot", 16, 3, maximum=5, choices=PILOT_CHOICES, comment="pilot state A-F"),
        _current("Offered", 19, 10, OFFER_MAX, "what the pilot offers the car now"),
        _current("Measured", 29, 10, 102.2, "measured current, 1023 = unknown (no meter)", 1023),
        _current("Requested", 39, 10, OFFER_MAX, "current the EV wants"),
        Sig("SerialTag", 49, 15, comment="low 15 bits of the unit's serial"),
    ),
    MsgType.JOIN: (
        Sig("Version", 12, 4, comment="protocol version"),
        Sig("Serial", 16, 32, comment="unique serial of the unit"),
        _current("MaxCurrent", 48, 16, OFFER_MAX, "the unit's hardware maximum, 6.0-80.0 A", minimum=6),
    ),
}

NAMES = {
    MsgType.SET_LIMIT: "SetLimit",
    MsgType.HEARTBEAT: "Heartbeat",
    MsgType.ACK: "Ack",
    MsgType.NACK: "Nack",
    MsgType.RELEASE: "Release",
    MsgType.REQUEST: "Request",
    MsgType.STATUS: "Status",
    MsgType.JOIN: "Join",
}

_TIMING = Timing()
#: the default periods (PROTOCOL.md 7); a STATUS is also sent at once on a change
CYCLE_MS = {MsgType.HEARTBEAT: round(_TIMING.heartbeat_period * 1000), MsgType.STATUS: round(_TIMING.status_period * 1000)}

DESCRIPTIONS = {
    MsgType.SET_LIMIT: "master -> servant {a}: cut to (lower) or grant (higher) a limit",
    MsgType.HEARTBEAT: "master heartbeat; its silence triggers the servants' failsafe",
    MsgType.ACK: "servant {a} -> master: set-limit took effect",
    MsgType.NACK: "error report concerning node {a}",
    MsgType.RELEASE: "servant {a} -> master: offers 0 A, share back to the pool",
    MsgType.REQUEST: "servant {a} -> master: the EV wants current",
    MsgType.STATUS: "servant {a} status, its heartbeat",
    MsgType.JOIN: "servant {a} claims its address with its serial",
}


def addresses(t: MsgType) -> range:
    """The addresses a frame of type ``t`` may carry."""
    if t is MsgType.HEARTBEAT:
        return range(MASTER_ADDRESS, MASTER_ADDRESS + 1)
    if t is MsgType.NACK:
        return range(0, 64)
    return range(FIRST_SERVANT, LAST_SERVANT + 1)


def message_name(t: MsgType, address: int) -> str:
    return NAMES[t] if t is MsgType.HEARTBEAT else f"{NAMES[t]}_{address:02d}"


def _node(address: int) -> str:
    return "Master" if address == MASTER_ADDRESS else f"Servant{address:02d}"


def _sender(t: MsgType, address: int) -> str:
    if t in (MsgType.HEARTBEAT, MsgType.SET_LIMIT):
        return "Master"
    if t is MsgType.NACK:
        return "Vector__XXX"  # either side may report
    return _node(address)


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def _frames(scheme: IdScheme) -> Iterator[tuple[int, MsgType, int]]:
    for t in MsgType:
        for address in addresses(t):
            can_id = scheme.id_for(t, address)
            yield (can_id | EXTENDED_FLAG if scheme.extended else can_id), t, address


def generate(scheme: IdScheme | None = None) -> str:
    """The DBC text for every protocol frame at ``scheme``'s base."""
    scheme = scheme or IdScheme()
    frames = list(_frames(scheme))
    nodes = ["Master"] + [_node(a) for a in range(FIRST_SERVANT, LAST_SERVANT + 1)]
    kind = "29-bit" if scheme.extended else "11-bit"
    out = [
        'VERSION ""',
        "",
        "NS_ :",
        "    CM_",
        "    BA_DEF_",
        "    BA_",
        "    VAL_",
        "    BA_DEF_DEF_",
        "",
        "BS_:",
        "",
        "BU_: " + " ".join(nodes),
        "",
    ]
    for dbc_id, t, address in frames:
        out.append(f"BO_ {dbc_id} {message_name(t, address)}: 8 {_sender(t, address)}")
        for s in (CRC, COUNTER, *LAYOUTS[t]):
            rng = f"[{_num(s.minimum)}|{_num(s.scaled_max)}]"
            mux = f" {s.mux}" if s.mux else ""
            out.append(f' SG_ {s.name}{mux} : {s.start}|{s.length}@1+ ({_num(s.factor)},0) {rng} "{s.unit}" Vector__XXX')
        out.append("")
    out.append(
        f'CM_ "busshare protocol v{PROTOCOL_VERSION}, {kind} ids at base 0x{scheme.base:03X}: id = base + (type << 6) + address. '
        'Generated by python -m busshare.cli.dbc; see docs/PROTOCOL.md.";'
    )
    for dbc_id, t, address in frames:
        did = data_id(t, address)
        text = DESCRIPTIONS[t].format(a=address)
        out.append(f'CM_ BO_ {dbc_id} "{text}. Data ID {did:#05x}.";')
        for s in (CRC, COUNTER, *LAYOUTS[t]):
            if s.comment:
                out.append(f'CM_ SG_ {dbc_id} {s.name} "{s.comment}";')
    out.append('BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;')
    out.append('BA_DEF_DEF_ "GenMsgCycleTime" 0;')
    for dbc_id, t, _ in frames:
        if t in CYCLE_MS:
            out.append(f'BA_ "GenMsgCycleTime" BO_ {dbc_id} {CYCLE_MS[t]};')
    for dbc_id, t, _ in frames:
        for s in LAYOUTS[t]:
            if s.choices:
                values = " ".join(f'{v} "{name}"' for v, name in s.choices)
                out.append(f"VAL_ {dbc_id} {s.name} {values} ;")
    return "\n".join(out) + "\n"
