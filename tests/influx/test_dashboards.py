"""Every InfluxQL query of the Grafana boards, run against a real InfluxDB 1.x filled by the cloud.

There is no Grafana here: each query is made concrete as Grafana would (``$timeFilter``,
``$__interval``, the variables; a repeated panel gets one value), run on InfluxDB, and the answer is
compared with what was sent (``grafana_site``). Thresholds are checked by doing what Grafana's
"Config from query results" transformation does with the ``limits`` query's row.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from grafana_site import LIMITS, SENSORS, Truth, fill

from dashboards.provision import load_dashboards
from shelfsense.services import InfluxdProcess

Board = dict[str, Any]


@pytest.fixture(scope="module")
def site(influxdb: InfluxdProcess, tmp_path_factory: pytest.TempPathFactory) -> Truth:
    name = f"site-{secrets.token_hex(3)}"  # the InfluxDB server is shared by the session
    return asyncio.run(fill(influxdb, name, tmp_path_factory.mktemp("cloud") / "cloud.db"))


@pytest.fixture(scope="module")
def cold_chain() -> Board:
    return load_dashboards()["cold-chain"]


def concrete(query: str, truth: Truth, interval: str = "5m", **values: str) -> str:
    """The query as Grafana sends it: time range, interval, variables (regex, ``.*`` for All)."""
    start_ms, end_ms = (int(t.timestamp() * 1000) for t in (truth.start, truth.end))
    query = query.replace("$timeFilter", f"time >= {start_ms}ms AND time <= {end_ms}ms")
    query = query.replace("$__interval", interval)
    for name in ("site", "zone", "sensor"):
        value = truth.site if name == "site" else values.get(name)
        query = query.replace(f"${name}", re.escape(value) if value else ".*")
    assert not re.search(r"\$[A-Za-z_{]", query), query  # only regex anchors are left
    return query


def ask(server: InfluxdProcess, query: str) -> list[dict[str, Any]]:
    answer = json.loads(server.query(query, server.database))["results"][0]
    assert "error" not in answer, f"{query}: {answer['error']}"
    return list(answer.get("series", []))


def panel(board: Board, title: str) -> Board:
    (found,) = [p for p in board["panels"] if p["title"].startswith(title)]
    return found


def target(found: Board, ref: str) -> str:
    (query,) = [t["query"] for t in found["targets"] if t["refId"] == ref]
    return str(query)


def column(series: dict[str, Any], name: str) -> list[Any]:
    index = series["columns"].index(name)
    return [row[index] for row in series["values"]]


def thresholds(found: Board, server: InfluxdProcess, truth: Truth, **values: str) -> list[tuple[float, str]]:
    """What Grafana's configFromData makes of the limits row: one step per mapped, non-null field
    in field order, the first one the base (-infinity)."""
    (transform,) = found["transformations"]
    options = transform["options"]
    (row,) = ask(server, concrete(target(found, options["configRefId"]), truth, **values))
    colours = {m["fieldName"]: m["handlerArguments"]["threshold"]["color"] for m in options["mappings"]}
    steps = [
        (value, colours[name])
        for name, value in zip(row["columns"], row["values"][0], strict=True)
        if name in colours and value is not None
    ]
    return [(-math.inf, steps[0][1]), *steps[1:]]


def colour_at(steps: list[tuple[float, str]], value: float) -> str:
    active = steps[0][1]
    for limit, colour in steps:
        if value >= limit:
            active = colour
    return active


# --- variables --------------------------------------------------------------------------------


def test_variables_list_sites_zones_and_each_zones_sensors(
    influxdb: InfluxdProcess, site: Truth, cold_chain: Board
) -> None:
    variables = {v["name"]: v["query"] for v in cold_chain["templating"]["list"]}

    def values(name: str, **chosen: str) -> set[str]:
        return {
            row[1] for s in ask(influxdb, concrete(variables[name], site, **chosen)) for row in s["values"]
        }

    assert site.site in {row[1] for s in ask(influxdb, variables["site"]) for row in s["values"]}
    assert values("zone") == set(LIMITS)
    assert values("sensor") == set(SENSORS)
    assert values("sensor", zone="cold-1") == {"zb-1", "zb-2"}
    assert values("sensor", zone="freezer-1") == {"fz-1"}


# --- per zone: repeated row -------------------------------------------------------------------


@pytest.mark.parametrize("zone", sorted(LIMITS))
def test_zone_panel_shows_that_zones_extremes(
    influxdb: InfluxdProcess, site: Truth, cold_chain: Board, zone: str
) -> None:
    found = panel(cold_chain, "Temperature in $zone")
    (series,) = ask(influxdb, concrete(target(found, "A"), site, zone=zone))
    assert series["tags"] == {"zone": zone}
    sent = site.zone_temperatures(zone)
    assert max(v for v in column(series, "max") if v is not None) == max(sent)  # the spike, not a mean
    assert min(v for v in column(series, "min") if v is not None) == min(sent)


def test_zone_limit_series_follow_the_limit_change(
    influxdb: InfluxdProcess, site: Truth, cold_chain: Board
) -> None:
    found = panel(cold_chain, "Temperature in $zone")
    (cold,) = ask(influxdb, concrete(target(found, "B"), site, zone="cold-1"))
    highs = [v for v in column(cold, "max limit") if v is not None]
    assert highs[0] == 8.0 and highs[-1] == 6.0 and set(highs) == {8.0, 6.0}  # lowered half way
    assert {v for v in column(cold, "min limit") if v is not None} == {2.0}
    (freezer,) = ask(influxdb, concrete(target(found, "B"), site, zone="freezer-1"))
    assert {v for v in column(freezer, "max limit") if v is not None} == {-18.0}
    assert all(v is None for v in column(freezer, "min limit"))


@pytest.mark.parametrize(
    ("zone", "steps", "colours"),
    [
        ("cold-1", [2 - 1000, 2.0, 6.0], {1.0: "blue", 4.0: "green", 7.0: "red"}),  # the lowered max
        ("freezer-1", [-18.0], {-25.0: "green", -17.0: "red"}),  # no minimum: green up to the max
        ("ambient-1", [15 - 1000, 15.0, 25.0], {10.0: "blue", 20.0: "green", 26.0: "red"}),
    ],
)
def test_zone_thresholds_are_that_zones_limits(
    influxdb: InfluxdProcess,
    site: Truth,
    cold_chain: Board,
    zone: str,
    steps: list[float],
    colours: dict[float, str],
) -> None:
    for title in ("Temperature in $zone", "Now in $zone"):
        found = thresholds(panel(cold_chain, title), influxdb, site, zone=zone)
        assert [value for value, _ in found[1:]] == steps
        assert {value: colour_at(found, value) for value in colours} == colours


def test_now_panel_shows_each_sensors_latest_reading(
    influxdb: InfluxdProcess, site: Truth, cold_chain: Board
) -> None:
    found = panel(cold_chain, "Now in $zone")
    answer = ask(influxdb, concrete(target(found, "A"), site, zone="cold-1"))
    latest = {s["tags"]["sensor"]: s["values"][0][1] for s in answer}
    assert latest == {sensor: site.temperature[sensor][-1][1] for sensor in ("zb-1", "zb-2")}


# --- per sensor: repeated panel ---------------------------------------------------------------


@pytest.mark.parametrize("sensor", sorted(SENSORS))
def test_sensor_panel_shows_only_that_sensor(
    influxdb: InfluxdProcess, site: Truth, cold_chain: Board, sensor: str
) -> None:
    found = panel(cold_chain, "Sensor $sensor")
    assert found["repeat"] == "sensor"
    (series,) = ask(influxdb, concrete(target(found, "A"), site, sensor=sensor))
    assert series["tags"] == {"sensor": sensor}
    sent = [v for _, v in site.temperature[sensor]]
    assert max(v for v in column(series, "max") if v is not None) == max(sent)
    assert min(v for v in column(series, "min") if v is not None) == min(sent)


@pytest.mark.parametrize(
    ("sensor", "limits"), [("zb-2", [2 - 1000, 2.0, 6.0]), ("fz-1", [-18.0]), ("amb-1", [-985.0, 15.0, 25.0])]
)
def test_sensor_thresholds_are_its_zones_limits(
    influxdb: InfluxdProcess, site: Truth, cold_chain: Board, sensor: str, limits: list[float]
) -> None:
    found = panel(cold_chain, "Sensor $sensor")
    steps = thresholds(found, influxdb, site, sensor=sensor)  # zone is "All": the sensor decides
    assert [value for value, _ in steps[1:]] == limits
    (series,) = ask(influxdb, concrete(target(found, "B"), site, sensor=sensor))
    assert [v for v in column(series, "max limit") if v is not None][-1] == limits[-1]


# --- the rest of the cold-chain board ---------------------------------------------------------


def test_humidity_battery_link_quality_and_excursions(
    influxdb: InfluxdProcess, site: Truth, cold_chain: Board
) -> None:
    humidity = panel(cold_chain, "Humidity per zone")
    answer = ask(influxdb, concrete(target(humidity, "B"), site))
    limits = {s["tags"]["zone"]: {v for v in column(s, "max limit") if v is not None} for s in answer}
    assert limits == {"cold-1": {85.0}, "ambient-1": {60.0}}  # the freezer has no humidity limit
    answer = ask(influxdb, concrete(target(humidity, "A"), site))
    assert {s["tags"]["zone"] for s in answer} == set(LIMITS)
    battery = ask(influxdb, concrete(target(panel(cold_chain, "Sensor battery"), "A"), site))
    last = {s["tags"]["sensor"]: [v for _, v in s["values"] if v is not None][-1] for s in battery}
    assert last == {sensor: values[-1] for sensor, values in site.battery.items()}
    links = ask(influxdb, concrete(target(panel(cold_chain, "Link quality"), "A"), site))
    lowest = {s["tags"]["sensor"]: min(v for _, v in s["values"] if v is not None) for s in links}
    assert lowest == {sensor: min(values) for sensor, values in site.linkquality.items()}
    (table,) = ask(influxdb, concrete(target(panel(cold_chain, "Excursions"), "A"), site))
    raised = {(row[1], row[2]) for row in table["values"] if row[3] == "raised"}
    # the compressor failure (cold-1) and the open freezer door (freezer-1) raised alerts
    assert {("cold-1", "max_temperature"), ("freezer-1", "max_temperature")} <= raised
    (annotation,) = [a for a in cold_chain["annotations"]["list"] if "query" in a]
    (rows,) = ask(influxdb, concrete(annotation["query"], site))
    assert len(rows["values"]) == len(table["values"])


def test_site_health_board(influxdb: InfluxdProcess, site: Truth) -> None:
    board = load_dashboards()["site-health"]

    def answer(title: str) -> list[dict[str, Any]]:
        return ask(influxdb, concrete(target(panel(board, title), "A"), site))

    def values(series: dict[str, Any]) -> list[Any]:
        return [v for _, v in series["values"] if v is not None]

    (online,) = answer("Edges online")
    assert (online["tags"], online["values"][0][1]) == ({"edge": "edge-1"}, 1)
    (lag,) = answer("Sync lag")
    # the first batch's oldest reading was two hours old when it arrived
    assert 7200 <= max(values(lag)) < 7800
    (depth,) = answer("Outbox depth")
    assert set(values(depth)) == {0}  # the cloud does not know the edge's outbox: it writes 0
    (connected,) = answer("Devices connected")
    assert connected["tags"] == {"edge": "edge-1", "device": "zigbee-coordinator"}
    assert connected["values"][0][1] == int(site.health[-1]["connected"])
    for title, counter in (
        ("Frame errors per interval", "frames_bad"),
        ("Reconnects per interval", "reconnects"),
    ):
        (series,) = answer(title)
        increases = values(series)
        assert min(increases) >= 0
        assert sum(increases) == site.health[-1][counter] - site.health[0][counter], title


def test_every_influxql_query_runs(influxdb: InfluxdProcess, site: Truth) -> None:
    """Nothing left out: every target, annotation and variable of every board answers with data."""
    for name, board in load_dashboards().items():
        found = [t["query"] for p in board["panels"] for t in p.get("targets", [])]
        found += [a["query"] for a in board["annotations"]["list"] if "query" in a]
        found += [v["query"] for v in board["templating"]["list"]]
        for query in found:
            assert ask(influxdb, concrete(query, site)), f"{name}: no series for {query}"


def test_shipped_json_is_what_the_panels_generate() -> None:
    from dashboards.boards import shipped_files

    root = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
    for path, text in shipped_files(root).items():
        assert path.read_text(encoding="utf-8") == text, f"{path}: run python -m dashboards.boards"
