"""``/metrics`` after real traffic, parsed with prometheus_client's own text parser (a third-party
reader of the exposition format): HTTP latency per route, ingest lag per edge, deliveries by
channel and outcome (to a real webhook receiver), job runs and durations, DB pool gauges."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from conftest import EPC_A, Cloud, batch, movement
from prometheus_client.parser import text_string_to_metric_families
from webhook_receiver import webhook_receiver

from cloud.notify import AlertMessage
from cloud.notify.webhooks import WebhookChannel

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(cloud: Cloud) -> tuple[Samples, dict[str, str]]:
    response = await cloud.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    types = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_an_operator_alerts_on(cloud: Cloud) -> None:
    before, _ = await scrape(cloud)
    assert (await cloud.post(batch("edge-1", [(1, movement(0, EPC_A, "backroom"))]))).status_code == 200
    for _ in range(2):
        assert (await cloud.get("/api/v1/stock")).status_code == 200
    assert (await cloud.get("/api/v1/lots/no-such-lot")).status_code == 404
    assert (await cloud.client.get("/no/such/page")).status_code == 404
    with webhook_receiver("right") as receiver:
        alert = AlertMessage("a-1", "site-1", "max_temperature", "raised", "t", "x", datetime.now(UTC))
        good = WebhookChannel(receiver.url("/ok"), "right", name="metrics-ok")
        bad = WebhookChannel(receiver.url("/bad"), "wrong", name="metrics-bad")  # receiver answers 401
        try:
            assert (await good.send(alert)).ok and not (await bad.send(alert)).ok
        finally:
            await good.aclose()
            await bad.aclose()
    deadline = time.monotonic() + 60
    while True:  # the stocktake job's first step runs at start-up
        after, types = await scrape(cloud)
        if value(after, "shelfsense_job_runs_total", job="stocktake", outcome="ok") >= 1:
            break
        assert time.monotonic() < deadline, "no stocktake job run counted"
        await asyncio.sleep(0.1)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    stock = {"method": "GET", "route": "/api/v1/stock"}
    assert delta("shelfsense_http_requests_total", **stock, status="200") == 2
    assert delta("shelfsense_http_request_duration_seconds_count", **stock) == 2
    assert delta("shelfsense_http_request_duration_seconds_bucket", **stock, le="+Inf") == 2
    assert value(after, "shelfsense_http_request_duration_seconds_sum", **stock) > 0
    # Route templates, never raw paths: ids and scanners do not make new series.
    lot = {"method": "GET", "route": "/api/v1/lots/{lot_id}", "status": "404"}
    assert delta("shelfsense_http_requests_total", **lot) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert delta("shelfsense_http_requests_total", **unmatched) == 1
    assert not any("no-such" in dict(labels).get("route", "") for _, labels in after)
    assert types["shelfsense_http_request_duration_seconds"] == "histogram"
    # The event happened on 2025-01-01 (conftest): that is how far behind the edge's data is.
    lag = value(after, "shelfsense_ingest_lag_seconds", edge="edge-1")
    expected = (datetime.now(UTC) - datetime(2025, 1, 1, 12, tzinfo=UTC)).total_seconds()
    assert abs(lag - expected) < 3600, (lag, expected)
    assert value(after, "shelfsense_ingest_last_batch_timestamp_seconds", edge="edge-1") > time.time() - 600
    assert delta("shelfsense_notification_deliveries_total", channel="metrics-ok", outcome="ok") == 1
    assert delta("shelfsense_notification_deliveries_total", channel="metrics-bad", outcome="failed") == 1
    assert delta("shelfsense_notification_attempts_total", channel="metrics-bad") == 1  # 401: no retry
    assert value(after, "shelfsense_job_duration_seconds_count", job="stocktake") >= 1
    assert types["shelfsense_job_runs"] == "counter"
    assert value(after, "shelfsense_db_pool_checked_out_connections") >= 0
    assert "shelfsense_db_pool_checked_out_connections" in types
    assert delta("shelfsense_batches_accepted_total") == 1  # the ingest counters are still there
