"""The writer alone: events/s through `load_batch` (stage, sessionize, commit) into a store,
without HTTP or the spool.

    .venv/bin/python benchmarks/bench_writer.py [--runs 5] [--events 200000] [--batch 50000] [--base DIR]

200,000 events (90% pageviews, 10% custom events; 20,000 visitors x 5 agents; times spread
over 30 minutes, arriving in time order, as live traffic does) are encoded before the clock
starts, then loaded in batches of `--batch`. With `--base DIR` each run loads into a fresh
copy of that data directory (e.g. a bench_queries.py one at 10M events, so the store's tables
are big), with times right after its last event; otherwise into an empty store. Prints each
run's events/s and the median.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from footfall.event import Event, encode_event
from footfall.pipeline.sessions import Sessionizer
from footfall.pipeline.writer import load_batch
from footfall.store.duckdb import DuckDBStore

GAP = 30 * 60_000_000
PATHS = [f"/p{i}" for i in range(200)]
SOURCES = ["", "", "Google", "Hacker News", "Bing", "Twitter"]


def events(site: int, n: int, t0: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = t0 + i * (30 * 60_000_000 // n)
        visitor = rng.randrange(100_000)
        kind = "pageview" if rng.random() < 0.9 else "event"
        out.append(encode_event(Event(
            site_id=site, ts=ts, received_at=ts, kind=kind, name="pageview" if kind == "pageview" else "Signup",
            visitor_id=visitor * 2654435761 % (1 << 63), source_api="bench", hostname="example.com",
            pathname=rng.choice(PATHS), source=rng.choice(SOURCES), browser="Chrome", os="Windows",
            device="desktop", country="DE", props={"plan": "pro"} if kind == "event" else {},
        )))
    return out


def run_once(base: Path | None, n: int, batch: int, seed: int) -> float:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "footfall.duckdb"
        if base is not None:
            shutil.copy(base / "footfall.duckdb", path)
        store = DuckDBStore(path)
        try:
            sites = store.list_sites()
            site = sites[0].id if sites else store.add_site("example.com", "UTC", "FF-BENCHW").id
            row = store._cursor().execute("SELECT epoch_us(max(ts)) FROM events").fetchone()
            t0 = (row[0] if row and row[0] else 1_775_001_600_000_000) + 60_000_000
            payloads = events(site, n, t0, seed)
            store.checkpoint()
            sessionizer = Sessionizer(store, GAP)
            start = time.perf_counter()
            for k in range(0, n, batch):
                load_batch(store, sessionizer, payloads[k:k + batch], [])
            elapsed = time.perf_counter() - start
            assert store.count_events_between(site, t0, t0 + 31 * 60_000_000) == n
        finally:
            store.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--base", type=Path, default=None, help="data directory to copy for each run")
    args = parser.parse_args()
    rates = []
    for r in range(args.runs):
        rates.append(run_once(args.base, args.events, args.batch, r))
        print(f"run {r + 1}: {rates[-1]:,.0f} events/s", flush=True)
    print(f"median: {statistics.median(rates):,.0f} events/s (batch {args.batch:,}, base {args.base})")


if __name__ == "__main__":
    main()
