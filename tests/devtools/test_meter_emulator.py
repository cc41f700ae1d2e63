"""The meter emulator's pure parts: load profiles, the served registers and the fault modes (no server, no sleep)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException

from busshare.core.meter_maps import SDM120
from busshare.core.meter_maps import SDM630
from busshare.core.meter_maps import FailureKind
from busshare.core.meter_maps import MeterDecoder
from busshare.core.meter_maps import MeterFailure
from busshare.core.meter_maps import MeterReading
from busshare.core.meter_maps import words_of
from busshare.devtools.load_profile import DAY_S
from busshare.devtools.load_profile import CsvProfile
from busshare.devtools.load_profile import HouseProfile
from busshare.devtools.meter_server import SERVED
from busshare.devtools.meter_server import MeterEmulator
from busshare.devtools.meter_server import Mode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the built-in house ---------------------------------------------------------------


def test_the_same_seed_gives_the_same_day_and_another_seed_another() -> None:
    times = [t * 60.0 for t in range(0, 24 * 60, 7)]
    a, b, c = HouseProfile(3), HouseProfile(3), HouseProfile(4)
    assert [a.currents(t) for t in times] == [b.currents(t) for t in times]
    assert [a.currents(t) for t in times] != [c.currents(t) for t in times]


def test_the_house_switches_its_appliances_over_a_day() -> None:
    house = HouseProfile(1)
    seen = set()
    for minute in range(24 * 60):
        seen.update(house.active(minute * 60.0))
    assert {"fridge", "heat pump", "oven", "dryer", "kettle"} <= seen
    assert "solar" not in seen
    loads = [max(house.currents(m * 60.0)) for m in range(24 * 60)]
    assert min(loads) > 0 and max(loads) - min(loads) > 10  # base load always, steps of several amps


def test_the_oven_thermostat_cycles_while_it_is_on() -> None:
    oven = next(a for a in HouseProfile(1).appliances if a.name == "oven")
    run = oven.runs[0]
    states = [oven.draw(run.start + s) is not None for s in range(0, int(run.duration), 30)]
    assert True in states and False in states


def test_solar_exports_at_noon_and_is_gone_at_night() -> None:
    house = HouseProfile(2, solar=True)
    noon = [house.currents(12 * 3600 + m * 60.0) for m in range(60)]
    assert any(min(c) < 0 for c in noon)  # net export on some phase
    assert "solar" not in house.active(23 * 3600.0)
    assert house.currents(23 * 3600.0) == HouseProfile(2).currents(23 * 3600.0)


def test_a_single_phase_house_carries_the_sum() -> None:
    three, one = HouseProfile(5), HouseProfile(5, phases=1)
    for t in (0.0, 3600.0 * 18, DAY_S - 1):
        assert one.currents(t) == pytest.approx((sum(three.currents(t)),))


def test_the_noise_moves_every_half_second() -> None:
    house = HouseProfile(1)
    assert house.currents(100.0) == house.currents(100.4)
    assert house.currents(100.0) != house.currents(100.5)


# -- CSV profiles ---------------------------------------------------------------------


def test_a_csv_profile_holds_each_row_until_the_next(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("time,L1,L2,L3\n0,1,2,3\n# a comment\n\n10, 20.5, 2, 3\n30,-4,0,1\n")
    p = CsvProfile.load(f)
    assert p.phases == 3
    assert [p.currents(t) for t in (-1, 0, 9.9, 10, 29, 30, 1e9)] == [
        (1, 2, 3), (1, 2, 3), (1, 2, 3), (20.5, 2, 3), (20.5, 2, 3), (-4, 0, 1), (-4, 0, 1)]


@pytest.mark.parametrize("text, why", [
    ("", "no rows"),
    ("0,1,2\n", ":1: want time,L1 or time,L1,L2,L3, got 3 columns"),
    ("0,1\n5,x\n", ":2: '5,x' is not numbers"),
    ("0,1\n5,1,2,3\n", ":2: 4 columns, the first row has 2"),
    ("5,1\n0,1\n", ":2: time 0 s does not increase (the row before: 5 s)"),
    ("0,nan\n", ":1: not a finite number"),
])
def test_a_bad_csv_profile_is_one_line_naming_the_line(tmp_path: Path, text: str, why: str) -> None:
    f = tmp_path / "p.csv"
    f.write_text(text)
    with pytest.raises(ValueError) as exc:
        CsvProfile.load(f)
    assert str(exc.value) == f"{f}{why}" if why.startswith(":") else str(exc.value).endswith(why)


# -- the served registers and the fault modes ----------------------------------------------


_BLOCKS: dict[int, list[int]] = {}


def serve(emu: MeterEmulator, address: int = 0x0006, count: int = 12) -> list[int]:
    """One function-4 read, as pymodbus makes it: the action on the device's block, then its registers."""
    block = _BLOCKS.setdefault(id(emu), [0] * SERVED)  # the server keeps one block per device
    result = asyncio.run(emu.action(4, 0, address, count, block, None))
    assert result is None
    return block[address:address + count]


def read(emu: MeterEmulator, decoder: MeterDecoder, t: float) -> MeterReading | MeterFailure:
    blocks = decoder.meter_map.blocks()
    replies = [serve(emu, b.address, b.count) for b in blocks]
    return decoder.decode(words_of(blocks, replies), t)


def test_the_registers_decode_back_to_the_profile() -> None:
    clock = Clock()
    house = HouseProfile(1)
    emu = MeterEmulator(SDM630, house, start_s=18 * 3600, clock=clock)
    ev = read(emu, MeterDecoder(SDM630, 60), 0.0)
    expected = house.currents(18 * 3600)
    assert isinstance(ev, MeterReading)
    assert all(-0.001 < da / 10 - abs(a) < 0.1 for da, a in zip(ev.currents_da, expected, strict=True))  # up
    assert ev.powers_w is not None and all(p > 0 for p in ev.powers_w)


def test_export_is_a_magnitude_with_a_negative_power() -> None:
    emu = MeterEmulator(SDM120, HouseProfile(1, phases=1), clock=Clock())
    emu.command("set -12.5")
    ev = read(emu, MeterDecoder(SDM120, 60), 0.0)
    assert isinstance(ev, MeterReading) and ev.currents_da == (125,)
    assert ev.powers_w is not None and ev.powers_w[0] < 0


def test_the_profile_runs_at_the_chosen_speed() -> None:
    clock = Clock()
    emu = MeterEmulator(SDM630, HouseProfile(1), start_s=100.0, speed=60.0, clock=clock)
    clock.now += 10
    assert emu.profile_time() == 700.0


def test_freeze_keeps_the_registers_and_the_decoder_calls_it_frozen() -> None:
    clock = Clock()
    emu = MeterEmulator(SDM630, HouseProfile(1), clock=clock)
    dec = MeterDecoder(SDM630, frozen_s=5)
    assert isinstance(read(emu, dec, 0.0), MeterReading)
    assert emu.command("freeze") is not None and emu.mode is Mode.FROZEN
    first = serve(emu)
    clock.now += 30
    assert serve(emu) == first
    got = [read(emu, dec, t) for t in (1.0, 3.0, 6.0)]
    assert isinstance(got[0], MeterReading) and isinstance(got[-1], MeterFailure)
    assert got[-1].kind is FailureKind.FROZEN
    emu.command("normal")
    clock.now += 1
    assert isinstance(read(emu, dec, 7.0), MeterReading)


def test_garbage_is_caught_as_impossible() -> None:
    emu = MeterEmulator(SDM630, HouseProfile(1), seed=3, clock=Clock())
    emu.command("garbage")
    dec = MeterDecoder(SDM630, frozen_s=60)
    kinds = [read(emu, dec, float(t)) for t in range(20)]
    failures = [e for e in kinds if isinstance(e, MeterFailure)]
    assert len(failures) >= 15 and {f.kind for f in failures} == {FailureKind.IMPOSSIBLE}


def test_silent_raises_for_no_reply_and_error_answers_an_exception() -> None:
    emu = MeterEmulator(SDM630, HouseProfile(1), clock=Clock())
    emu.command("silent")
    with pytest.raises(NoSuchIdException):
        asyncio.run(emu.action(4, 0, 6, 2, [0] * SERVED, None))
    emu.command("error")
    assert asyncio.run(emu.action(4, 0, 6, 2, [0] * SERVED, None)) == ExcCodes.DEVICE_FAILURE
    assert (emu.answered, emu.unanswered) == (1, 1)


def test_holding_registers_and_writes_are_not_emulated() -> None:
    emu = MeterEmulator(SDM630, HouseProfile(1), clock=Clock())
    assert asyncio.run(emu.action(3, 0, 6, 2, [0] * SERVED, None)) == ExcCodes.ILLEGAL_ADDRESS


@pytest.mark.parametrize("line, event", [
    ("freeze", "mode"), ("  NORMAL ", "mode"), ("set 1 2 3", "set"), ("profile", "profile"), ("status", "status"),
    ("set 1 2", "error"), ("set a b c", "error"), ("set nan 1 1", "error"), ("dance", "error"), ("freeze now", "error"),
])
def test_commands_answer_one_record(line: str, event: str) -> None:
    emu = MeterEmulator(SDM630, HouseProfile(1), clock=Clock())
    rec = emu.command(line)
    assert rec is not None and rec["event"] == event


def test_blank_lines_and_comments_are_no_commands() -> None:
    emu = MeterEmulator(SDM630, HouseProfile(1), clock=Clock())
    assert emu.command("") is None and emu.command("# freeze later") is None and emu.mode is Mode.NORMAL


def test_the_profile_must_fit_the_meter() -> None:
    with pytest.raises(ValueError):
        MeterEmulator(SDM120, HouseProfile(1), clock=Clock())
    with pytest.raises(ValueError):
        MeterEmulator(SDM630, HouseProfile(1), device_id=0, clock=Clock())
