"""No secret reaches a log line, a delivery record or ``config check``: a full alert flow with every
channel type configured with recognisable secrets, delivering to real local receivers (robots, a
signed-webhook receiver, aiosmtpd with AUTH, mosquitto), one robot answering with an error that
echoes its URL, all logs captured at DEBUG, then grepped for every secret."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from conftest import batch, reading
from robot_server import robot_server
from sqlalchemy import select
from webhook_receiver import webhook_receiver

from cloud.admin import create_edge_async, create_user_async
from cloud.coldchain.tables import alert_deliveries
from cloud.main import create_app
from cloud.notify.notifier import notifier_of
from shelfsense.config import load_settings
from shelfsense.services import MosquittoProcess, free_port

SECRETS = {
    "ding_token": "dingTOKEN-4f1e2d3c",
    "ding_secret": "SECding-9a8b7c6d5e4f3a2b",
    "wecom_key": "wecomKEY-7e6d5c4b",
    "feishu_secret": "feishuSEC-1a2b3c4d5e6f",
    "hook_secret": "hookSEC-0f1e2d3c4b5a",
    "smtp_password": "smtpPASS-5c4b3a29",
    "mqtt_password": "mqttPASS-8d7c6b5a",
    "db_password": "dbPASS-3e2d1c0b",
    "echo_token": "echoTOKEN-6b5a4f3e",
}


@pytest.fixture
def robot() -> Iterator[str]:
    """DingTalk/WeCom/Feishu stand-in: answers ok, except ``/echo`` which fails quoting its URL."""
    with robot_server() as (base, _):
        yield base


class Mailbox:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


@pytest.fixture
def smtp_port() -> Iterator[int]:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=data.password.decode() == SECRETS["smtp_password"])

    port = free_port()
    controller = Controller(
        Mailbox(), hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    yield port
    controller.stop()


def config_toml(db_url: str, robot: str, hook_url: str, smtp_port: int, broker: MosquittoProcess) -> str:
    s = SECRETS
    parts = urlsplit(db_url)
    db_with_password = urlunsplit(
        parts._replace(
            netloc=f"{parts.username or 'postgres'}:{s['db_password']}@{parts.hostname}:{parts.port}"
        )
    )
    return f"""
[cloud]
db_url = "{db_with_password}"
max_event_age_s = 3153600000  # the flow replays events dated 2025

[cloud.coldchain]
allowed_destinations = ["127.0.0.1"]  # the test's own robot, webhook, SMTP and MQTT receivers

[[cloud.coldchain.channels]]
type = "dingtalk"
name = "ding"
url = "{robot}/robot/send?access_token={s["ding_token"]}"
secret = "{s["ding_secret"]}"

[[cloud.coldchain.channels]]
type = "wecom"
name = "wecom"
url = "{robot}/cgi-bin/webhook/send?key={s["wecom_key"]}"

[[cloud.coldchain.channels]]
type = "feishu"
name = "lark"
url = "{robot}/open-apis/bot/v2/hook/x"
secret = "{s["feishu_secret"]}"

[[cloud.coldchain.channels]]
type = "dingtalk"
name = "echo"
url = "{robot}/echo/send?access_token={s["echo_token"]}"

[[cloud.coldchain.channels]]
type = "webhook"
name = "hook"
url = "{hook_url}"
secret = "{s["hook_secret"]}"

[[cloud.coldchain.channels]]
type = "smtp"
name = "mail"
host = "127.0.0.1"
port = {smtp_port}
from_addr = "alerts@example.com"
to = ["qa@example.com"]
username = "alerts"
password = "{s["smtp_password"]}"

[[cloud.coldchain.channels]]
type = "mqtt"
name = "bus"
url = "mqtt://127.0.0.1:{broker.port}"
username = "alerts"
password = "{s["mqtt_password"]}"

[[zones]]
id = "cold-1"
site_id = "site-7"
max_temp_c = 8.0
"""


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.postgres
async def test_no_secret_in_logs_delivery_records_or_config_check(
    tmp_path: Path, pg_url: str, robot: str, smtp_port: int, mosquitto_broker: MosquittoProcess
) -> None:
    capture, root = Capture(), logging.getLogger()
    # Every logger at DEBUG, also those the CLI quiets by default (httpx, ...) if an earlier test in
    # this process ran it: the point is to see the most a log could carry.
    quieted = {
        n: lg.level for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)
    }
    for name in quieted:
        logging.getLogger(name).setLevel(logging.NOTSET)
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        with webhook_receiver(SECRETS["hook_secret"]) as receiver:
            path = tmp_path / "cloud.toml"
            path.write_text(config_toml(pg_url, robot, receiver.url("/hook"), smtp_port, mosquitto_broker))
            records, edge_token, user_token = await run_alert_flow(path)
            assert receiver.bodies("/hook"), "the signed webhook was not delivered"
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)
    by_channel = {r["channel"]: r for r in records}
    assert {name: r["ok"] for name, r in by_channel.items()} == {
        "ding": True,
        "wecom": True,
        "lark": True,
        "echo": False,
        "hook": True,
        "mail": True,
        "bus": True,
    }
    assert "bad request /echo/send?access_token=***" in by_channel["echo"]["error"]
    check = subprocess.run(
        [sys.executable, "-m", "shelfsense", "-v", "config", "check", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    logs = "\n".join(capture.lines)
    assert "HTTP Request: POST" in logs  # httpx's request log (with the URLs) was captured
    everything = {
        "logs": logs,
        "delivery records": json.dumps(records),
        "config check": check.stdout + check.stderr,
    }
    assert_no_secret(everything, edge_token, user_token)


def assert_no_secret(texts: dict[str, str], *tokens: str) -> None:
    for where, text in texts.items():
        for name, secret in {**SECRETS, **{f"token {i}": t for i, t in enumerate(tokens)}}.items():
            assert secret not in text, f"{name} found in {where}"


@pytest.mark.postgres
async def test_cloud_serve_process_at_debug_logs_no_secret(
    tmp_path: Path, pg_url: str, robot: str, smtp_port: int, mosquitto_broker: MosquittoProcess
) -> None:
    """The same flow against ``shelfsense -v cloud serve`` (a real process, its own logging set-up,
    uvicorn's access log); everything it writes is grepped."""
    with webhook_receiver(SECRETS["hook_secret"]) as receiver:
        path = tmp_path / "cloud.toml"
        path.write_text(config_toml(pg_url, robot, receiver.url("/hook"), smtp_port, mosquitto_broker))
        admin = [sys.executable, "-m", "shelfsense", "cloud", "admin"]
        made = [
            subprocess.run(
                [*admin, *args, "--config", str(path), "--json"], capture_output=True, text=True, timeout=60
            )
            for args in (["create-edge", "site-7", "edge-7"], ["create-user", "vera"])
        ]
        edge_token, user_token = (json.loads(m.stdout)["token"] for m in made)
        port = free_port()
        log_path = tmp_path / "cloud.log"
        with log_path.open("wb") as log_file:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shelfsense",
                    "-v",
                    "cloud",
                    "serve",
                    "--config",
                    str(path),
                    "--port",
                    str(port),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                shown = await deliveries_over_http(f"http://127.0.0.1:{port}", edge_token, user_token)
            finally:
                server.terminate()
                server.wait(30)
    logs = log_path.read_text()
    assert "HTTP Request: POST" in logs and "/api/v1/edges/edge-7/batches" in logs  # httpx and access log
    assert sorted(d["channel"] for d in shown) == ["bus", "ding", "echo", "hook", "lark", "mail", "wecom"]
    assert_no_secret(
        {"cloud serve output": logs, "delivery records": json.dumps(shown)}, edge_token, user_token
    )


async def deliveries_over_http(base: str, edge_token: str, user_token: str) -> list[dict[str, Any]]:
    """Wait for the server, send one reading above the limit, wait until every channel reported."""
    user = {"Authorization": f"Bearer {user_token}"}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    break
            assert asyncio.get_running_loop().time() < deadline, "cloud serve did not become ready"
            await asyncio.sleep(0.2)
        response = await client.post(
            "/api/v1/edges/edge-7/batches",
            json=batch("edge-7", [(1, reading(0, 9.5))]),
            headers={"Authorization": f"Bearer {edge_token}"},
        )
        assert response.status_code == 200, response.text
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            alerts = (await client.get("/api/v1/alerts", headers=user)).json()["items"]
            if alerts:
                shown = (
                    await client.get(f"/api/v1/alerts/{alerts[0]['id']}/deliveries", headers=user)
                ).json()
                if len(shown) >= 7:
                    return list(shown)
            assert asyncio.get_running_loop().time() < deadline, "deliveries did not complete"
            await asyncio.sleep(0.2)


async def run_alert_flow(path: Path) -> tuple[list[dict[str, Any]], str, str]:
    """One reading above the limit through the real ingest API; waits for every delivery."""
    settings = load_settings(path)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        edge_token = (await create_edge_async(engine, "site-7", "edge-7"))[1]
        user_token = await create_user_async(engine, "vera", "admin")  # admins see delivery errors
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            response = await client.post(
                "/api/v1/edges/edge-7/batches",
                json=batch("edge-7", [(1, reading(0, 9.5))]),
                headers={"Authorization": f"Bearer {edge_token}"},
            )
            assert response.status_code == 200, response.text
            notifier = notifier_of(app)
            assert notifier is not None
            await asyncio.wait_for(notifier.wait_delivered(), 60)
            alerts = await client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {user_token}"})
            alert_id = alerts.json()["items"][0]["id"]
            shown = await client.get(
                f"/api/v1/alerts/{alert_id}/deliveries", headers={"Authorization": f"Bearer {user_token}"}
            )
            assert shown.status_code == 200
        async with engine.connect() as conn:
            rows = (await conn.execute(select(alert_deliveries))).mappings().all()
    return (
        [{k: str(v) if v is not None else None for k, v in r.items()} for r in rows] + shown.json(),
        edge_token,
        user_token,
    )
