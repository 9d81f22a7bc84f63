"""The edge agent: wires devices, smoothing, portals, alarms, the outbox and the cloud sync.

Data flow (all on one event loop; sllurp's thread only hands reports over)::

    UHF serial / LLRP --TagReads--> TagSmoother --TagObservation--+
                      \\--> PortalTracker --PortalPassage, StockMovement--+
    Modbus probe / MQTT sensors --SensorReading--> AlarmEvaluator --LocalAlarm--+
    supervisors --DeviceHealth-------------------------------------------------+--> OutboxWriter
                                                                         (group commit, ledger)
    Outbox --sync_loop--> cloud

Every transport delivers through :meth:`EdgeAgent.emit` (one shape, :mod:`edge.transports.protocol`);
events go through :mod:`edge.pipeline` (validate -> quality -> alarms -> commit); the devices come
from :mod:`edge.transports.registry`. The agent owns the one clock (:mod:`edge.clock`) and hands it
to the transports, the health reports and the sync client. Every device runs under
:func:`edge.supervisor.supervise`. SIGTERM/SIGINT set the stop event: the devices stop, smoothers
and portals are flushed, pending commits finish, the database is closed.

A full disk stops nothing (:mod:`edge.diskfull`): MQTT commits wait for space (no PUBACK), the
other producers' events are held in memory (bounded), and a retry loop resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from edge.alarms import AlarmEvaluator, alarm_payload, alarm_topic, edge_alarm_payload, edge_alarm_topic
from edge.clock import EdgeClock, SyncedClock
from edge.diskfull import DiskFull
from edge.errors import DiskFullError, EdgeError
from edge.outbox import LedgerWrite, Outbox, OutboxBudget, OutboxWriter
from edge.pipeline import Pipeline
from edge.portal import PortalTracker
from edge.smoothing import TagSmoother
from edge.supervisor import DeviceHealthState, emit_health_periodically, supervise, wait_or_stop
from edge.sync import SyncClient, flush_on_stop, sync_loop
from edge.tls import cloud_ssl_context
from edge.transports.mqtt import MqttTransport
from edge.transports.protocol import Committed, Emission, TagReads
from edge.transports.registry import build_devices
from shelfsense.config import EdgeSettings, Settings
from shelfsense.contract import Event, LocalAlarm
from shelfsense.process import tune_gc

log = logging.getLogger(__name__)

DEVICE_COUNTERS = ("frames_ok", "frames_bad", "reconnects")
# A clean stop tries this long to hand the last events to the cloud before exiting.
FINAL_SYNC_TIMEOUT_S = 5.0
# Held events go back to the outbox in commits of at most this many once space is back.
HELD_CHUNK = 5000
_Device = tuple[str, DeviceHealthState, Callable[[], Awaitable[None]]]


class EdgeAgent:
    def __init__(self, settings: Settings, *, cycle_s: float = 1.0, clock: SyncedClock | None = None) -> None:
        self.settings = settings
        self.edge = settings.edge
        self.cycle_s = cycle_s
        self.outbox = Outbox(self.edge.db_path, self.edge.synchronous, budget_of(self.edge))
        # The agent's one clock, handed to everything that stamps or judges a time.
        self.clock: SyncedClock = clock or EdgeClock(self.edge.clock_skew_warn_s)
        self.counters: Counter[str] = Counter()
        self.health: dict[str, DeviceHealthState] = {}
        self.smoothers = {
            r.id: TagSmoother(r.id, cycle_s, r.location, min_reads=r.min_reads, grace_s=r.grace_s)
            for r in self.edge.uhf_readers
        }
        self.portals = [PortalTracker(portal) for portal in self.edge.portals]
        self.mqtt: MqttTransport | None = None
        self._writer: OutboxWriter | None = None
        # Quality then alarms, per batch (edge.pipeline); the commit is submit / submit_durably.
        self.pipeline = Pipeline(
            AlarmEvaluator(settings.zones), self.edge.reading_stale_s, lambda: self.clock.warn_s
        )
        self._frames_seen = (0, 0)
        self._device_seen: dict[str, tuple[int, int, int]] = {}
        self.disk = DiskFull(
            self.edge.db_path,
            self.edge.disk_full_hold_events,
            retry_s=self.edge.disk_full_retry_s,
            reserve_bytes=int(self.edge.disk_full_reserve_mb * 1e6),
            announce=self._announce_disk,
        )
        self._client: SyncClient | None = None
        # Logical reader id -> (its device's health, the device's silence limit): the portals'
        # liveness input. Filled by _devices().
        self.reader_liveness: dict[str, tuple[DeviceHealthState, float]] = {}
        self._reconnects_seen: dict[str, int] = {}  # reader id -> its reconnect count last cycle

    # ------------------------------------------------------------------ event intake

    def emit(self, emission: Emission) -> asyncio.Future[Committed]:
        """The one intake of every transport (edge.transports.protocol); call on the event loop.

        Tag reads are accepted at once (smoothers, portals; committed by the next cycle); events
        are committed by a task whose future resolves with their sequence numbers.
        """
        if isinstance(emission, TagReads):
            self.accept_reads(emission)
            accepted: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
            accepted.set_result([])
            return accepted
        if emission.durable:
            return asyncio.ensure_future(self.submit_durably(emission.events, emission.extras))
        return asyncio.ensure_future(self.submit(emission.events))

    def accept_reads(self, tag_reads: TagReads) -> None:
        """Raw reads of one reader into its smoother and the portals."""
        reader_id, now = tag_reads.reader_id, tag_reads.at
        smoother = self.smoothers[reader_id]
        self.counters["tag_reads"] += len(tag_reads.reads)
        for read in tag_reads.reads:
            smoother.add(read, now)
            for portal in self.portals:
                portal.observe(reader_id, read.epc, read.rssi, now)

    async def submit(self, events: Sequence[Event]) -> list[int | None]:
        """Evaluate alarms, then commit events + alarms + counter deltas in one transaction.

        On a full disk the events are held in memory instead (:mod:`edge.diskfull`) and their
        sequence numbers are None: serial devices and the health report never wait for the disk.
        """
        prepared = self.pipeline.prepare(events, self.clock.now())
        batch, alarms = prepared.batch(), prepared.alarms
        seqs: list[int | None] = [None] * len(batch)
        if self.disk.full:  # also while what is held drains: new events queue behind it, in order
            self.disk.hold(batch)
        else:
            try:
                seqs = await self._store(batch)
            except DiskFullError as exc:
                self.disk.enter(exc)
                self.disk.hold(batch)
        for alarm in alarms:
            self._announce(alarm)
        return seqs

    async def submit_durably(
        self, events: Sequence[Event], extras: Sequence[LedgerWrite] = ()
    ) -> list[int | None]:
        """Like :meth:`submit` but returns only once the events are stored (MQTT acknowledges
        after it): on a full disk it waits for space, so the broker keeps the messages. ``extras``
        (the MQTT receipts and rejects) commit in the same transaction."""
        prepared = self.pipeline.prepare(events, self.clock.now())
        batch, alarms = prepared.batch(), prepared.alarms
        while True:
            await self.disk.wait_for_space()
            try:
                seqs = await self._store(batch, extras)
            except DiskFullError as exc:
                self.disk.enter(exc)
                continue
            for alarm in alarms:
                self._announce(alarm)
            return seqs

    async def _store(self, events: Sequence[Event], extras: Sequence[LedgerWrite] = ()) -> list[int | None]:
        """One group commit of ``events`` with the counter deltas (kept for later if it fails)."""
        if self._writer is None:
            raise EdgeError("the agent is not running")
        counters = self._take_counters()
        try:
            return await self._writer.submit(events, counters, extras)
        except DiskFullError:
            self.counters.update(counters)
            raise

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

    def _announce_disk(self, full: bool, text: str) -> None:
        """Disk full / space back: a local alarm on MQTT and the flag the cloud sees in batches."""
        if self._client is not None:
            self._client.disk_full = full
        if full:
            self.counters["disk_full_episodes"] += 1  # stored with the first commit after it
        payload = edge_alarm_payload(self.edge.edge_id, "disk_full", full, text, self.clock.now())
        if self.mqtt is not None and not self.mqtt.publish(edge_alarm_topic(self.edge.site_id), payload):
            log.info("disk_full alarm not published on MQTT (offline)")

    async def _recover_disk(self, stop: asyncio.Event) -> None:
        """While the disk is full: once there is room, store what is held; once the reserve is
        back too (edge.diskfull), let MQTT on: its backlog must not eat the sync's room again."""
        self.disk.ensure_reserve()
        while not await wait_or_stop(stop, self.disk.retry_s):
            if not self.disk.full:
                self.disk.ensure_reserve()  # cheap when it exists; re-made once there is room
                continue
            inside = await self.outbox.free_bytes_inside()
            if not self.disk.has_room(inside):
                continue
            try:
                await self._store_held()
            except DiskFullError:
                continue
            # No await from the empty buffer to leave(): nothing is stranded in it.
            if self.disk.ensure_reserve() or inside >= self.disk.reserve_bytes:
                self.disk.leave()

    async def _store_held(self) -> None:
        """Store the held events in order (more may be held meanwhile) and one counter row, which
        proves a write works even when nothing was held (only MQTT waiting)."""
        while True:
            while self.disk.held:
                chunk = self.disk.take(HELD_CHUNK)
                try:
                    await self._store(chunk)
                except DiskFullError:
                    self.disk.unget(chunk)
                    raise
            self.counters["disk_full_resume_attempts"] += 1
            self.counters["disk_full_dropped"] += self.disk.take_dropped()
            await self._store([])
            if not self.disk.held:
                return

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
            now = self.clock.now()
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
            known = self.reader_liveness.get(reader_id)
            if known is None:
                continue  # not a reader of this agent (config validation names it): unmonitored
            health, limit_s = known
            reconnected = health.reconnects != self._reconnects_seen.setdefault(reader_id, health.reconnects)
            self._reconnects_seen[reader_id] = health.reconnects
            report_reader(portal, reader_id, health, limit_s, now, reconnected=reconnected)

    async def _flush_downsampled(self, stop: asyncio.Event) -> None:
        """Queue the downsampled telemetry of closed buckets (only exist while degraded)."""
        period = min(self.edge.downsample_interval_s / 4, 10.0)
        while not await wait_or_stop(stop, period):
            if not self.disk.full:
                with contextlib.suppress(DiskFullError):  # the buckets wait; the writer says so
                    await self.outbox.flush_buckets()

    def _devices(self) -> list[_Device]:
        """The configured devices, built by the transports registered in edge.transports.registry."""
        devices: list[_Device] = []
        for device_id, health, transport in build_devices(self):
            if isinstance(transport, MqttTransport):
                self.mqtt = transport  # alarms are published through it
            devices.append((device_id, health, transport.run))
        return devices

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Run until ``stop_event`` is set (or SIGTERM/SIGINT when run in the main thread)."""
        stop = stop_event or asyncio.Event()
        installed = _install_signal_handlers(stop)
        await self.outbox.open()
        try:
            open_alarms = await self.outbox.open_alarms()
            self.pipeline.alarms = AlarmEvaluator(
                self.settings.zones, [(a.zone, a.sensor_id, a.rule) for a in open_alarms]
            )
            self._writer = OutboxWriter(self.outbox)
            writer_task = asyncio.create_task(self._writer.run(), name="outbox-writer")
            token = self.edge.token.get_secret_value() if self.edge.token else None
            verify = cloud_ssl_context(self.edge.cloud_ca_file, self.edge.cloud_cert_sha256)
            client = SyncClient(
                self.edge.cloud_url,
                self.edge.edge_id,
                token,
                incarnation=self.outbox.incarnation,
                verify=verify,
                clock=self.clock,
            )
            self._client = client
            stopped_cleanly = False
            try:
                await self._run_tasks(stop, client)
                stopped_cleanly = True
            finally:
                await self._writer.stop()
                await writer_task
                if self.disk.full:
                    log.error("stopping on a full disk: %d held events are lost", len(self.disk.held))
                elif stopped_cleanly:
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
            tg.create_task(self._recover_disk(stop), name="disk-full-recovery")
            tg.create_task(
                emit_health_periodically(
                    self.health, self.submit, self.edge.health_interval_s, stop, self.clock
                ),
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


def report_reader(
    portal: PortalTracker,
    reader_id: str,
    health: DeviceHealthState,
    limit_s: float,
    now: datetime,
    *,
    reconnected: bool,
) -> None:
    """One cycle's liveness of one portal reader.

    A connection reset can be lost and re-established within one cycle (LLRP reconnects in tens of
    milliseconds): sampled once a cycle the reader would look up throughout, and the reads it missed
    would make its peak a lie. So a reconnect since the last cycle is reported as an outage from the
    last frame before the loss until the reader is heard again (no earlier than now)."""
    if reconnected:
        portal.reader_status(reader_id, alive=False, last_heard=health.heard_before_loss, now=now)
    alive = health.alive(now, limit_s)
    last_heard = health.last_frame_at
    if reconnected and alive and (last_heard is None or last_heard == health.heard_before_loss):
        last_heard = now  # connected again but nothing heard yet: the outage ends now
    portal.reader_status(reader_id, alive=alive, last_heard=last_heard, now=now)
