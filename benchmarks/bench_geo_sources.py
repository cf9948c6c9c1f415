"""Per-call cost of geolocation and source classification, cold (cache misses) and warm (hits).

    .venv/bin/python benchmarks/bench_geo_sources.py [--mmdb PATH] [--n 50000] [--runs 3]

Cold figures use distinct inputs on a fresh cache; warm figures repeat the same inputs, as live
traffic repeats visitors and referrers. Prints the median of the runs, in microseconds per call.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import common
from footfall.enrich import sources
from footfall.enrich.geo import open_geo, public_address


def public_ips(n: int, rng: random.Random) -> list[str]:
    """Distinct public addresses, a quarter of them IPv6 (inside 2000::/3, where traffic is)."""
    found: set[str] = set()
    while len(found) < n:
        if rng.random() < 0.75:
            ip = ".".join(str(rng.randrange(256)) for _ in range(4))
        else:
            ip = f"2{rng.randrange(16**3):03x}:{rng.randrange(16**4):x}::{rng.randrange(16**4):x}"
        if public_address(ip) == ip:
            found.add(ip)
    return list(found)


def referrer_hosts(n: int, rng: random.Random) -> list[str]:
    """Distinct hosts: half listed sources with made-up mirror or country variants, half unknown."""
    known = ["google.com", "bing.com", "news.ycombinator.com", "facebook.com", "chatgpt.com", "t.co", "reddit.com"]
    hosts: set[str] = set()
    while len(hosts) < n:
        i = len(hosts)
        if i % 2:
            hosts.add(f"blog{i}.example{i % 997}.org")
        else:
            hosts.add(f"m{i}.{rng.choice(known)}" if i % 4 else f"google.{rng.choice(['de', 'fr', 'co.uk'])}{i}")
    return list(hosts)


def bench_geo(path: Path | None, n: int, rng: random.Random) -> tuple[float, float]:
    ips = public_ips(n, rng)
    locator = open_geo(path, cache_size=n)
    cold = common.per_call_us(locator.lookup, ips)
    warm = common.per_call_us(locator.lookup, ips)
    locator.close()
    return cold, warm


def bench_sources(n: int, rng: random.Random) -> tuple[float, float]:
    hosts = referrer_hosts(n, rng)
    site = f"site{rng.randrange(10**9)}.example"  # a site never seen, so every call misses first

    def classify(host: str) -> object:
        return sources.classify_source(host, site)

    cold = common.per_call_us(classify, hosts)
    warm = common.per_call_us(classify, hosts[: sources.CACHE_SIZE])
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mmdb", type=Path, help="also measure this MaxMind-format file")
    parser.add_argument("--n", type=int, default=50_000, help="distinct inputs per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(7)

    start = time.perf_counter()
    open_geo(None).close()
    print(f"geoip2fast data load: {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    sources.preload()
    print(f"source lists load:    {(time.perf_counter() - start) * 1000:.0f} ms")

    cases: list[tuple[str, Callable[[], tuple[float, float]]]] = [
        ("geo, geoip2fast", lambda: bench_geo(None, args.n, rng)),
        ("sources.classify_source", lambda: bench_sources(min(args.n, sources.CACHE_SIZE), rng)),
    ]
    if args.mmdb:
        cases.insert(1, (f"geo, {args.mmdb.name}", lambda: bench_geo(args.mmdb, args.n, rng)))
    print(f"{'what':<28} {'cold µs/call':>13} {'warm µs/call':>13}")
    for name, run in cases:
        results = [run() for _ in range(args.runs)]
        cold = statistics.median(r[0] for r in results)
        warm = statistics.median(r[1] for r in results)
        print(f"{name:<28} {cold:>13.2f} {warm:>13.2f}")


if __name__ == "__main__":
    main()
