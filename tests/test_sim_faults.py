"""Scripted faults, shortage, determinism and the scenario format.

Every run here checks every invariant at every step (a violation raises
``SimulationFailed`` with the seed and the trace); the assertions below check
that each fault really happened and was noticed on the bus.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sim_findings import known_finding

from busshare.frames import Heartbeat, Message, Nack, NackCode, Status, decode
from busshare.sim import (
    ScenarioError,
    SimResult,
    Simulation,
    SimulationFailed,
    load_scenario,
    parse_scenario,
    run_scenario,
)
from busshare.sim.scenario import builtin_names


def wire(result: SimResult) -> list[tuple[float, Message]]:
    return [(t, decode(i, d)[0]) for t, i, d in result.capture]


@pytest.fixture(scope="module")
def faults() -> SimResult:
    return run_scenario(load_scenario("faults"))


def test_the_fault_tour_keeps_every_invariant(faults: SimResult) -> None:
    assert faults.ok
    s = faults.summary
    assert s.peak_offered_da <= s.limit_da and s.peak_drawn_da <= s.limit_da
    assert s.corrupted > 0 and s.duplicated > 0 and s.lost > 0
    assert s.rejected >= s.corrupted  # every corrupted copy was dropped by a real Link
    assert s.failsafe_episodes > 0


def test_fault_tour_every_fault_was_seen(faults: SimResult) -> None:
    kinds = {m.kind for m in faults.timeline.events}
    assert {"partition", "heal", "servant-crash", "servant-boot", "master-start", "master-stop", "twin",
            "twin-gone", "bus"} <= kinds
    frames = wire(faults)
    # a restarted master comes back with a new epoch
    epochs = [m.epoch for _, m in frames if isinstance(m, Heartbeat) and m.master_id == 1]
    assert len(set(epochs)) >= 3
    # graceful shutdown was announced
    assert any(isinstance(m, Heartbeat) and m.leaving for _, m in frames)
    # the second master was heard by someone
    assert any(isinstance(m, Heartbeat) and m.master_id == 7 for _, m in frames)
    assert any((isinstance(m, Heartbeat) and m.conflict) or (isinstance(m, Nack) and m.code is NackCode.SECOND_MASTER)
               for _, m in frames)
    # the twins on address 5 were detected
    assert any((isinstance(m, Status) and m.address == 5 and m.conflict)
               or (isinstance(m, Nack) and m.code is NackCode.ADDRESS_CONFLICT) for _, m in frames)


def test_the_non_compliant_car_was_stopped_by_its_servant(faults: SimResult) -> None:
    frames = wire(faults)
    assert any(isinstance(m, Nack) and m.code is NackCode.EV_OVERDRAW and m.address == 6 for _, m in frames)
    assert any(isinstance(m, Status) and m.address == 6 and m.ev_stopped for _, m in frames)


def test_same_seed_same_run_frame_for_frame() -> None:
    sc = dataclasses.replace(load_scenario("faults"), duration_s=600.0)
    a = run_scenario(sc, seed=5)
    b = run_scenario(sc, seed=5)
    c = run_scenario(sc, seed=6)
    assert a.capture == b.capture and a.timeline == b.timeline and a.summary == b.summary
    assert a.capture != c.capture


@pytest.mark.slow
def test_shortage_rotates_so_nobody_starves() -> None:
    try:
        result = run_scenario(load_scenario("shortage"))
    except SimulationFailed as exc:
        finding = known_finding(str(exc))
        if finding:
            pytest.xfail(f"{finding}: {exc.violation}")
        raise
    assert result.ok
    energy = result.summary.energy_kwh
    assert len(energy) == 12 and all(kwh > 0 for kwh in energy.values()), energy
    # nobody was stopped for good: every EVSE was offered current at some point after the first hour
    for address in range(1, 13):
        assert any(s.offered_da > 0 and s.t > 3600 for s in result.timeline.series(address)), address


def test_live_hook_sees_every_step_and_time_only_moves_forward() -> None:
    seen: list[float] = []
    sim = Simulation(dataclasses.replace(load_scenario("story"), duration_s=30.0), on_step=lambda s: seen.append(s.now))
    sim.run()
    assert len(seen) == sim.steps and seen == sorted(seen)


def test_builtin_scenarios_load() -> None:
    assert {"story", "faults", "shortage"} <= set(builtin_names())
    for name in builtin_names():
        assert load_scenario(name).duration_s > 0


STORY_TOML = """
duration_s = 10
[installation.site]
breaker_a = 80
[[installation.servant]]
address = 1
max_a = 32
"""


def test_a_directory_named_like_a_builtin_scenario_does_not_hide_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "story").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_scenario("story").name == "story"


def test_a_minimal_scenario_parses() -> None:
    sc = parse_scenario(STORY_TOML)
    assert sc.config.limit_da == 640 and sc.duration_s == 10


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("color = 1", "color: unknown key"),
        ("[[car]]\nevse = 9", r"car\[0\]\.evse: 9 is not a servant address"),
        ("[[car]]\nevse = 1\nwings = 2", r"car\[0\]\.wings: unknown key"),
        ("[[car]]\nevse = 1\nreaction_min_s = 6.0\nreaction_max_s = 5.0", r"car\[0\]: EV reaction"),
        ("[[fault]]\nkind = 'meteor'", r"fault\[0\]\.kind: \"meteor\" is not one of"),
        ("[[fault]]\nkind = 'partition'\naddress = 4", r"fault\[0\]\.address: 4 is not a servant address"),
        ("[[fault]]\nkind = 'partition'", r"fault\[0\]\.address: is missing"),
        ("[[fault]]\nkind = 'partition'\naddress = 1\ndirection = 'sideways'", r"fault\[0\]\.direction"),
        ("[bus]\nloss = 2.0", r"bus\.loss: 2\.0 must be 0-1"),
        ("[[fault]]\nkind = 'bus'\ncorrupt = -1.0", r"fault\[0\]\.corrupt: -1\.0 must be 0-1"),
        # every kind of value, checked where it is read (issue 11)
        ("[[fault]]\nkind = 'twin'\naddress = 1\nserial = -5", r"fault\[0\]\.serial: -5 must be 0-4294967295"),
        ("[[car]]\nevse = 1\nmax_a = \"big\"", r"car\[0\]\.max_a: \"big\" is not a number"),
        ("seed = \"abc\"", r"seed: \"abc\" is not an integer"),
        ("first_epoch = 300", r"first_epoch: 300 must be 0-255"),
        ("filter = \"no\"", r"filter: \"no\" is not true or false"),
        ("[[fault]]\nkind = 'second_master'\nmaster_id = 'x'", r"fault\[0\]\.master_id: \"x\" is not an integer"),
        ("[car_defaults]\nneed_kwh = nan", r"car_defaults\.need_kwh: nan is not a finite number"),
        ("[[car]]\nevse = 1\nat = 5\nleave = 2", r"car\[0\]\.leave: 2 must be after at"),
    ],
)
def test_bad_scenarios_are_one_line_errors(extra: str, message: str) -> None:
    text = STORY_TOML + extra if extra.startswith("[") else extra + "\n" + STORY_TOML  # top-level keys go first
    with pytest.raises(ScenarioError, match=message) as info:
        parse_scenario(text, where="x.toml")
    assert "\n" not in str(info.value) and str(info.value).startswith("x.toml: ")


def test_bad_installation_is_reported_by_the_real_config_validation() -> None:
    bad = STORY_TOML.replace("max_a = 32", "max_a = 90")
    with pytest.raises(ScenarioError, match=r"installation\.servant\[0\]\.max_a: 90 is above 80 A"):
        parse_scenario(bad)
    huge = STORY_TOML.replace("breaker_a = 80", "breaker_a = 1e308")
    with pytest.raises(ScenarioError, match=r"installation\.site\.breaker_a: 1e\+308 must be"):
        parse_scenario(huge)


def test_missing_pieces_are_named() -> None:
    with pytest.raises(ScenarioError, match="duration_s"):
        parse_scenario(STORY_TOML.replace("duration_s = 10", ""))
    with pytest.raises(ScenarioError, match="installation"):
        parse_scenario("duration_s = 5")
    with pytest.raises(ScenarioError, match="no scenario 'nope'"):
        load_scenario("nope")


def test_a_scenario_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(STORY_TOML.encode() + b'description = "caf\xe9"\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: the file is not UTF-8 text (byte 0xe9 at offset")


def test_without_acceptance_filters_servants_hear_every_frame_and_the_story_still_holds() -> None:
    filtered = run_scenario(load_scenario("story"))
    unfiltered = run_scenario(dataclasses.replace(load_scenario("story"), filter=False))
    assert unfiltered.ok
    assert unfiltered.summary.energy_kwh == filtered.summary.energy_kwh


def test_the_timeline_records_every_pilot_change_the_invariants_see() -> None:
    """`sim --plot` draws the timeline: a crashed servant whose watchdog reset its pilot must show 0 A at
    that instant (not its last offer until it reboots), and so must every change the invariants check."""
    sim = Simulation(load_scenario("faults"))
    seen: dict[tuple[float, str], tuple[int, int, int | None]] = {}
    sync = sim.inv.sync

    def spy(p, t):  # type: ignore[no-untyped-def]
        sync(p, t)
        ev = p.evse
        seen[(t, p.name)] = (p.address, ev.offer_da, ev.draw_da if ev.meter else None)

    sim.inv.sync = spy  # type: ignore[method-assign]
    result = sim.run()
    twins = {p.address for p in sim.servants if p.twin}  # two processes on one address share a series
    wrong = []
    for (t, name), (address, offered, drawn) in seen.items():
        sample = result.timeline.at(address, t)
        if address not in twins and (sample is None or (sample.offered_da, sample.drawn_da) != (offered, drawn)):
            wrong.append((t, name, offered, drawn, sample))
    assert not wrong, wrong[:5]
    watchdog = [m for m in result.timeline.events if m.kind == "watchdog"]
    assert watchdog  # the tour has a crash whose watchdog fires
    for m in watchdog:
        sample = result.timeline.at(m.address or 0, m.t)
        assert sample is not None and (sample.offered_da, sample.drawn_da) == (0, 0)
