"""The project's one MQTT client (shelfsense.mqtt_session) against a real Mosquitto: a publisher
with awaited PUBACKs, a subscriber session that acknowledges in order, and the receive window."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from devices.errors import TransportError
from devices.mqtt_packets import MQTT_V5, MQTT_V311, Publish
from shelfsense.mqtt_session import MqttPublisher, ReceiveWindow, SessionOptions, open_session


def _options(version: int = MQTT_V5, **overrides: Any) -> SessionOptions:
    return SessionOptions(f"session-test-{secrets.token_hex(4)}", version=version, **overrides)


@pytest.mark.parametrize("version", [MQTT_V5, MQTT_V311])
async def test_a_publisher_and_a_subscriber_session_talk_qos1(mosquitto_broker: Any, version: int) -> None:
    topic = f"session-test/{secrets.token_hex(4)}"
    subscriber, _ = await open_session(mosquitto_broker.url, _options(version, session_expiry_s=60))
    publisher = MqttPublisher(mosquitto_broker.url, _options(version, clean_start=True))
    granted: list[tuple[int, ...]] = []
    try:
        subscriber.subscribe(1, [(topic, 1)])
        async with asyncio.timeout(10):
            while not granted:  # SUBACK first, or the publish could precede the subscription
                subscriber.handle_control(await subscriber.read(), lambda s: granted.append(s.reason_codes))
            await publisher.publish(topic, b"one")  # returns once the broker's PUBACK came back
            await publisher.publish(topic, b"two")
            received: list[Publish] = []
            while len(received) < 2:
                received += [p for p in await subscriber.read() if isinstance(p, Publish)]
        subscriber.ack(received)
        await subscriber.flush()
    finally:
        await publisher.aclose()
        await subscriber.close()
    assert granted == [(1,)]
    assert [(m.topic, m.payload, m.qos) for m in received] == [(topic, b"one", 1), (topic, b"two", 1)]
    assert not publisher.connected


async def test_an_unreachable_broker_is_a_transport_error() -> None:
    publisher = MqttPublisher("mqtt://127.0.0.1:9", _options(connect_timeout_s=2.0))
    with pytest.raises(TransportError, match="cannot connect"):
        await publisher.publish("t", b"x")
    assert not publisher.connected


async def test_the_receive_window_holds_reads_until_acknowledged() -> None:
    window = ReceiveWindow(3)
    await window.take(2)  # below the window: returns at once
    blocked = asyncio.create_task(window.take(1))  # 3 in hand: wait for room
    for _ in range(10):  # let it run as far as it can
        await asyncio.sleep(0)
    assert not blocked.done()
    window.give(2)
    await asyncio.wait_for(blocked, 5)
    assert window.used == 1
