"""One sensor reading per (site, sensor, quantity, device time) in the cloud, whatever (edge, seq)
carried it: a wiped edge starting over at seq 1, a second edge of the site or a publisher's
re-send under a new sequence number is stored once and counted, on SQLite and PostgreSQL."""

from __future__ import annotations

from conftest import Cloud, batch, reading
from sqlalchemy import func, select

from cloud.coldchain import sensor_tables as sensors_db


async def test_a_reading_resent_under_new_sequence_numbers_is_stored_once(cloud: Cloud) -> None:
    first = [reading(0, 4.0), reading(60, 4.5), reading(60, 55.0, quantity="humidity")]
    response = await cloud.post(batch("edge-1", [(1, e) for e in first[:1]] + [(2, first[1]), (3, first[2])]))
    assert response.json()["accepted"] == 3
    # Re-sent as new events (seq 4-6) plus one new reading, twice within the same batch too.
    again = [(4, first[0]), (5, first[1]), (6, reading(120, 5.0)), (7, reading(120, 5.0))]
    assert (await cloud.post(batch("edge-1", again))).json()["accepted"] == 4
    # Another edge of the same site sends the same reading: still one; another site: its own.
    assert (await cloud.post(batch("edge-2", [(1, first[2])]), edge="edge-2")).status_code == 200
    assert (await cloud.post(batch("edge-3", [(1, first[0])]), edge="edge-3")).status_code == 200
    async with cloud.engine.connect() as conn:
        r = sensors_db.sensor_readings
        rows = (await conn.execute(select(r.c.site_id, r.c.quantity, r.c.time).order_by(r.c.id))).all()
        assert len(rows) == 5  # site-1: 0 s, 60 s, 60 s humidity, 120 s; site-2: 0 s
        per_key = (
            select(func.count()).select_from(r).group_by(r.c.site_id, r.c.sensor_id, r.c.quantity, r.c.time)
        )
        assert set(await conn.scalars(per_key)) == {1}
    metrics = (await cloud.client.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("shelfsense_reading_duplicates_total"))
    assert line == "shelfsense_reading_duplicates_total 4"  # 2 re-sent + 1 in-batch + 1 edge-2
