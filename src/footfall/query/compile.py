"""Build a `Query` from user-facing terms: a site, calendar dates in its time zone, names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from footfall.meta import Site
from footfall.query.model import FilterNode, GoalRule, Query, QueryError


def local_day_bounds_us(timezone: str, first: dt.date, last: dt.date) -> tuple[int, int]:
    """UTC microsecond bounds of local days first..last inclusive in `timezone`."""
    if last < first:
        raise QueryError("date range is empty: 'to' is before 'from'")
    tz = ZoneInfo(timezone)
    start = dt.datetime.combine(first, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return to_us(start), to_us(end)


def to_us(moment: dt.datetime) -> int:
    delta = moment.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def build_query(
    site: Site,
    first: dt.date,
    last: dt.date,
    metrics: list[str],
    dimensions: list[str] | None = None,
    filters: Sequence[FilterNode] | None = None,
    order_by: list[tuple[str, str]] | None = None,
    limit: int | None = None,
) -> Query:
    start, end = local_day_bounds_us(site.timezone, first, last)
    order = tuple((k, "desc" if d == "desc" else "asc") for k, d in (order_by or []))
    return Query(
        site_id=site.id,
        timezone=site.timezone,
        start_us=start,
        end_us=end,
        metrics=tuple(metrics),
        dimensions=tuple(dimensions or ()),
        filters=tuple(filters or ()),
        order_by=order,  # type: ignore[arg-type]
        limit=limit,
        goals=tuple(GoalRule.from_goal(g.name, g.type, g.value) for g in site.settings.goals),
        first_day=first.isoformat(),
    )


def day_series(first: dt.date, last: dt.date) -> list[str]:
    """Every local day of the range, so a per-day table shows the days without traffic."""
    days = (last - first).days + 1
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]
