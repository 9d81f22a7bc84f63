"""Sensor readings, alert events and site health to InfluxDB, batched, without ever blocking ingest.

:class:`InfluxWriter` takes points with :meth:`~InfluxWriter.write` (synchronous, returns at once,
call it from the event loop thread) into a bounded buffer, and a background task POSTs batches of
line protocol (``Point(...).to_line_protocol()`` of influxdb-client). While InfluxDB is down the
buffer keeps filling; when it is full the *oldest* points are dropped and counted (``drop_oldest``,
the default: a dashboard wants the recent past) or new points are refused (``drop_newest``).
Failed batches go back to the front of the buffer and are retried with capped exponential backoff
and jitter; the writer logs the transitions ("lost", "recovered"), not every failure.
:meth:`~InfluxWriter.close` flushes what is buffered (bounded by a deadline) before returning:
naive uses of influxdb-client's batching WriteApi lose the last batch on shutdown.

Two sinks behind one interface (``async write(lines)``):

- :class:`InfluxV1Sink`: InfluxDB 1.x ``POST /write?db=..&rp=..&precision=ns`` (database + retention
  policy, optional user/password).
- :class:`InfluxV2Sink`: InfluxDB 2.x through influxdb-client's synchronous ``WriteApi`` in a worker
  thread (org + bucket + token); its own retries are off, the writer's loop retries.

Schema (one measurement per kind, tags are what dashboards group by):

- readings: measurement = quantity (``temperature``, ``humidity``, ``battery``, ``linkquality``,
  ``pressure``); tags ``site``, ``zone``, ``sensor``, ``unit``; field ``value`` (float), and
  ``limit_min``/``limit_max`` (the zone's limits for that quantity when the reading was stored), so a
  board's per-sensor panel draws its own zone's thresholds (InfluxQL cannot join ``zone_limits``).
- ``alert_event``: tags ``site``, ``zone``, ``rule``, ``state``; fields ``alert_id``, ``text``,
  ``value``, ``limit``.
- ``device_health``: tags ``site``, ``edge``, ``device``; fields ``connected`` (0/1), ``frames_ok``,
  ``frames_bad``, ``reconnects`` (integers).
- ``edge_health``: tags ``site``, ``edge``; fields ``online`` (0/1), ``sync_lag_s``, ``outbox_depth``.
- ``zone_limits``: tags ``site``, ``zone``; fields ``min_temp_c``, ``max_temp_c``, ``max_humidity``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, cast

import httpx
from influxdb_client import Point, WritePrecision

from shelfsense.config import InfluxSettings
from shelfsense.contract import DeviceHealth, SensorReading

log = logging.getLogger(__name__)

Overflow = Literal["drop_oldest", "drop_newest"]


class InfluxError(Exception):
    """Base of errors talking to InfluxDB."""


class InfluxWriteError(InfluxError):
    """A batch was not written. ``retryable``: worth sending again later (server down, 5xx)."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


# --- points -------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reading_point(
    reading: SensorReading,
    *,
    site: str,
    zone: str | None = None,
    limit_min: float | None = None,
    limit_max: float | None = None,
) -> Point:
    point = (
        Point(reading.quantity)
        .tag("site", site)
        .tag("sensor", reading.sensor_id)
        .tag("unit", reading.unit)
        .field("value", float(reading.value))
        .time(_utc(reading.time), WritePrecision.NS)
    )
    zone = zone or reading.zone
    if zone:
        point.tag("zone", zone)
    if reading.flags:
        point.field("flags", ",".join(reading.flags))
    for name, limit in (("limit_min", limit_min), ("limit_max", limit_max)):
        if limit is not None:
            point.field(name, float(limit))
    return point


class _ZoneLimits(Protocol):
    @property
    def min_temp_c(self) -> float | None: ...
    @property
    def max_temp_c(self) -> float | None: ...
    @property
    def max_humidity(self) -> float | None: ...


def reading_limits(quantity: str, limits: _ZoneLimits | None) -> tuple[float | None, float | None]:
    """``reading_point``'s ``(limit_min, limit_max)`` for a quantity under a zone's limits."""
    if limits is None:
        return None, None
    if quantity == "temperature":
        return limits.min_temp_c, limits.max_temp_c
    if quantity == "humidity":
        return None, limits.max_humidity
    return None, None


def alert_point(
    *,
    site: str,
    zone: str | None,
    rule: str,
    state: str,
    at: datetime,
    alert_id: str,
    text: str = "",
    value: float | None = None,
    limit: float | None = None,
) -> Point:
    point = (
        Point("alert_event")
        .tag("site", site)
        .tag("rule", rule)
        .tag("state", state)
        .field("alert_id", alert_id)
        .field("text", text or f"{rule} {state}")
        .time(_utc(at), WritePrecision.NS)
    )
    if zone:
        point.tag("zone", zone)
    if value is not None:
        point.field("value", float(value))
    if limit is not None:
        point.field("limit", float(limit))
    return point


def device_health_point(health: DeviceHealth, *, site: str, edge: str) -> Point:
    return (
        Point("device_health")
        .tag("site", site)
        .tag("edge", edge)
        .tag("device", health.device_id)
        .field("connected", int(health.connected))
        .field("frames_ok", health.frames_ok)
        .field("frames_bad", health.frames_bad)
        .field("reconnects", health.reconnects)
        .time(_utc(health.at), WritePrecision.NS)
    )


def edge_health_point(
    *, site: str, edge: str, at: datetime, online: bool, sync_lag_s: float, outbox_depth: int = 0
) -> Point:
    return (
        Point("edge_health")
        .tag("site", site)
        .tag("edge", edge)
        .field("online", int(online))
        .field("sync_lag_s", float(sync_lag_s))
        .field("outbox_depth", int(outbox_depth))
        .time(_utc(at), WritePrecision.NS)
    )


def zone_limits_point(
    *,
    site: str,
    zone: str,
    at: datetime,
    min_temp_c: float | None = None,
    max_temp_c: float | None = None,
    max_humidity: float | None = None,
) -> Point:
    """The limits in force for a zone, so dashboards draw them as lines (write on change and hourly)."""
    point = Point("zone_limits").tag("site", site).tag("zone", zone).time(_utc(at), WritePrecision.NS)
    for name, value in (
        ("min_temp_c", min_temp_c),
        ("max_temp_c", max_temp_c),
        ("max_humidity", max_humidity),
    ):
        if value is not None:
            point.field(name, float(value))
    return point


# --- sinks --------------------------------------------------------------------------------------


class InfluxSink(Protocol):
    async def write(self, lines: Sequence[str]) -> None: ...

    async def aclose(self) -> None: ...


def _status_error(status: int, text: str) -> InfluxWriteError:
    # 5xx, 429 and 404 (database not created yet) may heal; other 4xx (bad points) will not.
    retryable = status >= 500 or status in (404, 408, 429)
    return InfluxWriteError(f"HTTP {status}: {text[:300]}", retryable=retryable, status=status)


class InfluxV1Sink:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._params = {
            "db": database,
            "precision": "ns",
            **({"rp": retention_policy} if retention_policy else {}),
        }
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, auth=auth)

    async def write(self, lines: Sequence[str]) -> None:
        try:
            response = await self._client.post(
                "/write", params=self._params, content="\n".join(lines).encode()
            )
        except httpx.TransportError as exc:
            raise InfluxWriteError(f"{type(exc).__name__}: {exc}", retryable=True) from None
        if response.status_code != 204:
            raise _status_error(response.status_code, response.text)

    async def aclose(self) -> None:
        await self._client.aclose()


class InfluxV2Sink:
    def __init__(self, url: str, *, org: str, bucket: str, token: str, timeout_s: float = 10.0) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._org, self._bucket = org, bucket
        self._client = InfluxDBClient(
            url=url, token=token, org=org, timeout=int(timeout_s * 1000), retries=False
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def _write_blocking(self, body: str) -> None:
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            precision = cast(WritePrecision, WritePrecision.NS)  # a str constant, typed as the class
            self._api.write(self._bucket, self._org, record=body, write_precision=precision)
        except ApiException as exc:
            raise _status_error(int(exc.status or 0), str(exc.body or exc.reason)) from None
        except (HTTPError, OSError) as exc:
            raise InfluxWriteError(f"{type(exc).__name__}: {exc}", retryable=True) from None

    async def write(self, lines: Sequence[str]) -> None:
        await asyncio.to_thread(self._write_blocking, "\n".join(lines))

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)


# --- writer -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriterOptions:
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    max_buffered: int = 100_000
    overflow: Overflow = "drop_oldest"
    retry_base_s: float = 0.5
    retry_cap_s: float = 30.0


@dataclass(slots=True)
class WriterStats:
    accepted: int = 0
    written: int = 0
    batches: int = 0
    dropped_overflow: int = 0
    dropped_invalid: int = 0  # points without fields: no line protocol
    rejected: int = 0  # refused by InfluxDB for good (bad points), not retried
    dropped_on_close: int = 0  # still buffered when the close deadline passed
    failed_attempts: int = 0


class InfluxWriter:
    """Bounded, non-blocking, batching writer; see the module docstring."""

    def __init__(self, sink: InfluxSink, options: WriterOptions | None = None) -> None:
        self.sink = sink
        self.options = options or WriterOptions()
        self.stats = WriterStats()
        self._buffer: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._down_since: float | None = None
        self._failures = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def healthy(self) -> bool:
        return self._down_since is None

    def write(self, *points: Point | str) -> int:
        """Buffer points (or ready line-protocol strings); returns how many were accepted."""
        accepted = 0
        for point in points:
            line = point if isinstance(point, str) else point.to_line_protocol()
            if not line:
                self.stats.dropped_invalid += 1
                continue
            if len(self._buffer) >= self.options.max_buffered:
                self.stats.dropped_overflow += 1
                if self.options.overflow == "drop_newest":
                    continue
                self._buffer.popleft()
            self._buffer.append(line)
            accepted += 1
        self.stats.accepted += accepted
        if len(self._buffer) >= self.options.batch_size:
            self._wakeup.set()
        return accepted

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="influx-writer")

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the buffer is empty (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        self._wakeup.set()
        while self._buffer and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return not self._buffer

    async def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is buffered (giving up after ``timeout_s``), then stop and close the sink."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout_s)
            except TimeoutError:
                log.error("InfluxDB close: %d points not written before the deadline", len(self._buffer))
            self._task = None
        self.stats.dropped_on_close += len(self._buffer)
        self._buffer.clear()
        await self.sink.aclose()

    async def _wait_for_work(self) -> None:
        if self._closing or len(self._buffer) >= self.options.batch_size:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self.options.flush_interval_s)
        self._wakeup.clear()

    async def _run(self) -> None:
        while True:
            await self._wait_for_work()
            if not self._buffer:
                if self._closing:
                    return
                continue
            batch = [self._buffer.popleft() for _ in range(min(self.options.batch_size, len(self._buffer)))]
            try:
                await self.sink.write(batch)
            except InfluxWriteError as exc:
                await self._failed(batch, exc)
            else:
                self._succeeded(len(batch))

    def _succeeded(self, count: int) -> None:
        self.stats.written += count
        self.stats.batches += 1
        if self._down_since is not None:
            log.info("InfluxDB recovered after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
        self._failures = 0

    async def _failed(self, batch: list[str], exc: InfluxWriteError) -> None:
        self.stats.failed_attempts += 1
        if not exc.retryable:
            self.stats.rejected += len(batch)
            log.error("InfluxDB refused %d points for good: %s", len(batch), exc)
            return
        if self._down_since is None:
            log.warning("InfluxDB lost: %s; buffering up to %d points", exc, self.options.max_buffered)
            self._down_since = time.monotonic()
        self._requeue(batch)
        delay = random.uniform(
            0, min(self.options.retry_cap_s, self.options.retry_base_s * 2 ** min(self._failures, 20))
        )
        self._failures += 1
        await asyncio.sleep(delay)

    def _requeue(self, batch: list[str]) -> None:
        """Put a failed batch back in front, then enforce the bound (dropping the oldest first)."""
        self._buffer.extendleft(reversed(batch))
        excess = len(self._buffer) - self.options.max_buffered
        if excess > 0:
            if self.options.overflow == "drop_oldest":
                for _ in range(excess):
                    self._buffer.popleft()
            else:
                for _ in range(excess):
                    self._buffer.pop()
            self.stats.dropped_overflow += excess


def v1_writer(
    url: str,
    database: str,
    *,
    retention_policy: str | None = None,
    username: str | None = None,
    password: str | None = None,
    options: WriterOptions | None = None,
) -> InfluxWriter:
    sink = InfluxV1Sink(
        url, database, retention_policy=retention_policy, username=username, password=password
    )
    return InfluxWriter(sink, options)


def v2_writer(
    url: str, *, org: str, bucket: str, token: str, options: WriterOptions | None = None
) -> InfluxWriter:
    return InfluxWriter(InfluxV2Sink(url, org=org, bucket=bucket, token=token), options)


def build_influx(config: InfluxSettings) -> InfluxWriter:
    """The writer of ``[cloud.influx]`` (1.x or 2.x; secrets unwrapped here)."""
    if config.token is not None and config.org and config.bucket:
        return v2_writer(
            config.url, org=config.org, bucket=config.bucket, token=config.token.get_secret_value()
        )
    assert config.database is not None  # the settings validator guarantees v1 or v2
    password = config.password.get_secret_value() if config.password else None
    return v1_writer(
        config.url,
        config.database,
        retention_policy=config.retention_policy,
        username=config.username,
        password=password,
    )


def points_from_readings(readings: Iterable[SensorReading], *, site: str) -> list[Point]:
    return [reading_point(reading, site=site) for reading in readings]


__all__ = [
    "InfluxError",
    "InfluxSink",
    "InfluxV1Sink",
    "InfluxV2Sink",
    "InfluxWriteError",
    "InfluxWriter",
    "WriterOptions",
    "WriterStats",
    "alert_point",
    "build_influx",
    "device_health_point",
    "edge_health_point",
    "points_from_readings",
    "reading_limits",
    "reading_point",
    "v1_writer",
    "v2_writer",
    "zone_limits_point",
]
