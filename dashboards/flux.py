"""Render a :class:`~dashboards.spec.Query` as Flux (InfluxDB 2.x, Grafana's Flux mode).

The same query as :mod:`dashboards.influxql`, over the same measurements, tags and fields (the
2.x writer sends the same line protocol to a bucket). Grafana provides ``v.timeRangeStart``,
``v.timeRangeStop`` and ``v.windowPeriod``; ``${bucket}`` is a constant dashboard variable and
``${site:regex}`` a variable formatted as a regex (``.*`` for "All").
"""

from __future__ import annotations

from dashboards.spec import BELOW_MIN_OFFSET_C, FLOOR_C, Column, Query


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_string(v) for v in values) + "]"


def source(measurement: str, filters: tuple[str, ...]) -> str:
    """Rows of one measurement in the dashboard's time range, filtered by the variables."""
    predicate = " and ".join(
        [
            f"r._measurement == {_string(measurement)}",
            *(f"r.{tag} =~ /^${{{tag}:regex}}$/" for tag in filters),
        ]
    )
    return (
        'from(bucket: "${bucket}")\n'
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
        f"  |> filter(fn: (r) => {predicate})"
    )


def _field_is(fields: tuple[str, ...] | list[str]) -> str:
    return " or ".join(f"r._field == {_string(f)}" for f in fields)


def _one_column(query: Query, column: Column, indent: str = "    ") -> str:
    """One named series per group: the field, aggregated as the query's kind says."""
    steps = [f"filter(fn: (r) => {_field_is([column.field])})", f"group(columns: {_list(query.by)})"]
    if column.function == "last":  # regrouped series are concatenated, not merged in time order
        steps.append('sort(columns: ["_time"])')
    if query.kind == "latest":
        steps.append(f"{column.function}()")
    else:
        function = column.function
        empty = "true" if query.fill == "previous" else "false"
        steps.append(f"aggregateWindow(every: v.windowPeriod, fn: {function}, createEmpty: {empty})")
        if query.fill == "previous":
            steps.append("fill(usePrevious: true)")
        if query.kind == "counter":
            steps.append("difference(nonNegative: true)")
    steps.append(f"set(key: {_string('_field')}, value: {_string(column.name)})")
    return f"data\n{indent}|> " + f"\n{indent}|> ".join(steps)


def _series(query: Query) -> str:
    regroup = f"\n  |> group(columns: {_list([*query.by, '_field'])})"
    if len(query.columns) == 1:
        return _one_column(query, query.columns[0], "  ") + regroup
    parts = [_one_column(query, column) for column in query.columns]
    return "union(tables: [\n  " + ",\n  ".join(parts) + "\n])" + regroup


def _rows(query: Query) -> str:
    tags = [c.field for c in query.columns if c.field not in query.fields]
    keep = ["_time", *tags, *query.fields]
    return (
        f"data\n  |> filter(fn: (r) => {_field_is(query.fields)})\n"
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        f"  |> group()\n  |> keep(columns: {_list(keep)})\n"
        '  |> sort(columns: ["_time"])'
    )


def _limits() -> str:
    # One row, one column per threshold step (spec.THRESHOLD_STEPS); a step whose limit is not
    # configured has no row, hence no column, and Grafana adds no step for it.
    steps = (
        ("value", "step0_floor", f"_value: {FLOOR_C}"),
        ("limit_min", "step1_too_cold", f"_value: r._value - {BELOW_MIN_OFFSET_C}"),
        ("limit_min", "step2_min", "_value: r._value"),
        ("limit_max", "step3_max", "_value: r._value"),
    )
    parts = [
        f"latest\n    |> filter(fn: (r) => r._field == {_string(field)})\n"
        f"    |> map(fn: (r) => ({{r with _field: {_string(name)}, {value}}}))"
        for field, name, value in steps
    ]
    return (
        f"latest = data\n  |> filter(fn: (r) => {_field_is(['value', 'limit_min', 'limit_max'])})\n"
        '  |> group(columns: ["_field"])\n  |> sort(columns: ["_time"])\n  |> last()\n  |> group()\n'
        "union(tables: [\n  " + ",\n  ".join(parts) + "\n])\n"
        '  |> pivot(rowKey: ["_measurement"], columnKey: ["_field"], valueColumn: "_value")'
    )


def render(query: Query) -> str:
    head = f"data = {source(query.measurement, query.filters)}\n"
    if query.kind == "limits":
        return head + _limits()
    if query.kind == "rows":
        return head + _rows(query)
    return head + _series(query)


def tag_values(measurement: str, tag: str, filters: tuple[str, ...]) -> str:
    """A template variable's values: the tag's values in the measurement, filtered by earlier variables."""
    predicate = " and ".join(
        [f"r._measurement == {_string(measurement)}", *(f"r.{t} =~ /^${{{t}:regex}}$/" for t in filters)]
    )
    return (
        'import "influxdata/influxdb/schema"\n'
        f'schema.tagValues(bucket: "${{bucket}}", tag: {_string(tag)}, '
        f"predicate: (r) => {predicate}, start: -30d)"
    )


__all__ = ["render", "source", "tag_values"]
