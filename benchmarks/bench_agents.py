"""Per-call cost of user-agent parsing and bot detection, cold (cache misses) and warm (hits).

    .venv/bin/python benchmarks/bench_agents.py [--n 5000] [--runs 3]

The agents are distinct real ones from device-detector's test fixtures (a dev dependency):
browsers, apps and bots in the proportions the fixtures hold. Cold figures clear the cache and
call each agent once; warm figures call the same agents again. Prints the median of the runs,
in microseconds per call, and the import (rule loading) time of each module.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import common

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.agent_corpus

from tests import agent_corpus


def distinct_agents(n: int, rng: random.Random) -> list[str]:
    corpus = agent_corpus.load()
    every = {b.user_agent for b in corpus.browsers} | {b.user_agent for b in corpus.bots}
    agents = sorted(a for a in every if a.strip())
    return rng.sample(agents, min(n, len(agents)))


def timed_import(module: str) -> float:
    start = time.perf_counter()
    __import__(module)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5_000, help="distinct agents per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    print(f"import footfall.enrich.useragents: {timed_import('footfall.enrich.useragents'):.0f} ms")
    print(f"import footfall.enrich.bots:       {timed_import('footfall.enrich.bots'):.0f} ms")
    from footfall.enrich import bots, useragents

    print(f"user-agent resolver: {useragents.RESOLVER}")
    agents = distinct_agents(args.n, random.Random(7))
    cases: list[tuple[str, Callable[[str], object], Callable[[], None]]] = [
        ("parse_agent", useragents.parse_agent, useragents.cache_clear),
        ("detect_bot", bots.detect_bot, bots.cache_clear),
    ]
    print(f"{len(agents)} distinct agents")
    print(f"{'what':<14} {'cold µs/call':>13} {'warm µs/call':>13}")
    for name, func, clear in cases:
        cold_runs, warm_runs = [], []
        for _ in range(args.runs):
            clear()
            cold_runs.append(common.per_call_us(func, agents))
            warm_runs.append(common.per_call_us(func, agents))
        print(f"{name:<14} {statistics.median(cold_runs):>13.2f} {statistics.median(warm_runs):>13.2f}")


if __name__ == "__main__":
    main()
