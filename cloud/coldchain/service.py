"""The store layer of cold-chain alerting: evaluate a batch inside ingest, and the periodic tick.

:func:`evaluate_batch` runs inside the ingest transaction: it locks the site's active alerts and the
evaluator states of the zones the batch touches, feeds the readings and edge alarms (in time
order) to :class:`cloud.alerts.rules.AlertBook`, and stores alerts, evaluator states and
excursion events. It returns :class:`Notice` values; the caller hands them to people only
*after* the commit (:mod:`cloud.notify.notifier`), so delivery never holds up ingest and
nobody hears of an alert a rollback took back.

:func:`run_tick` is the periodic job, shared by all replicas through the ``jobs`` table (claimed
with ``FOR UPDATE SKIP LOCKED`` like the stocktake job): it raises gap alerts for silent sensors and
escalates alerts nobody acknowledged in time.

Lock order is the same everywhere (alerts of the site, then evaluator states), so ingest and the
tick do not deadlock each other.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.alerts import tables as alerts_db
from cloud.alerts.rules import ACTIVE, Alert, AlertBook, ColdChainRules, Limits, ProductLimits, StateKey
from cloud.coldchain import tables as cc
from cloud.core import db, jobs
from cloud.core.config import ZoneKey
from cloud.ingest.projections import dialect_insert
from cloud.masterdata import tables as masterdata_db
from cloud.stock import zone_stock
from shelfsense.config import ZoneLimits
from shelfsense.contract import LocalAlarm, SensorReading, SequencedEvent

log = logging.getLogger(__name__)

JOB_NAME = "coldchain"


@dataclass(frozen=True, slots=True)
class Notice:
    """An alert transition to tell people about; ``alert`` is the row as stored after it."""

    alert: Mapping[str, Any]
    state: str  # raised | acknowledged | escalated | resolved


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a batch's evaluation leaves for after the commit."""

    notices: Sequence[Notice] = ()
    limits: Mapping[str, Limits] = field(default_factory=dict)  # per zone with readings


# --- master data ----------------------------------------------------------------------------------


async def product_limits(
    conn: AsyncConnection, site_id: str, zones: Collection[str]
) -> dict[str, ProductLimits]:
    """Per zone, the strictest storage temperatures of products with items present there.

    An item counts for a zone when its location is the zone or a direct child of it (a shelf in a
    cold room).
    """
    if not zones:
        return {}
    loc, p = masterdata_db.locations, masterdata_db.products
    children = await conn.execute(
        select(loc.c.location_id, loc.c.parent_id).where(
            loc.c.site_id == site_id, loc.c.parent_id.in_(list(zones))
        )
    )
    zone_of = {child: parent for child, parent in children}
    zone_of.update({zone: zone for zone in zones})  # the location itself wins over its parent
    present = zone_stock.products_in(site_id, zone_of).subquery()
    query = select(present.c.location, p.c.sku, p.c.storage_temp_min_c, p.c.storage_temp_max_c).join(
        p, p.c.sku == present.c.sku
    )
    query = query.where(or_(p.c.storage_temp_min_c.is_not(None), p.c.storage_temp_max_c.is_not(None)))
    found: dict[str, dict[str, tuple[float | None, float | None]]] = defaultdict(dict)
    for row in (await conn.execute(query)).all():
        found[zone_of[row.location]][row.sku] = (row.storage_temp_min_c, row.storage_temp_max_c)
    out: dict[str, ProductLimits] = {}
    for zone, by_sku in found.items():
        mins = [lo for lo, _ in by_sku.values() if lo is not None]
        maxes = [hi for _, hi in by_sku.values() if hi is not None]
        out[zone] = ProductLimits(
            tuple(sorted(by_sku)), max(mins) if mins else None, min(maxes) if maxes else None
        )
    return out


# --- loading and persisting -----------------------------------------------------------------------


async def _lock_active_alerts(conn: AsyncConnection, site_id: str) -> list[Alert]:
    rows = (
        await conn.execute(
            select(alerts_db.alerts)
            .where(alerts_db.alerts.c.site_id == site_id, alerts_db.alerts.c.status.in_(ACTIVE))
            .with_for_update()
        )
    ).mappings()
    return [Alert.from_row(row) for row in rows]


async def _lock_states(conn: AsyncConnection, site_id: str, zones: Collection[str]) -> dict[StateKey, str]:
    t = cc.coldchain_sensor_state
    rows = await conn.execute(
        select(t.c.zone, t.c.sensor_id, t.c.quantity, t.c.state)
        .where(t.c.site_id == site_id, t.c.zone.in_(list(zones)))
        .with_for_update()
    )
    return {(r.zone, r.sensor_id, r.quantity): r.state for r in rows}


async def _persist(conn: AsyncConnection, book: AlertBook, now: datetime) -> list[Notice]:
    new, updated = book.changed()
    if updated:
        # Update existing rows first so a re-opened alert does not collide with the old row on
        # the partial unique index. Bind names are prefixed: SQLAlchemy reserves the bare column
        # names for the SET clause.
        columns = [name for name in updated[0].to_row() if name != "id"]
        params = [{"b_" + k: v for k, v in a.to_row().items()} for a in updated]
        stmt = (
            update(alerts_db.alerts)
            .where(alerts_db.alerts.c.id == bindparam("b_id"))
            .values({name: bindparam("b_" + name) for name in columns})
        )
        await conn.execute(stmt, params)
    for alert in new:  # rare: one statement each, to learn the ids
        row = alert.to_row()
        del row["id"]
        row["notified_at"] = now
        alert.id = await conn.scalar(alerts_db.alerts.insert().values(row).returning(alerts_db.alerts.c.id))
    await _persist_states(conn, book.site_id, book.states(), now)
    await _persist_events(conn, book)
    notices = []
    for transition in book.transitions:
        notices.append(Notice(transition.alert.to_row(), transition.state))
    return notices


async def _persist_states(
    conn: AsyncConnection, site_id: str, states: Mapping[StateKey, tuple[str, datetime | None]], now: datetime
) -> None:
    if not states:
        return
    t = cc.coldchain_sensor_state
    rows = [
        {
            "site_id": site_id,
            "zone": zone,
            "sensor_id": sensor,
            "quantity": quantity,
            "state": snapshot,
            "last_time": last,
            "updated_at": now,
        }
        for (zone, sensor, quantity), (snapshot, last) in states.items()
    ]
    stmt = dialect_insert(conn, t)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id", "zone", "sensor_id", "quantity"],
        set_={"state": stmt.excluded.state, "last_time": stmt.excluded.last_time, "updated_at": now},
    )
    await conn.execute(stmt, rows)


async def _persist_events(conn: AsyncConnection, book: AlertBook) -> None:
    rows = [
        {
            "site_id": book.site_id,
            "zone": rec.zone,
            "sensor_id": rec.sensor_id,
            "alert_id": rec.alert.id if rec.alert is not None else None,
            "kind": rec.event.kind,
            "rule": rec.event.rule,
            "state": rec.event.state,
            "at": rec.event.at,
            "started_at": rec.event.started_at,
            "value": rec.event.value,
            "limit": rec.event.limit,
            "peak": rec.event.peak,
            "duration_s": rec.event.duration_s,
        }
        for rec in book.events
    ]
    if rows:
        await conn.execute(cc.excursion_events.insert(), rows)


# --- ingest ---------------------------------------------------------------------------------------


def _event_time(item: SequencedEvent) -> tuple[datetime, int]:
    ev = item.event
    at = ev.time if isinstance(ev, SensorReading) else ev.at  # type: ignore[union-attr]
    return db.utc(at), item.seq


async def evaluate_batch(
    conn: AsyncConnection,
    site_id: str,
    zones: Mapping[ZoneKey, ZoneLimits],
    rules: ColdChainRules,
    items: Sequence[SequencedEvent],
) -> Evaluation:
    """Evaluate the new events of one batch inside the ingest transaction."""
    # The book ignores readings without a zone (no limits apply to them). Dropping them here means
    # a batch of only those (plain MQTT sensors) costs no sort, no alert lock and no book at all.
    relevant = [
        i
        for i in items
        if isinstance(ev := i.event, LocalAlarm) or (isinstance(ev, SensorReading) and ev.zone is not None)
    ]
    if not relevant:
        return Evaluation()
    touched = {z for i in relevant if (z := getattr(i.event, "zone", None)) is not None}
    active = await _lock_active_alerts(conn, site_id)
    states = await _lock_states(conn, site_id, touched)
    products = await product_limits(conn, site_id, touched)
    book = AlertBook(site_id, zones, active, rules=rules, states=states, products=products)
    for item in sorted(relevant, key=_event_time):
        if isinstance(item.event, SensorReading):
            book.on_reading(item.event)
        elif isinstance(item.event, LocalAlarm):
            book.on_local_alarm(item.event)
    notices = await _persist(conn, book, db.utcnow())
    limits = {zone: found for zone in touched if (found := book.limits(zone)) is not None}
    return Evaluation(notices, limits)


# --- the periodic tick: gaps and escalation -------------------------------------------------------


async def gap_tick(
    engine: AsyncEngine, zones: Mapping[ZoneKey, ZoneLimits], rules: ColdChainRules, now: datetime
) -> list[Notice]:
    """Raise gap alerts for sensors silent longer than ``rules.gap_s`` (as of ``now``)."""
    if rules.gap_s is None:
        return []
    t = cc.coldchain_sensor_state
    cutoff = now - timedelta(seconds=rules.gap_s)
    async with engine.connect() as conn:
        silent = (
            await conn.execute(
                select(t.c.site_id, t.c.zone, t.c.sensor_id, t.c.quantity).where(t.c.last_time < cutoff)
            )
        ).all()
    by_site: dict[str, list[StateKey]] = defaultdict(list)
    for row in silent:
        by_site[row.site_id].append((row.zone, row.sensor_id, row.quantity))
    notices: list[Notice] = []
    for site_id, keys in by_site.items():
        async with db.write_transaction(engine) as conn:
            active = await _lock_active_alerts(conn, site_id)
            zone_names = {k[0] for k in keys}
            states = await _lock_states(conn, site_id, zone_names)
            products = await product_limits(conn, site_id, zone_names)
            book = AlertBook(site_id, zones, active, rules=rules, states=states, products=products)
            for key in keys:
                if key in states:
                    book.tick(key, now)
            notices += await _persist(conn, book, db.utcnow())
    return notices


async def escalation_tick(engine: AsyncEngine, after: timedelta, groups: int, now: datetime) -> list[Notice]:
    """Move alerts still ``open`` (not acknowledged) ``after`` their last notice to the next group."""
    if groups < 2:
        return []
    a = alerts_db.alerts
    async with db.write_transaction(engine) as conn:
        rows = (
            await conn.execute(
                select(a)
                .where(
                    a.c.status == "open",
                    a.c.notified_at <= now - after,
                    a.c.escalation_level < groups - 1,
                )
                .with_for_update()
            )
        ).mappings()
        due = [dict(row) for row in rows]
        for row in due:
            row["escalation_level"] += 1
            row["notified_at"] = now
            await conn.execute(
                update(a)
                .where(a.c.id == row["id"])
                .values(escalation_level=row["escalation_level"], notified_at=now)
            )
    return [Notice(row, "escalated") for row in due]


async def ensure_job(engine: AsyncEngine, interval_s: float) -> None:
    await jobs.ensure_job(engine, JOB_NAME, interval_s)


# A tick holds the job's lease until it finishes, or for this many intervals if its replica dies.
TICK_LEASE_INTERVALS = 4


async def claim_tick(engine: AsyncEngine, interval_s: float, runner: str, now: datetime) -> bool:
    return await jobs.claim_job(engine, JOB_NAME, interval_s, now, runner, TICK_LEASE_INTERVALS * interval_s)


async def finish_tick(engine: AsyncEngine) -> None:
    await jobs.finish_job(engine, JOB_NAME)


async def alert_row(conn: AsyncConnection, alert_id: int) -> dict[str, Any] | None:
    row = (
        (await conn.execute(select(alerts_db.alerts).where(alerts_db.alerts.c.id == alert_id)))
        .mappings()
        .one_or_none()
    )
    return dict(row) if row is not None else None


__all__ = [
    "JOB_NAME",
    "Evaluation",
    "Notice",
    "alert_row",
    "claim_tick",
    "ensure_job",
    "escalation_tick",
    "evaluate_batch",
    "finish_tick",
    "gap_tick",
    "product_limits",
]
