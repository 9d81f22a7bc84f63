"""Simulated MQTT sensors against a real Mosquitto, read back by an independent paho subscriber."""

from __future__ import annotations

import asyncio
import queue
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from simtest_helpers import running

from devices.errors import DecodeError
from devices.mqtt_registry import decode_payload
from shelfsense.services import MosquittoProcess
from simulators.mqtt_sensors import MqttSensorSimulator, SimulatedMqttSensor, parse_broker_url

pytestmark = pytest.mark.integration

Message = tuple[str, bytes]


@contextmanager
def subscriber(host: str, port: int, topic: str) -> Iterator[queue.Queue[Message]]:
    """A plain paho subscriber; messages land in a thread-safe queue."""
    inbox: queue.Queue[Message] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex}")

    def on_connect(c: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
        c.subscribe(topic, qos=1)

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, reasons: Any, p: Any) -> None:
        subscribed.put(True)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = lambda c, u, m: inbox.put((m.topic, bytes(m.payload)))
    client.connect(host, port)
    client.loop_start()
    try:
        subscribed.get(timeout=5)
        yield inbox
    finally:
        client.disconnect()
        client.loop_stop()


async def receive(inbox: queue.Queue[Message], n: int, timeout: float = 5.0) -> list[Message]:
    got: list[Message] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < n:
        assert loop.time() < deadline, f"only {len(got)} of {n} messages arrived"
        try:
            got.append(inbox.get_nowait())
        except queue.Empty:
            await asyncio.sleep(0.02)
    return got


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def quantities(fmt: str, topic: str, payload: bytes) -> dict[str, float]:
    return {m.quantity: m.value for m in decode_payload(fmt, topic, payload)}


def test_broker_url_parsing() -> None:
    plain = parse_broker_url("mqtt://127.0.0.1:1884")
    assert (plain.host, plain.port, plain.tls) == ("127.0.0.1", 1884, False)
    secure = parse_broker_url("mqtts://user:p%40ss@broker.example")
    assert (secure.port, secure.tls, secure.username, secure.password) == (8883, True, "user", "p@ss")
    with pytest.raises(ValueError):
        parse_broker_url("http://x")
    with pytest.raises(ValueError):
        SimulatedMqttSensor("t", "esperanto", lambda: (1.0, 2.0))


async def test_payloads_arrive_and_decode(mosquitto_broker: MosquittoProcess) -> None:
    sensors = [
        SimulatedMqttSensor("zigbee2mqtt/cold_room_1", "zigbee2mqtt", lambda: (4.25, 61.5), 87, 120),
        SimulatedMqttSensor("tele/freezer_probe/SENSOR", "tasmota", lambda: (-18.0, 40.0), temp_unit="F"),
    ]
    sim = MqttSensorSimulator(mosquitto_broker.url, sensors, interval_s=0.1)
    with subscriber(mosquitto_broker.host, mosquitto_broker.port, "#") as inbox:
        async with running(sim):
            messages = await receive(inbox, 6)
            await until(lambda: sim.published >= 6)
    by_topic: dict[str, bytes] = {}
    for topic, payload in messages:
        by_topic[topic] = payload
    assert quantities("zigbee2mqtt", "zigbee2mqtt/cold_room_1", by_topic["zigbee2mqtt/cold_room_1"]) == {
        "temperature": 4.25,
        "humidity": 61.5,
        "battery": 87,
        "linkquality": 120,
    }
    tasmota = quantities("tasmota", "tele/freezer_probe/SENSOR", by_topic["tele/freezer_probe/SENSOR"])
    assert tasmota["temperature"] == pytest.approx(-18.0, abs=0.06)  # sent as -0.4 F, converted back
    assert tasmota["humidity"] == 40.0
    assert not sim.connected  # closed by running()


async def test_malformed_payloads_are_published_then_good_ones_again(
    mosquitto_broker: MosquittoProcess,
) -> None:
    topic = f"zigbee2mqtt/{uuid.uuid4().hex}"
    sim = MqttSensorSimulator(
        mosquitto_broker.url, [SimulatedMqttSensor(topic, "zigbee2mqtt", lambda: (3.9, 58.0))], 0.05
    )
    with subscriber(mosquitto_broker.host, mosquitto_broker.port, topic) as inbox:
        async with running(sim):
            await until(lambda: sim.connected)
            sim.set_malformed_next(3)
            messages = await receive(inbox, 6)
    bad = good = 0
    for _, payload in messages:
        try:
            assert quantities("zigbee2mqtt", topic, payload) == {"temperature": 3.9, "humidity": 58.0}
            good += 1
        except DecodeError:
            bad += 1
    assert bad == 3 and good >= 3
    assert sim.malformed_sent == 3


async def test_reconnects_after_broker_restart(
    mosquitto_factory: Callable[..., MosquittoProcess],
) -> None:
    broker = mosquitto_factory()
    topic = "zigbee2mqtt/restart_probe"
    sensor = SimulatedMqttSensor(topic, "zigbee2mqtt", lambda: (5.0, 60.0))
    sim = MqttSensorSimulator(broker.url, [sensor], 0.1)
    async with running(sim):
        with subscriber(broker.host, broker.port, topic) as inbox:
            await receive(inbox, 2)
        broker.stop()
        await until(lambda: not sim.connected, timeout=5)
        skipped = sim.skipped_offline
        await asyncio.sleep(0.3)
        assert sim.skipped_offline > skipped  # offline: nothing published, counted
        broker.start()
        await until(lambda: sim.connected, timeout=15)  # paho's own reconnect, no help from us
        assert sim.connects == 2
        with subscriber(broker.host, broker.port, topic) as inbox:
            (_, payload), *_ = await receive(inbox, 1)
            assert quantities("zigbee2mqtt", topic, payload)["temperature"] == 5.0
