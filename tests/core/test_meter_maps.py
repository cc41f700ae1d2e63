"""Mains-meter register maps and the judgement of a poll: a reading, or a failure of a named kind."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from busshare.core.meter_maps import MAX_READ_REGISTERS
from busshare.core.meter_maps import MAX_READING_DA
from busshare.core.meter_maps import SDM120
from busshare.core.meter_maps import SDM630
from busshare.core.meter_maps import Endian
from busshare.core.meter_maps import FailureKind
from busshare.core.meter_maps import Function
from busshare.core.meter_maps import MeterDecoder
from busshare.core.meter_maps import MeterFailure
from busshare.core.meter_maps import MeterMap
from busshare.core.meter_maps import MeterReading
from busshare.core.meter_maps import ReadBlock
from busshare.core.meter_maps import Register
from busshare.core.meter_maps import RegisterType
from busshare.core.meter_maps import plan_reads
from busshare.core.meter_maps import words_of

F4 = int(Function.INPUT)


def eastron(number: int) -> int:
    """The maker's 3X register number (30001 = the first) -> the address on the wire."""
    return number - 30001


def words(meter_map: MeterMap, currents: list[float], powers: list[float] | None = None) -> dict[tuple[int, int], int]:
    """The registers a meter would send for these values."""
    out: dict[tuple[int, int], int] = {}
    values = list(currents) + list(powers if powers is not None else [230.0 * a for a in currents])
    for reg, value in zip(meter_map.polled, values, strict=True):
        regs = reg.encode(value) if math.isfinite(value) else _raw_float(value)
        for i, w in enumerate(regs):
            out[(int(reg.function), reg.address + i)] = w
    return out


def _raw_float(value: float) -> tuple[int, int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return hi, lo


# -- the Eastron maps, against the maker's register numbers ------------------------


def test_sdm630_map_is_the_makers_register_list() -> None:
    assert [r.address for r in SDM630.voltages] == [eastron(30001), eastron(30003), eastron(30005)]
    assert [r.address for r in SDM630.currents] == [eastron(30007), eastron(30009), eastron(30011)]
    assert [r.address for r in SDM630.powers] == [eastron(30013), eastron(30015), eastron(30017)]
    assert SDM630.total_power is not None and SDM630.total_power.address == eastron(30053) == 0x0034
    every = [*SDM630.voltages, *SDM630.currents, *SDM630.powers, SDM630.total_power]
    assert {(r.function, r.type, r.byte_order, r.word_order, r.scale) for r in every} == {
        (Function.INPUT, RegisterType.FLOAT32, Endian.BIG, Endian.BIG, 1.0)}


def test_sdm120_map_is_the_makers_register_list() -> None:
    assert [r.address for r in SDM120.voltages] == [eastron(30001)]
    assert [r.address for r in SDM120.currents] == [eastron(30007)] == [0x0006]
    assert [r.address for r in SDM120.powers] == [eastron(30013)] == [0x000C]


def test_an_sdm630_poll_is_one_request_for_currents_and_powers() -> None:
    # the same read as `mbpoll -t 3:float -B -r 7 -c 6`: 30007-30018
    assert SDM630.blocks() == (ReadBlock(Function.INPUT, 0x0006, 12),)


def test_an_sdm120_poll_never_reads_across_the_undefined_registers() -> None:
    assert SDM120.blocks() == (ReadBlock(Function.INPUT, 0x0006, 2), ReadBlock(Function.INPUT, 0x000C, 2))


# -- decoding -----------------------------------------------------------------------


@pytest.mark.parametrize("byte_order, word_order, regs", [
    (Endian.BIG, Endian.BIG, (0x4148, 0x0000)),  # ABCD: 12.5
    (Endian.BIG, Endian.LITTLE, (0x0000, 0x4148)),  # CDAB
    (Endian.LITTLE, Endian.BIG, (0x4841, 0x0000)),  # BADC
    (Endian.LITTLE, Endian.LITTLE, (0x0000, 0x4841)),  # DCBA
])
def test_float32_in_every_order(byte_order: Endian, word_order: Endian, regs: tuple[int, int]) -> None:
    reg = Register(0, byte_order=byte_order, word_order=word_order)
    assert reg.decode(regs) == 12.5
    assert reg.encode(12.5) == regs


@pytest.mark.parametrize("rtype, regs, value", [
    (RegisterType.INT16, (0xFFFF,), -1.0),
    (RegisterType.UINT16, (0xFFFF,), 65535.0),
    (RegisterType.INT32, (0xFFFF, 0xFFFE), -2.0),
    (RegisterType.UINT32, (0x0001, 0x0000), 65536.0),
])
def test_integers_and_scale(rtype: RegisterType, regs: tuple[int, ...], value: float) -> None:
    assert Register(0, type=rtype).decode(regs) == value
    assert Register(0, type=rtype, scale=0.01).decode(regs) == pytest.approx(value * 0.01)


orders = st.sampled_from(list(Endian))


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), orders, orders)
def test_float32_round_trips(value: float, byte_order: Endian, word_order: Endian) -> None:
    reg = Register(3, byte_order=byte_order, word_order=word_order)
    assert reg.decode(reg.encode(value)) == value


@given(st.data(), orders, orders)
def test_integer_types_round_trip(data: st.DataObject, byte_order: Endian, word_order: Endian) -> None:
    rtype = data.draw(st.sampled_from([t for t in RegisterType if t is not RegisterType.FLOAT32]))
    bits = 16 * rtype.words
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if rtype.value.startswith("int") else (0, (1 << bits) - 1)
    value = data.draw(st.integers(lo, hi))
    reg = Register(0, type=rtype, byte_order=byte_order, word_order=word_order)
    assert reg.decode(reg.encode(value)) == value


@given(st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2), orders)
def test_word_order_agrees_with_pymodbus(regs: list[int], word_order: Endian) -> None:
    """A peer's decoding (pymodbus's convert_from_registers) of the same registers gives the same value."""
    ours = Register(0, type=RegisterType.INT32, word_order=word_order).decode(regs)
    theirs = ModbusTcpClient.convert_from_registers(regs, ModbusTcpClient.DATATYPE.INT32, word_order=word_order.value)
    assert ours == theirs


def test_a_value_that_does_not_fit_its_type_is_refused() -> None:
    with pytest.raises(ValueError):
        Register(0, type=RegisterType.UINT16).encode(-1)


# -- read planning ------------------------------------------------------------------


def test_adjacent_registers_of_one_function_are_one_read_and_gaps_split() -> None:
    regs = [Register(10), Register(12), Register(14, Function.HOLDING), Register(20), Register(8, type=RegisterType.INT16)]
    assert plan_reads(regs) == (ReadBlock(Function.HOLDING, 14, 2), ReadBlock(Function.INPUT, 8, 1),
                                ReadBlock(Function.INPUT, 10, 4), ReadBlock(Function.INPUT, 20, 2))


def test_a_read_never_exceeds_the_meter_limit() -> None:
    regs = [Register(2 * i) for i in range(60)]  # 120 contiguous registers
    blocks = plan_reads(regs)
    assert [b.count for b in blocks] == [MAX_READ_REGISTERS, 120 - MAX_READ_REGISTERS]
    assert blocks[1].address == MAX_READ_REGISTERS


def test_words_of_keys_every_register_of_every_reply() -> None:
    blocks = (ReadBlock(Function.INPUT, 6, 2), ReadBlock(Function.HOLDING, 6, 1))
    assert words_of(blocks, [[1, 2], [3]]) == {(4, 6): 1, (4, 7): 2, (3, 6): 3}


# -- readings and failures -------------------------------------------------------------


def test_a_good_poll_is_a_reading_in_deciamps_rounded_up() -> None:
    ev = MeterDecoder(SDM630, frozen_s=60).decode(words(SDM630, [12.31, 0.0, 40.0], [2800.0, -50.0, 9200.0]), 7.0)
    assert ev == MeterReading(7.0, (124, 0, 400), (2800.0, -50.0, 9200.0))
    assert isinstance(ev, MeterReading) and ev.worst_da == 400


def test_float_noise_does_not_round_a_whole_tenth_up() -> None:
    ev = MeterDecoder(SDM120, frozen_s=0).decode(words(SDM120, [12.3]), 0.0)
    assert isinstance(ev, MeterReading) and ev.currents_da == (123,)


@pytest.mark.parametrize("currents, powers, why", [
    ([-0.5, 1.0, 1.0], None, "L1 current -0.5 A is negative"),
    ([1.0, math.nan, 1.0], None, "L2 current is nan"),
    ([1.0, 1.0, math.inf], None, "L3 current is inf"),
    ([1638.4, 1.0, 1.0], None, "L1 current 1638.4 A is above 1638.3 A"),
    ([1.0, 1.0, 1.0], [230.0, math.nan, 230.0], "L2 power is nan"),
    ([1.0, 1.0, 1.0], [230.0, 230.0, -2e9], "L3 power -2e+09 W is beyond 1.6383e+06 W"),
])
def test_impossible_values_are_a_failed_read(currents: list[float], powers: list[float] | None, why: str) -> None:
    ev = MeterDecoder(SDM630, frozen_s=60).decode(words(SDM630, currents, powers), 1.0)
    assert ev == MeterFailure(1.0, FailureKind.IMPOSSIBLE, why)


def test_the_largest_possible_current_is_still_a_reading() -> None:
    ev = MeterDecoder(SDM120, frozen_s=0).decode(words(SDM120, [MAX_READING_DA / 10], [0.0]), 0.0)
    assert isinstance(ev, MeterReading) and ev.currents_da == (MAX_READING_DA,)


def test_a_reply_without_a_register_is_a_read_error() -> None:
    w = words(SDM630, [1.0, 2.0, 3.0])
    del w[(F4, 0x0009)]
    ev = MeterDecoder(SDM630, frozen_s=60).decode(w, 0.0)
    assert isinstance(ev, MeterFailure) and ev.kind is FailureKind.READ_ERROR


def test_registers_unchanged_for_longer_than_frozen_s_are_a_failed_read() -> None:
    dec = MeterDecoder(SDM630, frozen_s=30)
    same = words(SDM630, [10.0, 11.0, 12.0])
    assert isinstance(dec.decode(same, 0.0), MeterReading)
    assert isinstance(dec.decode(same, 30.0), MeterReading)  # not longer than 30 s yet
    frozen = dec.decode(same, 30.5)
    assert isinstance(frozen, MeterFailure) and frozen.kind is FailureKind.FROZEN
    assert "30.5 s" in frozen.detail
    assert isinstance(dec.decode(same, 100.0), MeterFailure)  # still frozen
    assert isinstance(dec.decode(words(SDM630, [10.0, 11.0, 12.001]), 101.0), MeterReading)  # moving again
    assert isinstance(dec.decode(words(SDM630, [10.0, 11.0, 12.001]), 120.0), MeterReading)


def test_any_changed_bit_counts_as_moving_even_in_the_powers() -> None:
    dec = MeterDecoder(SDM120, frozen_s=10)
    for t in range(0, 100, 5):
        ev = dec.decode(words(SDM120, [5.0], [1150.0 + t]), float(t))
        assert isinstance(ev, MeterReading)


def test_frozen_s_zero_never_calls_a_meter_frozen() -> None:
    dec = MeterDecoder(SDM120, frozen_s=0)
    same = words(SDM120, [5.0])
    assert all(isinstance(dec.decode(same, float(t)), MeterReading) for t in range(0, 10000, 1000))


@given(st.lists(st.integers(0, 0xFFFF), min_size=12, max_size=12), st.floats(0, 1e6))
def test_any_registers_give_a_reading_or_a_failure_and_a_reading_is_always_plausible(regs: list[int], t: float) -> None:
    w = words_of(SDM630.blocks(), [regs])
    ev = MeterDecoder(SDM630, frozen_s=60).decode(w, t)
    assert isinstance(ev, MeterReading | MeterFailure)
    if isinstance(ev, MeterReading):
        assert len(ev.currents_da) == 3 and all(0 <= da <= MAX_READING_DA for da in ev.currents_da)
        assert ev.powers_w is not None and all(math.isfinite(p) for p in ev.powers_w)


def test_a_map_has_one_or_three_phases_and_matching_powers() -> None:
    with pytest.raises(ValueError):
        MeterMap("x", currents=(Register(0), Register(2)))
    with pytest.raises(ValueError):
        MeterMap("x", currents=(Register(0),), powers=(Register(2), Register(4), Register(6)))


@given(st.integers(0, MAX_READING_DA))
def test_every_tenth_of_an_amp_a_meter_sends_as_float32_reads_back_exactly(da: int) -> None:
    ev = MeterDecoder(SDM120, frozen_s=0).decode(words(SDM120, [da / 10], [0.0]), 0.0)
    assert isinstance(ev, MeterReading) and ev.currents_da == (da,)
