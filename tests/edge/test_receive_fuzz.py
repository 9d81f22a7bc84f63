"""Fuzz the whole receive path of a running edge while numbered good readings flow (issue 12).

A real edge process (``shelfsense edge run``) with every kind of input: MQTT sensors of all six
payload formats behind wildcard subscriptions on a real Mosquitto, two UHF readers, a Modbus probe,
a PN532 and an RDM6300 on pseudo-terminals. For a few seconds, at once:

* MQTT: random bytes, mutated real firmware payloads (bytes flipped, cut, numbers replaced by
  400- and 5,000-digit integers, deep nesting), random topics under every subscription, QoS 0/1/2,
  retained messages, and packets over the 1 MiB limit;
* raw MQTT packets to the broker from a client of our own (mutated PUBLISH flags, MQTT 5
  properties, random bytes): what Mosquitto forwards reaches the edge, the rest ends that client;
* random bytes on every serial line.

Meanwhile a publisher sends numbered readings. The edge must never exit, every numbered reading the
broker acknowledged must reach the cloud exactly once, and what was dropped must be counted.
Seed: ``SHELFSENSE_FUZZ_SEED`` (printed on failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from edge_harness import CloudChild, EdgeChild, toml_table
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from test_durability import (
    EDGE_ID,
    NUM_SENSOR,
    NUM_TOPIC,
    TAGS,
    NumberedPublisher,
    Site,
    assert_each_reading_once,
    assert_exactly_once,
    presubscribe,
    wait_for,
)

from devices.mqtt_formats import (
    encode_esphome_state,
    encode_ruuvi_gateway,
    encode_shelly_notify_status,
    encode_tasmota,
    encode_zigbee2mqtt,
)
from devices.mqtt_packets import MQTT_V311, encode_connect, encode_publish
from devices.pn532 import nfc_tag
from edge.status import read_status
from shelfsense.services import MosquittoProcess
from simulators.modbus_probe import ModbusProbeSimulator
from simulators.pn532_reader import Pn532ReaderSimulator
from simulators.rdm6300_reader import Rdm6300ReaderSimulator
from simulators.uhf_reader import UhfReaderSimulator

pytestmark = pytest.mark.integration

FUZZ_S = 6.0
# (subscription, format, a topic under it with {} for a random level): every decoder is reached.
SENSORS = [
    ("zigbee2mqtt/+", "zigbee2mqtt", "zigbee2mqtt/{}"),
    ("tele/+/SENSOR", "tasmota", "tele/{}/SENSOR"),
    ("+/events/rpc", "shelly", "{}/events/rpc"),
    ("esp/sensor/+/state", "esphome", "esp/sensor/{}/state"),
    ("ruuvi/+/+", "ruuvi", "ruuvi/C8:25:2D:8E:9C:2C/{}"),
    ("shelfsense/site-1/sensors/+", "shelfsense", "shelfsense/site-1/sensors/{}"),
]


def _good_payloads(rng: random.Random) -> list[bytes]:
    now = datetime.now(UTC)
    adv = bytes.fromhex("0201061BFF99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
    return [
        encode_zigbee2mqtt(rng.uniform(-5, 30), rng.uniform(20, 90), battery=rng.randint(0, 100)),
        encode_tasmota(now, rng.uniform(-5, 30), rng.uniform(20, 90), sensor="DS18B20-1"),
        encode_tasmota(now, rng.uniform(-5, 30), rng.uniform(20, 90), temp_unit="F"),
        encode_shelly_notify_status("shellyht-1", temperature=4.2, humidity=55.0, battery=80, ts=time.time()),
        encode_esphome_state(rng.uniform(-5, 30)),
        encode_ruuvi_gateway("C8:25:2D:8E:9C:2C", adv, ts=int(time.time())),
        b'{"v":1,"readings":[{"quantity":"temperature","value":4.5,"unit":"degC","time":"2026-01-01T00:00:00Z"}]}',
    ]


def _huge_numbers(payload: bytes, rng: random.Random) -> bytes:
    digits = rng.choice([400, 4301, 5000, 20])
    return bytes(
        json.dumps(json.loads(payload)).replace("4", "9" * digits, 1).replace(".", "e999", rng.randint(0, 1)),
        "utf-8",
    )


def mutate(payload: bytes, rng: random.Random) -> bytes:
    """One hostile variant of a real payload."""
    data = bytearray(payload)
    kind = rng.randrange(7)
    if kind == 0 and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:
        data = data[: rng.randint(0, len(data))]
    elif kind == 2:
        with contextlib.suppress(ValueError):
            return _huge_numbers(payload, rng)
    elif kind == 3:
        return b"[" * rng.randint(100, 100_000) + b"]" * rng.randint(0, 10)
    elif kind == 4:
        return payload.replace(b"4", b"NaN", 1).replace(b"5", b"-Infinity", 1)
    elif kind == 5:
        return rng.randbytes(rng.randint(0, 400))
    else:
        insert = rng.choice(
            [b'"last_seen":' + b"9" * 30 + b",", b'"Time":"99999-01-01",', b'"a b":{"Temperature":4},']
        )
        return payload.replace(b"{", b"{" + insert, 1)
    return bytes(data)


def random_topic(rng: random.Random) -> str:
    _, _, pattern = rng.choice(SENSORS)
    level = (
        rng.choice(
            [
                f"dev-{rng.randrange(50)}",
                "".join(
                    chr(rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0xA0, 0x2FFF)]))
                    for _ in range(8)
                ),
                "x" * rng.randint(1, 2000),
                "bridge",
                "",
            ]
        )
        .replace("/", "_")
        .replace("+", "_")
        .replace("#", "_")
    )
    return pattern.format(level)


class PayloadFuzzer:
    """A paho client publishing hostile payloads to random topics the edge subscribes to."""

    def __init__(self, broker: MosquittoProcess, rng: random.Random) -> None:
        self.rng = rng
        self.sent = 0
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"fuzz-{os.getpid()}", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish_one(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.01:
            payload = rng.randbytes(16) * rng.randint(70_000, 130_000)  # 1.1 to 2 MB: over the limit
        elif roll < 0.5:
            payload = mutate(rng.choice(_good_payloads(rng)), rng)
        elif roll < 0.8:
            payload = rng.randbytes(rng.randint(0, 300))
        else:
            payload = rng.choice(_good_payloads(rng))
        self.client.publish(
            random_topic(rng), payload, qos=rng.choice([0, 1, 1, 2]), retain=rng.random() < 0.02
        )
        self.sent += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def raw_packets(rng: random.Random, version: int) -> bytes:
    """A burst of mutated MQTT packets after a CONNECT: what Mosquitto forwards, the edge gets."""
    out = [encode_connect(f"raw-{rng.randrange(1 << 30)}", version=version, clean_start=True)]
    for _ in range(rng.randint(1, 20)):
        topic = random_topic(rng)
        qos = rng.choice([0, 1, 2])
        payload = mutate(rng.choice(_good_payloads(rng)), rng)
        packet_id = rng.randint(1, 65535)
        if version == 5 and rng.random() < 0.5:
            # Properties: payload format indicator (1 = UTF-8, a lie for random bytes), message
            # expiry, content type, a user property, response topic, correlation data, topic alias.
            props = rng.choice(
                [b"\x01\x01", b"\x02\x00\x00\x00\x05", b"\x03\x00\x04json", b"\x26\x00\x01k\x00\x01v",
                 b"\x08\x00\x03a/b", b"\x09\x00\x02\xff\x00", b"\x23\x00\x01"]
            )  # fmt: skip
            # A v5 PUBLISH is a v3.1.1 one whose payload starts with the properties block.
            payload = bytes([len(props)]) + props + payload
            version_on_wire = MQTT_V311
        else:
            version_on_wire = version
        packet = bytearray(
            encode_publish(topic, payload, qos=qos, packet_id=packet_id, version=version_on_wire)
        )
        if rng.random() < 0.3:
            packet[0] ^= rng.choice([0x01, 0x08, 0x06, 0xF0])  # retain, dup, QoS 3, another type
        if rng.random() < 0.1 and len(packet) > 2:
            packet[rng.randrange(1, len(packet))] = rng.randrange(256)
        out.append(bytes(packet))
    if rng.random() < 0.3:
        out.append(rng.randbytes(rng.randint(1, 100)))
    return b"".join(out)


def send_raw(broker: MosquittoProcess, data: bytes) -> None:
    with (
        contextlib.suppress(OSError),
        socket.create_connection((broker.host, broker.port), timeout=2) as sock,
    ):
        sock.sendall(data)
        sock.settimeout(0.2)
        with contextlib.suppress(OSError):
            sock.recv(4096)


def edge_toml(broker: MosquittoProcess, serial: dict[str, Any]) -> str:
    parts = [
        toml_table("edge.uhf_readers", {"id": f"reader-{i}", "port": port, "location": f"loc-{i}"}, True)
        for i, port in enumerate(serial["uhf"])
    ]
    parts.append(
        toml_table(
            "edge.modbus_probes",
            {
                "port": serial["probe"],
                "slave": 1,
                "sensor_id": "probe-1",
                "zone": "cold",
                "poll_interval_s": 0.5,
            },
            True,
        )
    )
    parts.append(
        toml_table("edge.nfc_readers", {"kind": "pn532", "port": serial["pn532"], "id": "nfc-1"}, True)
    )
    parts.append(
        toml_table("edge.nfc_readers", {"kind": "rdm6300", "port": serial["rdm"], "id": "rfid-1"}, True)
    )
    parts.append(toml_table("edge.mqtt", {"url": broker.url, "client_id": f"shelfsense-{EDGE_ID}"}))
    sensors = [{"topic": NUM_TOPIC, "format": "zigbee2mqtt", "sensor_id": NUM_SENSOR}]
    sensors += [
        {
            "topic": sub,
            "format": fmt,
            "sensor_id": f"fuzz-{fmt}",
            "quantity": "temperature" if fmt == "esphome" else None,
        }
        for sub, fmt, _ in SENSORS
    ]
    parts += [toml_table("edge.mqtt.sensors", s, True) for s in sensors]
    return "\n".join(parts)


@pytest.fixture
async def fuzz_site(tmp_path: Path, mosquitto_factory: Any) -> AsyncIterator[tuple[Site, list[Any]]]:
    broker = mosquitto_factory()
    cloud = CloudChild(tmp_path / "cloud")
    token = await asyncio.to_thread(cloud.register_edge, EDGE_ID)
    await asyncio.to_thread(cloud.start)
    readers = [UhfReaderSimulator(lambda: [(epc, -50) for epc in TAGS], reads_per_s=50) for _ in range(2)]
    probe = ModbusProbeSimulator({1: lambda: (4.0, 60.0)})
    pn532 = Pn532ReaderSimulator(lambda: [nfc_tag("04A2241A")])
    rdm = Rdm6300ReaderSimulator(lambda: "0A00B1C2D3", repeat_s=0.05)
    presubscribe(broker, f"shelfsense-{EDGE_ID}", NUM_TOPIC)
    serial = {"uhf": [r.port for r in readers], "probe": probe.port, "pn532": pn532.port, "rdm": rdm.port}
    edge = EdgeChild(tmp_path / "edge", cloud.url, token, EDGE_ID, extra=edge_toml(broker, serial))
    site = Site(cloud, edge, broker, readers, probe)
    sims = [*readers, probe, pn532, rdm]
    site.tasks = [asyncio.create_task(sim.run()) for sim in sims]
    try:
        yield site, sims
    finally:
        site.stop_simulators()
        pn532.close()
        rdm.close()
        await asyncio.to_thread(edge.stop)
        await asyncio.to_thread(cloud.stop)


async def test_fuzzed_inputs_never_stop_the_edge_and_good_readings_arrive_exactly_once(
    fuzz_site: tuple[Site, list[Any]],
) -> None:
    site, sims = fuzz_site
    seed = int(os.environ.get("SHELFSENSE_FUZZ_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    publisher = NumberedPublisher(site.broker)
    fuzzer = PayloadFuzzer(site.broker, rng)
    site.edge.start()
    deadline = time.monotonic() + FUZZ_S
    raw_bursts = 0
    while time.monotonic() < deadline:
        for _ in range(5):
            fuzzer.publish_one()
        publisher.publish()
        if rng.random() < 0.2:
            await asyncio.to_thread(send_raw, site.broker, raw_packets(rng, rng.choice([4, 5])))
            raw_bursts += 1
        for sim in sims:
            noise = getattr(sim, "inject_noise", None) or sim._write_noise  # the probe: line noise only
            noise(rng.randint(1, 64))
        assert site.edge.process is not None and site.edge.process.poll() is None, (
            f"edge exited (seed {seed}): {site.edge.log_tail()}"
        )
        await asyncio.sleep(0.02)
    for _ in range(20):  # good readings after the storm still arrive
        publisher.publish()
    await wait_for(lambda: len(publisher.acked) == publisher.sent, 30, "broker PUBACKs")
    publisher.close()
    fuzzer.close()
    site.stop_simulators()
    await wait_for(site.cloud_matches_edge, 90, f"the cloud to catch up (seed {seed})")
    assert site.edge.process is not None and site.edge.process.poll() is None, site.edge.log_tail()
    assert await asyncio.to_thread(site.edge.stop) == 0, site.edge.log_tail()

    assert_exactly_once(site)
    assert_each_reading_once(site, publisher, f"seed {seed}")
    status = read_status(site.edge.db_path)
    counters = status["counters"]
    assert counters.get("mqtt_malformed", 0) > 0, (seed, counters)
    assert status["rejected_payloads"], seed
    devices = status["devices"]
    assert all(devices[d]["frames_bad"] > 0 for d in ("reader-0", "reader-1", "mqtt")), (seed, devices)
    print(f"fuzz seed {seed}: {fuzzer.sent} fuzzed messages, {raw_bursts} raw bursts, counters", counters)
