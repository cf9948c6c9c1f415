"""Enrichment throughput: Hit -> Event for 1,000,000 hits in one process, cold and warm caches.

    .venv/bin/python benchmarks/bench_enrich.py [--runs 3] [--hits 1000000] [--agents 5000] [--ips 100000]

The hits are drawn at random from `--agents` distinct real user agents (device-detector's
fixtures: browsers, apps and bots in the proportions they hold), `--ips` distinct public
addresses, 2,000 pages with and without campaign tags, and a mix of referrers (search,
social, AI assistants, other sites, none). They are built before the clock starts. The
enricher is the server's own: bundled geolocation data, the real salts, the site registry.

cold: every cache empty (user agents, bots, URLs, sources, geolocation) at the start of the
pass; warm: the same hits again. Target (issue 3): >= 200,000 hits/s.
"""

from __future__ import annotations

import argparse
import collections
import gc
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.agent_corpus


import bench_agents
import common
from footfall.enrich import bots, enricher, sources, urls, useragents
from footfall.enrich.geo import open_geo
from footfall.enrich.sites import SiteRegistry
from footfall.enrich.visitors import SaltRing
from footfall.ingest.model import Hit
from footfall.meta import Site
from footfall.store.duckdb import DuckDBStore

KEYS = ["cold_hits_per_s", "warm_hits_per_s", "events", "bots", "ai_fetches", "excluded"]
TARGET = 200_000
BATCH = 1_000

REFERRERS = [
    "", "", "", "https://www.google.com/search?q=x", "https://www.bing.com/", "https://duckduckgo.com/",
    "https://news.ycombinator.com/item?id=1", "https://www.reddit.com/r/python/", "https://t.co/abc",
    "https://chatgpt.com/", "https://www.perplexity.ai/", "https://blog.example.org/post",
    "https://mail.google.com/mail/u/0/", "https://example.com/docs",
]


def build_hits(args: argparse.Namespace, rng: random.Random) -> list[Hit]:
    agents = bench_agents.distinct_agents(args.agents, rng)
    ips = list({common.random_ip(rng) for _ in range(args.ips * 2)})[: args.ips]
    pages = [f"https://example.com/section-{i % 40}/page-{i}" + ("?utm_source=newsletter&utm_medium=email"
             if i % 10 == 0 else "") for i in range(2000)]
    split = [urls.split_page_url(p) for p in pages]
    now_us = time.time_ns() // 1000
    return [
        Hit(site_id=1, kind="pageview", page=rng.choice(split), ts_us=now_us - rng.randrange(86_400_000_000),
            received_us=now_us, ip=rng.choice(ips), user_agent=rng.choice(agents), source_api="bench",
            referrer=rng.choice(REFERRERS))
        for _ in range(args.hits)
    ]


def clear_caches() -> None:
    enricher.clear_identity_cache()
    useragents.cache_clear()
    bots.cache_clear()
    urls.split_referrer.cache_clear()
    for func in vars(sources).values():
        clear = getattr(func, "cache_clear", None)
        if callable(clear):
            clear()


def run_once(args: argparse.Namespace, run: int) -> dict[str, Any]:
    rng = random.Random(run)
    hits = build_hits(args, rng)
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "footfall.duckdb")
        salts = SaltRing()
        salts.rotate(store)
        sites = SiteRegistry([Site(id=1, domain="example.com", timezone="UTC", tracking_id="FF-BENCH", created_at="")])
        figures: dict[str, Any] = {}
        clear_caches()
        enrich = enricher.Enricher(salts, open_geo(None), sites).enrich
        # The million prepared hits are the benchmark's, not the server's: keep the garbage
        # collector from walking them, as it never would in a server.
        gc.collect()
        gc.freeze()
        kinds: collections.Counter[str] = collections.Counter()
        for phase in ("cold", "warm"):
            # In batches of 1,000, as the batch API hands them over; the kinds are counted off
            # the clock, and each batch's events are dropped like the server drops them once
            # spooled (a million live events would measure the allocator, not enrichment).
            kinds.clear()
            elapsed = 0.0
            for i in range(0, len(hits), BATCH):
                batch = hits[i : i + BATCH]
                start = time.perf_counter()
                events = [enrich(h) for h in batch]
                elapsed += time.perf_counter() - start
                kinds.update(e.kind if e.kind != "dropped" else e.name for e in events if e is not None)
            figures[f"{phase}_hits_per_s"] = len(hits) / elapsed
        gc.unfreeze()
        figures.update(events=kinds["pageview"], ai_fetches=kinds["ai_fetch"], bots=kinds["bot"])
        figures["excluded"] = len(hits) - figures["events"] - figures["ai_fetches"] - figures["bots"]
        store.close()
    common.log(f"cold {figures['cold_hits_per_s']:,.0f} hits/s, warm {figures['warm_hits_per_s']:,.0f} hits/s")
    return figures


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hits", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=5_000)
    parser.add_argument("--ips", type=int, default=100_000)


if __name__ == "__main__":
    common.run_main(f"enrichment (target >= {TARGET:,} hits/s)", run_once, add_args, KEYS)
