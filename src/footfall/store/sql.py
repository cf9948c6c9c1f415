"""Compile the engine-neutral `Query` to DuckDB SQL.

Shape of every query:
  ev      the site's events in the range, filtered, with each dimension as a column
  by_dim  event-level metrics per dimension group
  sess    per-visit figures (only when a visit metric is asked for), attributed to every
          dimension group the visit touched
Metric names, dimensions and filter operators come from `query.model`; values are always
bound parameters, never spliced into the text.
"""

from __future__ import annotations

from typing import Any

from footfall.query.model import EVENT_DIMENSIONS, SESSION_METRICS, Filter, Query

_TIME_BUCKETS = {
    "time:hour": "date_trunc('hour', {local})",
    "time:day": "date_trunc('day', {local})::DATE",
    "time:week": "date_trunc('week', {local})::DATE",
    "time:month": "date_trunc('month', {local})::DATE",
}

_EVENT_METRIC_SQL = {
    "visitors": "count(DISTINCT visitor_id)",
    "pageviews": "count(*) FILTER (WHERE kind = 'pageview')",
    "events": "count(*) FILTER (WHERE kind = 'event')",
    "visits": "count(DISTINCT session_id)",
}

# A bounce is a visit with one pageview and nothing else; visits without pageviews
# (server-side events only) are not in the bounce-rate denominator.
_SESSION_METRIC_SQL = {
    "bounce_rate": "round(100.0 * count(*) FILTER (WHERE pv = 1 AND n = 1)"
    " / nullif(count(*) FILTER (WHERE pv >= 1), 0), 1)",
    "visit_duration": "round(avg(epoch(s_end) - epoch(s_start)), 1)",
    "views_per_visit": "round(sum(pv) / nullif(count(*) FILTER (WHERE pv >= 1), 0), 2)",
}


def _dimension_sql(dimension: str) -> str:
    if dimension in _TIME_BUCKETS:
        return _TIME_BUCKETS[dimension].format(local="timezone($tz, timezone('UTC', ts))")
    return EVENT_DIMENSIONS[dimension]


def _filter_sql(f: Filter, params: dict[str, Any], n: int) -> str:
    column = EVENT_DIMENSIONS[f.dimension]
    key = f"f{n}"
    if f.op in ("is", "is_not"):
        params[key] = list(f.values)
        clause = f"list_contains(${key}, {column})"
    elif f.op in ("matches", "matches_not"):
        params[key] = list(f.values)
        clause = f"len(list_filter(${key}, lambda x: regexp_full_match({column}, x))) > 0"
    else:
        params[key] = [v.lower() for v in f.values]
        clause = f"len(list_filter(${key}, lambda x: contains(lower({column}), x))) > 0"
    return clause if f.op in ("is", "contains", "matches") else f"NOT {clause}"


def compile_query(q: Query) -> tuple[str, dict[str, Any], list[str]]:
    params: dict[str, Any] = {"site": q.site_id, "start": q.start_us, "end": q.end_us}
    if any(d in _TIME_BUCKETS for d in q.dimensions):
        params["tz"] = q.timezone
    dims = [f"d{i}" for i in range(len(q.dimensions))]
    dim_select = "".join(f", {_dimension_sql(d)} AS {a}" for d, a in zip(q.dimensions, dims, strict=True))
    where = ["site_id = $site", "ts >= make_timestamp($start)", "ts < make_timestamp($end)"]
    where += [_filter_sql(f, params, i) for i, f in enumerate(q.filters)]
    group = ", ".join(dims)
    group_by = f"GROUP BY {group}" if dims else ""

    event_metrics = [m for m in q.metrics if m not in SESSION_METRICS]
    session_metrics = [m for m in q.metrics if m in SESSION_METRICS]
    ctes = [f"ev AS (SELECT *{dim_select} FROM events WHERE {' AND '.join(where)})"]
    ctes.append(
        "by_dim AS (SELECT "
        + ", ".join([*dims, *(f"{_EVENT_METRIC_SQL[m]} AS {m}" for m in event_metrics)] or ["1 AS one"])
        + f" FROM ev {group_by})"
    )
    joins = ""
    if session_metrics:
        ctes.append(
            "visit AS (SELECT session_id, min(ts) AS s_start, max(ts) AS s_end, count(*) AS n,"
            " count(*) FILTER (WHERE kind = 'pageview') AS pv FROM ev WHERE session_id IS NOT NULL GROUP BY session_id)"
        )
        touched = f"SELECT DISTINCT {group + ', ' if dims else ''}session_id FROM ev"
        ctes.append(
            "by_visit AS (SELECT "
            + ", ".join([*dims, *(f"{_SESSION_METRIC_SQL[m]} AS {m}" for m in session_metrics)])
            + f" FROM ({touched}) t JOIN visit USING (session_id) {group_by})"
        )
        joins = f" LEFT JOIN by_visit USING ({group})" if dims else ", by_visit"

    def metric_value(m: str) -> str:
        if m in SESSION_METRICS:
            return f"coalesce(by_visit.{m}, 0)"
        return f"by_dim.{m}"

    select = [f"by_dim.{a}" for a in dims] + [f"{metric_value(m)} AS {m}" for m in q.metrics]
    order_terms = []
    for key, direction in q.order_by:
        column = dims[q.dimensions.index(key)] if key in q.dimensions else key
        order_terms.append(f"{column} {direction.upper()}")
    # A stable total order, so pagination never repeats or skips a row.
    order_terms += [f"{a} ASC" for a in dims]
    # With no dimension, by_dim is one aggregate row, so totals exist even for an empty range.
    sql = f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM by_dim{joins}"
    if order_terms:
        sql += " ORDER BY " + ", ".join(order_terms)
    if q.limit is not None:
        sql += f" LIMIT {int(q.limit)} OFFSET {int(q.offset)}"
    return sql, params, [*q.dimensions, *q.metrics]
