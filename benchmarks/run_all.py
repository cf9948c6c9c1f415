"""Run every Footfall benchmark `--runs` times (default 3), print medians against the targets,
and save everything to benchmarks/results.json.

    .venv/bin/python benchmarks/run_all.py [--runs 3] [--only single,batch,lag]

The rounds are interleaved (single, batch, lag; single, batch, lag; ...) so a noisy spell on
the shared machine spreads over the benchmarks instead of sinking one of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import bench_batch
import bench_lag
import bench_single
import common

RESULTS = common.HERE / "results.json"

# (benchmark, key, label, unit, target test, target text)
Check = Callable[[float], bool] | None
ROWS: list[tuple[str, str, str, str, Check, str]] = [
    ("single", "footfall_eps", "1 single-record ingest: footfall", "events/s", None, ""),
    ("single", "footfall_p50_ms", "1   footfall latency p50", "ms", None, ""),
    ("single", "footfall_p99_ms", "1   footfall latency p99", "ms", None, ""),
    ("single", "bare_rps", "1 single-record ingest: bare ASGI", "req/s", None, ""),
    ("single", "bare_p50_ms", "1   bare latency p50", "ms", None, ""),
    ("single", "bare_p99_ms", "1   bare latency p99", "ms", None, ""),
    ("single", "ratio", "1 footfall / bare throughput", "", lambda v: v >= 0.5, ">= 0.50"),
    ("batch", "e2e_eps", "2 batch ingest, ack to queryable", "events/s", lambda v: v >= 50_000, ">= 50,000"),
    ("batch", "ack_eps", "2   acknowledged rate", "events/s", None, ""),
    ("batch", "drain_after_ack_s", "2   drain after last ack", "s", None, ""),
    ("lag", "lag_p50_ms", "3 queryability lag p50 @1000/s", "ms", None, ""),
    ("lag", "lag_p99_ms", "3 queryability lag p99 @1000/s", "ms", lambda v: v < 2000, "< 2,000"),
    ("lag", "achieved_rps", "3   achieved request rate", "req/s", None, ""),
    ("single", "idle_rss_mb", "4 server RSS idle", "MB", lambda v: v < 200, "< 200"),
    ("single", "peak_rss_mb", "4 server RSS peak, single-record load", "MB", lambda v: v < 200, "< 200"),
    ("single", "peak_resident_mb", "4   (info) peak, helper's shared pages once", "MB", None, ""),
    ("single", "after_load_rss_mb", "4   (info) RSS 20 s after that load", "MB", None, ""),
    ("batch", "peak_rss_mb", "4   (info) RSS peak, batch load", "MB", None, ""),
]


def environment() -> dict[str, Any]:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=common.ROOT, timeout=30).stdout.strip()
        except OSError:
            return ""

    wrk_version = out("wrk", "-v").splitlines()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": os.getloadavg(),
        "wrk": wrk_version[0] if wrk_version else "",
        "git_commit": out("git", "rev-parse", "HEAD"),
        "git_dirty_files": out("git", "status", "--porcelain").splitlines(),
        "server_env": common.SERVER_ENV,
    }


def keep_foreign_figures(payload: dict[str, Any], path: str) -> None:
    """Carry over what other scripts added to the results file (bench_queries.py's "queries"),
    so this run replaces only its own benchmarks' figures."""
    try:
        with open(path) as fh:
            old = json.load(fh)
    except (OSError, ValueError):
        return
    ours = {"single", "batch", "lag"}
    payload["table"] += [r for r in old.get("table", []) if r.get("benchmark") not in ours]
    for key in ("settings", "medians", "runs"):
        for name, value in old.get(key, {}).items():
            if name not in ours:
                payload[key][name] = value
    for key, value in old.items():  # sections of their own (bench_import.py's "import", ...)
        payload.setdefault(key, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="single,batch,lag", help="comma-separated subset of single,batch,lag")
    parser.add_argument("--output", default=str(RESULTS))
    bench_single.add_args(parser)  # the single-record options; batch and lag use their defaults
    batch_args = argparse.ArgumentParser(add_help=False)
    bench_batch.add_args(batch_args)
    lag_args = argparse.ArgumentParser(add_help=False)
    bench_lag.add_args(lag_args)
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if "single" in only:
        bench_single.check_wrk()
    batch_ns = batch_args.parse_args([])
    lag_ns = lag_args.parse_args([])

    env = environment()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ("single", "batch", "lag") if name in only}
    started = time.monotonic()
    for i in range(args.runs):
        if "single" in only:
            common.log(f"round {i + 1}/{args.runs}: single-record ingest + memory")
            runs["single"].append(bench_single.run_once(args))
        if "batch" in only:
            common.log(f"round {i + 1}/{args.runs}: batch ingest")
            runs["batch"].append(bench_batch.run_once(batch_ns, seed=i + 1))
        if "lag" in only:
            common.log(f"round {i + 1}/{args.runs}: queryability lag")
            runs["lag"].append(bench_lag.run_once(lag_ns, seed=i + 1))
    env["wall_seconds"] = round(time.monotonic() - started, 1)

    medians = {
        name: {k: common.median([float(r[k]) for r in rs]) for k in rs[0] if isinstance(rs[0][k], int | float)}
        for name, rs in runs.items()
    }
    table = []
    for bench, key, label, unit, check, target in ROWS:
        if bench not in runs:
            continue
        value = medians[bench][key]
        per_run = [float(r[key]) for r in runs[bench]]
        verdict = "" if check is None else ("PASS" if check(value) else "FAIL")
        table.append(
            {
                "benchmark": bench,
                "figure": key,
                "label": label,
                "unit": unit,
                "median": value,
                "runs": per_run,
                "target": target,
                "result": verdict,
            }
        )

    digits = {"ratio": 2}
    print(
        f"\nFootfall benchmarks: median of {args.runs} runs ({env['cpus']} CPUs, {env['date']}, "
        f"{env['wall_seconds']:.0f} s)\n"
    )
    header = f"{'figure':<40} {'median':>12} {'unit':<9} {'runs':<30} {'target':<10} result"
    print(header)
    print("-" * len(header))
    for row in table:
        d = digits.get(row["figure"], 1 if row["median"] < 1000 else 0)
        runs_text = ", ".join(common.fmt(v, d) for v in row["runs"])
        print(
            f"{row['label']:<40} {common.fmt(row['median'], d):>12} {row['unit']:<9} {runs_text:<30} "
            f"{row['target']:<10} {row['result']}"
        )
    failed = [r["label"].strip() for r in table if r["result"] == "FAIL"]
    print(
        f"\n{len([r for r in table if r['result']])} targets checked, {len(failed)} missed"
        + (": " + "; ".join(failed) if failed else "")
    )

    settings = {
        "single": {k: getattr(args, k) for k in ("connections", "threads", "duration", "warmup")},
        "batch": vars(batch_ns),
        "lag": vars(lag_ns),
    }
    payload = {"environment": env, "settings": settings, "table": table, "medians": medians, "runs": runs}
    keep_foreign_figures(payload, args.output)
    with open(args.output, "w") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")
    print(f"saved {args.output}")
    sys.exit(0)


if __name__ == "__main__":
    main()
