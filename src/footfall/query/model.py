"""Queries as data. Engines compile a `Query` to their own SQL (see `store/`).

A Query's date range is already resolved to UTC microsecond bounds; the site's time zone is
kept for time buckets, which are cut in local time (DESIGN: time is UTC at rest, a site's
time zone applies at query time). The Stats API v2 request (query/v2.py) and the CLI build
Queries; nothing here knows SQL.

Visits: a visit is the events sharing a `session_id` (events with none are in no visit).
Visit dimensions are properties of the visit: where it came from and its entry page are its
first event's, its exit page is its last pageview's. Visit metrics (bounce rate, duration,
views per visit) count each visit that has an event matching the filters once per group it
touched, with the figures of the whole visit within the date range.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

# Metrics the engines compute. The Stats API's derived metrics (percentage, conversion rates)
# are ratios of these, worked out in query/v2.py.
# `events` counts pageviews and custom events, as Plausible's does; `custom_events` (not in
# the Stats API) only the latter.
EVENT_METRICS: frozenset[str] = frozenset({"visitors", "pageviews", "events", "visits", "custom_events"})
SESSION_METRICS: frozenset[str] = frozenset({"bounce_rate", "visit_duration", "views_per_visit"})
REVENUE_METRICS: frozenset[str] = frozenset({"total_revenue", "average_revenue"})
# From Plausible's engagement events (ingest/plausible_api.py keeps them as custom events
# named ENGAGEMENT_EVENT with these properties); they count for nothing else.
ENGAGEMENT_METRICS: frozenset[str] = frozenset({"time_on_page", "scroll_depth"})
METRICS: frozenset[str] = EVENT_METRICS | SESSION_METRICS | REVENUE_METRICS | ENGAGEMENT_METRICS
ENGAGEMENT_EVENT = "engagement"  # = ingest.plausible_api.ENGAGEMENT (a test checks they agree)
ENGAGEMENT_MS_PROP = "engagement_ms"
SCROLL_DEPTH_PROP = "scroll_depth"

TIME_DIMENSIONS: frozenset[str] = frozenset({"time:hour", "time:day", "time:week", "time:month"})
# Event dimensions: a column of each event.
EVENT_DIMENSIONS: dict[str, str] = {
    "event:page": "pathname",
    "event:hostname": "hostname",
    "event:name": "name",
    "event:kind": "kind",
}
PROPS_PREFIX = "event:props:"
GOAL_DIMENSION = "event:goal"
# Visit dimensions that are the same on every event of a visit (they come from the visitor's
# agent and address, which the visitor hash includes): read on the event itself.
VISIT_ROW_DIMENSIONS: dict[str, str] = {
    "visit:device": "device",
    "visit:browser": "browser",
    "visit:browser_version": "browser_version",
    "visit:os": "os",
    "visit:os_version": "os_version",
    "visit:country": "country",
    "visit:region": "region",
    "visit:city": "city",
}
# Visit dimensions of the visit's first event (its entry page: its first pageview).
VISIT_ENTRY_DIMENSIONS: dict[str, str] = {
    "visit:source": "source",
    "visit:channel": "channel",
    "visit:referrer": "referrer_host",
    "visit:utm_source": "utm_source",
    "visit:utm_medium": "utm_medium",
    "visit:utm_campaign": "utm_campaign",
    "visit:utm_term": "utm_term",
    "visit:utm_content": "utm_content",
    "visit:entry_page": "pathname",
    "visit:entry_page_hostname": "hostname",
}
# Visit dimensions of its last pageview.
VISIT_EXIT_DIMENSIONS: dict[str, str] = {
    "visit:exit_page": "pathname",
    "visit:exit_page_hostname": "hostname",
}
PAGEVIEW_DIMENSIONS: frozenset[str] = frozenset({"visit:entry_page", "visit:entry_page_hostname"})
# Values shown for a visit with no source, and for an event without the property asked for.
DIRECT_SOURCE = "Direct / None"
NO_VALUE = "(none)"

PROPERTY_NAME = re.compile(r"^[^\x00-\x1f]{1,300}$")
FIXED_DIMENSIONS: frozenset[str] = (
    TIME_DIMENSIONS
    | frozenset(EVENT_DIMENSIONS)
    | frozenset(VISIT_ROW_DIMENSIONS)
    | frozenset(VISIT_ENTRY_DIMENSIONS)
    | frozenset(VISIT_EXIT_DIMENSIONS)
    | {GOAL_DIMENSION}
)

FilterOp = Literal["is", "is_not", "contains", "contains_not", "matches", "matches_not"]
# matches: the value contains a match of one of the regular expressions (RE2 syntax), as
# Plausible's does; anchor it with ^...$ to match the whole value.
FILTER_OPS: frozenset[str] = frozenset({"is", "is_not", "contains", "contains_not", "matches", "matches_not"})
NEGATED_OPS: frozenset[str] = frozenset({"is_not", "contains_not", "matches_not"})


class QueryError(ValueError):
    """A query that cannot be answered; the message names what is wrong."""


def is_dimension(name: str) -> bool:
    if name in FIXED_DIMENSIONS:
        return True
    return name.startswith(PROPS_PREFIX) and bool(PROPERTY_NAME.match(name[len(PROPS_PREFIX):]))


def check_dimension(name: str) -> None:
    if not is_dimension(name):
        if name.startswith(PROPS_PREFIX):
            raise QueryError(f"invalid property dimension {name!r}: give a property name after {PROPS_PREFIX!r}")
        raise QueryError(
            f"unknown dimension {name!r}; known: {', '.join(sorted(FIXED_DIMENSIONS))}, {PROPS_PREFIX}<name>"
        )


def check_pattern(pattern: str) -> None:
    try:  # Python's syntax stands in for the engine's (RE2): a clear error, not a 500
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise QueryError(f"not a regular expression: {pattern!r} ({exc})") from None


class Filter(msgspec.Struct, array_like=True, frozen=True):
    """One condition: the dimension's value against `values` (any of them, for is/contains/
    matches; none of them, for the negations)."""

    op: FilterOp
    dimension: str
    values: tuple[str, ...]
    case_sensitive: bool = True

    def __post_init__(self) -> None:
        if self.op not in FILTER_OPS:
            raise QueryError(f"unknown filter operator {self.op!r}; known: {', '.join(sorted(FILTER_OPS))}")
        check_dimension(self.dimension)
        if self.dimension in TIME_DIMENSIONS:
            raise QueryError(f"cannot filter on {self.dimension!r}: use the date range")
        if self.op in ("matches", "matches_not"):
            for pattern in self.values:
                check_pattern(pattern)


class Logic(msgspec.Struct, frozen=True):
    """`and`/`or` of its filters, or `not` of its one filter."""

    op: Literal["and", "or", "not"]
    children: tuple[Filter | Logic, ...]

    def __post_init__(self) -> None:
        if not self.children:
            raise QueryError(f"an {self.op!r} filter needs at least one filter inside")
        if self.op == "not" and len(self.children) != 1:
            raise QueryError("a 'not' filter takes exactly one filter")


FilterNode = Filter | Logic


def leaves(nodes: tuple[FilterNode, ...] | list[FilterNode]) -> list[Filter]:
    out: list[Filter] = []
    for node in nodes:
        out.extend([node] if isinstance(node, Filter) else leaves(node.children))
    return out


class GoalRule(msgspec.Struct, frozen=True):
    """A site's goal as the engine matches it: a custom event by name, or a pageview whose
    path matches `pattern` (a regular expression over the whole path)."""

    name: str
    kind: Literal["event", "pageview"]
    value: str  # the event name, or the path pattern

    @staticmethod
    def from_goal(name: str, type_: str, value: str) -> GoalRule:
        if type_ == "event":
            return GoalRule(name, "event", value)
        return GoalRule(name, "pageview", path_pattern(value))


def path_pattern(value: str) -> str:
    """A page path with `*` standing for any run of characters, as a regular expression over
    the whole path (anchored, so it means the same to a full or a partial match)."""
    return "^" + ".*".join(re.escape(part) for part in value.split("*")) + "$"


class Query(msgspec.Struct, kw_only=True, frozen=True):
    site_id: int
    timezone: str
    start_us: int  # inclusive, UTC
    end_us: int  # exclusive, UTC
    metrics: tuple[str, ...]
    dimensions: tuple[str, ...] = ()
    filters: tuple[FilterNode, ...] = ()  # all must hold
    order_by: tuple[tuple[str, Literal["asc", "desc"]], ...] = ()
    limit: int | None = None
    offset: int = 0
    goals: tuple[GoalRule, ...] = ()  # the site's goals, for event:goal
    # Week and month buckets begin no earlier than this local date (ISO), as Plausible's do.
    first_day: str | None = None
    total_rows: bool = False  # also count the groups (a `total_rows` column, before the limit)
    # Distinct counts (visitors, visits) may be estimates within about 2%, as Plausible's
    # are: for ranges of millions of events, where exact ones cost most of the time.
    approximate: bool = False

    def __post_init__(self) -> None:
        if not self.metrics:
            raise QueryError("at least one metric is required")
        for m in self.metrics:
            if m not in METRICS:
                raise QueryError(f"unknown metric {m!r}; known: {', '.join(sorted(METRICS))}")
        if len(set(self.metrics)) != len(self.metrics):
            raise QueryError("a metric is asked for twice")
        for d in self.dimensions:
            check_dimension(d)
        if len(set(self.dimensions)) != len(self.dimensions):
            raise QueryError("a dimension is asked for twice")
        if sum(d in TIME_DIMENSIONS for d in self.dimensions) > 1:
            raise QueryError("at most one time dimension")
        goal_names = {g.name for g in self.goals}
        for f in leaves(self.filters):
            if f.dimension == GOAL_DIMENSION:
                for name in f.values:
                    if name not in goal_names and f.op in ("is", "is_not"):
                        raise QueryError(f"the goal {name!r} is not configured for this site")
        for key, _ in self.order_by:
            if key not in self.metrics and key not in self.dimensions:
                raise QueryError(f"order_by {key!r} is neither a requested metric nor dimension")
        if self.end_us <= self.start_us:
            raise QueryError("date range is empty: the end must be after the start")
        if (self.limit is not None and self.limit < 0) or self.offset < 0:
            raise QueryError("limit and offset are not negative")


class QueryResult(msgspec.Struct):
    columns: list[str]
    rows: list[list[Any]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]
