"""The PNG chart of a report: inventory value and items out of stock per day, baseline vs shocks."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory only
import matplotlib.pyplot as plt


def chart_png(report: dict[str, Any]) -> bytes:
    """Two panels sharing the day axis; one colour per policy, dashed = baseline, solid = shocks."""
    rows = report["scenarios"]
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    colours = {p: f"C{i % 10}" for i, p in enumerate(policies)}
    fig, (value_ax, out_ax) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    try:
        for r in rows:
            style = "--" if r["name"] == "baseline" else "-"
            label = f"{r['name']} / {r['policy']}"
            days = range(len(r["daily"]["inventory_value"]))
            value_ax.plot(days, r["daily"]["inventory_value"], style, color=colours[r["policy"]], label=label)
            out_ax.plot(days, r["daily"]["stockouts"], style, color=colours[r["policy"]], label=label)
        value_ax.set_ylabel("inventory value (mean)")
        out_ax.set_ylabel("items out of stock (mean)")
        out_ax.set_xlabel("day")
        value_ax.set_title(f"What-if: {report['scenario']} ({report['runs']} runs)")
        value_ax.legend(fontsize="small", ncol=2)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        return buf.getvalue()
    finally:
        plt.close(fig)
