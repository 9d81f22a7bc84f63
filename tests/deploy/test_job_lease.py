"""Periodic jobs across replicas, with real processes: two ``cloud serve`` replicas on one
PostgreSQL database share the cold-chain tick and the replenishment run through the ``jobs`` table
(the lease: a replica takes a due run by locking the job row with SKIP LOCKED, moving
``next_run_at`` one interval on and setting ``lease_until`` in the same transaction). Claimed runs
are at least an interval apart, and a silent sensor's gap alert is raised by exactly one replica and
delivered to the webhook once, not once per replica, while the ticks keep running."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from deploy_harness import CloudReplica, create_edge, wait_until
from sqlalchemy import func, select
from webhook_receiver import Receiver, webhook_receiver

from cloud.alerts import tables as alerts_db
from cloud.coldchain.service import JOB_NAME
from cloud.core import db
from cloud.replenish.service import JOB_NAME as REPLENISH_JOB
from shelfsense.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
SECRET = "lease-test-secret"
TICK_S = 0.3
REPLENISH_S = 0.5


def coldchain_toml(hook_url: str, tick_s: float = TICK_S) -> str:
    """Settings every replica of these tests runs: fast cold-chain ticks and replenishment runs, a
    1.2 s gap rule."""
    return (
        f"[cloud.replenish]\ninterval_s = {REPLENISH_S}\n"
        f"[cloud.coldchain]\ntick_s = {tick_s}\ngap_minutes = 0.02\nescalation_minutes = 600\n"
        'allowed_destinations = ["127.0.0.1"]\n'  # the test's own webhook receiver
        f'[[cloud.coldchain.channels]]\ntype = "webhook"\nname = "hook"\nurl = "{hook_url}"\n'
        f'secret = "{SECRET}"\n'
        '[[zones]]\nid = "cold-1"\nsite_id = "site-1"\nmin_temp_c = 2.0\nmax_temp_c = 8.0\n'
    )


async def job_state(db_url: str) -> tuple[dict[str, tuple[int, float]], int]:
    """({job: (runs so far, start of its last run as a unix time)}, gap alerts raised so far)."""
    engine = db.create_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(db.jobs).where(db.jobs.c.last_started_at.is_not(None)))).all()
            gaps = await conn.scalar(
                select(func.count()).select_from(alerts_db.alerts).where(alerts_db.alerts.c.rule == "gap")
            )
    finally:
        await engine.dispose()
    return {r.name: (int(r.runs), r.last_started_at.timestamp()) for r in rows}, int(gaps or 0)


def ticks(db_url: str) -> int:
    return asyncio.run(job_state(db_url))[0].get(JOB_NAME, (0, 0.0))[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as r:
        yield r


def test_two_replicas_tick_once_per_interval_and_deliver_each_alert_once(
    tmp_path: Path, pg_url: str, receiver: Receiver
) -> None:
    replicas = [
        CloudReplica(
            tmp_path / f"c{i}",
            pg_url,
            "127.0.0.1",
            free_port(),
            extra_toml=coldchain_toml(receiver.url("/gap")),
        )
        for i in range(2)
    ]
    try:
        for replica in replicas:
            replica.start()
        wait_until(lambda: all(r.ready() for r in replicas), 90, "two cloud replicas")
        token = create_edge(replicas[0], "site-1", "edge-1")
        now = datetime.now(UTC).isoformat()
        event = {
            "kind": "sensor_reading",
            "sensor_id": "probe-1",
            "quantity": "temperature",
            "value": 5.0,
            "unit": "degC",
            "time": now,
            "zone": "cold-1",
        }
        body = {"v": 1, "edge_id": "edge-1", "created_at": now, "events": [{"seq": 1, "event": event}]}
        answer = httpx.post(
            f"http://127.0.0.1:{replicas[1].port}/api/v1/edges/edge-1/batches",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        wait_until(lambda: len(receiver.bodies("/gap")) >= 1, 60, "the gap alert's delivery")
        wait_until(lambda: REPLENISH_JOB in asyncio.run(job_state(pg_url))[0], 60, "a replenishment run")
        first, _ = asyncio.run(job_state(pg_url))
        # Ten more ticks by the replicas together: a replica that ignored the claim would
        # raise and deliver the gap again (each replica's own view says the sensor is silent).
        wait_until(lambda: ticks(pg_url) >= first[JOB_NAME][0] + 10, 60, "ten more ticks")
        last, gaps = asyncio.run(job_state(pg_url))
    finally:
        for replica in replicas:
            replica.kill()
    assert gaps == 1
    delivered = receiver.bodies("/gap")
    assert [m["state"] for m in delivered] == ["raised"] and delivered[0]["text"].startswith(
        "No data for zone cold-1"
    ), delivered
    assert all(r.process is not None and r.process.returncode is not None for r in replicas)
    # A claim moves next_run_at one interval past its own start, so claimed runs are at least an
    # interval apart whatever the load; two replicas running the same one would break this bound.
    for job, interval in ((JOB_NAME, TICK_S), (REPLENISH_JOB, REPLENISH_S)):
        (runs0, start0), (runs1, start1) = first[job], last[job]
        assert runs1 > runs0 and runs1 - runs0 <= (start1 - start0) / interval + 0.01, job
