# ruff: noqa: RUF001  (the expected Chinese messages use full-width punctuation)
"""Alert storms: a flapping cold room through the real ingest API and a real webhook receiver.

Per channel and zone: at most ``max_messages_per_zone_per_hour`` messages an hour, a digest with the
right count of what was held, nothing in a maintenance window (summarised after it), messages in
the channel's language with units, and every alert still recorded. The gate's clock is injected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import MAX_BODY, Cloud, batch, reading
from webhook_receiver import Receiver, webhook_receiver

from cloud.admin import create_edge_async, create_user_async
from cloud.coldchain.runtime import ColdChainOptions, runtime_of
from cloud.main import create_app
from cloud.notify.notifier import notifier_of
from cloud.notify.storm import quiet_now
from shelfsense.config import CloudSettings, ColdChainSettings, QuietWindow, Settings, ZoneLimits

SECRET = "storm-secret-for-tests"
T10 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T10

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(db_url: str, receiver: Receiver) -> Settings:
    def hook(name: str, **extra: object) -> dict[str, object]:
        return {"type": "webhook", "name": name, "url": receiver.url(f"/{name}"), "secret": SECRET, **extra}

    coldchain = ColdChainSettings.model_validate(
        {
            "channels": [
                hook("ops", max_messages_per_zone_per_hour=4),
                hook("cn", max_messages_per_zone_per_hour=4, language="zh-CN"),
                hook("all"),  # no limit: hears every transition, except in maintenance
            ],
            "allowed_destinations": ["127.0.0.1"],
            "escalation_minutes": None,
            "gap_minutes": None,
            "quiet": [{"zones": ["cold-1"], "start": "2026-01-01T11:30:00Z", "end": "2026-01-01T12:30:00Z"}],
        }
    )
    zone = ZoneLimits(id="cold-1", min_temp_c=2.0, max_temp_c=8.0, max_humidity=90.0, hysteresis_c=0.5)
    cloud = CloudSettings(max_event_age_s=None, db_url=db_url, max_body_bytes=MAX_BODY, coldchain=coldchain)
    return Settings(cloud=cloud, zones=[zone])


@pytest.fixture
async def storm_cloud(settings: Settings, clock: Clock) -> AsyncIterator[Cloud]:
    app = create_app(settings, coldchain=ColdChainOptions(job_enabled=False, clock=clock))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            c = Cloud(app=app, client=client, engine=app.state.engine)
            c.edge_tokens["edge-1"] = (await create_edge_async(c.engine, "site-1", "edge-1"))[1]
            c.viewer = await create_user_async(c.engine, "vera", "viewer")
            yield c


async def flap(cloud: Cloud, first_seq: int, times: int) -> None:
    """``times`` excursions: 9.5 °C (above 8) then 5.0 °C (back inside), a minute apart."""
    events = []
    for i in range(times):
        seq = first_seq + 2 * i
        events += [(seq, reading(seq * 60, 9.5)), (seq + 1, reading(seq * 60 + 30, 5.0))]
    response = await cloud.post(batch("edge-1", events))
    assert response.status_code == 200, response.text


async def delivered(cloud: Cloud) -> None:
    notifier = notifier_of(cloud.app)
    assert notifier is not None
    await notifier.wait_delivered()


async def tick(cloud: Cloud, now: datetime) -> None:
    runtime = runtime_of(cloud.app)
    assert runtime is not None
    await runtime.tick(now)
    await runtime.notifier.wait_delivered()


async def test_a_flapping_cold_room_is_limited_digested_and_quiet(
    storm_cloud: Cloud, receiver: Receiver, clock: Clock
) -> None:
    cloud = storm_cloud
    await flap(cloud, 1, 10)  # 10:00: ten excursions, 20 transitions
    await delivered(cloud)
    assert len(receiver.bodies("/all")) == 20
    assert receiver.states("/ops") == ["raised", "resolved"] * 2  # the limit: 4 an hour
    assert receiver.states("/cn") == ["raised", "resolved"] * 2
    first = receiver.bodies("/ops")[0]
    assert first["text"].startswith("Peak 9.5 °C, last 5 °C, limit 8 °C (zone)")
    assert first["unit"] == "°C" and first["language"] == "en"
    chinese = receiver.bodies("/cn")[0]
    assert chinese["title"] == "区域 cold-1（site-1）温度高于上限：已触发"
    assert chinese["text"].startswith("峰值 9.5 °C，最新 5 °C，限值 8 °C（区域）")

    clock.now = T10 + timedelta(minutes=30)
    await tick(cloud, clock.now)  # the hour is not over: still held
    assert len(receiver.bodies("/ops")) == 4

    clock.now = T10 + timedelta(minutes=61)
    await tick(cloud, clock.now)
    digest = receiver.bodies("/ops")[4]
    assert digest["state"] == "digest" and digest["zone"] == "cold-1"
    assert digest["text"] == (
        "8 more excursions in cold-1 since 2026-01-01 10:00 UTC (16 messages held, rate limit)."
    )
    assert receiver.bodies("/cn")[4]["text"] == (
        "自 2026-01-01 10:00 UTC 起 cold-1 又有 8 次超限（暂缓 16 条消息，频率限制）。"
    )
    assert len(receiver.bodies("/all")) == 20  # nothing held there, no digest

    clock.now = T10 + timedelta(minutes=105)  # 11:45, in the maintenance window
    await flap(cloud, 100, 3)
    await delivered(cloud)
    assert [len(receiver.bodies(p)) for p in ("/ops", "/cn", "/all")] == [5, 5, 20]

    clock.now = T10 + timedelta(minutes=151)  # 12:31: the window is over
    await tick(cloud, clock.now)
    for path, count in (("/ops", 6), ("/cn", 6), ("/all", 21)):
        assert len(receiver.bodies(path)) == count
        assert receiver.bodies(path)[-1]["state"] == "digest"
    assert receiver.bodies("/all")[-1]["text"] == (
        "3 more excursions in cold-1 since 2026-01-01 11:45 UTC"
        " (6 messages held, quiet hours or maintenance)."
    )
    # Per hour window, no limited channel sent more than 4 messages (digests included).
    assert receiver.states("/ops") == ["raised", "resolved", "raised", "resolved", "digest", "digest"]
    assert receiver.bad_signatures == 0

    # The alerts themselves are all recorded: 13 excursions, each raised and resolved.
    alerts = (await cloud.get_ok("/api/v1/alerts", status="all", limit=100))["items"]
    assert len(alerts) == 13 and {a["status"] for a in alerts} == {"resolved"}


async def test_humidity_in_chinese_carries_its_unit(storm_cloud: Cloud, receiver: Receiver) -> None:
    cloud = storm_cloud
    response = await cloud.post(batch("edge-1", [(1, reading(0, 95.0, quantity="humidity"))]))
    assert response.status_code == 200
    await delivered(cloud)
    [message] = receiver.bodies("/cn")
    assert message["title"] == "区域 cold-1（site-1）湿度高于上限：已触发"
    assert message["text"].startswith("峰值 95 %RH，最新 95 %RH，限值 90 %RH") and message["unit"] == "%RH"
    assert receiver.bodies("/ops")[0]["text"].startswith("Peak 95 %RH, last 95 %RH, limit 90 %RH")


def test_daily_quiet_hours_cross_midnight_in_local_time() -> None:
    night = QuietWindow(zones=["cold-1"], daily="22:00-06:00", timezone="Asia/Shanghai")
    # 22:30 and 05:59 in Shanghai (UTC+8) are quiet; 06:00 and another zone are not.
    assert quiet_now([night], "site-1", "cold-1", datetime(2026, 1, 1, 14, 30, tzinfo=UTC))
    assert quiet_now([night], "site-1", "cold-1", datetime(2026, 1, 1, 21, 59, tzinfo=UTC))
    assert not quiet_now([night], "site-1", "cold-1", datetime(2026, 1, 1, 22, 0, tzinfo=UTC))
    assert not quiet_now([night], "site-1", "cold-2", datetime(2026, 1, 1, 14, 30, tzinfo=UTC))
    with pytest.raises(ValueError, match="either daily"):
        QuietWindow(daily="22:00-06:00", start=T10, end=T10 + timedelta(hours=1))


async def test_the_limit_and_what_is_held_survive_a_restart(
    settings: Settings, receiver: Receiver, clock: Clock
) -> None:
    """The counters live in the database: a restarted (or another) replica keeps to the limit."""
    for run in (1, 2):
        app = create_app(settings, coldchain=ColdChainOptions(job_enabled=False, clock=clock))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
                c = Cloud(app=app, client=client, engine=app.state.engine)
                if run == 1:
                    c.edge_tokens["edge-1"] = (await create_edge_async(c.engine, "site-1", "edge-1"))[1]
                    token = c.edge_tokens["edge-1"]
                    await flap(c, 1, 3)  # 6 transitions: 4 sent, 2 held
                else:
                    c.edge_tokens["edge-1"] = token
                    await flap(c, 50, 1)  # same hour, after the restart: both held
                    clock.now = T10 + timedelta(minutes=61)
                    await tick(c, clock.now)
                await delivered(c)
    assert receiver.states("/ops") == ["raised", "resolved", "raised", "resolved", "digest"]
    assert receiver.bodies("/ops")[-1]["text"].startswith("2 more excursions in cold-1 since")
    assert "(4 messages held, rate limit)" in receiver.bodies("/ops")[-1]["text"]


def test_a_channel_of_no_known_type_is_refused_not_built_as_mqtt() -> None:
    from cloud.notify import MqttChannelSettings, build_channel
    from cloud.notify.base import ChannelConfigError

    odd = MqttChannelSettings.model_construct(type="pager", name="odd", url="mqtt://127.0.0.1:1883")
    with pytest.raises(ChannelConfigError, match="unknown channel type 'pager'"):
        build_channel(odd)
