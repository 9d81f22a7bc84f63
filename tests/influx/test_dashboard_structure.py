"""The boards' JSON, both flavours (InfluxQL for 1.x, Flux for 2.x), provisioned and for import.

No Grafana and no InfluxDB 2.x run here (Debian ships InfluxDB 1.6.7 only, and there is no Docker
daemon): the Flux queries are checked as text against the schema the cloud's 2.x writer really
sends (captured from :func:`cloud.influx.v2_writer` by a recording HTTP server), and against the
InfluxQL query generated from the same panel definition.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloud.influx import (
    WriterOptions,
    alert_point,
    device_health_point,
    edge_health_point,
    reading_limits,
    reading_point,
    v2_writer,
    zone_limits_point,
)
from dashboards.boards import DATASOURCE_UID, FLAVORS, IMPORT_INPUT, all_boards, build
from dashboards.panels import BOARDS
from dashboards.spec import SCHEMA
from shelfsense.config import ZoneLimits
from shelfsense.contract import DeviceHealth, SensorReading

Board = dict[str, Any]
VARIANTS = [(flavor, for_import) for flavor in FLAVORS for for_import in (False, True)]
BUILTINS = {"timeFilter", "__interval", "__to", "__from", "__all"}
REFERENCE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)")


def references(text: str) -> set[str]:
    return {a or b for a, b in REFERENCE.findall(text)}


def queries(board: Board) -> list[tuple[str, str]]:
    """(where, query) of every panel target, annotation and variable."""
    found = [
        (f"{p['title']} {t['refId']}", t["query"]) for p in board["panels"] for t in p.get("targets", [])
    ]
    for annotation in board["annotations"]["list"]:
        query = annotation.get("query") or annotation.get("target", {}).get("query")
        if query:
            found.append((f"annotation {annotation['name']}", query))
    found += [(f"${v['name']}", v["query"]) for v in board["templating"]["list"] if v["type"] == "query"]
    return found


@pytest.mark.parametrize(("flavor", "for_import"), VARIANTS)
def test_every_reference_resolves(flavor: str, for_import: bool) -> None:
    for name, board in all_boards(flavor, for_import=for_import).items():  # type: ignore[arg-type]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        defined = {v["name"] for v in board["templating"]["list"]} | BUILTINS
        inputs = {i["name"] for i in board.get("__inputs", [])}
        expected = {
            "type": "influxdb",
            "uid": "${" + IMPORT_INPUT[flavor] + "}" if for_import else DATASOURCE_UID[flavor],
        }
        for panel in board["panels"]:
            assert references(panel["title"]) <= defined, panel["title"]
            assert "repeat" not in panel or panel["repeat"] in defined
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == expected, panel["title"]
            assert all(t["datasource"] == expected for t in panel["targets"]), panel["title"]
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"] == expected
        for where, query in queries(board):
            assert references(query) <= defined, f"{name} {where}: {references(query) - defined}"
        # an import board asks for every ${...} it leaves to Grafana's import page, and only those
        leftovers = set(re.findall(r"\$\{((?:DS|VAR)_\w+)\}", str(board)))
        assert leftovers == inputs
        assert DATASOURCE_UID[flavor] not in str(board) if for_import else not inputs


def limits_columns(query: str) -> list[str]:
    """The step columns a limits query returns, in order (InfluxQL aliases or Flux _field names)."""
    return re.findall(r'AS "(step\d_\w+)"', query) or re.findall(r'_field: "(step\d_\w+)"', query)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_temperature_thresholds_come_from_the_limits_query(flavor: str) -> None:
    board = all_boards(flavor)["cold-chain"]  # type: ignore[arg-type]
    limited = [p for p in board["panels"] if p.get("transformations")]
    assert {p["title"].split(" ")[0] for p in limited} == {"Temperature", "Now", "Sensor"}
    for panel in board["panels"]:
        if panel.get("fieldConfig", {}).get("defaults", {}).get("unit") != "celsius":
            continue
        (transform,) = panel["transformations"]
        assert transform["id"] == "configFromData"
        options = transform["options"]
        targets = {t["refId"]: t["query"] for t in panel["targets"]}
        assert options["applyTo"] == {"id": "byFrameRefID", "options": "A"} and "A" in targets
        names = [m["fieldName"] for m in options["mappings"]]
        assert limits_columns(targets[options["configRefId"]]) == names  # every step is a column
        assert all(m["handlerKey"] == "threshold1" for m in options["mappings"])
        # no fixed band any more: only the base colour is static
        assert [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None]
        assert panel.get("repeat") in ("sensor", None)  # per sensor, or inside the per-zone row


def test_zone_panels_repeat_per_zone_and_sensor_panels_per_sensor() -> None:
    panels = all_boards()["cold-chain"]["panels"]
    rows = [p for p in panels if p["type"] == "row"]
    assert rows[0]["repeat"] == "zone" and rows[0]["title"] == "Zone $zone"
    zone_row = [p for p in panels if rows[0]["gridPos"]["y"] < p["gridPos"]["y"] < rows[1]["gridPos"]["y"]]
    assert {p["title"].split(" ")[0] for p in zone_row} == {"Temperature", "Now"}
    assert all("$zone" in p["title"] for p in zone_row)
    (per_sensor,) = [p for p in panels if p.get("repeat") == "sensor"]
    assert "$sensor" in per_sensor["title"] and per_sensor["maxPerRow"] == 3


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_influxql_and_flux_boards_are_the_same_board(name: str) -> None:
    influxql, flux = (all_boards(f)[name] for f in FLAVORS)
    keep = ("id", "type", "title", "gridPos", "repeat", "transformations", "fieldConfig", "options")
    for a, b in zip(influxql["panels"], flux["panels"], strict=True):
        assert {k: a.get(k) for k in keep} == {k: b.get(k) for k in keep}
        assert [t["refId"] for t in a.get("targets", [])] == [t["refId"] for t in b.get("targets", [])]
    variables = [v["name"] for v in flux["templating"]["list"]]
    assert variables == ["bucket", *(v["name"] for v in influxql["templating"]["list"])]
    assert flux["uid"] == influxql["uid"] + "-flux"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_import_board_becomes_the_provisioned_one(flavor: str) -> None:
    for name, board in BOARDS.items():
        variant = build(board, flavor, for_import=True)  # type: ignore[arg-type]
        required = {(r["type"], r["id"]) for r in variant["__requires"]}
        used = {("panel", p["type"]) for p in variant["panels"] if p["type"] != "row"}
        assert {("grafana", "grafana"), ("datasource", "influxdb")} | used == required
        # What Grafana's import does: substitute the chosen datasource (and bucket).
        text = json.dumps(variant).replace("${" + IMPORT_INPUT[flavor] + "}", DATASOURCE_UID[flavor])
        text = text.replace("${VAR_BUCKET}", "shelfsense")
        imported = json.loads(text)
        del imported["__inputs"], imported["__requires"]
        assert imported == build(board, flavor), name  # type: ignore[arg-type]


# --- Flux against what the 2.x writer sends ---------------------------------------------------


@pytest.fixture(scope="module")
def v2_schema() -> Iterator[dict[str, tuple[set[str], set[str]]]]:
    """measurement -> (tags, fields) of the line protocol the cloud's 2.x writer POSTs."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    asyncio.run(_write_everything(f"http://127.0.0.1:{server.server_address[1]}"))
    server.shutdown()
    server.server_close()
    schema: dict[str, tuple[set[str], set[str]]] = {}
    for line in b"\n".join(bodies).decode().splitlines():
        key, rest = re.split(r"(?<!\\) ", line, maxsplit=1)
        fields = rest.rsplit(" ", 1)[0]  # then the timestamp
        measurement, *tags = key.split(",")
        known = schema.setdefault(measurement, (set(), set()))
        known[0].update(t.split("=")[0] for t in tags)
        known[1].update(re.findall(r'(?:^|,)(\w+)=(?:"[^"]*"|[^,]*)', fields))
    yield schema


async def _write_everything(url: str) -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    writer = v2_writer(
        url, org="acme", bucket="shelfsense", token="t", options=WriterOptions(flush_interval_s=0.05)
    )
    writer.start()
    limits = ZoneLimits(id="cold-1", min_temp_c=2, max_temp_c=8, max_humidity=85)
    for quantity, unit in (
        ("temperature", "degC"),
        ("humidity", "%RH"),
        ("battery", "%"),
        ("linkquality", "lqi"),
    ):
        reading = SensorReading(
            sensor_id="zb-1", quantity=quantity, value=1.0, unit=unit, time=at, zone="cold-1", flags=["stale"]
        )
        low, high = reading_limits(quantity, limits)
        writer.write(reading_point(reading, site="s", limit_min=low, limit_max=high))
    writer.write(
        alert_point(
            site="s",
            zone="cold-1",
            rule="max_temperature",
            state="raised",
            at=at,
            alert_id="1",
            value=9,
            limit=8,
        ),
        device_health_point(
            DeviceHealth(device_id="d", connected=True, frames_ok=1, frames_bad=0, reconnects=0, at=at),
            site="s",
            edge="e",
        ),
        edge_health_point(site="s", edge="e", at=at, online=True, sync_lag_s=1.0, outbox_depth=0),
        zone_limits_point(site="s", zone="cold-1", at=at, min_temp_c=2, max_temp_c=8, max_humidity=85),
    )
    await writer.close()
    assert writer.stats.written == 8


def test_the_boards_schema_is_what_the_writer_sends(v2_schema: dict[str, tuple[set[str], set[str]]]) -> None:
    assert set(v2_schema) == set(SCHEMA) - {"pressure"}  # no pressure sensor in the sample
    for measurement, (tags, fields) in v2_schema.items():
        assert tags == SCHEMA[measurement][0], measurement
        assert fields <= SCHEMA[measurement][1], measurement  # humidity has no lower limit
    assert v2_schema["temperature"][1] == SCHEMA["temperature"][1]


def flux_names(query: str) -> tuple[set[str], set[str], set[str]]:
    """Measurements, fields and columns (tags or pivoted fields) a Flux query names."""
    measurements = set(re.findall(r'r\._measurement == "(\w+)"', query))
    fields = set(re.findall(r'r\._field == "(\w+)"', query))
    columns = set(re.findall(r"r\.([a-z]\w*) =~", query))
    for listed in re.findall(r"(?:group|keep)\(columns: \[([^\]]*)\]\)", query):
        columns |= set(re.findall(r'"(\w+)"', listed))
    columns |= set(re.findall(r'tag: "(\w+)"', query))
    return measurements, fields, columns - {"_time", "_field", "_value", "_measurement"}


def influxql_names(query: str) -> tuple[set[str], set[str], set[str]]:
    measurements = set(re.findall(r'FROM "(\w+)"', query))
    fields = set(re.findall(r'\w\("(\w+)"\)', query)) | set(
        re.findall(r'SELECT ((?:"\w+"(?:, )?)+) FROM', query)
    )
    fields = {f for group in fields for f in re.findall(r"\w+", group)}
    tags = set(re.findall(r'"(\w+)" =~', query)) | set(re.findall(r'KEY = "(\w+)"', query))
    tags |= {t for by in re.findall(r"GROUP BY (.*?)(?: fill|$)", query) for t in re.findall(r'"(\w+)"', by)}
    return measurements, fields, tags


def test_flux_queries_name_only_what_the_writer_sends(
    v2_schema: dict[str, tuple[set[str], set[str]]],
) -> None:
    for name, board in all_boards("flux").items():
        for where, query in queries(board):
            measurements, fields, columns = flux_names(query)
            (measurement,) = measurements
            tags, known_fields = v2_schema[measurement]
            assert fields <= known_fields, f"{name} {where}: {fields - known_fields}"
            assert columns <= tags | known_fields, f"{name} {where}: {columns - tags - known_fields}"
            if "schema.tagValues" not in query:
                assert query.startswith('data = from(bucket: "${bucket}")\n'), where
                assert "range(start: v.timeRangeStart, stop: v.timeRangeStop)" in query
            assert "aggregateWindow" not in query or "every: v.windowPeriod" in query
            for opening, closing in ("()", "[]", "{}"):
                assert query.count(opening) == query.count(closing), f"{where}: unbalanced {opening}"


def test_flux_and_influxql_ask_for_the_same_things() -> None:
    """Generated from one definition: same measurement, fields and tags per query."""
    for name in BOARDS:
        pairs = zip(queries(all_boards("influxql")[name]), queries(all_boards("flux")[name]), strict=True)
        for (where, influxql), (_, flux) in pairs:
            m1, f1, t1 = influxql_names(influxql)
            m2, f2, c2 = flux_names(flux)
            assert m1 == m2, where
            assert f1 - t1 <= f2 | c2 and f2 <= f1, f"{where}: {f1} vs {f2}"
            assert t1 <= c2, f"{where}: {t1} vs {c2}"
            assert functions(influxql) == functions(flux), where
            assert grouped(influxql) == grouped(flux), where


def functions(query: str) -> set[str]:
    """Aggregations and selectors (InfluxQL ``max("f")``, Flux ``fn: max`` or ``|> last()``)."""
    found = set(re.findall(r'\b(max|min|last)\("', query)) | set(re.findall(r"fn: (max|min|last)\b", query))
    return found | set(re.findall(r"\|> (last)\(\)", query))


def grouped(query: str) -> set[str]:
    """The tags a panel's series are split by (InfluxQL GROUP BY, Flux's final group())."""
    if "GROUP BY" in query or query.startswith(("SELECT", "SHOW")):
        by = re.findall(r"GROUP BY (.*?)(?: fill|$)", query)
        return {t for b in by for t in re.findall(r'"(\w+)"', b)}
    final = re.findall(r"group\(columns: \[([^\]]*)\]\)\s*$", query)
    return set(re.findall(r'"(\w+)"', final[0])) - {"_field"} if final else set()
