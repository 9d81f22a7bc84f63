"""Render a :class:`~dashboards.spec.Query` as InfluxQL (InfluxDB 1.x, Grafana's InfluxQL mode).

Grafana replaces ``$timeFilter``, ``$__interval`` and ``${__to}`` and the dashboard variables
(a multi-value or "All" variable becomes a regex alternation, hence ``=~ /^$site$/``).
"""

from __future__ import annotations

from dashboards.spec import BELOW_MIN_OFFSET_C, FLOOR_C, Column, Query


def _quote(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


def _column(column: Column) -> str:
    inner = _quote(column.field)
    expression = f"{column.function}({inner})" if column.function else inner
    return f"{expression} AS {_quote(column.alias)}" if column.alias else expression


def _where(query: Query) -> str:
    terms = [f"{_quote(tag)} =~ /^${tag}$/" for tag in query.filters]
    return " AND ".join([*terms, "$timeFilter"])


def _limits_columns() -> str:
    # last() of each: the limits in force at the latest reading in the range (see spec.THRESHOLD_STEPS)
    return ", ".join(
        (
            f'last("value") * 0 - {-FLOOR_C:g} AS "step0_floor"',
            f'last("limit_min") - {BELOW_MIN_OFFSET_C:g} AS "step1_too_cold"',
            'last("limit_min") AS "step2_min"',
            'last("limit_max") AS "step3_max"',
        )
    )


def render(query: Query) -> str:
    source = f"FROM {_quote(query.measurement)} WHERE {_where(query)}"
    if query.kind == "limits":
        return f"SELECT {_limits_columns()} {source}"
    columns = ", ".join(_column(c) for c in query.columns)
    if query.kind == "counter":
        columns = ", ".join(
            f"non_negative_difference({c.function}({_quote(c.field)}))"
            + (f" AS {_quote(c.alias)}" if c.alias else "")
            for c in query.columns
        )
    statement = f"SELECT {columns} {source}"
    group = [_quote(tag) for tag in query.by]
    if query.kind in ("series", "counter"):
        group.insert(0, "time($__interval)")
    if group:
        statement += " GROUP BY " + ", ".join(group)
    if query.kind in ("series", "counter"):
        statement += f" fill({query.fill})"
    return statement


__all__ = ["render"]
