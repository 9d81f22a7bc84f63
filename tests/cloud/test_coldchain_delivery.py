"""Alert delivery from the cloud (SQLite and PostgreSQL): signed webhooks to a real local HTTP
server, the delivery log, contact groups and escalation, and a stuck channel not blocking ingest."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import MAX_BODY, Cloud, batch, reading
from webhook_receiver import Receiver, webhook_receiver

from cloud.admin import create_user_async
from cloud.coldchain.runtime import ColdChainRuntime, runtime_of
from cloud.core import db
from shelfsense.config import CloudSettings, ColdChainSettings, Settings, ZoneLimits

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as running:
        yield running


def dead_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/dead"


@pytest.fixture
def settings(db_url: str, receiver: Receiver) -> Settings:
    channels = [
        {"type": "webhook", "name": "ops", "url": receiver.url("/ops"), "secret": SECRET},
        {"type": "webhook", "name": "dead", "url": dead_url(), "secret": SECRET},
        {"type": "webhook", "name": "boss", "url": receiver.url("/boss"), "secret": SECRET},
        {"type": "webhook", "name": "slow", "url": receiver.url("/slow"), "secret": SECRET},
    ]
    coldchain = ColdChainSettings.model_validate(
        {
            "channels": channels,
            "allowed_destinations": ["127.0.0.1"],  # the test's receivers
            "contact_groups": [["ops", "dead"], ["boss"]],
            "escalation_minutes": 5,
            "gap_minutes": None,  # readings are stamped in 2025: the tick would call them all silent
            "alert_url": "https://cloud.example/alerts/{id}",
        }
    )
    return Settings(
        cloud=CloudSettings(
            max_event_age_s=None, db_url=db_url, max_body_bytes=MAX_BODY, coldchain=coldchain
        ),
        zones=[
            ZoneLimits(id="cold-1", min_temp_c=2.0, max_temp_c=8.0, hysteresis_c=0.5),
            ZoneLimits(id="slow-zone", max_temp_c=8.0),
        ],
    )


async def eventually(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def runtime(cloud: Cloud) -> ColdChainRuntime:
    found = runtime_of(cloud.app)
    assert found is not None
    return found


async def test_webhook_delivery_log_escalation_and_ack(cloud: Cloud, receiver: Receiver) -> None:
    operator = await create_user_async(cloud.engine, "otto", "operator")
    await cloud.post(batch("edge-1", [(1, reading(0, 9.5)), (2, reading(30, 10.0))]))
    await eventually(lambda: receiver.states("/ops") == ["raised"])  # the dead channel does not delay it
    [message] = receiver.got["/ops"]
    [alert] = (await cloud.get_ok("/api/v1/alerts"))["items"]
    assert (message["alert_id"], message["zone"], message["kind"]) == (
        str(alert["id"]),
        "cold-1",
        "single_event",
    )
    assert message["url"] == f"https://cloud.example/alerts/{alert['id']}"
    assert receiver.states("/boss") == []  # not escalated yet
    assert receiver.bad_signatures == 0

    await runtime(cloud).notifier.wait_delivered()  # the dead channel has used up its retries
    path = f"/api/v1/alerts/{alert['id']}/deliveries"
    log = (await cloud.get(path, token=cloud.admin)).json()
    outcome = {(d["channel"], d["event"]): d for d in log}
    # The error may quote the destination's reply: viewers see that a delivery failed, not why.
    assert [d["error"] for d in await cloud.get_ok(path)] == [None, None]
    assert set(outcome) == {("ops", "raised"), ("dead", "raised")}
    assert outcome["ops", "raised"]["ok"] is True and outcome["ops", "raised"]["status"] == 204
    assert outcome["dead", "raised"]["ok"] is False
    assert outcome["dead", "raised"]["attempts"] > 1 and outcome["dead", "raised"]["error"]

    # Nobody acknowledged within 5 minutes: the next contact group hears of it, once.
    notices = await runtime(cloud).tick(db.utcnow() + timedelta(minutes=6))
    assert [n.state for n in notices] == ["escalated"]
    await eventually(lambda: receiver.states("/boss") == ["escalated"])
    assert await runtime(cloud).tick(db.utcnow() + timedelta(minutes=7)) == []
    assert (await cloud.get_ok(f"/api/v1/alerts/{alert['id']}"))["escalation_level"] == 1

    response = await cloud.client.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge",
        json={"comment": "on my way"},
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert response.status_code == 200
    # Everyone told so far hears of the acknowledgement.
    await eventually(lambda: receiver.states("/boss") == ["escalated", "acknowledged"])
    await eventually(lambda: receiver.states("/ops") == ["raised", "acknowledged"])
    assert "on my way" in receiver.got["/ops"][1]["text"]
    # Acknowledged alerts do not escalate further (there is no third group anyway).
    assert await runtime(cloud).tick(db.utcnow() + timedelta(hours=1)) == []

    await cloud.post(batch("edge-1", [(3, reading(60, 5.0))]))
    await eventually(lambda: receiver.states("/ops")[-1:] == ["resolved"])
    await runtime(cloud).notifier.wait_delivered()
    events = [
        (d["channel"], d["event"]) for d in await cloud.get_ok(f"/api/v1/alerts/{alert['id']}/deliveries")
    ]
    assert ("boss", "resolved") in events and ("ops", "acknowledged") in events
    assert (await cloud.get("/api/v1/alerts/424242/deliveries")).status_code == 404


async def test_a_stuck_channel_never_blocks_ingest(settings: Settings, receiver: Receiver) -> None:
    from cloud.main import create_app

    # Only the stuck channel: every alert goes to /slow, which does not answer until released.
    settings.cloud.coldchain.contact_groups = [["slow"]]
    app = create_app(settings)
    import httpx

    from cloud.admin import create_edge_async

    async with app.router.lifespan_context(app):
        token = (await create_edge_async(app.state.engine, "site-1", "edge-1"))[1]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            headers = {"Authorization": f"Bearer {token}"}
            for seq in range(1, 4):
                body = batch("edge-1", [(seq, reading(seq * 60, 9.0 + (seq % 2) * 3, zone="slow-zone"))])
                response = await asyncio.wait_for(
                    client.post("/api/v1/edges/edge-1/batches", json=body, headers=headers), 10
                )
                assert response.status_code == 200
        assert receiver.states("/slow") == []  # still stuck, yet every batch was acknowledged
        receiver.gate.set()
        found = runtime_of(app)
        assert found is not None
        await asyncio.wait_for(found.notifier.wait_delivered(), 20)
        assert receiver.states("/slow") == ["raised"]
