"""Queries as data. Engines compile a `Query` to their own SQL (see `store/`).

A Query's date range is already resolved to UTC microsecond bounds; the site's time zone is
kept for time buckets, which are cut in local time (DESIGN: time is UTC at rest, a site's
time zone applies at query time).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

# Each metric is defined once: its name and whether it needs per-visit aggregation.
EVENT_METRICS: frozenset[str] = frozenset({"visitors", "pageviews", "events", "visits"})
SESSION_METRICS: frozenset[str] = frozenset({"bounce_rate", "visit_duration", "views_per_visit"})
METRICS: frozenset[str] = EVENT_METRICS | SESSION_METRICS

TIME_DIMENSIONS: frozenset[str] = frozenset({"time:hour", "time:day", "time:week", "time:month"})
# Event dimensions and the events-table column each reads.
EVENT_DIMENSIONS: dict[str, str] = {
    "event:page": "pathname",
    "event:hostname": "hostname",
    "event:name": "name",
    "event:kind": "kind",
    "visit:source": "source",
    "visit:referrer": "referrer_host",
    "visit:utm_source": "utm_source",
    "visit:utm_medium": "utm_medium",
    "visit:utm_campaign": "utm_campaign",
    "visit:utm_term": "utm_term",
    "visit:utm_content": "utm_content",
    "visit:device": "device",
    "visit:browser": "browser",
    "visit:os": "os",
    "visit:country": "country",
}
DIMENSIONS: frozenset[str] = TIME_DIMENSIONS | frozenset(EVENT_DIMENSIONS)

FilterOp = Literal["is", "is_not", "contains", "contains_not", "matches", "matches_not"]
# matches: the value matches one of the regular expressions as a whole (RE2 syntax).
FILTER_OPS: frozenset[str] = frozenset({"is", "is_not", "contains", "contains_not", "matches", "matches_not"})


class QueryError(ValueError):
    """A query that cannot be answered; the message names what is wrong."""


class Filter(msgspec.Struct, array_like=True, frozen=True):
    op: FilterOp
    dimension: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.op in ("matches", "matches_not"):
            for pattern in self.values:
                try:  # Python's syntax stands in for the engine's (RE2): a clear error, not a 500
                    re.compile(pattern)
                except re.error as exc:
                    raise QueryError(f"not a regular expression: {pattern!r} ({exc})") from None


class Query(msgspec.Struct, kw_only=True, frozen=True):
    site_id: int
    timezone: str
    start_us: int  # inclusive, UTC
    end_us: int  # exclusive, UTC
    metrics: tuple[str, ...]
    dimensions: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    order_by: tuple[tuple[str, Literal["asc", "desc"]], ...] = ()
    limit: int | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if not self.metrics:
            raise QueryError("at least one metric is required")
        for m in self.metrics:
            if m not in METRICS:
                raise QueryError(f"unknown metric {m!r}; known: {', '.join(sorted(METRICS))}")
        for d in self.dimensions:
            if d not in DIMENSIONS:
                raise QueryError(
                    f"unknown dimension {d!r}; known: {', '.join(sorted(DIMENSIONS))}"
                )
        for f in self.filters:
            if f.dimension not in EVENT_DIMENSIONS:
                raise QueryError(f"cannot filter on {f.dimension!r}")
        for key, _ in self.order_by:
            if key not in self.metrics and key not in self.dimensions:
                raise QueryError(f"order_by {key!r} is neither a requested metric nor dimension")
        if self.end_us <= self.start_us:
            raise QueryError("date range is empty: the end must be after the start")


class QueryResult(msgspec.Struct):
    columns: list[str]
    rows: list[list[Any]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]
