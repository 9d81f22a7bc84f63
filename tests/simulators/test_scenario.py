"""The demo scenario is a pure, deterministic function of time with the properties the demo relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.epc import decode_epc
from simulators.scenario import (
    EDGE_RSSI,
    SCENARIO_DIR,
    DemoScenario,
    ScenarioError,
    ScenarioRunner,
    Zone,
    load_scenario,
)

LIMIT_C = 8.0


def samples(scenario: DemoScenario, start: float, end: float, step: float) -> list[float]:
    n = int((end - start) / step)
    return [start + i * step for i in range(n)]


def first_and_peak(
    scenario: DemoScenario, zone: Zone, times: list[float], portal: str | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Per EPC: first time heard and time of the strongest read, by ``zone``'s reader."""
    first: dict[str, float] = {}
    peak: dict[str, tuple[int, float]] = {}
    for t in times:
        for epc, rssi in scenario.field(zone, t, portal):
            first.setdefault(epc, t)
            if epc not in peak or rssi > peak[epc][0]:
                peak[epc] = (rssi, t)
    return first, {epc: t for epc, (_, t) in peak.items()}


def above_limit_runs(scenario: DemoScenario, cycle: int = 0, steps: int = 3000) -> list[tuple[float, float]]:
    step = scenario.cycle_s / steps
    runs: list[tuple[float, float]] = []
    start = None
    for i in range(steps + 1):
        t = cycle * scenario.cycle_s + min(i * step, scenario.cycle_s - 1e-9)
        hot = scenario.cold_room(t)[0] > LIMIT_C
        if hot and start is None:
            start = t
        elif not hot and start is not None:
            runs.append((start, t))
            start = None
    if start is not None:
        runs.append((start, cycle * scenario.cycle_s + scenario.cycle_s))
    return runs


def test_cases_are_sgtin96_of_the_demo_company() -> None:
    scenario = DemoScenario()
    epcs = scenario.pallet_epcs(0, 0, 0) + scenario.pallet_epcs(0, 0, 2)
    assert len(set(epcs)) == 16
    for epc in epcs:
        identity = decode_epc(epc)
        assert identity.scheme == "sgtin-96"
        assert identity.uri.startswith("urn:epc:id:sgtin:0614141.")
        assert identity.gtin is not None and len(identity.gtin) == 14


def test_entering_cases_peak_outer_then_inner_and_leaving_ones_the_reverse() -> None:
    scenario = DemoScenario()
    times = samples(scenario, 0.0, scenario.cycle_s, 0.05)
    outer_first, outer_peak = first_and_peak(scenario, "outer", times)
    inner_first, inner_peak = first_and_peak(scenario, "inner", times)
    entered = {epc for pallet in range(3) for epc in scenario.pallet_epcs(0, 0, pallet)}
    assert set(outer_first) == set(inner_first) == entered  # both readers hear every case
    for epc in entered:
        assert outer_first[epc] < inner_first[epc]
    leaving = set(scenario.pallet_epcs(0, 0, 0))
    stayed = entered - leaving
    for epc in stayed:
        assert outer_peak[epc] < inner_peak[epc]
    # The leaving pallet: its *last* passage peaks on the inner reader first.
    exit_times = [t for t in times if t >= scenario.passages()[-1].start_s]
    _, out_outer = first_and_peak(scenario, "outer", exit_times)
    _, out_inner = first_and_peak(scenario, "inner", exit_times)
    assert set(out_outer) == leaving
    for epc in leaving:
        assert out_inner[epc] < out_outer[epc]


def test_rssi_shape() -> None:
    scenario = DemoScenario()
    times = samples(scenario, 0, 60, 0.05)
    reads = [r for t in times for _, r in scenario.outer_field(t) + scenario.inner_field(t)]
    assert reads
    assert all(-90 <= r <= -30 for r in reads)
    assert -50 <= max(reads) <= -40  # peak around -45 dBm
    assert min(reads) <= EDGE_RSSI  # weak reads at the border of the field


def test_timeline_of_the_default_demo() -> None:
    scenario = DemoScenario()
    entries = [p for p in scenario.passages() if p.direction == "in"]
    exits = [p for p in scenario.passages() if p.direction == "out"]
    assert len(entries) == 3 and len(exits) == 1
    assert all(p.end_s <= 0.4 * 60 + 0.5 for p in entries)  # all enter in the first ~40 %
    assert 0.55 * 60 <= exits[0].start_s <= 0.65 * 60  # one leaves around 60 %
    assert scenario.passage_s == 4.0
    assert DemoScenario(cycle_s=12).passage_s == 3.0  # scaled, but at least 3 s
    assert scenario.outer_field(0.5) == [] and scenario.inner_field(59.0) == []


def test_expected_counts_finished_passages() -> None:
    scenario = DemoScenario(cycle_s=60, pallets=3, cases_per_pallet=8)
    assert scenario.expected(0.0) == 0
    assert scenario.expected(59.9) == 16  # 3 pallets in, 1 out
    assert scenario.expected(60.0 + 59.9) == 32
    first_entry = scenario.passages()[0]
    assert scenario.expected(first_entry.end_s - 0.01) == 0
    assert scenario.expected(first_entry.end_s) == 8
    for t in (3.0, 15.0, 30.0, 45.0, 59.0, 75.0, 110.0):
        assert scenario.expected(t) == len(scenario.inside_epcs(t))


def test_each_cycle_brings_new_cases_and_repeats_the_timing() -> None:
    scenario = DemoScenario()
    cycle0 = {e for t in samples(scenario, 0, 60, 0.1) for e, _ in scenario.outer_field(t)}
    cycle1 = {e for t in samples(scenario, 60, 120, 0.1) for e, _ in scenario.outer_field(t)}
    assert len(cycle0) == len(cycle1) == 24
    assert not cycle0 & cycle1
    for t in (2.0, 13.0, 38.0):
        assert len(scenario.outer_field(t)) == len(scenario.outer_field(t + 60))
        assert scenario.cold_room(t) == scenario.cold_room(t + 60)


def test_cold_room_default_cycle() -> None:
    scenario = DemoScenario()
    runs = above_limit_runs(scenario)
    assert len(runs) == 1
    start, end = runs[0]
    assert start >= 0.45 * 60 and end <= 0.9 * 60
    assert end - start >= 0.15 * 60
    temps = [scenario.cold_room(t)[0] for t in samples(scenario, 0, 60, 0.1)]
    assert 10.5 <= max(temps) <= 11.5
    normal = [scenario.cold_room(t)[0] for t in samples(scenario, 0, 0.44 * 60, 0.1)]
    assert all(3.5 <= v <= 4.5 for v in normal)
    assert max(normal) - min(normal) > 0.05  # there is some noise


@settings(max_examples=40, deadline=None)
@given(
    cycle_s=st.floats(min_value=8.0, max_value=900.0),
    seed=st.integers(min_value=0, max_value=10_000),
    pallets=st.integers(min_value=1, max_value=5),
    cases=st.integers(min_value=1, max_value=12),
)
def test_properties_hold_for_any_parameters(cycle_s: float, seed: int, pallets: int, cases: int) -> None:
    scenario = DemoScenario(cycle_s=cycle_s, pallets=pallets, cases_per_pallet=cases, seed=seed)
    twin = DemoScenario(cycle_s=cycle_s, pallets=pallets, cases_per_pallet=cases, seed=seed)
    step = cycle_s / 400
    times = samples(scenario, 0.0, cycle_s, step)
    for t in times[::7]:
        assert scenario.outer_field(t) == twin.outer_field(t)
        assert scenario.inner_field(t) == twin.inner_field(t)
        assert scenario.cold_room(t) == twin.cold_room(t)
        humidity = scenario.cold_room(t)[1]
        assert 55.0 <= humidity <= 70.0
    outer_first, _ = first_and_peak(scenario, "outer", times)
    inner_first, _ = first_and_peak(scenario, "inner", times)
    for epc, seen_inner in inner_first.items():
        assert outer_first[epc] <= seen_inner
    runs = above_limit_runs(scenario)
    assert len(runs) == 1, runs  # one contiguous excursion: no flicker around the limit
    assert runs[0][1] - runs[0][0] >= 0.15 * cycle_s
    assert scenario.expected(cycle_s - 1e-6) == (pallets - 1) * cases


def test_seed_changes_identities_and_noise() -> None:
    a, b = DemoScenario(seed=7), DemoScenario(seed=8)
    assert not set(a.pallet_epcs(0, 0, 0)) & set(b.pallet_epcs(0, 0, 0))
    assert [a.cold_room(t) for t in range(20)] != [b.cold_room(t) for t in range(20)]


def test_runner_binds_time() -> None:
    now = [100.0]
    runner = ScenarioRunner(DemoScenario(), time_source=lambda: now[0])
    assert runner.elapsed() == 0.0 and runner.outer_field() == []
    now[0] = 102.5
    assert runner.outer_field() == runner.scenario.outer_field(2.5) != []
    assert runner.cold_room() == runner.scenario.cold_room(2.5)
    inner = runner.field_source("inner")
    now[0] = 104.0
    assert inner() == runner.scenario.inner_field(4.0) != []
    now[0] = 160.0
    assert runner.expected() == 16
    with pytest.raises(KeyError):
        runner.field_source("outer", "no-such-portal")


def test_shipped_dock_scenario() -> None:
    scenario = load_scenario(SCENARIO_DIR / "dock.toml")
    assert scenario.portal_ids == ("dock-1", "dock-2")
    assert scenario.expected(scenario.cycle_s - 0.01, "dock-1") == 16
    assert scenario.expected(scenario.cycle_s - 0.01, "dock-2") == 12
    assert scenario.expected(scenario.cycle_s - 0.01) == 28
    times = samples(scenario, 0, scenario.cycle_s, 0.1)
    dock1 = {e for t in times for e, _ in scenario.outer_field(t, "dock-1")}
    dock2 = {e for t in times for e, _ in scenario.outer_field(t, "dock-2")}
    assert len(dock2) == 12 and not dock1 & dock2  # each door its own cases
    assert len(above_limit_runs(scenario)) == 1


def test_shipped_cold_room_scenario_has_door_bumps_below_the_limit() -> None:
    scenario = load_scenario(SCENARIO_DIR / "cold_room.toml")
    cycle = scenario.cycle_s
    base = scenario.spec.cold_room.base_c
    door = max(scenario.cold_room(t)[0] for t in samples(scenario, 0.05 * cycle, 0.12 * cycle, 0.2))
    assert base + 0.7 < door < LIMIT_C
    door_humidity = max(scenario.cold_room(t)[1] for t in samples(scenario, 0.05 * cycle, 0.12 * cycle, 0.2))
    assert door_humidity > scenario.spec.cold_room.humidity_base + 2.5
    runs = above_limit_runs(scenario)
    assert len(runs) == 1 and runs[0][1] - runs[0][0] >= 0.15 * cycle


def test_bad_scenario_files_name_the_problem(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad_key.toml"
    bad_key.write_text('[[portals]]\nid = "p1"\npallets_in = -1\n')
    with pytest.raises(ScenarioError, match=r"portals\.0\.pallets_in"):
        load_scenario(bad_key)
    not_toml = tmp_path / "not_toml.toml"
    not_toml.write_text("cycle_s = = 3\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(not_toml)
    too_short = tmp_path / "short.toml"
    too_short.write_text('cycle_s = 6.0\n[[portals]]\nid = "p1"\n')
    with pytest.raises(ScenarioError, match="cycle too short"):
        load_scenario(too_short)
    early_exit = tmp_path / "early_exit.toml"
    early_exit.write_text('[[portals]]\nid = "p1"\nexits = [{ at = 0.01 }]\n')
    with pytest.raises(ScenarioError, match="before it finished entering"):
        load_scenario(early_exit)
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "missing.toml")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("cycle_seconds = 60\n")
    with pytest.raises(ScenarioError, match="cycle_seconds"):
        load_scenario(unknown)
