"""Sessionizer against a real DuckDB store: the gap rule, explicit sessions, merges, order independence.

Every check reads the partition back from the store (after the writer's merges ran), because
that is what the query layer counts visits from.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footfall.event import Event, encode_event
from footfall.pipeline.sessions import EXPLICIT_BIT, Sessionizer
from footfall.pipeline.writer import load_batch
from footfall.store.duckdb import DuckDBStore

MINUTE = 60_000_000
GAP = 30 * MINUTE
T0 = 1_775_001_600_000_000  # 2026-04-01T00:00:00Z in microseconds

Partition = frozenset[frozenset[str]]
_domains = itertools.count()


def event(site_id: int, minute: float, visitor: int = 1, session_key: str | None = None) -> Event:
    ts = T0 + int(minute * MINUTE)
    return Event(
        event_id=str(uuid.uuid4()), site_id=site_id, ts=ts, received_at=ts, kind="pageview",
        name="pageview", hostname="example.com", pathname=f"/m{minute}", referrer_host="",
        referrer_path="", source="", utm_source="", utm_medium="", utm_campaign="", utm_term="",
        utm_content="", visitor_id=visitor, session_key=session_key, page_id=None,
        user_id=None, browser="", browser_version="", os="", os_version="", device="", country="",
        region="", city="", language="", screen_width=None, props={}, revenue_amount=None,
        revenue_currency=None, source_api="test",
    )


def new_site(store: DuckDBStore) -> int:
    """A fresh site per scenario, so scenarios sharing one store never see each other's visits."""
    n = next(_domains)
    return store.add_site(f"s{n}.example.com", "UTC", f"FF-TEST{n:06d}").id


def commit(store: DuckDBStore, sessionizer: Sessionizer, batch: list[Event]) -> None:
    """What Writer.drain_once does with a batch: stage, assign sessions, one atomic commit."""
    assert load_batch(store, sessionizer, [encode_event(e) for e in batch], []).records == len(batch)


def stored_partition(store: DuckDBStore, site_id: int) -> Partition:
    rows = store._cursor().execute(
        "SELECT event_id::VARCHAR, session_id FROM events WHERE site_id = ?", [site_id]
    ).fetchall()
    groups: dict[int, set[str]] = {}
    for event_id, session_id in rows:
        groups.setdefault(int(session_id), set()).add(event_id)
    return frozenset(frozenset(g) for g in groups.values())


def expected_partition(events: list[Event]) -> Partition:
    """The rule, written independently: explicit key groups; else per visitor, gaps < 30 min."""
    groups: list[set[str]] = []
    explicit: dict[str, set[str]] = {}
    by_visitor: dict[int, list[Event]] = {}
    for e in events:
        if e.session_key is not None:
            explicit.setdefault(e.session_key, set()).add(e.event_id)
        else:
            by_visitor.setdefault(e.visitor_id, []).append(e)
    groups.extend(explicit.values())
    for evs in by_visitor.values():
        evs.sort(key=lambda e: e.ts)
        current = {evs[0].event_id}
        for prev, e in itertools.pairwise(evs):
            if e.ts - prev.ts >= GAP:
                groups.append(current)
                current = set()
            current.add(e.event_id)
        groups.append(current)
    return frozenset(frozenset(g) for g in groups)


def partition_by_path(store: DuckDBStore, site_id: int) -> set[frozenset[str]]:
    rows = store._cursor().execute(
        "SELECT pathname, session_id FROM events WHERE site_id = ?", [site_id]
    ).fetchall()
    groups: dict[int, set[str]] = {}
    for path, session_id in rows:
        groups.setdefault(int(session_id), set()).add(path)
    return {frozenset(g) for g in groups.values()}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "x.duckdb")
    yield s
    s.close()


# -- the gap rule -------------------------------------------------------------------------


def test_29_minutes_is_the_same_visit_31_is_a_new_one(store: DuckDBStore) -> None:
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0), event(site, 29), event(site, 60)])
    assert partition_by_path(store, site) == {frozenset({"/m0", "/m29"}), frozenset({"/m60"})}


def test_exactly_30_minutes_starts_a_new_visit(store: DuckDBStore) -> None:
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0), event(site, 30)])
    assert len(partition_by_path(store, site)) == 2


def test_visitors_never_share_an_implicit_visit(store: DuckDBStore) -> None:
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0, visitor=1), event(site, 1, visitor=2)])
    assert len(partition_by_path(store, site)) == 2


def test_gap_rule_holds_across_batches_and_a_restart(store: DuckDBStore) -> None:
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0)])
    # A fresh sessionizer (a restarted writer) must find the stored visit in the store.
    commit(store, Sessionizer(store, GAP), [event(site, 29)])
    commit(store, Sessionizer(store, GAP), [event(site, 60)])
    assert partition_by_path(store, site) == {frozenset({"/m0", "/m29"}), frozenset({"/m60"})}


# -- explicit sessions --------------------------------------------------------------------


def test_explicit_session_id_groups_across_long_gaps_and_visitors(store: DuckDBStore) -> None:
    site = new_site(store)
    sz = Sessionizer(store, GAP)
    commit(store, sz, [event(site, 0, session_key="s-1"), event(site, 300, session_key="s-1")])
    # A restart and a different visitor hash (e.g. new day) keep the caller's grouping.
    commit(store, Sessionizer(store, GAP), [event(site, 900, visitor=7, session_key="s-1")])
    commit(store, sz, [event(site, 1, session_key="s-2")])
    assert partition_by_path(store, site) == {frozenset({"/m0", "/m300", "/m900"}), frozenset({"/m1"})}
    ids = {r[0] for r in store._cursor().execute(
        "SELECT session_id FROM events WHERE site_id = ?", [site]).fetchall()}
    assert all(int(i) & EXPLICIT_BIT for i in ids)


def test_explicit_events_do_not_bridge_implicit_visits(store: DuckDBStore) -> None:
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [
        event(site, 0), event(site, 20, session_key="k"), event(site, 40),
    ])
    assert partition_by_path(store, site) == {frozenset({"/m0"}), frozenset({"/m20"}), frozenset({"/m40"})}


# -- merges -------------------------------------------------------------------------------


def test_late_event_bridging_two_visits_in_one_batch(store: DuckDBStore) -> None:
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0), event(site, 50), event(site, 25)])
    assert partition_by_path(store, site) == {frozenset({"/m0", "/m25", "/m50"})}


@pytest.mark.parametrize("restart", [False, True], ids=["same-writer", "restarted-writer"])
def test_late_event_merges_two_committed_visits(store: DuckDBStore, restart: bool) -> None:
    site = new_site(store)
    sz = Sessionizer(store, GAP)
    commit(store, sz, [event(site, 0), event(site, 10)])
    commit(store, sz, [event(site, 50), event(site, 55)])
    assert len(partition_by_path(store, site)) == 2
    if restart:
        sz = Sessionizer(store, GAP)
    commit(store, sz, [event(site, 30)])  # within 30 min of 10 and of 50
    assert partition_by_path(store, site) == {frozenset({"/m0", "/m10", "/m30", "/m50", "/m55"})}


def test_chain_of_merges_ends_in_one_visit(store: DuckDBStore) -> None:
    """Four committed visits, then one batch of late events bridging all of them."""
    site = new_site(store)
    for start in (0, 100, 200, 300):
        commit(store, Sessionizer(store, GAP), [event(site, start)])
    assert len(partition_by_path(store, site)) == 4
    commit(store, Sessionizer(store, GAP), [event(site, m) for m in (275, 25, 225, 50, 75, 125, 250, 150, 175)])
    assert len(partition_by_path(store, site)) == 1


def test_cached_writer_finds_visits_committed_before_it_started(store: DuckDBStore) -> None:
    """A writer that already knows a visitor (from a later part of the day) must still find
    the visits of that visitor stored by an earlier run when a late event arrives."""
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0)])  # earlier process
    sz = Sessionizer(store, GAP)  # the restarted writer
    commit(store, sz, [event(site, 300)])  # caches this visitor, near minute 300 only
    commit(store, sz, [event(site, 10)])  # late event: belongs with minute 0
    assert partition_by_path(store, site) == {frozenset({"/m0", "/m10"}), frozenset({"/m300"})}


def test_cached_writer_bridges_visits_it_did_not_load(store: DuckDBStore) -> None:
    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0), event(site, 50)])
    sz = Sessionizer(store, GAP)
    commit(store, sz, [event(site, 400)])
    commit(store, sz, [event(site, 25)])
    assert partition_by_path(store, site) == {frozenset({"/m0", "/m25", "/m50"}), frozenset({"/m400"})}


# -- order independence -------------------------------------------------------------------


def run(store: DuckDBStore, events: list[Event], cuts: list[int], fresh: list[bool]) -> Partition:
    """Feed `events` (in this order) to a new site in batches split at `cuts`; a new
    Sessionizer starts before batch i when fresh[i] (always before the first)."""
    site = new_site(store)
    mine = [e.__copy__() for e in events]
    for e in mine:
        e.site_id = site
    bounds = [0, *sorted(set(cuts)), len(mine)]
    sz = Sessionizer(store, GAP)
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if i and fresh[i % len(fresh)]:
            sz = Sessionizer(store, GAP)
        if hi > lo:
            commit(store, sz, mine[lo:hi])
    return stored_partition(store, site)


def test_order_independence_fixed_example(store: DuckDBStore) -> None:
    site = 0  # replaced per run
    minutes = [0, 10, 35, 70, 95, 100, 129, 160, 200, 215, 240, 250, 290, 320, 330]
    events = [event(site, m, visitor=1 + i % 2) for i, m in enumerate(minutes)]
    events += [event(site, 5, session_key="a"), event(site, 400, session_key="a")]
    want = expected_partition(events)
    rng = random.Random(7)
    shuffled = events[:]
    rng.shuffle(shuffled)
    orders = [sorted(events, key=lambda e: e.ts), sorted(events, key=lambda e: -e.ts), shuffled]
    for order in orders:
        assert run(store, order, [], [True]) == want
        for fresh in ([True], [False], [False, True], [True, False]):
            assert run(store, order, [3, 7, 11, 14], fresh) == want
        assert run(store, order, list(range(1, len(order))), [True]) == want  # one event per batch


Spec = tuple[int, int, str | None]  # (minute, visitor, explicit session key)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Spec], list[int], list[int]]:
    """Events as readable specs, an arrival order (a permutation of their indexes), batch cuts."""
    specs = draw(
        st.lists(
            st.tuples(st.integers(0, 180), st.integers(1, 2), st.sampled_from([None, None, None, None, "a", "b"])),
            min_size=1,
            max_size=16,
        )
    )
    order = draw(st.permutations(range(len(specs))))
    # Three or more batches when there are enough events: a restart between batches is
    # where a writer's cache and the store can disagree.
    cuts = draw(st.lists(st.integers(1, max(1, len(specs) - 1)), min_size=min(2, len(specs) - 1), max_size=6))
    return specs, list(order), cuts


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path_factory.mktemp("sessions") / "x.duckdb")
    yield s
    s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_partition_does_not_depend_on_order_or_batching(
    shared_store: DuckDBStore, scenario: tuple[list[Spec], list[int], list[int]]
) -> None:
    specs, order, cuts = scenario
    events = [event(0, minute, visitor=visitor, session_key=key) for minute, visitor, key in specs]
    arrived = [events[i] for i in order]
    want = expected_partition(events)
    assert run(shared_store, sorted(events, key=lambda e: e.ts), [], [True]) == want
    assert run(shared_store, arrived, [], [True]) == want
    # A restarted writer before every batch, one writer throughout, and the two alternating.
    for fresh in ([True], [False], [False, True], [True, False]):
        assert run(shared_store, arrived, cuts, fresh) == want, f"fresh={fresh}"


# -- in the engine and one by one: the same visits, the same ids ---------------------------


def ids_by_event(store: DuckDBStore, site_id: int) -> dict[str, int]:
    """Implicit session ids by event (explicit ones depend on the site, so are compared by
    the explicit key the event carries: equal keys, equal ids, as the partition tests show)."""
    rows = store._cursor().execute(
        "SELECT pathname || '@' || visitor_id, session_id FROM events WHERE site_id = ?", [site_id]
    ).fetchall()
    return {key: int(session_id) for key, session_id in rows if not int(session_id) & EXPLICIT_BIT}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_the_engine_assigns_what_the_event_by_event_rule_does(
    shared_store: DuckDBStore, scenario: tuple[list[Spec], list[int], list[int]]
) -> None:
    """Store.assign_sessions (components, in SQL) against Sessionizer.assign_in_order: the same
    session id for every event, and so the same merges, whatever the order and batching."""
    specs, order, cuts = scenario
    events = [event(0, minute, visitor=visitor, session_key=key) for minute, visitor, key in specs]
    arrived = [events[i] for i in order]
    engine_site = new_site(shared_store)
    for e in arrived:
        e.site_id = engine_site
    run_batches(shared_store, arrived, cuts)
    in_order_site = new_site(shared_store)
    for e in arrived:
        e.site_id = in_order_site
    with pytest.MonkeyPatch.context() as m:
        m.setattr(shared_store, "assign_sessions", lambda *_: None)  # as after overlapping visits
        run_batches(shared_store, arrived, cuts)
    assert ids_by_event(shared_store, engine_site) == ids_by_event(shared_store, in_order_site)
    assert partition_by_path(shared_store, engine_site) == partition_by_path(shared_store, in_order_site)


def run_batches(store: DuckDBStore, events: list[Event], cuts: list[int]) -> None:
    sz = Sessionizer(store, GAP)
    for lo, hi in itertools.pairwise([0, *sorted(set(cuts)), len(events)]):
        if hi > lo:
            commit(store, sz, [e.__copy__() for e in events[lo:hi]])


@settings(max_examples=200, deadline=None)
@given(visitor=st.integers(0, (1 << 64) - 1), start=st.integers(0, 1 << 62))
def test_the_engine_makes_implicit_ids_as_python_does(shared_store: DuckDBStore, visitor: int, start: int) -> None:
    from footfall.pipeline.sessions import implicit_session_id
    from footfall.store.duckdb import _IMPLICIT_ID

    expr = _IMPLICIT_ID.replace(" FILTER (WHERE run IS NOT NULL)", "")
    row = shared_store._cursor().execute(
        f"SELECT {expr} FROM (SELECT ?::UBIGINT AS visitor_id, ?::BIGINT AS e_start) GROUP BY visitor_id",
        [visitor, start],
    ).fetchone()
    assert row is not None and int(row[0]) == implicit_session_id(visitor, start)


def test_overlapping_stored_visits_are_assigned_one_by_one(store: DuckDBStore) -> None:
    """A "new" visit inside another (session modes) is not joined to it by proximity alone:
    the batch near them is assigned event by event, which joins only what its events touch."""
    from footfall.event import SESSION_NEW

    site = new_site(store)
    commit(store, Sessionizer(store, GAP), [event(site, 0), event(site, 20), event(site, 40)])
    commit(store, Sessionizer(store, GAP), [event(site, 25, session_key=SESSION_NEW)])
    commit(store, Sessionizer(store, GAP), [event(site, 65)])  # near the first visit only
    assert partition_by_path(store, site) == {frozenset({"/m0", "/m20", "/m40", "/m65"}), frozenset({"/m25"})}
