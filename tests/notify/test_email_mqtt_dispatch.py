"""E-mail to a real aiosmtpd server, MQTT to a real mosquitto, and the concurrent dispatcher."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.controller import Controller
from notify_http_server import Received, RecordingServer

from cloud.notify import (
    AlertDispatcher,
    AlertMessage,
    Channel,
    DeliveryLog,
    DeliveryResult,
    EmailChannel,
    MqttChannel,
    RetryPolicy,
    WebhookChannel,
)
from shelfsense.services import MosquittoProcess, free_port

FAST_RETRY = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05)


def alert(alert_id: str = "7", site: str = "site-1") -> AlertMessage:
    return AlertMessage(
        alert_id=alert_id,
        site_id=site,
        kind="gap",
        state="raised",
        title="No data for zone cold-2 for 15 minutes",
        text="Sensor probe-3 has been silent since 09:45.",
        at=datetime(2026, 5, 1, 10, 0, tzinfo=UTC),
        zone="cold-2",
    )


def wait_until(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --- SMTP ---------------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.replies: list[str] = []  # scripted replies to DATA, then 250

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


async def test_email_reaches_a_real_smtp_server(smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp_server
    channel = EmailChannel("127.0.0.1", port, "alerts@shelfsense.test", ["ops@example.com", "qa@example.com"])
    result = await channel.send(alert())
    assert result.ok and result.status == 250
    [(sender, recipients, message)] = mailbox.messages
    assert sender == "alerts@shelfsense.test"
    assert recipients == ["ops@example.com", "qa@example.com"]
    assert message["Subject"] == "[ShelfSense warning] No data for zone cold-2 for 15 minutes"
    assert message["X-ShelfSense-Alert"] == "7"
    assert "Zone: cold-2" in message.get_payload(decode=True).decode()  # type: ignore[union-attr]


async def test_email_in_chinese_for_a_chinese_channel(smtp_server: tuple[Mailbox, int]) -> None:
    from dataclasses import replace
    from email.header import decode_header, make_header

    mailbox, port = smtp_server
    channel = EmailChannel("127.0.0.1", port, "alerts@shelfsense.test", ["ops@example.com"])
    chinese = replace(alert(), language="zh-CN", title="冷库 cold-2 无数据")
    assert (await channel.send(chinese)).ok
    [(_, _, message)] = mailbox.messages
    assert str(make_header(decode_header(message["Subject"]))) == "[ShelfSense 警告] 冷库 cold-2 无数据"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "区域: cold-2" in body and "状态: 已触发" in body and "Zone" not in body


async def test_email_retries_a_temporary_failure_not_a_permanent_one(
    smtp_server: tuple[Mailbox, int],
) -> None:
    mailbox, port = smtp_server
    mailbox.replies = ["451 4.3.0 try again later"]
    channel = EmailChannel("127.0.0.1", port, "a@shelfsense.test", ["ops@example.com"], retry=FAST_RETRY)
    result = await channel.send(alert())
    assert result.ok and result.attempts == 2 and len(mailbox.messages) == 1
    mailbox.replies = ["554 5.7.1 rejected"]
    refused = await channel.send(alert())
    assert not refused.ok and refused.attempts == 1 and refused.status == 554


async def test_email_starttls_to_a_server_without_it_fails_clearly(
    smtp_server: tuple[Mailbox, int],
) -> None:
    _, port = smtp_server
    channel = EmailChannel("127.0.0.1", port, "a@x.test", ["b@x.test"], starttls=True, retry=FAST_RETRY)
    result = await channel.send(alert())
    assert not result.ok and result.attempts == 1
    assert "STARTTLS" in (result.error or "")


# --- MQTT ---------------------------------------------------------------------------------------


def subscribe(broker: MosquittoProcess, topic: str) -> tuple[mqtt.Client, queue.Queue[tuple[str, bytes]]]:
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, msg: received.put((msg.topic, bytes(msg.payload)))
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert ready.wait(10), "subscription not confirmed"
    return client, received


async def test_mqtt_alert_is_published_to_the_site_topic(mosquitto_broker: MosquittoProcess) -> None:
    subscriber, received = subscribe(mosquitto_broker, "shelfsense/alerts/#")
    channel = MqttChannel(mosquitto_broker.url)
    try:
        result = await channel.send(alert(site="site-9"))
        assert result.ok, result.error
        topic, payload = await asyncio.to_thread(received.get, True, 10)
    finally:
        await channel.aclose()
        subscriber.loop_stop()
        subscriber.disconnect()
    assert topic == "shelfsense/alerts/site-9"
    assert json.loads(payload)["alert_id"] == "7"


async def test_mqtt_without_a_broker_fails_after_its_attempts() -> None:
    channel = MqttChannel(f"mqtt://127.0.0.1:{free_port()}", timeout_s=0.3, retry=RetryPolicy(2, 0.01, 0.02))
    try:
        result = await channel.send(alert())
    finally:
        await channel.aclose()
    assert not result.ok and result.attempts == 2 and "unreachable" in (result.error or "")


# --- dispatcher ---------------------------------------------------------------------------------


class CrashingChannel:
    name = "buggy"

    async def send(self, alert: AlertMessage) -> DeliveryResult:
        raise RuntimeError("bug in a channel")


async def test_a_slow_and_a_failing_channel_do_not_delay_the_others(http_server: RecordingServer) -> None:
    release = threading.Event()

    def slow(_: Received) -> tuple[int, Any]:
        release.wait(20)  # a receiver that hangs until the test lets it go
        return 200, {}

    http_server.responders["/slow"] = slow
    log = DeliveryLog()
    dead = f"http://127.0.0.1:{free_port()}/dead"
    channels: list[Channel] = [
        WebhookChannel(f"{http_server.url}/slow", "k", name="slow", retry=RetryPolicy(1)),
        WebhookChannel(dead, "k", name="dead", retry=FAST_RETRY),
        CrashingChannel(),
        WebhookChannel(f"{http_server.url}/fast", "k", name="fast"),
    ]
    dispatcher = AlertDispatcher(channels, timeout_s=3.0, log=log)
    try:
        task = asyncio.create_task(dispatcher.dispatch(alert()))
        # the fast receiver gets the alert while the slow one is still hanging
        await asyncio.to_thread(wait_until, lambda: http_server.requests("/fast"))
        deadline = time.monotonic() + 10
        while not [r for r in log.records() if r.ok] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not task.done() and not release.is_set()
        assert [r.channel for r in log.records() if r.ok] == ["fast"]
        results = {r.channel: r for r in await task}
    finally:
        release.set()
        for channel in channels:
            if isinstance(channel, WebhookChannel):
                await channel.aclose()
    assert results["fast"].ok
    assert not results["slow"].ok and "gave up after 3 s" in (results["slow"].error or "")
    assert not results["dead"].ok and results["dead"].attempts == 3
    assert not results["buggy"].ok and "bug in a channel" in (results["buggy"].error or "")
    assert {r.channel for r in log.records()} == {"fast", "slow", "dead", "buggy"}


async def test_submitted_alerts_are_delivered_overflow_drops_oldest(
    http_server: RecordingServer,
) -> None:
    channel = WebhookChannel(f"{http_server.url}/hook", "k")
    dispatcher = AlertDispatcher([channel], max_queued=3)
    accepted = [dispatcher.submit(alert(alert_id=str(i))) for i in range(5)]
    assert accepted == [True, True, True, False, False] and dispatcher.dropped == 2
    runner = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.wait_for(dispatcher.drain(), 10)
    finally:
        runner.cancel()
        await channel.aclose()
    delivered = sorted(r.json()["alert_id"] for r in http_server.requests("/hook"))
    assert delivered == ["2", "3", "4"]
    assert all(r.ok for r in dispatcher.log.records())


async def test_mqtt_channel_recovers_after_the_broker_restarts(mosquitto_factory: Any) -> None:
    broker = mosquitto_factory()
    channel = MqttChannel(broker.url, timeout_s=2.0, retry=RetryPolicy(attempts=15, base_s=0.2, cap_s=1.0))
    try:
        assert (await channel.send(alert("before"))).ok
        await asyncio.to_thread(broker.stop)
        sending = asyncio.create_task(channel.send(alert("during")))
        await asyncio.sleep(1.0)
        assert not sending.done()  # no broker: the channel keeps retrying
        await asyncio.to_thread(broker.start)
        result = await asyncio.wait_for(sending, 40)
    finally:
        await channel.aclose()
    assert result.ok, result.attempt_errors
    assert result.attempts > 1
