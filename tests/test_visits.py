"""The visits rollup (store/sql.py, kept by DuckDBStore.commit_staged as visit parts that
fold_visits folds in): after any sequence of batches (late and shuffled events, explicit
sessions, session modes, merges, restarts, folds at any point) the visits queries read equal
the visits recomputed from the stored events, so does the visits table alone once folded,
and the query answers it gives equal the ones grouping events at query time."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footfall.event import SESSION_LATEST, SESSION_NEW, SESSION_NONE, Event, encode_event
from footfall.pipeline.sessions import Sessionizer
from footfall.pipeline.writer import load_batch
from footfall.query.model import Filter, GoalRule, Query, path_pattern
from footfall.store.duckdb import DuckDBStore
from footfall.store.sql import CURRENT_VISITS, VISIT_COLUMNS, compile_query, like_of, path_parts, rebuild_visits_sql

MINUTE = 60_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
GAP = 30 * MINUTE
T0 = 1_775_001_600_000_000  # 2026-04-01T00:00:00Z
PATHS = ["/", "/docs", "/pricing", "/blog/a"]
SOURCES = ["", "Google", "Hacker News"]
_domains = itertools.count()


def event(site: int, minute: float, *, visitor: int = 1, key: str | None = None, kind: str = "pageview",
          name: str = "pageview", path: str = "/", source: str = "", country: str = "DE",
          props: dict[str, str] | None = None) -> Event:
    ts = T0 + int(minute * MINUTE)
    return Event(
        event_id=str(uuid.uuid4()), site_id=site, ts=ts, received_at=ts, kind=kind, name=name,
        hostname="example.com", pathname=path, referrer_host=source.lower(), referrer_path="", source=source,
        utm_source="", utm_medium="", utm_campaign="", utm_term="", utm_content="", visitor_id=visitor,
        session_key=key, page_id=None, user_id=None, browser="Firefox", browser_version="1", os="Linux",
        os_version="", device="desktop", country=country, region="", city="", language="", screen_width=None,
        props=props or {}, revenue_amount=None, revenue_currency=None, source_api="test",
    )


def new_site(store: DuckDBStore, timezone: str = "UTC") -> int:
    n = next(_domains)
    return store.add_site(f"v{n}.example.com", timezone, f"FF-VISIT{n:06d}").id


def commit(store: DuckDBStore, sessionizer: Sessionizer, batch: list[Event]) -> None:
    load_batch(store, sessionizer, [encode_event(e) for e in batch], [])


def stored_visits(store: DuckDBStore, site: int, relation: str = CURRENT_VISITS) -> list[tuple[Any, ...]]:
    """The visits as queries see them (folded rows and pending parts), or of `relation`."""
    return sorted(store._cursor().execute(
        f"SELECT {', '.join(VISIT_COLUMNS)} FROM {relation} WHERE site_id = ?", [site]).fetchall())


def folded_visits(store: DuckDBStore, site: int) -> list[tuple[Any, ...]]:
    """Fold the pending parts; the visits table alone, which must then hold every visit."""
    store.fold_visits()
    assert store.visit_parts_pending() == 0
    assert store._cursor().execute("SELECT count(*) FROM visit_parts").fetchone() == (0,)
    return stored_visits(store, site, "visits")


def recomputed_visits(store: DuckDBStore, site: int) -> list[tuple[Any, ...]]:
    return sorted(store._cursor().execute(
        f"SELECT {', '.join(VISIT_COLUMNS)} FROM ({rebuild_visits_sql(f'site_id = {int(site)}')})").fetchall())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "x.duckdb")
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path_factory.mktemp("visits") / "x.duckdb")
    yield s
    s.close()


def by_visit(store: DuckDBStore, site: int) -> dict[str, tuple[Any, ...]]:
    """Each visit as (events, pageviews, entry page, exit page, source), keyed by entry page."""
    rows = store._cursor().execute(
        "SELECT entry_page, n, pv, exit_page, source, epoch_us(s_start), epoch_us(s_end)"
        f" FROM {CURRENT_VISITS} WHERE site_id = ?", [site]).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


# -- the writer keeps it ------------------------------------------------------------------


def test_a_late_event_for_an_old_day_updates_its_visit(store: DuckDBStore) -> None:
    """No invalidation to forget: the late pageview folds into the day-old visit's row."""
    site = new_site(store)
    sz = Sessionizer(store, GAP)
    commit(store, sz, [event(site, 10, path="/a", source="Google")])
    commit(store, sz, [event(site, 3 * 24 * 60, path="/today")])  # live traffic, days later
    assert by_visit(store, site)["/a"][:2] == (1, 1)  # a bounce
    commit(store, Sessionizer(store, GAP), [event(site, 25, path="/b"), event(site, 5, path="/first")])
    visits = by_visit(store, site)
    assert set(visits) == {"/first", "/today"}
    assert visits["/first"] == (3, 3, "/b", "", T0 + 5 * MINUTE, T0 + 25 * MINUTE)  # source: the first event's
    assert stored_visits(store, site) == recomputed_visits(store, site) == folded_visits(store, site)


@pytest.mark.parametrize("restart", [False, True], ids=["same-writer", "restarted-writer"])
def test_merged_visits_become_one_row(store: DuckDBStore, restart: bool) -> None:
    site = new_site(store)
    sz = Sessionizer(store, GAP)
    commit(store, sz, [event(site, 0, path="/in", source="Google"), event(site, 10, path="/x")])
    commit(store, sz, [event(site, 50, path="/y"), event(site, 55, path="/out"),
                       event(site, 56, kind="event", name="signup")])
    assert len(stored_visits(store, site)) == 2
    commit(store, Sessionizer(store, GAP) if restart else sz, [event(site, 30, path="/bridge")])
    assert by_visit(store, site) == {"/in": (6, 5, "/out", "Google", T0, T0 + 56 * MINUTE)}
    assert stored_visits(store, site) == recomputed_visits(store, site) == folded_visits(store, site)


def test_engagement_and_sessionless_events_are_in_no_visit(store: DuckDBStore) -> None:
    site = new_site(store)
    sz = Sessionizer(store, GAP)
    commit(store, sz, [
        event(site, 0, path="/a"),
        event(site, 1, kind="event", name="engagement", props={"engagement_ms": "5000"}),
        event(site, 2, kind="event", name="server", key=SESSION_NONE),
    ])
    assert by_visit(store, site) == {"/a": (1, 1, "/a", "", T0, T0)}
    commit(store, sz, [event(site, 3, kind="event", name="engagement")])  # an engagement-only batch
    assert by_visit(store, site) == {"/a": (1, 1, "/a", "", T0, T0)}


def test_explicit_sessions_and_session_modes(store: DuckDBStore) -> None:
    site = new_site(store)
    sz = Sessionizer(store, GAP)
    commit(store, sz, [event(site, 0, key="k", path="/k1"), event(site, 600, visitor=2, key="k", path="/k2")])
    commit(store, Sessionizer(store, GAP), [event(site, 1200, key="k", kind="event", name="paid")])
    commit(store, sz, [event(site, 2000, visitor=3, path="/v3"),
                       event(site, 2300, visitor=3, kind="event", name="late", key=SESSION_LATEST),
                       event(site, 2301, visitor=3, path="/new", key=SESSION_NEW)])
    visits = by_visit(store, site)
    assert visits["/k1"] == (3, 2, "/k2", "", T0, T0 + 1200 * MINUTE)
    assert visits["/v3"][:3] == (2, 1, "/v3")
    assert visits["/new"][:2] == (1, 1)
    assert stored_visits(store, site) == recomputed_visits(store, site) == folded_visits(store, site)


def test_a_data_directory_from_before_gets_its_visits_built(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    s = DuckDBStore(path)
    site = new_site(s)
    commit(s, Sessionizer(s, GAP), [event(site, m, path=f"/{m}") for m in (0, 10, 100, 2000, 2010)])
    want = stored_visits(s, site)
    s._cursor().execute("DROP TABLE visits")
    s.close()
    s = DuckDBStore(path)
    try:
        assert stored_visits(s, site) == want == recomputed_visits(s, site)
        assert len(want) == 3
    finally:
        s.close()


def test_removing_a_site_removes_its_visits(store: DuckDBStore) -> None:
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0)])
    store.remove_site(site)
    for table in ("visits", "visit_parts"):
        assert store._cursor().execute(f"SELECT count(*) FROM {table} WHERE site_id = ?", [site]).fetchone() == (0,)
    assert store.visit_parts_pending() == 0


def test_parts_are_folded_once_there_are_many(store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer folds parts when idle; under unbroken load, the batch that brings them past
    FOLD_PARTS_ROWS folds them, so queries never merge more than that."""
    monkeypatch.setattr("footfall.store.duckdb.FOLD_PARTS_ROWS", 5)
    site = new_site(store)
    sz = Sessionizer(store, GAP)
    commit(store, sz, [event(site, 0, visitor=v) for v in range(3)])
    assert store.visit_parts_pending() == 3
    commit(store, sz, [event(site, 1, visitor=v) for v in range(2, 5)])
    assert store.visit_parts_pending() == 0
    assert stored_visits(store, site, "visits") == recomputed_visits(store, site)
    assert len(recomputed_visits(store, site)) == 5


def test_parts_left_by_a_crash_are_folded_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    s = DuckDBStore(path)
    site = new_site(s)
    commit(s, Sessionizer(s, GAP), [event(site, m, path=f"/{m}") for m in (0, 10, 100)])
    s._con.close()  # no fold, no checkpoint: as after kill -9
    s = DuckDBStore(path)
    try:
        assert s.visit_parts_pending() == 2
        commit(s, Sessionizer(s, GAP), [event(site, 20, path="/20")])
        assert folded_visits(s, site) == recomputed_visits(s, site)
        assert len(recomputed_visits(s, site)) == 2
    finally:
        s.close()


# -- random histories ---------------------------------------------------------------------

Spec = tuple[int, int, str | None, int, int]  # (minute, visitor, session key, what, path/source)
KEYS = [None, None, None, None, None, "a", "b", SESSION_NONE, SESSION_LATEST, SESSION_NEW]
IMPLICIT_KEYS = [None, None, None, None, SESSION_NONE, SESSION_NEW]


def to_events(site: int, specs: list[Spec]) -> list[Event]:
    out = []
    for minute, visitor, key, what, k in specs:
        path, source = PATHS[k % len(PATHS)], SOURCES[k % len(SOURCES)]
        if what == 0:
            out.append(event(site, minute, visitor=visitor, key=key, path=path, source=source))
        elif what == 1:
            out.append(event(site, minute, visitor=visitor, key=key, kind="event", name="signup", path=path))
        else:
            out.append(event(site, minute, visitor=visitor, key=key, kind="event", name="engagement", path=path,
                             props={"engagement_ms": "1000", "scroll_depth": "50"}))
    return out


@st.composite
def histories(draw: st.DrawFn, keys: list[str | None], max_events: int) -> tuple[list[Spec], list[int], list[int]]:
    """Events (distinct times, so "first" is never a tie) over 3 days around midnights, an
    arrival order and batch cuts."""
    minutes = draw(st.lists(st.integers(0, 3 * 24 * 60), min_size=1, max_size=max_events, unique=True))
    specs = [(m, draw(st.integers(1, 3)), draw(st.sampled_from(keys)), draw(st.sampled_from([0, 0, 0, 1, 2])),
              draw(st.integers(0, 11))) for m in minutes]
    order = draw(st.permutations(range(len(specs))))
    cuts = draw(st.lists(st.integers(1, max(1, len(specs) - 1)), max_size=5))
    return specs, list(order), cuts


def load(store: DuckDBStore, events: list[Event], order: list[int], cuts: list[int]) -> None:
    arrived = [events[i] for i in order]
    sz = Sessionizer(store, GAP)
    for n, (lo, hi) in enumerate(itertools.pairwise([0, *sorted(set(cuts)), len(arrived)])):
        if n % 2:
            sz = Sessionizer(store, GAP)  # a restarted writer every other batch
        if n % 3 == 2:
            store.fold_visits()  # an idle moment between some batches
        if hi > lo:
            commit(store, sz, arrived[lo:hi])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(KEYS, 24))
def test_rollup_equals_the_visits_recomputed_from_events(
    shared_store: DuckDBStore, history: tuple[list[Spec], list[int], list[int]]
) -> None:
    specs, order, cuts = history
    site = new_site(shared_store)
    load(shared_store, to_events(site, specs), order, cuts)
    want = recomputed_visits(shared_store, site)
    assert stored_visits(shared_store, site) == want
    assert folded_visits(shared_store, site) == want


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(KEYS, 24))
def test_a_fold_in_slices_equals_the_visits_recomputed_from_events(
    shared_store: DuckDBStore, history: tuple[list[Spec], list[int], list[int]]
) -> None:
    """Folds of more than FOLD_SLICE_VISITS visits go a slice at a time (bounded memory):
    here 2, so every fold of these histories is sliced, merges of stored visits included."""
    specs, order, cuts = history
    site = new_site(shared_store)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("footfall.store.duckdb.FOLD_SLICE_VISITS", 2)
        load(shared_store, to_events(site, specs), order, cuts)
        want = recomputed_visits(shared_store, site)
        assert stored_visits(shared_store, site) == want
        assert folded_visits(shared_store, site) == want


QUERIES: list[dict[str, Any]] = [
    {"metrics": ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration")},
    {"metrics": ("visits", "bounce_rate", "visit_duration"), "dimensions": ("time:hour",)},
    {"metrics": ("visitors", "visits", "bounce_rate"), "dimensions": ("visit:entry_page",)},
    {"metrics": ("visits", "visit_duration"), "dimensions": ("visit:exit_page",)},
    {"metrics": ("visitors", "visits", "bounce_rate", "views_per_visit"), "dimensions": ("visit:source",)},
    {"metrics": ("visitors", "bounce_rate"), "dimensions": ("event:page",)},
    {"metrics": ("visits", "bounce_rate"), "filters": (Filter("is", "event:page", ("/docs",)),)},
    {"metrics": ("visits", "pageviews", "bounce_rate"), "filters": (Filter("is", "visit:source", ("Google",)),)},
    {"metrics": ("visitors", "visits"), "dimensions": ("event:goal",)},
    {"metrics": ("visits", "time_on_page", "scroll_depth"), "dimensions": ("visit:entry_page",)},
    {"metrics": ("pageviews", "visits"), "dimensions": ("event:page", "visit:source")},
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(IMPLICIT_KEYS, 12), timezone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]))
def test_queries_from_the_rollup_equal_queries_grouping_events(
    shared_store: DuckDBStore, history: tuple[list[Spec], list[int], list[int]], timezone: str
) -> None:
    """Implicit visits only, and at most 12 events (a visit shorter than the 6 hours the
    on-the-fly grouping looks beyond the range): then the two ways agree exactly, on day and
    two-day ranges cut at local midnight."""
    specs, order, cuts = history
    site = new_site(shared_store, timezone)
    load(shared_store, to_events(site, specs), order, cuts)
    cur = shared_store._cursor()
    goals = (GoalRule("Signup", "event", "signup"), GoalRule.from_goal("Docs", "page", "/docs*"))
    offset = {"UTC": 0, "America/New_York": 4 * HOUR, "Asia/Kolkata": -(5 * HOUR + 30 * MINUTE)}[timezone]
    for start, days in ((T0 + offset, 1), (T0 + DAY + offset, 1), (T0 + offset, 2)):
        for spec in QUERIES:
            q = Query(site_id=site, timezone=timezone, start_us=start, end_us=start + days * DAY, goals=goals, **spec)
            answers = []
            for rollup in (True, False):
                sql, params, _ = compile_query(q, rollup=rollup)
                answers.append(sorted(cur.execute(sql, params).fetchall(), key=repr))
            assert answers[0] == answers[1], (spec, start, days)


def test_the_query_reads_the_rollup(store: DuckDBStore) -> None:
    """Visit figures come from the visits table, not from grouping the events."""
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0, path="/a"), event(site, 5, path="/b")])
    q = Query(site_id=site, timezone="UTC", start_us=T0, end_us=T0 + DAY, metrics=("visits", "bounce_rate"))
    assert store.run_query(q).rows == [[1, 0]]
    store._cursor().execute("UPDATE visit_parts SET pv = 1, n = 1 WHERE site_id = ?", [site])
    assert store.run_query(q).rows == [[1, 100]]  # the pending part
    store.fold_visits()
    store._cursor().execute("UPDATE visits SET pv = 2, n = 2 WHERE site_id = ?", [site])
    assert store.run_query(q).rows == [[1, 0]]  # the folded row


# -- goals by path: equality or LIKE instead of a regular expression ------------------------

_PATH_CHARS = st.sampled_from(list("ab/._%\\*?[]()+$^|x"))


@settings(max_examples=300, deadline=None)
@given(value=st.lists(_PATH_CHARS, max_size=8).map("".join), paths=st.lists(
    st.lists(_PATH_CHARS.filter(lambda c: c != "*"), max_size=8).map("".join), min_size=1, max_size=5))
def test_goal_paths_as_like_match_what_the_regular_expression_does(value: str, paths: list[str]) -> None:
    con = duckdb.connect()
    pattern = path_pattern(value)
    parts = path_parts(pattern)
    assert parts is not None
    for path in [*paths, value.replace("*", "")]:
        if len(parts) == 1:
            got = path == parts[0]
        else:
            row = con.execute("SELECT ? LIKE ? ESCAPE '\\'", [path, like_of(parts)]).fetchone()
            got = bool(row and row[0])
        assert got == bool(re.search(pattern, path)), (value, path)
    assert path_parts("^/a|b$") is None and path_parts("/docs") is None
