# ruff: noqa: RUF001  (full-width punctuation is correct Chinese typography)
"""Every word an alert message says to people, in English and Simplified Chinese, with units.

One catalogue so that channels, digests and the runtime never word a message themselves:
:func:`word` looks a key up in the recipient's language (falling back to English), :func:`unit_of`
names the unit of a rule's values (°C, %RH, days) and :func:`with_unit` formats a value with it.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "zh-CN"]
LANGUAGES: tuple[Language, ...] = ("en", "zh-CN")

_EN: dict[str, str] = {
    # rule titles
    "rule.max_temperature": "Temperature above the limit",
    "rule.min_temperature": "Temperature below the limit",
    "rule.max_humidity": "Humidity above the limit",
    "rule.max_temperature_instant": "Temperature far above the limit",
    "rule.min_temperature_instant": "Temperature far below the limit",
    "rule.max_temperature_cumulative": "Cumulative time above the limit exceeded",
    "rule.gap": "No data",
    "rule.expiry_soon": "Lot expiring soon",
    "rule.expired_on_hand": "Expired lot on hand",
    "rule.edge_incarnation": "Edge database replaced",
    "rule.dead_stock": "Dead stock",
    "rule.digest": "Alerts held back",
    # states and severities
    "state.raised": "raised",
    "state.acknowledged": "acknowledged",
    "state.escalated": "escalated",
    "state.resolved": "resolved",
    "state.digest": "digest",
    "severity.info": "INFO",
    "severity.warning": "WARNING",
    "severity.critical": "CRITICAL",
    # facts
    "fact.site": "Site",
    "fact.zone": "Zone",
    "fact.state": "State",
    "fact.value": "Value",
    "fact.limit": "Limit",
    "fact.at": "At",
    "open_alert": "Open alert",
    # sentences
    "title": "{rule} in zone {zone} ({site}): {state}",
    "excursion": "Peak {peak}, last {last}, limit {limit} ({source}), since {since}.",
    "source.zone": "zone",
    "source.product": "product limits {skus}",
    "gap": "No data for zone {zone} for {minutes} minutes (sensor {sensor}).",
    "days_left": "{source}: {days} left.",
    "acknowledged": " Acknowledged by {who}: {comment}",
    "resolved": " Resolved{by}: {reason}",
    "resolved.by": " by {who}",
    "resolved.default": "back inside",
    "escalated": " Not acknowledged: escalated to contact group {level}.",
    "digest.title": "Alerts held back in zone {zone} ({site})",
    "digest": "{excursions} more excursions in {zone} since {since} ({messages} messages held{why}).",
    "digest.one": "1 more excursion in {zone} since {since} ({messages} messages held{why}).",
    "digest.why.rate": ", rate limit",
    "digest.why.quiet": ", quiet hours or maintenance",
    "dead_stock": "{item}: {quantity} on hand, {received} since receipt, {outbound} since the last outbound.",
    "dead_stock.never": "{item}: {quantity} on hand, {received} since receipt, never shipped from here.",
    "item.lot": "{sku} lot {lot}",
    "units": "{n} units",
    "incarnation": "Edge {edge}'s database was replaced: incarnation {new} follows {old}; "
    "events the old database had not sent are lost (sequence offset {offset}).",
    "expiry.source": "lot {lot}, effective expiry {expiry}",
    "reason.data_flows": "data flows again",
    "reason.back_inside": "readings back inside the limits",
    "reason.lot_gone": "the lot is no longer on hand there, or its alert kind changed",
    "reason.dead_stock_gone": "the lot shipped, left the location or was received again",
    # rules' notify actions and approved proposals (cloud.replenish.service)
    "state.proposed": "proposed",
    "state.approved": "approved",
    "kind.purchase_proposal": "Purchase draft",
    "kind.purchase": "purchase",
    "kind.transfer": "transfer",
    "kind.markdown": "markdown",
    "proposal.draft_title": "Purchase draft, supplier {supplier} ({value}): rules {rules}",
    "proposal.line": "#{id}: {quantity} of {sku} to {location}",
    "proposal.title": "{kind} proposal {id} approved",
    "proposal.text": "{quantity} of {sku} to {location}",
}

_ZH: dict[str, str] = {
    "rule.max_temperature": "温度高于上限",
    "rule.min_temperature": "温度低于下限",
    "rule.max_humidity": "湿度高于上限",
    "rule.max_temperature_instant": "温度远高于上限",
    "rule.min_temperature_instant": "温度远低于下限",
    "rule.max_temperature_cumulative": "累计超温时间超限",
    "rule.gap": "无数据",
    "rule.expiry_soon": "批次即将过期",
    "rule.expired_on_hand": "库存中有过期批次",
    "rule.edge_incarnation": "边缘数据库已更换",
    "rule.dead_stock": "呆滞库存",
    "rule.digest": "已暂缓的告警",
    "state.raised": "已触发",
    "state.acknowledged": "已确认",
    "state.escalated": "已升级",
    "state.resolved": "已恢复",
    "state.digest": "汇总",
    "severity.info": "信息",
    "severity.warning": "警告",
    "severity.critical": "严重",
    "fact.site": "站点",
    "fact.zone": "区域",
    "fact.state": "状态",
    "fact.value": "数值",
    "fact.limit": "限值",
    "fact.at": "时间",
    "open_alert": "查看告警",
    "title": "区域 {zone}（{site}）{rule}：{state}",
    "excursion": "峰值 {peak}，最新 {last}，限值 {limit}（{source}），开始于 {since}。",
    "source.zone": "区域",
    "source.product": "产品限值 {skus}",
    "gap": "区域 {zone} 已 {minutes} 分钟无数据（传感器 {sensor}）。",
    "days_left": "{source}：剩余 {days}。",
    "acknowledged": " 已由 {who} 确认：{comment}",
    "resolved": " 已恢复{by}：{reason}",
    "resolved.by": "（{who}）",
    "resolved.default": "已回到限值内",
    "escalated": " 未确认：已升级至第 {level} 联系组。",
    "digest.title": "区域 {zone}（{site}）已暂缓的告警",
    "digest": "自 {since} 起 {zone} 又有 {excursions} 次超限（暂缓 {messages} 条消息{why}）。",
    "digest.one": "自 {since} 起 {zone} 又有 1 次超限（暂缓 {messages} 条消息{why}）。",
    "digest.why.rate": "，频率限制",
    "digest.why.quiet": "，静默时段或维护窗口",
    "dead_stock": "{item}：库存 {quantity}，入库已 {received}，距上次出库 {outbound}。",
    "dead_stock.never": "{item}：库存 {quantity}，入库已 {received}，从未出库。",
    "item.lot": "{sku} 批次 {lot}",
    "units": "{n} 件",
    "incarnation": "边缘 {edge} 的数据库已更换：新实例 {new} 接替 {old}；"
    "旧数据库未发送的事件已丢失（序号偏移 {offset}）。",
    "expiry.source": "批次 {lot}，有效期至 {expiry}",
    "reason.data_flows": "数据已恢复",
    "reason.back_inside": "读数已回到限值内",
    "reason.lot_gone": "该批次已不在此处，或告警类型已变化",
    "reason.dead_stock_gone": "该批次已出库、已移走或已重新入库",
    "state.proposed": "已提议",
    "state.approved": "已批准",
    "kind.purchase_proposal": "采购草案",
    "kind.purchase": "采购",
    "kind.transfer": "调拨",
    "kind.markdown": "降价",
    "proposal.draft_title": "采购草案，供应商 {supplier}（{value}）：规则 {rules}",
    "proposal.line": "#{id}：{quantity} {sku} 至 {location}",
    "proposal.title": "{kind}建议 {id} 已批准",
    "proposal.text": "{quantity} {sku} 至 {location}",
}

_CATALOGUES: dict[str, dict[str, str]] = {"en": _EN, "zh-CN": _ZH}

# The unit of each rule's values; rules not listed (edge replaced, digests) carry no number.
_UNITS: dict[str, str] = {
    "temperature": "°C",
    "humidity": "%RH",
    "days": "days",
}
# Alert kinds counted in days (the cold-chain rules' quantities come from cloud.alerts.rules).
_DAY_KINDS = frozenset({"expiry_soon", "expired_on_hand", "dead_stock"})
_DAYS = {"en": "{n} days", "zh-CN": "{n} 天"}


def word(key: str, language: str = "en", **values: object) -> str:
    """The catalogue entry ``key`` in ``language`` (English when missing), formatted with ``values``."""
    text = _CATALOGUES.get(language, _EN).get(key) or _EN[key]
    return text.format(**values) if values else text


def rule_title(rule: str, language: str = "en") -> str:
    """A rule's human name; an unknown rule is shown by its identifier."""
    key = f"rule.{rule}"
    return word(key, language) if key in _EN else rule


def unit_of(quantity: str | None) -> str | None:
    """The unit of a quantity ("temperature", "humidity", "days"); None when there is none."""
    return _UNITS.get(quantity) if quantity is not None else None


def quantity_of_kind(kind: str) -> str | None:
    return "days" if kind in _DAY_KINDS else None


def number(value: float | int) -> str:
    return f"{round(float(value), 2):g}"


def with_unit(value: float | int, unit: str | None, language: str = "en") -> str:
    """``9.1 °C``, ``91 %RH``, ``3 days`` / ``3 天``; bare when the rule has no unit."""
    if unit == "days":
        return _DAYS.get(language, _DAYS["en"]).format(n=number(value))
    return f"{number(value)} {unit}" if unit else number(value)


def is_language(value: str) -> bool:
    return value in _CATALOGUES


__all__ = ["LANGUAGES", "Language", "is_language", "number", "rule_title", "unit_of", "with_unit", "word"]
