"""Access-log import (issue 6): `footfall import` against GoAccess on the same 2,000,000-line
combined log, end to end, with peak RSS.

    .venv/bin/python benchmarks/bench_import.py [--runs 3] [--lines 2000000] [--keep-log PATH]

The log is generated once per run set (seeded): a month of traffic from ~60,000 visitors
browsing a 2,000-page site (each page view followed by its stylesheet, scripts and images,
some 404s, redirects and POSTs), with real user agents from device-detector's fixtures
(browsers, and bots incl. search engines and AI crawlers at ~20% of requests), IPv4 and IPv6
addresses, and referrers (search, social, AI assistants, other sites, the site itself, none).

Per run, in a fresh data directory with the site added:
- Footfall: `footfall import LOG --site example.com --no-progress --json`, a process of its own,
  timed from start to exit, when every event is committed and queryable; then
  `footfall stats` must count the page views the import reported. Peak RSS is the process's
  `ru_maxrss` (from wait4).
- GoAccess: `goaccess LOG --log-format=COMBINED -o report.html`, timed and measured the same way.
Both read the same file from the page cache (it is read once before the clock starts).
Target: Footfall lines/s ÷ GoAccess lines/s ≥ 1.0, Footfall peak RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.agent_corpus

from tests import agent_corpus

import common

KEYS = [
    "footfall_lines_per_s",
    "goaccess_lines_per_s",
    "ratio",
    "footfall_peak_rss_mb",
    "goaccess_peak_rss_mb",
    "footfall_seconds",
    "goaccess_seconds",
    "pageviews",
]
RESULTS = common.HERE / "results.json"

ASSETS = [
    "/static/app.css",
    "/static/app.js",
    "/static/vendor.js",
    "/img/logo.svg",
    "/favicon.ico",
    "/fonts/inter.woff2",
    "/img/hero.webp",
]
REFERRERS = [
    ("-", 40),
    ("https://www.google.com/", 20),
    ("https://www.bing.com/search?q=footfall", 3),
    ("https://duckduckgo.com/", 3),
    ("https://news.ycombinator.com/item?id=4242", 2),
    ("https://www.reddit.com/r/selfhosted/", 2),
    ("https://t.co/xyz", 1),
    ("https://chatgpt.com/", 1),
    ("https://www.perplexity.ai/", 1),
    ("https://blog.example.org/a-post", 2),
    ("https://github.com/", 2),
]
AI_BOTS = [
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
]


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.12:
        return f"2a0{rng.randint(1, 9)}:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
    return common.random_ip(rng)


def generate(path: Path, lines: int, seed: int = 6) -> None:
    """Write the benchmark log (sorted by time) to `path`."""
    rng = random.Random(seed)
    corpus = agent_corpus.load()
    browsers = sorted({b.user_agent for b in corpus.browsers if b.user_agent.strip() and '"' not in b.user_agent})
    browsers = rng.sample(browsers, min(3000, len(browsers)))
    bot_agents = sorted({b.user_agent for b in corpus.bots if b.user_agent.strip() and '"' not in b.user_agent})
    bot_agents = rng.sample(bot_agents, min(400, len(bot_agents))) + AI_BOTS * 20
    weights = [1 / (i + 1) ** 0.8 for i in range(len(browsers))]  # a few agents are most of the traffic
    pages = ["/"] + [
        f"/{section}/{slug}-{i}"
        for i, (section, slug) in enumerate(
            (
                rng.choice(["blog", "docs", "pricing", "about", "products", "guides"]),
                rng.choice(["alpha", "beta", "gamma", "delta"]),
            )
            for _ in range(1999)
        )
    ]
    page_weights = [1 / (i + 1) ** 0.9 for i in range(len(pages))]
    refs, ref_weights = zip(*REFERRERS, strict=True)
    end = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    start_s = int((end - dt.timedelta(days=30)).timestamp())
    span = 30 * 86400
    visitors = [(_ip(rng), rng.choices(browsers, weights)[0]) for _ in range(60_000)]
    records: list[tuple[int, str]] = []
    while len(records) < lines:
        t = start_s + rng.randrange(span)
        if rng.random() < 0.2:  # a bot: a burst of page fetches, no assets
            agent = rng.choice(bot_agents)
            ip = common.random_ip(rng)
            for _ in range(rng.randint(1, 20)):
                records.append((t, _line(ip, t, "GET", rng.choices(pages, page_weights)[0], 200, "-", agent, rng)))
                t += rng.randint(1, 30)
            continue
        ip, agent = rng.choice(visitors)
        referrer = rng.choices(refs, ref_weights)[0]
        for _ in range(max(1, int(rng.expovariate(1 / 3)))):
            page = rng.choices(pages, page_weights)[0]
            roll = rng.random()
            status, method = (
                (404, "GET")
                if roll < 0.03
                else (301, "GET")
                if roll < 0.05
                else (200, "POST")
                if roll < 0.07
                else (200, "GET")
            )
            records.append(
                (
                    t,
                    _line(
                        ip,
                        t,
                        method,
                        page + ("?utm_source=newsletter" if rng.random() < 0.03 else ""),
                        status,
                        referrer,
                        agent,
                        rng,
                    ),
                )
            )
            for asset in rng.sample(ASSETS, rng.randint(2, 6)):
                records.append(
                    (
                        t,
                        _line(
                            ip,
                            t,
                            "GET",
                            asset,
                            rng.choice((200, 200, 200, 304)),
                            "https://example.com" + page,
                            agent,
                            rng,
                        ),
                    )
                )
            referrer = "https://example.com" + page
            t += rng.randint(5, 400)
    records.sort(key=lambda r: r[0])
    with path.open("w") as fh:
        fh.writelines(text for _, text in records[:lines])


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _line(ip: str, t: int, method: str, path: str, status: int, referrer: str, agent: str, rng: random.Random) -> str:
    moment = time.gmtime(t)
    day = f"{moment.tm_mday:02d}/{_MONTHS[moment.tm_mon - 1]}/{moment.tm_year}"
    stamp = f"{day}:{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} +0000"
    return f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {rng.randint(200, 90000)} "{referrer}" "{agent}"\n'


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, subprocess.CompletedProcess[bytes]]:
    """Run a command; (wall seconds, peak RSS in KB, the finished process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=str(cwd), env=common.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_once(args: argparse.Namespace, log_path: Path, lines: int) -> dict[str, Any]:
    path_text = str(log_path)
    with log_path.open("rb") as fh:  # into the page cache for both (in pieces: a child's peak RSS
        while fh.read(1 << 24):  # counts from its fork, so this process must stay small)
            pass
    with common.data_dir() as (data, _token):
        seconds, rss_kb, done = timed(
            [
                common.FOOTFALL,
                "import",
                path_text,
                "--site",
                common.SITE,
                "--data-dir",
                str(data),
                "--no-progress",
                "--json",
            ],
            data,
        )
        if done.returncode != 0:
            raise RuntimeError(f"footfall import failed: {done.stderr.decode()[-2000:]}")
        summary = json.loads(done.stdout)
        first, last = summary["first"][:10], summary["last"][:10]
        report = common.stats(data, first, last)
        if report["totals"]["pageviews"] != summary["pageviews"]:
            raise RuntimeError(
                f"stats count {report['totals']['pageviews']} page views, the import {summary['pageviews']}"
            )
        common.log(
            f"footfall: {seconds:.1f} s, {lines / seconds:,.0f} lines/s, peak {rss_kb / 1024:.0f} MB; "
            f"{summary['pageviews']:,} page views, {summary['bots']:,} bots, {summary['ai_fetches']:,} AI fetches"
        )
        g_seconds, g_rss_kb, g_done = timed(
            ["goaccess", path_text, "--log-format=COMBINED", "--no-global-config", "-o", str(data / "report.html")],
            data,
        )
        if g_done.returncode != 0:
            raise RuntimeError(f"goaccess failed: {g_done.stderr.decode()[-2000:]}")
        common.log(f"goaccess: {g_seconds:.1f} s, {lines / g_seconds:,.0f} lines/s, peak {g_rss_kb / 1024:.0f} MB")
    return {
        "footfall_lines_per_s": lines / seconds,
        "goaccess_lines_per_s": lines / g_seconds,
        "ratio": g_seconds / seconds,
        "footfall_peak_rss_mb": rss_kb / 1024,
        "goaccess_peak_rss_mb": g_rss_kb / 1024,
        "footfall_seconds": seconds,
        "goaccess_seconds": g_seconds,
        "pageviews": summary["pageviews"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--keep-log", help="generate the log here (or reuse it if it exists)")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        generate(Path(args.keep_log), args.lines)
        return
    if shutil.which("goaccess") is None:
        sys.exit("goaccess is not installed: apt-get install -y goaccess")
    log_path = (
        Path(args.keep_log)
        if args.keep_log
        else Path(os.environ.get("TMPDIR", "/tmp")) / f"footfall-bench-{args.lines}.log"
    )
    if not log_path.exists():
        common.log(f"generating {args.lines:,} lines into {log_path}")
        # In a process of its own: a child's peak RSS (ru_maxrss) counts from its fork, so a
        # parent grown by the generation would lend both measured programs its size.
        subprocess.run(
            [sys.executable, __file__, "--generate-only", "--keep-log", str(log_path), "--lines", str(args.lines)],
            check=True,
        )
    lines = sum(1 for _ in log_path.open("rb"))
    runs = []
    for i in range(args.runs):
        common.log(f"import benchmark: run {i + 1}/{args.runs}")
        runs.append(run_once(args, log_path, lines))
    medians = common.print_runs(f"access-log import, {lines:,} lines", runs, KEYS)
    ok = medians["ratio"] >= 1.0 and medians["footfall_peak_rss_mb"] < 1024
    print(f"target: ratio >= 1.0 and peak RSS < 1024 MB: {'PASS' if ok else 'FAIL'}")
    goaccess_version = subprocess.run(["goaccess", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    output = Path(args.output)
    results: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    results["import"] = {
        "when": common.rfc3339(),
        "lines": lines,
        "log_bytes": log_path.stat().st_size,
        "goaccess": goaccess_version,
        "medians": medians,
        "runs": runs,
        "pass": ok,
    }
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {output}")


if __name__ == "__main__":
    main()
