"""The jobs table as a lease (migration 0013), on SQLite and PostgreSQL: a claimed run keeps every
other replica out until it finishes or its lease runs out, so a run longer than its interval is never
overlapped; a job that never finishes explicitly keeps the plain once-per-interval schedule."""

from __future__ import annotations

from datetime import datetime, timedelta

from conftest import Cloud

from cloud.core import db, jobs


async def test_a_running_job_is_not_claimed_again_until_it_finishes_or_its_lease_ends(cloud: Cloud) -> None:
    engine = cloud.engine
    await jobs.ensure_job(engine, "lease-test", 10.0)
    t = db.utcnow() + timedelta(seconds=20)  # due (first run one interval after creation)

    def at(seconds: float) -> datetime:
        return t + timedelta(seconds=seconds)

    assert await jobs.claim_job(engine, "lease-test", 10.0, t, "a", lease_s=100.0)
    assert not await jobs.claim_job(engine, "lease-test", 10.0, at(15), "b", lease_s=100.0)  # a still runs
    assert not await jobs.claim_job(engine, "lease-test", 10.0, at(99), "b", lease_s=100.0)
    # a died without finishing: its lease runs out and b takes over.
    assert await jobs.claim_job(engine, "lease-test", 10.0, at(100), "b", lease_s=100.0)
    await jobs.finish_job(engine, "lease-test", at(105))
    assert not await jobs.claim_job(engine, "lease-test", 10.0, at(109), "c", lease_s=100.0)  # not due yet
    assert await jobs.claim_job(engine, "lease-test", 10.0, at(110), "c", lease_s=100.0)  # due, released


async def test_without_an_explicit_finish_the_lease_is_the_interval(cloud: Cloud) -> None:
    engine = cloud.engine
    await jobs.ensure_job(engine, "plain", 10.0)
    t = db.utcnow() + timedelta(seconds=20)
    claims = [
        await jobs.claim_job(engine, "plain", 10.0, t + timedelta(seconds=s), f"r{s}")
        for s in range(0, 31, 5)
    ]
    assert claims == [True, False, True, False, True, False, True]  # every 10 s, never in between
