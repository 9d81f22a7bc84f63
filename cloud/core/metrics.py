"""Prometheus metrics of the cloud process, rendered by ``GET /metrics``.

Two kinds:

- per application (:class:`Metrics`, on ``app.state.metrics``): the ingest counters and the
  database pool gauges, read from the app's own engine when scraped;
- per process (``REGISTRY``): HTTP request counts and latencies per route, ingest lag per edge,
  notification deliveries per channel and outcome, background job runs and durations. They are
  updated where the work happens (a middleware, the ingest route, ``cloud.notify.base``,
  ``cloud.core.jobs``), which has no app at hand; one process serves one app.

Counters are per process and reset at restart, as Prometheus counters may. Names follow the
Prometheus conventions: ``shelfsense_`` prefix, base units (seconds), ``_total`` for counters.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from sqlalchemy.ext.asyncio import AsyncEngine

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = PromCounter(
    "shelfsense_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "shelfsense_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
INGEST_LAG = Gauge(
    "shelfsense_ingest_lag_seconds",
    "Age of the oldest event of the edge's last accepted batch when the cloud stored it.",
    ["edge"],
    registry=REGISTRY,
)
INGEST_LAST_BATCH = Gauge(
    "shelfsense_ingest_last_batch_timestamp_seconds",
    "Unix time the cloud last accepted a batch from the edge.",
    ["edge"],
    registry=REGISTRY,
)
DELIVERIES = PromCounter(
    "shelfsense_notification_deliveries_total",
    "Alert notifications delivered (outcome ok) or given up (failed), by channel.",
    ["channel", "outcome"],
    registry=REGISTRY,
)
DELIVERY_ATTEMPTS = PromCounter(
    "shelfsense_notification_attempts_total",
    "Delivery attempts including retries, by channel.",
    ["channel"],
    registry=REGISTRY,
)
JOB_RUNS = PromCounter(
    "shelfsense_job_runs_total",
    "Background job steps (claim a due tick and do its work), by job and outcome (ok, failed).",
    ["job", "outcome"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "shelfsense_job_duration_seconds",
    "Time of one background job step, by job.",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)

HEAVY_READS = Gauge(
    "shelfsense_heavy_reads",
    "Heavy reads (cloud.reads.heavy_paths) running (active) or waiting for a slot (waiting).",
    ["state"],
    registry=REGISTRY,
)
HEAVY_READS_REFUSED = PromCounter(
    "shelfsense_heavy_reads_refused_total",
    "Heavy reads answered 503 busy because every slot and the queue were taken.",
    registry=REGISTRY,
)


def observe_batch(edge_id: str, oldest_event_at: datetime | None, received_at: datetime) -> None:
    """Ingest lag of an accepted batch (its first event is its oldest data; an edge clock ahead of
    ours counts as no lag)."""
    if oldest_event_at is not None:
        INGEST_LAG.labels(edge_id).set(max(0.0, (received_at - oldest_event_at).total_seconds()))
    INGEST_LAST_BATCH.labels(edge_id).set(time.time())


class Metrics:
    def __init__(self) -> None:
        self.events_ingested: Counter[str] = Counter()  # by event kind
        self.event_duplicates = 0
        self.reading_duplicates = 0  # new events whose reading was already stored (another seq)
        self.batches_accepted = 0
        self.batches_refused: Counter[str] = Counter()  # by reason

    def refused(self, reason: str) -> None:
        self.batches_refused[reason] += 1

    def render(self, engine: AsyncEngine | None = None) -> str:
        """The whole exposition: this app's counters, its pool, then the process metrics."""
        text = self._render_ingest() + _render_pool(engine)
        return text + generate_latest(REGISTRY).decode()

    def _render_ingest(self) -> str:
        lines = [
            "# HELP shelfsense_events_ingested_total Events stored for the first time, by kind.",
            "# TYPE shelfsense_events_ingested_total counter",
        ]
        lines += [
            f'shelfsense_events_ingested_total{{kind="{k}"}} {v}'
            for k, v in sorted(self.events_ingested.items())
        ]
        lines += [
            "# HELP shelfsense_event_duplicates_total Events received again and ignored (replays).",
            "# TYPE shelfsense_event_duplicates_total counter",
            f"shelfsense_event_duplicates_total {self.event_duplicates}",
            "# HELP shelfsense_reading_duplicates_total Readings already stored for their sensor, "
            "quantity and device time (under another sequence number), left out.",
            "# TYPE shelfsense_reading_duplicates_total counter",
            f"shelfsense_reading_duplicates_total {self.reading_duplicates}",
            "# HELP shelfsense_batches_accepted_total Batches stored and acknowledged.",
            "# TYPE shelfsense_batches_accepted_total counter",
            f"shelfsense_batches_accepted_total {self.batches_accepted}",
            "# HELP shelfsense_batches_refused_total Batches refused, by reason.",
            "# TYPE shelfsense_batches_refused_total counter",
        ]
        lines += [
            f'shelfsense_batches_refused_total{{reason="{k}"}} {v}'
            for k, v in sorted(self.batches_refused.items())
        ]
        return "\n".join(lines) + "\n"


def _render_pool(engine: AsyncEngine | None) -> str:
    """Connection pool gauges (a pool without a fixed size, e.g. SQLite's, reports what it has)."""
    if engine is None:
        return ""
    pool: Any = engine.pool
    values = {
        "shelfsense_db_pool_checked_out_connections": ("Connections in use.", "checkedout"),
        "shelfsense_db_pool_idle_connections": ("Connections open and idle in the pool.", "checkedin"),
        "shelfsense_db_pool_size_connections": ("Configured pool size.", "size"),
        "shelfsense_db_pool_overflow_connections": ("Connections beyond the pool size.", "overflow"),
    }
    lines = []
    for name, (help_text, method) in values.items():
        read = getattr(pool, method, None)
        if callable(read):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {float(read())}"]
    return "\n".join(lines) + "\n" if lines else ""


__all__ = [
    "DELIVERIES",
    "DELIVERY_ATTEMPTS",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "JOB_DURATION",
    "JOB_RUNS",
    "REGISTRY",
    "Metrics",
    "observe_batch",
]
