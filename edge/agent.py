"""The edge agent: wires devices, smoothing, portals, alarms, the outbox and the cloud sync.

Data flow (all on one event loop; paho's thread only hands messages over)::

    UHF serial --TagRead--> TagSmoother --TagObservation--+
                      \\--> PortalTracker --PortalPassage, StockMovement--+
    Modbus probe / MQTT sensors --SensorReading--> AlarmEvaluator --LocalAlarm--+
    supervisors --DeviceHealth-------------------------------------------------+--> OutboxWriter
                                                                         (group commit, ledger)
    Outbox --sync_loop--> cloud

Every device runs under :func:`edge.supervisor.supervise`. SIGTERM/SIGINT set the stop event: the
devices stop, smoothers and portals are flushed, pending commits finish, the database is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from devices.readings import TagRead
from edge.alarms import AlarmEvaluator, alarm_payload, alarm_topic
from edge.clock import default_clock, utcnow
from edge.errors import EdgeError
from edge.outbox import Outbox, OutboxBudget, OutboxWriter
from edge.portal import PortalTracker
from edge.quality import Judge
from edge.smoothing import TagSmoother
from edge.supervisor import DeviceHealthState, emit_health_periodically, supervise, wait_or_stop
from edge.sync import SyncClient, flush_on_stop, sync_loop
from edge.transports.llrp import LlrpTransport
from edge.transports.modbus import ModbusProbeTransport
from edge.transports.mqtt import MqttTransport
from edge.transports.pn532 import Pn532Transport
from edge.transports.rdm6300 import Rdm6300Transport
from edge.transports.serial_uhf import SILENCE_LIMIT_S as SERIAL_SILENCE_LIMIT_S
from edge.transports.serial_uhf import UhfSerialTransport
from shelfsense.config import EdgeSettings, Settings
from shelfsense.contract import Event, LocalAlarm, SensorReading
from shelfsense.process import tune_gc

log = logging.getLogger(__name__)

MQTT_DEVICE_ID = "mqtt"
DEVICE_COUNTERS = ("frames_ok", "frames_bad", "reconnects")
# A clean stop tries this long to hand the last events to the cloud before exiting.
FINAL_SYNC_TIMEOUT_S = 5.0
_Device = tuple[str, DeviceHealthState, Callable[[], Awaitable[None]]]


class EdgeAgent:
    def __init__(self, settings: Settings, *, cycle_s: float = 1.0) -> None:
        self.settings = settings
        self.edge = settings.edge
        self.cycle_s = cycle_s
        self.outbox = Outbox(self.edge.db_path, self.edge.synchronous, budget_of(self.edge))
        default_clock.warn_s = self.edge.clock_skew_warn_s
        self.counters: Counter[str] = Counter()
        self.health: dict[str, DeviceHealthState] = {}
        self.smoothers = {
            r.id: TagSmoother(r.id, cycle_s, r.location, min_reads=r.min_reads, grace_s=r.grace_s)
            for r in self.edge.uhf_readers
        }
        self.portals = [PortalTracker(portal) for portal in self.edge.portals]
        self.mqtt: MqttTransport | None = None
        self._writer: OutboxWriter | None = None
        self._alarms = AlarmEvaluator(settings.zones)
        self._frames_seen = (0, 0)
        self._device_seen: dict[str, tuple[int, int, int]] = {}
        # Logical reader id -> (its device's health, the device's silence limit): the portals'
        # liveness input. Filled by _devices().
        self._reader_liveness: dict[str, tuple[DeviceHealthState, float]] = {}

    # ------------------------------------------------------------------ event intake

    def on_tag_read(self, reader_id: str, read: TagRead, now: datetime) -> None:
        """Called by the UHF transports for every valid read (on the event loop)."""
        self.counters["tag_reads"] += 1
        self.smoothers[reader_id].add(read, now)
        for portal in self.portals:
            portal.observe(reader_id, read.epc, read.rssi, now)

    async def submit(self, events: Sequence[Event]) -> list[int | None]:
        """Evaluate alarms, then commit events + alarms + counter deltas in one transaction."""
        if self._writer is None:
            raise EdgeError("the agent is not running")
        alarms: list[LocalAlarm] = []
        # Clock-skew, out-of-range and stale flags (edge.quality), judged at one instant per batch.
        judge = Judge(utcnow(), self.edge.reading_stale_s, default_clock.warn_s)
        events = [judge.flag(e) if isinstance(e, SensorReading) else e for e in events]
        for event in events:
            # A dead probe's impossible value is a device fault, not an excursion: no alarm.
            if isinstance(event, SensorReading) and "out_of_range" not in event.flags:
                alarms.extend(self._alarms.evaluate(event))
        seqs = await self._writer.submit([*events, *alarms], self._take_counters())
        for alarm in alarms:
            self._announce(alarm)
        return seqs

    def _take_counters(self) -> dict[str, int]:
        ok = sum(h.frames_ok for h in self.health.values())
        bad = sum(h.frames_bad for h in self.health.values())
        self.counters["frames_ok"] += ok - self._frames_seen[0]
        self.counters["frames_bad"] += bad - self._frames_seen[1]
        self._frames_seen = (ok, bad)
        # Per device too (``device.<id>.frames_bad`` ...), so `shelfsense edge status` can name the culprit.
        for name, h in self.health.items():
            now = (h.frames_ok, h.frames_bad, h.reconnects)
            before = self._device_seen.get(name, (0, 0, 0))
            for field, new, old in zip(DEVICE_COUNTERS, now, before, strict=True):
                self.counters[f"device.{name}.{field}"] += new - old
            self._device_seen[name] = now
        deltas = {name: value for name, value in self.counters.items() if value}
        self.counters.clear()
        return deltas

    def _announce(self, alarm: LocalAlarm) -> None:
        log.warning(
            "alarm %s: zone %s sensor %s %s=%.2f (limit %.2f)",
            alarm.state,
            alarm.zone,
            alarm.sensor_id,
            alarm.rule,
            alarm.value,
            alarm.limit,
        )
        if self.mqtt is not None and not self.mqtt.publish(
            alarm_topic(self.edge.site_id, alarm.zone), alarm_payload(alarm)
        ):
            log.info("alarm not published on MQTT (offline); it is in the outbox for the cloud")

    # ------------------------------------------------------------------ tasks

    async def _tag_pipeline(self, stop: asyncio.Event) -> None:
        """Every cycle: flush smoothers, decide settled portal passages, commit with counters."""
        while True:
            stopping = await wait_or_stop(stop, self.cycle_s)
            now = utcnow()
            events: list[Event] = []
            for smoother in self.smoothers.values():
                events.extend(smoother.flush(now, force=stopping))
            for portal in self.portals:
                self._report_liveness(portal, now)
                # At shutdown undecided tags stay undecided: forcing them would guess "unknown".
                events.extend(portal.poll(now))
                if stopping:  # decided passages still held by the dwell rule are not lost
                    events.extend(portal.flush_held())
            if events or any(self.counters.values()):
                await self.submit(events)
            if stopping:
                return

    def _report_liveness(self, portal: PortalTracker, now: datetime) -> None:
        """Tell the portal whether each of its readers is up: a passage seen while one was down
        gets no direction (see edge.portal)."""
        for reader_id in portal.readers:
            known = self._reader_liveness.get(reader_id)
            if known is None:
                continue  # not a reader of this agent (config validation names it): unmonitored
            health, limit_s = known
            portal.reader_status(
                reader_id, alive=health.alive(now, limit_s), last_heard=health.last_frame_at, now=now
            )

    async def _flush_downsampled(self, stop: asyncio.Event) -> None:
        """Queue the downsampled telemetry of closed buckets (only exist while degraded)."""
        period = min(self.edge.downsample_interval_s / 4, 10.0)
        while not await wait_or_stop(stop, period):
            await self.outbox.flush_buckets()

    def _devices(self) -> list[_Device]:
        devices: list[_Device] = []
        for reader in self.edge.uhf_readers:
            health = DeviceHealthState(reader.id)
            self._reader_liveness[reader.id] = (health, SERIAL_SILENCE_LIMIT_S)
            devices.append((reader.id, health, UhfSerialTransport(reader, health, self.on_tag_read).run))
        for probe in self.edge.modbus_probes:
            health = DeviceHealthState(probe.sensor_id)
            devices.append((probe.sensor_id, health, ModbusProbeTransport(probe, health, self.submit).run))
        for llrp in self.edge.llrp_readers:
            # One smoother per logical reader (antenna group), e.g. a portal's outer and inner side.
            for logical_id, location in llrp.logical_readers().items():
                smoother = TagSmoother(
                    logical_id, self.cycle_s, location, min_reads=llrp.min_reads, grace_s=llrp.grace_s
                )
                self.smoothers.setdefault(logical_id, smoother)
            health = DeviceHealthState(llrp.id)
            llrp_transport = LlrpTransport(llrp, health, self.on_tag_read)
            for logical_id in {llrp.id, *llrp.logical_readers()}:
                self._reader_liveness[logical_id] = (health, llrp_transport.silence_limit_s)
            devices.append((llrp.id, health, llrp_transport.run))
        for nfc in self.edge.nfc_readers:
            # Cards become TagObservations (UID as epc) straight from the transport: see edge.transports.nfc.
            health = DeviceHealthState(nfc.id)
            transport = Pn532Transport if nfc.kind == "pn532" else Rdm6300Transport
            devices.append((nfc.id, health, transport(nfc, health, self.submit).run))
        if self.edge.mqtt is not None:
            health = DeviceHealthState(MQTT_DEVICE_ID)
            self.mqtt = MqttTransport(
                self.edge.mqtt, self.edge.edge_id, health, self.submit, counters=self.counters
            )
            devices.append((MQTT_DEVICE_ID, health, self.mqtt.run))
        return devices

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Run until ``stop_event`` is set (or SIGTERM/SIGINT when run in the main thread)."""
        stop = stop_event or asyncio.Event()
        installed = _install_signal_handlers(stop)
        await self.outbox.open()
        try:
            open_alarms = await self.outbox.open_alarms()
            self._alarms = AlarmEvaluator(
                self.settings.zones, [(a.zone, a.sensor_id, a.rule) for a in open_alarms]
            )
            self._writer = OutboxWriter(self.outbox)
            writer_task = asyncio.create_task(self._writer.run(), name="outbox-writer")
            token = self.edge.token.get_secret_value() if self.edge.token else None
            client = SyncClient(self.edge.cloud_url, self.edge.edge_id, token)
            stopped_cleanly = False
            try:
                await self._run_tasks(stop, client)
                stopped_cleanly = True
            finally:
                await self._writer.stop()
                await writer_task
                if stopped_cleanly:
                    await self.outbox.flush_buckets(force=True)
                    await flush_on_stop(self.outbox, client, self.edge.batch_max_events, FINAL_SYNC_TIMEOUT_S)
                await client.aclose()
        finally:
            self._writer = None
            await self.outbox.close()
            _remove_signal_handlers(installed)
        log.info("edge %s stopped", self.edge.edge_id)

    async def _run_tasks(self, stop: asyncio.Event, client: SyncClient) -> None:
        devices = self._devices()
        log.info("edge %s running with %d device(s)", self.edge.edge_id, len(devices))
        async with asyncio.TaskGroup() as tg:
            for name, health, run in devices:
                self.health[name] = health
                tg.create_task(supervise(name, run, health, stop_event=stop), name=f"device-{name}")
            tg.create_task(self._tag_pipeline(stop), name="tag-pipeline")
            tg.create_task(self._flush_downsampled(stop), name="downsample-flush")
            tg.create_task(
                emit_health_periodically(self.health, self.submit, self.edge.health_interval_s, stop),
                name="health",
            )
            tg.create_task(
                sync_loop(self.outbox, client, self.edge.sync_interval_s, self.edge.batch_max_events, stop),
                name="sync",
            )


def budget_of(edge: EdgeSettings) -> OutboxBudget:
    return OutboxBudget(
        max_events=edge.outbox_max_events,
        max_bytes=int(edge.outbox_max_mb * 1e6),
        max_age_s=edge.outbox_max_age_s,
        interval_s=edge.downsample_interval_s,
    )


def _install_signal_handlers(stop: asyncio.Event) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Only possible in the main thread; tests and embedders pass their own stop event.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    return installed


def _remove_signal_handlers(installed: list[signal.Signals]) -> None:
    loop = asyncio.get_running_loop()
    for sig in installed:
        loop.remove_signal_handler(sig)


def run_edge(settings: Settings) -> int:
    """CLI entry: run the agent until SIGTERM/SIGINT; 0 on a clean stop, 1 on a fatal edge error."""
    # pymodbus logs a frame dump at WARNING on every timeout; our health counters already say it.
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    tune_gc()  # this process is the agent: its start-up objects live as long as it does
    failures: list[BaseException] = []
    try:
        asyncio.run(EdgeAgent(settings).run())
    except* EdgeError as group:
        failures.extend(group.exceptions)
    for exc in failures:
        log.error("edge agent failed: %s", exc)
    return 1 if failures else 0
