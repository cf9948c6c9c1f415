"""One spool commit: how long a write + sync of one group of records takes, on this disk.

    .venv/bin/python benchmarks/bench_spool.py [--runs 3] [--commits 2000] [--bytes 4000]

Per run, in a fresh directory under $TMPDIR (or FOOTFALL_BENCH_TMP), `--commits` commits of
`--bytes` each (about a dozen single records), one after the other, timed four ways:
- `append_fsync`: O_APPEND write + fsync, what the spool did before segments were zero-filled;
- `append_fdatasync`: the same with fdatasync;
- `zeroed_fdatasync`: overwrite of a zero-filled file + fdatasync, what the spool now does;
- `spool_commit`: `Spool.append_sync` itself (zero-filling as it goes, written and synced in
  the calling thread; the event loop's groups are synced by the sync helper instead).
Prints p50/p90/p99 in microseconds per way and the medians over runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
from footfall.pipeline.spool import Spool, frame

WAYS = ["append_fsync", "append_fdatasync", "zeroed_fdatasync", "spool_commit"]


def timed(commits: int, commit: Callable[[int], None]) -> list[float]:
    out = []
    for i in range(commits):
        t0 = time.perf_counter()
        commit(i)
        out.append((time.perf_counter() - t0) * 1e6)
    return sorted(out)


def raw_file(path: Path, commits: int, data: bytes, zeroed: bool, sync: Callable[[int], None]) -> list[float]:
    flags = os.O_WRONLY | os.O_CREAT | (0 if zeroed else os.O_APPEND)
    fd = os.open(path, flags, 0o600)
    try:
        if zeroed:
            os.write(fd, bytes(commits * len(data)))
            os.fsync(fd)

        def commit(i: int) -> None:
            if zeroed:
                os.pwrite(fd, data, i * len(data))
            else:
                os.write(fd, data)
            sync(fd)

        return timed(commits, commit)
    finally:
        os.close(fd)


def run_once(args: argparse.Namespace, _run: int) -> dict[str, Any]:
    base = Path(os.environ.get("FOOTFALL_BENCH_TMP", tempfile.gettempdir()))
    record = frame(b'{"site_id":1,"kind":"pageview","pathname":"/' + b"x" * 300 + b'"}')
    data = record * max(1, args.bytes // len(record))
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=base, prefix="ff-spool-") as tmp:
        d = Path(tmp)
        lat = {
            "append_fsync": raw_file(d / "a", args.commits, data, False, os.fsync),
            "append_fdatasync": raw_file(d / "b", args.commits, data, False, os.fdatasync),
            "zeroed_fdatasync": raw_file(d / "c", args.commits, data, True, os.fdatasync),
        }
        spool = Spool(d / "spool", 64 << 20, 3600.0)
        try:
            lat["spool_commit"] = timed(args.commits, lambda _i: spool.append_sync(data, len(data) // len(record)))
        finally:
            spool.close()
    for way in WAYS:
        values = lat[way]
        for pct in (50, 90, 99):
            figures[f"{way}_p{pct}_us"] = common.percentile(values, pct)
    common.log("  ".join(f"{w} p50 {figures[w + '_p50_us']:.0f} us" for w in WAYS))
    return figures


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--bytes", type=int, default=4000, help="bytes per commit")


if __name__ == "__main__":
    common.run_main(
        "spool commit latency", run_once, add_args, [f"{w}_p{p}_us" for w in WAYS for p in (50, 90, 99)]
    )
