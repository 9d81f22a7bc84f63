"""What people read about one alert transition, in the recipient channel's language, with units.

All wording comes from :mod:`cloud.notify.catalogue`; this module only picks the sentences and
fills in an alert row's values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloud.alerts.rules import RULE_QUANTITY
from cloud.coldchain.service import Notice
from cloud.core import db
from cloud.notify import AlertMessage
from cloud.notify.base import Severity
from cloud.notify.catalogue import number, quantity_of_kind, rule_title, unit_of, with_unit, word
from cloud.replenish.dead_stock import RESOLVED_REASON, SYSTEM, parse_detail


def _unit(rule: str, kind: str) -> str | None:
    return unit_of(RULE_QUANTITY.get(rule) or quantity_of_kind(kind))


def _body(a: Mapping[str, Any], rule: str, kind: str, at: datetime, lang: str) -> str:
    unit = _unit(rule, kind)
    if kind == "edge_incarnation":
        return _incarnation(a, lang)
    if kind in ("expiry_soon", "expired_on_hand"):
        days = with_unit(float(a["peak_value"]), unit, lang)
        return word("days_left", lang, source=_expiry_source(a.get("limit_source"), lang), days=days)
    if kind == "dead_stock":
        return _dead_stock(a, unit, lang)
    if rule == "gap":
        minutes = (at - db.utc(a["first_breach_at"])).total_seconds() / 60
        return word("gap", lang, zone=a["zone"], minutes=f"{minutes:.0f}", sensor=a.get("sensor_id"))
    return word(
        "excursion",
        lang,
        peak=with_unit(a["peak_value"], unit, lang),
        last=with_unit(a["last_value"], unit, lang),
        limit=with_unit(a["limit"], unit, lang),
        source=_source(str(a.get("limit_source") or "zone"), lang),
        since=db.utc(a["first_breach_at"]).isoformat(),
    )


# The producers store these as plain English (the API shows them); messages re-word them.
_INCARNATION = re.compile(r"incarnation (?P<new>\S+) follows (?P<old>[^;]+);")
_EXPIRY = re.compile(r"lot (?P<lot>.+) expiry (?P<expiry>\S+)$")
_SYSTEM_REASONS = {
    "data flows again": "reason.data_flows",
    "readings back inside the limits": "reason.back_inside",
    "lot no longer on hand there, or its alert kind changed": "reason.lot_gone",
    RESOLVED_REASON: "reason.dead_stock_gone",
}


def _incarnation(a: Mapping[str, Any], lang: str) -> str:
    found = _INCARNATION.search(str(a.get("limit_source") or ""))
    old, new = (found["old"], found["new"]) if found else ("?", "?")
    lost = number(float(a.get("last_value") or 0))
    return word("incarnation", lang, edge=a["zone"], new=new, old=old, offset=lost)


def _expiry_source(text: object, lang: str) -> str:
    found = _EXPIRY.match(str(text or ""))
    if found is None:
        return str(text)
    return word("expiry.source", lang, lot=found["lot"], expiry=found["expiry"])


def _dead_stock(a: Mapping[str, Any], unit: str | None, lang: str) -> str:
    detail = parse_detail(a.get("limit_source"))
    lot = detail.get("lot")
    sku = detail.get("sku", "?")
    outbound = detail.get("outbound_days")
    return word(
        "dead_stock" if outbound is not None else "dead_stock.never",
        lang,
        item=word("item.lot", lang, sku=sku, lot=lot) if lot else str(sku),
        quantity=word("units", lang, n=number(float(detail.get("quantity") or 0))),
        received=with_unit(float(detail.get("received_days") or a["peak_value"]), unit, lang),
        outbound=None if outbound is None else with_unit(float(outbound), unit, lang),
    )


def _source(source: str, lang: str) -> str:
    """Where the limit came from: the zone's settings or a product's ("product:SKU,SKU")."""
    if source.startswith("product:"):
        return word("source.product", lang, skus=source.removeprefix("product:"))
    return word("source.zone", lang) if source == "zone" else source


def _coda(a: Mapping[str, Any], state: str, lang: str) -> str:
    if state == "acknowledged":
        return word("acknowledged", lang, who=a.get("acknowledged_by"), comment=a.get("ack_comment"))
    if state == "resolved":
        who = a.get("resolved_by")
        by = word("resolved.by", lang, who=who) if who and who != SYSTEM else ""  # the checks' own
        return word("resolved", lang, by=by, reason=_reason(a.get("resolve_reason"), lang))
    if state == "escalated":
        return word("escalated", lang, level=int(a.get("escalation_level") or 0) + 1)
    return ""


def _reason(reason: object, lang: str) -> str:
    """A person's reason as written; the system's own reasons in the reader's language."""
    if not reason:
        return word("resolved.default", lang)
    key = _SYSTEM_REASONS.get(str(reason))
    return word(key, lang) if key else str(reason)


def alert_message(
    notice: Notice, *, at: datetime, url_template: str | None = None, language: str = "en"
) -> AlertMessage:
    """What people reading ``language`` are told about one alert transition."""
    a = notice.alert
    rule, zone, state = str(a["rule"]), str(a["zone"]), notice.state
    kind = str(a.get("kind") or rule)
    name = rule_title(rule, language)
    if name == rule:  # e.g. "expiry_soon:<lot digest>": named by its kind
        name = rule_title(kind, language)
    title = word(
        "title", language, rule=name, zone=zone, site=a["site_id"], state=word(f"state.{state}", language)
    )
    severity: Severity = "warning"
    if state in ("resolved", "acknowledged"):
        severity = "info"
    elif a.get("severity") == "critical":
        severity = "critical"
    return AlertMessage(
        alert_id=str(a["id"]),
        site_id=str(a["site_id"]),
        kind=kind,
        state=state,
        title=title,
        text=_body(a, rule, kind, at, language) + _coda(a, state, language),
        at=at,
        severity=severity,
        zone=zone,
        value=a.get("peak_value") if rule != "gap" else None,
        limit=a.get("limit"),
        url=url_template.format(id=a["id"]) if url_template else None,
        language=language,
        unit=_unit(rule, kind),
    )


__all__ = ["alert_message"]
