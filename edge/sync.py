"""Edge -> cloud sync: POST gzip batches of outbox events, delete only what the cloud acknowledged.

Delivery is at-least-once: a batch whose answer is lost is sent again, and the cloud de-duplicates
on ``(edge_id, seq)``. Nothing leaves the outbox before the cloud said ``acked_through >= seq``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import json
import logging
import random
import ssl
import time
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any

import httpx
from pydantic import ValidationError

from edge.clock import EdgeClock, SyncedClock
from edge.errors import DiskFullError, PermanentSyncError, SyncError, TransientSyncError
from edge.outbox import Outbox
from edge.supervisor import Backoff, wait_or_stop
from shelfsense.contract import Batch, BatchAck, SequencedEvent

log = logging.getLogger(__name__)

# At most this many alarms are sent ahead of the backlog per regular batch.
PRIORITY_BATCH_MAX = 100
# Full batches in flight at once while a backlog drains (see drain_pipelined).
PIPELINE_DEPTH = 4

# A full disk (acks cannot be stored) is retried this often, not with the growing back-off: space
# may come back any moment, and then the edge should catch up at once.
DISK_FULL_RETRY_S = 2.0

# Client errors that retrying the same request cannot fix; everything else 4xx is treated alike
# except 408 (timeout) and 429 (rate limit), which are transient.
TRANSIENT_STATUSES = frozenset({408, 429})


class SyncClient:
    """Sends one batch and returns the cloud's acknowledgement; translates httpx errors."""

    def __init__(
        self,
        cloud_url: str,
        edge_id: str,
        token: str | None,
        http: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 30.0,
        clock: SyncedClock | None = None,
        incarnation: str | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.edge_id = edge_id
        self.incarnation = incarnation  # the outbox database's (edge.incarnation), in every batch
        self.disk_full = False  # set by the agent (edge.diskfull); every batch tells the cloud
        self.reported_disk_full = False  # what the cloud last accepted
        self.clock: SyncedClock = clock or EdgeClock()  # the agent passes its own
        self.url = f"{cloud_url.rstrip('/')}/api/v1/edges/{edge_id}/batches"
        self._token = token
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout_s, verify=verify)  # edge.tls.cloud_ssl_context

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def send(self, batch: Batch) -> BatchAck:
        return await self.send_json(batch.model_dump_json().encode())

    async def send_rows(self, rows: Sequence[tuple[int, str]]) -> BatchAck:
        """Send outbox rows ``(seq, event JSON)`` as a batch, splicing the stored JSON in unparsed."""
        return await self.send_json(
            batch_json(self.edge_id, rows, self.incarnation, self.disk_full, created_at=self.clock.now())
        )

    async def send_json(self, payload: bytes) -> BatchAck:
        disk_full = self.disk_full
        ack = await self._post(payload)
        self.reported_disk_full = disk_full
        return ack

    async def _post(self, payload: bytes) -> BatchAck:
        body = gzip.compress(payload, compresslevel=1)  # level 1: 3x faster, barely larger on JSON
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        sent = time.monotonic()
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # connect/read errors, timeouts, protocol errors
            raise TransientSyncError(f"{type(exc).__name__}: {exc or 'no detail'}") from exc
        self.clock.observe(response.headers.get("date"), sent, time.monotonic())
        status = response.status_code
        if status >= 500 or status in TRANSIENT_STATUSES:
            raise TransientSyncError(f"cloud answered {status}", status=status)
        if status >= 400:
            detail = response.text[:300]
            raise PermanentSyncError(f"cloud refused the batch with {status}: {detail}", status=status)
        try:
            return BatchAck.model_validate_json(response.content)
        except ValidationError as exc:
            # A 2xx that is not an ack (e.g. a captive proxy page): do not trust it, retry later.
            raise TransientSyncError(f"cloud answered {status} without a valid ack: {exc}") from exc


async def sync_once(outbox: Outbox, client: SyncClient, batch_max_events: int) -> tuple[int, int]:
    """Send the oldest pending events once; returns (events sent, rows deleted). Raises SyncError.

    When a backlog is draining (a full batch), alarms queued behind this batch go first in a small
    batch of their own: the cloud stores them at once (it accepts sequences ahead of its contiguous
    ack) and the regular batches skip them afterwards; the contiguous ack covers them once the gap
    before them is filled.
    """
    rows = await outbox.pending_rows(batch_max_events)
    if len(rows) == batch_max_events:
        urgent = await outbox.priority(rows[-1][0], PRIORITY_BATCH_MAX)
        if urgent:
            await _send_ahead(outbox, client, urgent)
    delivered = await outbox.max_delivered()
    if not rows and not delivered and client.disk_full == client.reported_disk_full:
        return 0, 0
    # With nothing else pending an empty batch still fetches the ack covering delivered rows, or
    # tells the cloud that the disk state changed (edge.diskfull).
    ack = await client.send_rows(rows)
    if not rows and not delivered:
        return 0, 0
    last_sent = max(rows[-1][0] if rows else 0, delivered)
    if ack.acked_through > last_sent:
        # The cloud claims more than it was ever sent: it can only ack what it has, and it has at
        # most what we sent. Ack only what we know it has.
        log.warning(
            "cloud acked through %d beyond the last seq it was sent (%d)", ack.acked_through, last_sent
        )
    through = min(ack.acked_through, last_sent)
    if rows and through < rows[0][0]:
        raise PermanentSyncError(
            f"cloud acked through {ack.acked_through} but the batch starts at {rows[0][0]}: "
            "the cloud is missing earlier events (was its database reset?)"
        )
    # Shielded: a stop arriving now must not cut the ack short (it is idempotent, but cheap to finish).
    deleted = await asyncio.shield(outbox.ack(through)) if through > 0 else 0
    return len(rows), deleted


class _AckBehind:
    """Deletes acknowledged rows in the background, the newest ack winning, so the send pipeline
    never waits for the disk: on a busy edge a delete queued behind the MQTT group commits (and
    their fsyncs) left the cloud idle between batches. Acks are idempotent and monotonic; one
    lost to a crash is repeated by the next answer."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.wanted = 0
        self.deleted = 0
        self._task: asyncio.Task[None] | None = None

    def submit(self, through: int) -> None:
        self.wanted = max(self.wanted, through)
        if self._task is not None and self._task.done():
            self._task.result()  # an OutboxError surfaces here, in the sync loop
            self._task = None
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        done = 0
        while done < self.wanted:
            target = self.wanted
            self.deleted += await self.outbox.ack(target)
            done = target

    async def finish(self) -> int:
        """Wait for the last ack to be applied; returns the rows deleted in all."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self.deleted

    def abandon(self) -> None:
        """The drain failed: let a running delete finish on its own. Its error, if any, is not lost:
        the next sync step touches the same database and raises it again."""
        if self._task is not None:
            self._task.add_done_callback(lambda task: task.cancelled() or task.exception())


async def drain_pipelined(
    outbox: Outbox, client: SyncClient, batch_max_events: int, depth: int = PIPELINE_DEPTH
) -> tuple[int, int]:
    """Drain a backlog with up to ``depth`` full batches in flight; returns (events sent, rows deleted).

    One request at a time leaves both sides idle half of the time: the cloud waits while the edge
    reads, encodes and deletes, the edge waits while the cloud parses and commits. Here the next
    batch (the rows after the last one sent) is already on its way while the previous answer is
    awaited, and acknowledged rows are deleted in the background (:class:`_AckBehind`). Answers
    are handled in sending order. The cloud may commit two
    batches of one edge in either order (it stores sequences ahead of its contiguous ack), so an
    answer may ack less than its own batch; the highest ack seen so far is what counts, and after
    the answer of batch ``i`` (every earlier answer handled) a healthy cloud has acked at least
    into batch ``i``. Returns when fewer than a full batch is left (the tail goes through
    :func:`sync_once`). Raises SyncError; batches still in flight are then abandoned (they may be
    stored or not: the cloud de-duplicates whatever is sent again).
    """
    in_flight: collections.deque[tuple[int, asyncio.Task[BatchAck]]] = collections.deque()
    queued_through = 0  # highest sequence sent so far
    acked = sent = 0
    acker = _AckBehind(outbox)
    try:
        while True:
            while len(in_flight) < depth:
                rows = await outbox.pending_rows(batch_max_events, queued_through)
                if len(rows) < batch_max_events:
                    break
                urgent = await outbox.priority(rows[-1][0], PRIORITY_BATCH_MAX)
                if urgent:  # alarms queued behind this batch go first
                    await _send_ahead(outbox, client, urgent)
                in_flight.append((rows[0][0], asyncio.ensure_future(client.send_rows(rows))))
                queued_through = rows[-1][0]
                sent += len(rows)
            if not in_flight:
                return sent, await acker.finish()
            first, task = in_flight.popleft()
            ack = await task
            acked = max(acked, min(ack.acked_through, queued_through))
            if acked < first:
                raise PermanentSyncError(
                    f"cloud acked through {ack.acked_through} but the batch starts at {first}: "
                    "the cloud is missing earlier events (was its database reset?)"
                )
            acker.submit(acked)
    finally:
        acker.abandon()
        for _, task in in_flight:
            task.cancel()
        await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)


def batch_json(
    edge_id: str,
    rows: Sequence[tuple[int, str]],
    incarnation: str | None = None,
    disk_full: bool = False,
    *,
    created_at: datetime,
) -> bytes:
    """The JSON of a contract :class:`Batch` built from stored event JSON (same shape as pydantic's)."""
    envelope: dict[str, object] = {"v": 1, "edge_id": edge_id, "created_at": created_at.isoformat()}
    if incarnation is not None:
        envelope["incarnation"] = incarnation
    if disk_full:
        envelope["disk_full"] = True
    head = json.dumps(envelope)[:-1]
    events = ",".join([f'{{"seq":{seq},"event":{body}}}' for seq, body in rows])
    return f'{head}, "events": [{events}]}}'.encode()


async def _send_ahead(outbox: Outbox, client: SyncClient, urgent: list[SequencedEvent]) -> None:
    batch = Batch(
        edge_id=client.edge_id,
        created_at=client.clock.now(),
        incarnation=client.incarnation,
        disk_full=client.disk_full,
        events=urgent,
    )
    ack = await client.send(batch)
    await asyncio.shield(outbox.mark_delivered([e.seq for e in urgent]))
    log.info("sent %d alarm(s) ahead of a backlog (acked through %d)", len(urgent), ack.acked_through)


async def flush_on_stop(outbox: Outbox, client: SyncClient, batch_max_events: int, timeout_s: float) -> bool:
    """Best-effort last drain at shutdown, bounded in time; True when nothing is left pending.

    What does not make it stays in the outbox and goes out after the restart, so a slow or absent
    cloud only delays the stop by ``timeout_s``.
    """
    try:
        async with asyncio.timeout(timeout_s):
            while (await sync_once(outbox, client, batch_max_events))[0] > 0:
                pass
    except (SyncError, TimeoutError) as exc:
        log.info("events left for the next start: final sync did not finish (%s)", exc or "timeout")
        return False
    return True


async def sync_loop(
    outbox: Outbox,
    client: SyncClient,
    interval_s: float,
    batch_max_events: int,
    stop_event: asyncio.Event,
    *,
    backoff_initial: float = 0.5,
    backoff_max: float = 60.0,
    rng: random.Random | None = None,
) -> None:
    """Drain the outbox to the cloud until ``stop_event`` is set.

    Full batches are followed immediately by the next one (catching up after an outage); otherwise
    the loop polls every ``interval_s``, counted from the start of the previous send (a send that
    took most of the interval is followed at once, so a steady stream never waits on a timer).
    Failures back off exponentially with full jitter; permanent failures jump to the maximum delay.
    A 413 halves the batch size (down to 1) for the following attempts. ``OutboxError`` propagates:
    a broken disk is not a cloud problem; a full one (``DiskFullError``: acks cannot be stored)
    is retried like a failed send, and what was sent stays in the outbox to be sent again.
    """
    backoff = Backoff(backoff_initial, backoff_max, rng)
    limit = batch_max_events
    cloud_lost = False
    clock_skewed = False
    backlog = False  # the last batch was full: drain the rest pipelined
    loop = asyncio.get_running_loop()
    while not stop_event.is_set():
        started = loop.time()
        step = drain_pipelined(outbox, client, limit) if backlog else sync_once(outbox, client, limit)
        try:
            result = await _unless_stopped(step, stop_event)
        except DiskFullError as exc:
            backlog = False
            log.debug("sync: cannot store the ack (%s)", exc)  # edge.diskfull says it loudly
            if await wait_or_stop(stop_event, DISK_FULL_RETRY_S):
                return
            continue
        except SyncError as exc:
            backlog = False
            delay = _failure_delay(exc, backoff)
            if exc.status == 413 and limit > 1:
                limit = max(1, limit // 2)
                log.error("cloud refused a batch as too large; batch size now %d", limit)
            elif exc.permanent:
                log.error("cloud sync refused (permanent): %s; retrying in %.1f s", exc, delay)
            elif not cloud_lost:
                log.warning("cloud lost: %s", exc)
            cloud_lost = True
            if await wait_or_stop(stop_event, delay):
                return
            continue
        if result is None:
            return  # stopped while a request was in flight; it is resent after the restart
        sent, _ = result
        if client.clock.skewed != clock_skewed:
            skew_ms = round((client.clock.skew_s or 0.0) * 1000) if client.clock.skewed else 0
            with contextlib.suppress(DiskFullError):  # noted on the next success instead
                await outbox.set_meta("clock_skew_ms", skew_ms)
                clock_skewed = client.clock.skewed
        if cloud_lost:
            log.warning("cloud recovered")
            cloud_lost = False
        backoff.reset()
        if backlog:
            backlog = False  # the drain left a partial batch: sync_once sends it right away
            continue
        backlog = sent >= limit
        if not backlog and await wait_or_stop(stop_event, max(0.0, interval_s - (loop.time() - started))):
            return


async def _unless_stopped(
    coro: Coroutine[Any, Any, tuple[int, int]], stop_event: asyncio.Event
) -> tuple[int, int] | None:
    """``await coro`` unless the stop event comes first (a hung cloud must not delay shutdown)."""
    work = asyncio.ensure_future(coro)
    stopper = asyncio.ensure_future(stop_event.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return None
    return work.result()


def _failure_delay(exc: SyncError, backoff: Backoff) -> float:
    if exc.permanent and exc.status != 413:
        backoff.attempt = max(backoff.attempt, 62)  # straight to the cap: hammering will not help
    return backoff.next()
