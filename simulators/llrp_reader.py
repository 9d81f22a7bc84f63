"""A simulated fixed UHF RFID reader speaking LLRP 1.0.1 over TCP (like an Impinj Speedway / R700).

The edge's sllurp client connects to :attr:`LlrpReaderSimulator.port` exactly like a real portal
reader on port 5084 and walks its usual sequence; the simulator answers from
:mod:`devices.llrp`:

* on accept: READER_EVENT_NOTIFICATION with a ConnectionAttemptEvent (``Success``; a second client
  while one is connected gets ``Failed (a Client initiated connection already exists)`` and is
  closed, as real readers do);
* GET_READER_CAPABILITIES, GET_READER_CONFIG, SET_READER_CONFIG (its KeepaliveSpec starts periodic
  KEEPALIVEs), ENABLE_EVENTS_AND_REPORTS (no answer, per the standard);
* ADD/ENABLE/START/STOP/DISABLE/DELETE_ROSPEC and the AccessSpec messages with an LLRPStatus
  (unknown ROSpec ids get a FieldError status);
* the ROSpec's triggers (:mod:`devices.llrp_triggers`): start Immediate (on ENABLE), Periodic
  (offset, then every period), Null / GPI (START_ROSPEC: the simulator has no GPIs); stop Duration,
  GPI-with-timeout (the timeout), Null; each AISpec's stop trigger: Duration, GPI timeout, Tag
  observation (N tags, N unique tags, N attempts, silence for T ms, each with its timeout) or Null
  (ends with the ROSpec). The AISpecs run in order, over and over, until the ROSpec's stop trigger
  fires or STOP/DISABLE/DELETE_ROSPEC arrives; it then goes inactive (a periodic one starts again
  on its next period, an immediate one waits to be enabled again). READER_EVENT_NOTIFICATIONs with ROSpecEvent
  (start, end) and AISpecEvent (end) go out as a reader sends them: only for the event types the
  client enabled in SET_READER_CONFIG's ReaderEventNotificationSpec;
* while a ROSpec is active: ``reads_per_s`` inventory rounds a second, each one RO_ACCESS_REPORT
  (or one per ``N`` tags if the ROReportSpec asks) with one TagReportData per tag in the field on
  the ROSpec's antennas: EPC-96 (EPCData for other lengths), and, as the content selector asks,
  ROSpecID, AntennaID, PeakRSSI, First/LastSeenTimestampUTC, TagSeenCount;
* CLOSE_CONNECTION: response, then close; anything else: ERROR_MESSAGE (UnsupportedMessage).

What the antennas "see" comes from ``field()``: ``(epc_hex, rssi_dbm, antenna)`` tuples, e.g. a
scenario's outer field on antenna 1 and inner field on antenna 2.

Fault injection: :meth:`disconnect` (TCP reset, as a cable pull), :meth:`reboot` (the reader is
gone for a while and forgets its ROSpecs), :meth:`drop_next_reports`, :meth:`inject_noise`
(garbage bytes in the stream: the client can only drop the connection), :meth:`collide` (a burst
of extra tags in the next rounds, many at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices import llrp
from devices import llrp_triggers as trig
from devices.errors import DecodeError
from devices.llrp import LlrpMessage, MsgType, RoSpecInfo, TagReport
from simulators.llrp_rospec import AiSpecProgress, Pacer, aispec_deadline, observed_enough

log = logging.getLogger(__name__)

AntennaField = Callable[[], Sequence[tuple[str, int, int]]]
STATUS_FIELD_ERROR = 101


def utc_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class _RoSpec:
    info: RoSpecInfo
    triggers: trig.RoSpecTriggers = field(default_factory=trig.RoSpecTriggers)
    enabled: bool = False
    active: bool = False  # running; cleared to make the running execution end
    task: asyncio.Task[None] | None = None
    periodic: asyncio.Task[None] | None = None
    runs: int = 0


@dataclass(slots=True)
class _Session:
    """One connected client."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    decoder: llrp.LlrpFrameDecoder = field(default_factory=llrp.LlrpFrameDecoder)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    keepalive: asyncio.Task[None] | None = None
    notify: dict[int, bool] = field(default_factory=dict)  # reader event type -> enabled


class LlrpReaderSimulator:
    """One simulated LLRP reader; see the module docstring."""

    def __init__(
        self,
        field: AntennaField,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        antennas: int = 4,
        reads_per_s: float = 10.0,
        seed: int = 0,
    ) -> None:
        if reads_per_s <= 0:
            raise ValueError("reads_per_s must be positive")
        if not 1 <= antennas <= 64:
            raise ValueError("antennas must be 1..64")
        self._field = field
        self.host = host
        self.port = port
        self.antennas = antennas
        self.reads_per_s = reads_per_s
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._session: _Session | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._rospecs: dict[int, _RoSpec] = {}
        self._message_id = 0
        self._drop_reports = 0
        self._collision_rounds = 0
        self._collision_tags: list[tuple[str, int, int]] = []
        self._first_seen: dict[tuple[str, int], int] = {}
        # Counters
        self.connections = 0
        self.refused_connections = 0
        self.reports_sent = 0
        self.tag_reports_sent = 0
        self.reports_dropped = 0
        self.requests = 0
        self.bad_requests = 0
        self.keepalives_sent = 0
        self.keepalive_acks = 0
        self.rospec_events: list[tuple[int, int]] = []  # (ROSpec id, 0 start / 1 end), as executed

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def connected(self) -> bool:
        return self._session is not None

    async def start(self) -> None:
        """Listen (again, on the same port after a stop: a restarted reader keeps its address)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("LLRP reader simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Power off: stop listening, reset the client connection, forget the ROSpecs."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._drop_session(abort=True)
        if server is not None:
            await server.wait_closed()
        # Python 3.11's wait_closed does not wait for the connection handlers; do it here.
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5.0)
        self._rospecs.clear()
        self._first_seen.clear()

    async def run(self) -> None:
        """Start and serve until cancelled (for ``shelfsense sim llrp``)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # ------------------------------------------------------------------ fault injection

    async def disconnect(self) -> None:
        """Reset the client's TCP connection (cable pulled); the reader keeps listening."""
        await self._drop_session(abort=True)

    async def reboot(self, down_s: float = 1.0) -> None:
        """Power-cycle: unreachable for ``down_s``, then back with no ROSpecs."""
        await self.stop()
        await asyncio.sleep(down_s)
        await self.start()

    def drop_next_reports(self, n: int) -> None:
        """The next ``n`` RO_ACCESS_REPORTs are lost."""
        self._drop_reports += n

    def inject_noise(self, n: int) -> None:
        """Write ``n`` random bytes into the stream now (the client's framing breaks)."""
        self.inject_bytes(bytes(self._rng.randrange(256) for _ in range(n)))

    def inject_bytes(self, data: bytes) -> None:
        """Write raw bytes into the stream now (e.g. a header announcing a message that never comes)."""
        if self._session is not None:
            self._session.writer.write(data)

    def collide(self, tags: int, rounds: int = 5, antenna: int = 1) -> None:
        """``tags`` extra SGTIN-like tags in the field for the next ``rounds`` inventory rounds."""
        self._collision_tags = [
            (f"3034{self._rng.getrandbits(80):020X}", self._rng.randint(-75, -50), antenna)
            for _ in range(tags)
        ]
        self._collision_rounds = rounds

    # ------------------------------------------------------------------ connection handling

    def _next_id(self) -> int:
        self._message_id = (self._message_id + 1) & 0xFFFFFFFF
        return self._message_id

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        if self._session is not None:
            self.refused_connections += 1
            writer.write(
                llrp.reader_event_notification(
                    self._next_id(), utc_us(), connection_status=llrp.CONNECTION_FAILED_CLIENT_EXISTS
                )
            )
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        session = self._session = _Session(reader, writer)
        self.connections += 1
        try:
            writer.write(llrp.reader_event_notification(self._next_id(), utc_us()))
            await writer.drain()
            await self._serve(session)
        except (ConnectionError, DecodeError) as exc:
            log.info("LLRP simulator: client connection ended: %s", exc)
        finally:
            if self._session is session:
                await self._drop_session(abort=False)

    async def _serve(self, session: _Session) -> None:
        while True:
            data = await session.reader.read(65536)
            if not data:
                return
            for msg in session.decoder.feed(data):
                self.requests += 1
                if not await self._handle(session, msg):
                    return

    async def _drop_session(self, *, abort: bool) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        for task in session.tasks:
            task.cancel()
        for task in session.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for spec in self._rospecs.values():
            spec.active = False
        if abort:
            session.writer.transport.abort()
        else:
            session.writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(session.writer.wait_closed(), 2.0)

    async def _send(self, session: _Session, data: bytes) -> None:
        session.writer.write(data)
        await session.writer.drain()

    # ------------------------------------------------------------------ requests

    async def _handle(self, session: _Session, msg: LlrpMessage) -> bool:
        """Answer one request; False once the connection is to be closed."""
        t = msg.type
        mid = msg.message_id
        if t == MsgType.GET_READER_CAPABILITIES:
            await self._send(session, llrp.get_reader_capabilities_response(mid, antennas=self.antennas))
        elif t == MsgType.GET_READER_CONFIG:
            await self._send(session, llrp.get_reader_config_response(mid))
        elif t == MsgType.SET_READER_CONFIG:
            self._configure_keepalive(session, msg)
            session.notify.update(trig.notification_states(msg))
            await self._send(session, llrp.status_response(MsgType.SET_READER_CONFIG_RESPONSE, mid))
        elif t in (MsgType.ENABLE_EVENTS_AND_REPORTS, MsgType.KEEPALIVE_ACK):
            self.keepalive_acks += t == MsgType.KEEPALIVE_ACK
        elif t == MsgType.CLOSE_CONNECTION:
            await self._send(session, llrp.close_connection_response(mid))
            return False
        elif t in llrp.RESPONSE_OF:
            code, text = self._rospec_request(session, msg)
            await self._send(session, llrp.status_response(llrp.RESPONSE_OF[t], mid, code, text))
        else:
            self.bad_requests += 1
            body = llrp.llrp_status(llrp.STATUS_UNSUPPORTED_MESSAGE, f"unsupported message type {t}")
            await self._send(session, llrp.encode_message(MsgType.ERROR_MESSAGE, mid, body))
        return True

    def _configure_keepalive(self, session: _Session, msg: LlrpMessage) -> None:
        if len(msg.body) < 1:
            return
        for param in llrp.iter_params(msg.body[1:]):
            if param.type == llrp.ParamType.KEEPALIVE_SPEC and len(param.value) >= 5:
                trigger, interval_ms = struct.unpack_from(">BI", param.value)
                if session.keepalive is not None:
                    session.keepalive.cancel()
                    session.keepalive = None
                if trigger == 1 and interval_ms > 0:
                    session.keepalive = asyncio.create_task(self._keepalive_loop(session, interval_ms / 1000))
                    session.tasks.append(session.keepalive)

    async def _keepalive_loop(self, session: _Session, interval_s: float) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(interval_s)
                await self._send(session, llrp.keepalive(self._next_id()))
                self.keepalives_sent += 1

    def _rospec_request(self, session: _Session, msg: LlrpMessage) -> tuple[int, str]:
        """Apply a ROSpec / AccessSpec request; the LLRPStatus (code, description) to answer."""
        t = msg.type
        if t == MsgType.ADD_ROSPEC:
            info = llrp.parse_rospec(msg)
            if info.rospec_id == 0 or info.rospec_id in self._rospecs:
                return STATUS_FIELD_ERROR, f"ROSpecID {info.rospec_id} invalid or already exists"
            try:
                triggers = trig.parse_triggers(msg)
            except DecodeError as exc:
                return STATUS_FIELD_ERROR, str(exc)
            self._rospecs[info.rospec_id] = _RoSpec(info, triggers)
            return llrp.STATUS_SUCCESS, ""
        if t not in (
            MsgType.DELETE_ROSPEC,
            MsgType.START_ROSPEC,
            MsgType.STOP_ROSPEC,
            MsgType.ENABLE_ROSPEC,
            MsgType.DISABLE_ROSPEC,
        ):
            return llrp.STATUS_SUCCESS, ""  # AccessSpecs: accepted, not simulated
        rospec_id = llrp.rospec_id_of(msg)
        if rospec_id == 0 and t in (MsgType.DELETE_ROSPEC, MsgType.ENABLE_ROSPEC, MsgType.DISABLE_ROSPEC):
            targets = list(self._rospecs)
        elif rospec_id in self._rospecs:
            targets = [rospec_id]
        else:
            return STATUS_FIELD_ERROR, f"no ROSpec {rospec_id}"
        for rid in targets:
            self._apply(session, t, rid)
        return llrp.STATUS_SUCCESS, ""

    def _apply(self, session: _Session, t: int, rid: int) -> None:
        spec = self._rospecs[rid]
        start = spec.triggers.start
        if t == MsgType.DELETE_ROSPEC:
            self._halt(spec, disable=True)
            del self._rospecs[rid]
        elif t == MsgType.ENABLE_ROSPEC and not spec.enabled:
            spec.enabled = True
            if start.kind == trig.START_IMMEDIATE:
                self._start(session, spec)
            elif start.kind == trig.START_PERIODIC:
                spec.periodic = asyncio.create_task(self._periodic(session, spec))
                session.tasks.append(spec.periodic)
        elif t == MsgType.START_ROSPEC and spec.enabled:
            self._start(session, spec)
        elif t == MsgType.DISABLE_ROSPEC:
            self._halt(spec, disable=True)
        elif t == MsgType.STOP_ROSPEC:
            self._halt(spec, disable=False)

    def _halt(self, spec: _RoSpec, *, disable: bool) -> None:
        spec.active = False  # the running execution ends at its next round and reports the end
        if disable:
            spec.enabled = False
            if spec.periodic is not None:
                spec.periodic.cancel()
                spec.periodic = None

    def _start(self, session: _Session, spec: _RoSpec) -> None:
        if spec.task is None or spec.task.done():
            spec.active = True
            spec.task = asyncio.create_task(self._execute(session, spec))
            session.tasks.append(spec.task)

    async def _periodic(self, session: _Session, spec: _RoSpec) -> None:
        """Periodic start trigger: the first run ``Offset`` ms after enabling, then every
        ``Period`` ms (a run still going at its next period is not started twice)."""
        start = spec.triggers.start
        await asyncio.sleep(start.offset_ms / 1000)
        while spec.enabled and spec.info.rospec_id in self._rospecs:
            self._start(session, spec)
            if start.period_ms == 0:
                return
            await asyncio.sleep(start.period_ms / 1000)

    async def _notify(self, session: _Session, event_type: int, message: bytes) -> None:
        if session.notify.get(event_type):
            await self._send(session, message)

    # ------------------------------------------------------------------ inventory

    def _round(self, spec: _RoSpec) -> list[TagReport]:
        tags = list(self._field())
        if self._collision_rounds > 0:
            self._collision_rounds -= 1
            tags += self._collision_tags
        now = utc_us()
        wanted = spec.info.antennas
        reports = []
        for epc, rssi, antenna in tags:
            if wanted and antenna not in wanted:
                continue
            first = self._first_seen.setdefault((epc, antenna), now)
            reports.append(TagReport(epc, antenna, rssi, first, now, 1, spec.info.rospec_id))
        return reports

    async def _execute(self, session: _Session, spec: _RoSpec) -> None:
        """One run of a ROSpec: start event, its AISpecs in order -- again and again (each AISpec
        end reported) until the ROSpec's stop trigger fires or it is stopped -- then end event.

        sllurp relies on the repetition: it paces its reports with an AISpec stop trigger of N tags
        or a timeout under a Null ROSpec stop trigger, and a reader then inventories on.
        """
        rid = spec.info.rospec_id
        loop = asyncio.get_running_loop()
        stop = spec.triggers.stop
        limited = stop.kind in (trig.STOP_DURATION, trig.STOP_GPI) and stop.duration_ms > 0
        deadline = loop.time() + stop.duration_ms / 1000 if limited else None
        pacer = Pacer(loop.time(), 1.0 / self.reads_per_s)
        spec.runs += 1
        with contextlib.suppress(ConnectionError):
            self.rospec_events.append((rid, trig.ROSPEC_STARTED))
            event = trig.rospec_event(self._next_id(), utc_us(), trig.ROSPEC_STARTED, rid)
            await self._notify(session, trig.EVENT_ROSPEC, event)
            running = True
            try:
                while running:
                    for index, trigger in enumerate(
                        spec.triggers.aispecs or (trig.AiSpecTrigger(),), start=1
                    ):
                        running = await self._aispec(session, spec, trigger, deadline, pacer)
                        event = trig.aispec_event(self._next_id(), utc_us(), rid, index)
                        await self._notify(session, trig.EVENT_AISPEC, event)
                        if not running:
                            break
            finally:
                spec.active = False
            self.rospec_events.append((rid, trig.ROSPEC_ENDED))
            event = trig.rospec_event(self._next_id(), utc_us(), trig.ROSPEC_ENDED, rid)
            await self._notify(session, trig.EVENT_ROSPEC, event)

    async def _aispec(
        self,
        session: _Session,
        spec: _RoSpec,
        trigger: trig.AiSpecTrigger,
        rospec_deadline: float | None,
        pacer: Pacer,
    ) -> bool:
        """Inventory rounds until the AISpec's stop trigger fires (True) or the ROSpec ends (False)."""
        loop = asyncio.get_running_loop()
        progress = AiSpecProgress(started=loop.time())
        progress.last_read = progress.last_new_unique = progress.started
        own_deadline = aispec_deadline(trigger, progress.started)
        while spec.active and spec.info.rospec_id in self._rospecs:
            wake = min(t for t in (pacer.next_round, rospec_deadline, own_deadline) if t is not None)
            await asyncio.sleep(max(0.0, wake - loop.time()))
            now = loop.time()
            if not spec.active or spec.info.rospec_id not in self._rospecs:
                break
            if rospec_deadline is not None and now >= rospec_deadline:
                return False
            if own_deadline is not None and now >= own_deadline:
                return True
            if now < pacer.next_round:
                continue
            pacer.next_round = max(pacer.next_round + pacer.period, now)
            reports = self._round(spec)
            n = spec.info.report_every_n_tags or len(reports) or 1
            for i in range(0, len(reports), n):
                await self._report(session, reports[i : i + n], spec.info.selector)
            if trigger.observation is not None and observed_enough(
                trigger.observation, progress, reports, now
            ):
                return True
        return False

    async def _report(
        self, session: _Session, reports: list[TagReport], selector: llrp.ContentSelector
    ) -> None:
        if self._drop_reports > 0:
            self._drop_reports -= 1
            self.reports_dropped += 1
            return
        await self._send(session, llrp.ro_access_report(self._next_id(), reports, selector))
        self.reports_sent += 1
        self.tag_reports_sent += len(reports)
