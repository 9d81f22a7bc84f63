"""Excursion rules in ingest (SQLite and PostgreSQL): single-event, cumulative, instant, product
limits, door-open suppression, gap alerts from the tick, evaluator state across batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import MAX_BODY, T0, Cloud, alarm, batch, reading
from sqlalchemy import select

from cloud.alerts.rules import ColdChainRules, ProductLimits, effective_limits
from cloud.coldchain import tables as cc
from cloud.coldchain.runtime import ColdChainRuntime, runtime_of
from cloud.coldchain.service import claim_tick, ensure_job
from cloud.core import db
from cloud.masterdata import tables as masterdata_db
from shelfsense.config import CloudSettings, ColdChainSettings, Settings, ZoneLimits


@pytest.fixture
def settings(db_url: str) -> Settings:
    coldchain = ColdChainSettings(
        single_event_s=600,  # 10 minutes beyond before an alert
        cumulative_s=900,  # 15 minutes above max in total, ever
        instant_margin_c=4.0,  # 12 °C / -2 °C: at once
        gap_minutes=20,
        door_rise_c=3.0,
        door_within_s=120,
        door_grace_s=300,
    )
    return Settings(
        cloud=CloudSettings(
            max_event_age_s=None, db_url=db_url, max_body_bytes=MAX_BODY, coldchain=coldchain
        ),
        zones=[
            ZoneLimits(id="cold-1", min_temp_c=2.0, max_temp_c=8.0, max_humidity=90.0, hysteresis_c=0.5),
            ZoneLimits(id="door-zone", min_temp_c=2.0, max_temp_c=8.0, hysteresis_c=0.5),
        ],
    )


async def alerts(cloud: Cloud, status: str = "all") -> list[dict[str, Any]]:
    return (await cloud.get_ok("/api/v1/alerts", status=status, limit=500))["items"]


def by_rule(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["rule"]: a for a in items}


async def test_single_event_needs_the_duration_across_batches(cloud: Cloud) -> None:
    # 9 °C for 5 minutes, back inside: nothing (state carried between batches).
    await cloud.post(batch("edge-1", [(1, reading(0, 5.0)), (2, reading(60, 9.0))]))
    await cloud.post(batch("edge-1", [(3, reading(360, 9.0)), (4, reading(420, 6.0))]))
    assert await alerts(cloud) == []
    # 9 °C from t=600 s: at t=1200 s the run has lasted 10 minutes.
    seq = 5
    for t in range(600, 1200, 120):
        await cloud.post(batch("edge-1", [(seq, reading(t, 9.0))]))
        seq += 1
    assert await alerts(cloud) == []
    await cloud.post(batch("edge-1", [(seq, reading(1200, 9.2))]))
    opened = by_rule(await alerts(cloud, "open"))
    # 360 s + 600 s above 8 °C also used up the 900 s cumulative budget (at t=1140 s).
    assert set(opened) == {"max_temperature", "max_temperature_cumulative"}
    detail = await cloud.get_ok(f"/api/v1/alerts/{opened['max_temperature_cumulative']['id']}")
    assert [(e["state"], e["at"][:19]) for e in detail["events"]] == [("raised", "2025-01-01T12:19:00")]
    alert = opened["max_temperature"]
    assert (alert["rule"], alert["kind"], alert["severity"]) == ("max_temperature", "single_event", "warning")
    assert alert["first_breach_at"].startswith("2025-01-01T12:10:00")
    assert alert["peak_value"] == 9.2
    assert alert["limit_source"] == "zone"


async def test_instant_rule_opens_at_once_and_cumulative_never_clears(cloud: Cloud) -> None:
    # 13 °C: beyond max + 4 at once -> instant (critical). 20 minutes above 8 in several bursts
    # -> cumulative after 15 minutes in total.
    events = [
        (1, reading(0, 13.0)),
        (2, reading(60, 9.0)),  # instant clears at 12 - 0.5
        (3, reading(300, 5.0)),  # burst 1: 0..300 s above 8
        (4, reading(600, 9.0)),
        (5, reading(900, 5.0)),  # burst 2: 300 s more (600 s in total)
        (6, reading(1200, 9.0)),
        (7, reading(1500, 5.0)),  # burst 3: 900 s in total -> cumulative raised
        (8, reading(1800, 5.0)),
    ]
    await cloud.post(batch("edge-1", events))
    rules = by_rule(await alerts(cloud))
    assert set(rules) == {"max_temperature_instant", "max_temperature_cumulative"}
    instant = rules["max_temperature_instant"]
    assert (instant["status"], instant["severity"], instant["limit"], instant["peak_value"]) == (
        "resolved",
        "critical",
        12.0,
        13.0,
    )
    cumulative = rules["max_temperature_cumulative"]
    assert (cumulative["status"], cumulative["kind"], cumulative["severity"]) == (
        "open",
        "cumulative",
        "critical",
    )
    detail = await cloud.get_ok(f"/api/v1/alerts/{cumulative['id']}")
    assert [(e["state"], e["at"][:19]) for e in detail["events"]] == [("raised", "2025-01-01T12:25:00")]
    # Back inside does not clear it: the product has been exposed; only an operator closes it.
    await cloud.post(batch("edge-1", [(9, reading(2400, 4.0))]))
    assert by_rule(await alerts(cloud, "open"))["max_temperature_cumulative"]["last_value"] == 4.0


async def test_product_limits_win_where_its_lot_is(cloud: Cloud) -> None:
    async with cloud.engine.begin() as conn:
        now = db.utcnow()
        await conn.execute(
            masterdata_db.products.insert().values(
                sku="VACCINE", name="", storage_temp_min_c=2.0, storage_temp_max_c=5.0, updated_at=now
            )
        )
        await conn.execute(masterdata_db.lots.insert().values(sku="VACCINE", lot_code="L1", updated_at=now))
        await conn.execute(
            masterdata_db.items.insert().values(
                epc="3034257BF400B7800004CB2F", sku="VACCINE", lot_code="L1", updated_at=now
            )
        )
    movement = {
        "kind": "stock_movement",
        "epc": "3034257BF400B7800004CB2F",
        "from_location": None,
        "to_location": "cold-1",
        "at": (T0 - timedelta(minutes=1)).isoformat(),
    }
    await cloud.post(batch("edge-1", [(1, movement)]))
    # 6 °C is inside the zone (max 8) but beyond the product's 5 °C: with single_event_s=600,
    # an alert after 10 minutes.
    await cloud.post(batch("edge-1", [(2, reading(0, 6.0)), (3, reading(600, 6.0))]))
    [alert] = await alerts(cloud, "open")
    assert (alert["rule"], alert["limit"], alert["limit_source"]) == (
        "max_temperature",
        5.0,
        "product:VACCINE",
    )
    detail = await cloud.get_ok(f"/api/v1/alerts/{alert['id']}")
    assert detail["limits"]["max_temp_c"] == 5.0


def test_effective_limits_take_the_strictest_product_and_keep_zone_humidity() -> None:
    zone = ZoneLimits(id="z", min_temp_c=0.0, max_temp_c=10.0, max_humidity=80.0, hysteresis_c=0.3)
    product = ProductLimits(("A", "B"), min_temp_c=2.0, max_temp_c=None)
    limits = effective_limits(zone, product)
    assert limits is not None
    assert (limits.min_temp_c, limits.max_temp_c, limits.max_humidity, limits.hysteresis) == (
        2.0,
        10.0,
        80.0,
        0.3,
    )
    assert limits.source == "product:A,B"
    assert effective_limits(None, None) is None
    only_product = effective_limits(None, ProductLimits(("A",), None, 8.0))
    assert only_product is not None and only_product.max_temp_c == 8.0


async def test_door_opening_is_suppressed_but_a_real_excursion_is_not(cloud: Cloud) -> None:
    def door(seconds: float, value: float) -> dict[str, Any]:
        return reading(seconds, value, zone="door-zone", sensor="door-probe")

    # A fast rise (+9 °C in 60 s) that recovers within the 300 s grace: no alert at all, even
    # though 13 °C is beyond the instant limit; the episode is recorded as an info event.
    await cloud.post(batch("edge-1", [(1, door(0, 4.0)), (2, door(60, 13.0)), (3, door(180, 5.0))]))
    assert await alerts(cloud) == []
    async with cloud.engine.connect() as conn:
        kinds = (await conn.execute(select(cc.excursion_events.c.kind))).scalars().all()
    assert list(kinds) == ["door_open"]
    # The edge alarms during a door opening too: held back by the cloud's grace period as well.
    door_alarm = {**alarm(700, "raised", 13.0), "zone": "door-zone", "sensor_id": "door-probe"}
    # Same rise, but it stays hot beyond the grace period: the held-back instant alert goes out.
    await cloud.post(batch("edge-1", [(4, door(600, 4.0)), (5, door(660, 13.0)), (6, door_alarm)]))
    assert await alerts(cloud) == []
    await cloud.post(batch("edge-1", [(7, door(1000, 13.0))]))
    [alert] = await alerts(cloud, "open")
    assert (alert["rule"], alert["zone"], alert["source"]) == (
        "max_temperature_instant",
        "door-zone",
        "cloud",
    )


async def test_gap_alert_from_the_tick_resolves_when_data_flows(cloud: Cloud) -> None:
    runtime = runtime_of(cloud.app)
    assert isinstance(runtime, ColdChainRuntime)
    await cloud.post(batch("edge-1", [(1, reading(0, 5.0)), (2, reading(60, 5.0, sensor="probe-2"))]))
    # 19 minutes later: not yet.
    assert await runtime.tick(T0 + timedelta(minutes=19, seconds=59)) == []
    # probe-2 keeps reporting; probe-1 is silent for 25 minutes -> one gap alert for the zone.
    await cloud.post(batch("edge-1", [(3, reading(1200, 5.0, sensor="probe-2"))]))
    notices = await runtime.tick(T0 + timedelta(minutes=25))
    assert [(n.state, n.alert["rule"]) for n in notices] == [("raised", "gap")]
    [gap] = await alerts(cloud, "open")
    assert (gap["rule"], gap["kind"], gap["sensor_id"], gap["zone"]) == ("gap", "gap", "probe-1", "cold-1")
    assert gap["first_breach_at"].startswith("2025-01-01T12:00:00")  # silent since its last reading
    # Ticking again does not raise a second one.
    assert await runtime.tick(T0 + timedelta(minutes=30)) == []
    assert len(await alerts(cloud, "all")) == 1
    # probe-1 comes back: resolved.
    await cloud.post(batch("edge-1", [(4, reading(1900, 5.0)), (5, reading(1900, 5.0, sensor="probe-2"))]))
    [gap] = await alerts(cloud, "all")
    assert gap["status"] == "resolved"
    assert gap["resolve_reason"] == "data flows again"
    # A late reading that ends a silence nobody ticked during is a gap too, raised and resolved.
    await cloud.post(batch("edge-1", [(6, reading(4000, 5.0, sensor="probe-2"))]))
    late = [a for a in await alerts(cloud, "all") if a["sensor_id"] == "probe-2"]
    assert [(a["rule"], a["status"], a["first_breach_at"][:19]) for a in late] == [
        ("gap", "resolved", "2025-01-01T12:31:40")
    ]


async def test_only_one_replica_claims_a_tick(cloud: Cloud) -> None:
    await ensure_job(cloud.engine, 60)
    await ensure_job(cloud.engine, 60)  # the second replica: no second row
    now = datetime.now(UTC) + timedelta(minutes=2)
    claims = [await claim_tick(cloud.engine, 60, f"r{i}", now) for i in range(3)]
    assert claims == [True, False, False]


async def test_edge_alarm_merges_with_a_waiting_single_event_rule(cloud: Cloud) -> None:
    # The edge alarms at once; the cloud's 10-minute rule has not fired yet: one alert, from the
    # edge, which the cloud later joins and which resolves when readings recover.
    await cloud.post(batch("edge-1", [(1, reading(0, 9.0)), (2, alarm(1, "raised", 9.0))]))
    [alert] = await alerts(cloud, "open")
    assert (alert["source"], alert["kind"]) == ("edge", "local_alarm")
    await cloud.post(batch("edge-1", [(3, reading(300, 9.5)), (4, reading(660, 9.4))]))
    [alert] = await alerts(cloud, "open")
    assert (alert["source"], alert["kind"], alert["peak_value"]) == ("both", "single_event", 9.5)
    await cloud.post(batch("edge-1", [(5, reading(700, 7.0))]))
    [alert] = await alerts(cloud, "all")
    assert alert["status"] == "resolved"


def test_rules_from_settings() -> None:
    rules = ColdChainRules.from_settings(ColdChainSettings(gap_minutes=5, door_rise_c=2.0, door_grace_s=60))
    assert rules.gap_s == 300
    assert rules.door is not None and (rules.door.rise_c, rules.door.grace_s) == (2.0, 60)
    assert ColdChainRules.from_settings(ColdChainSettings(gap_minutes=None)).gap_s is None
