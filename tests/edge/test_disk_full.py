"""A full disk at the edge: the agent stays up, MQTT waits in the broker, nothing is lost or doubled.

The edge database lives on a real, small tmpfs (mounted here; the test skips visibly when it
cannot mount, i.e. without root). A filler file takes every free byte while a real Mosquitto
holds the MQTT messages the edge may not acknowledge; a Modbus probe on a pseudo-terminal stands
for the serial devices whose readings are held in memory. Then the filler goes and the edge must
resume by itself. Real processes: ``shelfsense edge run`` and ``shelfsense cloud serve`` children.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import json
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from edge_harness import CloudChild, EdgeChild, toml_table
from paho.mqtt.enums import CallbackAPIVersion
from probe_site import EDGE_ID, probe_site
from test_durability import NUM_SENSOR, NUM_TOPIC, NumberedPublisher, number_of, presubscribe, wait_for

from edge.alarms import edge_alarm_topic
from edge.status import read_status
from edge.transports.mqtt import MqttTransport
from shelfsense.services import MosquittoProcess
from simulators.modbus_probe import ModbusProbeSimulator

pytestmark = pytest.mark.integration

DISK_BYTES = 16 * 1024 * 1024
MQTT_WINDOW = inspect.signature(MqttTransport).parameters["queue_max"].default


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of its own (a real file system that runs out of space)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system has no byte left (ENOSPC)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * chunk)
    try:  # prove it: not one more byte fits
        with (directory / "probe").open("wb", buffering=0) as out:
            out.write(b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    else:
        raise AssertionError("the disk is not full")
    return filler


class AlarmListener:
    """Collects the edge's local alarms from the broker (what a site's alarm panel would show)."""

    def __init__(self, broker: MosquittoProcess, topic: str) -> None:
        self.alarms: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="alarm-panel")
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(10), "alarm listener did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._lock:
            self.alarms.append(json.loads(msg.payload))

    def states(self) -> list[str]:
        with self._lock:
            return [a["state"] for a in self.alarms if a["rule"] == "disk_full"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class FullSite:
    cloud: CloudChild
    edge: EdgeChild
    broker: MosquittoProcess
    disk: Path
    probe: ModbusProbeSimulator
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def cloud_edge(self, column: str) -> Any:
        return self.cloud.query(f"SELECT {column} FROM edges WHERE edge_id = ?", [EDGE_ID])[0][0]

    def edge_alive(self) -> bool:
        return self.edge.process is not None and self.edge.process.poll() is None

    def numbers_in_cloud(self) -> list[int]:
        return [
            number_of(p["value"])
            for p in self.cloud.payloads(EDGE_ID, "sensor_reading")
            if p["sensor_id"] == NUM_SENSOR and p["quantity"] == "temperature"
        ]


@pytest.fixture
async def full_site(
    tmp_path: Path, small_disk: Path, mosquitto_factory: Callable[..., MosquittoProcess]
) -> AsyncIterator[FullSite]:
    broker = mosquitto_factory()
    presubscribe(broker, f"shelfsense-{EDGE_ID}", NUM_TOPIC)
    mqtt = "\n".join(
        [
            toml_table("edge.mqtt", {"url": broker.url, "client_id": f"shelfsense-{EDGE_ID}"}),
            toml_table(
                "edge.mqtt.sensors",
                {"topic": NUM_TOPIC, "format": "zigbee2mqtt", "sensor_id": NUM_SENSOR},
                True,
            ),
        ]
    )
    async with probe_site(tmp_path, mqtt) as base:
        # Logs and config on the ordinary disk; only the database on the small one.
        base.edge.edge_values = {"disk_full_retry_s": 0.5, "disk_full_reserve_mb": 0.5}
        base.edge.db_path = small_disk / "edge.db"
        site = FullSite(base.cloud, base.edge, broker, small_disk, base.probe)
        try:
            yield site
        finally:
            for cleanup in site.cleanups:
                cleanup()


async def test_full_disk_edge_stays_up_and_resumes_exactly_once(full_site: FullSite) -> None:
    site = full_site
    listener = AlarmListener(site.broker, edge_alarm_topic("site-1"))
    site.cleanups.append(listener.close)
    publisher = NumberedPublisher(site.broker)
    site.cleanups.append(publisher.close)
    site.edge.start()
    await wait_for(lambda: site.cloud.acked_through(EDGE_ID) > 5, 60, "the first events in the cloud")

    reserve = site.disk / "edge.db.reserve"
    assert reserve.stat().st_size == 500_000  # room for the sync's deletes once the disk is full
    filler = fill(site.disk)
    full_from = datetime.now().astimezone()
    # MQTT bursts until the edge's database cannot take them: the broker must keep the rest.
    while "raised" not in listener.states():
        assert publisher.sent < 4000, "the edge never noticed the full disk"
        for _ in range(500):
            publisher.publish()
        await wait_for(lambda: len(publisher.acked) == publisher.sent, 30, "broker PUBACKs")
        await asyncio.sleep(0.5)  # let the edge work on the burst before the next one
    await wait_for(lambda: bool(site.cloud_edge("disk_full")), 30, "the cloud's edge health: disk full")
    # More than the edge's MQTT window (4000 unacknowledged messages) while full: past it the edge
    # stops reading and the broker has to keep them.
    for _ in range(MQTT_WINDOW + 500):
        publisher.publish()
    await wait_for(lambda: len(publisher.acked) == publisher.sent, 30, "broker PUBACKs while full")
    answered = site.probe.responses_sent  # the probe keeps being read; its readings are held
    await wait_for(lambda: site.probe.responses_sent >= answered + 5, 30, "probe reads while full")
    assert site.edge_alive(), site.edge.log_tail()
    assert "EDGE DISK FULL" in site.edge.log_tail(400)

    filler.unlink()  # space comes back; nobody restarts anything
    full_until = datetime.now().astimezone()
    await wait_for(lambda: listener.states()[-1] == "cleared", 60, "the local alarm to clear")
    await wait_for(
        lambda: len(site.numbers_in_cloud()) >= publisher.sent, 120, "every MQTT reading in the cloud"
    )
    await wait_for(lambda: not site.cloud_edge("disk_full"), 30, "the cloud's edge health: disk ok")
    assert site.edge_alive() and site.edge.starts == 1, site.edge.log_tail()
    assert "disk space is back" in site.edge.log_tail(400)
    await wait_for(reserve.exists, 30, "the reserve to be allocated again")

    numbers = site.numbers_in_cloud()
    assert sorted(numbers) == list(range(publisher.sent)), "MQTT readings lost or stored twice"
    probe_times = [
        datetime.fromisoformat(p["time"])
        for p in site.cloud.payloads(EDGE_ID, "sensor_reading")
        if p["sensor_id"] == "probe-1"
    ]
    held = [t for t in probe_times if full_from < t < full_until]
    assert held, "no serial reading of the full period reached the cloud"
    assert listener.states()[:2] == ["raised", "cleared"]

    drained_through = 0

    def drained() -> bool:
        nonlocal drained_through
        status = read_status(site.edge.db_path)
        drained_through = status["last_seq"]
        return status["pending_events"] == 0 and site.cloud.acked_through(EDGE_ID) == drained_through

    await wait_for(drained, 60, "the outbox to drain")
    assert read_status(site.edge.db_path)["counters"].get("disk_full_episodes", 0) >= 1
    assert await asyncio.to_thread(site.edge.stop) == 0, site.edge.log_tail()
    seqs = site.cloud.seqs(EDGE_ID)  # no hole (and no duplicate: (edge, seq) is the key)
    assert len(seqs) >= drained_through and seqs == list(range(1, len(seqs) + 1))
