"""Benchmark 2: batch ingest end to end, from the first request to every event queryable.

    .venv/bin/python benchmarks/bench_batch.py [--runs 3] [--events 200000] [--concurrency 4]

One run: a fresh data directory and `footfall serve`; the load generator (this process) sends
batches of 1,000 mixed records (90% pageviews, 10% events; varied visitors, pages, agents)
to POST /api/ingest/server/batch over `--concurrency` keep-alive connections, while polling
/readyz. The clock starts at the first request and stops when /readyz reports
events_committed >= the total and writer lag 0. Then `footfall stats` (through the control
socket) must count every event. Request bodies are built before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import time
from typing import Any

import msgspec

import common

BATCH_PATH = "/api/ingest/server/batch"
KEYS = ["e2e_eps", "ack_eps", "drain_after_ack_s", "peak_rss_mb"]


def build_bodies(events: int, batch: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    ips = [common.random_ip(rng) for _ in range(20_000)]
    stamps = [common.rfc3339(now - dt.timedelta(seconds=s)) for s in range(0, 1800, 3)]
    bodies = []
    for start in range(0, events, batch):
        records = []
        for _ in range(min(batch, events - start)):
            rec: dict[str, Any] = {
                "type": "pageview",
                "url": f"https://example.com/docs/{rng.randrange(200)}?utm_source=bench",
                "timestamp": rng.choice(stamps),
                "visitor_ip": rng.choice(ips),
                "user_agent": rng.choice(common.USER_AGENTS),
                "referrer": "https://www.google.com/",
            }
            if rng.random() < 0.1:
                rec["type"] = "event"
                rec["name"] = "signup"
                rec["properties"] = {"plan": rng.choice(["free", "pro"])}
            records.append(rec)
        bodies.append(msgspec.json.encode(records))
    return bodies


async def load(
    srv: common.Server, token: str, bodies: list[bytes], concurrency: int, base: int, total: int, poll: float
) -> dict[str, Any]:
    requests = [common.build_request("POST", BATCH_PATH, srv.port, b, token) for b in bodies]
    readyz = common.build_request("GET", "/readyz", srv.port)
    conns = [await common.HttpConn.open(srv.port) for _ in range(concurrency)]
    poller = await common.HttpConn.open(srv.port)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    accepted = 0
    rejected = 0
    last_ack = 0.0

    async def worker(conn: common.HttpConn) -> None:
        nonlocal accepted, rejected, last_ack
        while not queue.empty():
            raw = queue.get_nowait()
            status, body = await conn.request(raw)
            if status != 202:
                raise RuntimeError(f"batch answered {status}: {body[:300]!r}")
            result = json.loads(body)
            accepted += result["accepted"]
            rejected += len(result["rejected"])
            last_ack = time.perf_counter()

    t0 = time.perf_counter()
    workers = asyncio.gather(*(worker(c) for c in conns))
    done_at = None
    last: dict[str, Any] = {}
    while done_at is None:
        await asyncio.sleep(poll)
        _, body = await poller.request(readyz)
        last = json.loads(body)
        w = last["writer"]
        if workers.done():
            workers.result()  # raise a worker's error
            if w["events_committed"] >= base + total and w["lag_seconds"] == 0:
                done_at = time.perf_counter()
        if time.perf_counter() - t0 > 600:
            raise TimeoutError(f"not drained after 600 s: {last}")
    for c in [*conns, poller]:
        await c.close()
    return {"t0": t0, "last_ack": last_ack, "done": done_at, "accepted": accepted, "rejected": rejected, "readyz": last}


def run_once(args: argparse.Namespace, seed: int = 1) -> dict[str, Any]:
    bodies = build_bodies(args.events, args.batch, seed)
    total = args.events
    with common.data_dir() as (data, token), common.server(data, "footfall") as srv:
        time.sleep(1.0)
        idle_kb = srv.rss_kb()
        base = srv.readyz()["writer"]["events_committed"]
        with common.RssSampler(srv.pid) as rss:
            r = asyncio.run(load(srv, token, bodies, args.concurrency, base, total, args.poll))
        if r["accepted"] != total or r["rejected"]:
            raise RuntimeError(f"accepted {r['accepted']} of {total}, rejected {r['rejected']}")
        today = dt.datetime.now(dt.UTC).date()
        s = common.stats(data, str(today - dt.timedelta(days=1)), str(today + dt.timedelta(days=1)))
        counted = s["totals"]["pageviews"] + s["totals"]["events"]
        if counted != total:
            raise RuntimeError(f"footfall stats counts {counted} pageviews+events, expected {total}")
        elapsed = r["done"] - r["t0"]
        ack_elapsed = r["last_ack"] - r["t0"]
        result = {
            "e2e_eps": total / elapsed,
            "ack_eps": total / ack_elapsed,
            "e2e_seconds": elapsed,
            "drain_after_ack_s": r["done"] - r["last_ack"],
            "idle_rss_mb": idle_kb / 1024,
            "peak_rss_mb": max(rss.peak_kb, srv.hwm_kb()) / 1024,
            "stats_counted": counted,
        }
    common.log(
        f"batch: {total:,} events in {elapsed:.2f} s = {result['e2e_eps']:,.0f} events/s end to end "
        f"(acknowledged at {result['ack_eps']:,.0f}/s, drained {result['drain_after_ack_s']:.2f} s "
        f"after the last ack; stats counts {counted:,})"
    )
    return result


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between /readyz polls")


def main() -> None:
    common.run_main(
        "batch ingest end to end",
        lambda args, seed: run_once(args, seed=seed),
        add_args,
        [*KEYS, "e2e_seconds", "idle_rss_mb"],
    )


if __name__ == "__main__":
    main()
