"""Per-request overhead of the Python client's middleware (clients/python), p50 and p99.

    .venv/bin/python benchmarks/bench_middleware.py [--runs 5] [--requests 10000] [--warmup 500]

Each app is called in-process with a synthetic GET of an HTML page (a browser's headers,
X-Forwarded-For from a trusted proxy), so no network noise: the same app without and with the
middleware, one request at a time, timing every call. The middleware's client sends to a real
`footfall serve` on loopback in the background, as in production, so its sending thread (or
task) competes with the requests as it would. The overhead is the difference of the two
percentiles; each run measures both, alternating which goes first, and the figures are the
medians of the runs. Target: < 50 µs at p50.

Apps: a bare WSGI and a bare ASGI callable (the middleware's cost alone), and the Flask, Django,
FastAPI and Litestar apps of tests/client_apps.py, as users run them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import common

sys.path.insert(0, str(common.ROOT))  # tests.client_apps
sys.path.insert(0, str(common.ROOT / "clients" / "python" / "src"))  # the client, from source

from footfall_client import AsyncFootfall, Footfall
from footfall_client.asgi import FootfallMiddleware as AsgiMiddleware
from footfall_client.wsgi import FootfallMiddleware as WsgiMiddleware
from tests import client_apps

TARGET_P50_US = 50.0
PATH, QUERY = "/pricing", "utm_source=newsletter&ref=hn"
HEADERS = [
    ("host", "example.com"),
    ("user-agent", common.USER_AGENTS[0]),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("accept-language", "de-DE,de;q=0.9,en;q=0.5"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("referer", "https://news.ycombinator.com/"),
    ("x-forwarded-for", "193.0.6.139"),
    ("sec-fetch-dest", "document"),
    ("sec-fetch-mode", "navigate"),
    ("upgrade-insecure-requests", "1"),
    ("cookie", "session=0123456789abcdef0123456789abcdef"),
]


# -- synthetic requests ---------------------------------------------------------------------------


def wsgi_environ() -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": PATH, "QUERY_STRING": QUERY,
        "SERVER_NAME": "example.com", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    for name, value in HEADERS:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ["HTTP_HOST"] = "example.com"
    return environ


def asgi_scope() -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": PATH, "raw_path": PATH.encode(), "root_path": "", "query_string": QUERY.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in HEADERS],
        # What uvicorn's proxy-headers middleware leaves for a trusted proxy's X-Forwarded-For.
        "client": ("193.0.6.139", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }


def time_wsgi(app: Callable[..., Iterable[bytes]], n: int) -> list[float]:
    """µs per request, each timed on its own."""
    base = wsgi_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    times = []
    clock = time.perf_counter_ns
    for _ in range(n):
        environ = base.copy()
        start = clock()
        body = app(environ, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        times.append((clock() - start) / 1000)
    assert statuses[-1].startswith("200"), statuses[-1]
    return times


async def time_asgi(app: Callable[..., Awaitable[None]], n: int) -> list[float]:
    base = asgi_scope()
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    times = []
    clock = time.perf_counter_ns
    for _ in range(n):
        scope = base.copy()
        start = clock()
        await app(scope, receive, send)
        times.append((clock() - start) / 1000)
        await asyncio.sleep(0)  # let other tasks (the client's sender) run between requests, as a server does
    assert statuses[-1] == 200, statuses[-1]
    return times


# -- apps -----------------------------------------------------------------------------------------


def bare_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [client_apps.PAGE.encode()]


async def bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    await send({"type": "http.response.body", "body": client_apps.PAGE.encode()})


# -- measuring ------------------------------------------------------------------------------------


def figures(plain: list[float], tracked: list[float]) -> dict[str, float]:
    p = {k: common.percentile(v, q) for k, v, q in (
        ("plain_p50_us", plain, 50), ("plain_p99_us", plain, 99),
        ("tracked_p50_us", tracked, 50), ("tracked_p99_us", tracked, 99))}
    p["overhead_p50_us"] = p["tracked_p50_us"] - p["plain_p50_us"]
    p["overhead_p99_us"] = p["tracked_p99_us"] - p["plain_p99_us"]
    return p


def measure_wsgi(pair: tuple[Any, Any], args: argparse.Namespace, run: int) -> dict[str, float]:
    plain, tracked = pair
    time_wsgi(plain, args.warmup), time_wsgi(tracked, args.warmup)
    if run % 2:
        t, p = time_wsgi(tracked, args.requests), time_wsgi(plain, args.requests)
    else:
        p, t = time_wsgi(plain, args.requests), time_wsgi(tracked, args.requests)
    return figures(p, t)


async def measure_asgi(pair: tuple[Any, Any], args: argparse.Namespace, run: int) -> dict[str, float]:
    plain, tracked = pair
    await time_asgi(plain, args.warmup), await time_asgi(tracked, args.warmup)
    if run % 2:
        t, p = await time_asgi(tracked, args.requests), await time_asgi(plain, args.requests)
    else:
        p, t = await time_asgi(plain, args.requests), await time_asgi(tracked, args.requests)
    return figures(p, t)


KEYS = ["plain_p50_us", "plain_p99_us", "tracked_p50_us", "tracked_p99_us", "overhead_p50_us", "overhead_p99_us"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10_000, help="timed requests per app and variant per run")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=100, help="the clients' batch_size (their default: 100)")
    parser.add_argument("--only", default="", help="comma-separated apps (bare_wsgi,flask,django,bare_asgi,fastapi,"
                        "litestar); default all")
    parser.add_argument("--output", default=str(common.HERE / "results.json"), help="results file ('' to not save)")
    args = parser.parse_args()
    loadavg = os.getloadavg()

    only = {a.strip() for a in args.only.split(",") if a.strip()}

    def wanted(name: str) -> bool:
        return not only or name.lower().replace(" ", "_") in only

    runs: dict[str, list[dict[str, float]]] = {}
    with common.data_dir() as (data, token), common.server(data) as srv:
        url = f"http://127.0.0.1:{srv.port}"
        # A queue that never fills: every timed request takes the enqueue path (the app runs far
        # faster here than any server would feed it, and dropping would be cheaper).
        options = {"batch_size": args.batch_size, "max_queue": 10_000_000}
        client = Footfall(url, token, **options)
        wsgi_apps = {
            "bare WSGI": (bare_wsgi, WsgiMiddleware(bare_wsgi, client)),
            "Flask": (client_apps.flask_app(None), client_apps.flask_app(client)),
            "Django": (client_apps.django_app(None), client_apps.django_app({"CLIENT": client})),
        }
        for name, pair in wsgi_apps.items():
            if not wanted(name):
                continue
            common.log(f"{name}: {args.runs} runs of {args.requests:,} requests per variant")
            runs[name] = []
            for run in range(args.runs):
                runs[name].append(measure_wsgi(pair, args, run))
                client.flush(timeout=120)  # each run starts with the sender idle

        async def asgi_runs() -> tuple[AsyncFootfall, dict[str, list[dict[str, float]]]]:
            aclient = AsyncFootfall(url, token, **options)
            apps = {
                "bare ASGI": (bare_asgi, AsgiMiddleware(bare_asgi, aclient)),
                "FastAPI": (client_apps.fastapi_app(None), client_apps.fastapi_app(aclient)),
                "Litestar": (client_apps.litestar_app(None), client_apps.litestar_app(aclient)),
            }
            out = {}
            for name, pair in apps.items():
                if not wanted(name):
                    continue
                common.log(f"{name}: {args.runs} runs of {args.requests:,} requests per variant")
                out[name] = []
                for run in range(args.runs):
                    out[name].append(await measure_asgi(pair, args, run))
                    await aclient.flush(timeout=120)
            await aclient.flush(timeout=60)
            await aclient.close()
            return aclient, out

        aclient, asgi = asyncio.run(asgi_runs())
        runs.update(asgi)
        client.flush(timeout=60)
        client.close()
        for label, c in (("threaded client", client), ("asyncio client", aclient)):
            s = c.stats
            print(f"{label}: {s.sent:,} pageviews sent in {s.requests:,} requests, dropped "
                  f"{s.dropped_queue_full + s.dropped_failed}, retries {s.retries}")

    table = []
    print(f"\n== middleware overhead per request, µs (median of {args.runs} runs of {args.requests:,} requests) ==")
    print(f"{'app':<10} " + " ".join(f"{k.removesuffix('_us'):>16}" for k in KEYS) + "  p50 < 50 µs")
    for name, app_runs in runs.items():
        medians = {k: statistics.median(r[k] for r in app_runs) for k in KEYS}
        ok = medians["overhead_p50_us"] < TARGET_P50_US
        print(f"{name:<10} " + " ".join(f"{medians[k]:>16.1f}" for k in KEYS) + f"  {'PASS' if ok else 'FAIL'}")
        slug = name.lower().replace(" ", "_")
        for k in KEYS:
            checked = k == "overhead_p50_us"
            table.append({"benchmark": "middleware", "figure": f"{slug}_{k}", "label": f"M {name} {k}",
                          "unit": "µs", "median": medians[k], "runs": [r[k] for r in app_runs],
                          "target": f"< {TARGET_P50_US:.0f}" if checked else "",
                          "result": ("PASS" if ok else "FAIL") if checked else ""})
    if args.output:
        per_run = [{f"{name.lower().replace(' ', '_')}_{k}": runs[name][i][k] for name in runs for k in KEYS}
                   for i in range(args.runs)]
        common.save_figures("middleware", table, per_run,
                            {"runs": args.runs, "requests": args.requests, "warmup": args.warmup,
                             "batch_size": args.batch_size, "loadavg_before": loadavg}, common.Path(args.output))


if __name__ == "__main__":
    main()
