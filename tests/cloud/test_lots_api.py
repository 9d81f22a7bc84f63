"""Lot evidence on SQLite and PostgreSQL: history from movements + zone readings, MKT, shelf life,
FEFO, expiry alerts and the report (JSON, CSV, PNG, CLI), checked against hand-built histories."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Cloud, settle_lots
from sqlalchemy import select

from cloud.alerts import tables as alerts_db
from cloud.lots import evidence as lots_evidence
from cloud.lots import expiry as lots_expiry
from cloud.lots import history as lots_history
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from shelfsense.cli import main as cli_main

H = 3600.0
E_OVER_R = 10_000.0  # 83.144 / 8.3144e-3
WARM = ["3034257BF400B7800004CB2F", "3034257BF400B7800004CB30"]
COLD = ["3034257BF400B7800004CB31"]
GONE = ["3034257BF400B7800004CB32"]


def usp_mkt(pairs: list[tuple[float, float]]) -> float:
    total = sum(h for h, _ in pairs)
    mean = sum(h * math.exp(-E_OVER_R / (c + 273.15)) for h, c in pairs) / total
    return E_OVER_R / -math.log(mean) - 273.15


def rate(celsius: float, reference: float = 5.0) -> float:
    return math.exp(-E_OVER_R * (1 / (celsius + 273.15) - 1 / (reference + 273.15)))


def iso(moment: datetime) -> str:
    return moment.isoformat()


def reading(moment: datetime, value: float, zone: str, sensor: str) -> dict[str, Any]:
    return {
        "kind": "sensor_reading",
        "sensor_id": sensor,
        "quantity": "temperature",
        "value": value,
        "unit": "degC",
        "time": iso(moment),
        "zone": zone,
        "flags": [],
    }


def move(moment: datetime, epc: str, to: str | None) -> dict[str, Any]:
    return {"kind": "stock_movement", "epc": epc, "to_location": to, "at": iso(moment)}


async def post(cloud: Cloud, events: list[dict[str, Any]], first_seq: int) -> int:
    for start in range(0, len(events), 100):
        chunk = events[start : start + 100]
        body = {
            "v": 1,
            "edge_id": "edge-1",
            "created_at": iso(datetime.now(UTC)),
            "events": [{"seq": first_seq + i, "event": e} for i, e in enumerate(chunk)],
        }
        response = await cloud.post(body, gzipped=True)
        assert response.status_code == 200, response.text
        first_seq += len(chunk)
    return first_seq


async def build(cloud: Cloud, t0: datetime, printed: dict[str, str]) -> None:
    """MILK (2-8 °C, 10 days): lot WARM spent 10:00-12:00 on the dock at 12 °C, COLD stayed in
    cold-1 at 5 °C, GONE arrived and left the site. Readings every 10 min for 24 h."""
    records = masterdata_records.parse_rows(
        "products",
        [{"sku": "MILK", "shelf_life_days": 10, "storage_temp_min_c": 2, "storage_temp_max_c": 8}],
    )
    await md.import_records(cloud.engine, "products", records)
    lot_rows = [{"sku": "MILK", "lot_code": code, "expiry": day} for code, day in printed.items()]
    await md.import_records(cloud.engine, "lots", masterdata_records.parse_rows("lots", lot_rows))
    items = [
        {"epc": e, "sku": "MILK", "lot_code": code}
        for code, epcs in (("WARM", WARM), ("COLD", COLD), ("GONE", GONE))
        for e in epcs
    ]
    await md.import_records(cloud.engine, "items", masterdata_records.parse_rows("items", items))
    events: list[dict[str, Any]] = []
    for epc in WARM + COLD + GONE:
        events.append(move(t0, epc, "cold-1"))
    for epc in WARM:
        events.append(move(t0 + timedelta(hours=10), epc, "dock"))
        events.append(move(t0 + timedelta(hours=12), epc, "cold-1"))
    events.append(move(t0 + timedelta(hours=1), GONE[0], None))
    events += [reading(t0 + timedelta(minutes=10 * m), 5.0, "cold-1", "probe-1") for m in range(145)]
    events += [reading(t0 + timedelta(hours=10, minutes=10 * m), 12.0, "dock", "probe-d") for m in range(12)]
    await post(cloud, events, 1)
    await settle_lots(cloud.engine)


async def test_lot_history_mkt_excursion_and_shelf_life(cloud: Cloud) -> None:
    t0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
    await build(cloud, t0, {"WARM": "2025-01-11", "COLD": "2025-01-11", "GONE": "2025-01-05"})
    now = t0 + timedelta(hours=24)
    async with cloud.engine.connect() as conn:
        warm = await lots_evidence.lot_evidence(conn, "MILK:WARM", now=now, since=t0, until=now)
        cold = await lots_evidence.lot_evidence(conn, "COLD", now=now, since=t0, until=now)
        dock_only = await lots_evidence.lot_evidence(
            conn, "MILK:WARM", now=now, since=t0 + timedelta(hours=10), until=t0 + timedelta(hours=12)
        )
        with pytest.raises(lots_history.LotNotFound):
            await lots_evidence.lot_evidence(conn, "MILK:NOPE", now=now)
    assert [(s["location"], s["items"]) for s in warm.stays] == [("cold-1", 2), ("dock", 2), ("cold-1", 2)]
    assert warm.excursions.above_s == pytest.approx(2 * H)
    assert warm.excursions.below_s == 0
    [episode] = warm.excursions.episodes
    assert (episode.location, episode.peak, episode.duration) == ("dock", 12.0, 2 * H)
    assert warm.mkt_c == pytest.approx(usp_mkt([(22, 5.0), (2, 12.0)]), abs=1e-6)
    assert dock_only.mkt_c == pytest.approx(12.0) and dock_only.mkt_c > 8
    assert cold.mkt_c == pytest.approx(5.0) and cold.excursions.above_s == 0
    # Shelf life: production = printed - 10 days; all time at the reference 5 °C except 2 h at 12 °C.
    printed = datetime(2025, 1, 11, tzinfo=UTC)
    assert warm.shelf_life is not None and cold.shelf_life is not None
    assert cold.shelf_life.dynamic_expiry == printed
    lost = timedelta(hours=2 * (rate(12.0) - 1))
    assert abs(warm.shelf_life.dynamic_expiry - (printed - lost)) < timedelta(seconds=1)
    assert warm.effective_expiry == warm.shelf_life.dynamic_expiry < printed
    assert warm.shelf_life.remaining_days == pytest.approx((printed - lost - now) / timedelta(days=1))


async def test_api_lots_fefo_zone_mkt_and_report(
    cloud: Cloud, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = (datetime.now(UTC) - timedelta(hours=24)).replace(microsecond=0)
    day = (t0 + timedelta(days=9)).date().isoformat()
    await build(cloud, t0, {"WARM": day, "COLD": day, "GONE": day})

    listing = await cloud.get_ok("/api/v1/lots", product="MILK")
    by_code = {row["lot_code"]: row for row in listing["items"]}
    assert listing["total"] == 3
    # Same label; the warm lot's history makes it expire earlier, so it is picked first.
    assert (by_code["WARM"]["fefo_rank"], by_code["COLD"]["fefo_rank"], by_code["GONE"]["fefo_rank"]) == (
        1,
        2,
        None,
    )
    assert by_code["WARM"]["expiry_source"] == "dynamic" and by_code["COLD"]["expiry_source"] == "printed"
    assert by_code["WARM"]["time_above_max_s"] == pytest.approx(2 * H)
    assert by_code["WARM"]["locations"] == [{"site_id": "site-1", "location": "cold-1", "quantity": 2}]
    assert (await cloud.get_ok("/api/v1/lots", site="site-2"))["total"] == 0
    soon = await cloud.get_ok("/api/v1/lots", expiring_within_days=30)
    assert [r["lot_code"] for r in soon["items"]] == ["WARM", "COLD"]  # on hand only, soonest first
    assert (await cloud.get_ok("/api/v1/lots", expiring_within_days=1))["total"] == 0
    # The master-data listing's parameters still work on this path.
    assert (await cloud.get_ok("/api/v1/lots", sku="MILK", expires_before="2000-01-01"))["total"] == 0

    fefo = await cloud.get_ok("/api/v1/fefo", product="MILK", site="site-1")
    [milk] = fefo["products"]
    assert [(lot["lot_id"], lot["fefo_rank"], lot["on_hand"]) for lot in milk["lots"]] == [
        ("MILK:WARM", 1, 2),
        ("MILK:COLD", 2, 1),
    ]
    assert milk["lots"][0]["locations"] == [{"site_id": "site-1", "location": "cold-1", "quantity": 2}]

    window = {"since": iso(t0 + timedelta(hours=9)), "until": iso(t0 + timedelta(hours=13))}
    detail = await cloud.get_ok("/api/v1/lots/MILK:WARM", **window)
    assert detail["mkt_c"] == pytest.approx(usp_mkt([(2, 5.0), (2, 12.0)]), abs=1e-6)
    assert detail["mkt_c"] > 8
    assert detail["excursions"]["time_above_max_s"] == pytest.approx(2 * H)
    assert (await cloud.get("/api/v1/lots/MILK:NOPE")).status_code == 404

    zone = await cloud.get_ok(
        "/api/v1/zones/dock/mkt", since=iso(t0 + timedelta(hours=10)), until=iso(t0 + timedelta(hours=12))
    )
    assert (zone["mkt_c"], zone["readings"]) == (pytest.approx(12.0), 12)
    mixed = {"since": iso(t0 + timedelta(hours=11)), "until": iso(t0 + timedelta(hours=13))}
    cold_zone = await cloud.get_ok("/api/v1/zones/cold-1/mkt", **mixed)
    assert cold_zone["mkt_c"] == pytest.approx(5.0)
    heavy = await cloud.get_ok("/api/v1/zones/cold-1/mkt", activation_energy_kj=150, **mixed)
    assert heavy["activation_energy_kj"] == 150
    assert (await cloud.get("/api/v1/zones/dock/mkt", activation_energy_kj=0)).status_code == 422

    report = await cloud.get_ok("/api/v1/lots/MILK:WARM/report", **window)
    assert report["excursions"]["time_above_max_s"] == pytest.approx(2 * H)
    assert len(report["readings"]) == 12 + 12  # 9:00-9:50 and 12:00-12:50 in cold-1, 12 on the dock
    text = (await cloud.get("/api/v1/lots/MILK:WARM/report", format="csv", **window)).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sum(r["record"] == "reading" for r in rows) == 24
    [excursion] = [r for r in rows if r["record"] == "excursion"]
    assert (excursion["location"], float(excursion["value_c"])) == ("dock", 12.0)
    png = await cloud.get("/api/v1/lots/MILK:WARM/report", format="png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"

    out = tmp_path / "warm.csv"
    code = await asyncio.to_thread(
        cli_main, ["cloud", "lot-report", "MILK:WARM", "--format", "csv", "--out", str(out), "--db", db_url]
    )
    assert code == 0 and sum(r["record"] == "excursion" for r in csv.DictReader(out.open())) == 1
    png_out = tmp_path / "warm.png"
    args = ["cloud", "lot-report", "WARM", "--format", "png", "--out", str(png_out), "--db", db_url]
    assert await asyncio.to_thread(cli_main, args) == 0
    assert png_out.read_bytes()[:4] == b"\x89PNG"
    assert await asyncio.to_thread(cli_main, ["cloud", "lot-report", "NOPE", "--db", db_url]) == 1
    capsys.readouterr()
    # Without --format: a summary for people, with units, and the excursion as a table row.
    assert await asyncio.to_thread(cli_main, ["cloud", "lot-report", "MILK:WARM", "--db", db_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["lot", "MILK:WARM"]
    assert next(line for line in lines if line.startswith("mkt ")).endswith(" °C")
    header = lines.index(next(line for line in lines if line.startswith("direction")))
    assert "12 °C" in lines[header + 1] and lines[header + 2] == ""


async def test_expiry_alerts_once_per_lot_and_location(cloud: Cloud) -> None:
    t0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
    await build(cloud, t0, {"WARM": "2025-01-20", "COLD": "2025-01-04", "GONE": "2025-01-02"})
    # COLD: printed 4 Jan. WARM is split: one item stays in cold-1, the other goes to shelf-b.
    await post(cloud, [move(t0 + timedelta(hours=13), WARM[1], "shelf-b")], 1000)
    await settle_lots(cloud.engine)  # the check reads the lot read model
    now = datetime(2025, 1, 2, 12, tzinfo=UTC)
    first = await lots_expiry.check_expiry(cloud.engine, within_days=3, now=now)
    again = await lots_expiry.check_expiry(cloud.engine, within_days=3, now=now + timedelta(minutes=15))
    assert len(first.opened) == 1 and again.opened == [] and again.resolved == []
    a = alerts_db.alerts
    async with cloud.engine.connect() as conn:
        rows = (await conn.execute(select(a).where(a.c.id.in_(first.opened)))).mappings().all()
    assert [(r["kind"], r["zone"], r["status"]) for r in rows] == [("expiry_soon", "cold-1", "open")]
    assert rows[0]["rule"] == lots_expiry.alert_rule("expiry_soon", ("MILK", "COLD"))
    assert "MILK:COLD" in rows[0]["limit_source"]

    # Three weeks later every lot on hand is expired: one alert per lot + location, the soon one resolved.
    later = datetime(2025, 1, 22, tzinfo=UTC)
    expired = await lots_expiry.check_expiry(cloud.engine, within_days=3, now=later)
    assert expired.resolved == first.opened
    async with cloud.engine.connect() as conn:
        active = (
            await conn.execute(
                select(a.c.kind, a.c.zone, a.c.rule, a.c.severity)
                .where(a.c.status == "open")
                .order_by(a.c.id)
            )
        ).all()
    assert sorted((kind, zone, rule) for kind, zone, rule, _ in active) == sorted(
        [
            ("expired_on_hand", "cold-1", lots_expiry.alert_rule("expired_on_hand", ("MILK", "COLD"))),
            ("expired_on_hand", "cold-1", lots_expiry.alert_rule("expired_on_hand", ("MILK", "WARM"))),
            ("expired_on_hand", "shelf-b", lots_expiry.alert_rule("expired_on_hand", ("MILK", "WARM"))),
        ]
    )
    assert {severity for *_, severity in active} == {"critical"}
    # The COLD item leaves the site: its alert resolves, the others stay; nothing reopens.
    await post(cloud, [move(later, COLD[0], None)], 2000)
    await settle_lots(cloud.engine)
    after = await lots_expiry.check_expiry(cloud.engine, within_days=3, now=later + timedelta(hours=1))
    assert after.opened == [] and len(after.resolved) == 1


def test_product_model_defaults_and_overrides() -> None:
    base = {"sku": "X", "shelf_life_days": 7, "storage_temp_min_c": 0.0, "storage_temp_max_c": 4.0}
    model = lots_history.product_model(base)
    assert model is not None
    assert (model.kind, model.reference_temp_c, model.activation_energy_kj) == ("arrhenius", 2.0, 83.144)
    q10 = lots_history.product_model({**base, "shelf_life_model": "q10", "q10": 3.0, "reference_temp_c": 4.0})
    assert q10 is not None and (q10.kind, q10.q10, q10.reference_temp_c) == ("q10", 3.0, 4.0)
    assert float(q10.relative_rate([14.0])[0]) == pytest.approx(3.0)
    assert lots_history.product_model({"sku": "Y"}) is None
    assert json.dumps(lots_history.lot_id("A:B", "C")) == '"A:B:C"'
