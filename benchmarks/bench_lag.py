"""Benchmark 3: queryability lag under a steady 1,000 single-record requests per second.

    .venv/bin/python benchmarks/bench_lag.py [--runs 3] [--rate 1000] [--seconds 20]

One run: a fresh data directory and `footfall serve`. Request i goes out at t0 + i/rate on a
free keep-alive connection (a pool of `--connections`); the time its 202 arrives is recorded,
and acknowledgements are numbered in arrival order. Meanwhile /readyz is polled every
`--poll` seconds; the writer commits the spool in order, so the k-th acknowledged event is
queryable at the first poll (answered after its 202) that reports events_committed >= k.
Lag = that poll's answer time - the 202 time; p50/p99 over all events. The poll interval
bounds the resolution (the figure errs high by up to one interval).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import json
import random
import time
from typing import Any

import msgspec

import common

INGEST_PATH = "/api/ingest/server/pageview"
KEYS = ["lag_p50_ms", "lag_p99_ms", "lag_max_ms", "achieved_rps", "ack_p50_ms", "ack_p99_ms"]


def build_requests(port: int, token: str, n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    ips = [common.random_ip(rng) for _ in range(2000)]
    stamp = common.rfc3339()
    out = []
    for i in range(n):
        body = msgspec.json.encode(
            {
                "url": f"https://example.com/blog/{i % 100}",
                "timestamp": stamp,
                "visitor_ip": rng.choice(ips),
                "user_agent": rng.choice(common.USER_AGENTS),
            }
        )
        out.append(common.build_request("POST", INGEST_PATH, port, body, token))
    return out


async def load(
    srv: common.Server, requests: list[bytes], rate: float, connections: int, poll: float, base: int
) -> dict[str, Any]:
    free: asyncio.Queue[common.HttpConn] = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(await common.HttpConn.open(srv.port))
    poller = await common.HttpConn.open(srv.port)
    readyz = common.build_request("GET", "/readyz", srv.port)
    acks: list[float] = []  # 202 arrival times, in arrival order
    ack_latency: list[float] = []
    polls: list[tuple[float, int]] = []  # (answer time, events_committed)
    late = 0
    errors: list[str] = []
    sending = True

    async def send(conn: common.HttpConn, raw: bytes) -> None:
        sent = time.perf_counter()
        try:
            status, body = await conn.request(raw)
        except Exception as exc:
            errors.append(repr(exc))
            return
        now = time.perf_counter()
        if status == 202:
            acks.append(now)
            ack_latency.append(now - sent)
        else:
            errors.append(f"{status} {body[:200]!r}")
        free.put_nowait(conn)

    async def poll_loop() -> None:
        while True:
            _, body = await poller.request(readyz)
            committed = json.loads(body)["writer"]["events_committed"] - base
            polls.append((time.perf_counter(), committed))
            if not sending and committed >= len(acks):
                return
            await asyncio.sleep(poll)

    poll_task = asyncio.create_task(poll_loop())
    tasks = []
    t0 = time.perf_counter() + 0.05
    for i, raw in enumerate(requests):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.01:
            late += 1
        conn = await free.get()
        tasks.append(asyncio.create_task(send(conn, raw)))
    await asyncio.gather(*tasks)
    t_end = time.perf_counter()
    sending = False
    await asyncio.wait_for(poll_task, timeout=120)
    while not free.empty():
        await free.get_nowait().close()
    await poller.close()
    return {
        "acks": acks,
        "ack_latency": ack_latency,
        "polls": polls,
        "late": late,
        "errors": errors,
        "elapsed": t_end - t0,
    }


def lags(acks: list[float], polls: list[tuple[float, int]]) -> list[float]:
    times = [t for t, _ in polls]
    committed = [c for _, c in polls]  # non-decreasing
    out = []
    for k, acked_at in enumerate(acks, start=1):
        i = max(bisect.bisect_left(committed, k), bisect.bisect_left(times, acked_at))
        # a poll answered after the 202 that already counts this event
        while i < len(polls) and committed[i] < k:
            i += 1
        if i == len(polls):
            raise RuntimeError(f"event {k} never became queryable")
        out.append(times[i] - acked_at)
    return out


def run_once(args: argparse.Namespace, seed: int = 1) -> dict[str, Any]:
    n = int(args.rate * args.seconds)
    with common.data_dir() as (data, token), common.server(data, "footfall") as srv:
        requests = build_requests(srv.port, token, n, seed)
        time.sleep(1.0)
        base = srv.readyz()["writer"]["events_committed"]
        r = asyncio.run(load(srv, requests, args.rate, args.connections, args.poll, base))
        if r["errors"]:
            raise RuntimeError(f"{len(r['errors'])} requests failed, e.g. {r['errors'][:3]}")
        today = dt.datetime.now(dt.UTC).date()
        s = common.stats(data, str(today - dt.timedelta(days=1)), str(today + dt.timedelta(days=1)))
        if s["totals"]["pageviews"] != n:
            raise RuntimeError(f"footfall stats counts {s['totals']['pageviews']} pageviews, expected {n}")
    lag = lags(r["acks"], r["polls"])
    poll_gaps = [b[0] - a[0] for a, b in zip(r["polls"], r["polls"][1:], strict=False)]
    result = {
        "lag_p50_ms": 1000 * common.percentile(lag, 50),
        "lag_p99_ms": 1000 * common.percentile(lag, 99),
        "lag_max_ms": 1000 * max(lag),
        "achieved_rps": n / r["elapsed"],
        "ack_p50_ms": 1000 * common.percentile(r["ack_latency"], 50),
        "ack_p99_ms": 1000 * common.percentile(r["ack_latency"], 99),
        "late_sends": r["late"],
        "poll_interval_ms": 1000 * common.percentile(poll_gaps, 50),
    }
    common.log(
        f"lag: {n:,} events at {result['achieved_rps']:,.0f}/s; queryable after p50 "
        f"{result['lag_p50_ms']:.0f} ms, p99 {result['lag_p99_ms']:.0f} ms, max {result['lag_max_ms']:.0f} ms; "
        f"202 p50 {result['ack_p50_ms']:.1f} ms p99 {result['ack_p99_ms']:.1f} ms; "
        f"{r['late']} sends >10 ms late; polls every {result['poll_interval_ms']:.0f} ms"
    )
    return result


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between /readyz polls")


def main() -> None:
    common.run_main(
        "queryability lag",
        lambda args, seed: run_once(args, seed=seed),
        add_args,
        [*KEYS, "late_sends", "poll_interval_ms"],
    )


if __name__ == "__main__":
    main()
