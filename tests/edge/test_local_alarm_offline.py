"""Local cold-chain alarms with the cloud unreachable: on MQTT within 1 s of the reading.

Issue 4: "an excursion raises a local alarm (published on a local MQTT topic and logged) within
1 s even when the cloud is unreachable". The cloud URL points at a port nobody listens on; the
probe simulator records the moment it first answers a poll with the warm value (the reading) and
a subscriber records the moment the alarm arrives from the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import EdgeAgent
from edge.outbox import Outbox
from shelfsense.config import EdgeSettings, ModbusProbeConfig, MqttConfig, Settings, ZoneLimits
from shelfsense.services import free_port
from simulators.modbus_probe import ModbusProbeSimulator

pytestmark = pytest.mark.integration

# Generous on a loaded 2-core test machine, and still the requirement: alarm within 1 s.
MAX_LATENCY_S = 1.0


class WarmingProbe:
    """4 degC until ``warm()``; records when it first served the excursion value."""

    def __init__(self) -> None:
        self.warm_from: float | None = None
        self.first_warm_read: float | None = None

    def warm(self) -> None:
        self.warm_from = time.monotonic()

    def __call__(self) -> tuple[float, float]:
        if self.warm_from is None:
            return 4.0, 60.0
        if self.first_warm_read is None:
            self.first_warm_read = time.monotonic()
        return 11.5, 60.0


class Subscriber:
    def __init__(self, broker: Any) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("shelfsense/+/alarms/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.received.append(
            (time.monotonic(), json.loads(m.payload))
        )
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_alarm_published_within_1s_with_the_cloud_down(mosquitto_broker: Any, tmp_path: Path) -> None:
    probe_values = WarmingProbe()
    probe = ModbusProbeSimulator({1: probe_values})
    sim = asyncio.create_task(probe.run())
    subscriber = Subscriber(mosquitto_broker)
    assert await asyncio.to_thread(subscriber.subscribed.wait, 10)
    db = tmp_path / "edge.db"
    settings = Settings(
        demo=True,
        edge=EdgeSettings(
            cloud_url=f"http://127.0.0.1:{free_port()}",  # nobody listens: the cloud is down
            db_path=db,
            sync_interval_s=0.2,
            modbus_probes=[
                ModbusProbeConfig(port=probe.port, sensor_id="probe-1", zone="cold-room", poll_interval_s=0.2)
            ],
            mqtt=MqttConfig(url=mosquitto_broker.url, client_id="edge-offline-alarm-test"),
        ),
        zones=[ZoneLimits(id="cold-room", max_temp_c=8.0)],
    )
    stop = asyncio.Event()
    agent = EdgeAgent(settings, cycle_s=0.2)
    agent_task = asyncio.create_task(agent.run(stop))
    try:
        async with asyncio.timeout(20):
            # Normal readings flow and the MQTT link is up before the room warms.
            while agent.mqtt is None or not agent.mqtt.connected:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.6)
            probe_values.warm()
            while not subscriber.received:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(agent_task, 20)
        subscriber.close()
        sim.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim
        probe.close()

    received_at, alarm = subscriber.received[0]
    assert (alarm["zone"], alarm["rule"], alarm["state"], alarm["value"]) == (
        "cold-room",
        "max_temperature",
        "raised",
        11.5,
    )
    assert probe_values.first_warm_read is not None
    latency = received_at - probe_values.first_warm_read
    assert 0 <= latency < MAX_LATENCY_S, f"alarm {latency:.3f} s after the reading"
    print(f"local alarm on MQTT {latency * 1000:.0f} ms after the probe reading (cloud down)")
    # The cloud never answered: the alarm waits in the outbox for it, nothing was lost.
    async with Outbox(db) as outbox:
        pending = await outbox.pending(10_000)
        stats = await outbox.stats()
    assert stats.acked_through == 0
    assert [e.event.kind for e in pending].count("local_alarm") == 1
