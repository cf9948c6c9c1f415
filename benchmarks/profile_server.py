"""Profile the server under load with py-spy and summarise where the time goes.

    .venv/bin/pip install py-spy
    .venv/bin/python benchmarks/profile_server.py single [--seconds 15] [--threads-filter MainThread]
    .venv/bin/python benchmarks/profile_server.py batch  [--seconds 15]

`single`: the ASGI wrapper under wrk on /api/ingest/server/pageview (as bench_single.py).
`batch`: `footfall serve` under a loop of 1,000-record batches (as bench_batch.py).
py-spy samples every thread of the server (--idle off, so waiting threads add nothing); the
collapsed stacks are saved next to a summary: per thread, the share of samples, then the
functions with the highest inclusive and self share of that thread's samples.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import subprocess
import threading
import time
from pathlib import Path

import bench_batch
import bench_single
import common

OUT = common.HERE / "profiles"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def summarise(collapsed: Path, top: int) -> str:
    threads: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    self_: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0]
        thread = re.sub(r"\s*\(idle\)|\s*\(active\)", "", thread)
        thread = re.sub(r"process \d+:\"[^\"]*\";?", "", thread).strip() or "?"
        funcs = [short(f) for f in frames[1:]]
        totals[thread] += count
        for f in set(funcs):  # inclusive: once per sample
            threads[thread][f] += count
        if funcs:
            self_[thread][funcs[-1]] += count
    all_samples = sum(totals.values())
    lines = [f"{all_samples} samples with a Python stack on CPU (py-spy, idle frames dropped)"]
    for thread, n in totals.most_common():
        lines.append(f"\n### {thread}: {n} samples, {100 * n / all_samples:.1f}% of all")
        lines.append("inclusive %  function")
        for f, c in threads[thread].most_common(top):
            lines.append(f"{100 * c / n:10.1f}  {f}")
        lines.append("self %       function")
        for f, c in self_[thread].most_common(top // 2):
            lines.append(f"{100 * c / n:10.1f}  {f}")
    return "\n".join(lines)


async def drive_batches(port: int, token: str, bodies: list[bytes], stop: threading.Event) -> None:
    """Send batches over 4 connections, round and round, until `stop` is set."""
    reqs = [common.build_request("POST", bench_batch.BATCH_PATH, port, b, token) for b in bodies]
    conns = [await common.HttpConn.open(port) for _ in range(4)]
    sent = 0

    async def worker(conn: common.HttpConn, k: int) -> None:
        nonlocal sent
        i = k
        while not stop.is_set():
            await conn.request(reqs[i % len(reqs)])
            sent += 1000
            i += len(conns)

    await asyncio.gather(*(worker(c, k) for k, c in enumerate(conns)))
    for c in conns:
        await c.close()
    common.log(f"sent {sent:,} events")


def main() -> None:
    parser = argparse.ArgumentParser(description="profile the server under load with py-spy")
    parser.add_argument("mode", choices=["single", "batch"])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--native", action="store_true", help="include native (C) frames")
    parser.add_argument("--gil", action="store_true", help="only sample the thread holding the GIL")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    collapsed = OUT / f"{args.mode}-{stamp}.txt"
    spy = [str(common.VENV_BIN / "py-spy"), "record", "--format", "raw", "--threads", "--rate", str(args.rate)]
    if args.native:
        spy.append("--native")
    if args.gil:
        spy.append("--gil")
    with common.data_dir() as (data, token):
        kind = "wrapper" if args.mode == "single" else "footfall"
        with common.server(data, kind) as srv:
            cmd = [*spy, "--duration", str(round(args.seconds)), "--pid", str(srv.pid), "--output", str(collapsed)]
            if args.mode == "single":
                bench_single.wrk(srv.port, bench_single.INGEST_PATH, token, 2, 50, 2)  # warm-up
                prof = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(0.5)
                r = bench_single.wrk(srv.port, bench_single.INGEST_PATH, token, args.seconds, 50, 2)
                common.log(f"under profiling: {r['ok_per_s']:,.0f} events/s")
            else:
                bodies = bench_batch.build_bodies(100_000, 1000, 7)
                stop = threading.Event()
                driver = threading.Thread(target=lambda: asyncio.run(drive_batches(srv.port, token, bodies, stop)))
                driver.start()
                time.sleep(2)
                prof = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                prof.wait()
                stop.set()
                driver.join()
            _, err = prof.communicate(timeout=120)
            if prof.returncode != 0:
                raise SystemExit(f"py-spy failed: {err.decode()[-2000:]}")
    summary = summarise(collapsed, args.top)
    (OUT / f"{args.mode}-{stamp}.summary.txt").write_text(summary + "\n")
    print(summary)
    print(f"\ncollapsed stacks: {collapsed}")


if __name__ == "__main__":
    main()
