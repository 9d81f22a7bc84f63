"""Every channel type wired from ``[cloud.coldchain]`` config, delivering one cloud alert to real
servers: aiosmtpd (e-mail), mosquitto (MQTT ``shelfsense/alerts/<site>``) and a local HTTP server
playing the DingTalk, WeCom and Feishu robots (signatures checked as the vendors do)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.controller import Controller
from conftest import batch, reading
from robot_server import Received, robot_server
from sqlalchemy import select

from cloud.admin import create_edge_async
from cloud.coldchain.tables import alert_deliveries
from cloud.main import create_app
from cloud.notify import dingtalk_sign, feishu_sign
from cloud.notify.notifier import notifier_of
from shelfsense.config import CloudSettings, ColdChainSettings, Settings, ZoneLimits
from shelfsense.services import MosquittoProcess, free_port

DING_SECRET = "SECd-0123456789abcdef"
FEISHU_SECRET = "fs-0123456789abcdef"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def robots() -> Iterator[tuple[str, Received]]:
    with robot_server() as robots:
        yield robots


def subscribe(broker: MosquittoProcess) -> tuple[mqtt.Client, queue.Queue[tuple[str, bytes]]]:
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe("shelfsense/alerts/#", qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, msg: received.put((msg.topic, bytes(msg.payload)))
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert ready.wait(10), "subscription not confirmed"
    return client, received


async def test_one_alert_reaches_every_channel_type(
    tmp_path: Path,
    smtp: tuple[Mailbox, int],
    robots: tuple[str, list[Any]],
    mosquitto_broker: MosquittoProcess,
) -> None:
    mailbox, smtp_port = smtp
    base, got = robots
    coldchain = ColdChainSettings.model_validate(
        {
            "channels": [
                {
                    "type": "dingtalk",
                    "name": "ding",
                    "url": f"{base}/robot/send?access_token=t",
                    "secret": DING_SECRET,
                },
                {"type": "wecom", "name": "wecom", "url": f"{base}/cgi-bin/webhook/send?key=k"},
                {
                    "type": "feishu",
                    "name": "lark",
                    "url": f"{base}/open-apis/bot/v2/hook/h",
                    "secret": FEISHU_SECRET,
                },
                {
                    "type": "smtp",
                    "name": "mail",
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "from_addr": "alerts@example.com",
                    "to": ["qa@example.com"],
                },
                {"type": "mqtt", "name": "bus", "url": mosquitto_broker.url},
            ],
            "allowed_destinations": ["127.0.0.1"],  # the test's robots, SMTP server and broker
        }
    )
    settings = Settings(
        cloud=CloudSettings(
            max_event_age_s=None, db_url=f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}", coldchain=coldchain
        ),
        zones=[ZoneLimits(id="cold-1", site_id="site-7", max_temp_c=8.0)],
    )
    subscriber, received = subscribe(mosquitto_broker)
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            token = (await create_edge_async(app.state.engine, "site-7", "edge-7"))[1]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
                response = await client.post(
                    "/api/v1/edges/edge-7/batches",
                    json=batch("edge-7", [(1, reading(0, 9.5))]),
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 200
            notifier = notifier_of(app)
            assert notifier is not None
            await asyncio.wait_for(notifier.wait_delivered(), 30)
            async with app.state.engine.connect() as conn:
                rows = (await conn.execute(select(alert_deliveries.c.channel, alert_deliveries.c.ok))).all()
        topic, payload = await asyncio.to_thread(received.get, True, 10)
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert sorted(rows) == [("bus", True), ("ding", True), ("lark", True), ("mail", True), ("wecom", True)]
    assert topic == "shelfsense/alerts/site-7"
    assert json.loads(payload)["state"] == "raised"
    [mail] = mailbox.messages
    assert "cold-1" in str(mail["Subject"]) and mail["To"] == "qa@example.com"
    by_path = {path: (query, body) for path, query, body in got}
    query, ding = by_path["/robot/send"]
    assert query["sign"][0] == unquote_plus(dingtalk_sign(DING_SECRET, query["timestamp"][0]))
    assert ding["msgtype"] == "markdown" and "cold-1" in ding["markdown"]["text"]
    _, wecom = by_path["/cgi-bin/webhook/send"]
    assert "cold-1" in json.dumps(wecom, ensure_ascii=False)
    _, lark = by_path["/open-apis/bot/v2/hook/h"]
    assert lark["sign"] == feishu_sign(FEISHU_SECRET, lark["timestamp"])
    assert abs(int(lark["timestamp"]) - time.time()) < 300
