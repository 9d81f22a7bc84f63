"""``shelfsense dashboards export|push``: provisioning files, import boards, Grafana's HTTP API
(a recording fake: no Grafana server here)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.boards import DATASOURCE_UID as UIDS
from dashboards.provision import DATASOURCE_UID, load_dashboards
from shelfsense.cli import main

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
        "import/cold-chain-flux.json",
        "import/site-health-flux.json",
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
    args = ["dashboards", "export", str(tmp_path), "--influx-url", "http://i:8086", "--database", "d"]
    assert main(args) == 0
    for name in load_dashboards():
        for suffix, wanted in (("", "DS_SHELFSENSE_INFLUXDB"), ("-flux", "DS_SHELFSENSE_INFLUXDB_FLUX")):
            variant = json.loads((tmp_path / "import" / f"{name}{suffix}.json").read_text(encoding="utf-8"))
            asked = {i["name"]: i for i in variant["__inputs"]}
            assert asked[wanted]["type"] == "datasource" and asked[wanted]["pluginId"] == "influxdb"
            assert ("VAR_BUCKET" in asked) == (suffix == "-flux")
            assert all(
                p.get("datasource", {}).get("uid", "${" + wanted + "}") == "${" + wanted + "}"
                for p in variant["panels"]
            )


def test_export_for_influxdb_2_provisions_a_flux_datasource_and_the_flux_boards(tmp_path: Path) -> None:
    args = [
        "dashboards",
        "export",
        str(tmp_path),
        "--influx-url",
        "http://i2:8086",
        "--org",
        "acme",
        "--bucket",
        "cold",
    ]
    assert main(args) == 0
    [ds] = yaml.safe_load((tmp_path / "provisioning/datasources/shelfsense.yaml").read_text())["datasources"]
    assert ds["uid"] == UIDS["flux"] and ds["isDefault"] is False
    assert ds["jsonData"] == {
        "version": "Flux",
        "organization": "acme",
        "defaultBucket": "cold",
        "timeInterval": "10s",
    }
    assert ds["secureJsonData"] == {"token": "${SHELFSENSE_INFLUX_TOKEN}"}  # no secret in the files
    board = json.loads((tmp_path / "dashboards/cold-chain.json").read_text())
    assert board["uid"] == "shelfsense-cold-chain-flux"
    bucket = next(v for v in board["templating"]["list"] if v["name"] == "bucket")
    assert bucket["query"] == "cold"
    assert all(p["datasource"]["uid"] == UIDS["flux"] for p in board["panels"] if p["type"] != "row")


def test_push_for_influxdb_2_needs_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["dashboards", "push", "--grafana-url", "http://127.0.0.1:9", "--token", "t", "--org", "acme"]
    )
    assert code == 2
    assert "--influx-token" in capsys.readouterr().err


def test_push_for_influxdb_2_uploads_the_flux_datasource_and_boards(fake_grafana: FakeGrafana) -> None:
    args = ["dashboards", "push", "--grafana-url", fake_grafana.url, "--token", "t", "--org", "acme"]
    assert main([*args, "--influx-token", "secret"]) == 0
    writes = [(p, b) for m, p, _, b in fake_grafana.calls if m != "GET"]
    assert writes[0][1]["uid"] == UIDS["flux"] and writes[0][1]["secureJsonData"] == {"token": "secret"}
    boards = [b["dashboard"]["uid"] for p, b in writes if p == "/api/dashboards/db"]
    assert boards == ["shelfsense-cold-chain-flux", "shelfsense-site-health-flux"]
