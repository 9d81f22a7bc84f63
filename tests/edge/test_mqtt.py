"""MQTT sensors against a real Mosquitto: at-least-once from broker to outbox."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest

from devices.errors import TransportError
from devices.mqtt_formats import encode_zigbee2mqtt
from edge.outbox import Outbox, OutboxWriter
from edge.supervisor import DeviceHealthState, supervise
from edge.transports.mqtt import MqttTransport
from shelfsense.config import MqttConfig, MqttSensorConfig
from shelfsense.contract import Event, SensorReading

pytestmark = pytest.mark.integration
TOPIC = "zigbee2mqtt/fridge-1"


def config_for(broker: Any, protocol: str = "mqttv5") -> MqttConfig:
    return MqttConfig(
        url=broker.url,
        protocol=protocol,  # type: ignore[arg-type]
        client_id=f"edge-test-{secrets.token_hex(4)}",  # a fresh persistent session per test
        sensors=[MqttSensorConfig(topic=TOPIC, format="zigbee2mqtt", sensor_id="fridge-1", zone="cold-room")],
    )


async def publish(broker: Any, payload: bytes, topic: str = TOPIC) -> None:
    await asyncio.to_thread(
        mqtt_publish.single, topic, payload, qos=1, hostname=broker.host, port=broker.port
    )


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[OutboxWriter]:
    async with Outbox(tmp_path / "edge.db") as box:
        writer = OutboxWriter(box)
        task = asyncio.create_task(writer.run())
        yield writer
        await writer.stop()
        await task


async def readings_in(outbox: Outbox) -> list[SensorReading]:
    return [p.event for p in await outbox.pending(100) if isinstance(p.event, SensorReading)]


async def test_qos1_reading_ends_up_in_outbox_and_malformed_is_dropped(
    mosquitto_broker: Any, writer: OutboxWriter
) -> None:
    health = DeviceHealthState("mqtt")
    transport = MqttTransport(config_for(mosquitto_broker), "edge-1", health, writer.submit)
    stop = asyncio.Event()
    task = asyncio.create_task(supervise("mqtt", transport.run, health, 0.05, 0.2, stop))
    try:
        await wait_until(lambda: asyncio.sleep(0, health.connected))
        await publish(mosquitto_broker, b"{not json")
        await publish(mosquitto_broker, encode_zigbee2mqtt(4.5, 61.0, battery=90))
        await wait_until(lambda: readings_in(writer.outbox))
    finally:
        stop.set()
        await task
    readings = await readings_in(writer.outbox)
    assert {(r.quantity, r.value) for r in readings} == {
        ("temperature", 4.5),
        ("humidity", 61.0),
        ("battery", 90),
    }
    assert {(r.sensor_id, r.zone) for r in readings} == {("fridge-1", "cold-room")}
    assert transport.counters["mqtt_malformed"] == 1
    assert transport.counters["mqtt_messages"] == 2
    assert (health.frames_ok, health.frames_bad) == (1, 1)


@pytest.mark.parametrize("protocol", ["mqttv5", "mqttv311"])
async def test_uncommitted_message_is_redelivered_after_unclean_disconnect(
    mosquitto_broker: Any, writer: OutboxWriter, protocol: str
) -> None:
    config = config_for(mosquitto_broker, protocol)
    received = asyncio.Event()

    async def stuck_sink(events: Sequence[Event]) -> None:
        received.set()
        await asyncio.Event().wait()  # the disk never answers: no commit, so no PUBACK

    first = MqttTransport(config, "edge-1", DeviceHealthState("mqtt"), stuck_sink)
    run1 = asyncio.create_task(first.run())
    await wait_until(lambda: asyncio.sleep(0, first.health.connected))
    await publish(mosquitto_broker, encode_zigbee2mqtt(9.25, 70.0))
    await asyncio.wait_for(received.wait(), 10)
    first.abort()  # power cut: TCP gone, no DISCONNECT, no PUBACK
    with pytest.raises(TransportError):
        await asyncio.wait_for(run1, 10)
    assert await readings_in(writer.outbox) == []

    # Same client id, persistent session: the broker redelivers the unacknowledged message.
    second = MqttTransport(config, "edge-1", DeviceHealthState("mqtt"), writer.submit)
    run2 = asyncio.create_task(second.run())
    try:
        await wait_until(lambda: readings_in(writer.outbox))
    finally:
        run2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run2
    assert {(r.quantity, r.value) for r in await readings_in(writer.outbox)} == {
        ("temperature", 9.25),
        ("humidity", 70.0),
    }


async def test_refused_connection_is_a_transport_error() -> None:
    config = MqttConfig(url="mqtt://127.0.0.1:9", sensors=[])
    transport = MqttTransport(config, "edge-1", DeviceHealthState("mqtt"), lambda e: asyncio.sleep(0))
    with pytest.raises(TransportError, match="cannot connect"):
        await transport.run()
