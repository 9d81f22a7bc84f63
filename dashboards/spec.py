"""What each board panel asks InfluxDB, independent of the query language.

One :class:`Query` is rendered twice: as InfluxQL for InfluxDB 1.x (:mod:`dashboards.influxql`) and as
Flux for InfluxDB 2.x (:mod:`dashboards.flux`), so the two flavours of a board cannot drift apart.
:data:`SCHEMA` is the measurement/tag/field schema ``cloud/influx.py`` writes (tests check it against
the writer's own line protocol); every query is validated against it when the boards are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# measurement -> (tags, fields), as cloud/influx.py writes them (docs/influxdb.md).
_READING_FIELDS = frozenset({"value", "flags", "limit_min", "limit_max"})
_READING_TAGS = frozenset({"site", "sensor", "unit", "zone"})
SCHEMA: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    **{
        quantity: (_READING_TAGS, _READING_FIELDS)
        for quantity in ("temperature", "humidity", "battery", "linkquality", "pressure")
    },
    "alert_event": (
        frozenset({"site", "zone", "rule", "state"}),
        frozenset({"alert_id", "text", "value", "limit"}),
    ),
    "device_health": (
        frozenset({"site", "edge", "device"}),
        frozenset({"connected", "frames_ok", "frames_bad", "reconnects"}),
    ),
    "edge_health": (frozenset({"site", "edge"}), frozenset({"online", "sync_lag_s", "outbox_depth"})),
    "zone_limits": (frozenset({"site", "zone"}), frozenset({"min_temp_c", "max_temp_c", "max_humidity"})),
}

# kind of a query:
#   series    one value per function and group per Grafana interval ($__interval / v.windowPeriod)
#   latest    the last value per group over the time range (stat panels)
#   counter   the increase per interval of a cumulative counter (frames, reconnects)
#   rows      raw rows of tags and fields (tables, annotations)
#   limits    one row of threshold steps from the readings' limit fields (see THRESHOLD_STEPS)
Kind = Literal["series", "latest", "counter", "rows", "limits"]
Fill = Literal["none", "previous"]

# The steps a "limits" query returns, in ascending order, with the colour each starts. Grafana's
# "Config from query results" adds one threshold step per mapped field in field order and treats
# the first step as the base (-infinity), and Grafana versions differ in where that base comes from
# (hard-coded green before 11.4, the panel's base after). A floor step far below any reading makes
# every version draw the same thing: below the zone's minimum blue, in range green, above the
# maximum red; a zone without a minimum (a freezer) is green up to its maximum.
FLOOR_C = -9999.0
BELOW_MIN_OFFSET_C = 1000.0  # the "too cold" step starts this far below the minimum (below 0 K)
THRESHOLD_STEPS: tuple[tuple[str, str], ...] = (
    ("step0_floor", "green"),
    ("step1_too_cold", "blue"),
    ("step2_min", "green"),
    ("step3_max", "red"),
)


@dataclass(frozen=True, slots=True)
class Column:
    """``function(field) AS alias``; ``function`` is empty for raw rows (tags or fields)."""

    field: str
    function: str = ""
    alias: str = ""

    @property
    def name(self) -> str:
        return self.alias or self.field


@dataclass(frozen=True, slots=True)
class Query:
    ref: str
    measurement: str
    columns: tuple[Column, ...] = ()
    kind: Kind = "series"
    # tags filtered by the dashboard variable of the same name (all multi-value, regex-matched)
    filters: tuple[str, ...] = ("site",)
    by: tuple[str, ...] = ()  # tags each series is grouped by
    fill: Fill = "none"
    legend: str = ""  # InfluxQL alias pattern ($tag_zone $col)

    def check(self) -> None:
        """Raise ValueError if the query names a measurement, tag or field the cloud does not write."""
        if self.measurement not in SCHEMA:
            raise ValueError(f"{self.ref}: no measurement {self.measurement!r}")
        tags, fields = SCHEMA[self.measurement]
        for tag in (*self.filters, *self.by):
            if tag not in tags:
                raise ValueError(f"{self.ref}: {self.measurement} has no tag {tag!r}")
        for column in self.columns:
            known = fields | tags if self.kind == "rows" else fields
            if column.field not in known:
                raise ValueError(f"{self.ref}: {self.measurement} has no field {column.field!r}")

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields read (limits: value and the limit fields)."""
        if self.kind == "limits":
            return ("value", "limit_min", "limit_max")
        tags = SCHEMA[self.measurement][0]
        return tuple(dict.fromkeys(c.field for c in self.columns if c.field not in tags))

    @property
    def result_format(self) -> str:
        return "table" if self.kind in ("rows", "limits") else "time_series"


def limits_query(ref: str, measurement: str, filters: tuple[str, ...]) -> Query:
    return Query(ref, measurement, kind="limits", filters=filters)


__all__ = [
    "BELOW_MIN_OFFSET_C",
    "FLOOR_C",
    "SCHEMA",
    "THRESHOLD_STEPS",
    "Column",
    "Query",
    "limits_query",
]
