"""The DBC: committed file == generator output, loads in cantools, and decodes our frames field for field."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import cantools
import pytest
from hypothesis import given
from hypothesis import settings

from busshare.analysis import dbc as dbcgen
from busshare.cli import dbc as dbc_cli
from busshare.core.config import Timing
from busshare.frames import FIRST_SERVANT
from busshare.frames import LAST_SERVANT
from busshare.frames import MESSAGE_TYPES
from busshare.frames import MIN_OFFER_DA
from busshare.frames import FrameError
from busshare.frames import Heartbeat
from busshare.frames import Message
from busshare.frames import MsgType
from busshare.frames import encode
from busshare.frames import heard_page
from busshare.frames import offset_of
from busshare.frames import spec_fields
from busshare.frames import spec_head
from busshare.protocol.canid import IdScheme
from busshare.protocol.layout import HEARTBEAT_FLAGS
from busshare.protocol.layout import STATUS_FLAGS
from tests.support.frame_strategies import SAMPLES
from tests.support.frame_strategies import counters
from tests.support.frame_strategies import messages

DBC_PATH = Path(__file__).resolve().parents[2] / "dbc" / "busshare.dbc"


DB: Any = cantools.database.load_file(str(DBC_PATH))


def test_committed_dbc_is_the_generated_one() -> None:
    assert DBC_PATH.read_text() == dbcgen.generate(), "regenerate: python -m busshare.cli.dbc > dbc/busshare.dbc"


def test_one_message_per_valid_type_and_address() -> None:
    db = DB
    expected = {(int(t) << 6) | a for t in MsgType for a in dbcgen.addresses(t)}
    assert len(expected) == 62 * 6 + 1 + 64
    assert {m.frame_id for m in db.messages} == expected
    assert all(m.length == 8 and not m.is_extended_frame for m in db.messages)
    assert db.get_message_by_frame_id(0x183).name == "Status_03"
    assert db.get_message_by_frame_id(0x040).name == "Heartbeat"
    assert db.get_message_by_frame_id(0x0FF).name == "Nack_63"


def test_units_scaling_and_value_tables() -> None:
    db = DB
    status = db.get_message_by_name("Status_03")
    offered = status.get_signal_by_name("Offered")
    assert (offered.scale, offered.unit, offered.length) == (0.1, "A", 10)
    assert status.get_signal_by_name("Measured").choices[1023] == "unknown"
    assert [str(status.get_signal_by_name("Pilot").choices[i]).split(":")[0] for i in range(6)] == list("ABCDEF")
    ack = db.get_message_by_name("Ack_05")
    assert ack.get_signal_by_name("Measured").choices[0xFFFF] == "unknown"
    assert str(ack.get_signal_by_name("How").choices[1]) == "timed"
    assert str(db.get_message_by_name("Nack_00").get_signal_by_name("Code").choices[2]) == "twin"
    assert str(db.get_message_by_name("Release_62").get_signal_by_name("Reason").choices[3]) == "shutdown"
    # the periods of record (PROTOCOL.md 7), not numbers of the DBC's own
    assert status.cycle_time == Timing().status_period * 1000 == 500
    assert db.get_message_by_name("Heartbeat").cycle_time == Timing().heartbeat_period * 1000 == 200
    assert db.get_message_by_name("Join_01").get_signal_by_name("MaxCurrent").minimum == 6
    assert db.get_message_by_name("Request_01").get_signal_by_name("Min").minimum == 6
    assert status.senders == ["Servant03"]


# message attribute -> (signal, how to compare)
FIELDS: dict[MsgType, list[tuple[str, str, str]]] = {
    MsgType.HEARTBEAT: [
        ("master_id", "MasterId", "int"), ("epoch", "Epoch", "int"), ("page", "Page", "int"), ("heard", "", "heard"),
        ("seq", "Seq", "int"),
        ("limit_da", "Limit", "da"), ("leaving", "Leaving", "bool"), ("learning", "Learning", "bool"),
        ("second_master", "SecondMaster", "bool"),
    ],
    MsgType.SET_LIMIT: [
        ("txn", "Txn", "int"), ("limit_da", "Limit", "da"), ("failsafe_da", "Failsafe", "da"), ("epoch", "Epoch", "int"),
    ],
    MsgType.ACK: [
        ("txn", "Txn", "int"), ("applied_da", "Applied", "da"), ("measured_da", "Measured", "da?"),
        ("how", "How", "enum"),
    ],
    MsgType.NACK: [
        ("txn", "Txn", "int"), ("code", "Code", "enum"), ("reporter", "Reporter", "int"), ("detail", "Detail", "int"),
    ],
    MsgType.RELEASE: [("released_da", "Released", "da"), ("reason", "Reason", "enum")],
    MsgType.REQUEST: [("requested_da", "Requested", "da"), ("min_da", "Min", "da"), ("priority", "Priority", "int")],
    MsgType.STATUS: [
        ("serial_tag", "SerialTag", "int"), ("pilot", "Pilot", "pilot"), ("offered_da", "Offered", "da"),
        ("measured_da", "Measured", "da?"), ("requested_da", "Requested", "da"), ("failsafe", "Failsafe", "bool"),
        ("fault", "Fault", "bool"), ("ev_stopped", "EvStopped", "bool"), ("twin", "Twin", "bool"),
    ],
    MsgType.JOIN: [("serial", "Serial", "int"), ("max_da", "MaxCurrent", "da"), ("version", "Version", "int")],
}


def assert_agrees(msg: Message, counter: int, data: bytes, decoded: dict[str, Any]) -> None:
    """Every field of ``msg`` equals the cantools-decoded (scaled) signal."""
    assert decoded["Crc"] == data[0]
    assert decoded["AliveCounter"] == counter
    names = {"Crc", "AliveCounter"}
    for attr, signal, how in FIELDS[msg.TYPE]:
        if how == "heard":
            continue  # one signal per servant: below
        value, got = getattr(msg, attr), decoded[signal]
        names.add(signal)
        if how == "int":
            assert got == value, signal
        elif how == "bool":
            assert got == int(value), signal
        elif how == "da":
            assert math.isclose(got, value / 10, abs_tol=1e-6), signal
        elif how == "da?":
            if value is None:
                assert str(got) == "unknown", signal
            else:
                assert math.isclose(got, value / 10, abs_tol=1e-6), signal
        elif how == "enum":
            assert str(got) == value.name.lower(), signal
        else:
            assert str(got) == f"{value.name}: {value.meaning}", signal
    if isinstance(msg, Heartbeat):  # one bit per servant of the page the multiplexer selects
        for a in range(FIRST_SERVANT, LAST_SERVANT + 1):
            if heard_page(a) == msg.page:
                assert decoded[f"HeardS{a:02d}"] == int(msg.hears(a)), a
                names.add(f"HeardS{a:02d}")
    assert set(decoded) == names  # no signal left unchecked


@settings(deadline=None, max_examples=300)
@given(messages, counters)
def test_cantools_decodes_every_field(msg: Message, counter: int) -> None:
    data = encode(msg, counter)
    assert_agrees(msg, counter, data, DB.decode_message(offset_of(msg), data))


def test_fields_table_covers_every_message_field() -> None:
    for t, cls in MESSAGE_TYPES.items():
        attrs = {f.name for f in dataclasses.fields(cls)} - {"address"}
        assert attrs == {attr for attr, _, _ in FIELDS[t]}, t


def test_other_base_and_29_bit() -> None:
    scheme = IdScheme(0x18DA0000, extended=True)
    ext = cantools.database.load_string(dbcgen.generate(scheme), database_format="dbc")
    status = ext.get_message_by_name("Status_03")
    assert status.frame_id == 0x18DA0183 and status.is_extended_frame
    std = cantools.database.load_string(dbcgen.generate(IdScheme(0x600)), database_format="dbc")
    assert std.get_message_by_name("Join_62").frame_id == 0x600 + 0x1FE


def test_cantools_command_line_decodes_candump_output() -> None:
    """The integrator's workflow: candump | cantools decode dbc/busshare.dbc."""
    candump = "  vcan0  183   [8]  40 0B 02 6A 27 A0 68 24\n  vcan0  040   [8]  DA 00 01 07 1E 80 82 0A\n"
    out = subprocess.run(
        [sys.executable, "-m", "cantools", "decode", str(DBC_PATH)],
        input=candump, capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    assert "Status_03(" in out and "Offered: 32.0 A" in out and "Pilot: C: charging" in out
    assert "Heartbeat(" in out and "Limit: 64.0 A" in out and "HeardS04: 1" in out and "HeardS05: 0" in out


def test_generator_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert dbc_cli.main([]) == 0
    assert capsys.readouterr().out == dbcgen.generate()
    assert dbc_cli.main(["--base", "0x100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "multiple of 0x200" in err
    assert dbc_cli.main(["--base", "twelve"]) == 2
    assert "not a number" in capsys.readouterr().err


def _accepts(msg: Message, attr: str, raw: int) -> bool:
    try:
        dataclasses.replace(msg, **{attr: raw})  # type: ignore[arg-type]
    except FrameError as exc:
        assert exc.kind == "range", exc
        return False
    return True


def test_current_ranges_are_the_messages_ranges() -> None:
    """Every current signal's DBC range is exactly what the message accepts (0 aside: an offer's gap below 6 A)."""
    checked = 0
    for t, sample in SAMPLES.items():
        message = DB.get_message_by_frame_id(offset_of(sample))
        attr_of = {meta.signal: attr for attr, meta in dbcgen.META[t].items()}
        for sig in message.signals:
            if sig.unit != "A":
                continue
            attr = attr_of[sig.name]
            low, high = round(sig.minimum / sig.scale), round(sig.maximum / sig.scale)
            assert _accepts(sample, attr, low) and _accepts(sample, attr, high), sig.name
            assert not _accepts(sample, attr, high + 1), sig.name
            if low > 0:
                assert not _accepts(sample, attr, low - 1), sig.name
            elif attr != "measured_da" and not isinstance(sample, Heartbeat):
                # an offer: 0 (pause), then nothing until the pilot's lowest current
                assert _accepts(sample, attr, MIN_OFFER_DA) and not _accepts(sample, attr, MIN_OFFER_DA - 1)
            checked += 1
    assert checked == 12
    assert DB.get_message_by_name("Join_01").get_signal_by_name("MaxCurrent").minimum == MIN_OFFER_DA / 10
    assert DB.get_message_by_name("Request_01").get_signal_by_name("Min").minimum == MIN_OFFER_DA / 10
    nack = DB.get_message_by_name("Nack_00").get_signal_by_name("Reporter")
    assert _accepts(SAMPLES[MsgType.NACK], "reporter", nack.maximum)
    assert not _accepts(SAMPLES[MsgType.NACK], "reporter", nack.maximum + 1)


def test_signals_sit_where_the_layout_of_record_puts_the_fields() -> None:
    """Each signal's start bit and length are the construct SPEC's (frames.spec_fields), not a copy's."""
    for t, sample in SAMPLES.items():
        message = DB.get_message_by_frame_id(offset_of(sample))
        where = {f.name: (f.start, f.length) for f in spec_fields(t)}
        nibble = spec_head()[2]
        for i, name in enumerate({MsgType.HEARTBEAT: HEARTBEAT_FLAGS, MsgType.STATUS: STATUS_FLAGS}.get(t, ())):
            where[name] = (nibble.start + i, 1)
        where["version"] = (nibble.start, nibble.length)
        attr_of = {meta.signal: attr for attr, meta in dbcgen.META[t].items()}
        for sig in message.signals:
            if sig.name.startswith("HeardS"):
                a = int(sig.name[6:])
                assert (sig.start, sig.length) == (where["heard"][0] + (a & 7), 1)
            elif sig.name in ("Crc", "AliveCounter"):
                field = spec_head()[0 if sig.name == "Crc" else 1]
                assert (sig.start, sig.length) == (field.start, field.length)
            else:
                assert (sig.start, sig.length) == where[attr_of[sig.name]], (t, sig.name)


def test_counter_comment_says_per_stream() -> None:
    """PROTOCOL.md 6.2: one alive counter per (type, address) stream, not per sender and type."""
    comment = DB.get_message_by_name("Status_03").get_signal_by_name("AliveCounter").comment
    assert "per (type, address) stream" in comment
    assert "per sender and type" not in DBC_PATH.read_text()
