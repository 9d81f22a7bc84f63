"""MQTT sensors against a real Mosquitto: at-least-once from broker to outbox."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import paho.mqtt.publish as mqtt_publish
import pytest
from pydantic import SecretStr
from serial_helpers import CLOCK, durable

from devices.errors import TransportError
from devices.mqtt_formats import encode_zigbee2mqtt
from devices.mqtt_packets import encode_publish
from edge.outbox import Outbox, OutboxWriter
from edge.rejects import KEEP_BYTES, KEEP_LAST
from edge.status import read_status
from edge.supervisor import DeviceHealthState, supervise
from edge.transports.mqtt import READ_BYTES, MqttTransport
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


async def _nothing(*_: object, **__: object) -> None:
    await asyncio.sleep(0)


async def readings_in(outbox: Outbox) -> list[SensorReading]:
    return [p.event for p in await outbox.pending(100) if isinstance(p.event, SensorReading)]


async def test_qos1_reading_ends_up_in_outbox_and_malformed_is_dropped(
    mosquitto_broker: Any, writer: OutboxWriter
) -> None:
    health = DeviceHealthState("mqtt")
    transport = MqttTransport(
        config_for(mosquitto_broker), "edge-1", health, durable(writer.submit), clock=CLOCK
    )
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


async def test_partly_understood_payload_keeps_its_good_values_and_counts_the_rest(
    mosquitto_broker: Any, writer: OutboxWriter
) -> None:
    health = DeviceHealthState("mqtt")
    transport = MqttTransport(
        config_for(mosquitto_broker), "edge-1", health, durable(writer.submit), clock=CLOCK
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervise("mqtt", transport.run, health, 0.05, 0.2, stop))
    try:
        await wait_until(lambda: asyncio.sleep(0, health.connected))
        await publish(mosquitto_broker, b'{"temperature": 4.5, "humidity": 130, "battery": "37.00"}')
        await wait_until(lambda: readings_in(writer.outbox))
    finally:
        stop.set()
        await task
    readings = await readings_in(writer.outbox)
    assert {(r.quantity, r.value) for r in readings} == {("temperature", 4.5), ("battery", 37)}
    assert transport.counters["mqtt_values_rejected"] == 1
    assert transport.counters["mqtt_malformed"] == 0


@pytest.mark.parametrize("protocol", ["mqttv5", "mqttv311"])
async def test_uncommitted_message_is_redelivered_after_unclean_disconnect(
    mosquitto_broker: Any, writer: OutboxWriter, protocol: str
) -> None:
    config = config_for(mosquitto_broker, protocol)
    received = asyncio.Event()

    async def stuck_sink(events: Sequence[Event], **_: object) -> None:
        received.set()
        await asyncio.Event().wait()  # the disk never answers: no commit, so no PUBACK

    first = MqttTransport(config, "edge-1", DeviceHealthState("mqtt"), durable(stuck_sink), clock=CLOCK)
    run1 = asyncio.create_task(first.run())
    await wait_until(lambda: asyncio.sleep(0, first.health.connected))
    await publish(mosquitto_broker, encode_zigbee2mqtt(9.25, 70.0))
    await asyncio.wait_for(received.wait(), 10)
    first.abort()  # power cut: TCP gone, no DISCONNECT, no PUBACK
    with pytest.raises(TransportError):
        await asyncio.wait_for(run1, 10)
    assert await readings_in(writer.outbox) == []

    # Same client id, persistent session: the broker redelivers the unacknowledged message.
    second = MqttTransport(config, "edge-1", DeviceHealthState("mqtt"), durable(writer.submit), clock=CLOCK)
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
    transport = MqttTransport(config, "edge-1", DeviceHealthState("mqtt"), durable(_nothing), clock=CLOCK)
    with pytest.raises(TransportError, match="cannot connect"):
        await transport.run()


def _password_file(folder: Path, users: dict[str, str]) -> Path:
    path = folder / "passwords"
    for user, password in users.items():
        flags = ["-b"] if path.exists() else ["-c", "-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(path), user, password], check=True)
    path.chmod(0o600)
    return path


async def test_username_password_and_refusal(
    mosquitto_factory: Any, tmp_path: Path, writer: OutboxWriter
) -> None:
    broker = mosquitto_factory(password_file=_password_file(tmp_path, {"edge": "s3cret", "probe": "p"}))
    good = config_for(broker).model_copy(update={"username": "edge", "password": SecretStr("s3cret")})
    bad = good.model_copy(update={"password": SecretStr("wrong")})

    with pytest.raises(TransportError, match="refused the connection"):
        await MqttTransport(
            bad, "edge-1", DeviceHealthState("mqtt"), durable(writer.submit), clock=CLOCK
        ).run()

    transport = MqttTransport(good, "edge-1", DeviceHealthState("mqtt"), durable(writer.submit), clock=CLOCK)
    run = asyncio.create_task(transport.run())
    try:
        await wait_until(lambda: asyncio.sleep(0, transport.connected))
        await asyncio.to_thread(
            mqtt_publish.single,
            TOPIC,
            encode_zigbee2mqtt(3.5, 55.0),
            qos=1,
            hostname=broker.host,
            port=broker.port,
            auth={"username": "probe", "password": "p"},
        )
        await wait_until(lambda: readings_in(writer.outbox))
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
    assert {(r.quantity, r.value) for r in await readings_in(writer.outbox)} == {
        ("temperature", 3.5),
        ("humidity", 55.0),
    }


async def test_a_broker_that_stops_answering_is_detected_by_the_keepalive() -> None:
    """A half-open TCP connection (broker hung, NAT dropped the flow) must not look healthy forever."""

    async def hung_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(b"\x20\x03\x00\x00\x00")  # v5 CONNACK, accepted, no properties
        while await reader.read(1024):  # SUBSCRIBE, PINGREQs: never answered
            pass

    server = await asyncio.start_server(hung_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = MqttConfig(
        url=f"mqtt://127.0.0.1:{port}",
        sensors=[MqttSensorConfig(topic=TOPIC, format="zigbee2mqtt", sensor_id="f")],
    )
    transport = MqttTransport(
        config, "edge-1", DeviceHealthState("mqtt"), durable(_nothing), clock=CLOCK, keepalive_s=1
    )
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransportError, match="silent"):
            await asyncio.wait_for(transport.run(), 10)
        assert asyncio.get_running_loop().time() - started < 4  # 1.5 keep-alives, checked every half
    finally:
        server.close()
        await server.wait_closed()


async def test_slow_outbox_applies_backpressure_and_loses_nothing(
    mosquitto_factory: Any, writer: OutboxWriter
) -> None:
    """With room for 20 unacknowledged messages and a slow disk, 600 messages still all arrive, and
    the edge never holds more than its window plus one socket read (the broker may send more than
    the Receive Maximum: Mosquitto 2.0.11 does once acks flow)."""
    broker = mosquitto_factory(max_inflight_messages=1000)
    config = config_for(broker)
    biggest_batch = 0

    async def slow_sink(events: Sequence[Event], **extras: Any) -> object:
        nonlocal biggest_batch
        biggest_batch = max(biggest_batch, len(events))
        await asyncio.sleep(0.02)
        return await writer.submit(events, **extras)

    transport = MqttTransport(
        config, "edge-1", DeviceHealthState("mqtt"), durable(slow_sink), clock=CLOCK, queue_max=20
    )
    run = asyncio.create_task(transport.run())
    try:
        await wait_until(lambda: asyncio.sleep(0, transport.connected))
        await asyncio.to_thread(
            mqtt_publish.multiple,
            [{"topic": TOPIC, "payload": padded(n), "qos": 1} for n in range(600)],
            hostname=broker.host,
            port=broker.port,
        )
        async with asyncio.timeout(60):
            while len(await writer.outbox.pending(5000)) < 1200:
                await asyncio.sleep(0.05)
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
    temperatures = sorted(
        r.value for r in await readings_in_all(writer.outbox) if r.quantity == "temperature"
    )
    assert temperatures == [n / 100 for n in range(600)]
    # 2 readings per message; in hand at most the window plus what one 64 KiB read holds.
    per_read = READ_BYTES // len(encode_publish(TOPIC, padded(0), qos=1, packet_id=1)) + 1
    assert biggest_batch <= 2 * (20 + per_read) < 2 * 600 // 4


def padded(n: int) -> bytes:
    """A Zigbee2MQTT reading with ~1 kB of keys the decoder ignores (so a read holds few of them)."""
    return encode_zigbee2mqtt(n / 100, 50.0)[:-1] + b',"note":"' + b"x" * 1000 + b'"}'


async def readings_in_all(outbox: Outbox) -> list[SensorReading]:
    return [p.event for p in await outbox.pending(5000) if isinstance(p.event, SensorReading)]


# ------------------------------------------------------------------ poison messages, exactly once

TASMOTA_TOPIC = "tele/fridge-2/SENSOR"


def poison_config(broker: Any) -> MqttConfig:
    config = config_for(broker)
    tasmota = MqttSensorConfig(topic=TASMOTA_TOPIC, format="tasmota", sensor_id="fridge-2")
    return config.model_copy(update={"sensors": [*config.sensors, tasmota]})


POISON = [
    # Issue 12: a 400-digit integer overflowed float() and killed the agent; at QoS 1 the broker
    # redelivered it after every restart (crash loop). A 5,000-digit one passes Python's
    # int-from-string limit (4,300 digits) and failed differently.
    (TOPIC, b'{"temperature": ' + b"9" * 400 + b"}", "OverflowError"),
    (TOPIC, b'{"temperature": ' + b"9" * 5000 + b"}", "integer string conversion"),
    (TOPIC, b'{"temperature": -' + b"1" * 400 + b".5e3}", "not finite"),
    # Tasmota names its channels after JSON keys: a key that is no valid id decoded fine, then the
    # contract refused the reading (a pydantic ValidationError escaped the loop).
    (TASMOTA_TOPIC, b'{"Time":"2026-01-01T00:00:00","a b":{"Temperature":4},"c":{"Temperature":5}}', "valid"),
    (TASMOTA_TOPIC, b'{"Time":"2026-01-01T00:00:00","X":{"Temperature":' + b"7" * 400 + b"}}", "Overflow"),
]


async def test_poison_messages_are_recorded_acknowledged_and_never_stop_the_edge(
    mosquitto_broker: Any, writer: OutboxWriter
) -> None:
    health = DeviceHealthState("mqtt")
    config = poison_config(mosquitto_broker)
    transport = MqttTransport(
        config, "edge-1", health, durable(writer.submit), clock=CLOCK, outbox=writer.outbox
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervise("mqtt", transport.run, health, 0.05, 0.2, stop))
    try:
        await wait_until(lambda: asyncio.sleep(0, health.connected))
        for topic, payload, _ in POISON:
            await publish(mosquitto_broker, payload, topic)
        # Just over the 1 MiB packet limit: the edge dropped the connection for it, the broker
        # redelivered it, and no good reading arrived again.
        await publish(mosquitto_broker, b"x" * (2 << 20))
        await publish(mosquitto_broker, encode_zigbee2mqtt(4.5, 61.0))
        await wait_until(lambda: readings_in(writer.outbox))
        # A reconnect: had any poison message not been acknowledged, the broker would resend it now.
        transport.abort()
        await wait_until(lambda: asyncio.sleep(0, health.reconnects == 1 and health.connected))
        await publish(mosquitto_broker, encode_zigbee2mqtt(5.5, 62.0))
        await wait_until(lambda: _count(writer.outbox, 4))
        assert not task.done()
    finally:
        stop.set()
        await task
    readings = await readings_in(writer.outbox)
    assert sorted((r.quantity, r.value) for r in readings) == [
        ("humidity", 61.0), ("humidity", 62.0), ("temperature", 4.5), ("temperature", 5.5)
    ]  # fmt: skip
    assert transport.counters["mqtt_malformed"] == len(POISON)
    assert transport.counters["mqtt_oversized"] == 1
    assert transport.counters["mqtt_messages"] == len(POISON) + 3  # nothing was redelivered
    assert health.frames_bad == len(POISON) + 1

    # What `shelfsense edge status` shows: newest first, raw bytes (shortened), topic and reason.
    rejected = read_status(writer.outbox.path)["rejected_payloads"]
    assert [r["topic"] for r in rejected] == [TOPIC] + [t for t, _, _ in reversed(POISON)]
    assert rejected[0]["size"] >= 2 << 20 and "exceeds the 1048576-byte limit" in rejected[0]["reason"]
    assert rejected[0]["payload"] == "x" * 200
    for row, (_, payload, reason) in zip(rejected[1:], reversed(POISON), strict=True):
        assert reason in row["reason"], row
        assert row["size"] == len(payload)
    async with (
        aiosqlite.connect(writer.outbox.path) as db,
        db.execute("SELECT payload FROM rejected_payloads ORDER BY id") as cursor,
    ):
        stored = [bytes(p) for (p,) in await cursor.fetchall()]
    assert stored[: len(POISON)] == [p[:KEEP_BYTES] for _, p, _ in POISON]


async def test_rejects_kept_are_bounded(mosquitto_broker: Any, writer: OutboxWriter) -> None:
    health = DeviceHealthState("mqtt")
    transport = MqttTransport(
        config_for(mosquitto_broker), "edge-1", health, durable(writer.submit), clock=CLOCK
    )
    run = asyncio.create_task(transport.run())
    try:
        await wait_until(lambda: asyncio.sleep(0, transport.connected))
        await asyncio.to_thread(
            mqtt_publish.multiple,
            [{"topic": TOPIC, "payload": f"bad {n}", "qos": 1} for n in range(KEEP_LAST + 20)],
            hostname=mosquitto_broker.host,
            port=mosquitto_broker.port,
        )
        await wait_until(lambda: asyncio.sleep(0, health.frames_bad == KEEP_LAST + 20))
        await publish(mosquitto_broker, encode_zigbee2mqtt(4.5, 61.0))
        await wait_until(lambda: readings_in(writer.outbox))
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
    rejected = read_status(writer.outbox.path)["rejected_payloads"]
    assert [r["payload"] for r in rejected] == [f"bad {n}" for n in reversed(range(20, KEEP_LAST + 20))]


async def _count(outbox: Outbox, n: int) -> bool:
    return len(await readings_in(outbox)) >= n


@pytest.mark.parametrize("protocol", ["mqttv5", "mqttv311"])
async def test_committed_but_unacknowledged_message_is_not_stored_twice(
    mosquitto_broker: Any, writer: OutboxWriter, protocol: str
) -> None:
    """Issue 12: edge SIGKILLs stored 50 readings twice in 207k. The commit lands, the PUBACK does
    not (the edge dies first); the broker redelivers with DUP and the same packet id."""
    config = config_for(mosquitto_broker, protocol)
    committed = asyncio.Event()

    async def commit_then_die(events: Sequence[Event], **extras: Any) -> None:
        await writer.submit(events, **extras)
        if events:
            committed.set()
            await asyncio.Event().wait()  # killed after the commit, before the PUBACK

    first = MqttTransport(
        config,
        "edge-1",
        DeviceHealthState("mqtt"),
        durable(commit_then_die),
        clock=CLOCK,
        outbox=writer.outbox,
    )
    run1 = asyncio.create_task(first.run())
    await wait_until(lambda: asyncio.sleep(0, first.health.connected))
    await publish(mosquitto_broker, encode_zigbee2mqtt(9.25, 70.0))
    await asyncio.wait_for(committed.wait(), 10)
    first.abort()
    with pytest.raises(TransportError):
        await asyncio.wait_for(run1, 10)
    assert len(await readings_in(writer.outbox)) == 2

    second = MqttTransport(
        config, "edge-1", DeviceHealthState("mqtt"), durable(writer.submit), clock=CLOCK, outbox=writer.outbox
    )
    run2 = asyncio.create_task(second.run())
    try:
        await wait_until(lambda: asyncio.sleep(0, second.counters["mqtt_redelivered_duplicates"] == 1))
        await publish(mosquitto_broker, encode_zigbee2mqtt(9.5, 71.0))  # a new message still counts
        await wait_until(lambda: _count(writer.outbox, 4))
    finally:
        run2.cancel()
        await asyncio.gather(run2, return_exceptions=True)
    assert sorted(r.value for r in await readings_in(writer.outbox)) == [9.25, 9.5, 70.0, 71.0]
    assert second.counters["mqtt_messages"] == 2


def _timed(value: float, last_seen_ms: int) -> bytes:
    return json.dumps({"temperature": value, "last_seen": last_seen_ms}).encode()


async def test_a_publisher_resend_with_the_same_device_time_is_one_reading(
    mosquitto_broker: Any, writer: OutboxWriter
) -> None:
    """One reading per (sensor, quantity, device time): a publisher's QoS 1 re-send after a broker
    restart is a new message (new packet id, no DUP), but the same reading."""
    transport = MqttTransport(
        config_for(mosquitto_broker), "edge-1", DeviceHealthState("mqtt"), durable(writer.submit), clock=CLOCK
    )
    run = asyncio.create_task(transport.run())
    try:
        await wait_until(lambda: asyncio.sleep(0, transport.connected))
        for payload in (
            _timed(4.5, 1_790_000_000_000),
            _timed(4.5, 1_790_000_000_000),
            _timed(4.6, 1_790_000_001_000),
        ):
            await publish(mosquitto_broker, payload)
        await wait_until(lambda: _count(writer.outbox, 2))
        await wait_until(lambda: asyncio.sleep(0, transport.counters["mqtt_messages"] == 3))
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
    assert sorted(r.value for r in await readings_in(writer.outbox)) == [4.5, 4.6]
    assert transport.counters["mqtt_repeated_readings"] == 1


async def test_a_redelivery_of_an_uncommitted_timed_reading_is_stored(
    mosquitto_broker: Any, writer: OutboxWriter
) -> None:
    """The device-time memory counts a reading only once committed: the broker's redelivery of a
    message whose commit never happened is not mistaken for a repeat (that would lose it)."""
    calls = 0

    async def first_commit_hangs(events: Sequence[Event], **extras: Any) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()  # the disk never answers; the link then drops
        return await writer.submit(events, **extras)

    health = DeviceHealthState("mqtt")
    transport = MqttTransport(
        config_for(mosquitto_broker), "edge-1", health, durable(first_commit_hangs), clock=CLOCK
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervise("mqtt", transport.run, health, 0.05, 0.2, stop))
    try:
        await wait_until(lambda: asyncio.sleep(0, health.connected))
        await publish(mosquitto_broker, _timed(7.5, 1_790_000_000_000))
        await wait_until(lambda: asyncio.sleep(0, calls == 1))
        transport.abort()  # same transport object reconnects: its memory of device times survives
        await wait_until(lambda: readings_in(writer.outbox))
    finally:
        stop.set()
        await task
    assert [r.value for r in await readings_in(writer.outbox)] == [7.5]
    assert transport.counters["mqtt_repeated_readings"] == 0
