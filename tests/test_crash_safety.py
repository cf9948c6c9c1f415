"""Invariant 1, accepted means durable: kill -9 loses no acknowledged event and duplicates none.

Every test runs a real `footfall serve` over a real data directory and reads the DuckDB file
afterwards with its own read-only connection, so the store is judged by what is on disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx

from footfall.event import Event, encode_event
from footfall.pipeline.sessions import Sessionizer
from footfall.pipeline.spool import Spool, frame
from footfall.pipeline.writer import Writer
from footfall.store.duckdb import DuckDBStore
from tests.conftest import Site

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
BATCH_EVERY = 10  # every 10th request is a batch of BATCH_SIZE records, the rest single pageviews
BATCH_SIZE = 20


def recent(minutes_ago: float = 5) -> str:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    return moment.isoformat().replace("+00:00", "Z")


def record(n: int, when: str) -> dict[str, Any]:
    return {
        "url": f"https://example.com/p/{n}?utm_source=crash",
        "timestamp": when,
        "visitor_ip": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
        "user_agent": UA,
        "properties": {"n": n},
    }


def stored_paths(data_dir: Path, prefix: str) -> Counter[str]:
    """pathname -> how many rows hold it, read from the file with the server stopped."""
    con = duckdb.connect(str(data_dir / "footfall.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT pathname, count(*) FROM events WHERE starts_with(pathname, ?) GROUP BY pathname",
            [prefix],
        ).fetchall()
        ids = con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM events WHERE starts_with(pathname, ?)", [prefix]
        ).fetchone()
    finally:
        con.close()
    assert ids is not None and ids[0] == ids[1], f"an event_id is stored twice: {ids}"
    return Counter({p: int(c) for p, c in rows})


def ledger_rows(data_dir: Path) -> list[str]:
    con = duckdb.connect(str(data_dir / "footfall.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT segment FROM spool_ledger").fetchall()]
    finally:
        con.close()


def site_id(data_dir: Path, domain: str = "example.com") -> int:
    con = duckdb.connect(str(data_dir / "footfall.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT id FROM sites WHERE domain = ?", [domain]).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def make_event(site: int, path: str, ts_us: int, visitor: int = 1) -> Event:
    return Event(
        event_id=str(uuid.uuid4()), site_id=site, ts=ts_us, received_at=ts_us, kind="pageview",
        name="pageview", hostname="example.com", pathname=path, referrer_host="", referrer_path="",
        source="", utm_source="", utm_medium="", utm_campaign="", utm_term="", utm_content="",
        visitor_id=visitor, session_key=None, page_id=None, user_id=None, browser="",
        browser_version="", os="", os_version="", device="", country="", region="", city="",
        language="", screen_width=None, props={}, revenue_amount=None, revenue_currency=None,
        source_api="server",
    )


def segment_bytes(events: list[Event]) -> bytes:
    return b"".join(frame(encode_event(e)) for e in events)


def now_us() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)


# -- kill -9 in the middle of concurrent ingest -------------------------------------------


@dataclass
class Outcome:
    sent: set[int] = field(default_factory=set)  # numbers whose request was started
    acked: set[int] = field(default_factory=set)  # ... and answered 202
    refused: list[str] = field(default_factory=list)  # non-202 answers before the kill (a bug)
    killed_at_acks: int = -1


def plan_requests(first: int, count: int) -> list[list[int]]:
    """Request payloads as lists of event numbers: mostly single records, some batches."""
    requests: list[list[int]] = []
    numbers = itertools.count(first)
    while True:
        size = BATCH_SIZE if len(requests) % BATCH_EVERY == BATCH_EVERY - 1 else 1
        chunk = list(itertools.islice(numbers, size))
        if chunk[-1] >= first + count:
            chunk = [n for n in chunk if n < first + count]
            if chunk:
                requests.append(chunk)
            return requests
        requests.append(chunk)


async def blast(site: Site, first: int, count: int, kill_after: int, concurrency: int = 64) -> Outcome:
    """Send events first..first+count-1 concurrently; SIGKILL the server once `kill_after` are acked."""
    out = Outcome()
    queue = iter(plan_requests(first, count))
    killed = asyncio.Event()
    when = recent()
    headers = site.headers()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=site.server.url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            for numbers in queue:
                if killed.is_set():
                    return
                out.sent.update(numbers)
                try:
                    if len(numbers) == 1:
                        r = await client.post(
                            "/api/ingest/server/pageview", json=record(numbers[0], when), headers=headers
                        )
                    else:
                        body = [{"type": "pageview", **record(n, when)} for n in numbers]
                        r = await client.post("/api/ingest/server/batch", json=body, headers=headers)
                except httpx.HTTPError:
                    continue  # cut by the kill: the event may or may not be durable
                if r.status_code == 202:
                    out.acked.update(numbers)
                elif not killed.is_set():
                    out.refused.append(f"{r.status_code} {r.text[:200]}")
                if len(out.acked) >= kill_after and not killed.is_set():
                    killed.set()
                    out.killed_at_acks = len(out.acked)
                    site.server.kill()  # SIGKILL, while the other workers' requests are in flight

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def test_sigkill_mid_stream_loses_no_acked_event_and_duplicates_none(site: Site) -> None:
    server = site.server
    rounds = [(0, 2400, 1200), (2400, 1600, 800)]  # (first, count, kill after this many acks)
    all_sent: set[int] = set()
    all_acked: set[int] = set()
    for first, count, kill_after in rounds:
        if server.proc is None:
            server.start()
        out = asyncio.run(blast(site, first, count, kill_after))
        assert out.refused == [], f"refused before the kill: {out.refused[:5]}"
        assert out.killed_at_acks >= kill_after, "the server was never killed"
        assert server.proc is None
        all_sent |= out.sent
        all_acked |= out.acked
        cut = out.sent - out.acked
        print(f"round {first}: sent {len(out.sent)}, acked {len(out.acked)}, cut by the kill {len(cut)}, "
              f"never sent {count - len(out.sent)}")
        assert cut, "the kill cut no request; it did not happen mid-stream"
        assert len(out.sent) < count, "every request was sent; the kill came too late"

    server.start()
    ready = server.wait_drained()
    assert ready["writer"]["torn_records_dropped"] <= len(rounds)  # at most the tail of each kill
    server.stop()

    stored = stored_paths(server.data_dir, "/p/")
    stored_numbers = {int(p.removeprefix("/p/")) for p in stored}
    duplicates = {p: c for p, c in stored.items() if c > 1}
    lost = all_acked - stored_numbers
    cut_but_stored = stored_numbers - all_acked
    never_sent_but_stored = stored_numbers - all_sent
    print(f"acked {len(all_acked)}, stored {len(stored_numbers)}, cut-but-stored {len(cut_but_stored)} "
          f"(durable before the 202 left), cut-and-lost {len(all_sent - all_acked - stored_numbers)}, "
          f"duplicates {len(duplicates)}")
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:10]}"
    assert not duplicates, f"{len(duplicates)} events stored twice, e.g. {list(duplicates.items())[:10]}"
    assert not never_sent_but_stored, f"events never sent are stored: {sorted(never_sent_but_stored)[:10]}"
    assert ledger_rows(server.data_dir) == []
    assert not list((server.data_dir / "spool").glob("*.seg"))


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # exited; a zombie only until init reaps it
            return True
        time.sleep(0.02)
    return False


def test_the_sync_helper_goes_with_the_server_however_it_stops(site: Site) -> None:
    """The spool's sync helper (a child process) never outlives the server: not after a
    graceful stop, not after kill -9, and the records it synced are all there."""
    server = site.server
    for n, how in enumerate(("kill", "stop")):
        if server.proc is None:
            server.start()
        assert server.proc is not None
        (helper,) = children(server.proc.pid)  # started with the server, before any request
        r = site.post("/api/ingest/server/pageview", record(n, recent()))
        assert r.status_code == 202
        assert children(server.proc.pid) == [helper]
        assert "sync_process.py" in Path(f"/proc/{helper}/cmdline").read_text()
        server.kill() if how == "kill" else server.stop()
        assert gone_within(helper, 10), f"the sync helper outlived the server ({how})"
    server.start()
    server.wait_drained()
    server.stop()
    assert stored_paths(server.data_dir, "/p/") == Counter({"/p/0": 1, "/p/1": 1})


# -- torn segments ------------------------------------------------------------------------


def test_torn_spool_tail_is_dropped_reported_and_the_rest_loads(site: Site) -> None:
    server = site.server
    server.stop()
    sid = site_id(server.data_dir)
    spool = server.data_dir / "spool"
    t = now_us() - 600_000_000
    events = [make_event(sid, f"/t/{i}", t + i * 1_000_000, visitor=i) for i in range(15)]
    # 100: clean. 101: its last record cut inside the payload. 102: cut inside the header.
    (spool / "0000000000000100.seg").write_bytes(segment_bytes(events[0:5]))
    whole, last = segment_bytes(events[5:9]), segment_bytes(events[9:10])
    (spool / "0000000000000101.seg").write_bytes(whole + last[: len(last) // 2])
    whole, last = segment_bytes(events[10:14]), segment_bytes(events[14:15])
    (spool / "0000000000000102.seg").write_bytes(whole + last[:5])

    server.start()
    ready = server.wait_drained()
    assert ready["writer"]["torn_records_dropped"] >= 2
    assert {"0000000000000101.seg", "0000000000000102.seg"} <= set(ready["writer"]["torn_segments"])
    assert "0000000000000100.seg" not in ready["writer"]["torn_segments"]
    assert ready["writer"]["undecodable_records"] == 0
    assert ready["status"] == "ready"
    # ... and it keeps accepting.
    r = site.post("/api/ingest/server/pageview", {
        "url": "https://example.com/after-torn", "timestamp": recent(), "visitor_ip": "192.0.2.1",
        "user_agent": UA,
    })
    assert r.status_code == 202, r.text
    server.wait_drained()
    server.stop()

    log_text = (server.data_dir / "footfall.log").read_text()
    for name in ("0000000000000101.seg", "0000000000000102.seg"):
        assert any("torn" in line and name in line for line in log_text.splitlines()), log_text[-2000:]
    assert "0000000000000101.seg" in server.log_path.read_text()
    stored = stored_paths(server.data_dir, "/t/")
    want = {f"/t/{i}" for i in (*range(0, 9), *range(10, 14))}
    assert stored == Counter({p: 1 for p in want})
    assert stored_paths(server.data_dir, "/after-torn") == Counter({"/after-torn": 1})
    assert not list(spool.glob("*.seg"))


# -- the ledger: a crash between commit and delete ----------------------------------------


def test_replayed_segment_with_its_ledger_row_is_not_loaded_twice(site: Site) -> None:
    """State after kill -9 between the writer's commit and its delete of the segment: the
    events are in the store, the ledger row is there, and so is the segment file."""
    server = site.server
    server.stop()
    sid = site_id(server.data_dir)
    spool = server.data_dir / "spool"
    name = "0000000000000200.seg"
    t = now_us() - 600_000_000
    data = segment_bytes([make_event(sid, f"/l/{i}", t + i, visitor=i) for i in range(50)])
    (spool / name).write_bytes(data)

    server.start()
    server.wait_drained()
    server.stop()
    assert stored_paths(server.data_dir, "/l/") == Counter({f"/l/{i}": 1 for i in range(50)})
    assert not (spool / name).exists() and ledger_rows(server.data_dir) == []

    # Put back what the crash would have left: the segment and its ledger row.
    (spool / name).write_bytes(data)
    store = DuckDBStore(server.data_dir / "footfall.duckdb")
    store.commit_staged([], [], [name])
    store.close()

    server.start()
    server.wait_drained()
    server.stop()
    assert stored_paths(server.data_dir, "/l/") == Counter({f"/l/{i}": 1 for i in range(50)})
    assert not (spool / name).exists()
    assert ledger_rows(server.data_dir) == []


def test_ledger_row_left_without_its_segment_does_not_swallow_new_events(site: Site) -> None:
    """State after kill -9 between deleting a committed segment and forgetting its ledger row.
    The spool numbers new segments from the highest file present, so with an empty spool it
    reuses low names; a stale ledger row must not make a new segment look committed."""
    server = site.server
    server.stop()
    store = DuckDBStore(server.data_dir / "footfall.duckdb")
    store.commit_staged([], [], [f"{seq:016d}.seg" for seq in range(1, 4)])
    store.close()
    assert not list((server.data_dir / "spool").glob("*.seg"))

    server.start()
    when = recent()
    for n in range(30):
        r = site.post("/api/ingest/server/pageview", record(n, when))
        assert r.status_code == 202, r.text
    server.wait_drained()
    server.stop()
    assert stored_paths(server.data_dir, "/p/") == Counter({f"/p/{n}": 1 for n in range(30)})


def test_writer_drain_once_skips_a_segment_already_in_the_ledger(tmp_path: Path) -> None:
    """The same crash window at unit level: Writer.drain_once over a real spool and store."""
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    sid = store.add_site("example.com", "UTC", "FF-UNIT000001").id
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    name = "0000000000000007.seg"
    t = now_us()
    data = segment_bytes([make_event(sid, f"/u/{i}", t + i, visitor=i) for i in range(20)])
    (spool_dir / name).write_bytes(data)

    def drain() -> int:
        spool = Spool(spool_dir, 1 << 20, 0.2)
        writer = Writer(spool, store, Sessionizer(store, 30 * 60_000_000), 1000)
        try:
            return writer.drain_once(spool.closed_segments())
        finally:
            spool.close()

    assert drain() == 20
    assert store.count_events(sid) == 20 and not (spool_dir / name).exists()
    (spool_dir / name).write_bytes(data)
    store.commit_staged([], [], [name])  # committed, not yet deleted: the crash window
    assert drain() == 0
    assert store.count_events(sid) == 20
    assert not (spool_dir / name).exists() and store.committed_segments() == set()
    store.close()

