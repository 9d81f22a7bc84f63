"""The ShelfSense boards' panels, once, in terms of :mod:`dashboards.spec` queries.

:mod:`dashboards.boards` turns them into Grafana JSON for InfluxQL (1.x) or Flux (2.x).
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboards.spec import Column, Query, limits_query

LIMITS_REF = "limits"  # the refId of a panel's threshold-steps query


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    type: str  # timeseries | stat | table | row
    grid: tuple[int, int, int, int]  # x, y, w, h
    queries: tuple[Query, ...] = ()
    unit: str = ""
    # static thresholds (steps as (colour, value)) for panels not drawn against zone limits
    thresholds: tuple[tuple[str, float | None], ...] = ()
    repeat: str = ""  # repeat per value of this variable
    description: str = ""
    # Thresholds from the zone limits the readings of these variables' values carry (one zone or
    # one sensor per panel: repeat it); empty for panels without zone limits.
    limits_by: tuple[str, ...] = ()

    @property
    def all_queries(self) -> tuple[Query, ...]:
        """The panel's queries, plus the one its thresholds come from."""
        if not self.limits_by:
            return self.queries
        return (*self.queries, limits_query(LIMITS_REF, self.queries[0].measurement, self.limits_by))


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    label: str
    measurement: str
    filters: tuple[str, ...] = ()  # earlier variables that narrow this one


@dataclass(frozen=True, slots=True)
class Annotation:
    name: str
    color: str
    query: Query


@dataclass(frozen=True, slots=True)
class Board:
    uid: str
    title: str
    tags: tuple[str, ...]
    variables: tuple[Variable, ...]
    annotations: tuple[Annotation, ...]
    panels: tuple[Panel, ...]


def _minmax(measurement: str, by: str, filters: tuple[str, ...]) -> Query:
    columns = (Column("value", "max", "max"), Column("value", "min", "min"))
    return Query("A", measurement, columns, filters=filters, by=(by,), legend=f"$tag_{by} $col")


def _limit_lines(measurement: str, by: str, filters: tuple[str, ...], *, low: bool = True) -> Query:
    """The limits each reading was stored with, as series: they change where the limits changed."""
    columns: tuple[Column, ...] = (Column("limit_min", "last", "min limit"),) if low else ()
    columns += (Column("limit_max", "last", "max limit"),)
    legend = f"$tag_{by} $col"
    return Query("B", measurement, columns, filters=filters, by=(by,), fill="previous", legend=legend)


ZONE = ("site", "zone")
SENSOR = ("site", "zone", "sensor")
_ALERT_ROWS = tuple(Column(c) for c in ("zone", "rule", "state", "value", "limit", "alert_id"))
_ALERT_TEXT = (Column("text"), Column("rule"), Column("state"))

COLD_CHAIN = Board(
    uid="shelfsense-cold-chain",
    title="ShelfSense · Cold chain",
    tags=("shelfsense", "cold-chain"),
    variables=(
        Variable("site", "Site", "temperature"),
        Variable("zone", "Zone", "temperature", ("site",)),
        Variable("sensor", "Sensor", "temperature", ("site", "zone")),
    ),
    annotations=(Annotation("Excursions", "red", Query("A", "alert_event", _ALERT_TEXT, kind="rows")),),
    panels=(
        Panel("Zone $zone", "row", (0, 0, 24, 1), repeat="zone"),
        Panel(
            "Temperature in $zone (min / max per interval: spikes are never averaged away)",
            "timeseries",
            (0, 1, 18, 8),
            (_minmax("temperature", "zone", ZONE), _limit_lines("temperature", "zone", ZONE)),
            unit="celsius",
            limits_by=ZONE,
            description="Colours and threshold lines: the zone's limits (blue below the minimum, red "
            "above the maximum); dashed series: the limits each reading was judged by.",
        ),
        Panel(
            "Now in $zone",
            "stat",
            (18, 1, 6, 8),
            (
                Query(
                    "A",
                    "temperature",
                    (Column("value", "last"),),
                    "latest",
                    ZONE,
                    ("sensor",),
                    legend="$tag_sensor",
                ),
            ),
            unit="celsius",
            limits_by=ZONE,
            description="Each sensor's latest reading, coloured by the zone's limits.",
        ),
        Panel("Sensors", "row", (0, 9, 24, 1)),
        Panel(
            "Sensor $sensor (min / max per interval)",
            "timeseries",
            (0, 10, 8, 8),
            (_minmax("temperature", "sensor", SENSOR), _limit_lines("temperature", "sensor", SENSOR)),
            unit="celsius",
            repeat="sensor",
            limits_by=SENSOR,
            description="Thresholds: the limits of the zone this sensor's readings were stored under.",
        ),
        Panel("Site", "row", (0, 18, 24, 1)),
        Panel(
            "Humidity per zone",
            "timeseries",
            (0, 19, 12, 8),
            (_minmax("humidity", "zone", ZONE), _limit_lines("humidity", "zone", ZONE, low=False)),
            unit="humidity",
        ),
        Panel(
            "Excursions and alerts",
            "table",
            (12, 19, 12, 8),
            (Query("A", "alert_event", _ALERT_ROWS, "rows", ZONE),),
        ),
        Panel(
            "Sensor battery",
            "timeseries",
            (0, 27, 12, 8),
            (
                Query(
                    "A",
                    "battery",
                    (Column("value", "last"),),
                    by=("sensor",),
                    fill="previous",
                    legend="$tag_sensor",
                ),
            ),
            unit="percent",
            thresholds=(("red", None), ("orange", 15), ("green", 30)),
        ),
        Panel(
            "Link quality (lowest per interval)",
            "timeseries",
            (12, 27, 12, 8),
            (Query("A", "linkquality", (Column("value", "min"),), by=("sensor",), legend="$tag_sensor"),),
        ),
    ),
)

_EDGE = ("edge",)
_DEVICE = ("edge", "device")
_DEV = "$tag_edge $tag_device"
SITE_HEALTH = Board(
    uid="shelfsense-site-health",
    title="ShelfSense · Site health",
    tags=("shelfsense", "operations"),
    variables=(Variable("site", "Site", "edge_health"),),
    annotations=(Annotation("Alerts", "orange", Query("A", "alert_event", _ALERT_TEXT, kind="rows")),),
    panels=(
        Panel(
            "Edges online",
            "stat",
            (0, 0, 8, 6),
            (Query("A", "edge_health", (Column("online", "last"),), "latest", by=_EDGE, legend="$tag_edge"),),
            thresholds=(("red", None), ("green", 1)),
        ),
        Panel(
            "Sync lag",
            "timeseries",
            (8, 0, 16, 6),
            (Query("A", "edge_health", (Column("sync_lag_s", "max"),), by=_EDGE, legend="$tag_edge"),),
            unit="s",
            thresholds=(("green", None), ("orange", 60), ("red", 300)),
        ),
        Panel(
            "Outbox depth",
            "timeseries",
            (0, 6, 12, 8),
            (Query("A", "edge_health", (Column("outbox_depth", "max"),), by=_EDGE, legend="$tag_edge"),),
        ),
        Panel(
            "Devices connected",
            "stat",
            (12, 6, 12, 8),
            (Query("A", "device_health", (Column("connected", "last"),), "latest", by=_DEVICE, legend=_DEV),),
            thresholds=(("red", None), ("green", 1)),
        ),
        Panel(
            "Frame errors per interval",
            "timeseries",
            (0, 14, 12, 8),
            (
                Query(
                    "A", "device_health", (Column("frames_bad", "last"),), "counter", by=_DEVICE, legend=_DEV
                ),
            ),
        ),
        Panel(
            "Reconnects per interval",
            "timeseries",
            (12, 14, 12, 8),
            (
                Query(
                    "A", "device_health", (Column("reconnects", "last"),), "counter", by=_DEVICE, legend=_DEV
                ),
            ),
        ),
    ),
)


BOARDS: dict[str, Board] = {"cold-chain": COLD_CHAIN, "site-health": SITE_HEALTH}

__all__ = ["BOARDS", "LIMITS_REF", "Annotation", "Board", "Panel", "Variable"]
