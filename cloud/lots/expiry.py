"""Lot expiry alerts: lots on hand whose effective expiry is near or past raise ``expiry_soon`` /
``expired_on_hand`` alerts, resolved when the lot is gone; the periodic job shared by replicas.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.alerts import tables as alerts_db
from cloud.coldchain import evidence_tables as read_model
from cloud.coldchain.service import Notice
from cloud.core import db, jobs
from cloud.ingest.projections import dialect_insert
from cloud.lots.history import LotKey

log = logging.getLogger(__name__)


ACTIVE = ("open", "acknowledged")


EXPIRY_KINDS = ("expiry_soon", "expired_on_hand")


SYSTEM = "system"


JOB_NAME = "lot_expiry"


def alert_rule(kind: str, key: LotKey) -> str:
    """``<kind>:<digest of the lot>`` (fits ``alerts.rule``): one active alert per kind, lot and
    location is then guaranteed by the alerts table's one-active index on (site, zone, rule)."""
    digest = hashlib.sha256(f"{key[0]}\x00{key[1]}".encode()).hexdigest()[: 32 - len(kind) - 1]
    return f"{kind}:{digest}"


@dataclass(frozen=True, slots=True)
class ExpiryCheck:
    opened: list[int]
    resolved: list[int]
    notices: list[Notice] = field(default_factory=list)  # the opened alerts, to tell people


class AlertNotifier(Protocol):
    """The notifier (:class:`cloud.notify.notifier.Notifier`): queues messages after the commit,
    returns at once."""

    def notify(self, notices: Sequence[Notice]) -> None: ...


@dataclass(frozen=True, slots=True)
class ExpiringStock:
    """Items of a lot at one location whose effective expiry is near (from the lot read model)."""

    sku: str
    lot_code: str
    lot_id: str
    effective_expiry: datetime
    site_id: str
    location: str


async def expiring_stock(conn: AsyncConnection, horizon: datetime) -> list[ExpiringStock]:
    """Lots on hand per location with an effective expiry up to ``horizon``: an index range of the
    lot read model (cloud.lots.readmodel), not a replay of every lot's history."""
    e, st = read_model.lot_evidence, read_model.lot_evidence_stock
    query = (
        select(e.c.sku, e.c.lot_code, e.c.lot_id, e.c.effective_expiry, st.c.site_id, st.c.location)
        .join(st, and_(st.c.sku == e.c.sku, st.c.lot_code == e.c.lot_code))
        .where(
            e.c.fefo_key <= horizon, e.c.effective_expiry.is_not(None), st.c.quantity > 0, st.c.location != ""
        )
    )
    return [
        ExpiringStock(r.sku, r.lot_code, r.lot_id, db.utc(r.effective_expiry), r.site_id, r.location)
        for r in await conn.execute(query)
    ]


def _wanted(
    stock: Iterable[ExpiringStock], now: datetime, within: timedelta
) -> dict[tuple[str, str, str], tuple[str, ExpiringStock]]:
    """``(site, location, rule) -> (kind, lot)`` for every lot+location that needs an alert now."""
    wanted: dict[tuple[str, str, str], tuple[str, ExpiringStock]] = {}
    for lot in stock:
        effective = lot.effective_expiry
        if effective > now + within:
            continue
        kind = "expired_on_hand" if effective <= now else "expiry_soon"
        wanted[(lot.site_id, lot.location, alert_rule(kind, (lot.sku, lot.lot_code)))] = (kind, lot)
    return wanted


def _alert_row(
    site: str, location: str, rule: str, kind: str, lot: ExpiringStock, now: datetime
) -> dict[str, Any]:
    effective = lot.effective_expiry
    days_left = (effective - now).total_seconds() / 86400
    return {
        "site_id": site,
        "zone": location,
        "rule": rule,
        "status": "open",
        "source": "cloud",
        "sensor_id": None,
        "limit": None,
        "peak_value": days_left,  # days to the effective expiry (negative: expired)
        "last_value": days_left,
        "first_breach_at": min(effective, now),
        "last_breach_at": now,
        "kind": kind,
        "severity": "critical" if kind == "expired_on_hand" else "warning",
        "limit_source": f"lot {lot.lot_id} expiry {effective.isoformat()}"[:160],
    }


async def check_expiry(
    engine: AsyncEngine, *, within_days: float = 3.0, now: datetime | None = None
) -> ExpiryCheck:
    """Open ``expiry_soon`` / ``expired_on_hand`` alerts, one per lot+location, and resolve this
    check's own alerts whose condition is gone (the lot left the location, or a soon-alert became
    an expired one). Other alert kinds are never touched. Reads the lot read model: what the
    catch-up job has folded in (within seconds for movements, minutes for readings)."""
    now = db.utc(now) if now is not None else db.utcnow()
    within = timedelta(days=within_days)
    async with engine.connect() as conn:
        stock = await expiring_stock(conn, now + within)
    wanted = _wanted(stock, now, within)
    a = alerts_db.alerts
    opened: list[int] = []
    resolved: list[int] = []
    notices: list[Notice] = []
    async with db.write_transaction(engine) as conn:
        active = await conn.execute(
            select(a.c.id, a.c.site_id, a.c.zone, a.c.rule).where(
                a.c.kind.in_(EXPIRY_KINDS), a.c.status.in_(ACTIVE)
            )
        )
        existing = {(r.site_id, r.zone, r.rule): r.id for r in active}
        for (site, location, rule), (kind, e) in sorted(wanted.items(), key=lambda kv: kv[0]):
            if (site, location, rule) in existing:
                continue
            row = _alert_row(site, location, rule, kind, e, now)
            row["notified_at"] = now  # as cold-chain alerts: told now, escalated from here
            stmt = dialect_insert(conn, a).values(**row).on_conflict_do_nothing().returning(a.c.id)
            new_id = await conn.scalar(stmt)  # None: a concurrent check opened it first
            if new_id is not None:
                opened.append(int(new_id))
                notices.append(Notice({**row, "id": int(new_id), "escalation_level": 0}, "raised"))
        stale = [alert_id for k, alert_id in existing.items() if k not in wanted]
        if stale:
            await conn.execute(
                update(a)
                .where(a.c.id.in_(stale), a.c.status.in_(ACTIVE))
                .values(
                    status="resolved",
                    resolved_at=now,
                    resolved_by=SYSTEM,
                    resolve_reason="lot no longer on hand there, or its alert kind changed",
                )
            )
            resolved = sorted(stale)
    return ExpiryCheck(opened, resolved, notices)


@dataclass(frozen=True, slots=True)
class ExpiryOptions:
    enabled: bool = True
    interval_s: float = 900.0
    within_days: float = 3.0


async def _claim(engine: AsyncEngine, options: ExpiryOptions, now: datetime) -> bool:
    """Claim the due tick across replicas; the first tick is one interval after start-up."""
    await jobs.ensure_job(engine, JOB_NAME, options.interval_s)
    return await jobs.claim_job(engine, JOB_NAME, options.interval_s, now)


async def expiry_job_loop(
    engine: AsyncEngine, options: ExpiryOptions, notifier: AlertNotifier | None = None
) -> None:
    """Run :func:`check_expiry` whenever this replica claims a due tick, then hand the opened alerts
    to ``notifier`` (after the commit); log state changes only."""

    async def step() -> None:
        if await _claim(engine, options, db.utcnow()):
            result = await check_expiry(engine, within_days=options.within_days)
            if notifier is not None and result.notices:
                notifier.notify(result.notices)
            if result.opened or result.resolved:
                log.info("expiry check: opened %s, resolved %s", result.opened, result.resolved)

    await jobs.run_periodic("expiry", step, min(max(options.interval_s / 4, 0.05), 30.0), log)


def expiry_job(
    engine: AsyncEngine, options: ExpiryOptions | None = None, notifier: AlertNotifier | None = None
) -> contextlib.AbstractAsyncContextManager[None]:
    """Run :func:`expiry_job_loop` for the lifetime of the context (the app's lifespan)."""
    options = options or ExpiryOptions()
    job = (lambda: expiry_job_loop(engine, options, notifier)) if options.enabled else None
    return jobs.background("lot-expiry-job", job)


__all__ = ["AlertNotifier", "ExpiryCheck", "ExpiryOptions", "alert_rule", "check_expiry", "expiry_job"]
