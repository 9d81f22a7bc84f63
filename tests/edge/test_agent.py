"""The whole edge agent: simulated readers, probe and MQTT broker, a stub cloud, then status."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from edge_cloud_stub import FakeCloud, Request
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import EdgeAgent
from edge.status import read_status
from shelfsense.config import (
    EdgeSettings,
    ModbusProbeConfig,
    MqttConfig,
    PortalConfig,
    Settings,
    UhfReaderConfig,
    ZoneLimits,
)
from simulators.modbus_probe import ModbusProbeSimulator
from simulators.uhf_reader import UhfReaderSimulator

pytestmark = pytest.mark.integration
EPC = "3034ABCD0000000000000001"
Responder = Callable[[Request], tuple[int, bytes]]


def passing_tag(start: float, t0: float, t1: float, peak: float) -> Callable[[], list[tuple[str, int]]]:
    """A reader field that sees EPC between t0 and t1 (s after start), strongest at ``peak``."""

    def field() -> list[tuple[str, int]]:
        elapsed = time.monotonic() - start
        return [(EPC, int(-40 - 20 * abs(elapsed - peak)))] if t0 <= elapsed <= t1 else []

    return field


class AlarmListener:
    def __init__(self, broker: Any) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("shelfsense/+/alarms/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, json.loads(m.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_agent_end_to_end(
    cloud: Callable[[Responder], Awaitable[FakeCloud]], mosquitto_broker: Any, tmp_path: Path
) -> None:
    fake = await cloud(
        lambda r: (
            200,
            json.dumps({"acked_through": r.batch.events[-1].seq, "accepted": 0, "duplicates": 0}).encode(),
        )
    )
    start = time.monotonic()
    outer = UhfReaderSimulator(passing_tag(start, 0.2, 0.9, 0.5), reads_per_s=50)
    inner = UhfReaderSimulator(passing_tag(start, 0.6, 1.4, 1.1), reads_per_s=50)
    probe = ModbusProbeSimulator({1: lambda: (9.5, 60.0)})  # the cold room is too warm
    sims = [asyncio.create_task(s.run()) for s in (outer, inner, probe)]
    listener = AlarmListener(mosquitto_broker)
    await asyncio.to_thread(listener.subscribed.wait, 5)
    db = tmp_path / "edge.db"
    settings = Settings(
        demo=True,
        edge=EdgeSettings(
            cloud_url=fake.url,
            db_path=db,
            sync_interval_s=0.05,
            health_interval_s=0.2,
            uhf_readers=[
                UhfReaderConfig(id="outer", port=outer.port),
                UhfReaderConfig(id="inner", port=inner.port),
            ],
            portals=[
                PortalConfig(
                    id="dock-1",
                    outer_reader="outer",
                    inner_reader="inner",
                    inside_location="store",
                    settle_s=0.3,
                )
            ],
            modbus_probes=[
                ModbusProbeConfig(port=probe.port, sensor_id="probe-1", zone="cold-room", poll_interval_s=0.1)
            ],
            mqtt=MqttConfig(url=mosquitto_broker.url, client_id="edge-agent-test"),
        ),
        zones=[ZoneLimits(id="cold-room", max_temp_c=8.0)],
    )
    stop = asyncio.Event()
    agent_task = asyncio.create_task(EdgeAgent(settings, cycle_s=0.1).run(stop))

    def cloud_kinds() -> set[str]:
        return {se.event.kind for r in fake.requests for se in r.batch.events}

    try:
        async with asyncio.timeout(15):
            while (
                not {"portal_passage", "local_alarm", "device_health"} <= cloud_kinds()
                or not listener.messages
            ):
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(agent_task, 10)
        listener.close()
        for task in sims:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sim in (outer, inner, probe):
            sim.close()

    events = [se for r in fake.requests for se in r.batch.events]
    seqs = sorted({se.seq for se in events})
    assert seqs == list(range(1, len(seqs) + 1))  # gap-free, every event reached the cloud
    passages = [se.event for se in events if se.event.kind == "portal_passage"]
    assert [(p.epc, p.direction) for p in passages] == [(EPC, "in")]
    assert {"tag_observation", "stock_movement", "sensor_reading"} <= cloud_kinds()
    topic, alarm = listener.messages[0]
    assert topic == "shelfsense/site-1/alarms/cold-room"
    assert (alarm["rule"], alarm["state"], alarm["value"]) == ("max_temperature", "raised", 9.5)

    status = read_status(db)
    assert status["items_by_location"] == {"store": 1}
    assert status["tag_reads"] > 10
    assert [(a["zone"], a["rule"]) for a in status["alarms_open"]] == [("cold-room", "max_temperature")]
    assert ("probe-1", "temperature", 9.5) in {
        (s["sensor_id"], s["quantity"], s["value"]) for s in status["sensors"]
    }
    assert status["counters"]["frames_ok"] > 10
    assert status["last_seq"] >= status["acked_through"] > 0
