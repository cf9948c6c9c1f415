"""The query model's pure parts: time-zone offsets, goal patterns, date ranges."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from footfall.query.compile import to_us
from footfall.query.model import Filter, GoalRule, Logic, QueryError
from footfall.query.v2 import parse_range, time_labels
from footfall.store.sql import utc_offsets

HOUR = 3600 * 1_000_000


def utc(*args: int) -> int:
    return to_us(dt.datetime(*args, tzinfo=dt.UTC))


def test_offsets_change_where_the_clocks_do() -> None:
    start, end = utc(2025, 10, 1), utc(2025, 12, 1)
    assert utc_offsets("America/New_York", start, end) == [(start, -4 * HOUR), (utc(2025, 11, 2, 6), -5 * HOUR)]
    assert utc_offsets("Asia/Kolkata", start, end) == [(start, 5 * HOUR + HOUR // 2)]
    # Lord Howe Island moves its clocks by half an hour.
    shifts = utc_offsets("Australia/Lord_Howe", utc(2025, 1, 1), utc(2026, 1, 1))
    assert [o for _, o in shifts] == [11 * HOUR, 10 * HOUR + HOUR // 2, 11 * HOUR]
    assert utc_offsets("UTC", start, end) == [(start, 0)]


def test_goal_patterns_match_whole_paths() -> None:
    rule = GoalRule.from_goal("Docs", "pageview", "/docs/*.html")
    assert re.search(rule.value, "/docs/a/b.html") and not re.search(rule.value, "/x/docs/a.html")
    assert not re.search(rule.value, "/docs/a.htmlx")
    assert GoalRule.from_goal("Signup", "event", "sign*up") == GoalRule("Signup", "event", "sign*up")


def test_filters_check_themselves() -> None:
    with pytest.raises(QueryError, match="unknown filter operator"):
        Filter("equals", "event:page", ("/",))  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="cannot filter on 'time:day'"):
        Filter("is", "time:day", ("2025-01-01",))
    with pytest.raises(QueryError, match="exactly one"):
        Logic("not", (Filter("is", "event:page", ("/",)), Filter("is", "event:page", ("/a",))))
    with pytest.raises(QueryError, match="property name"):
        Filter("is", "event:props:", ("x",))


def test_named_ranges_in_the_sites_time_zone() -> None:
    tz = ZoneInfo("America/New_York")
    now = dt.datetime(2025, 3, 15, 2, 0, tzinfo=dt.UTC).astimezone(tz)  # still the 14th in New York
    seven = parse_range(tz, "7d", now, None, "date_range")
    assert (seven.first_day, seven.last_day) == (dt.date(2025, 3, 7), dt.date(2025, 3, 13))
    month = parse_range(tz, "month", now, None, "date_range")
    assert (month.first_day, month.last_day) == (dt.date(2025, 3, 1), dt.date(2025, 3, 31))
    half = parse_range(tz, "6mo", now, None, "date_range")
    assert (half.first_day, half.last_day) == (dt.date(2024, 10, 1), dt.date(2025, 3, 31))
    day = parse_range(tz, "day", now, None, "date_range")
    assert day.echo() == ["2025-03-14T00:00:00-04:00", "2025-03-14T23:59:59-04:00"]
    assert len(time_labels(day, "time:hour")) == 24
    spring = parse_range(tz, ["2025-03-09", "2025-03-09"], now, None, "date_range")
    assert len(time_labels(spring, "time:hour")) == 23  # 02:00 does not happen
    leap = parse_range(tz, ["2024-02-29", "2024-02-29"], now, None, "date_range").shifted("year_over_year", None)
    assert (leap.first_day, leap.last_day) == (dt.date(2023, 2, 28), dt.date(2023, 2, 28))
    before = parse_range(tz, ["2025-03-01", "2025-03-10"], now, None, "date_range").shifted("previous_period", None)
    assert (before.first_day, before.last_day) == (dt.date(2025, 2, 19), dt.date(2025, 2, 28))
