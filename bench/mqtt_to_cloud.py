"""50 MQTT sensors publishing QoS 1 as fast as they can -> Mosquitto -> edge (durable outbox) -> cloud.

Run: ``.venv/bin/python bench/mqtt_to_cloud.py [--publishers 50] [--messages 2000]``.

Everything is a real process: a private Mosquitto, ``shelfsense cloud serve`` on SQLite and
``shelfsense edge run``; the publishers are paho clients in this process (one thread each). Every
message carries a unique number, so the cloud's ``events`` table tells exactly which readings
arrived: ``msgs_per_s`` (unique messages stored in the cloud per second, from the first publish to
the last one stored), ``lost`` (acknowledged by the broker but never stored), ``duplicates``
(stored more than once: MQTT QoS 1 is at-least-once). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import paho.mqtt.client as paho
from edge_harness import CloudChild, EdgeChild, peak_rss_mb, toml_table
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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


def stored(cloud: CloudChild) -> tuple[Counter[tuple[str, int]], int]:
    conn = sqlite3.connect(f"{cloud.db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute(
            "SELECT json_extract(payload, '$.sensor_id'), json_extract(payload, '$.value') FROM events "
            "WHERE edge_id = ? AND kind = 'sensor_reading' "
            "AND json_extract(payload, '$.quantity') = 'temperature'",
            (EDGE_ID,),
        ).fetchall()
    finally:
        conn.close()
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


def run(publishers: int, messages: int, workdir: Path) -> dict[str, Any]:
    broker = MosquittoProcess(max_queued_messages=10_000_000).start()
    cloud = CloudChild(workdir / "cloud")
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
        threads = [Publisher(broker, i, messages) for i in range(publishers)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        published = time.perf_counter() - began
        acked = sum(t.acked for t in threads)
        print(f"{acked} messages acknowledged by the broker in {published:.1f} s", file=sys.stderr)
        deadline = time.monotonic() + 600
        counts, rows = stored(cloud)
        while len(counts) < acked and time.monotonic() < deadline:
            time.sleep(0.5)
            counts, rows = stored(cloud)
        elapsed = time.perf_counter() - began
        rss = peak_rss_mb(edge.process.pid) if edge.process else 0.0
        expected = {(f"s{i}", n) for i in range(publishers) for n in range(messages)}
        return {
            "publishers": publishers,
            "messages": publishers * messages,
            "broker_acked": acked,
            "msgs_per_s": round(len(counts) / elapsed),
            "lost": len(expected - set(counts)),
            "duplicates": rows - len(counts),
            "elapsed_s": round(elapsed, 1),
            "publish_s": round(published, 1),
            "edge_peak_rss_mb": round(rss, 1),
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shelfsense-bench-mqtt-") as folder:
        print(json.dumps(run(args.publishers, min(args.messages, 18_000), Path(folder))))


if __name__ == "__main__":
    main()
