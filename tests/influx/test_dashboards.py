"""Every Grafana panel, annotation and variable query runs against the real InfluxDB and returns data.

The data is what ShelfSense writes in production: simulator cold-room readings encoded as the
Zigbee2MQTT firmware sends them, decoded by our codec, excursions evaluated from those readings,
device and edge health, all written by :class:`cloud.influx.InfluxWriter`.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.coldchain.excursions import cold_chain_rules, evaluate
from cloud.influx import (
    WriterOptions,
    alert_point,
    device_health_point,
    edge_health_point,
    reading_point,
    v1_writer,
    zone_limits_point,
)
from dashboards.provision import DATASOURCE_UID, load_dashboards
from devices.mqtt_formats import encode_zigbee2mqtt
from devices.mqtt_registry import decode_payload
from shelfsense.cli import main
from shelfsense.contract import DeviceHealth, SensorReading
from shelfsense.services import InfluxdProcess
from simulators.scenario import DemoScenario

START = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
HOURS = 2
STEP_S = 60


async def write_site(server: InfluxdProcess, site: str) -> int:
    """Two hours of a simulated site; returns the number of excursion events written."""
    scenario = DemoScenario(cycle_s=HOURS * 3600)  # one compressor failure within the window
    writer = v1_writer(server.url, server.database, options=WriterOptions(flush_interval_s=0.05))
    writer.start()
    rules = cold_chain_rules(single_event_s=10 * 60, gap_s=None)
    events_written = 0
    for zone, sensor, offset in (("cold-1", "zb-1", 0.0), ("cold-2", "zb-2", 900.0)):
        series: list[tuple[datetime, float]] = []
        for step in range(HOURS * 3600 // STEP_S):
            at = START + timedelta(seconds=step * STEP_S)
            temperature, humidity = scenario.cold_room(step * STEP_S + offset)
            payload = encode_zigbee2mqtt(
                temperature, humidity, battery=90 - step // 30, linkquality=120 + step % 7
            )
            for m in decode_payload("zigbee2mqtt", f"zigbee2mqtt/{sensor}", payload):
                fields = {"quantity": m.quantity, "value": m.value, "unit": m.unit, "time": at, "zone": zone}
                reading = SensorReading.model_validate({"sensor_id": sensor, **fields})
                writer.write(reading_point(reading, site=site))
                if m.quantity == "temperature":
                    series.append((at, m.value))
            if step % 30 == 0:
                writer.write(
                    zone_limits_point(
                        site=site, zone=zone, at=at, min_temp_c=2, max_temp_c=8, max_humidity=90
                    )
                )
        for index, event in enumerate(evaluate(rules, series)):
            writer.write(
                alert_point(
                    site=site,
                    zone=zone,
                    rule=event.rule,
                    state=event.state,
                    at=event.at,
                    alert_id=f"{zone}-{index}",
                    value=event.value,
                    limit=event.limit,
                )
            )
            events_written += 1
    for step in range(HOURS * 60):
        at = START + timedelta(minutes=step)
        health = DeviceHealth(
            device_id="uhf-1",
            connected=step % 50 != 0,
            frames_ok=step * 100,
            frames_bad=step // 10,
            reconnects=step // 50,
            at=at,
        )
        writer.write(device_health_point(health, site=site, edge="edge-1"))
        writer.write(
            edge_health_point(
                site=site, edge="edge-1", at=at, online=True, sync_lag_s=1.0 + step % 5, outbox_depth=step % 3
            )
        )
    await writer.close()
    assert writer.stats.rejected == 0 and writer.stats.dropped_on_close == 0
    return events_written


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, InfluxQL) of every panel target, annotation and template variable."""
    found: list[tuple[str, str]] = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["query"]))
    for annotation in board["annotations"]["list"]:
        if "query" in annotation:
            found.append((f"annotation {annotation['name']!r}", annotation["query"]))
    for variable in board["templating"]["list"]:
        found.append((f"variable ${variable['name']}", variable["query"]))
    return found


def concrete(query: str, site: str) -> str:
    """Replace Grafana's macros and variables as Grafana would for 'All zones' of one site."""
    start_ms = int(START.timestamp() * 1000)
    end_ms = int((START + timedelta(hours=HOURS)).timestamp() * 1000)
    query = query.replace("$timeFilter", f"time >= {start_ms}ms AND time <= {end_ms}ms")
    query = query.replace("$__interval", "5m").replace("$site", re.escape(site))
    query = query.replace("$zone", ".*").replace("$sensor", ".*")
    assert not re.search(r"\$[A-Za-z_]", query), query  # only regex anchors are left
    return query


@pytest.fixture(scope="module")
def simulated_site(influxdb: InfluxdProcess) -> str:
    import asyncio

    site = f"site-{secrets.token_hex(3)}"
    events = asyncio.run(write_site(influxdb, site))
    assert events >= 2  # the scenario's compressor failure is an excursion: raised and cleared
    return site


@pytest.mark.parametrize("name", ["cold-chain", "site-health"])
def test_every_dashboard_query_returns_series(
    influxdb: InfluxdProcess, simulated_site: str, name: str
) -> None:
    board = load_dashboards()[name]
    found = queries(board)
    assert len(found) >= 6
    for where, query in found:
        answer = json.loads(influxdb.query(concrete(query, simulated_site), influxdb.database))["results"][0]
        assert "error" not in answer, f"{where}: {answer['error']}"
        series = answer.get("series", [])
        assert series and any(s["values"] for s in series), f"{where} returned no series: {query}"


def test_temperature_panel_shows_the_spike_not_an_average(
    influxdb: InfluxdProcess, simulated_site: str
) -> None:
    board = load_dashboards()["cold-chain"]
    query = board["panels"][0]["targets"][0]["query"]
    answer = json.loads(influxdb.query(concrete(query, simulated_site), influxdb.database))["results"][0]
    peaks = [row[1] for s in answer["series"] for row in s["values"] if row[1] is not None]
    raw = json.loads(
        influxdb.query(
            f"SELECT max(value) FROM temperature WHERE site = '{simulated_site}'", influxdb.database
        )
    )["results"][0]["series"][0]["values"][0][1]
    assert max(peaks) == raw > 8.0


def test_dashboards_are_well_formed() -> None:
    for board in load_dashboards().values():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert all(t["datasource"]["uid"] == DATASOURCE_UID and t["rawQuery"] for t in panel["targets"])
    assert {b["uid"] for b in load_dashboards().values()} == {
        "shelfsense-cold-chain",
        "shelfsense-site-health",
    }


# --- export and push ----------------------------------------------------------------------------


def test_export_writes_concrete_provisioning_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "dashboards",
            "export",
            "--json",
            str(tmp_path),
            "--influx-url",
            "http://influx:8086",
            "--database",
            "cc",
        ]
    )
    assert code == 0
    files = {Path(p).relative_to(tmp_path).as_posix() for p in json.loads(capsys.readouterr().out)["files"]}
    assert files == {
        "provisioning/datasources/shelfsense.yaml",
        "provisioning/dashboards/shelfsense.yaml",
        "dashboards/cold-chain.json",
        "dashboards/site-health.json",
        "import/cold-chain.json",
        "import/site-health.json",
    }
    datasource = yaml.safe_load((tmp_path / "provisioning/datasources/shelfsense.yaml").read_text())
    [ds] = datasource["datasources"]
    assert (ds["type"], ds["url"], ds["jsonData"]["dbName"], ds["uid"]) == (
        "influxdb",
        "http://influx:8086",
        "cc",
        DATASOURCE_UID,
    )
    provider = yaml.safe_load((tmp_path / "provisioning/dashboards/shelfsense.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == str((tmp_path / "dashboards").resolve())
    assert json.loads((tmp_path / "dashboards/cold-chain.json").read_text())["uid"] == "shelfsense-cold-chain"


class FakeGrafana:
    """A tiny HTTP server that answers the Grafana API calls grafana-client makes, and records them."""

    def __init__(self, existing_datasource: bool = False) -> None:
        self.calls: list[tuple[str, str, str, Any]] = []  # method, path, authorization, body
        self.existing_datasource = existing_datasource
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", 0) or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                recorder.calls.append((self.command, self.path, self.headers.get("Authorization", ""), body))
                status, payload = recorder.route(self.command, self.path)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, path: str) -> tuple[int, Any]:
        if method == "GET" and path == f"/api/datasources/uid/{DATASOURCE_UID}":
            return (
                (200, {"uid": DATASOURCE_UID, "id": 3})
                if self.existing_datasource
                else (404, {"message": "nf"})
            )
        if method == "GET" and path.startswith("/api/folders/"):
            return 404, {"message": "folder not found"}
        if method == "POST" and path == "/api/dashboards/db":
            return 200, {"status": "success", "uid": "x", "version": 1}
        if method in ("POST", "PUT"):
            return 200, {"message": "ok", "id": 1, "uid": "x"}
        return 404, {"message": "unexpected"}


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    grafana = FakeGrafana()
    yield grafana
    grafana.server.shutdown()
    grafana.server.server_close()


def test_push_uploads_datasource_folder_and_dashboards(
    fake_grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "dashboards",
            "push",
            "--json",
            "--grafana-url",
            fake_grafana.url,
            "--token",
            "glsa_T",
            "--influx-url",
            "http://influx:8086",
        ]
    )
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "datasource": "created",
        "folder": "shelfsense",
        "dashboards": ["shelfsense-cold-chain", "shelfsense-site-health"],
    }
    assert all(auth == "Bearer glsa_T" for _, _, auth, _ in fake_grafana.calls)
    writes = [(m, p, b) for m, p, _, b in fake_grafana.calls if m != "GET"]
    assert writes[0][:2] == ("POST", "/api/datasources")
    assert writes[0][2]["uid"] == DATASOURCE_UID and writes[0][2]["jsonData"]["dbName"] == "shelfsense"
    assert writes[1][:2] == ("POST", "/api/folders") and writes[1][2]["uid"] == "shelfsense"
    boards = [b for m, p, b in writes if p == "/api/dashboards/db"]
    assert [b["dashboard"]["uid"] for b in boards] == ["shelfsense-cold-chain", "shelfsense-site-health"]
    assert all(b["overwrite"] and b["folderUid"] == "shelfsense" for b in boards)


def test_push_updates_an_existing_datasource(capsys: pytest.CaptureFixture[str]) -> None:
    grafana = FakeGrafana(existing_datasource=True)
    try:
        assert main(["dashboards", "push", "--grafana-url", grafana.url, "--token", "t"]) == 0
    finally:
        grafana.server.shutdown()
        grafana.server.server_close()
    assert ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}") in [(m, p) for m, p, _, _ in grafana.calls]


def test_push_to_nothing_fails_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(["dashboards", "push", "--grafana-url", f"http://127.0.0.1:{port}", "--token", "t"])
    assert code == 1
    assert "Grafana datasource" in capsys.readouterr().err


def test_sensor_variable_lists_each_sensor_and_its_repeated_panel_shows_only_it(
    influxdb: InfluxdProcess, simulated_site: str
) -> None:
    board = load_dashboards()["cold-chain"]
    variable = next(v for v in board["templating"]["list"] if v["name"] == "sensor")
    answer = json.loads(influxdb.query(concrete(variable["query"], simulated_site), influxdb.database))
    sensors = {row[1] for s in answer["results"][0]["series"] for row in s["values"]}
    assert sensors == {"zb-1", "zb-2"}
    (panel,) = [p for p in board["panels"] if p.get("repeat") == "sensor"]
    for sensor in sorted(sensors):
        query = concrete(panel["targets"][0]["query"].replace("$sensor", re.escape(sensor)), simulated_site)
        series = json.loads(influxdb.query(query, influxdb.database))["results"][0]["series"]
        assert [s["tags"]["sensor"] for s in series] == [sensor]


def test_our_datasource_does_not_take_over_the_default() -> None:
    from dashboards.provision import datasource_model

    shipped = yaml.safe_load(
        (
            Path(__file__).resolve().parents[2]
            / "dashboards/grafana/provisioning/datasources/shelfsense.yaml"
        ).read_text(encoding="utf-8")
    )
    assert [d["isDefault"] for d in shipped["datasources"]] == [False]
    assert datasource_model("http://influx:8086", "shelfsense")["isDefault"] is False


def test_export_writes_boards_for_the_ui_import_page(tmp_path: Path) -> None:
    from dashboards.provision import IMPORT_INPUT

    args = ["dashboards", "export", str(tmp_path), "--influx-url", "http://i:8086", "--database", "d"]
    assert main(args) == 0
    for name, board in load_dashboards().items():
        variant = json.loads((tmp_path / "import" / f"{name}.json").read_text(encoding="utf-8"))
        (wanted,) = variant["__inputs"]
        assert (wanted["name"], wanted["type"]) == (IMPORT_INPUT, "datasource")
        assert wanted["pluginId"] == "influxdb"
        text = json.dumps(variant)
        assert DATASOURCE_UID not in text  # every reference asks for the chosen datasource
        assert text.count("${" + IMPORT_INPUT + "}") >= len(queries(board))
        # What Grafana's import does: put the chosen datasource's uid in; the board is ours again.
        imported = json.loads(text.replace("${" + IMPORT_INPUT + "}", DATASOURCE_UID))
        del imported["__inputs"], imported["__requires"]
        assert imported == {k: v for k, v in board.items() if k != "id"}
