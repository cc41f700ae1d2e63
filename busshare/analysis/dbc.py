"""Generate the DBC that lets CAN tools (cantools, SavvyCAN, CANdb++) decode busshare traffic.

Each (type, address) is its own CAN ID, so the DBC has one message per valid
pair: 437 messages at a given base.  Integrators whose bus needs another base or
29-bit IDs generate their own:

    python -m busshare.cli.dbc --base 0x200 > busshare-0x200.dbc
    python -m busshare.cli.dbc --base 0x18DA0000 --extended > busshare-ext.dbc

Plain text, no cantools needed (cantools is only a test dependency).  Where each
signal sits comes from the layout of record (``frames.spec_fields``, derived from
the construct SPEC); this module adds only names, scales, ranges (the messages'
own, from frames.py) and comments, and the cycle times come from ``Timing``.
tests/protocol/test_dbc.py proves the result decodes our frames with hypothesis.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from ..core.config import Timing
from ..frames import ACK_MEASURED_MAX_DA
from ..frames import ACK_MEASURED_UNKNOWN
from ..frames import BROADCAST_ADDRESS
from ..frames import FIRST_SERVANT
from ..frames import LAST_SERVANT
from ..frames import MASTER_ADDRESS
from ..frames import MAX_CIRCUIT_DA
from ..frames import MAX_EVSE_DA
from ..frames import MIN_OFFER_DA
from ..frames import PROTOCOL_VERSION
from ..frames import STATUS_MEASURED_MAX_DA
from ..frames import STATUS_MEASURED_UNKNOWN
from ..frames import AckHow
from ..frames import MsgType
from ..frames import NackCode
from ..frames import ReleaseReason
from ..frames import heard_page
from ..frames import spec_fields
from ..frames import spec_head
from ..protocol.canid import IdScheme
from ..protocol.e2e import data_id
from ..protocol.layout import HEARTBEAT_FLAGS
from ..protocol.layout import STATUS_FLAGS
from ..protocol.layout import Field
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
_CRC, _COUNTER, _ = spec_head()
CRC = Sig("Crc", _CRC.start, _CRC.length,
          comment="CRC-8 SAE J1850 over the data ID (low byte, high byte) then bytes 1-7")
COUNTER = Sig("AliveCounter", _COUNTER.start, _COUNTER.length,
              comment="4-bit alive counter per (type, address) stream of a sender, wraps 15 -> 0")


@dataclass(frozen=True)
class Meta:
    """What a DBC says about one field beyond its position: its signal name, scale, range and meaning."""

    signal: str
    comment: str
    factor: float = 1
    unit: str = ""
    range_da: tuple[int, int] | None = None  # a current's valid range in 0.1 A (None: the raw range)
    maximum: int | None = None  # a plain field's largest valid value (None: the raw maximum)
    choices: tuple[tuple[int, str], ...] = ()


def _current(signal: str, range_da: tuple[int, int], comment: str, unknown: int | None = None) -> Meta:
    choices = ((unknown, "unknown"),) if unknown is not None else ()
    return Meta(signal, comment, 0.1, "A", range_da, choices=choices)


#: the ranges of the messages (frames.py checks them when a message is made or decoded)
OFFER = (0, MAX_EVSE_DA)  # 0 or 6.0-80.0 A: a DBC range cannot show the gap below 6 A
MIN_TO_MAX = (MIN_OFFER_DA, MAX_EVSE_DA)  # 6.0-80.0 A
OFFER_MAX = MAX_EVSE_DA / 10

#: per type, the DBC signal of each body field and flag (``reserved`` fields get none); where each sits comes
#: from the layout of record, ``frames.spec_fields`` (the construct SPEC)
META: dict[MsgType, dict[str, Meta]] = {
    MsgType.SET_LIMIT: {
        "txn": Meta("Txn", "transaction id, echoed by the ack"),
        "limit_da": _current("Limit", OFFER, "new limit; 0 = pause, else 6.0-80.0 A"),
        "failsafe_da": _current("Failsafe", OFFER, "current to fall to when the master goes silent"),
        "epoch": Meta("Epoch", "boot epoch of the sending master"),
    },
    MsgType.HEARTBEAT: {
        "leaving": Meta("Leaving", "graceful shutdown: servants fail safe now"),
        "learning": Meta("Learning", "master just booted and is not granting yet"),
        "second_master": Meta("SecondMaster", "master has heard a second master"),
        "master_id": Meta("MasterId", "configured identity of the master, 0-15"),
        "page": Meta("Page", "the servants HeardSnn covers: 8 * Page .. 8 * Page + 7"),
        "epoch": Meta("Epoch", "changes on every master boot"),
        "heard": Meta("HeardS{a:02d}", "1: the master hears servant {a} (its frames reach the master)"),
        "limit_da": _current("Limit", (0, MAX_CIRCUIT_DA), "circuit limit"),
        "seq": Meta("Seq", "+1 per heartbeat, wraps 1023 -> 0: a late copy of an old heartbeat is behind"),
    },
    MsgType.ACK: {
        "txn": Meta("Txn", "the set-limit transaction acknowledged"),
        "applied_da": _current("Applied", OFFER, "limit in effect"),
        "measured_da": _current("Measured", (0, ACK_MEASURED_MAX_DA), "measured current, 0xFFFF = unknown (no meter)",
                                ACK_MEASURED_UNKNOWN),
        "how": Meta("How", "how the servant knows the limit took effect", choices=_named(AckHow)),
    },
    MsgType.NACK: {
        "txn": Meta("Txn", "the set-limit refused, if any"),
        "code": Meta("Code", "what is wrong", choices=_named(NackCode)),
        "reporter": Meta("Reporter", "address of the sender", maximum=BROADCAST_ADDRESS),
        "detail": Meta("Detail", "code-specific, e.g. a current in 0.1 A"),
    },
    MsgType.RELEASE: {
        "released_da": _current("Released", OFFER, "limit given back"),
        "reason": Meta("Reason", "why the servant released", choices=_named(ReleaseReason)),
    },
    MsgType.REQUEST: {
        "requested_da": _current("Requested", OFFER, "current the EV wants; 0 or 6.0-80.0 A"),
        "min_da": _current("Min", MIN_TO_MAX, "least current the EV can use, 6.0-80.0 A"),
        "priority": Meta("Priority", "higher is served first under shortage"),
    },
    MsgType.STATUS: {
        "failsafe": Meta("Failsafe", "pilot is at the failsafe current"),
        "fault": Meta("Fault", "EVSE fault"),
        "ev_stopped": Meta("EvStopped", "EV overdrew and was stopped"),
        "twin": Meta("Twin", "heard a twin: another servant on this address"),
        "pilot": Meta("Pilot", "pilot state A-F", maximum=max(PilotState), choices=PILOT_CHOICES),
        "offered_da": _current("Offered", OFFER, "what the pilot offers the car now"),
        "measured_da": _current("Measured", (0, STATUS_MEASURED_MAX_DA),
                                "measured current, 1023 = unknown (no meter)", STATUS_MEASURED_UNKNOWN),
        "requested_da": _current("Requested", OFFER, "current the EV wants"),
        "serial_tag": Meta("SerialTag", "low 15 bits of the unit's serial"),
    },
    MsgType.JOIN: {
        "version": Meta("Version", "protocol version"),
        "serial": Meta("Serial", "unique serial of the unit"),
        "max_da": _current("MaxCurrent", MIN_TO_MAX, "the unit's hardware maximum, 6.0-80.0 A"),
    },
}


def _flag_fields(t: MsgType) -> tuple[Field, ...]:
    """The flag bits of the head byte that carry a message field (a JOIN's whole nibble is its version)."""
    nibble = spec_head()[2]
    if t is MsgType.JOIN:
        return (Field("version", nibble.start, nibble.length),)
    names = {MsgType.HEARTBEAT: HEARTBEAT_FLAGS, MsgType.STATUS: STATUS_FLAGS}.get(t, ())
    return tuple(Field(name, nibble.start + i, 1) for i, name in enumerate(names))


def _sig(meta: Meta, f: Field, mux: str = "", **names: int) -> Sig:
    minimum: float = 0
    maximum: float | None = meta.maximum
    if meta.range_da is not None:
        low, high = meta.range_da
        minimum, maximum = low * meta.factor, high * meta.factor
    return Sig(meta.signal.format(**names), f.start, f.length, meta.factor, meta.unit, minimum, maximum,
               meta.choices, meta.comment.format(**names), mux)


def signals(t: MsgType) -> tuple[Sig, ...]:
    """The DBC signals of type ``t`` (CRC and counter aside), placed where the layout of record puts the fields."""
    meta = META[t]
    fields = [f for f in (*_flag_fields(t), *spec_fields(t)) if f.name != "reserved"]
    missing = {f.name for f in fields} ^ set(meta)
    if missing:
        raise ValueError(f"{t.name}: the DBC and the layout of record disagree on {sorted(missing)}")
    out: list[Sig] = []
    for f in fields:
        if t is MsgType.HEARTBEAT and f.name == "heard":  # one bit per servant, on the page that carries it
            out += [_sig(meta["heard"], Field("heard", f.start + (a & 7), 1), f"m{heard_page(a)}", a=a)
                    for a in range(FIRST_SERVANT, LAST_SERVANT + 1)]
        else:
            out.append(_sig(meta[f.name], f, "M" if t is MsgType.HEARTBEAT and f.name == "page" else ""))
    return tuple(out)


LAYOUTS: dict[MsgType, tuple[Sig, ...]] = {t: signals(t) for t in MsgType}

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
