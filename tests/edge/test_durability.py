"""Proof with real processes: SIGKILLed edges, cloud outages, broker and serial restarts, garbage input.

The edge runs as ``python -m shelfsense edge run`` (a child process) against a real cloud child on
SQLite; the simulators (UHF readers and a Modbus probe on pseudo-terminals, MQTT publishers on a
real Mosquitto) run in the test process. What the cloud stored is read from its ``events`` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from edge_harness import CloudChild, EdgeChild, peak_rss_mb, toml_table
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.agent import EdgeAgent
from edge.outbox import Outbox
from edge.status import EdgeStatusUnavailable, read_status
from shelfsense.config import EdgeSettings, ModbusProbeConfig, MqttConfig, MqttSensorConfig, Settings
from shelfsense.config import UhfReaderConfig as Reader
from shelfsense.contract import Event, SensorReading
from shelfsense.services import MosquittoProcess
from simulators.modbus_probe import ModbusProbeSimulator
from simulators.uhf_reader import UhfReaderSimulator

pytestmark = pytest.mark.integration

EDGE_ID = "edge-1"
NUM_TOPIC = "test/numbered"
NUM_SENSOR = "num-1"
TAGS = [f"3034ABCD00000000000000{n:02X}" for n in range(1, 6)]


# ------------------------------------------------------------------------------------- helpers


# Device times of the numbered readings: reading n was taken at EPOCH_MS + n ms (never in the future:
# publishers send far fewer than 1,000 a second).
EPOCH_MS = int(time.time() * 1000)


def numbered_payload(n: int) -> bytes:
    """A zigbee2mqtt reading whose temperature encodes ``n`` (unique, inside the plausible range),
    with its device time (``last_seen``, epoch ms, as Zigbee2MQTT sends it when configured)."""
    return json.dumps(
        {"temperature": round(-50 + n * 0.01, 2), "humidity": 50, "last_seen": EPOCH_MS + n}
    ).encode()


def number_of(value: float) -> int:
    return round((value + 50) * 100)


class NumberedPublisher:
    """Publishes numbered QoS 1 readings; remembers which ones the broker acknowledged (PUBACK)."""

    def __init__(self, broker: MosquittoProcess, topic: str = NUM_TOPIC) -> None:
        self.topic = topic
        self.acked: set[int] = set()
        self.sent = 0
        self._mids: dict[int, int] = {}
        self._acked_early: set[int] = set()
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{os.getpid()}-{id(self)}")
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._lock:
            n = self._mids.pop(mid, None)
            if n is None:
                self._acked_early.add(mid)  # PUBACK beat publish() to registering the mid
            else:
                self.acked.add(n)

    def publish(self, payload: bytes | None = None) -> None:
        n = self.sent
        self.sent += 1
        # Never hold our lock across client.publish(): paho's network thread holds its own
        # lock while it calls _on_publish, which takes ours -> lock-order deadlock.
        info = self.client.publish(self.topic, payload or numbered_payload(n), qos=1)
        if payload is None:
            with self._lock:
                if info.mid in self._acked_early:
                    self._acked_early.discard(info.mid)
                    self.acked.add(n)
                else:
                    self._mids[info.mid] = n

    async def run(self, rate_per_s: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.publish()
            await asyncio.sleep(1 / rate_per_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def presubscribe(broker: MosquittoProcess, client_id: str, topic: str) -> None:
    """Create the edge's persistent session before the first edge start (what the edge itself does).

    Without it, messages published before the edge's very first connect would have no session to
    be queued in; from then on the broker keeps the session across edge kills.
    """
    done = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: done.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=props)
    client.loop_start()
    assert done.wait(10), "presubscribe failed"
    client.disconnect()
    client.loop_stop()


def status_or_empty(db_path: Path) -> dict[str, Any]:
    try:
        return read_status(db_path)
    except EdgeStatusUnavailable:
        return {}


async def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.2)


@dataclass
class Site:
    """Cloud child + simulators in this process; the edge child is started by the test."""

    cloud: CloudChild
    edge: EdgeChild
    broker: MosquittoProcess
    readers: list[UhfReaderSimulator]
    probe: ModbusProbeSimulator
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def stop_simulators(self) -> None:
        for task in self.tasks:
            task.cancel()
        for sim in [*self.readers, self.probe]:
            sim.close()

    def cloud_matches_edge(self) -> bool:
        status = status_or_empty(self.edge.db_path)
        last = status.get("last_seq", -1)
        return status.get("pending_events") == 0 and self.cloud.acked_through(EDGE_ID) == last


def device_toml(readers: list[UhfReaderSimulator], probe_port: str, broker: MosquittoProcess) -> str:
    parts = [
        toml_table("edge.uhf_readers", {"id": f"reader-{i}", "port": r.port, "location": f"loc-{i}"}, True)
        for i, r in enumerate(readers)
    ]
    parts.append(
        toml_table(
            "edge.modbus_probes",
            {"port": probe_port, "slave": 1, "sensor_id": "probe-1", "zone": "cold", "poll_interval_s": 0.5},
            True,
        )
    )
    parts.append(toml_table("edge.mqtt", {"url": broker.url, "client_id": f"shelfsense-{EDGE_ID}"}))
    parts.append(
        toml_table(
            "edge.mqtt.sensors", {"topic": NUM_TOPIC, "format": "zigbee2mqtt", "sensor_id": NUM_SENSOR}, True
        )
    )
    return "\n".join(parts)


@pytest.fixture
async def site(tmp_path: Path, mosquitto_broker: MosquittoProcess) -> AsyncIterator[Site]:
    async with running_site(tmp_path, mosquitto_broker) as result:
        yield result


@contextlib.asynccontextmanager
async def running_site(tmp_path: Path, mosquitto_broker: MosquittoProcess) -> AsyncIterator[Site]:
    cloud = CloudChild(tmp_path / "cloud")
    token = await asyncio.to_thread(cloud.register_edge, EDGE_ID)
    await asyncio.to_thread(cloud.start)
    readers = [UhfReaderSimulator(lambda: [(epc, -50) for epc in TAGS], reads_per_s=50) for _ in range(2)]
    probe = ModbusProbeSimulator({1: lambda: (4.0, 60.0)})
    presubscribe(mosquitto_broker, f"shelfsense-{EDGE_ID}", NUM_TOPIC)
    edge = EdgeChild(
        tmp_path / "edge", cloud.url, token, EDGE_ID, extra=device_toml(readers, probe.port, mosquitto_broker)
    )
    result = Site(cloud, edge, mosquitto_broker, readers, probe)
    result.tasks = [asyncio.create_task(sim.run()) for sim in [*readers, probe]]
    try:
        yield result
    finally:
        result.stop_simulators()
        await asyncio.to_thread(edge.stop)
        await asyncio.to_thread(cloud.stop)


def numbered_counts(site: Site) -> Counter[int]:
    """How many times the cloud stored each numbered MQTT reading (its temperature)."""
    return Counter(
        number_of(p["value"])
        for p in site.cloud.payloads(EDGE_ID, "sensor_reading")
        if p["sensor_id"] == NUM_SENSOR and p["quantity"] == "temperature"
    )


def observed_readers(site: Site) -> set[str]:
    return {p["reader"] for p in site.cloud.payloads(EDGE_ID, "tag_observation")}


def assert_each_reading_once(site: Site, publisher: NumberedPublisher, what: str) -> None:
    """Every reading the broker acknowledged is in the cloud, and none twice (issue 12: QoS 1
    redeliveries of committed messages became second events)."""
    counts = numbered_counts(site)
    missing = publisher.acked - set(counts)
    assert not missing, f"{len(missing)} acknowledged MQTT readings lost ({what})"
    twice = {n: c for n, c in counts.items() if c > 1}
    assert not twice, f"{len(twice)} MQTT readings stored more than once ({what}): {sorted(twice)[:10]}"


async def settle(site: Site, publisher: NumberedPublisher, what: str) -> None:
    """The end of a run: the broker acknowledged every numbered reading, the simulators stop, the
    cloud catches up with the edge, and the edge stops cleanly."""
    await wait_for(lambda: len(publisher.acked) == publisher.sent, 30, "broker PUBACKs")
    publisher.close()
    site.stop_simulators()
    # The edge may still be backing off after the last broker restart (runs shorter than healthy_s
    # do not reset its capped back-off: up to 8 s after three restarts); the broker holds its
    # messages meanwhile. Wait for them rather than for a fixed time; what never comes is reported
    # by assert_each_reading_once.
    with contextlib.suppress(AssertionError):
        await wait_for(lambda: publisher.acked <= set(numbered_counts(site)), 60, "the broker's queue")
    await wait_for(site.cloud_matches_edge, 90, f"the cloud to catch up ({what})")
    assert await asyncio.to_thread(site.edge.stop) == 0, site.edge.log_tail()


def assert_exactly_once(site: Site) -> int:
    """The cloud holds exactly 1..N of the edge, N = the edge's last sequence; returns N."""
    status = read_status(site.edge.db_path)
    last = status["last_seq"]
    seqs = site.cloud.seqs(EDGE_ID)
    assert status["pending_events"] == 0
    assert len(seqs) == last, f"cloud has {len(seqs)} events, edge assigned {last}"
    assert seqs == list(range(1, last + 1)), "holes or duplicates in the cloud's sequence"
    assert site.cloud.acked_through(EDGE_ID) == last
    return int(last)


# ---------------------------------------------------------------------------------------- (a)


async def test_sigkill_edge_repeatedly_cloud_has_every_event_exactly_once(site: Site) -> None:
    seed = int(os.environ.get("SHELFSENSE_KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    publisher = NumberedPublisher(site.broker)
    stop_publishing = asyncio.Event()
    publishing = asyncio.create_task(publisher.run(100, stop_publishing))
    site.edge.start()
    committed_before_kill: list[tuple[int, int]] = []
    try:
        for _ in range(4):
            await asyncio.sleep(rng.uniform(0.5, 4.0))  # includes kills during start-up and mid-sync
            before = status_or_empty(site.edge.db_path).get("last_seq", 0)
            site.edge.kill()
            # A kill during start-up may come before the database exists (the machine is loaded).
            after = status_or_empty(site.edge.db_path).get("last_seq", 0)
            committed_before_kill.append((before, after))
            site.edge.start()
        await wait_for(lambda: len(site.cloud.seqs(EDGE_ID)) > 0, 30, "first events in the cloud")
        # The last run reads both readers before it is stopped (on a loaded machine the killed runs
        # were too short for a smoother cycle, and the last one may open its ports late).
        await wait_for(lambda: observed_readers(site) == {"reader-0", "reader-1"}, 60, "both readers' tags")
    finally:
        stop_publishing.set()
        await publishing
    await settle(site, publisher, f"seed {seed}")

    for before, after in committed_before_kill:
        assert after >= before, f"committed events vanished in a kill (seed {seed})"
    last = assert_exactly_once(site)
    assert last > committed_before_kill[-1][1]
    # Every reading the broker accepted reached the cloud once, though the edge died 4 times meanwhile.
    assert_each_reading_once(site, publisher, f"seed {seed}")
    assert observed_readers(site) == {"reader-0", "reader-1"}


async def test_broker_restarts_every_reading_arrives_exactly_once(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoProcess]
) -> None:
    """Issue 12: 30 readings of 101k were stored twice across broker restarts. A restarted broker
    resends what the edge committed but whose PUBACK it never processed (same packet id, DUP), and
    the publisher resends what the broker stored but did not acknowledge (a new message with the
    same device time). Both are the same reading: stored once."""
    broker = mosquitto_factory()
    async with running_site(tmp_path, broker) as site:
        publisher = NumberedPublisher(site.broker)
        stop_publishing = asyncio.Event()
        publishing = asyncio.create_task(publisher.run(200, stop_publishing))
        site.edge.start()
        try:
            await wait_for(lambda: len(numbered_counts(site)) > 0, 30, "first readings in the cloud")
            # SIGTERM: Mosquitto saves its state on the way down. (A SIGKILLed Mosquitto loses what it
            # acknowledged since its last autosave: a broker property, so not asserted here.)
            for _ in range(3):
                await asyncio.sleep(1.5)
                await asyncio.to_thread(site.broker.stop)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(site.broker.start)
            await asyncio.sleep(2)
        finally:
            stop_publishing.set()
            await publishing
        await settle(site, publisher, "broker restarts")
        assert_exactly_once(site)
        assert_each_reading_once(site, publisher, "broker restarts")
        counters = read_status(site.edge.db_path)["counters"]
        print(
            "edge counters after broker restarts:",
            {k: v for k, v in counters.items() if k.startswith("mqtt")},
        )


# ---------------------------------------------------------------------------------------- (b)


def bulk_readings(count: int, start: datetime) -> list[Event]:
    return [
        SensorReading(
            sensor_id="bulk-1",
            quantity="temperature",
            value=round(2 + (n % 400) / 100, 2),
            unit="degC",
            time=start + timedelta(milliseconds=n),
            zone="cold",
        )
        for n in range(count)
    ]


async def test_cloud_outage_with_a_large_backlog_drains_everything_once(site: Site) -> None:
    publisher = NumberedPublisher(site.broker)
    stop_publishing = asyncio.Event()
    publishing = asyncio.create_task(publisher.run(100, stop_publishing))
    site.edge.start()
    await wait_for(lambda: site.cloud.acked_through(EDGE_ID) > 0, 30, "the first acknowledgement")
    await asyncio.to_thread(site.cloud.stop)  # the outage begins
    # Hours of high-rate data, written straight into the outbox next to the running edge (WAL
    # allows the second writer; the sequence is assigned inside each transaction).
    async with Outbox(site.edge.db_path, "NORMAL") as outbox:
        start = datetime.now(UTC) - timedelta(hours=2)
        readings = bulk_readings(50_000, start)
        for i in range(0, len(readings), 5000):
            await outbox.append(readings[i : i + 5000])
    pending = read_status(site.edge.db_path)["pending_events"]
    assert pending >= 50_000
    await asyncio.sleep(2)  # the edge keeps reading while the cloud is away
    await asyncio.to_thread(site.cloud.start)  # same port, same database
    stop_publishing.set()
    await publishing
    await wait_for(lambda: len(publisher.acked) == publisher.sent, 10, "broker PUBACKs")
    publisher.close()
    site.stop_simulators()
    await wait_for(site.cloud_matches_edge, 180, "the backlog to drain")
    assert site.edge.process is not None
    rss = peak_rss_mb(site.edge.process.pid)
    assert await asyncio.to_thread(site.edge.stop) == 0, site.edge.log_tail()
    assert_exactly_once(site)
    bulk = [p for p in site.cloud.payloads(EDGE_ID, "sensor_reading") if p["sensor_id"] == "bulk-1"]
    assert len(bulk) == 50_000
    values = {
        number_of(p["value"])
        for p in site.cloud.payloads(EDGE_ID, "sensor_reading")
        if p["sensor_id"] == NUM_SENSOR and p["quantity"] == "temperature"
    }
    assert publisher.acked <= values
    assert rss < 300, f"edge peak RSS {rss:.0f} MB while draining a 50k backlog"


# ---------------------------------------------------------------------------------------- (c)


class RestartableSerial:
    """A stable device path (like /dev/serial/by-id/...) that points at the current simulator's pty."""

    def __init__(self, path: Path, make: Callable[[], UhfReaderSimulator | ModbusProbeSimulator]) -> None:
        self.path = path
        self.make = make
        self.sim: UhfReaderSimulator | ModbusProbeSimulator | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sim = self.make()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.path.symlink_to(self.sim.port)
        self.task = asyncio.create_task(self.sim.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.sim is not None:
            self.sim.close()  # the pty vanishes, as an unplugged USB adapter does
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@pytest.fixture
def broker(mosquitto_factory: Callable[..., MosquittoProcess]) -> Iterator[MosquittoProcess]:
    yield mosquitto_factory()


async def test_broker_and_serial_devices_restart_reading_resumes_by_itself(
    tmp_path: Path, broker: MosquittoProcess
) -> None:
    reader = RestartableSerial(tmp_path / "uhf0", lambda: UhfReaderSimulator(lambda: [(TAGS[0], -45)], 50))
    probe = RestartableSerial(tmp_path / "probe0", lambda: ModbusProbeSimulator({1: lambda: (3.0, 55.0)}))
    reader.start()
    probe.start()
    settings = Settings(
        demo=True,
        edge=EdgeSettings(
            edge_id=EDGE_ID,
            cloud_url="http://127.0.0.1:9",  # no cloud: this test is about the devices
            db_path=tmp_path / "edge.db",
            uhf_readers=[Reader(id="uhf0", port=str(reader.path))],
            modbus_probes=[ModbusProbeConfig(port=str(probe.path), sensor_id="probe-1", poll_interval_s=0.2)],
            mqtt=MqttConfig(
                url=broker.url,
                client_id="shelfsense-restart",
                sensors=[MqttSensorConfig(topic=NUM_TOPIC, format="zigbee2mqtt", sensor_id=NUM_SENSOR)],
            ),
        ),
    )
    agent = EdgeAgent(settings, cycle_s=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    publisher: NumberedPublisher | None = None
    try:
        await wait_for(
            lambda: all(h.connected for h in agent.health.values()) and len(agent.health) == 3,
            20,
            "all devices connected",
        )
        before = {name: h.frames_ok for name, h in agent.health.items()}
        await wait_for(lambda: agent.health["uhf0"].frames_ok > before["uhf0"], 10, "first tag reads")

        # Everything goes away at once: broker down, both serial adapters unplugged.
        broker.stop()
        await reader.stop()
        await probe.stop()
        await wait_for(lambda: not any(h.connected for h in agent.health.values()), 20, "devices lost")
        await asyncio.sleep(1.5)
        broker.start()  # same port, same persistence file
        reader.start()
        probe.start()

        await wait_for(lambda: all(h.connected for h in agent.health.values()), 45, "devices recovered")
        marks = {name: h.frames_ok for name, h in agent.health.items()}
        publisher = NumberedPublisher(broker)
        for _ in range(5):
            publisher.publish()
        await wait_for(
            lambda: all(h.frames_ok > marks[name] for name, h in agent.health.items()),
            20,
            "frames after restart",
        )
        for name, health in agent.health.items():
            assert health.reconnects >= 1, name
        # The health report the cloud would receive says so too.
        events = [h.to_event(agent.clock.now()) for h in agent.health.values()]
        assert all(e.connected and e.reconnects >= 1 for e in events)
    finally:
        if publisher is not None:
            publisher.close()
        stop.set()
        await asyncio.wait_for(running, 30)
        await reader.stop()
        await probe.stop()


# ---------------------------------------------------------------------------------------- (d)


def every_input_saw_garbage_and_data(site: Site) -> bool:
    """The cloud holds probe readings and device health reporting bad frames on each kind of input.

    Counted by SQLite itself: parsing every stored payload here, several times a second, starved the
    simulators that share this event loop (the probe then never answered in time)."""
    probe_readings = site.cloud.query(
        "SELECT COUNT(*) FROM events WHERE edge_id = ? AND kind = 'sensor_reading'"
        " AND json_extract(payload, '$.sensor_id') = 'probe-1'",
        [EDGE_ID],
    )[0][0]
    bad = site.cloud.query(
        "SELECT json_extract(payload, '$.device_id'), MAX(json_extract(payload, '$.frames_bad')) FROM events"
        " WHERE edge_id = ? AND kind = 'device_health' GROUP BY 1",
        [EDGE_ID],
    )
    frames_bad = {str(device): int(n or 0) for device, n in bad}
    return probe_readings > 0 and all(frames_bad.get(d, 0) > 0 for d in ("mqtt", "reader-0", "probe-1"))


async def test_garbage_on_every_input_good_data_intact(site: Site) -> None:
    publisher = NumberedPublisher(site.broker)
    garbage = NumberedPublisher(site.broker)
    site.edge.start()
    stop_garbage = asyncio.Event()
    rng = random.Random(7)

    async def spray() -> None:
        rounds = 0
        while not stop_garbage.is_set():
            rounds += 1
            for reader in site.readers:
                reader.inject_noise(rng.randint(1, 64))
                reader.corrupt_next(1)
            # At most one probe answer in three damaged, counted by answers (not by rounds: under load
            # the edge polls slower, and damage queued per round would spoil every answer).
            if site.probe.frames_corrupted * 3 < site.probe.responses_sent and rounds % 60 == 0:
                site.probe.corrupt_next(1)
            garbage.publish(rng.choice([b"\xff\x00garbage", b"{", b"[1,2]", b'{"temperature":"hot"}', b"{}"]))
            publisher.publish()
            await asyncio.sleep(0.02)

    spraying = asyncio.create_task(spray())
    await asyncio.sleep(6)  # the least spraying time; under load, spray on until every input was hit
    deadline = time.monotonic() + 90
    while not await asyncio.to_thread(every_input_saw_garbage_and_data, site):
        assert time.monotonic() < deadline, "timed out after 90 s waiting for probe readings and bad frames"
        await asyncio.sleep(0.5)
    stop_garbage.set()
    await spraying
    await wait_for(lambda: len(publisher.acked) == publisher.sent, 10, "broker PUBACKs")
    site.stop_simulators()
    publisher.close()
    garbage.close()
    await wait_for(site.cloud_matches_edge, 60, "the cloud to catch up")
    assert await asyncio.to_thread(site.edge.stop) == 0, site.edge.log_tail()
    assert_exactly_once(site)

    readings = [p for p in site.cloud.payloads(EDGE_ID, "sensor_reading") if p["sensor_id"] == NUM_SENSOR]
    values = {number_of(p["value"]) for p in readings if p["quantity"] == "temperature"}
    assert values == publisher.acked, "good MQTT readings lost or altered among the garbage"
    observed = {p["epc"] for p in site.cloud.payloads(EDGE_ID, "tag_observation")}
    assert observed == set(TAGS), "line noise produced phantom tags or hid real ones"
    probe = [p for p in site.cloud.payloads(EDGE_ID, "sensor_reading") if p["sensor_id"] == "probe-1"]
    assert probe and all(p["value"] in (4.0, 60.0) for p in probe)
    health = site.cloud.payloads(EDGE_ID, "device_health")
    bad = {h["device_id"]: h["frames_bad"] for h in health}
    assert bad.get("mqtt", 0) > 0 and bad.get("reader-0", 0) > 0 and bad.get("probe-1", 0) > 0, bad
    status = read_status(site.edge.db_path)
    assert status["counters"].get("mqtt_malformed", 0) > 0
