"""The one interface every alert delivery channel implements, plus retries and the delivery log.

A channel is anything with ``name`` and ``async send(alert) -> DeliveryResult``. ``send`` does not
raise for delivery problems (a refused connection, a 500, a vendor ``errcode``): those come back as
a failed :class:`DeliveryResult`, after the channel's own retries, and are recorded in the
:class:`DeliveryLog`. The library exceptions of each transport are translated at this boundary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from cloud.core.metrics import DELIVERIES, DELIVERY_ATTEMPTS
from cloud.notify.catalogue import with_unit, word
from shelfsense.redact import mask_text

Severity = Literal["info", "warning", "critical"]


class NotifyError(Exception):
    """Base of notification errors raised to callers (configuration, not delivery)."""


class ChannelConfigError(NotifyError, ValueError):
    """A channel is configured wrongly (bad URL, no recipients)."""


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """What people are told about one alert transition (raised, acknowledged, escalated, resolved)."""

    alert_id: str
    site_id: str
    kind: str  # e.g. "max_temperature", "single_event", "gap", "expiry"
    state: str  # e.g. "raised", "acknowledged", "escalated", "resolved"
    title: str
    text: str
    at: datetime
    severity: Severity = "warning"
    zone: str | None = None
    value: float | None = None
    limit: float | None = None
    url: str | None = None
    delivery_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    language: str = "en"  # of title, text and the fact labels (cloud.notify.catalogue)
    unit: str | None = None  # of value and limit: "°C", "%RH", "days"

    def to_json(self) -> dict[str, Any]:
        """The generic webhook / MQTT payload (stable field names, ISO-8601 UTC time)."""
        return {
            "alert_id": self.alert_id,
            "delivery_id": self.delivery_id,
            "site_id": self.site_id,
            "zone": self.zone,
            "kind": self.kind,
            "state": self.state,
            "severity": self.severity,
            "title": self.title,
            "text": self.text,
            "value": self.value,
            "limit": self.limit,
            "at": self.at_text(),
            "url": self.url,
            "language": self.language,
            "unit": self.unit,
        }

    def at_text(self) -> str:
        """``at`` as ISO-8601 UTC with ``Z`` (a naive time is taken as UTC)."""
        at = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
        return at.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def word(self, key: str) -> str:
        return word(key, self.language)

    def headline(self) -> str:
        """``[CRITICAL] title`` / ``[严重] title``."""
        return f"[{self.word('severity.' + self.severity)}] {self.title}"

    def facts(self) -> list[tuple[str, str]]:
        rows = [(self.word("fact.site"), self.site_id)]
        if self.zone:
            rows.append((self.word("fact.zone"), self.zone))
        rows.append((self.word("fact.state"), self.word(f"state.{self.state}")))
        if self.value is not None:
            rows.append((self.word("fact.value"), with_unit(self.value, self.unit, self.language)))
        if self.limit is not None:
            rows.append((self.word("fact.limit"), with_unit(self.limit, self.unit, self.language)))
        rows.append((self.word("fact.at"), self.at_text()))  # subclasses may reshape to_json
        return rows

    def plain(self) -> str:
        lines = [self.headline(), self.text]
        lines += [f"{key}: {value}" for key, value in self.facts()]
        if self.url:
            lines.append(self.url)
        return "\n".join(line for line in lines if line)

    def markdown(self) -> str:
        lines = [f"### {self.headline()}", "", self.text, ""]
        lines += [f"- **{key}**: {value}" for key, value in self.facts()]
        if self.url:
            lines += ["", f"[{self.word('open_alert')}]({self.url})"]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    channel: str
    alert_id: str
    delivery_id: str
    ok: bool
    attempts: int
    elapsed_s: float
    status: int | None = None  # HTTP status or SMTP reply code, when there was one
    error: str | None = None  # why the last attempt failed
    attempt_errors: tuple[str, ...] = ()
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Channel(Protocol):
    name: str

    async def send(self, alert: AlertMessage) -> DeliveryResult: ...


class DeliveryLog:
    """The last ``maxlen`` delivery results (oldest dropped), plus an optional sink to persist them."""

    def __init__(self, maxlen: int = 10_000, sink: Callable[[DeliveryResult], None] | None = None) -> None:
        self._records: deque[DeliveryResult] = deque(maxlen=maxlen)
        self._sink = sink

    def record(self, result: DeliveryResult) -> None:
        # Errors may quote a URL, an exception or a server's answer: mask credentials before keeping.
        if result.error is not None or result.attempt_errors:
            result = dataclasses.replace(
                result,
                error=None if result.error is None else mask_text(result.error),
                attempt_errors=tuple(mask_text(e) for e in result.attempt_errors),
            )
        self._records.append(result)
        if self._sink is not None:
            self._sink(result)

    def records(self, alert_id: str | None = None) -> list[DeliveryResult]:
        return [r for r in self._records if alert_id is None or r.alert_id == alert_id]

    def __len__(self) -> int:
        return len(self._records)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter between attempts."""

    attempts: int = 4
    base_s: float = 0.5
    cap_s: float = 10.0

    def delay(self, retry: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2**retry))


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one try: ``ok``, or an error that is or is not worth retrying."""

    ok: bool
    status: int | None = None
    error: str | None = None
    retryable: bool = False


async def deliver_with_retries(
    channel: str,
    alert: AlertMessage,
    attempt: Callable[[], Awaitable[Attempt]],
    policy: RetryPolicy,
    log: DeliveryLog | None = None,
) -> DeliveryResult:
    """Run ``attempt`` until it succeeds, fails for good, or the policy's attempts are used up."""
    started = time.monotonic()
    errors: list[str] = []
    outcome = Attempt(ok=False, error="not attempted")
    tries = 0
    for tries in range(1, policy.attempts + 1):
        outcome = await attempt()
        if outcome.ok or not outcome.retryable:
            break
        errors.append(outcome.error or "failed")
        if tries < policy.attempts:
            await asyncio.sleep(policy.delay(tries - 1))
    if not outcome.ok and not outcome.retryable:
        errors.append(outcome.error or "failed")
    result = DeliveryResult(
        channel=channel,
        alert_id=alert.alert_id,
        delivery_id=alert.delivery_id,
        ok=outcome.ok,
        attempts=tries,
        elapsed_s=time.monotonic() - started,
        status=outcome.status,
        error=None if outcome.ok else outcome.error,
        attempt_errors=tuple(errors),
    )
    DELIVERIES.labels(channel, "ok" if result.ok else "failed").inc()
    DELIVERY_ATTEMPTS.labels(channel).inc(tries)
    if log is not None:
        log.record(result)
    return result
