"""Shared helpers for the Footfall benchmarks: data directories, servers, a tiny HTTP client.

Everything here talks to the server the way an outside client would: HTTP on loopback, the
`footfall` CLI, and /proc for the server's memory and CPU. Nothing reads the store directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
FOOTFALL = str(VENV_BIN / "footfall")
SITE = "example.com"

# Same settings for every server a benchmark starts: no per-IP rate limit, no demo site.
SERVER_ENV = {"FOOTFALL_INGEST_RATE_LIMIT": "0", "FOOTFALL_DEMO_SITE": "false", "FOOTFALL_LOG_LEVEL": "info"}

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Mobile Safari/537.36",
]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rfc3339(moment: dt.datetime | None = None) -> str:
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    clean = [v for v in values if v == v]  # drop NaN
    return statistics.median(clean) if clean else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def random_ip(rng: random.Random) -> str:
    return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


# -- data directory -------------------------------------------------------------------------


def env() -> dict[str, str]:
    return {**os.environ, **SERVER_ENV}


def cli(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run([FOOTFALL, *args], env=env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"footfall {' '.join(args)} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return proc.stdout


@contextlib.contextmanager
def data_dir(keep: bool = False) -> Iterator[tuple[Path, str]]:
    """A fresh data directory with site example.com and a token; yields (dir, token secret)."""
    base = Path(os.environ.get("FOOTFALL_BENCH_TMP", tempfile.gettempdir()))
    path = Path(tempfile.mkdtemp(prefix="footfall-bench-", dir=base))
    try:
        cli("sites", "add", SITE, "--data-dir", str(path))
        out = cli(
            "tokens",
            "create",
            "--name",
            "bench",
            "--scope",
            "site.manage_data",
            "--scope",
            "stats.read",
            "--site",
            SITE,
            "--data-dir",
            str(path),
            "--json",
        )
        yield path, json.loads(out)["token"]
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def stats(data: Path, day_from: str, day_to: str) -> dict[str, Any]:
    """`footfall stats --json` (through the running server's control socket)."""
    out = cli("stats", "--site", SITE, "--from", day_from, "--to", day_to, "--data-dir", str(data), "--json")
    result: dict[str, Any] = json.loads(out)
    return result


# -- servers --------------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    data: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def readyz(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url("/readyz"), timeout=10) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body

    def wait_drained(self, expected: int, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the writer has committed `expected` events and has no lag."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.readyz()
            if r["writer"]["events_committed"] >= expected and r["writer"]["lag_seconds"] == 0:
                return r
            if time.monotonic() > deadline:
                raise TimeoutError(f"writer did not drain to {expected} events: {r['writer']} {r['spool']}")
            time.sleep(0.05)

    def rss_kb(self) -> int:
        """VmRSS summed over the process tree (the figure the targets are checked against)."""
        return tree_status(self.pid, "VmRSS")

    def resident_kb(self) -> int:
        return resident_kb(self.pid)

    def hwm_kb(self) -> int:
        return tree_status(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                log(f"server {self.pid} did not stop in 90 s; killing it")
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def server(data: Path, kind: str = "footfall") -> Iterator[Server]:
    """Start `footfall serve` (kind="footfall") or the benchmark's ASGI wrapper (kind="wrapper")."""
    port = free_port()
    if kind == "footfall":
        cmd = [FOOTFALL, "serve", "--data-dir", str(data), "--port", str(port)]
    elif kind == "wrapper":
        cmd = [sys.executable, str(HERE / "asgi_wrapper.py"), "--data-dir", str(data), "--port", str(port)]
    else:
        raise ValueError(kind)
    log_path = data / "bench-server.out"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env(), stdout=out, stderr=subprocess.STDOUT, cwd=str(data))
    srv = Server(proc, port, data, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                srv.readyz()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield srv
    finally:
        srv.stop()


# -- /proc ----------------------------------------------------------------------------------


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def process_tree(pid: int) -> list[int]:
    """A process and its descendants. The server's child (the spool's sync helper) is part
    of the server: its memory and CPU count with the server's."""
    tree = [pid]
    for member in tree:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{member}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{member}/task/{task}/children") as fh:
                    tree += [int(child) for child in fh.read().split()]
    return tree


def tree_status(pid: int, key: str) -> int:
    """A /proc status figure (VmRSS, VmHWM) summed over the process tree (for VmHWM, an upper
    bound: the members' peaks need not coincide)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, KeyError):
            total += proc_status(member, key)
    return total


def private_kb(pid: int) -> int:
    """The pages only this process maps (Private_Clean + Private_Dirty: its USS)."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def resident_kb(pid: int) -> int:
    """What the server keeps resident: its own VmRSS, and what its children add, their private
    pages. The sync helper is a Python interpreter whose libraries (libpython, libc, ...) are
    the server's too: tree_status's sum of VmRSS counts those ~6 MB twice. Reported beside
    that sum, which stays the figure the targets are checked against."""
    total = proc_status(pid, "VmRSS")
    for member in process_tree(pid)[1:]:
        with contextlib.suppress(OSError):
            total += private_kb(member)
    return total


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree (all threads, children included)."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            with open(f"/proc/{member}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


@dataclass
class RssSampler:
    """Samples a process tree's VmRSS (and resident_kb) every `interval` seconds on a
    background thread."""

    pid: int
    interval: float = 0.1
    peak_kb: int = 0  # VmRSS summed over the tree (tree_status)
    peak_resident_kb: int = 0  # resident_kb
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, KeyError):
                kb = tree_status(self.pid, "VmRSS")
                self.samples.append(kb)
                self.peak_kb = max(self.peak_kb, kb)
                self.peak_resident_kb = max(self.peak_resident_kb, resident_kb(self.pid))
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


# -- a minimal keep-alive HTTP/1.1 client (lighter than httpx, so the load generator stays cheap) --


class HttpConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-built request; returns (status, body)."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            return status, b"".join(parts)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def build_request(method: str, path: str, port: int, body: bytes = b"", token: str | None = None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    if body or method == "POST":
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def per_call_us(func: Callable[[str], object], inputs: Sequence[str]) -> float:
    """Microseconds per call of `func` over `inputs`, in one timed pass."""
    start = time.perf_counter()
    for item in inputs:
        func(item)
    return (time.perf_counter() - start) / len(inputs) * 1e6


def fmt(value: float, digits: int = 1) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


def print_runs(title: str, runs: list[dict[str, Any]], keys: list[str]) -> dict[str, float]:
    """Print each run's figures and their medians; returns the medians."""
    print(f"\n== {title} ==")
    width = max(len(k) for k in keys)
    print(
        f"{'figure':<{width}}  "
        + "  ".join(f"{'run ' + str(i + 1):>12}" for i in range(len(runs)))
        + f"  {'median':>12}"
    )
    medians = {}
    for k in keys:
        vals = [float(r[k]) for r in runs]
        medians[k] = median(vals)
        print(f"{k:<{width}}  " + "  ".join(f"{fmt(v, 2):>12}" for v in vals) + f"  {fmt(medians[k], 2):>12}")
    return medians


def run_main(
    title: str,
    run_once: Callable[[argparse.Namespace, int], dict[str, Any]],
    add_args: Callable[[argparse.ArgumentParser], None],
    keys: list[str],
) -> None:
    """Command-line entry of a single benchmark: --runs N rounds, then a table of medians."""
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--runs", type=int, default=3)
    add_args(parser)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        log(f"{title}: run {i + 1}/{args.runs}")
        runs.append(run_once(args, i + 1))
    print_runs(title, runs, keys)


def save_figures(
    benchmark: str, table: list[dict[str, Any]], runs: list[dict[str, float]], settings: dict[str, Any],
    output: Path = HERE / "results.json",
) -> None:
    """Put one benchmark's figures into results.json in run_all.py's shape (table rows with
    "benchmark", medians/runs/settings keyed by it), replacing that benchmark's earlier figures and
    keeping every other's."""
    payload: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    payload["table"] = [r for r in payload.get("table", []) if r.get("benchmark") != benchmark] + table
    payload.setdefault("medians", {})[benchmark] = {r["figure"]: r["median"] for r in table}
    payload.setdefault("runs", {})[benchmark] = runs
    payload.setdefault("settings", {})[benchmark] = {
        **settings,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {output}")
