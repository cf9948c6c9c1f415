"""The query benchmark's synthetic data (benchmarks/gen_events.py) has the shape it claims:
a data directory the server's own store opens, sessions that agree with the 30-minute rule,
the issue's share of single-page visits, and answers from the v2 query function."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gen_events
from footfall.query import v2
from footfall.store.duckdb import DuckDBStore

N = 40_000


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    path = tmp_path_factory.mktemp("bench") / "data"
    info = gen_events.generate(N, path, seed=7)
    return path, info


def test_counts_and_shares(data: tuple[Path, dict[str, object]]) -> None:
    _, info = data
    events = int(info["events"])  # type: ignore[call-overload]
    assert 0.95 * N <= events <= 1.03 * N
    assert 0.08 <= int(info["custom_events"]) / events <= 0.12  # type: ignore[call-overload]
    assert 0.27 <= float(info["single_page_visit_share"]) <= 0.33  # type: ignore[arg-type]
    visitors = int(info["visitors"])  # type: ignore[call-overload]
    assert N / 10 <= visitors <= N / 6


def test_sessions_follow_the_30_minute_rule(data: tuple[Path, dict[str, object]]) -> None:
    path, _ = data
    con = duckdb.connect(str(path / gen_events.DB_NAME), read_only=True)
    try:
        # Within a visit: time-ordered hits less than 30 minutes apart, one visitor.
        (inside,) = con.execute(
            "SELECT max(gap), max(visitors) FROM (SELECT session_id, "
            "max(ts) - min(ts) AS span, count(DISTINCT visitor_id) AS visitors, "
            "max(ts - prev) AS gap FROM (SELECT *, lag(ts) OVER (PARTITION BY session_id ORDER BY ts) AS prev "
            "FROM events) GROUP BY session_id)"
        ).fetchall()
        assert inside[0] < dt.timedelta(minutes=30)
        assert inside[1] == 1
        # Between visits of one visitor: more than 30 minutes from one's last hit to the next's first.
        between = con.execute(
            "SELECT min(s_start - prev_end), count(*) FROM (SELECT s_start, "
            "lag(s_end) OVER (PARTITION BY visitor_id ORDER BY s_start) AS prev_end FROM "
            "(SELECT visitor_id, session_id, min(ts) AS s_start, max(ts) AS s_end FROM events GROUP BY ALL)) "
            "WHERE prev_end IS NOT NULL"
        ).fetchone()
        assert between is not None and between[1] > 1000  # visitors with several visits, all apart
        assert between[0] > dt.timedelta(minutes=30)
        # Only a visit's first hit carries where it came from.
        (later,) = con.execute(
            "SELECT count(*) FROM (SELECT *, row_number() OVER (PARTITION BY session_id ORDER BY ts) AS k "
            "FROM events) WHERE k > 1 AND (source <> '' OR utm_source <> '')"
        ).fetchone() or (None,)
        assert later == 0
    finally:
        con.close()


def test_reused_and_answered_by_v2(data: tuple[Path, dict[str, object]]) -> None:
    path, info = data
    assert gen_events.generate(N, path, seed=7) == info  # same arguments: the directory is reused
    store = DuckDBStore(path / gen_events.DB_NAME)
    try:
        site = store.list_sites()[0]
        assert {g.name for g in site.settings.goals} == {g[0] for g in gen_events.GOALS}
        now = dt.datetime.fromisoformat(str(info["generated_at"]).replace("Z", "+00:00"))
        answer = v2.execute(store, site, {"site_id": site.domain, "metrics": ["visitors", "pageviews", "events"],
                                          "date_range": "all"}, now=now)
        _, pageviews, events = answer["results"][0]["metrics"]
        assert pageviews == info["pageviews"]
        assert events == info["events"]
        top = v2.execute(store, site, {"site_id": site.domain, "metrics": ["visitors"], "date_range": "all",
                                       "dimensions": ["event:page"], "pagination": {"limit": 1}}, now=now)
        assert top["results"][0]["dimensions"] == ["/"]
    finally:
        store.close()
