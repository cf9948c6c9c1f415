"""Time every query one 30-day dashboard view issues, on synthetic data of 1M, 10M, 50M events.

    .venv/bin/python benchmarks/bench_queries.py [--sizes 1000000,10000000] [--runs 5]

For each size the data directory comes from gen_events.py (made once under /tmp/ff-bench-<N>
and reused). The store is opened in this process, as the server opens it, and each query goes
through the same in-process function the API and dashboard call:

- `footfall.query.v2.execute(store, site, body, now)` (Plausible Stats API v2 bodies) when that
  module exists; the bodies come from `footfall.web.dashboard.view_queries(site, params)` when
  the dashboard module has it, else from `VIEW` below, which mirrors the dashboard of issue 5;
- otherwise (`--engine model`, or no v2 yet) the same view through `DuckDBStore.run_query` with
  `footfall.query.model.Query` objects: a body is translated to the current model where it can
  be; a comparison is a second query for the previous period, goal conversions one query per
  goal (as `footfall stats` does), and a body the model cannot express is reported as such.

`now` is pinned to the moment the data was generated, so every run sees the same view.
One warm-up pass of the whole view, then `--runs` passes; per query the median over the passes,
and the view's total is the median of the passes' sums. Figures are added to results.json as
benchmark "queries" (the other benchmarks' figures there are kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

import gen_events
from footfall.meta import Site
from footfall.pipeline.sessions import Sessionizer
from footfall.pipeline.writer import load_batch
from footfall.query.compile import local_day_bounds_us
from footfall.query.model import QueryError
from footfall.store.duckdb import DuckDBStore

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
VIEW_TARGET_MS = 1000.0
QUERY_TARGET_MS = 300.0
LIMIT = 10

Body = dict[str, Any]


def _top(dimension: str, metrics: list[str] | None = None, **extra: Any) -> Body:
    return {
        "metrics": metrics or ["visitors"],
        "date_range": "30d",
        "dimensions": [dimension],
        "order_by": [[(metrics or ["visitors"])[0], "desc"]],
        "pagination": {"limit": LIMIT, "offset": 0},
        **extra,
    }


# The queries of one dashboard view (issue 5: KPI tiles with their change against the previous
# period, the chart, every top list), as Plausible Stats API v2 bodies without `site_id`.
VIEW: dict[str, Body] = {
    "kpis": {
        "metrics": ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"],
        "date_range": "30d",
        "include": {"comparisons": {"mode": "previous_period"}},
    },
    "chart": {"metrics": ["visitors", "pageviews"], "date_range": "30d", "dimensions": ["time:day"]},
    "pages": _top("event:page", ["visitors", "pageviews"]),
    "entry_pages": _top("visit:entry_page", ["visitors", "visits"]),
    "exit_pages": _top("visit:exit_page", ["visitors", "visits"]),
    "sources": _top("visit:source"),
    "channels": _top("visit:channel"),
    "utm_source": _top("visit:utm_source"),
    "utm_medium": _top("visit:utm_medium"),
    "utm_campaign": _top("visit:utm_campaign"),
    "countries": _top("visit:country"),
    "regions": _top("visit:region"),
    "cities": _top("visit:city"),
    "devices": _top("visit:device", ["visitors", "percentage"]),
    "browsers": _top("visit:browser", ["visitors", "percentage"]),
    "os": _top("visit:os", ["visitors", "percentage"]),
    "goals": _top("event:goal", ["visitors", "events", "conversion_rate"]),
    "event_props": _top(
        "event:props:plan", ["visitors", "events", "conversion_rate"], filters=[["is", "event:goal", ["Signup"]]]
    ),
}


# What one page load of the default view issues (the other top lists are tabs, a click away).
VIEW_LOAD = ["kpis", "chart", "pages", "sources", "countries", "devices", "goals"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the two ways of running a body ----------------------------------------------------------

Runner = Callable[[Body], Any]


def v2_module() -> Any | None:
    try:
        return importlib.import_module("footfall.query.v2")
    except ModuleNotFoundError:
        return None


def dashboard_queries(site: Site, now: dt.datetime) -> tuple[dict[str, Body], list[str]] | None:
    """The dashboard's own bodies (`web.dashboard.view_queries`) for its default 30-day view,
    plus each panel's other tabs and a property breakdown, which a click away issues; and the
    names of those one page load issues. None when the dashboard module has no such function."""
    try:
        dash = importlib.import_module("footfall.web.dashboard")
        params = dash.ViewParams(period="30d")
        today = dash.site_today(site, now)
        view: dict[str, Body] = dash.view_queries(site, params, today)
        queries: dict[str, Body] = {}
        for name, body in view.items():
            tabs = dash.PANELS.get(name)
            queries[f"{name}:{tabs[0].key}" if tabs else name] = body
        loaded = list(queries)
        for panel, tabs in dash.PANELS.items():
            for tab in tabs[1:]:
                other = dataclasses.replace(params, tabs=((panel, tab.key),))
                queries[f"{panel}:{tab.key}"] = dash.view_queries(site, other, today)[panel]
        queries["props:plan"] = dash.view_queries(site, dataclasses.replace(params, prop="plan"), today)["props"]
    except (ModuleNotFoundError, AttributeError, TypeError, KeyError) as exc:
        log(f"web.dashboard.view_queries not usable ({type(exc).__name__}: {exc}); using bench_queries.VIEW")
        return None
    return queries, loaded


def v2_runner(v2: Any, store: DuckDBStore, site: Site, now: dt.datetime) -> Runner:
    def run(body: Body) -> Any:
        return v2.execute(store, site, {"site_id": site.domain, **body}, now=now)

    return run


class NotExpressible(Exception):
    """A body the current query model cannot express."""


def model_runner(store: DuckDBStore, site: Site, now: dt.datetime) -> Runner:
    """Runs a v2 body through `DuckDBStore.run_query` with the current `Query` model (the query
    engineer is extending it: names are looked up at run time). Derived metrics (percentage,
    conversion rates) cost v2 a totals query: one is run for them here too; a comparison is
    the same query for the previous period."""
    from footfall.query import model as qm

    today = now.astimezone(ZoneInfo(site.timezone)).date()
    goal_rule = getattr(qm, "GoalRule", None)
    goals = tuple(goal_rule.from_goal(g.name, g.type, g.value) for g in site.settings.goals) if goal_rule else ()
    is_dimension = getattr(qm, "is_dimension", lambda d: d in getattr(qm, "DIMENSIONS", ()))

    def query(first: dt.date, last: dt.date, metrics: list[str], dims: list[str], filters: tuple[Any, ...],
              order: tuple[Any, ...], limit: int | None) -> Any:
        start, end = local_day_bounds_us(site.timezone, first, last)
        extra: dict[str, Any] = {"goals": goals} if "goals" in qm.Query.__struct_fields__ else {}
        return store.run_query(qm.Query(
            site_id=site.id, timezone=site.timezone, start_us=start, end_us=end, metrics=tuple(metrics),
            dimensions=tuple(dims), filters=filters, order_by=order, limit=limit, **extra,
        )).rows

    def run(body: Body) -> Any:
        m = re.fullmatch(r"(\d+)d", str(body.get("date_range", "30d")))
        if not m:
            raise NotExpressible(f"date_range {body.get('date_range')!r}")
        first, last = today - dt.timedelta(days=int(m.group(1)) - 1), today
        metrics = [x for x in body["metrics"] if x in qm.METRICS]
        dims = list(body.get("dimensions", []))
        for d in dims:
            if not is_dimension(d):
                raise NotExpressible(f"dimension {d}")
        if not goals and ("event:goal" in dims or any(f[1] == "event:goal" for f in body.get("filters", []))):
            raise NotExpressible("goals")
        try:
            filters = tuple(qm.Filter(op, dim, tuple(values)) for op, dim, values in body.get("filters", []))
        except QueryError as exc:
            raise NotExpressible(str(exc)) from None
        order = tuple((k, d) for k, d in body.get("order_by", []) if k in metrics or k in dims)
        limit = body.get("pagination", {}).get("limit")
        rows = query(first, last, metrics, dims, filters, order, limit)
        if set(body["metrics"]) - set(metrics):  # derived metrics: their denominator
            rows += query(first, last, ["visitors"], [], (), (), None)
        if body.get("include", {}).get("comparisons"):
            span = last - first + dt.timedelta(days=1)
            rows += query(first - span, last - span, metrics, dims, filters, order, limit)
        return rows

    return run


# -- measuring -------------------------------------------------------------------------------


def measure(run: Runner, queries: dict[str, Body], runs: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Per query, its times in ms over `runs` passes after one warm-up pass; and the queries
    that failed, with why (they are left out of the totals)."""
    failed: dict[str, str] = {}
    times: dict[str, list[float]] = {name: [] for name in queries}
    for pass_no in range(runs + 1):
        for name, body in queries.items():
            if name in failed:
                continue
            start = time.perf_counter()
            try:
                run(body)
            except NotExpressible as exc:
                failed[name] = f"not expressible in the current model: {exc}"
                continue
            except (QueryError, ValueError, TypeError, KeyError, duckdb.Error) as exc:
                failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                continue
            elapsed = (time.perf_counter() - start) * 1000
            if pass_no > 0:  # pass 0 is the warm-up
                times[name].append(elapsed)
        done = sum(t[-1] for t in times.values() if t) if pass_no > 0 else float("nan")
        log(f"pass {pass_no}/{runs}{' (warm-up)' if pass_no == 0 else f': {done:,.0f} ms for all queries'}")
    return {k: v for k, v in times.items() if k not in failed}, failed


def add_pending(store: DuckDBStore, site: Site, now: dt.datetime, events: int) -> int:
    """Load `events` of the half hour before `now` as the writer does, leaving their visit parts
    pending (as under live ingest, between the writer's folds); returns the parts' rows."""
    import bench_writer

    t0 = int(now.timestamp() * 1_000_000) - 40 * 60_000_000
    payloads = bench_writer.events(site.id, events, t0, seed=7)
    sessionizer = Sessionizer(store, 30 * 60_000_000)
    for k in range(0, events, 25_000):
        load_batch(store, sessionizer, payloads[k:k + 25_000], [])
    return store.visit_parts_pending()


def bench_size(
    n: int, runs: int, engine: str, days: int, seed: int, only: set[str], pending: int = 0
) -> dict[str, Any]:
    info = gen_events.generate(n, gen_events.default_dir(n), days=days, seed=seed)
    path = gen_events.default_dir(n) / gen_events.DB_NAME
    now = dt.datetime.fromisoformat(info["generated_at"].replace("Z", "+00:00"))
    if pending:  # on a copy: the generated data directory is reused by later runs
        copy = Path(tempfile.mkdtemp(dir=path.parent.parent)) / gen_events.DB_NAME
        shutil.copy(path, copy)
        path = copy
    store = DuckDBStore(path)
    parts = 0
    try:
        site = next(s for s in store.list_sites() if s.domain == info["site"])
        if pending:
            parts = add_pending(store, site, now, pending)
            log(f"{pending:,} events loaded; {parts:,} visit parts pending")
        v2 = v2_module() if engine in ("auto", "v2") else None
        if engine == "v2" and v2 is None:
            raise SystemExit("footfall.query.v2 is not importable yet; use --engine model")
        if v2 is not None:
            run, used = v2_runner(v2, store, site, now), "v2"
        else:
            run, used = model_runner(store, site, now), "model"
        own = dashboard_queries(site, now) if used == "v2" else None
        every, loaded = own if own is not None else (VIEW, VIEW_LOAD)
        queries = {k: v for k, v in every.items() if not only or k in only}
        log(f"{gen_events.label(n)}: {info['events']:,} events, engine {used}, "
            f"{len(queries)} queries from {'web.dashboard.view_queries' if own else 'bench_queries.VIEW'}")
        times, failed = measure(run, queries, runs)
    finally:
        store.close()
        if pending:
            shutil.rmtree(path.parent)
    return {
        "pending_events": pending, "pending_visit_parts": parts,
        "events": info["events"], "engine": used, "query_source": "dashboard" if own else "bench_queries.VIEW",
        "times_ms": times, "failed": failed, "loaded": [q for q in loaded if q in times],
        # a page load: the sum of its queries in each pass; and every query of the benchmark
        "view_totals_ms": [sum(times[q][i] for q in loaded if q in times) for i in range(runs)],
        "all_totals_ms": [sum(times[q][i] for q in times) for i in range(runs)],
        "dataset": info,
    }


def explain(n: int, days: int, names: list[str], out_dir: Path) -> None:
    """For each named query of the view: every engine query it issues, timed on its own, with
    its SQL and DuckDB's EXPLAIN ANALYZE profile written to out_dir/<size>-<name>-<k>.txt."""
    from footfall.store.sql import compile_query

    info = gen_events.generate(n, gen_events.default_dir(n), days=days)
    now = dt.datetime.fromisoformat(info["generated_at"].replace("Z", "+00:00"))
    store = DuckDBStore(gen_events.default_dir(n) / gen_events.DB_NAME)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        site = next(s for s in store.list_sites() if s.domain == info["site"])
        v2 = v2_module()
        if v2 is None:
            raise SystemExit("--explain needs footfall.query.v2")
        own = dashboard_queries(site, now)
        queries = own[0] if own else VIEW
        issued: list[Any] = []
        real_run_query = store.run_query

        def recording(query: Any) -> Any:
            issued.append(query)
            return real_run_query(query)

        store.run_query = recording  # type: ignore[method-assign]
        run = v2_runner(v2, store, site, now)
        con = store._cursor()  # the store's own connection, so settings are the server's
        for name in names:
            issued.clear()
            run(queries[name])
            for k, query in enumerate(list(issued)):
                sql, params, _ = compile_query(query)
                for _ in range(2):  # warm
                    con.execute(sql, params).fetchall()
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    con.execute(sql, params).fetchall()
                    times.append((time.perf_counter() - start) * 1000)
                plan = con.execute("EXPLAIN ANALYZE " + sql, params).fetchall()
                path = out_dir / f"{gen_events.label(n)}-{name.replace(':', '_')}-{k}.txt"
                path.write_text(f"-- {name} engine query {k}: median {median(times):.1f} ms\n-- {query}\n"
                                f"{sql}\n-- params {params}\n\n" + "\n".join(str(r[1]) for r in plan))
                print(f"{name} [{k}] {median(times):8.1f} ms  dims={query.dimensions} metrics={query.metrics} "
                      f"filters={len(query.filters)} -> {path}")
    finally:
        store.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(results: dict[str, dict[str, Any]]) -> None:
    sizes = list(results)
    names: list[str] = []
    for n in sizes:
        names += [q for q in [*results[n]["times_ms"], *results[n]["failed"]] if q not in names]
    width = max(20, *(len(q) + 2 for q in names))
    head = f"{'query (median ms)':<{width}}" + "".join(f"{n:>10}" for n in sizes)
    print(f"\nDashboard view, 30 days: median of {len(results[sizes[0]]['view_totals_ms'])} runs after a warm-up "
          f"({os.cpu_count()} CPUs, engine {results[sizes[0]]['engine']})\n")
    print(head)
    print("-" * len(head))
    for q in names:
        cells = []
        for n in sizes:
            t = results[n]["times_ms"].get(q)
            cells.append(f"{median(t):>9.1f}{'!' if median(t) >= QUERY_TARGET_MS else ' '}" if t else f"{'n/a':>10}")
        mark = "*" if any(q in results[n]["loaded"] for n in sizes) else " "
        print(f"{mark}{q:<{width - 1}}" + "".join(cells))
    print("-" * len(head))
    totals = [median(results[n]["view_totals_ms"]) for n in sizes]
    print(f"{'page load (*)':<{width}}" + "".join(f"{t:>9.1f}{'!' if t >= VIEW_TARGET_MS else ' '}" for t in totals))
    print(f"{'every query':<{width}}" + "".join(f"{median(results[n]['all_totals_ms']):>9.1f} " for n in sizes))
    print("\n* issued by one page load of the default view; the others are its tabs and a property breakdown")
    print(f"! misses its target (page load < {VIEW_TARGET_MS:,.0f} ms, each query < {QUERY_TARGET_MS:,.0f} ms)")
    for n in sizes:
        for q, why in results[n]["failed"].items():
            print(f"n/a at {n}: {q}: {why}")


def save(results: dict[str, dict[str, Any]], runs: int, output: Path) -> None:
    """Add the figures to results.json in run_all.py's shape, keeping the other benchmarks'."""
    payload: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    table = [r for r in payload.get("table", []) if r.get("benchmark") != "queries"]
    per_run: list[dict[str, float]] = [{} for _ in range(runs)]
    for tag, res in results.items():
        rows = [(q, f"Q {tag} {q}", t, QUERY_TARGET_MS) for q, t in res["times_ms"].items()]
        rows.append(("view", f"Q {tag} dashboard page load", res["view_totals_ms"], VIEW_TARGET_MS))
        rows.append(("all", f"Q {tag} every query (all tabs)", res["all_totals_ms"], float("nan")))
        for q, label, values, target in rows:
            key = f"{tag}_{q}_ms"
            value = median(values)
            checked = target == target  # NaN: a figure without a target
            table.append({"benchmark": "queries", "figure": key, "label": label, "unit": "ms", "median": value,
                          "runs": values, "target": f"< {target:,.0f}" if checked else "",
                          "result": ("PASS" if value < target else "FAIL") if checked else ""})
            for i, v in enumerate(values):
                per_run[i][key] = v
    payload["table"] = table
    payload.setdefault("medians", {})["queries"] = {
        r["figure"]: r["median"] for r in table if r["benchmark"] == "queries"
    }
    payload.setdefault("runs", {})["queries"] = per_run
    payload.setdefault("settings", {})["queries"] = {
        "runs": runs,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": os.getloadavg(),
        "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                     cwd=HERE.parent).stdout.strip(),
        "sizes": {
            tag: {"engine": r["engine"], "query_source": r["query_source"], "failed": r["failed"],
                                  "page_load": r["loaded"], "dataset": r["dataset"]}
            for tag, r in results.items()
        },
    }
    output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {output}")


def sizes(text: str, days: int) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, text.split(",")):
        n, _, d = item.partition(":")
        out.append((int(n), int(d) if d else days))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000",
                        help="comma-separated event counts; N:D for N events over D days (e.g. 20000000:60 puts "
                        "10M in the view and 10M in the period it is compared with)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", choices=["auto", "v2", "model"], default="auto",
                        help="auto: footfall.query.v2 when importable, else the current Query model")
    parser.add_argument("--days", type=int, default=30, help="days of data, for sizes without :D")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pending", type=int, default=0,
                        help="first load this many events of the last half hour through the writer's path, on a copy, "
                        "leaving their visit parts unfolded (queries under live ingest)")
    parser.add_argument("--only", default="", help="comma-separated query names to run (default all)")
    parser.add_argument("--output", default=str(RESULTS), help="results file ('' to not save)")
    parser.add_argument("--explain", default="", help="comma-separated query names: profile their engine queries "
                        "(SQL + EXPLAIN ANALYZE into --explain-dir) instead of benchmarking")
    parser.add_argument("--explain-dir", type=Path, default=HERE / "profiles" / "queries")
    args = parser.parse_args()
    if args.explain:
        for n, days in sizes(args.sizes, args.days):
            explain(n, days, args.explain.split(","), args.explain_dir)
        return
    only = {s for s in args.only.split(",") if s}
    results: dict[str, dict[str, Any]] = {}
    for n, days in sizes(args.sizes, args.days):
        tag = gen_events.label(n) + ("" if days == 30 else f"/{days}d") + (f"+{args.pending}" if args.pending else "")
        results[tag] = bench_size(n, args.runs, args.engine, days, args.seed, only, args.pending)
    print_table(results)
    if args.output:
        save(results, args.runs, Path(args.output))


if __name__ == "__main__":
    main()
