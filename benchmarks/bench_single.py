"""Benchmarks 1 and 4: single-record ingest at saturation against a bare ASGI endpoint, and memory.

    .venv/bin/python benchmarks/bench_single.py [--runs 3] [--connections 50] [--threads 2] [--duration 10]

One run: a fresh data directory; the ASGI wrapper (asgi_wrapper.py: Footfall's app plus a raw
202 responder on /bare, one uvicorn process); idle RSS; wrk against /bare (warm-up, then the
measured run); wrk against /api/ingest/server/pageview with the same request bytes (warm-up,
wait for the writer to drain, then the measured run, sampling RSS); finally the writer must
commit every acknowledged event, and RSS is read again 20 s later. Figures are the median over the runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from typing import Any

import common

INGEST_PATH = "/api/ingest/server/pageview"
BARE_PATH = "/bare"

KEYS = [
    "bare_rps",
    "bare_p50_ms",
    "bare_p99_ms",
    "bare_server_cpu_pct",
    "footfall_eps",
    "footfall_p50_ms",
    "footfall_p99_ms",
    "footfall_server_cpu_pct",
    "ratio",
    "idle_rss_mb",
    "peak_rss_mb",
    "after_load_rss_mb",
]


def wrk(port: int, path: str, token: str, seconds: float, connections: int, threads: int) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(common.HERE / "ingest.lua"),
        f"http://127.0.0.1:{port}",
        "--",
        path,
        token,
        common.rfc3339(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
            ok = result["requests"] - result["status_errors"]
            result["ok"] = ok
            result["ok_per_s"] = ok / (result["duration_us"] / 1e6)
            errors = {
                k: result[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
            }
            if any(errors.values()):
                common.log(f"wrk {path}: errors {errors}")
            return result
    raise RuntimeError(f"wrk printed no result (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def phase(srv: common.Server, path: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    cpu0, t0 = srv.cpu_seconds(), time.monotonic()
    result = wrk(srv.port, path, token, args.duration, args.connections, args.threads)
    result["server_cpu_pct"] = 100 * (srv.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    return result


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    with common.data_dir() as (data, token), common.server(data, "wrapper") as srv:
        time.sleep(args.settle)
        idle_kb, idle_resident_kb = srv.rss_kb(), srv.resident_kb()

        wrk(srv.port, BARE_PATH, token, args.warmup, args.connections, args.threads)
        bare = phase(srv, BARE_PATH, token, args)
        common.log(
            f"bare: {bare['ok_per_s']:,.0f} req/s, p50 {bare['p50_us'] / 1000:.2f} ms, "
            f"p99 {bare['p99_us'] / 1000:.2f} ms, server CPU {bare['server_cpu_pct']:.0f}%"
        )

        warm = wrk(srv.port, INGEST_PATH, token, args.warmup, args.connections, args.threads)
        srv.wait_drained(warm["ok"])
        with common.RssSampler(srv.pid) as rss:
            ff = phase(srv, INGEST_PATH, token, args)
        acked = warm["ok"] + ff["ok"]
        t_acked = time.monotonic()
        ready = srv.wait_drained(acked)
        drain_s = time.monotonic() - t_acked
        peak_kb = max(rss.peak_kb, srv.rss_kb())
        peak_resident_kb = max(rss.peak_resident_kb, srv.resident_kb())
        hwm_kb = srv.hwm_kb()
        common.log(
            f"footfall: {ff['ok_per_s']:,.0f} events/s, p50 {ff['p50_us'] / 1000:.2f} ms, "
            f"p99 {ff['p99_us'] / 1000:.2f} ms, server CPU {ff['server_cpu_pct']:.0f}%, "
            f"drained {drain_s:.2f} s after the run, committed {ready['writer']['events_committed']}/{acked}"
        )
        fsyncs, records = ready["spool"]["fsyncs"], ready["spool"]["records_written"]
        # What the server keeps once the load is over: the writer's idle checkpoint comes at
        # most 10 s after its last batch, then the memory is handed back.
        time.sleep(args.after_load)
        after_kb = srv.rss_kb()
        # The high-water mark over the whole life of the server, the idle checkpoint and fold
        # after the load included (what a machine must have for it).
        hwm_end_kb = srv.hwm_kb()
        common.log(f"memory: idle {idle_kb / 1024:.0f} MB, peak {peak_kb / 1024:.0f} MB, "
                   f"{args.after_load:.0f} s after the load {after_kb / 1024:.0f} MB")
    return {
        "bare_rps": bare["ok_per_s"],
        "bare_p50_ms": bare["p50_us"] / 1000,
        "bare_p99_ms": bare["p99_us"] / 1000,
        "bare_server_cpu_pct": bare["server_cpu_pct"],
        "footfall_eps": ff["ok_per_s"],
        "footfall_p50_ms": ff["p50_us"] / 1000,
        "footfall_p99_ms": ff["p99_us"] / 1000,
        "footfall_server_cpu_pct": ff["server_cpu_pct"],
        "footfall_errors": ff["status_errors"] + ff["timeouts"] + ff["read_errors"],
        "ratio": ff["ok_per_s"] / bare["ok_per_s"],
        "idle_rss_mb": idle_kb / 1024,
        "peak_rss_mb": peak_kb / 1024,
        "idle_resident_mb": idle_resident_kb / 1024,
        "peak_resident_mb": peak_resident_kb / 1024,
        "after_load_rss_mb": after_kb / 1024,
        "vm_hwm_mb": hwm_kb / 1024,
        "vm_hwm_end_mb": hwm_end_kb / 1024,
        "drain_after_run_s": drain_s,
        # wrk stops without counting requests in flight; the server still commits them
        "committed_minus_acked": ready["writer"]["events_committed"] - acked,
        "spool_records_per_fsync": records / max(1, fsyncs),
    }


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk warm-up before each measured run")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after start-up before idle RSS is read")
    parser.add_argument("--after-load", type=float, default=20.0, help="seconds after the drain to RSS again")


def check_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")


def main() -> None:
    parser = argparse.ArgumentParser(description="single-record ingest vs a bare ASGI endpoint; server memory")
    parser.add_argument("--runs", type=int, default=3)
    add_args(parser)
    args = parser.parse_args()
    check_wrk()
    runs = []
    for i in range(args.runs):
        common.log(f"single-record run {i + 1}/{args.runs}")
        runs.append(run_once(args))
    extra = ["idle_resident_mb", "peak_resident_mb", "vm_hwm_mb", "vm_hwm_end_mb", "spool_records_per_fsync"]
    common.print_runs("single-record ingest and memory", runs, [*KEYS, *extra])


if __name__ == "__main__":
    main()
