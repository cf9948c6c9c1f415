"""The writer against a real spool directory and DuckDB store: it drains segments, and folds
the store's log into the database file in its idle moments rather than in the middle of a burst."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from footfall.event import Event, encode_event
from footfall.pipeline import writer as writer_module
from footfall.pipeline.sessions import Sessionizer
from footfall.pipeline.spool import SEGMENT_SUFFIX, Spool, frame
from footfall.pipeline.writer import Writer
from footfall.store import duckdb as duckdb_module
from footfall.store.base import Staged
from footfall.store.duckdb import DuckDBStore

T0 = 1_775_001_600_000_000  # 2026-04-01T00:00:00Z in microseconds


def pageview(site_id: int, ts: int, visitor_id: int, pathname: str = "/", event_id: str | None = None) -> Event:
    return Event(site_id=site_id, ts=ts, received_at=T0, kind="pageview", name="pageview", visitor_id=visitor_id,
                 source_api="test", pathname=pathname, event_id=event_id)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_idle_writer_checkpoints_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "IDLE_CHECKPOINT_AFTER_S", 1.0)
    returns: list[float] = []  # when the writer handed freed memory back (the real call, counted)
    real_return = writer_module.return_freed_memory
    monkeypatch.setattr(writer_module, "return_freed_memory", lambda: (returns.append(time.time()), real_return()))
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    site = store.add_site("example.com", "UTC", "FF-WRITER1")
    store.checkpoint()
    events = [
        pageview(site.id, T0 + i * 1_000_000, i % 97, f"/p{i % 13}") for i in range(3000)
    ]
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    for n in range(3):  # segments left by an earlier run: the spool reopens them as closed
        chunk = events[n * 1000 : (n + 1) * 1000]
        (spool_dir / f"{n + 1:016d}{SEGMENT_SUFFIX}").write_bytes(b"".join(frame(encode_event(e)) for e in chunk))
    spool = Spool(spool_dir, 1 << 20, 0.2)
    writer = Writer(spool, store, Sessionizer(store, 30 * 60_000_000), 50_000)
    writer.start()
    try:
        wait_for(lambda: writer.events_committed == len(events))
        # Committed (durable in the log, queryable) but not yet folded in: below the log-size
        # threshold, the checkpoint waits for the writer to have been idle a while.
        assert store.wal_bytes() > 0
        assert store.count_events(site.id) == len(events)
        assert returns == []  # not in the middle of the work
        wait_for(lambda: store.wal_bytes() == 0)
        wait_for(lambda: len(returns) == 1)  # once the idle checkpoint is done, and only once
        time.sleep(0.6)
        assert len(returns) == 1
        assert store.count_events(site.id) == len(events)
        assert spool.closed_segments() == [] and writer.last_error is None
    finally:
        writer.stop()
        spool.close()
        store.close()


def test_caller_derived_event_ids_are_stored_once(tmp_path: Path) -> None:
    """A retried delivery (an SDK's message id, a re-imported log line) is not counted twice:
    neither within a batch nor against what is stored; records without ids are untouched."""
    from footfall.pipeline.writer import load_batch

    store = DuckDBStore(tmp_path / "footfall.duckdb")
    site = store.add_site("example.com", "UTC", "FF-WRITER2")
    sessionizer = Sessionizer(store, 30 * 60_000_000)

    def event(minute: int, event_id: str | None) -> bytes:
        return encode_event(pageview(site.id, T0 + minute * 60_000_000, 7, event_id=event_id))

    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(3)]
    first = load_batch(store, sessionizer, [event(0, ids[0]), event(1, ids[1]), event(1, ids[1]), event(2, None)], [])
    assert (first.records, first.duplicates) == (3, 1)
    again = load_batch(store, sessionizer, [event(0, ids[0]), event(1, ids[1]), event(3, ids[2]), event(2, None)], [])
    assert (again.records, again.duplicates) == (2, 2)
    assert store.count_events(site.id) == 5
    store.close()


def test_the_tail_of_a_burst_does_not_wait_for_rotation(tmp_path: Path) -> None:
    """After a batch that left a backlog, the writer takes the active segment as soon as the
    closed ones are loaded: with a rotation of a minute, the burst's tail is still queryable
    at once; and the visit parts are folded once the writer is idle."""
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    site = store.add_site("example.com", "UTC", "FF-WRITER3")
    spool = Spool(tmp_path / "spool", segment_bytes=10 << 20, rotate_seconds=60.0)
    records = [frame(encode_event(pageview(site.id, T0 + i * 1_000_000, i % 7))) for i in range(400)]
    # A burst: two closed segments of 150 (more than a batch of 100 each) and a tail of 100.
    for lo, hi in ((0, 150), (150, 300)):
        spool.append_sync(b"".join(records[lo:hi]), hi - lo)
        assert spool.close_active_now()
    spool.append_sync(b"".join(records[300:]), 100)
    writer = Writer(spool, store, Sessionizer(store, 30 * 60_000_000), 100)
    writer.start()
    try:
        wait_for(lambda: writer.events_committed == 400, timeout=10.0)
        assert store.count_events(site.id) == 400
        wait_for(lambda: store.visit_parts_pending() == 0, timeout=10.0)
        assert spool.close_active_now() is False  # nothing left to hand over
    finally:
        spool.close()
        writer.stop()
        store.close()


def test_a_steady_stream_is_checkpointed_between_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a stream that always has a segment waiting, the writer is never idle; it folds
    the log into the database file while it rests between batches, so the log (and the
    uncompressed rows DuckDB holds in memory until a checkpoint) stays bounded."""
    threshold = 256 << 10
    monkeypatch.setattr(writer_module, "CHECKPOINT_WAL_BYTES", threshold)
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    site = store.add_site("example.com", "UTC", "FF-WRITER4")
    store.checkpoint()
    spool = Spool(tmp_path / "spool", segment_bytes=10 << 20, rotate_seconds=0.01)
    writer = Writer(spool, store, Sessionizer(store, 30 * 60_000_000), 50_000)
    writer.start()
    sent = 0
    wal_seen: list[int] = []
    try:
        for _ in range(300):  # 60,000 events: ~14 MB of log if nothing folded it in
            chunk = [
                frame(encode_event(pageview(site.id, T0 + (sent + i) * 10_000, (sent + i) % 500, f"/p{i % 40}")))
                for i in range(200)
            ]
            spool.append_sync(b"".join(chunk), len(chunk))
            sent += len(chunk)
            wal_seen.append(store.wal_bytes())
            time.sleep(0.01)  # ~20,000 events/s: a stream the writer keeps up with
        wait_for(lambda: writer.events_committed == sent)
        assert store.count_events(site.id) == sent
        # The log never held more than the threshold plus what arrived during a batch and
        # its rest (~2 MB here); without the checkpoints between batches it grew to ~14 MB.
        assert max(wal_seen) < 5 << 20, max(wal_seen)
        assert writer.last_error is None
    finally:
        spool.close()
        writer.stop()
        store.close()


@pytest.mark.parametrize("chunk_bytes", [2 << 20, 1, 400])
def test_records_that_are_not_events_are_left_out_and_the_rest_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    """A batch reaches DuckDB as strings of a record a line (the whole batch, a record each,
    or a few): records that are not UTF-8, hold a raw newline or are not JSON are left out
    alone, and every good record around them loads, each with its own session columns (no
    line shifted into another's place)."""
    from footfall.pipeline.writer import load_batch

    monkeypatch.setattr(duckdb_module, "STAGE_CHUNK_BYTES", chunk_bytes)
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    site = store.add_site("example.com", "UTC", "FF-WRITER9")
    sessionizer = Sessionizer(store, 30 * 60_000_000)
    good = [encode_event(pageview(site.id, T0 + i * 60_000_000, 1000 + i, f"/good{i}")) for i in range(6)]
    bad = [
        b'{"site_id": \xff\xfe}',  # not UTF-8
        good[0][:-1] + b',\n"x": 1}',  # a raw newline inside the record
        b"not json at all",
        b"",
    ]
    mixed = [good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3], bad[3], good[4], good[5]]
    try:
        staged = load_batch(store, sessionizer, iter(mixed), [])
        assert (staged.records, staged.read) == (len(good), len(mixed))
        rows = store._cursor().execute(
            "SELECT pathname, visitor_id FROM events ORDER BY pathname"
        ).fetchall()
        assert rows == [(f"/good{i}", 1000 + i) for i in range(6)]
        assert load_batch(store, sessionizer, [], []).records == 0
        assert load_batch(store, sessionizer, bad, []).records == 0
        assert store.count_events() == len(good)
    finally:
        store.close()


def test_a_batch_staged_in_chunks_gets_the_sessions_of_one_staged_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer reads a batch's segments one at a time and stages them a few records per
    statement: the records of every segment are committed, once, with the visits the same
    batch gets when staged as one string."""
    events = [pageview(1, T0 + (i * 7919 % 600) * 120_000_000, i % 13, f"/p{i % 5}") for i in range(600)]

    def load(directory: Path, chunk_bytes: int) -> list[tuple[int, int, int]]:
        monkeypatch.setattr(duckdb_module, "STAGE_CHUNK_BYTES", chunk_bytes)
        store = DuckDBStore(directory / "footfall.duckdb")
        site = store.add_site("example.com", "UTC", "FF-WRITER10")
        assert site.id == 1
        spool = Spool(directory / "spool", segment_bytes=10 << 20, rotate_seconds=60.0)
        for lo in range(0, len(events), 150):  # four closed segments, one batch
            spool.append_sync(b"".join(frame(encode_event(e)) for e in events[lo:lo + 150]), 150)
            assert spool.close_active_now()
        writer = Writer(spool, store, Sessionizer(store, 30 * 60_000_000), 50_000)
        try:
            assert writer.drain_once(spool.closed_segments()) == len(events)
            assert spool.closed_segments() == [] and store.committed_segments() == set()
            return store._cursor().execute(
                "SELECT visitor_id, count(*), count(DISTINCT pathname) FROM events"
                " GROUP BY visitor_id, session_id ORDER BY ALL"
            ).fetchall()
        finally:
            spool.close()
            store.close()

    (tmp_path / "whole").mkdir()
    (tmp_path / "chunks").mkdir()
    whole = load(tmp_path / "whole", 2 << 20)
    assert load(tmp_path / "chunks", 700) == whole
    assert sum(n for _, n, _ in whole) == len(events) and len(whole) > 13


def test_a_small_batch_loads_on_one_duckdb_thread_and_gives_the_others_back(tmp_path: Path) -> None:
    """DuckDB runs a steady stream's small batch on one thread (DuckDBStore.small_load), a
    backlog's with all of them; queries get their threads back when the load ends, also when it
    fails; and the writer loads small unless the batch before left a backlog."""
    from footfall.pipeline.writer import load_batch

    store = DuckDBStore(tmp_path / "footfall.duckdb", threads=3)
    site = store.add_site("example.com", "UTC", "FF-WRITER5")
    sessionizer = Sessionizer(store, 30 * 60_000_000)

    def threads() -> int:
        row = store._cursor().execute("SELECT current_setting('threads')").fetchone()
        assert row is not None
        return int(row[0])

    seen: list[int] = []

    def records(minute: int, fail: bool = False) -> Iterator[bytes]:
        seen.append(threads())  # read by the load's staging, inside it
        yield encode_event(pageview(site.id, T0 + minute * 60_000_000, 7))
        if fail:
            raise OSError("a segment became unreadable")

    assert threads() == 3
    load_batch(store, sessionizer, records(0), [], small=True)
    assert (seen, threads()) == ([1], 3)
    with pytest.raises(OSError):
        load_batch(store, sessionizer, records(1, fail=True), [], small=True)
    assert (seen, threads()) == ([1, 1], 3)
    load_batch(store, sessionizer, records(2), [])
    assert (seen, threads()) == ([1, 1, 3], 3)
    assert store.count_events(site.id) == 2

    # The writer: a batch is small unless the one before left a backlog behind it (here:
    # three closed segments of 150 and an active one, with batches of 100; later a trickle);
    # a small one hands back what it frees when HAND_BACK_BYTES or more were waiting for it
    # (here: between two segments' bytes and three).
    spool = Spool(tmp_path / "spool", segment_bytes=10 << 20, rotate_seconds=60.0)
    real_load = writer_module.load_batch
    loads: list[tuple[int, bool, bool]] = []
    # While it loads, the writer gets the GIL back from the event loop within 1 ms; afterwards
    # the interval is the usual one again.
    usual_interval = sys.getswitchinterval()
    intervals: set[float] = set()

    def spy(*args: Any, small: bool = False, hand_back: bool = False) -> Staged:
        intervals.add(sys.getswitchinterval())
        staged = real_load(*args, small=small, hand_back=hand_back)
        loads.append((staged.records, small, small and hand_back))
        return staged

    for n in range(4):
        segment = [frame(encode_event(pageview(site.id, T0 + (n * 150 + i) * 1_000_000, 9))) for i in range(150)]
        spool.append_sync(b"".join(segment), 150)
        if n < 3:
            assert spool.close_active_now()
    segment_bytes = len(b"".join(segment))
    writer = Writer(spool, store, sessionizer, 100)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(writer_module, "load_batch", spy)
        mp.setattr(writer_module, "HAND_BACK_BYTES", segment_bytes * 5 // 2)
        writer.start()
        try:
            wait_for(lambda: writer.events_committed == 600, timeout=10.0)
            # The first loads small (nothing was waiting before it) and hands back (three
            # segments were waiting), the next two are the backlog it left, and the burst's tail
            # (the active segment, taken once the backlog is gone) is small again, too small to
            # hand back.
            assert loads == [(150, True, True), (150, False, False), (150, False, False), (150, True, False)]
            # Idle now: the next records are a steady stream's again.
            spool.append_sync(frame(encode_event(pageview(site.id, T0 + 10**9, 9))), 1)
            assert spool.close_active_now()
            wait_for(lambda: writer.events_committed == 601, timeout=10.0)
            assert loads[-1] == (1, True, False)
            assert intervals == {writer_module.LOADING_SWITCH_INTERVAL_S} != {usual_interval}
            wait_for(lambda: sys.getswitchinterval() == usual_interval, timeout=5.0)
        finally:
            writer.stop()
    spool.close()
    store.close()
