# ruff: noqa: RUF001  (the expected Chinese messages use full-width punctuation)
"""Every alert kind, in every state, rendered for a zh-CN channel leaves no English template text.

The data in these messages (site, zone, sensor, SKU, lot, supplier and user ids) is chosen with no
run of three Latin letters, so any such run left in what a channel would send -- title, text, the
plain and markdown bodies, the e-mail subject, DingTalk/WeCom markdown and the Feishu post and text
messages -- is English wording that escaped the catalogue. Also: every English catalogue entry
has a Chinese one with the same placeholders, and English messages carry their units.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from cloud.alerts.messages import alert_message
from cloud.coldchain.service import Notice
from cloud.notify import AlertMessage, DingTalkChannel, EmailChannel, FeishuChannel, WeComChannel, catalogue
from cloud.notify.storm import Digest, StormGate
from cloud.replenish.dead_stock import RESOLVED_REASON
from cloud.replenish.messages import proposal_message, rule_notifications
from cloud.replenish.proposals import Plan, PurchaseDraft
from cloud.replenish.rules import Decision

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
SINCE = NOW - timedelta(minutes=42)
# Words a zh-CN message may carry: the product's name, a time zone and a currency code.
ALLOWED = {"ShelfSense", "UTC", "EUR"}
HOOK = "https://robot.example.com/hook"

# The system's own resolution reasons (stored in English, shown in the reader's language).
SYSTEM_REASONS = (
    "data flows again",
    "readings back inside the limits",
    "lot no longer on hand there, or its alert kind changed",
    RESOLVED_REASON,
)


def alert(kind: str, rule: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7,
        "site_id": "s-1",
        "zone": "c-1",
        "rule": rule,
        "kind": kind,
        "status": "open",
        "source": "cloud",
        "sensor_id": "p-1",
        "limit": 8.0,
        "peak_value": 9.1,
        "last_value": 9.05,
        "first_breach_at": SINCE,
        "last_breach_at": NOW,
        "severity": "warning",
        "limit_source": "zone",
        "acknowledged_by": "li",
        "ack_comment": "门已关好",
        "resolved_by": None,
        "resolve_reason": None,
        "escalation_level": 0,
    }
    row.update(extra)
    return row


ALERTS = {
    "max_temperature": alert("single_event", "max_temperature"),
    "max_temperature (product limits)": alert(
        "single_event", "max_temperature", limit_source="product:P1,P2"
    ),
    "min_temperature": alert("single_event", "min_temperature", limit=2.0, peak_value=1.2, last_value=1.4),
    "max_humidity": alert("single_event", "max_humidity", limit=90.0, peak_value=93.0, last_value=92.0),
    "instant high": alert("instant", "max_temperature_instant", severity="critical"),
    "instant low": alert("instant", "min_temperature_instant", limit=0.0, peak_value=-3.0, last_value=-2.5),
    "cumulative": alert("cumulative", "max_temperature_cumulative", severity="critical"),
    "gap": alert("gap", "gap", limit=None, peak_value=0.0, last_value=0.0),
    "edge alarm relayed": alert("local_alarm", "max_temperature", source="edge", limit_source=None),
    "expiry_soon": alert(
        "expiry_soon",
        "expiry_soon:0f3a",
        limit=None,
        peak_value=2.5,
        limit_source="lot P1:L1 expiry 2026-03-03T00:00:00+00:00",
    ),
    "expired_on_hand": alert(
        "expired_on_hand",
        "expired_on_hand:0f3a",
        severity="critical",
        limit=None,
        peak_value=-1.0,
        limit_source="lot P1:L1 expiry 2026-02-28T00:00:00+00:00",
    ),
    "edge_incarnation": alert(
        "edge_incarnation",
        "edge_incarnation",
        zone="e-1",
        sensor_id=None,
        limit=None,
        peak_value=3.0,
        last_value=3.0,
        severity="critical",
        limit_source="edge e-1 database replaced: incarnation 123456789012 follows 987654321098; "
        "events the old database had not sent are lost",
    ),
    "dead_stock": alert(
        "dead_stock",
        "dead_stock:0f3a",
        limit=90.0,
        peak_value=120.0,
        last_value=120.0,
        limit_source='{"lot":"L1","outbound_days":null,"quantity":3,"received_days":120.0,"sku":"P1"}',
    ),
    "dead_stock (shipped long ago)": alert(
        "dead_stock",
        "dead_stock:0f3b",
        limit=90.0,
        peak_value=150.0,
        last_value=150.0,
        limit_source='{"lot":"L2","outbound_days":150.0,"quantity":4,"received_days":200.0,"sku":"P2"}',
    ),
}


def notices() -> Iterator[tuple[str, Notice]]:
    for name, row in ALERTS.items():
        yield f"{name}/raised", Notice(row, "raised")
        yield f"{name}/acknowledged", Notice({**row, "status": "acknowledged"}, "acknowledged")
        yield f"{name}/escalated", Notice({**row, "escalation_level": 1}, "escalated")
        for reason in (None, *SYSTEM_REASONS):
            resolved = {**row, "status": "resolved", "resolved_at": NOW, "resolve_reason": reason}
            yield f"{name}/resolved ({reason})", Notice({**resolved, "resolved_by": "system"}, "resolved")
        by_person = {**row, "status": "resolved", "resolved_by": "li", "resolve_reason": "已移库"}
        yield f"{name}/resolved by a person", Notice(by_person, "resolved")


def other_messages(language: str) -> Iterator[tuple[str, AlertMessage]]:
    gate: Any = SimpleNamespace(languages={"cn": language})
    for quiet, excursions in ((False, 3), (True, 1)):
        digest = Digest("cn", "s-1", "c-1", excursions, 6, SINCE, quiet)
        yield f"digest quiet={quiet}", StormGate.digest_message(gate, digest, NOW)
    decision = Decision(proposals={}, notify={"cn": ("规则一",)}, approvals=())
    draft = PurchaseDraft("AC", (), 240.0, date(2026, 3, 2), decision)
    plan = Plan(transfers=(), purchases=(draft,), suppressed=(), alerts=())
    created = [
        {
            "id": 9,
            "kind": "purchase",
            "group_ref": "g:s-1:AC",
            "quantity": 24.0,
            "sku": "P1",
            "location_id": "b-1",
        }
    ]
    [(channels, localised)] = rule_notifications("s-1", plan, created, "g")
    assert channels == ("cn",)
    yield "rule notify", localised[language]
    for kind in ("purchase", "transfer", "markdown"):
        record = {
            "id": 9,
            "site_id": "s-1",
            "kind": kind,
            "quantity": 24.0,
            "sku": "P1",
            "location_id": "b-1",
        }
        yield f"{kind} proposal", proposal_message(record, language)


@functools.cache
def everything(language: str) -> dict[str, AlertMessage]:
    found = {name: alert_message(notice, at=NOW, language=language) for name, notice in notices()}
    return found | dict(other_messages(language))


@functools.cache
def channels() -> tuple[Any, ...]:
    return (
        DingTalkChannel(HOOK),
        WeComChannel(HOOK),
        FeishuChannel(HOOK),
        FeishuChannel(HOOK, msg_type="text"),
    )


def sent_texts(message: AlertMessage) -> list[str]:
    """What each channel type would put in front of people for ``message``."""
    texts = [message.title, message.text, message.plain(), message.markdown()]
    email = EmailChannel("127.0.0.1", 25, "a@example.com", ["b@example.com"]).message(message)
    texts += [str(email["Subject"]), email.get_content()]
    for channel in channels():
        texts += _strings(json.loads(channel.build(message)[2]), ("title", "text", "content"))
    return texts


def _strings(value: Any, keys: tuple[str, ...]) -> list[str]:
    """The string values under ``keys`` anywhere in a JSON payload."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k in keys and isinstance(v, str)]
        return found + [s for v in value.values() for s in _strings(v, keys)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, keys)]
    return []


def english_left(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z]{3,}", text) if w not in ALLOWED]


@pytest.mark.parametrize("name", list(everything("zh-CN")))
def test_every_message_renders_in_chinese_without_english_template_text(name: str) -> None:
    message = everything("zh-CN")[name]
    assert message.language == "zh-CN"
    for text in sent_texts(message):
        assert english_left(text) == [], (name, text)
    assert re.search(r"[\u4e00-\u9fff]", message.title) and re.search(r"[\u4e00-\u9fff]", message.text), name


def test_the_same_messages_in_english_carry_units() -> None:
    english = everything("en")
    assert "Peak 9.1 °C, last 9.05 °C, limit 8 °C (zone)" in english["max_temperature/raised"].text
    assert "93 %RH" in english["max_humidity/raised"].text
    assert "2.5 days left" in english["expiry_soon/raised"].text
    assert english["dead_stock/raised"].text == (
        "P1 lot L1: 3 units on hand, 120 days since receipt, never shipped from here."
    )
    assert english["rule notify"].text == "#9: 24 units of P1 to b-1"
    assert english["rule notify"].title == "Purchase draft, supplier AC (240 EUR): rules 规则一"
    chinese = everything("zh-CN")
    assert (
        "120 天" in chinese["dead_stock/raised"].text
        and "150 天" in chinese["dead_stock (shipped long ago)/raised"].text
    )
    assert "峰值 9.1 °C，最新 9.05 °C，限值 8 °C（区域）" in chinese["max_temperature/raised"].text
    assert chinese["gap/resolved (data flows again)"].text.endswith("数据已恢复")


def test_every_catalogue_entry_has_chinese_with_the_same_placeholders() -> None:
    english, chinese = catalogue._CATALOGUES["en"], catalogue._CATALOGUES["zh-CN"]
    assert set(english) == set(chinese)

    def fields(text: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f}

    assert {k for k in english if fields(english[k]) != fields(chinese[k])} == set()
