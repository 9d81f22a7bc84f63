"""``shelfsense demo``: the whole system on one machine, with nothing configured.

What runs, and where:

- the cloud service, a child process (``shelfsense cloud serve``) on SQLite in the work folder;
- an MQTT broker: ``SHELFSENSE_MQTT_URL`` if set, else a private ``mosquitto`` child process, else an
  embedded amqtt broker inside this process;
- the simulators, inside this process: two M100-family UHF modules forming one dock-door portal (outer and
  inner zone, each on its own pseudo-terminal), an XY-MD02 Modbus RTU probe on a pseudo-terminal and two
  MQTT sensors (Zigbee2MQTT and Tasmota formats), all driven by the built-in scenario;
- the edge agent, a child process (``shelfsense edge run``) that reads them all and syncs to the cloud.

Children get their own session so Ctrl-C reaches only this process, which then stops them in order:
simulators, edge (it flushes what it can), cloud, broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shelfsense.services import MosquittoProcess, ServiceError, free_port

SITE_ID = "site-1"
EDGE_ID = "edge-demo"
ZONE = "cold-room"
MAX_TEMP_C = 8.0
DEFAULT_CYCLE_S = 60.0
DRAIN_TIMEOUT_S = 20.0


@dataclass
class DemoOptions:
    duration_s: float | None = None
    json_summary: bool = False
    workdir: Path | None = None
    status_interval_s: float = 1.0


@dataclass
class Broker:
    kind: str
    url: str
    stop: Callable[[], Awaitable[None]]


async def start_broker() -> Broker:
    """The broker the demo uses, in the documented order of preference."""
    configured = os.environ.get("SHELFSENSE_MQTT_URL")
    if configured:

        async def _nothing() -> None:
            return None

        return Broker("external (SHELFSENSE_MQTT_URL)", configured, _nothing)
    if MosquittoProcess.available():
        mosquitto = MosquittoProcess().start()

        async def _stop_mosquitto() -> None:
            mosquitto.cleanup()

        return Broker(
            f"mosquitto child process (pid {mosquitto.process.pid if mosquitto.process else '?'})",
            mosquitto.url,
            _stop_mosquitto,
        )
    return await _start_amqtt()


async def _start_amqtt() -> Broker:
    from amqtt.broker import Broker as AmqttBroker

    port = free_port()
    broker = AmqttBroker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()

    async def _stop() -> None:
        await broker.shutdown()

    return Broker("embedded amqtt broker (no mosquitto binary found)", f"mqtt://127.0.0.1:{port}", _stop)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def _toml_table(name: str, values: dict[str, Any], array: bool = False) -> str:
    header = f"[[{name}]]" if array else f"[{name}]"
    body = "\n".join(f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None)
    return f"{header}\n{body}\n"


@dataclass
class ChildProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def spawn(name: str, args: list[str], workdir: Path) -> ChildProcess:
    log_path = workdir / f"{name}.log"
    log = log_path.open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "shelfsense", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env=env,
        start_new_session=True,  # Ctrl-C goes to the demo, which stops children in order
    )
    return ChildProcess(name, process, log_path)


@dataclass
class DemoRun:
    options: DemoOptions
    workdir: Path = field(init=False)
    owns_workdir: bool = field(init=False, default=False)
    cloud_port: int = field(init=False, default=0)
    user_token: str = field(init=False, default="")
    edge_token: str = field(init=False, default="")
    children: list[ChildProcess] = field(init=False, default_factory=list)
    tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    closers: list[Callable[[], None]] = field(init=False, default_factory=list)
    started_at: float = field(init=False, default_factory=time.monotonic)

    def say(self, message: str) -> None:
        # With --json, stdout carries only the summary object.
        stream = sys.stderr if self.options.json_summary else sys.stdout
        print(message, file=stream, flush=True)

    @property
    def cloud_url(self) -> str:
        return f"http://127.0.0.1:{self.cloud_port}"

    @property
    def cycle_s(self) -> float:
        duration = self.options.duration_s
        return min(DEFAULT_CYCLE_S, duration) if duration else DEFAULT_CYCLE_S

    # --- set-up ---------------------------------------------------------------------------------

    def prepare_workdir(self) -> None:
        if self.options.workdir is not None:
            self.workdir = self.options.workdir.resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
            for stale in ("cloud.db", "edge.db"):
                for suffix in ("", "-wal", "-shm"):
                    (self.workdir / f"{stale}{suffix}").unlink(missing_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="shelfsense-demo-"))
            self.owns_workdir = True

    async def start_cloud(self) -> None:
        from cloud.admin import create_edge, create_user

        db_url = f"sqlite+aiosqlite:///{self.workdir / 'cloud.db'}"
        # The admin helpers run their own event loop: keep them off ours.
        self.edge_token = (await asyncio.to_thread(create_edge, db_url, SITE_ID, EDGE_ID))[1]
        self.user_token = await asyncio.to_thread(create_user, db_url, "demo-operator", "admin")
        self.cloud_port = free_port()
        config = self.workdir / "cloud.toml"
        config.write_text(
            "demo = true\n"
            + _toml_table("cloud", {"host": "127.0.0.1", "port": self.cloud_port, "db_url": db_url})
            + _toml_table(
                "zones",
                {
                    "id": ZONE,
                    "site_id": SITE_ID,
                    "min_temp_c": 0.0,
                    "max_temp_c": MAX_TEMP_C,
                    "max_humidity": 90.0,
                },
                array=True,
            )
        )
        self.children.append(spawn("cloud", ["cloud", "serve", "--config", str(config)], self.workdir))
        await self.wait_for_cloud()

    async def wait_for_cloud(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.children[-1].process.poll() is not None:
                    raise ServiceError("cloud exited during start-up:\n" + self.children[-1].tail())
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.cloud_url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise ServiceError("cloud did not become ready:\n" + self.children[-1].tail())

    def start_simulators(self, broker_url: str) -> dict[str, str]:
        from simulators.modbus_probe import ModbusProbeSimulator
        from simulators.mqtt_sensors import MqttSensorSimulator, SimulatedMqttSensor
        from simulators.scenario import DemoScenario, ScenarioRunner
        from simulators.uhf_reader import UhfReaderSimulator

        runner = ScenarioRunner(DemoScenario(cycle_s=self.cycle_s))
        scenario = runner.scenario

        def room(offset: float) -> Callable[[], tuple[float, float]]:
            def read() -> tuple[float, float]:
                temperature, humidity = scenario.cold_room(runner.elapsed())
                return temperature + offset, humidity

            return read

        outer = UhfReaderSimulator(lambda: scenario.outer_field(runner.elapsed()))
        inner = UhfReaderSimulator(lambda: scenario.inner_field(runner.elapsed()))
        probe = ModbusProbeSimulator({1: room(0.0)})
        mqtt = MqttSensorSimulator(
            broker_url,
            [
                SimulatedMqttSensor(
                    "zigbee2mqtt/coldroom_door", "zigbee2mqtt", room(0.3), battery=96, linkquality=132
                ),
                SimulatedMqttSensor("tele/coldroom_back/SENSOR", "tasmota", room(-0.2)),
            ],
            interval_s=1.0,
        )
        for simulator in (outer, inner, probe, mqtt):
            self.tasks.append(asyncio.create_task(simulator.run()))
            self.closers.append(simulator.close)
        return {"outer": outer.port, "inner": inner.port, "probe": probe.port}

    def start_edge(self, broker_url: str, ports: dict[str, str]) -> Path:
        db_path = self.workdir / "edge.db"
        parts = [
            "demo = true\n",
            _toml_table(
                "edge",
                {
                    "edge_id": EDGE_ID,
                    "site_id": SITE_ID,
                    "cloud_url": self.cloud_url,
                    "token": self.edge_token,
                    "db_path": str(db_path),
                    "sync_interval_s": 0.5,
                    "health_interval_s": 5.0,
                },
            ),
            _toml_table(
                "edge.uhf_readers", {"id": "dock-outer", "port": ports["outer"], "location": "dock"}, True
            ),
            _toml_table(
                "edge.uhf_readers", {"id": "dock-inner", "port": ports["inner"], "location": ZONE}, True
            ),
            _toml_table(
                "edge.portals",
                {
                    "id": "dock-door-1",
                    "outer_reader": "dock-outer",
                    "inner_reader": "dock-inner",
                    "inside_location": ZONE,
                    "outside_location": "dock",
                    "settle_s": 1.0,
                },
                True,
            ),
            _toml_table(
                "edge.modbus_probes",
                {
                    "port": ports["probe"],
                    "slave": 1,
                    "sensor_id": "probe-1",
                    "zone": ZONE,
                    "poll_interval_s": 1.0,
                },
                True,
            ),
            _toml_table(
                "edge.mqtt",
                {"url": broker_url, "client_id": f"shelfsense-{EDGE_ID}", "protocol": self.mqtt_protocol},
            ),
            _toml_table(
                "edge.mqtt.sensors",
                {
                    "topic": "zigbee2mqtt/coldroom_door",
                    "format": "zigbee2mqtt",
                    "sensor_id": "z2m-coldroom-door",
                    "zone": ZONE,
                },
                True,
            ),
            _toml_table(
                "edge.mqtt.sensors",
                {
                    "topic": "tele/coldroom_back/SENSOR",
                    "format": "tasmota",
                    "sensor_id": "tasmota-coldroom-back",
                    "zone": ZONE,
                },
                True,
            ),
            _toml_table(
                "zones",
                {
                    "id": ZONE,
                    "site_id": SITE_ID,
                    "min_temp_c": 0.0,
                    "max_temp_c": MAX_TEMP_C,
                    "max_humidity": 90.0,
                },
                True,
            ),
        ]
        config = self.workdir / "edge.toml"
        config.write_text("\n".join(parts))
        self.children.append(spawn("edge", ["edge", "run", "--config", str(config)], self.workdir))
        return db_path

    mqtt_protocol: str = "mqttv5"

    # --- status ---------------------------------------------------------------------------------

    async def cloud_summary(self, client: httpx.AsyncClient) -> dict[str, Any]:
        response = await client.get(
            f"{self.cloud_url}/api/v1/summary", headers={"Authorization": f"Bearer {self.user_token}"}
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def edge_status(self, db_path: Path) -> dict[str, Any]:
        from edge.status import EdgeStatusUnavailable, read_status

        try:
            return read_status(db_path)
        except EdgeStatusUnavailable:
            return {}

    def status_line(self, edge: dict[str, Any], cloud: dict[str, Any]) -> str:
        sensors = edge.get("sensors") or []
        temps = [s["value"] for s in sensors if s.get("quantity") == "temperature"]
        room = f" ({max(temps):.1f} °C max)" if temps else ""
        return (
            f"[{time.monotonic() - self.started_at:5.0f} s] reads {edge.get('tag_reads', 0)}"
            f" | on hand {cloud.get('items_on_hand', 0)}{self.by_location(edge)}"
            f" | sensors {len({s['sensor_id'] for s in sensors})}{room}"
            f" | readings {cloud.get('sensor_readings', 0)}"
            f" | alerts open {cloud.get('alerts_open', 0)}"
            f" | sync lag {edge.get('sync_lag_s', 0):.1f} s, unsynced {edge.get('pending_events', 0)}"
        )

    @staticmethod
    def by_location(edge: dict[str, Any]) -> str:
        where = edge.get("items_by_location") or {}
        return f" ({', '.join(f'{k} {v}' for k, v in sorted(where.items()))})" if where else ""

    async def status_loop(self, db_path: Path, stop: asyncio.Event) -> None:
        interactive = sys.stdout.isatty() and not self.options.json_summary
        last_print = 0.0
        async with httpx.AsyncClient(timeout=2.0) as client:
            while not stop.is_set():
                edge = self.edge_status(db_path)
                try:
                    cloud = await self.cloud_summary(client)
                except httpx.HTTPError:
                    cloud = {}
                line = self.status_line(edge, cloud)
                if interactive:
                    print("\r" + line.ljust(120), end="", flush=True)
                elif time.monotonic() - last_print >= 5.0:
                    self.say(line)
                    last_print = time.monotonic()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.options.status_interval_s)
        if interactive:
            print(flush=True)

    async def drain(self, db_path: Path) -> None:
        """Give the edge time to decide the last passages and sync everything."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            pending = self.edge_status(db_path).get("pending_events", 1)
            if pending == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 2.5:
                    return
            else:
                quiet_since = None
            await asyncio.sleep(0.25)

    # --- the run --------------------------------------------------------------------------------

    async def run(self) -> int:
        self.prepare_workdir()
        broker = await start_broker()
        if broker.kind.startswith("embedded amqtt"):
            self.mqtt_protocol = "mqttv311"  # amqtt speaks MQTT 3.1.1 only
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            self.say(f"MQTT broker: {broker.kind} at {broker.url}")
            await self.start_cloud()
            cloud_pid = self.children[-1].process.pid
            self.say(f"cloud: {self.cloud_url} (pid {cloud_pid}, SQLite {self.workdir / 'cloud.db'})")
            self.say(f"API docs: {self.cloud_url}/docs")
            self.say(f"operator page: {self.cloud_url}/ui/ (sign in with the operator token below)")
            self.say(
                f"operator token (admin, demo only): {self.user_token[:10]}... (full token in {self.workdir})"
            )
            (self.workdir / "operator-token.txt").write_text(self.user_token + "\n")
            ports = self.start_simulators(broker.url)
            self.say(
                f"simulators: portal outer {ports['outer']}, inner {ports['inner']}, "
                f"Modbus probe {ports['probe']}, MQTT zigbee2mqtt + tasmota"
            )
            db_path = self.start_edge(broker.url, ports)
            edge_pid = self.children[-1].process.pid
            self.say(f"edge: {EDGE_ID} (pid {edge_pid}, SQLite {db_path}); Ctrl-C stops everything")
            status = asyncio.create_task(self.status_loop(db_path, stop))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.duration_s)
            interrupted = stop.is_set()
            stop.set()
            await status
            self.stop_simulators()
            if not interrupted:
                await self.drain(db_path)
            summary = await self.summarise(db_path, broker)
            self.print_summary(summary)
            return 0
        finally:
            self.stop_simulators()
            for child in reversed(self.children):
                child.stop()
            await broker.stop()
            if self.owns_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_simulators(self) -> None:
        for close in self.closers:
            close()
        self.closers.clear()
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()

    async def summarise(self, db_path: Path, broker: Broker) -> dict[str, Any]:
        edge_child = next(child for child in self.children if child.name == "edge")
        edge_exit = edge_child.stop()  # graceful: the edge flushes before it exits
        edge = self.edge_status(db_path)
        async with httpx.AsyncClient(timeout=5.0) as client:
            cloud = await self.cloud_summary(client)
        edges = {e["edge_id"]: e for e in cloud.get("edges", [])}
        return {
            "tag_reads": edge.get("tag_reads", 0),
            "items_on_hand": cloud.get("items_on_hand", 0),
            "edge_items_on_hand": edge.get("items_on_hand", 0),
            "passages": cloud.get("passages", 0),
            "sensor_readings": cloud.get("sensor_readings", 0),
            "alerts_open": cloud.get("alerts_open", 0),
            "alerts_total": cloud.get("alerts_total", 0),
            "synced_events": cloud.get("events_received", 0),
            "unsynced_events": edge.get("pending_events", 0),
            "acked_through": edges.get(EDGE_ID, {}).get("acked_through", 0),
            "edge_last_seq": edge.get("last_seq", 0),
            "edge_exit_code": edge_exit,
            "broker": broker.kind,
            "duration_s": round(time.monotonic() - self.started_at, 1),
            "api_docs": f"{self.cloud_url}/docs",
        }

    def print_summary(self, summary: dict[str, Any]) -> None:
        if self.options.json_summary:
            print(json.dumps(summary, sort_keys=True), flush=True)
            return
        print("\nsummary:")
        for key, value in summary.items():
            print(f"  {key:20} {value}")


def run_demo(options: DemoOptions) -> int:
    # One status line per second is the demo's output; per-request client logs would drown it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return asyncio.run(DemoRun(options).run())
    except ServiceError as exc:
        print(f"shelfsense demo: {exc}", file=sys.stderr)
        return 1
