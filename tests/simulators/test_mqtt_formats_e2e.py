"""Every firmware format end to end: simulator -> real Mosquitto -> the edge's MQTT transport -> outbox."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.clock import EdgeClock
from edge.outbox import Outbox, OutboxWriter
from edge.supervisor import DeviceHealthState, supervise
from edge.transports.mqtt import MqttTransport
from edge.transports.protocol import Committed, Emission, Events
from shelfsense.config import MqttConfig, MqttSensorConfig
from shelfsense.contract import SensorReading
from simulators.mqtt_sensors import MqttSensorSimulator, SimulatedMqttSensor

pytestmark = pytest.mark.integration

RUUVI_TAG = "CB:B8:33:4C:88:4F"
# (topic the simulator publishes, sensor-map topic, format, sensor id, expected quantities)
SENSORS: list[tuple[str, str, str, str, dict[str, float]]] = [
    ("shellyhtg3-84fce63ad204/events/rpc", "shellyhtg3-84fce63ad204/events/rpc", "shelly", "shelly-1",
     {"temperature": 4.2, "humidity": 61.5, "battery": 80}),
    ("coldroom-esp/sensor/probe_a/state", "coldroom-esp/sensor/probe_a/state", "esphome", "esp-a",
     {"temperature": 4.2}),
    (f"ruuvi/C8:25:2D:8E:9C:2C/{RUUVI_TAG}", f"ruuvi/+/{RUUVI_TAG}", "ruuvi", "ruuvi-1",
     {"temperature": 4.2, "humidity": 61.5, "pressure": 1013.25, "battery": 80}),
    ("shelfsense/site-1/sensors/probe-7", "shelfsense/+/sensors/probe-7", "shelfsense", "probe-7",
     {"temperature": 4.2, "humidity": 61.5, "battery": 80}),
]  # fmt: skip


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[OutboxWriter]:
    async with Outbox(tmp_path / "edge.db") as box:
        writer = OutboxWriter(box)
        task = asyncio.create_task(writer.run())
        yield writer
        await writer.stop()
        await task


async def test_new_formats_reach_the_outbox(mosquitto_broker: Any, writer: OutboxWriter) -> None:
    config = MqttConfig(
        url=mosquitto_broker.url,
        client_id=f"edge-formats-{secrets.token_hex(4)}",
        sensors=[
            MqttSensorConfig(
                topic=sub,
                format=fmt,  # type: ignore[arg-type]
                sensor_id=sid,
                zone="cold-room",
                # The ESPHome object id ("probe_a") does not say what it measures: the map does.
                quantity="temperature" if fmt == "esphome" else None,
            )
            for _, sub, fmt, sid, _ in SENSORS
        ],
    )
    health = DeviceHealthState("mqtt")

    def emit(emission: Emission) -> asyncio.Future[Committed]:
        assert isinstance(emission, Events) and emission.durable
        return asyncio.ensure_future(writer.submit(emission.events, extras=emission.extras))

    transport = MqttTransport(config, "edge-1", health, emit, clock=EdgeClock())
    simulated = [
        SimulatedMqttSensor(topic, fmt, lambda: (4.2, 61.5), battery=80, quantity="temperature")
        for topic, _, fmt, _, _ in SENSORS
    ]
    simulator = MqttSensorSimulator(mosquitto_broker.url, simulated, interval_s=0.2)
    expected = {(sid, q, v) for _, _, _, sid, quantities in SENSORS for q, v in quantities.items()}

    async def got() -> set[tuple[str, str, float]]:
        pending = await writer.outbox.pending(1000)
        return {
            (p.event.sensor_id, p.event.quantity, p.event.value)
            for p in pending
            if isinstance(p.event, SensorReading)
        }

    stop = asyncio.Event()
    edge = asyncio.create_task(supervise("mqtt", transport.run, health, 0.05, 0.2, stop))
    sim = asyncio.create_task(simulator.run())
    try:
        async with asyncio.timeout(20):
            while not expected <= await got():
                await asyncio.sleep(0.05)
    finally:
        sim.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim
        stop.set()
        await edge
    assert await got() == expected  # nothing extra, e.g. no split channels, no unit mix-ups
    assert health.frames_bad == 0
    assert transport.counters["mqtt_unknown_topic"] == 0
