"""A lot's cold-chain report as JSON, CSV or a PNG chart.

The content is :class:`cloud.lots.evidence.LotEvidence`: where the lot was (stays), the readings
of those zones while it was there, the excursions beyond the product's limits computed from those
readings, the MKT over the window and the remaining shelf life. CSV is one table with a
``record`` column (``summary``, ``stay``, ``excursion``, ``reading``) so any CSV reader takes it.
The PNG draws each sensor's readings as steps (sample-and-hold, as evaluated), the product's
limits as lines and the excursions as shaded spans; it needs matplotlib (a dependency).
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import date, datetime, timedelta
from typing import Any, Literal

from cloud.coldchain import lot_history as lh
from cloud.core import csvsafe
from cloud.core.errors import CloudError
from cloud.lots.evidence import LotEvidence, summary
from shelfsense.output import progress_step

ReportFormat = Literal["json", "csv", "png"]
CSV_FIELDS = ("record", "start", "end", "site_id", "location", "sensor_id", "value_c", "items", "detail")


class ReportUnavailable(CloudError):
    """The format cannot be produced here (PNG without matplotlib)."""

    status_code = 501
    code = "not_implemented"


def _in_window(evidence: LotEvidence, moment: datetime) -> bool:
    return (evidence.since is None or moment >= evidence.since) and (
        evidence.until is None or moment < evidence.until
    )


def report_dict(evidence: LotEvidence) -> dict[str, Any]:
    """The JSON report (datetimes as :class:`datetime`; FastAPI / :func:`render_json` encode them)."""
    h, life, model = evidence.history, evidence.shelf_life, evidence.history.product.model
    return {
        "lot": summary(evidence),
        "product": {
            "sku": h.product.sku,
            "name": h.product.name,
            "storage_temp_min_c": h.product.min_c,
            "storage_temp_max_c": h.product.max_c,
            "shelf_life_model": None
            if model is None
            else {
                "kind": model.kind,
                "nominal_days": model.nominal_days,
                "reference_temp_c": model.reference_temp_c,
                "activation_energy_kj": model.activation_energy_kj if model.kind == "arrhenius" else None,
                "q10": model.q10 if model.kind == "q10" else None,
            },
        },
        "window": {
            "since": evidence.since,
            "until": evidence.until,
            "activation_energy_kj": evidence.activation_energy_kj,
        },
        "generated_at": h.now,
        "mkt_c": evidence.mkt_c,
        "observed_hours": evidence.observed_s / 3600,
        "stays": evidence.stays,
        "excursions": {
            "time_above_max_s": evidence.excursions.above_s,
            "time_below_min_s": evidence.excursions.below_s,
            "episodes": [
                {
                    "direction": e.direction,
                    "limit_c": e.limit,
                    "start": lh.from_epoch(e.start),
                    "end": lh.from_epoch(e.end),
                    "duration_s": e.duration,
                    "peak_c": e.peak,
                    "site_id": e.site_id,
                    "location": e.location,
                }
                for e in evidence.excursions.episodes
            ],
        },
        "shelf_life": None
        if life is None
        else {
            "consumed_days": life.consumed_days,
            "remaining_days": life.remaining_days,
            "dynamic_expiry": life.dynamic_expiry,
            "printed_expiry": life.printed_expiry,
            "effective_expiry": life.effective_expiry,
        },
        "readings": [
            {
                "time": r["time"],
                "site_id": r["site_id"],
                "zone": r["zone"],
                "sensor_id": r["sensor_id"],
                "value_c": r["value"],
            }
            for r in h.readings
            if _in_window(evidence, r["time"])
        ],
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def render_json(evidence: LotEvidence) -> str:
    return json.dumps(report_dict(evidence), default=_json_default, indent=2) + "\n"


def render_csv(evidence: LotEvidence) -> str:
    report = report_dict(evidence)
    out = io.StringIO()
    writer = csvsafe.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    lot = report["lot"]
    facts = {
        "lot_id": lot["lot_id"],
        "mkt_c": report["mkt_c"],
        "observed_hours": report["observed_hours"],
        "time_above_max_s": report["excursions"]["time_above_max_s"],
        "time_below_min_s": report["excursions"]["time_below_min_s"],
        "storage_temp_min_c": report["product"]["storage_temp_min_c"],
        "storage_temp_max_c": report["product"]["storage_temp_max_c"],
        "printed_expiry": lot["expiry"],
        "dynamic_expiry": lot["dynamic_expiry"],
        "effective_expiry": lot["effective_expiry"],
        "remaining_shelf_life_days": lot["remaining_shelf_life_days"],
    }
    for key, value in facts.items():
        writer.writerow({"record": "summary", "detail": f"{key}={_text(value)}"})
    for s in report["stays"]:
        where = {"site_id": s["site_id"], "location": s["location"]}
        writer.writerow(
            {
                "record": "stay",
                "start": _text(s["start"]),
                "end": _text(s["end"]),
                **where,
                "items": s["items"],
            }
        )
    for e in report["excursions"]["episodes"]:
        detail = f"{e['direction']} {e['limit_c']} for {e['duration_s']:.0f} s"
        span = {"start": _text(e["start"]), "end": _text(e["end"])}
        where = {"site_id": e["site_id"], "location": e["location"]}
        writer.writerow({"record": "excursion", **span, **where, "value_c": e["peak_c"], "detail": detail})
    for r in report["readings"]:
        where = {"site_id": r["site_id"], "location": r["zone"], "sensor_id": r["sensor_id"]}
        writer.writerow({"record": "reading", "start": _text(r["time"]), **where, "value_c": r["value_c"]})
    return out.getvalue()


def render_png(evidence: LotEvidence) -> bytes:
    """A chart of the readings with the product's limits and the excursions shaded."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display; must precede pyplot
        from matplotlib import dates as mdates
        from matplotlib import pyplot as plt
    except ImportError as exc:
        raise ReportUnavailable("PNG reports need matplotlib (pip install matplotlib)") from exc
    report = report_dict(evidence)
    figure, axes = plt.subplots(figsize=(10, 4.5), dpi=100)
    try:
        series: dict[tuple[str, str], tuple[list[datetime], list[float]]] = {}
        for r in report["readings"]:
            times, values = series.setdefault((r["zone"], r["sensor_id"]), ([], []))
            if times and (r["time"] - times[-1]).total_seconds() > lh.DEFAULT_MAX_GAP_S:
                # Break the line: a reading holds at most the gap limit (as evaluated), then no data.
                times.append(times[-1] + timedelta(seconds=lh.DEFAULT_MAX_GAP_S))
                values.append(float("nan"))
            times.append(r["time"])
            values.append(r["value_c"])
        for (zone, sensor), (times, values) in sorted(series.items()):
            axes.step(mdates.date2num(times), values, where="post", label=f"{zone} / {sensor}")
        product = report["product"]
        for name, limit in (("max", product["storage_temp_max_c"]), ("min", product["storage_temp_min_c"])):
            if limit is not None:
                axes.axhline(limit, color="red", linestyle="--", linewidth=1, label=f"{name} {limit:g} °C")
        for e in report["excursions"]["episodes"]:
            axes.axvspan(mdates.date2num(e["start"]), mdates.date2num(e["end"]), color="red", alpha=0.15)
        mkt = report["mkt_c"]
        mkt_text = "no data" if mkt is None else f"{mkt:.2f} °C"
        axes.set_title(f"Lot {report['lot']['lot_id']}  MKT {mkt_text}")
        axes.set_ylabel("°C")
        axes.xaxis_date()
        if series or product["storage_temp_max_c"] is not None or product["storage_temp_min_c"] is not None:
            axes.legend(loc="best", fontsize="small")
        figure.autofmt_xdate()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def render(evidence: LotEvidence, fmt: ReportFormat) -> bytes:
    if fmt == "png":
        return render_png(evidence)
    return (render_csv(evidence) if fmt == "csv" else render_json(evidence)).encode()


def report_sync(db_url: str, lot: str, fmt: ReportFormat, now: datetime | None = None) -> bytes:
    """``shelfsense cloud lot-report``: the rendered report; raises LotNotFound / LotAmbiguous /
    :class:`ReportUnavailable`."""
    from cloud.core import db
    from cloud.core.migrate import ensure_schema
    from cloud.lots.evidence import lot_evidence

    async def main() -> bytes:
        engine = db.create_engine(db_url)
        try:
            await ensure_schema(engine)
            async with engine.connect() as conn:
                progress_step("lot report", 0, 2)
                evidence = await lot_evidence(conn, lot, now=now)
            progress_step("lot report", 1, 2)  # evidence loaded; rendering (a PNG takes a while)
            data = render(evidence, fmt)
            progress_step("lot report", 2, 2)
            return data
        finally:
            await engine.dispose()

    return asyncio.run(main())


__all__ = [
    "CSV_FIELDS",
    "ReportFormat",
    "ReportUnavailable",
    "render",
    "render_csv",
    "render_json",
    "render_png",
    "report_dict",
    "report_sync",
]
