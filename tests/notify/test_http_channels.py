"""Webhook and group-robot channels against a real local HTTP server; signatures checked as documented."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from notify_http_server import Received, RecordingServer

from cloud.notify import (
    AlertMessage,
    DeliveryLog,
    DingTalkChannel,
    FeishuChannel,
    RetryPolicy,
    WebhookChannel,
    WeComChannel,
    verify_webhook,
)

FAST_RETRY = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05)


def alert(**overrides: Any) -> AlertMessage:
    fields: dict[str, Any] = {
        "alert_id": "42",
        "site_id": "site-1",
        "kind": "max_temperature",
        "state": "raised",
        "title": "Cold room 1 above 8 °C",
        "text": "Temperature 9.4 °C since 10:02 (limit 8 °C).",
        "at": datetime(2026, 5, 1, 10, 32, tzinfo=UTC),
        "severity": "critical",
        "zone": "cold-1",
        "value": 9.4,
        "limit": 8.0,
        "url": "https://shelfsense.example/alerts/42",
        "unit": "°C",
    }
    fields.update(overrides)
    return AlertMessage(**fields)


# --- generic webhook ----------------------------------------------------------------------------


async def test_webhook_is_signed_over_timestamp_and_body(http_server: RecordingServer) -> None:
    log = DeliveryLog()
    channel = WebhookChannel(f"{http_server.url}/hook", "s3cret", log=log)
    message = alert()
    result = await channel.send(message)
    await channel.aclose()
    assert result.ok and result.attempts == 1 and result.status == 200
    [request] = http_server.requests("/hook")
    timestamp = request.headers["X-ShelfSense-Timestamp"]
    expected = (
        "sha256=" + hmac.new(b"s3cret", timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    )
    assert request.headers["X-ShelfSense-Signature"] == expected
    assert abs(int(timestamp) - time.time()) < 60
    assert request.headers["X-ShelfSense-Delivery"] == message.delivery_id
    body = request.json()
    assert body["alert_id"] == "42" and body["zone"] == "cold-1" and body["at"] == "2026-05-01T10:32:00Z"
    assert verify_webhook("s3cret", timestamp, request.body, expected)
    assert not verify_webhook("wrong", timestamp, request.body, expected)
    assert not verify_webhook("s3cret", timestamp, request.body + b" ", expected)
    assert not verify_webhook("s3cret", timestamp, request.body, expected, now=int(timestamp) + 3600)
    assert [r.ok for r in log.records("42")] == [True]


async def test_webhook_retries_server_errors_with_the_same_delivery_id(http_server: RecordingServer) -> None:
    answers: Iterator[tuple[int, Any]] = iter([(503, {}), (500, {}), (200, {})])
    http_server.responders["/hook"] = lambda _: next(answers)
    log = DeliveryLog()
    channel = WebhookChannel(f"{http_server.url}/hook", "k", retry=FAST_RETRY, log=log)
    result = await channel.send(alert())
    await channel.aclose()
    assert result.ok and result.attempts == 3
    assert result.attempt_errors == ("HTTP 503", "HTTP 500")
    requests = http_server.requests("/hook")
    assert len({r.headers["X-ShelfSense-Delivery"] for r in requests}) == 1
    assert len(log) == 1


async def test_webhook_does_not_retry_a_client_error(http_server: RecordingServer) -> None:
    http_server.responders["/hook"] = lambda _: (403, {"detail": "bad signature"})
    channel = WebhookChannel(f"{http_server.url}/hook", "k", retry=FAST_RETRY)
    result = await channel.send(alert())
    await channel.aclose()
    assert not result.ok and result.attempts == 1 and result.status == 403
    assert "bad signature" in (result.error or "")


async def test_unreachable_webhook_fails_after_all_attempts() -> None:
    from shelfsense.services import free_port

    channel = WebhookChannel(f"http://127.0.0.1:{free_port()}/hook", "k", retry=FAST_RETRY)
    result = await channel.send(alert())
    await channel.aclose()
    assert not result.ok and result.attempts == 3
    assert all("Connect" in e for e in result.attempt_errors)


# --- DingTalk -----------------------------------------------------------------------------------


def dingtalk_server_check(secret: str) -> Any:
    """What DingTalk's server does, per its docs: recompute sign from timestamp, compare, 1 h window."""

    def respond(request: Received) -> tuple[int, Any]:
        timestamp = request.query["timestamp"][0]
        sign = request.query["sign"][0]  # parse_qs already URL-decoded it
        string_to_sign = f"{timestamp}\n{secret}".encode()
        expected = base64.b64encode(
            hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
        ).decode()
        if sign != expected or abs(int(timestamp) / 1000 - time.time()) > 3600:
            return 200, {"errcode": 310000, "errmsg": "sign not match"}
        if request.query.get("access_token") != ["tok"]:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    return respond


async def test_dingtalk_markdown_with_a_valid_sign(http_server: RecordingServer) -> None:
    http_server.responders["/robot/send"] = dingtalk_server_check("SECabc")
    channel = DingTalkChannel(
        f"{http_server.url}/robot/send?access_token=tok", "SECabc", at_mobiles=("138000",)
    )
    result = await channel.send(alert())
    await channel.aclose()
    assert result.ok, result.error
    body = http_server.requests("/robot/send")[0].json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "Cold room 1 above 8 °C"
    assert "**Zone**: cold-1" in body["markdown"]["text"] and "@138000" in body["markdown"]["text"]
    assert body["at"] == {"atMobiles": ["138000"], "isAtAll": False}


async def test_dingtalk_text_and_a_wrong_secret_is_refused_without_retry(
    http_server: RecordingServer,
) -> None:
    http_server.responders["/robot/send"] = dingtalk_server_check("SECabc")
    channel = DingTalkChannel(
        f"{http_server.url}/robot/send?access_token=tok", "SECwrong", msgtype="text", retry=FAST_RETRY
    )
    result = await channel.send(alert())
    await channel.aclose()
    assert not result.ok and result.attempts == 1
    assert result.error == "dingtalk error 310000: sign not match"
    assert http_server.requests("/robot/send")[0].json()["text"]["content"].startswith("[CRITICAL]")


async def test_dingtalk_rate_limit_is_retried(http_server: RecordingServer) -> None:
    answers = iter(
        [(200, {"errcode": 130101, "errmsg": "send too fast"}), (200, {"errcode": 0, "errmsg": "ok"})]
    )
    http_server.responders["/robot/send"] = lambda _: next(answers)
    channel = DingTalkChannel(f"{http_server.url}/robot/send?access_token=tok", retry=FAST_RETRY)
    result = await channel.send(alert())
    await channel.aclose()
    assert result.ok and result.attempts == 2
    assert "timestamp" not in http_server.requests("/robot/send")[0].query  # no secret: no signing


# --- WeCom --------------------------------------------------------------------------------------


async def test_wecom_markdown(http_server: RecordingServer) -> None:
    channel = WeComChannel(f"{http_server.url}/cgi-bin/webhook/send?key=abc")
    result = await channel.send(alert(text="x" * 6000))
    await channel.aclose()
    assert result.ok
    [request] = http_server.requests("/cgi-bin/webhook/send")
    body = request.json()
    assert request.query == {"key": ["abc"]}
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["content"].startswith("### [CRITICAL] Cold room 1 above 8 °C")
    assert len(body["markdown"]["content"].encode()) <= 4096


# --- Feishu / Lark ------------------------------------------------------------------------------


def feishu_server_check(secret: str) -> Any:
    def respond(request: Received) -> tuple[int, Any]:
        body = request.json()
        key = f"{body['timestamp']}\n{secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        if body.get("sign") != expected or abs(int(body["timestamp"]) - time.time()) > 3600:
            return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}
        return 200, {"code": 0, "msg": "success", "data": {}}

    return respond


async def test_feishu_post_with_a_valid_sign(http_server: RecordingServer) -> None:
    http_server.responders["/open-apis/bot/v2/hook/x"] = feishu_server_check("fs-secret")
    channel = FeishuChannel(f"{http_server.url}/open-apis/bot/v2/hook/x", "fs-secret")
    result = await channel.send(alert())
    await channel.aclose()
    assert result.ok, result.error
    body = http_server.requests("/open-apis/bot/v2/hook/x")[0].json()
    assert body["msg_type"] == "post"
    post = body["content"]["post"]["en_us"]  # an English channel fills Feishu's English block
    assert post["title"] == "[CRITICAL] Cold room 1 above 8 °C"
    assert [seg["text"] for line in post["content"] for seg in line if "Zone" in seg["text"]] == [
        "Zone: cold-1"
    ]
    assert [seg["text"] for line in post["content"] for seg in line if "Value" in seg["text"]] == [
        "Value: 9.4 °C"
    ]
    assert post["content"][-1] == [
        {"tag": "a", "text": "Open alert", "href": "https://shelfsense.example/alerts/42"}
    ]


async def test_feishu_post_in_chinese_fills_the_zh_cn_block(http_server: RecordingServer) -> None:
    # Feishu custom bot "post" message: content.post.<zh_cn|en_us|ja_jp> blocks
    # (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot, rich text section).
    http_server.responders["/open-apis/bot/v2/hook/x"] = feishu_server_check("fs-secret")
    channel = FeishuChannel(f"{http_server.url}/open-apis/bot/v2/hook/x", "fs-secret")
    result = await channel.send(
        alert(language="zh-CN", title="冷库 1 超温", state="resolved", severity="info")
    )
    await channel.aclose()
    assert result.ok, result.error
    post = http_server.requests("/open-apis/bot/v2/hook/x")[0].json()["content"]["post"]
    assert set(post) == {"zh_cn"}
    texts = [seg["text"] for line in post["zh_cn"]["content"] for seg in line]
    assert post["zh_cn"]["title"] == "[信息] 冷库 1 超温"
    assert "区域: cold-1" in texts and "状态: 已恢复" in texts and "数值: 9.4 °C" in texts
    assert "限值: 8 °C" in texts and texts[-1] == "查看告警"


async def test_feishu_text_with_a_wrong_secret_fails(http_server: RecordingServer) -> None:
    http_server.responders["/open-apis/bot/v2/hook/x"] = feishu_server_check("fs-secret")
    channel = FeishuChannel(
        f"{http_server.url}/open-apis/bot/v2/hook/x", "nope", msg_type="text", retry=FAST_RETRY
    )
    result = await channel.send(alert())
    await channel.aclose()
    assert not result.ok and result.attempts == 1 and "19021" in (result.error or "")
    body = http_server.requests("/open-apis/bot/v2/hook/x")[0].json()
    assert body["content"]["text"].startswith("[CRITICAL] Cold room 1")


def test_bad_channel_configuration_is_refused() -> None:
    from cloud.notify import ChannelConfigError, EmailChannel, MqttChannel

    with pytest.raises(ChannelConfigError):
        WebhookChannel("ftp://x/hook", "k")
    with pytest.raises(ChannelConfigError):
        WebhookChannel("http://127.0.0.1/hook", "")
    with pytest.raises(ChannelConfigError):
        EmailChannel("127.0.0.1", 25, "a@b", [])
    with pytest.raises(ChannelConfigError):
        MqttChannel("http://127.0.0.1:1883")
