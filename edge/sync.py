"""Edge -> cloud sync: POST gzip batches of outbox events, delete only what the cloud acknowledged.

Delivery is at-least-once: a batch whose answer is lost is sent again, and the cloud de-duplicates
on ``(edge_id, seq)``. Nothing leaves the outbox before the cloud said ``acked_through >= seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import random
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from edge.errors import PermanentSyncError, SyncError, TransientSyncError
from edge.outbox import Outbox
from edge.supervisor import Backoff, wait_or_stop
from shelfsense.contract import Batch, BatchAck

log = logging.getLogger(__name__)

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
    ) -> None:
        self.edge_id = edge_id
        self.url = f"{cloud_url.rstrip('/')}/api/v1/edges/{edge_id}/batches"
        self._token = token
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def send(self, batch: Batch) -> BatchAck:
        body = gzip.compress(batch.model_dump_json().encode(), compresslevel=6)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # connect/read errors, timeouts, protocol errors
            raise TransientSyncError(f"{type(exc).__name__}: {exc or 'no detail'}") from exc
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
    """Send the oldest pending events once; returns (events sent, rows deleted). Raises SyncError."""
    events = await outbox.pending(batch_max_events)
    if not events:
        return 0, 0
    batch = Batch(edge_id=client.edge_id, created_at=datetime.now(UTC), events=events)
    ack = await client.send(batch)
    last_sent = events[-1].seq
    if ack.acked_through > last_sent:
        # The cloud claims more than we sent in this batch: it can only ack what it has, and it
        # has at most what we ever sent, which the outbox bounds. Ack only what we sent here.
        log.warning("cloud acked through %d beyond the batch's last seq %d", ack.acked_through, last_sent)
    through = min(ack.acked_through, last_sent)
    if through < events[0].seq:
        raise PermanentSyncError(
            f"cloud acked through {ack.acked_through} but the batch starts at {events[0].seq}: "
            "the cloud is missing earlier events (was its database reset?)"
        )
    # Shielded: a stop arriving now must not cut the ack short (it is idempotent, but cheap to finish).
    deleted = await asyncio.shield(outbox.ack(through))
    return len(events), deleted


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
    the loop polls every ``interval_s``. Failures back off exponentially with full jitter;
    permanent failures jump to the maximum delay. A 413 halves the batch size (down to 1) for
    the following attempts. ``OutboxError`` propagates: a broken disk is not a cloud problem.
    """
    backoff = Backoff(backoff_initial, backoff_max, rng)
    limit = batch_max_events
    cloud_lost = False
    while not stop_event.is_set():
        try:
            result = await _unless_stopped(sync_once(outbox, client, limit), stop_event)
        except SyncError as exc:
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
        if cloud_lost:
            log.warning("cloud recovered")
            cloud_lost = False
        backoff.reset()
        if sent < limit and await wait_or_stop(stop_event, interval_s):
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
