"""50 MQTT sensors publishing QoS 1 as fast as they can -> Mosquitto -> edge (durable outbox) -> cloud.

Run: ``.venv/bin/python bench/mqtt_to_cloud.py [--publishers 50] [--messages 2000]``.

Everything is a real process: a private Mosquitto, ``shelfsense cloud serve`` on SQLite,
``shelfsense edge run`` and the publishers (plain MQTT 3.1.1 QoS 1 clients on asyncio, in
``--publisher-procs`` processes; ``--publisher-procs 0`` runs paho clients in threads instead). Each
message is a Zigbee2MQTT payload with temperature AND humidity, so it becomes two sensor readings
(two events) on the edge and in the cloud. Every message carries a unique number, so the cloud's
``events`` table tells exactly which readings arrived: ``msgs_per_s`` (unique messages stored in
the cloud per second, from the first publish to the last one stored; ``readings_per_s`` is twice
that), ``lost`` (acknowledged by the broker but never stored), ``duplicates`` (stored more than
once: MQTT QoS 1 is at-least-once). The cloud runs ``--cloud-workers`` server processes (default
2, one per core of the benchmark machine, as Python runs one core per process; ``--cloud-workers
1`` is the single-process default of ``cloud serve``). ``cpu_us_per_msg_<part>`` is the CPU time
(user + system) each process spent per stored message over the run: all parts share this
machine's cores, so they say where the time goes. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import paho.mqtt.client as paho
from edge_harness import CloudChild, EdgeChild, cpu_seconds, peak_rss_mb, toml_table
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.mqtt_packets import (
    MQTT_V311,
    Connack,
    MqttPacketDecoder,
    Packet,
    encode_connect,
    encode_disconnect,
    encode_publish,
)
from shelfsense.services import MosquittoProcess

EDGE_ID = "edge-mqtt-bench"
CLIENT_ID = f"shelfsense-{EDGE_ID}"


def payload(n: int) -> bytes:
    return b'{"temperature":%.2f,"humidity":50}' % (-50 + n * 0.01)


def number_of(value: float) -> int:
    return round((value + 50) * 100)


def presubscribe(broker: MosquittoProcess, publishers: int) -> None:
    """Create the edge's persistent session first, so no message precedes its subscription."""
    done = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=CLIENT_ID, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_connect = lambda c, *_: c.subscribe([(f"bench/s{i}", 1) for i in range(publishers)])
    client.on_subscribe = lambda *_: done.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=props)
    client.loop_start()
    if not done.wait(10):
        raise SystemExit("could not create the edge's MQTT session")
    client.disconnect()
    client.loop_stop()


class Publisher(threading.Thread):
    def __init__(self, broker: MosquittoProcess, index: int, count: int) -> None:
        super().__init__(daemon=True)
        self.broker, self.index, self.count = broker, index, count
        self.acked = 0

    def run(self) -> None:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{self.index}")
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        infos = [client.publish(f"bench/s{self.index}", payload(n), qos=1) for n in range(self.count)]
        for info in infos:
            info.wait_for_publish(120)
            self.acked += int(info.is_published())
        client.disconnect()
        client.loop_stop()


# --- raw MQTT 3.1.1 publishers --------------------------------------------------------------------
# paho costs ~100 us of Python per QoS 1 publish (packet queue, socketpair wake-up, per-message
# Condition objects): 50 paho clients in one process top out at ~3k msg/s on this machine, which
# measured the publishers instead of the edge. Real sensors are separate devices; these publishers
# speak plain MQTT 3.1.1 QoS 1 on asyncio streams (devices.mqtt_packets, a window of unacked
# PUBLISHes per connection, PUBACKs counted), split over a few processes.


@dataclass
class RawPublisher:
    """One sensor: an MQTT 3.1.1 connection and its QoS 1 PUBLISH packets, encoded before the clock
    starts (what a sensor's firmware spends on encoding is not the system under test)."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    packets: list[bytes]

    @classmethod
    async def connect(cls, host: str, port: int, index: int, count: int) -> RawPublisher:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            encode_connect(f"bench-pub-{index}", version=MQTT_V311, keepalive_s=120, clean_start=True)
        )
        decoder = MqttPacketDecoder(MQTT_V311)
        answer: list[Packet] = []
        while not answer:
            answer = decoder.feed(await reader.read(4096) or b"\xff")
        if not isinstance(answer[0], Connack) or not answer[0].accepted:
            raise SystemExit(f"publisher {index}: broker refused the connection")
        topic = f"bench/s{index}"
        packets = [
            encode_publish(topic, payload(n), qos=1, packet_id=n % 65535 + 1, version=MQTT_V311)
            for n in range(count)
        ]
        return cls(index, reader, writer, packets)

    async def publish(self, window: int) -> int:
        """Publish everything, keeping ``window`` PUBLISHes unacknowledged; returns the PUBACK count.

        A publisher receives nothing but PUBACKs, 4 bytes each (``40 02 id id``): they are counted
        by length, with every first byte checked, instead of decoded one by one in Python.
        """
        count, sent, acked = len(self.packets), 0, 0
        pending = b""
        while acked < count:
            top = min(count, acked + window)
            if sent < top:
                self.writer.write(b"".join(self.packets[sent:top]))
                sent = top
            data = await self.reader.read(65536)
            if not data:
                raise SystemExit(f"publisher {self.index}: the broker closed the connection")
            pending += data
            whole = len(pending) - len(pending) % 4
            if pending[0:whole:4].strip(b"\x40") or pending[1:whole:4].strip(b"\x02"):
                raise SystemExit(f"publisher {self.index}: something other than PUBACKs arrived")
            acked += whole // 4
            pending = pending[whole:]
        self.writer.write(encode_disconnect())
        await self.writer.drain()
        self.writer.close()
        return acked


def _publisher_process(
    host: str, port: int, indexes: list[int], count: int, window: int, ready: Any, go: Any, out: Any
) -> None:
    async def all_of_them() -> int:
        sensors = await asyncio.gather(*(RawPublisher.connect(host, port, i, count) for i in indexes))
        ready.put(len(sensors))
        await asyncio.to_thread(go.wait)
        return sum(await asyncio.gather(*(sensor.publish(window) for sensor in sensors)))

    out.put(asyncio.run(all_of_them()))


def publish_raw(
    broker: MosquittoProcess, publishers: int, count: int, processes: int, window: int
) -> tuple[int, float]:
    """Run the publishers in ``processes`` processes; returns (PUBACKed messages, perf_counter at
    the start signal, once every publisher is connected with its packets encoded)."""
    context = multiprocessing.get_context("fork")
    ready, go, results = context.Queue(), context.Event(), context.Queue()
    shares = [share for k in range(processes) if (share := list(range(publishers))[k::processes])]
    children = [
        context.Process(
            target=_publisher_process,
            args=(broker.host, broker.port, share, count, window, ready, go, results),
        )
        for share in shares
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=120)
    began = time.perf_counter()
    go.set()
    acked = sum(int(results.get(timeout=600)) for _ in children)
    for child in children:
        child.join()
    return acked, began


def stored_count(cloud: CloudChild) -> int:
    """Sensor readings of the edge in the cloud (duplicates included): cheap enough to poll."""
    sql = "SELECT COUNT(*) FROM events WHERE edge_id = ? AND kind = 'sensor_reading'"
    return int(cloud.query(sql, [EDGE_ID])[0][0])


def batches_received(cloud: CloudChild) -> int:
    rows = cloud.query("SELECT batches FROM edges WHERE edge_id = ?", [EDGE_ID])
    return int(rows[0][0]) if rows else 0


def stored(cloud: CloudChild) -> tuple[Counter[tuple[str, int]], int]:
    rows = cloud.query(
        "SELECT json_extract(payload, '$.sensor_id'), json_extract(payload, '$.value') FROM events "
        "WHERE edge_id = ? AND kind = 'sensor_reading' "
        "AND json_extract(payload, '$.quantity') = 'temperature'",
        [EDGE_ID],
    )
    counts = Counter((str(sensor), number_of(float(value))) for sensor, value in rows)
    return counts, len(rows)


def edge_toml(broker: MosquittoProcess, publishers: int) -> str:
    parts = [toml_table("edge.mqtt", {"url": broker.url, "client_id": CLIENT_ID})]
    parts += [
        toml_table(
            "edge.mqtt.sensors", {"topic": f"bench/s{i}", "format": "zigbee2mqtt", "sensor_id": f"s{i}"}, True
        )
        for i in range(publishers)
    ]
    return "\n".join(parts)


def run(
    publishers: int,
    messages: int,
    workdir: Path,
    inflight: int | None,
    procs: int,
    window: int,
    cloud_workers: int = 1,
) -> dict[str, Any]:
    broker = MosquittoProcess(
        max_queued_messages=10_000_000, max_inflight_messages=inflight, autosave_interval_s=60
    ).start()
    cloud = CloudChild(workdir / "cloud", workers=cloud_workers)
    edge: EdgeChild | None = None
    try:
        token = cloud.register_edge(EDGE_ID)
        cloud.start()
        presubscribe(broker, publishers)
        edge = EdgeChild(
            workdir / "edge",
            cloud.url,
            token,
            EDGE_ID,
            extra=edge_toml(broker, publishers),
            edge_values={"batch_max_events": 5000, "health_interval_s": 30.0},
        ).start()
        time.sleep(2)  # the edge connects; messages before that wait in its session anyway
        servers = {"broker": broker.process, "edge": edge.process, "cloud": cloud.process}
        cpu_before = {name: cpu_seconds(proc.pid) for name, proc in servers.items() if proc}
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        if procs > 0:
            acked, began = publish_raw(broker, publishers, messages, procs, window)
        else:  # --publisher-procs 0: the paho clients, one thread each, in this process
            threads = [Publisher(broker, i, messages) for i in range(publishers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            acked = sum(t.acked for t in threads)
        published = time.perf_counter() - began
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        publisher_cpu = (children_after.ru_utime - children_before.ru_utime) + (
            children_after.ru_stime - children_before.ru_stime
        )
        print(f"{acked} messages acknowledged by the broker in {published:.1f} s", file=sys.stderr)
        deadline = time.monotonic() + 600
        # Poll a cheap count; the full (json_extract) check only once everything may be there.
        while True:
            while stored_count(cloud) < acked and time.monotonic() < deadline:
                time.sleep(0.1)
            elapsed = time.perf_counter() - began
            counts, rows = stored(cloud)
            if len(counts) >= acked or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        rss = peak_rss_mb(edge.process.pid) if edge.process else 0.0
        # CPU per stored message of each part: on a 2-core machine they share 200 us per message
        # at 10k msg/s, 100 us at 20k, so this says where the time goes.
        cpu = {name: cpu_seconds(proc.pid) - cpu_before[name] for name, proc in servers.items() if proc}
        if procs > 0:
            cpu["publishers"] = publisher_cpu
        cpu_us = {
            f"cpu_us_per_msg_{name}": round(1e6 * sec / max(1, len(counts)), 1) for name, sec in cpu.items()
        }
        expected = {(f"s{i}", n) for i in range(publishers) for n in range(messages)}
        return {
            "publishers": publishers,
            "messages": publishers * messages,
            "broker_acked": acked,
            "msgs_per_s": round(len(counts) / elapsed),
            "readings_per_s": round(stored_count(cloud) / elapsed),
            "cloud_requests": batches_received(cloud),
            "lost": len(expected - set(counts)),
            "duplicates": rows - len(counts),
            "elapsed_s": round(elapsed, 1),
            "publish_s": round(published, 1),
            "publisher_procs": procs,
            "cloud_workers": cloud_workers,
            "edge_peak_rss_mb": round(rss, 1),
            **cpu_us,
        }
    finally:
        if edge is not None:
            edge.stop()
        cloud.stop()
        broker.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--publishers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2000, help="per publisher (at most 18000)")
    parser.add_argument(
        "--publisher-procs",
        type=int,
        default=1,
        help="processes running the raw MQTT publishers (0: paho clients in threads, as before)",
    )
    parser.add_argument("--window", type=int, default=100, help="unacked QoS 1 publishes per publisher")
    parser.add_argument(
        "--cloud-workers",
        type=int,
        default=2,
        help="cloud server processes (cloud.workers; 1 = a single process, as `cloud serve` defaults to)",
    )
    parser.add_argument(
        "--broker-inflight",
        type=int,
        default=2000,
        help="Mosquitto max_inflight_messages (its default, 20, caps an edge that PUBACKs after commit)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shelfsense-bench-mqtt-") as folder:
        result = run(
            args.publishers,
            min(args.messages, 18_000),
            Path(folder),
            args.broker_inflight or None,
            args.publisher_procs,
            args.window,
            args.cloud_workers,
        )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
