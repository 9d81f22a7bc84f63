"""Grafana dashboard JSON from :mod:`dashboards.panels`, for InfluxQL (1.x) or Flux (2.x).

``build(board, "influxql")`` is the board provisioned with our datasource (uid ``shelfsense-influxdb``);
``build(board, "flux")`` the same board over an InfluxDB 2.x datasource in Flux mode. With
``for_import=True`` every datasource reference is ``${DS_...}`` and ``__inputs`` asks Grafana's
*Import dashboard* page which datasource (and, for Flux, which bucket) to use.

Thresholds from zone limits: a repeated panel shows one zone or one sensor; its ``limits`` query
returns one row of threshold steps from the limits the readings were stored with, and Grafana's
"Config from query results" transformation (``configFromData``) turns that row into the panel's
thresholds. Grafana has no per-series thresholds, so a panel that mixes zones draws the limits as
dashed series instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from dashboards import flux, influxql
from dashboards.panels import BOARDS, LIMITS_REF, Annotation, Board, Panel, Variable
from dashboards.spec import THRESHOLD_STEPS, Query

Flavor = Literal["influxql", "flux"]
FLAVORS: tuple[Flavor, ...] = ("influxql", "flux")

DATASOURCE_UID = {"influxql": "shelfsense-influxdb", "flux": "shelfsense-influxdb-flux"}
IMPORT_INPUT = {"influxql": "DS_SHELFSENSE_INFLUXDB", "flux": "DS_SHELFSENSE_INFLUXDB_FLUX"}
BUCKET_INPUT = "VAR_BUCKET"
DEFAULT_BUCKET = "shelfsense"
# "Config from query results" takes a colour per threshold step since Grafana 11.0 (before, every
# step it adds is red).
GRAFANA_VERSION = "11.0.0"
_PANEL_NAMES = {"timeseries": "Time series", "stat": "Stat", "table": "Table"}


def _datasource(flavor: Flavor, for_import: bool) -> dict[str, str]:
    uid = "${" + IMPORT_INPUT[flavor] + "}" if for_import else DATASOURCE_UID[flavor]
    return {"type": "influxdb", "uid": uid}


def _render(query: Query, flavor: Flavor) -> str:
    return influxql.render(query) if flavor == "influxql" else flux.render(query)


def _target(query: Query, flavor: Flavor, ds: dict[str, str]) -> dict[str, Any]:
    target: dict[str, Any] = {"refId": query.ref, "datasource": ds, "query": _render(query, flavor)}
    if flavor == "influxql":
        target |= {"rawQuery": True, "resultFormat": query.result_format}
        if query.legend:
            target["alias"] = query.legend
    return target


def _variable_query(variable: Variable, flavor: Flavor) -> str:
    if flavor == "flux":
        return flux.tag_values(variable.measurement, variable.name, variable.filters)
    where = " AND ".join(f'"{tag}" =~ /^${tag}$/' for tag in variable.filters)
    query = f'SHOW TAG VALUES FROM "{variable.measurement}" WITH KEY = "{variable.name}"'
    return f"{query} WHERE {where}" if where else query


def _variables(board: Board, flavor: Flavor, ds: dict[str, str], for_import: bool) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if flavor == "flux":
        bucket = "${" + BUCKET_INPUT + "}" if for_import else DEFAULT_BUCKET
        found.append(
            {
                "name": "bucket",
                "label": "Bucket",
                "type": "constant",
                "hide": 2,
                "query": bucket,
                "current": {"text": bucket, "value": bucket},
            }
        )
    for variable in board.variables:
        query = _variable_query(variable, flavor)
        found.append(
            {
                "name": variable.name,
                "label": variable.label,
                "type": "query",
                "datasource": ds,
                "query": query,
                "definition": query,
                "refresh": 2,
                "includeAll": True,
                "multi": True,
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "sort": 1,
            }
        )
    return found


def _annotation(annotation: Annotation, flavor: Flavor, ds: dict[str, str]) -> dict[str, Any]:
    query = _render(annotation.query, flavor)
    found: dict[str, Any] = {"name": annotation.name, "datasource": ds, "enable": True}
    found["iconColor"] = annotation.color
    if flavor == "influxql":
        return found | {"query": query, "textColumn": "text", "tagsColumn": "rule,state"}
    mappings = {
        "text": {"source": "field", "value": "text"},
        "tags": {"source": "field", "value": "rule"},
    }
    return found | {"target": {"refId": "Anno", "query": query}, "mappings": mappings}


def _thresholds(panel: Panel) -> dict[str, Any]:
    steps = panel.thresholds or (("green", None),)  # the base a limits row adds its steps above
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def _limit_overrides() -> list[dict[str, Any]]:
    dashed = {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}
    return [
        {
            "matcher": {"id": "byRegexp", "options": f".*{name} limit.*"},
            "properties": [dashed, {"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
        }
        for name, colour in (("min", "blue"), ("max", "red"))
    ]


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"thresholds": _thresholds(panel)}
    if panel.unit:
        defaults["unit"] = panel.unit
    if panel.type == "timeseries":
        style = "line+area" if panel.limits_by or panel.thresholds else "off"
        defaults["custom"] = {"thresholdsStyle": {"mode": style}}
    overrides = _limit_overrides() if any(q.ref == "B" for q in panel.queries) else []
    return {"defaults": defaults, "overrides": overrides}


def _config_from_limits() -> dict[str, Any]:
    mappings = [
        {"fieldName": name, "handlerKey": "threshold1", "handlerArguments": {"threshold": {"color": colour}}}
        for name, colour in THRESHOLD_STEPS
    ]
    return {
        "id": "configFromData",
        "options": {
            "configRefId": LIMITS_REF,
            "applyTo": {"id": "byFrameRefID", "options": "A"},
            "mappings": mappings,
        },
    }


def _panel(panel: Panel, panel_id: int, flavor: Flavor, ds: dict[str, str]) -> dict[str, Any]:
    x, y, w, h = panel.grid
    found: dict[str, Any] = {
        "id": panel_id,
        "type": panel.type,
        "title": panel.title,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
    }
    if panel.type == "row":
        found |= {"collapsed": False, "panels": []}
    else:
        found["datasource"] = ds
        found["targets"] = [_target(q, flavor, ds) for q in panel.all_queries]
        found["fieldConfig"] = _field_config(panel)
        found["options"] = {"colorMode": "background"} if panel.type == "stat" else {}
        if panel.limits_by:
            found["transformations"] = [_config_from_limits()]
    if panel.description:
        found["description"] = panel.description
    if panel.repeat:
        found["repeat"] = panel.repeat
        if panel.type != "row":
            found |= {"repeatDirection": "h", "maxPerRow": 3}
    return found


def _requires(board: Board) -> list[dict[str, str]]:
    kinds = sorted({p.type for p in board.panels if p.type != "row"})
    return [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "influxdb", "name": "InfluxDB", "version": "1.0.0"},
        *({"type": "panel", "id": k, "name": _PANEL_NAMES[k], "version": ""} for k in kinds),
    ]


def _inputs(flavor: Flavor) -> list[dict[str, str]]:
    language = "InfluxDB 1.x (InfluxQL)" if flavor == "influxql" else "InfluxDB 2.x (Flux)"
    inputs = [
        {
            "name": IMPORT_INPUT[flavor],
            "label": "ShelfSense InfluxDB" + (" (Flux)" if flavor == "flux" else ""),
            "description": f"{language} holding the measurements the ShelfSense cloud writes",
            "type": "datasource",
            "pluginId": "influxdb",
            "pluginName": "InfluxDB",
        }
    ]
    if flavor == "flux":
        inputs.append(
            {
                "name": BUCKET_INPUT,
                "label": "Bucket",
                "description": "the bucket [cloud.influx] writes to",
                "type": "constant",
                "value": DEFAULT_BUCKET,
            }
        )
    return inputs


def build(board: Board, flavor: Flavor = "influxql", *, for_import: bool = False) -> dict[str, Any]:
    """The Grafana JSON of one board."""
    for panel in board.panels:
        for query in panel.all_queries:
            query.check()
    ds = _datasource(flavor, for_import)
    suffix = "" if flavor == "influxql" else " (InfluxDB 2.x)"
    found: dict[str, Any] = {
        "uid": board.uid if flavor == "influxql" else board.uid + "-flux",
        "title": board.title + suffix,
        "tags": [*board.tags, flavor],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": _variables(board, flavor, ds, for_import)},
        "annotations": {
            "list": [_builtin_annotation(), *(_annotation(a, flavor, ds) for a in board.annotations)]
        },
        "panels": [_panel(p, index, flavor, ds) for index, p in enumerate(board.panels, start=1)],
    }
    if for_import:
        return {"__inputs": _inputs(flavor), "__requires": _requires(board), **found}
    return found


def _builtin_annotation() -> dict[str, Any]:
    return {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }


def all_boards(flavor: Flavor = "influxql", *, for_import: bool = False) -> dict[str, dict[str, Any]]:
    """Every board by name (``cold-chain``, ``site-health``)."""
    return {name: build(board, flavor, for_import=for_import) for name, board in BOARDS.items()}


def dump(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def shipped_files(root: Path) -> dict[Path, str]:
    """The JSON files kept in ``dashboards/grafana`` (generated; a test keeps them current)."""
    files: dict[Path, str] = {}
    folders: dict[Flavor, str] = {"influxql": "dashboards", "flux": "dashboards-flux"}
    for flavor, folder in folders.items():
        for name, board in all_boards(flavor).items():
            files[root / folder / f"{name}.json"] = dump(board)
    return files


if __name__ == "__main__":  # python -m dashboards.boards: regenerate the shipped JSON
    for path, text in shipped_files(Path(__file__).resolve().parent / "grafana").items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)

__all__ = [
    "DATASOURCE_UID",
    "FLAVORS",
    "IMPORT_INPUT",
    "Flavor",
    "all_boards",
    "build",
    "dump",
    "shipped_files",
]
