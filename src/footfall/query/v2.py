"""The Stats API v2 (Plausible's `POST /api/v2/query`): a request body in, its response out.

    execute(store, site, body, now) -> {"results": [...], "meta": {...}, "query": {...}}

The body is validated here, with errors that name what is wrong (QueryError, a 400), and
turned into `Query` model objects the store runs. Derived metrics (percentage, conversion
rates) and comparisons are worked out here from the engine's figures, so every engine gets
them for free. The HTTP route (api/stats.py), the dashboard, `footfall stats` and the
benchmark all call `execute`.

Date ranges are in the site's time zone: "day" (today), "24h", "7d", "28d", "30d", "91d"
(the N days before today), "month", "6mo", "12mo" (calendar months up to this one), "year",
"all" (since the site's first event), or [first, last] as dates (inclusive) or ISO datetimes.
Over more than APPROXIMATE_ABOVE events in the range, distinct counts are estimates (see
`Query.approximate`), as Plausible's are.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any
from zoneinfo import ZoneInfo

from footfall.meta import Site
from footfall.query.compile import to_us
from footfall.query.model import (
    ENGAGEMENT_METRICS,
    GOAL_DIMENSION,
    METRICS,
    REVENUE_METRICS,
    TIME_DIMENSIONS,
    Filter,
    FilterNode,
    GoalRule,
    Logic,
    Query,
    QueryError,
    check_dimension,
)
from footfall.store.base import Store

DERIVED_METRICS = ("percentage", "conversion_rate", "group_conversion_rate")
# `custom_events` is the CLI's own; the API's `events` counts pageviews too, as Plausible's.
API_METRICS: tuple[str, ...] = (*sorted(METRICS - {"custom_events"}), *DERIVED_METRICS)
NAMED_RANGES = ("day", "24h", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all")
COMPARISON_MODES = ("previous_period", "year_over_year", "custom")
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000
MAX_FILTER_DEPTH = 8
MAX_FILTERS = 100
MAX_VALUES = 1_000
MAX_TIME_LABELS = 100_000
MAX_RANGE = dt.timedelta(days=100 * 366)
# Past this many events in the range, visitors and visits are counted approximately (see
# Query.approximate); below it, exactly.
APPROXIMATE_ABOVE = 2_000_000
# Changes of these are differences in points, not percentages, as Plausible gives them.
POINT_CHANGE = frozenset({"bounce_rate", "conversion_rate", "group_conversion_rate", "percentage", "scroll_depth"})
_INCLUDE_KEYS = ("imports", "time_labels", "total_rows", "comparisons")
_BODY_KEYS = ("site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include", "pagination")


class Period:
    """A resolved date range: UTC bounds, and its local first and last day."""

    def __init__(self, tz: ZoneInfo, start: dt.datetime, end: dt.datetime, dates: bool) -> None:
        self.tz, self.start, self.end, self.dates = tz, start, end, dates  # end exclusive, aware
        if end <= start:
            raise QueryError("date_range is empty: its end is before its start")
        if end - start > MAX_RANGE:
            raise QueryError("date_range is longer than a hundred years")
        self.first_day = start.astimezone(tz).date()
        self.last_day = (end - dt.timedelta(microseconds=1)).astimezone(tz).date()

    def echo(self) -> list[str]:
        last = (self.end - dt.timedelta(seconds=1)).astimezone(self.tz)
        return [self.start.astimezone(self.tz).isoformat(), last.replace(microsecond=0).isoformat()]

    def shifted(self, mode: str, custom: Any) -> Period:
        if mode == "previous_period":
            if self.dates:
                days = (self.last_day - self.first_day).days + 1
                return _days(self.tz, self.first_day - dt.timedelta(days=days), self.first_day - dt.timedelta(days=1))
            return Period(self.tz, self.start - (self.end - self.start), self.start, dates=False)
        if mode == "year_over_year":
            if self.dates:
                return _days(self.tz, _year_before(self.first_day), _year_before(self.last_day))
            return Period(self.tz, _year_before_dt(self.start), _year_before_dt(self.end), dates=False)
        if custom is None:
            raise QueryError("include.comparisons with mode 'custom' needs a date_range")
        return parse_range(self.tz, custom, now=None, first_event=None, field="include.comparisons.date_range")


def execute(store: Store, site: Site, body: dict[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """Answer a Stats API v2 query for `site` (the caller has checked the site is allowed)."""
    if not isinstance(body, dict):
        raise QueryError("the request body is a JSON object")
    unknown = [k for k in body if k not in _BODY_KEYS]
    if unknown:
        raise QueryError(f"unknown field {unknown[0]!r}; known: {', '.join(_BODY_KEYS)}")
    tz = ZoneInfo(site.timezone)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(tz)
    metrics = _metrics(body.get("metrics"))
    if "date_range" not in body:
        raise QueryError("date_range is required, e.g. \"7d\" or [\"2024-01-01\", \"2024-01-31\"]")
    first_event = None
    if body["date_range"] == "all":
        first_us = store.first_event_us(site.id)
        first_event = None if first_us is None else dt.datetime.fromtimestamp(first_us / 1e6, dt.UTC)
    period = parse_range(tz, body["date_range"], now, first_event, "date_range")
    dimensions = _dimensions(body.get("dimensions", []), period)
    goals = tuple(GoalRule.from_goal(g.name, g.type, g.value) for g in site.settings.goals)
    filters = _filters(body.get("filters", []))
    order_by = _order_by(body.get("order_by"), metrics, dimensions)
    include = _include(body.get("include"), dimensions)
    limit, offset = _pagination(body.get("pagination"))
    _check_goal_metrics(metrics, dimensions, filters)

    plan = _Plan(store, site, goals, metrics, dimensions, filters, order_by, limit, offset, include["total_rows"])
    rows, total_rows = plan.run(period)
    results = [{"metrics": r["metrics"], "dimensions": r["dimensions"]} for r in rows]
    meta: dict[str, Any] = {}
    query: dict[str, Any] = {
        "site_id": site.domain,
        "metrics": list(metrics),
        "date_range": period.echo(),
        "filters": body.get("filters", []),
        "dimensions": list(dimensions),
        "order_by": [list(o) for o in order_by],
        "include": {k: include[k] for k in _INCLUDE_KEYS},
        "pagination": {"limit": limit, "offset": offset},
    }
    if include["comparisons"] is not None:
        mode = include["comparisons"]["mode"]
        other = period.shifted(mode, include["comparisons"].get("date_range"))
        query["comparison_date_range"] = other.echo()
        _compare(plan, period, other, rows, results, dimensions, metrics)
    if include["imports"]:
        meta["imports_included"] = False
        meta["imports_skip_reason"] = "no_imported_data"
    if include["time_labels"]:
        meta["time_labels"] = time_labels(period, _time_dimension(dimensions))
    if include["total_rows"]:
        meta["total_rows"] = total_rows
    return {"results": results, "meta": meta, "query": query}


# -- the request ----------------------------------------------------------------------------


def _strings(value: Any, field: str, allow_empty: bool = True) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise QueryError(f"{field} is a list of strings")
    if not value and not allow_empty:
        raise QueryError(f"{field} needs at least one entry")
    return value


def _metrics(value: Any) -> tuple[str, ...]:
    if value is None:
        raise QueryError("metrics is required, e.g. [\"visitors\"]")
    metrics = _strings(value, "metrics", allow_empty=False)
    for m in metrics:
        if m not in API_METRICS:
            raise QueryError(f"unknown metric {m!r}; known: {', '.join(API_METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise QueryError("metrics: a metric is listed twice")
    return tuple(metrics)


def _dimensions(value: Any, period: Period) -> tuple[str, ...]:
    dims = _strings(value, "dimensions")
    out = []
    for d in dims:
        if d == "time":
            d = _auto_interval(period)
        check_dimension(d)
        out.append(d)
    if len(set(out)) != len(out):
        raise QueryError("dimensions: a dimension is listed twice")
    if sum(d in TIME_DIMENSIONS for d in out) > 1:
        raise QueryError("dimensions: at most one time dimension")
    return tuple(out)


def _auto_interval(period: Period) -> str:
    """`time`: hours for a day (or two days' worth of datetimes), days up to three months,
    months beyond."""
    days = (period.last_day - period.first_day).days + 1
    short = days <= 1 if period.dates else period.end - period.start <= dt.timedelta(hours=48)
    return "time:hour" if short else "time:day" if days <= 92 else "time:month"


def _time_dimension(dims: tuple[str, ...]) -> str | None:
    return next((d for d in dims if d in TIME_DIMENSIONS), None)


def _filters(value: Any) -> tuple[FilterNode, ...]:
    if not isinstance(value, list):
        raise QueryError("filters is a list of filters, e.g. [[\"is\", \"visit:country\", [\"DE\"]]]")
    count = [0]
    return tuple(_filter(f, f"filters[{i}]", 0, count) for i, f in enumerate(value))


def _filter(value: Any, where: str, depth: int, count: list[int]) -> FilterNode:
    count[0] += 1
    if depth > MAX_FILTER_DEPTH or count[0] > MAX_FILTERS:
        raise QueryError(f"{where}: filters nest deeper than {MAX_FILTER_DEPTH} or number more than {MAX_FILTERS}")
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise QueryError(f"{where}: a filter is [operator, dimension, [values]], or [\"and\"|\"or\", [filters]]")
    op = value[0]
    if op in ("and", "or"):
        if len(value) != 2 or not isinstance(value[1], list) or not value[1]:
            raise QueryError(f"{where}: [{op!r}, [filter, ...]] takes a non-empty list of filters")
        children = tuple(_filter(f, f"{where}[1][{i}]", depth + 1, count) for i, f in enumerate(value[1]))
        return Logic("and" if op == "and" else "or", children)
    if op == "not":
        if len(value) != 2:
            raise QueryError(f"{where}: [\"not\", filter] takes one filter")
        return Logic("not", (_filter(value[1], f"{where}[1]", depth + 1, count),))
    if op in ("has_done", "has_not_done"):
        raise QueryError(f"{where}: the {op!r} operator is not supported")
    if len(value) not in (3, 4) or not isinstance(value[1], str) or not isinstance(value[2], list):
        raise QueryError(f"{where}: a filter is [operator, dimension, [values], {{modifiers}}?]")
    clauses = value[2]
    if not clauses or len(clauses) > MAX_VALUES:
        raise QueryError(f"{where}: a filter takes 1 to {MAX_VALUES} values")
    texts = []
    for c in clauses:
        if isinstance(c, bool) or not isinstance(c, str | int | float):
            raise QueryError(f"{where}: filter values are strings (or numbers)")
        texts.append(c if isinstance(c, str) else str(c))
    case_sensitive = True
    if len(value) == 4:
        modifiers = value[3]
        if not isinstance(modifiers, dict) or any(k != "case_sensitive" for k in modifiers):
            raise QueryError(f"{where}: the only filter modifier is {{\"case_sensitive\": true|false}}")
        if "case_sensitive" in modifiers:
            if not isinstance(modifiers["case_sensitive"], bool):
                raise QueryError(f"{where}: case_sensitive is true or false")
            case_sensitive = modifiers["case_sensitive"]
    try:
        return Filter(op, value[1], tuple(texts), case_sensitive)  # type: ignore[arg-type]
    except QueryError as exc:
        raise QueryError(f"{where}: {exc}") from None


def _order_by(value: Any, metrics: tuple[str, ...], dims: tuple[str, ...]) -> list[tuple[str, str]]:
    if value is None:
        # Plausible's default: time ascending, else the first metric, largest first.
        time_dim = _time_dimension(dims)
        return [(time_dim, "asc")] if time_dim else [(metrics[0], "desc")] if dims else []
    if not isinstance(value, list):
        raise QueryError("order_by is a list of [metric or dimension, \"asc\"|\"desc\"]")
    out = []
    for entry in value:
        if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str)
                or entry[1] not in ("asc", "desc")):
            raise QueryError(f"order_by entries are [metric or dimension, \"asc\"|\"desc\"], not {entry!r}")
        key = "time:" + _auto_name(entry[0], dims) if entry[0] == "time" else entry[0]
        if key not in metrics and key not in dims:
            raise QueryError(f"order_by {entry[0]!r} is neither a requested metric nor dimension")
        out.append((key, entry[1]))
    return out


def _auto_name(name: str, dims: tuple[str, ...]) -> str:
    time_dim = _time_dimension(dims)
    return time_dim.split(":", 1)[1] if time_dim else name


def _include(value: Any, dims: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"imports": False, "time_labels": False, "total_rows": False, "comparisons": None}
    if value is None:
        return out
    if not isinstance(value, dict):
        raise QueryError("include is an object: {\"time_labels\": true, \"comparisons\": {...}, ...}")
    for key, v in value.items():
        if key not in _INCLUDE_KEYS:
            raise QueryError(f"unknown include {key!r}; known: {', '.join(_INCLUDE_KEYS)}")
        if key == "comparisons":
            if v is None:
                continue
            if not isinstance(v, dict) or v.get("mode") not in COMPARISON_MODES:
                raise QueryError(f"include.comparisons is {{\"mode\": {' | '.join(map(repr, COMPARISON_MODES))}}}")
            extra = [k for k in v if k not in ("mode", "date_range", "match_day_of_week")]
            if extra:
                raise QueryError(f"unknown include.comparisons field {extra[0]!r}")
            out[key] = v
        elif not isinstance(v, bool):
            raise QueryError(f"include.{key} is true or false")
        else:
            out[key] = v
    if out["time_labels"] and _time_dimension(dims) is None:
        raise QueryError("include.time_labels needs a time dimension")
    return out


def _pagination(value: Any) -> tuple[int, int]:
    if value is None:
        return DEFAULT_LIMIT, 0
    if not isinstance(value, dict) or any(k not in ("limit", "offset") for k in value):
        raise QueryError("pagination is {\"limit\": n, \"offset\": n}")
    limit, offset = value.get("limit", DEFAULT_LIMIT), value.get("offset", 0)
    for name, v, low, high in (("limit", limit, 1, MAX_LIMIT), ("offset", offset, 0, 10**9)):
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise QueryError(f"pagination.{name} is a whole number from {low} to {high}")
    return limit, offset


def _check_goal_metrics(metrics: tuple[str, ...], dims: tuple[str, ...], filters: tuple[FilterNode, ...]) -> None:
    goal_filter = any(isinstance(f, Filter) and f.dimension == GOAL_DIMENSION for f in filters)
    if ("conversion_rate" in metrics or "group_conversion_rate" in metrics) and not (
        goal_filter or GOAL_DIMENSION in dims
    ):
        raise QueryError(
            "conversion_rate and group_conversion_rate need an event:goal filter (at the top level) "
            "or the event:goal dimension"
        )
    if "group_conversion_rate" in metrics and not dims:
        raise QueryError("group_conversion_rate needs dimensions")


# -- date ranges ----------------------------------------------------------------------------


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _days(tz: ZoneInfo, first: dt.date, last: dt.date) -> Period:
    start = dt.datetime.combine(first, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return Period(tz, start.astimezone(dt.UTC), end.astimezone(dt.UTC), dates=True)


def _year_before(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def _year_before_dt(moment: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(_year_before(moment.date()), moment.timetz())


def _month_start(day: dt.date, back: int) -> dt.date:
    months = day.year * 12 + day.month - 1 - back
    return dt.date(months // 12, months % 12 + 1, 1)


def _month_end(day: dt.date) -> dt.date:
    return _month_start(day, -1) - dt.timedelta(days=1)


def parse_range(
    tz: ZoneInfo, value: Any, now: dt.datetime | None, first_event: dt.datetime | None, field: str
) -> Period:
    if isinstance(value, str):
        if now is None or value not in NAMED_RANGES:
            raise QueryError(
                f"{field}: unknown range {value!r}; use one of {', '.join(NAMED_RANGES)}, or [first, last] as dates"
            )
        today = now.date()
        if value == "day":
            return _days(tz, today, today)
        if value == "24h":
            return Period(tz, now - dt.timedelta(hours=24), now, dates=False)
        if value.endswith("d"):
            n = int(value[:-1])
            return _days(tz, today - dt.timedelta(days=n), today - dt.timedelta(days=1))
        if value == "month":
            return _days(tz, today.replace(day=1), _month_end(today))
        if value in ("6mo", "12mo"):
            return _days(tz, _month_start(today, int(value[:-2]) - 1), _month_end(today))
        if value == "year":
            return _days(tz, today.replace(month=1, day=1), today.replace(month=12, day=31))
        first = first_event.astimezone(tz).date() if first_event is not None else today
        return _days(tz, min(first, today), today)
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise QueryError(f"{field} is a named range like \"7d\", or [first, last] as ISO dates or datetimes")
    if all(_DATE.match(v) for v in value):
        try:
            first, last = (dt.date.fromisoformat(v) for v in value)
        except ValueError as exc:
            raise QueryError(f"{field}: not a date ({exc})") from None
        if last < first:
            raise QueryError(f"{field}: the last day {last} is before the first {first}")
        if first.year < 1970 or last.year > 9998:
            raise QueryError(f"{field}: dates from 1970 to 9998")
        return _days(tz, first, last)
    moments = []
    for v in value:
        try:
            moment = dt.datetime.fromisoformat(v)
        except ValueError:
            raise QueryError(f"{field}: {v!r} is neither an ISO date (2024-01-31) nor datetime") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        if not 1970 <= moment.year <= 9998:
            raise QueryError(f"{field}: datetimes from 1970 to 9998")
        moments.append(moment.astimezone(dt.UTC))
    # The last instant is inclusive, as Plausible's ["...T00:00:00", "...T23:59:59"].
    return Period(tz, moments[0], moments[1] + dt.timedelta(seconds=1), dates=False)


def time_labels(period: Period, dimension: str | None) -> list[str]:
    """Every bucket of the range, including those without data."""
    if dimension == "time:hour":
        hours = math.ceil((period.end - period.start).total_seconds() / 3600) + 1
        if hours > MAX_TIME_LABELS:
            raise QueryError("too many hours in the range for time labels; use a coarser time dimension")
        # Stepped in UTC: local wall-clock steps would invent the hour skipped in spring.
        moment = period.start.astimezone(period.tz).replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)
        labels: list[str] = []
        while moment < period.end:
            label = moment.astimezone(period.tz).strftime("%Y-%m-%d %H:00:00")
            if not labels or labels[-1] != label:
                labels.append(label)
            moment += dt.timedelta(hours=1)
        return labels
    days = (period.last_day - period.first_day).days + 1
    if days > MAX_TIME_LABELS:
        raise QueryError("too many days in the range for time labels")
    every = [period.first_day + dt.timedelta(days=i) for i in range(days)]
    if dimension == "time:week":
        every = [max(d - dt.timedelta(days=d.weekday()), period.first_day) for d in every]
    elif dimension == "time:month":
        every = [max(d.replace(day=1), period.first_day) for d in every]
    return [d.isoformat() for d in dict.fromkeys(every)]


# -- running ----------------------------------------------------------------------------------


def _strip_goal_filters(filters: tuple[FilterNode, ...]) -> tuple[FilterNode, ...]:
    return tuple(f for f in filters if not (isinstance(f, Filter) and f.dimension == GOAL_DIMENSION))


class _Plan:
    """The engine queries one answer needs, for one period or its comparison."""

    def __init__(
        self, store: Store, site: Site, goals: tuple[GoalRule, ...], metrics: tuple[str, ...],
        dims: tuple[str, ...], filters: tuple[FilterNode, ...], order_by: list[tuple[str, str]],
        limit: int, offset: int, total_rows: bool,
    ) -> None:
        self.store, self.site, self.goals = store, site, goals
        self.metrics, self.dims, self.filters = metrics, dims, filters
        self.order_by, self.limit, self.offset, self.total_rows = order_by, limit, offset, total_rows
        self.approximate: dict[tuple[int, int], bool] = {}
        derived = [m for m in metrics if m in DERIVED_METRICS]
        self.engine_metrics = tuple(m for m in metrics if m not in DERIVED_METRICS)
        if derived and "visitors" not in self.engine_metrics:
            self.engine_metrics += ("visitors",)
        # Ordering by a ratio to one total is ordering by visitors; by group conversion rate
        # (a ratio to each group's own total) the rows are sorted here, all of them.
        self.sort_here = any(k == "group_conversion_rate" for k, _ in order_by)
        self.engine_order = tuple(
            ("visitors" if k in ("percentage", "conversion_rate") else k, d) for k, d in order_by if not self.sort_here
        )

    def query(self, period: Period, metrics: tuple[str, ...], dims: tuple[str, ...], filters: tuple[FilterNode, ...],
              *, order: tuple[tuple[str, str], ...] = (), limit: int | None = None, offset: int = 0,
              total_rows: bool = False) -> list[dict[str, Any]]:
        start, end = to_us(period.start), to_us(period.end)
        if (start, end) not in self.approximate:
            events = self.store.count_events_between(self.site.id, start, end)
            self.approximate[start, end] = events > APPROXIMATE_ABOVE
        q = Query(
            site_id=self.site.id, timezone=self.site.timezone, start_us=start, end_us=end,
            approximate=self.approximate[start, end],
            metrics=metrics, dimensions=dims, filters=filters, order_by=order,  # type: ignore[arg-type]
            limit=limit, offset=offset, goals=self.goals, first_day=period.first_day.isoformat(),
            total_rows=total_rows,
        )
        return self.store.run_query(q).records()

    def run(self, period: Period, only: list[list[Any]] | None = None) -> tuple[list[dict[str, Any]], int]:
        """Rows as {"dimensions", "metrics", "values"}, and how many there are in all. With
        `only` (the main rows, when this is their comparison), every row, unpaged."""
        paged = not self.sort_here and only is None
        records = self.query(
            period, self.engine_metrics, self.dims, self.filters, order=self.engine_order if paged else (),
            limit=self.limit if paged else None, offset=self.offset if paged else 0,
            total_rows=self.total_rows and paged,
        )
        total = int(records[0]["total_rows"]) if records and paged and self.total_rows else len(records)
        derived = self.derived(period, records)
        rows = []
        for i, rec in enumerate(records):
            values = {m: derived[m][i] if m in derived else _metric_value(m, rec) for m in self.metrics}
            dims = [_dimension_value(d, rec[d]) for d in self.dims]
            rows.append({"dimensions": dims, "metrics": [values[m] for m in self.metrics], "values": values})
        if self.sort_here:
            for key, direction in reversed(self.order_by):
                index = self.dims.index(key) if key in self.dims else None

                def sort_key(r: dict[str, Any], index: int | None = index, key: str = key) -> Any:
                    v = r["dimensions"][index] if index is not None else r["values"][key]
                    return (v is None, _sortable(v))

                rows.sort(key=sort_key, reverse=direction == "desc")
            if only is None:
                total = len(rows)
                rows = rows[self.offset:self.offset + self.limit]
        return rows, total

    def derived(self, period: Period, records: list[dict[str, Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        if not records or not any(m in DERIVED_METRICS for m in self.metrics):
            return out
        visitors = [int(r["visitors"] or 0) for r in records]
        if "percentage" in self.metrics:
            total = self._total(period, self.filters)
            out["percentage"] = [_ratio(v, total, 1) for v in visitors]
        if "conversion_rate" in self.metrics or "group_conversion_rate" in self.metrics:
            no_goals = _strip_goal_filters(self.filters)
            if "conversion_rate" in self.metrics:
                total = self._total(period, no_goals)
                out["conversion_rate"] = [_ratio(v, total, 2) for v in visitors]
            if "group_conversion_rate" in self.metrics:
                group_dims = tuple(d for d in self.dims if d != GOAL_DIMENSION)
                if group_dims:
                    groups = self.query(period, ("visitors",), group_dims, no_goals)
                    by_key = {tuple(g[d] for d in group_dims): int(g["visitors"] or 0) for g in groups}
                    dens = [by_key.get(tuple(r[d] for d in group_dims), 0) for r in records]
                else:
                    dens = [self._total(period, no_goals)] * len(records)
                out["group_conversion_rate"] = [_ratio(v, d, 2) for v, d in zip(visitors, dens, strict=True)]
        return out

    def _total(self, period: Period, filters: tuple[FilterNode, ...]) -> int:
        (row,) = self.query(period, ("visitors",), (), filters)
        return int(row["visitors"] or 0)


def _ratio(part: int, whole: int, digits: int) -> float:
    return round(100.0 * part / whole, digits) if whole else 0.0


def _sortable(value: Any) -> Any:
    if isinstance(value, dict):  # revenue
        return value.get("value") or 0
    return value if value is not None else 0


def _metric_value(metric: str, rec: dict[str, Any]) -> Any:
    value = rec[metric]
    if metric in REVENUE_METRICS:
        return _money(value, rec.get("currency"))
    if metric in ENGAGEMENT_METRICS:
        return value  # None: no engagement data for the group
    if metric == "views_per_visit":
        return float(value or 0)
    return value if value is not None else 0


def _money(value: float | None, currency: str | None) -> dict[str, Any] | None:
    """Revenue as Plausible gives it: the value with its currency, in short and long text."""
    if value is None:
        return None
    amount = round(float(value), 2)
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}.get(currency or "", (currency or "") + " ")
    short = amount
    suffix = ""
    for size, letter in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(amount) >= size:
            short, suffix = round(amount / size, 1), letter
            break
    return {"value": amount, "currency": currency, "short": f"{symbol}{short:g}{suffix}",
            "long": f"{symbol}{amount:,.2f}"}


def _dimension_value(dimension: str, value: Any) -> Any:
    if dimension == "time:hour" and isinstance(value, str):
        return value.replace("T", " ")[:19]
    return value


def _change(metric: str, new: Any, old: Any) -> Any:
    if isinstance(new, dict) or isinstance(old, dict):
        new = (new or {}).get("value") or 0
        old = (old or {}).get("value") or 0
    if new is None or old is None:
        return None
    if metric in POINT_CHANGE:
        return round(new - old, 1)
    if old == 0:
        return 100 if new > 0 else 0
    return round((new - old) / old * 100)


def _compare(
    plan: _Plan, period: Period, other: Period, rows: list[dict[str, Any]], results: list[dict[str, Any]],
    dims: tuple[str, ...], metrics: tuple[str, ...],
) -> None:
    """Each row's figures in the other period: the same dimension values, and for a time
    dimension the bucket at the same position."""
    time_dim = _time_dimension(dims)
    old_rows, _ = plan.run(other, only=[r["dimensions"] for r in rows])
    position = {}
    if time_dim is not None:
        position = {label: i for i, label in enumerate(time_labels(period, time_dim))}
        old_labels = time_labels(other, time_dim)
    time_index = dims.index(time_dim) if time_dim else -1
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in old_rows:
        key = list(r["dimensions"])
        if time_dim is not None:
            key[time_index] = r["dimensions"][time_index]
        by_key[tuple(key)] = r
    zero = {m: _empty(m) for m in metrics}
    for row, result in zip(rows, results, strict=True):
        key = list(row["dimensions"])
        if time_dim is not None:
            i = position.get(row["dimensions"][time_index])
            key[time_index] = old_labels[i] if i is not None and i < len(old_labels) else None
        old = by_key.get(tuple(key))
        old_values = old["values"] if old else zero
        result["comparison"] = {
            "dimensions": old["dimensions"] if old else key,
            "metrics": [old_values[m] for m in metrics],
            "change": [_change(m, row["values"][m], old_values[m]) for m in metrics],
        }


def _empty(metric: str) -> Any:
    if metric in REVENUE_METRICS or metric in ENGAGEMENT_METRICS:
        return None
    return 0.0 if metric in ("views_per_visit", *DERIVED_METRICS) else 0
