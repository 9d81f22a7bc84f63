"""Human renderings of the CLI's reports (``--json`` prints the same data as JSON instead)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shelfsense.output import BOLD, RED, YELLOW, cell, key_values, paint, table


def _section(title: str, body: str) -> str:
    return f"\n{paint(title, BOLD)}\n{body}"


def edge_status(report: Mapping[str, Any]) -> str:
    """``edge status``: sync state first, then stock, sensors (with units), alarms and devices."""
    state = "DEGRADED (telemetry downsampled)" if report["degraded"] else "ok"
    head = key_values(
        {
            "state": paint(state, YELLOW) if report["degraded"] else state,
            "incarnation": report["incarnation"],
            "pending_events": report["pending_events"],
            "sync_lag": report["sync_lag_s"],
            "acked_through": f"{report['acked_through']} of {report['last_seq']}",
            "clock_skew": report["clock_skew_s"],
            "tag_reads": report["tag_reads"],
            "items_on_hand": report["items_on_hand"],
        },
        units={"sync_lag": "s", "clock_skew": "s", "items_on_hand": "items"},
    )
    parts = [head]
    by_location = report["items_by_location"]
    if by_location:
        parts.append(_section("Stock", table(["location", "items"], sorted(by_location.items()))))
    sensors = [
        (s["sensor_id"], s["zone"], s["quantity"], cell(s["value"], s["unit"] or ""), s["time"])
        for s in report["sensors"]
    ]
    parts.append(_section("Sensors", table(["sensor", "zone", "quantity", "value", "time"], sensors)))
    alarms = [
        (a["zone"], a["sensor_id"], a["rule"], cell(a["value"]), cell(a["limit"]), a["raised_at"])
        for a in report["alarms_open"]
    ]
    title = paint(f"Open alarms ({len(alarms)})", RED) if alarms else "Open alarms"
    parts.append(_section(title, table(["zone", "sensor", "rule", "value", "limit", "raised at"], alarms)))
    devices = [(d, v["frames_ok"], v["frames_bad"], v["reconnects"]) for d, v in report["devices"].items()]
    if devices:
        parts.append(_section("Devices", table(["device", "frames ok", "frames bad", "reconnects"], devices)))
    return "\n".join(parts)


def replenish_report(report: Mapping[str, Any]) -> str:
    """``cloud replenish``: one line per run, then a table of the proposals with quantities."""
    mode = "dry run, nothing written" if report["dry_run"] else "proposals written"
    lines = [
        f"Replenishment as of {report['today']} ({mode}): {report['series']} demand series, "
        f"{report['history_days']} days of history"
    ]
    rows = []
    for site in report["sites"]:
        lines.append(
            f"  site {site['site_id']}: {site['items']} items planned, {len(site['proposals'])} proposals, "
            f"{site['suppressed']} suppressed, {len(site['alerts'])} alerts"
        )
        for p in site["proposals"]:
            quantity = cell(p.get("quantity"), "units")
            rows.append((site["site_id"], p.get("kind"), p.get("sku"), p.get("location_id"), quantity))
    lines.append(_section("Proposals", table(["site", "kind", "sku", "location", "quantity"], rows)))
    if report["unknown_channels"]:
        lines.append(paint(f"unknown notify channels: {', '.join(report['unknown_channels'])}", YELLOW))
    return "\n".join(lines)


def lot_report(data: bytes) -> str:
    """``cloud lot-report`` without ``--format``: the lot's header, stays and excursions."""
    report = json.loads(data)
    lot = report["lot"]
    head = key_values(
        {
            "lot": f"{lot['sku']}:{lot['lot_code']}",
            "product": report["product"]["name"],
            "on_hand": lot["on_hand"],
            "mkt": report["mkt_c"],
            "observed": report["observed_hours"],
            "time_above_max": report["excursions"]["time_above_max_s"],
            "time_below_min": report["excursions"]["time_below_min_s"],
            "effective_expiry": lot["effective_expiry"],
            "expired": lot["expired"],
        },
        units={
            "on_hand": "items",
            "mkt": "°C",
            "observed": "h",
            "time_above_max": "s",
            "time_below_min": "s",
        },
    )
    episodes = [
        (e["direction"], cell(e["peak_c"], "°C"), cell(e["duration_s"], "s"), e["start"], e["location"])
        for e in report["excursions"]["episodes"]
    ]
    return (
        head
        + _section("Excursions", table(["direction", "peak", "duration", "start", "location"], episodes))
        + f"\n\n{len(report['readings'])} readings; --format json|csv|png for the full evidence"
    )


def config_check(effective: Mapping[str, Any]) -> str:
    """``config check``: the effective config as ``section.key = value`` lines (secrets masked)."""
    lines = ["config OK; effective values (secrets masked):"]

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key in sorted(value):
                walk(f"{prefix}.{key}" if prefix else str(key), value[key])
        else:
            lines.append(f"  {prefix} = {json.dumps(value, default=str)}")

    walk("", effective)
    return "\n".join(lines)


def forecast(result: Mapping[str, Any]) -> str:
    """``forecast``: the method and its accuracy, then one row per day ahead (units per day)."""
    head = key_values(
        {
            "method": result["method"],
            "demand_class": result["demand_class"],
            "params": result["params"],
            "mae": result["mae"],
            "bias": result["bias"],
            "mase": result["mase"],
        }
    )
    days = [(f"+{day}", cell(value, "units")) for day, value in enumerate(result["forecast"], start=1)]
    return head + _section("Forecast", table(["day", "demand"], days))


def files_written(data: Mapping[str, Any]) -> str:
    return "\n".join([f"wrote {len(data['files'])} files:", *(f"  {f}" for f in data["files"])])
