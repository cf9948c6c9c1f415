"""The dashboard: one server-rendered page per site, built from Stats API v2 queries.

    GET /                              the sites (straight to the only one)
    GET /{domain}                      the dashboard; its state is all in the query string
    GET /{domain}/export.csv?dim=...   one breakdown (same range and filters) as CSV
    GET /{domain}/realtime.json        visitors in the last 5 minutes, pageviews per minute
    GET /share/{token}[/export.csv|/realtime.json]   the same, read-only, through a share link
    GET /static/{name}                 dashboard.css and dashboard.js

The query string: `period` (today, yesterday, 7d, 30d, month, lastmonth, 12mo, all, custom with
`from` and `to`), `f=op,dimension,value` filters (repeatable; `is`, `is_not`, `contains`,
`contains_not`), a tab per panel (`pages=entry`, `sources=channel`, ...), `metric` for the
chart, `prop` for the property breakdown and `funnel`. Every link on the page is a plain link
with the whole state in it, so a view can be bookmarked, shared and navigated with a keyboard.

Numbers come from `footfall.query.v2.execute`, the engine behind POST /api/v2/query, so the page
and the API agree by construction. `view_queries` lists every v2 request one view makes (the
benchmark times exactly those); they run concurrently, each in a worker thread.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import functools
import hashlib
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect
from markupsafe import Markup

from footfall import manage
from footfall.meta import Site
from footfall.query.compile import local_day_bounds_us, to_us
from footfall.query.model import QueryError
from footfall.query.v2 import execute
from footfall.runtime import Runtime
from footfall.web import auth, charts

# -- what a view shows ---------------------------------------------------------------------

PERIODS: dict[str, str] = {
    "today": "Today",
    "yesterday": "Yesterday",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "month": "This month",
    "lastmonth": "Last month",
    "12mo": "Last 12 months",
    "all": "All time",
    "custom": "Custom range",
}
DEFAULT_PERIOD = "30d"
MAX_CUSTOM_DAYS = 3660

KPI_METRICS = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration")
KPI_LABELS = {
    "visitors": "Unique visitors",
    "visits": "Total visits",
    "pageviews": "Total pageviews",
    "views_per_visit": "Views per visit",
    "bounce_rate": "Bounce rate",
    "visit_duration": "Visit duration",
}
# The chart plots one of these (the KPI tile clicked); one query fetches all three.
CHART_METRICS = ("visitors", "visits", "pageviews")
# Metrics where a fall is good news, so the tile shows it in green.
LOWER_IS_BETTER = frozenset({"bounce_rate"})

LIST_LIMIT = 10
EXPORT_LIMIT = 10_000
FILTER_OPS = ("is", "is_not", "contains", "contains_not")


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    dimension: str
    column: str  # the list's first column heading
    metrics: tuple[str, ...] = ("visitors",)


# Each panel shows one tab at a time: one query per panel, whichever tab is open.
PANELS: dict[str, tuple[Tab, ...]] = {
    "pages": (
        Tab("top", "Top pages", "event:page", "Page", ("visitors", "pageviews")),
        Tab("entry", "Entry pages", "visit:entry_page", "Entry page", ("visitors", "visits")),
        Tab("exit", "Exit pages", "visit:exit_page", "Exit page", ("visitors", "visits")),
    ),
    "sources": (
        Tab("source", "Sources", "visit:source", "Source"),
        Tab("channel", "Channels", "visit:channel", "Channel"),
        Tab("utm_source", "UTM source", "visit:utm_source", "UTM source"),
        Tab("utm_medium", "UTM medium", "visit:utm_medium", "UTM medium"),
        Tab("utm_campaign", "UTM campaign", "visit:utm_campaign", "UTM campaign"),
        Tab("utm_term", "UTM term", "visit:utm_term", "UTM term"),
        Tab("utm_content", "UTM content", "visit:utm_content", "UTM content"),
    ),
    "locations": (
        Tab("country", "Countries", "visit:country", "Country"),
        Tab("region", "Regions", "visit:region", "Region"),
        Tab("city", "Cities", "visit:city", "City"),
    ),
    "devices": (
        Tab("device", "Devices", "visit:device", "Device"),
        Tab("browser", "Browsers", "visit:browser", "Browser"),
        Tab("os", "Operating systems", "visit:os", "OS"),
    ),
}
PANEL_TITLES = {"pages": "Pages", "sources": "Sources", "locations": "Locations", "devices": "Devices"}
EVENTS_TAB = Tab("events", "Custom events", "event:name", "Event", ("visitors", "events"))
GOALS_TAB = Tab("goals", "Goals", "event:goal", "Goal", ("visitors", "events", "conversion_rate"))
PAGEVIEW = "pageview"  # the event name of a pageview, left out of the custom events list
PROP_PREFIX = "event:props:"

# What a row's click or `f=` may filter on, and what an export may break down by.
LIST_DIMENSIONS: dict[str, Tab] = {
    tab.dimension: tab for tabs in PANELS.values() for tab in tabs
} | {EVENTS_TAB.dimension: EVENTS_TAB, GOALS_TAB.dimension: GOALS_TAB}
DIMENSION_NAMES = {d: t.column for d, t in LIST_DIMENSIONS.items()} | {"event:hostname": "Hostname"}
_PROP_NAME = re.compile(r"^[^\x00-\x1f,]{1,300}$")

METRIC_HEADINGS = {
    "visitors": "Visitors",
    "pageviews": "Pageviews",
    "visits": "Visits",
    "events": "Events",
    "conversion_rate": "Conversion",
}


class ParamError(ValueError):
    """A query string the dashboard cannot show; the message names the parameter."""


@dataclass(frozen=True)
class ViewParams:
    """A view of a site's dashboard: what its query string says, checked."""

    period: str = DEFAULT_PERIOD
    date_from: dt.date | None = None  # custom ranges only
    date_to: dt.date | None = None
    filters: tuple[tuple[str, str, str], ...] = ()  # (op, dimension, value)
    tabs: tuple[tuple[str, str], ...] = ()  # (panel, tab key) where not the first tab
    metric: str = "visitors"
    prop: str | None = None
    funnel: str | None = None

    def tab(self, panel: str) -> Tab:
        chosen = dict(self.tabs).get(panel)
        return next((t for t in PANELS[panel] if t.key == chosen), PANELS[panel][0])

    def items(self) -> list[tuple[str, str]]:
        """The query string's pairs, defaults left out."""
        out: list[tuple[str, str]] = []
        if self.period != DEFAULT_PERIOD:
            out.append(("period", self.period))
        if self.period == "custom" and self.date_from and self.date_to:
            out += [("from", self.date_from.isoformat()), ("to", self.date_to.isoformat())]
        out += [("f", f"{op},{dim},{value}") for op, dim, value in self.filters]
        out += list(self.tabs)
        if self.metric != "visitors":
            out.append(("metric", self.metric))
        if self.prop:
            out.append(("prop", self.prop))
        if self.funnel:
            out.append(("funnel", self.funnel))
        return out

    def href(self, **changes: Any) -> str:
        """`?query` of this view with some fields changed (a link on the page)."""
        view = replace(self, **changes) if changes else self
        text = urlencode(view.items())
        return "?" + text if text else "?"

    def with_filter(self, op: str, dimension: str, value: str) -> str:
        kept = tuple(f for f in self.filters if f[1] != dimension)
        return self.href(filters=(*kept, (op, dimension, value)))

    def without_filter(self, index: int) -> str:
        return self.href(filters=self.filters[:index] + self.filters[index + 1:])

    def with_tab(self, panel: str, key: str) -> str:
        first = PANELS[panel][0].key
        tabs = tuple((p, k) for p, k in self.tabs if p != panel) + (((panel, key),) if key != first else ())
        return self.href(tabs=tabs)


def parse_params(query: Mapping[str, list[str]]) -> ViewParams:
    """Check a query string; raises ParamError naming the first bad parameter."""

    def one(name: str) -> str | None:
        values = query.get(name) or []
        return values[-1] if values else None

    period = one("period") or DEFAULT_PERIOD
    if period not in PERIODS:
        raise ParamError(f"period: one of {', '.join(PERIODS)}, not {period!r}")
    date_from = date_to = None
    if period == "custom":
        try:
            date_from = dt.date.fromisoformat(one("from") or "")
            date_to = dt.date.fromisoformat(one("to") or "")
        except ValueError:
            raise ParamError("from and to: a custom range needs both dates, as YYYY-MM-DD") from None
        if date_to < date_from:
            date_from, date_to = date_to, date_from
        if (date_to - date_from).days > MAX_CUSTOM_DAYS:
            raise ParamError("from and to: a custom range is at most ten years")
    filters = []
    for raw in query.get("f") or []:
        op, _, rest = raw.partition(",")
        dimension, sep, value = rest.partition(",")
        if not sep or op not in FILTER_OPS:
            raise ParamError(f"f: a filter is op,dimension,value with op one of {', '.join(FILTER_OPS)}, not {raw!r}")
        if not (dimension in DIMENSION_NAMES or (dimension.startswith(PROP_PREFIX)
                                                  and _PROP_NAME.match(dimension[len(PROP_PREFIX):]))):
            raise ParamError(f"f: cannot filter on {dimension!r}")
        if len(value) > 2000:
            raise ParamError("f: a filter value is at most 2000 characters")
        filters.append((op, dimension, value))
    if len(filters) > 20:
        raise ParamError("f: at most 20 filters")
    tabs = []
    for panel, options in PANELS.items():
        key = one(panel)
        if key is not None:
            if key not in {t.key for t in options}:
                raise ParamError(f"{panel}: one of {', '.join(t.key for t in options)}, not {key!r}")
            if key != options[0].key:
                tabs.append((panel, key))
    metric = one("metric") or "visitors"
    if metric not in CHART_METRICS:
        raise ParamError(f"metric: one of {', '.join(CHART_METRICS)}, not {metric!r}")
    prop = one("prop") or None
    if prop is not None and not _PROP_NAME.match(prop):
        raise ParamError("prop: a property name is 1 to 300 characters, without commas")
    return ViewParams(period, date_from, date_to, tuple(filters), tuple(tabs), metric, prop, one("funnel") or None)


# -- dates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """A view's dates: what the v2 queries get, the comparison period and the chart's buckets."""

    date_range: str | list[str]  # "all", or [first, last] ISO dates in the site's time zone
    first: dt.date | None  # None for "all"
    last: dt.date
    previous: list[str] | None  # the period compared against; None for "all"
    interval: str  # the chart's time dimension
    label: str


def site_today(site: Site, now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(site.timezone)).date()


def _month_start(day: dt.date, back: int = 0) -> dt.date:
    months = day.year * 12 + day.month - 1 - back
    return dt.date(months // 12, months % 12 + 1, 1)


def _interval(first: dt.date, last: dt.date) -> str:
    days = (last - first).days + 1
    return "time:hour" if days <= 1 else "time:day" if days <= 92 else "time:week" if days <= 731 else "time:month"


def resolve_range(params: ViewParams, today: dt.date) -> Range:
    day = dt.timedelta(days=1)
    label = PERIODS[params.period]
    if params.period == "all":
        return Range("all", None, today, None, "time:month", label)
    if params.period == "today":
        first = last = today
    elif params.period == "yesterday":
        first = last = today - day
    elif params.period in ("7d", "30d"):
        first, last = today - (int(params.period[:-1]) - 1) * day, today
    elif params.period == "month":
        first, last = _month_start(today), today
    elif params.period == "lastmonth":
        first, last = _month_start(today, 1), _month_start(today) - day
    elif params.period == "12mo":
        first, last = _month_start(today, 11), today
    else:
        assert params.date_from is not None and params.date_to is not None
        first, last = params.date_from, params.date_to
        label = f"{first:%-d %b %Y} to {last:%-d %b %Y}"
    if params.period == "lastmonth":  # the month before, whole
        previous = [_month_start(first, 1).isoformat(), (first - day).isoformat()]
    elif params.period == "12mo":
        previous = [_month_start(first, 12).isoformat(), (first - day).isoformat()]
    else:  # as many days, just before
        length = (last - first).days + 1
        previous = [(first - length * day).isoformat(), (first - day).isoformat()]
    interval = "time:month" if params.period == "12mo" else _interval(first, last)
    return Range([first.isoformat(), last.isoformat()], first, last, previous, interval, label)


# -- the queries of one view ---------------------------------------------------------------


def _filters(params: ViewParams) -> list[list[Any]]:
    return [[op, dim, [value]] for op, dim, value in params.filters]


def breakdown_query(site: Site, params: ViewParams, rng: Range, tab: Tab, limit: int) -> dict[str, Any]:
    filters = _filters(params)
    if tab is EVENTS_TAB or tab.dimension.startswith(PROP_PREFIX):
        filters.append(["is_not", "event:name", [PAGEVIEW]])
    return {
        "site_id": site.domain,
        "date_range": rng.date_range,
        "metrics": list(tab.metrics),
        "dimensions": [tab.dimension],
        "filters": filters,
        "order_by": [[tab.metrics[-1] if tab.metrics[-1] == "events" else tab.metrics[0], "desc"]],
        "pagination": {"limit": limit},
    }


def prop_tab(name: str) -> Tab:
    return Tab("props", f"Property {name}", PROP_PREFIX + name, name, ("visitors", "events"))


def view_queries(site: Site, params: ViewParams, today: dt.date | None = None) -> dict[str, dict[str, Any]]:
    """Every Stats API v2 request body one dashboard view issues, by panel."""
    rng = resolve_range(params, today or site_today(site))
    base = {"site_id": site.domain, "date_range": rng.date_range, "filters": _filters(params)}
    queries: dict[str, dict[str, Any]] = {"kpi": {**base, "metrics": list(KPI_METRICS)}}
    if rng.previous is not None:
        queries["kpi"]["include"] = {"comparisons": {"mode": "custom", "date_range": rng.previous}}
    queries["chart"] = {**base, "metrics": list(CHART_METRICS), "dimensions": [rng.interval],
                        "order_by": [[rng.interval, "asc"]], "include": {"time_labels": True}}
    for panel in PANELS:
        queries[panel] = breakdown_query(site, params, rng, params.tab(panel), LIST_LIMIT)
    queries["events"] = breakdown_query(site, params, rng, EVENTS_TAB, LIST_LIMIT)
    if params.prop:
        queries["props"] = breakdown_query(site, params, rng, prop_tab(params.prop), LIST_LIMIT)
    if site.settings.goals:
        queries["goals"] = breakdown_query(site, params, rng, GOALS_TAB, 50)
    return queries


def rows_of(body: dict[str, Any], answer: dict[str, Any]) -> list[dict[str, Any]]:
    """A v2 answer as records: dimension values by name, then metric values by name."""
    dims, metrics = body.get("dimensions", []), body["metrics"]
    return [
        {**dict(zip(dims, r["dimensions"], strict=True)), **dict(zip(metrics, r["metrics"], strict=True))}
        for r in answer["results"]
    ]


def range_bounds_us(site: Site, rng: Range, now: dt.datetime) -> tuple[int, int]:
    """UTC bounds of a range, for the store's own panels (funnels, bots)."""
    if rng.first is None:
        return 0, to_us(now) + 1
    return local_day_bounds_us(site.timezone, rng.first, rng.last)


# -- formatting ----------------------------------------------------------------------------


def metric_text(metric: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if metric == "bounce_rate" or metric == "conversion_rate":
        return f"{float(value):g}%"
    if metric == "visit_duration":
        seconds = round(float(value))
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60:02d}s" if rest >= 60 else f"{rest}s"
    if metric == "views_per_visit":
        return f"{float(value):.2f}"
    return f"{int(value):,}"


def change(metric: str, delta: Any) -> dict[str, Any] | None:
    """A tile's change against the previous period, as the Stats API works it out: percent,
    or points for a rate."""
    if delta is None:
        return None
    text = f"{float(delta):+g} pt" if metric == "bounce_rate" else f"{round(float(delta)):+d}%"
    good = delta < 0 if metric in LOWER_IS_BETTER else delta > 0
    return {"text": text, "good": good, "flat": delta == 0}


def bucket_label(interval: str, key: str) -> str:
    if interval == "time:hour":
        return key[11:16]
    day = dt.date.fromisoformat(key[:10])
    if interval == "time:month":
        return f"{day:%b %Y}"
    return f"{day:%-d %b}" if interval == "time:day" else f"w/c {day:%-d %b}"


def chart_points(rng: Range, body: dict[str, Any], answer: dict[str, Any], metric: str) -> list[tuple[str, float]]:
    """The chart's (bucket, value) points: every bucket of the range (the answer's time
    labels), zero where there was no traffic."""
    values = dict.fromkeys(answer["meta"].get("time_labels") or [], 0.0)
    for row in rows_of(body, answer):
        values[str(row[rng.interval])] = float(row[metric] or 0)
    return list(values.items())


# -- rendering -----------------------------------------------------------------------------

TEMPLATES = Environment(
    loader=PackageLoader("footfall.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _static_files() -> dict[str, tuple[bytes, str]]:
    media = {".css": "text/css; charset=utf-8", ".js": "application/javascript; charset=utf-8",
             ".svg": "image/svg+xml"}
    out = {}
    for entry in resources.files("footfall.web").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in media:
            out[entry.name] = (entry.read_bytes(), media[suffix])
    return out


STATIC = _static_files()
# Static URLs carry a hash of the files, so browsers may cache them for good.
STATIC_VERSION = hashlib.sha256(b"".join(body for body, _ in STATIC.values())).hexdigest()[:10]
TEMPLATES.globals["static"] = lambda name: f"/static/{name}?v={STATIC_VERSION}"

# Everything the page loads comes from this server; styles allow inline `style` for bar widths.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def html(template: str, status: int = 200, **context: Any) -> Response[str]:
    body = TEMPLATES.get_template(template).render(status=status, **context)
    return Response(content=body, status_code=status, media_type="text/html; charset=utf-8",
                    headers=SECURITY_HEADERS)


def _list_panel(key: str, title: str, tabs: tuple[Tab, ...], tab: Tab, rows: list[dict[str, Any]],
                params: ViewParams, tab_link: Callable[[Tab], str] | None) -> dict[str, Any]:
    top = max((float(r[tab.metrics[0]] or 0) for r in rows), default=0.0)
    return {
        "key": key,
        "title": title,
        "tabs": [{"label": t.label, "href": tab_link(t) if tab_link else "", "current": t is tab} for t in tabs],
        "column": tab.column,
        "dimension": tab.dimension,
        "metrics": [{"key": m, "heading": METRIC_HEADINGS.get(m, m)} for m in tab.metrics],
        "rows": [
            {
                "value": r[tab.dimension],
                "label": _value_label(tab.dimension, r[tab.dimension]),
                "href": params.with_filter("is", tab.dimension, str(r[tab.dimension])),
                "cells": [{"text": metric_text(m, r[m]), "raw": r[m]} for m in tab.metrics],
                "bar": charts.share(float(r[tab.metrics[0]] or 0), top),
            }
            for r in rows
        ],
        "export": urlencode([("dim", tab.dimension), *params.items()]),
    }


def _tab_href(params: ViewParams, panel: str, tab: Tab) -> str:
    return params.with_tab(panel, tab.key)


def _value_label(dimension: str, value: Any) -> str:
    if value is None or value == "":
        return "Direct / None" if dimension in ("visit:source", "visit:channel") else "(none)"
    return str(value)


# -- the routes ----------------------------------------------------------------------------


def dashboard_handlers(rt: Runtime) -> list[HTTPRouteHandler]:
    """The dashboard's route handlers, bound to one runtime."""

    def site_named(domain: str) -> Site | None:
        return rt.sites.by_hostname(domain.strip().lower())

    async def view_data(site: Site, params: ViewParams, now: dt.datetime) -> dict[str, Any]:
        today = site_today(site, now)
        rng = resolve_range(params, today)
        queries = view_queries(site, params, today)
        start_us, end_us = range_bounds_us(site, rng, now)
        funnels = site.settings.funnels
        # A funnel is worked out when chosen (as Plausible's): it reads every event of its steps.
        funnel = next((f for f in funnels if f.name == params.funnel), None)
        utc_first = dt.datetime.fromtimestamp(start_us / 1e6, dt.UTC).date().isoformat()
        utc_last = dt.datetime.fromtimestamp((end_us - 1) / 1e6, dt.UTC).date().isoformat()
        store = rt.store
        work: dict[str, Callable[[], Any]] = {
            name: functools.partial(execute, store, site, body) for name, body in queries.items()
        }
        work["prop_keys"] = lambda: store.event_property_keys(site.id, start_us, end_us)
        work["bots"] = lambda: store.bot_hits(site.id, utc_first, utc_last)
        work["ai"] = lambda: store.ai_fetch_pages(site.id, start_us, end_us)
        if funnel is not None:
            steps = manage.funnel_matches(funnel)
            work["funnel"] = lambda: store.funnel(site.id, steps, start_us, end_us)
        names = list(work)
        done = await asyncio.gather(*(asyncio.to_thread(work[n]) for n in names))
        answers = dict(zip(names, done, strict=True))
        return {"rng": rng, "queries": queries, "answers": answers, "funnel": funnel}

    def page(site: Site, params: ViewParams, data: dict[str, Any], base: str, shared: bool,
             realtime: tuple[int, list[int]]) -> dict[str, Any]:
        rng: Range = data["rng"]
        queries, answers = data["queries"], data["answers"]
        kpi = rows_of(queries["kpi"], answers["kpi"])[0]
        compared = answers["kpi"]["results"][0].get("comparison")
        deltas = dict(zip(KPI_METRICS, compared["change"], strict=True)) if compared else {}
        tiles = [
            {
                "key": m,
                "label": KPI_LABELS[m],
                "text": metric_text(m, kpi[m]),
                "raw": kpi[m],
                "change": change(m, deltas.get(m)),
                "href": params.href(metric=m) if m in CHART_METRICS else None,
                "current": m == params.metric,
            }
            for m in KPI_METRICS
        ]
        points = chart_points(rng, queries["chart"], answers["chart"], params.metric)
        series = KPI_LABELS[params.metric]
        def draw(width: int, height: int, labels: int, css: str) -> Markup:
            return Markup(charts.time_series(
                points, series=METRIC_HEADINGS[params.metric], label_text=lambda k: bucket_label(rng.interval, k),
                width=width, height=height, max_labels=labels, css_class=css))

        # A wide chart for laptops and a narrow one for phones; the stylesheet shows one.
        chart = draw(800, 240, 8, "chart chart-wide") + draw(360, 220, 4, "chart chart-narrow")
        panels = {}
        for key, tabs in PANELS.items():
            tab = params.tab(key)
            panels[key] = _list_panel(key, PANEL_TITLES[key], tabs, tab, rows_of(queries[key], answers[key]), params,
                                      functools.partial(_tab_href, params, key))
        prop_keys: list[str] = answers["prop_keys"]
        events = _list_panel("events", "Custom events", (EVENTS_TAB,), EVENTS_TAB,
                             rows_of(queries["events"], answers["events"]), params, None)
        props = None
        if "props" in queries:
            assert params.prop is not None
            ptab = prop_tab(params.prop)
            props = _list_panel("props", ptab.label, (ptab,), ptab, rows_of(queries["props"], answers["props"]),
                                params, None)
        goals = None
        if "goals" in queries:
            goals = _list_panel("goals", "Goals", (GOALS_TAB,), GOALS_TAB,
                                rows_of(queries["goals"], answers["goals"]), params, None)
        funnel_links = [{"name": f.name, "href": params.href(funnel=f.name), "current": f.name == params.funnel}
                        for f in site.settings.funnels]
        funnel = None
        if data["funnel"] is not None:
            counts: list[int] = answers["funnel"]
            f = data["funnel"]
            first = counts[0] if counts else 0
            funnel = {
                "name": f.name,
                "steps": [
                    {
                        "label": ("Visit " if s.type == "pageview" else "Event ") + s.value,
                        "visitors": n,
                        "bar": charts.share(n, first),
                        "conversion": round(100.0 * n / first, 1) if first else 0.0,
                        "dropoff": (counts[i - 1] - n) if i else 0,
                        "dropoff_rate": round(100.0 * (counts[i - 1] - n) / counts[i - 1], 1)
                        if i and counts[i - 1] else 0.0,
                    }
                    for i, (s, n) in enumerate(zip(f.steps, counts, strict=True))
                ],
                "conversion": round(100.0 * counts[-1] / first, 1) if first else 0.0,
            }
        visitors, minutes = realtime
        return {
            "site": site,
            "base": base,
            "shared": shared,
            "params": params,
            "range": rng,
            "periods": [{"key": k, "label": v, "href": params.href(period=k, date_from=None, date_to=None),
                         "current": k == params.period} for k, v in PERIODS.items() if k != "custom"],
            "custom_hidden": [(k, v) for k, v in params.items() if k not in ("period", "from", "to")],
            "filters": [{"label": f"{DIMENSION_NAMES.get(d, d.removeprefix(PROP_PREFIX))} "
                                  f"{op.replace('_', ' ')} {_value_label(d, v)}",
                         "remove": params.without_filter(i)} for i, (op, d, v) in enumerate(params.filters)],
            "clear_filters": params.href(filters=()),
            "tiles": tiles,
            "chart": chart,
            "chart_series": series,
            "chart_rows": [(bucket_label(rng.interval, k), metric_text(params.metric, v)) for k, v in points],
            "panels": panels,
            "events": events,
            "prop_links": [{"name": k, "href": params.href(prop=k), "current": k == params.prop} for k in prop_keys],
            "props": props,
            "goals": goals,
            "funnel": funnel,
            "funnel_links": funnel_links,
            "close_funnel": params.href(funnel=None),
            "bots": answers["bots"],
            "ai": answers["ai"],
            "realtime_visitors": visitors,
            "realtime_chart": Markup(_realtime_svg(minutes)),
        }

    async def render_dashboard(request: Request[Any, Any, Any], viewer: auth.Viewer, base: str) -> Response[Any]:
        site = viewer.site
        shared = viewer.user is None
        try:
            params = parse_params(dict(request.query_params.dict()))
        except ParamError as exc:
            return html("dashboard_error.html", 400, site=site, base=base, message=str(exc))
        now = dt.datetime.now(dt.UTC)
        try:
            data, realtime = await asyncio.gather(
                view_data(site, params, now),
                asyncio.to_thread(rt.store.realtime, site.id, to_us(now)),
            )
        except QueryError as exc:
            return html("dashboard_error.html", 400, site=site, base=base, message=str(exc))
        context = page(site, params, data, base, shared, realtime)
        return html("dashboard.html", **context, viewer=viewer, csrf=None if shared else auth.csrf_token(request))

    async def export_csv(request: Request[Any, Any, Any], site: Site) -> Response[Any]:
        query = dict(request.query_params.dict())
        dim = (query.get("dim") or [""])[-1]
        try:
            params = parse_params(query)
            if dim in LIST_DIMENSIONS:
                tab = LIST_DIMENSIONS[dim]
            elif dim.startswith(PROP_PREFIX) and _PROP_NAME.match(dim[len(PROP_PREFIX):]):
                tab = prop_tab(dim[len(PROP_PREFIX):])
            else:
                raise ParamError(f"dim: one of {', '.join(LIST_DIMENSIONS)} or event:props:<name>, not {dim!r}")
            rng = resolve_range(params, site_today(site))
            body = breakdown_query(site, params, rng, tab, EXPORT_LIMIT)
            answer = await asyncio.to_thread(execute, rt.store, site, body)
        except (ParamError, QueryError) as exc:
            return Response(content={"error": str(exc)}, status_code=400)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([tab.column.lower().replace(" ", "_"), *tab.metrics])
        for row in rows_of(body, answer):
            writer.writerow([row[dim], *(row[m] for m in tab.metrics)])
        period = rng.date_range if isinstance(rng.date_range, str) else "_".join(rng.date_range)
        name = f"{site.domain}-{dim.replace(':', '-')}-{period}.csv"
        return Response(content=out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}", "Cache-Control": "no-store"})

    async def realtime_json(site: Site) -> Response[Any]:
        visitors, minutes = await asyncio.to_thread(rt.store.realtime, site.id, to_us(dt.datetime.now(dt.UTC)))
        answer = {"visitors": visitors, "pageviews_per_minute": minutes, "chart": _realtime_svg(minutes)}
        return Response(content=answer, headers={"Cache-Control": "no-store"})

    # -- access: a signed-in user, or a share link for its own site -------------------------

    def signed_in_site(request: Request[Any, Any, Any], domain: str) -> auth.Viewer | Response[Any]:
        if auth.current_user(request) is None:
            return auth.sign_in_redirect(request)
        site = site_named(domain)
        viewer = None if site is None else auth.viewer_for(request, site)
        if viewer is None:
            return html("dashboard_error.html", 404, site=None, base="/", message=f"There is no site {domain!r}.")
        return viewer

    def shared_site(request: Request[Any, Any, Any], token: str) -> auth.Viewer | Response[Any]:
        site = auth.site_for_share(request, token)
        viewer = None if site is None else auth.viewer_for(request, site, token)
        if viewer is None:
            return html("dashboard_error.html", 404, site=None, base="/",
                        message="This share link does not exist or was revoked.")
        return viewer

    @get("/", include_in_schema=False)
    async def index(request: Request[Any, Any, Any]) -> Response[Any]:
        if auth.current_user(request) is None:
            return auth.sign_in_redirect(request)
        sites = sorted(rt.sites.all(), key=lambda s: s.domain)
        if len(sites) == 1:
            return Redirect(path="/" + sites[0].domain, status_code=303)
        return html("dashboard_sites.html", sites=sites, viewer=None, csrf=auth.csrf_token(request))

    @get("/{domain:str}", include_in_schema=False)
    async def dashboard(request: Request[Any, Any, Any], domain: str) -> Response[Any]:
        viewer = signed_in_site(request, domain)
        if isinstance(viewer, Response):
            return viewer
        return await render_dashboard(request, viewer, "/" + viewer.site.domain)

    @get("/{domain:str}/export.csv", include_in_schema=False)
    async def export(request: Request[Any, Any, Any], domain: str) -> Response[Any]:
        viewer = signed_in_site(request, domain)
        return viewer if isinstance(viewer, Response) else await export_csv(request, viewer.site)

    @get("/{domain:str}/realtime.json", include_in_schema=False)
    async def realtime(request: Request[Any, Any, Any], domain: str) -> Response[Any]:
        viewer = signed_in_site(request, domain)
        return viewer if isinstance(viewer, Response) else await realtime_json(viewer.site)

    @get("/share/{token:str}", include_in_schema=False)
    async def shared_dashboard(request: Request[Any, Any, Any], token: str) -> Response[Any]:
        viewer = shared_site(request, token)
        if isinstance(viewer, Response):
            return viewer
        return await render_dashboard(request, viewer, "/share/" + quote(token, safe=""))

    @get("/share/{token:str}/export.csv", include_in_schema=False)
    async def shared_export(request: Request[Any, Any, Any], token: str) -> Response[Any]:
        viewer = shared_site(request, token)
        return viewer if isinstance(viewer, Response) else await export_csv(request, viewer.site)

    @get("/share/{token:str}/realtime.json", include_in_schema=False)
    async def shared_realtime(request: Request[Any, Any, Any], token: str) -> Response[Any]:
        viewer = shared_site(request, token)
        return viewer if isinstance(viewer, Response) else await realtime_json(viewer.site)

    @get("/static/{name:str}", include_in_schema=False)
    async def static(name: str) -> Response[bytes]:
        found = STATIC.get(name)
        if found is None:
            return Response(content=b"not found", status_code=404, media_type="text/plain")
        body, media = found
        return Response(content=body, media_type=media, headers={"Cache-Control": "public, max-age=31536000"})

    return [index, dashboard, export, realtime, shared_dashboard, shared_export, shared_realtime, static]


def _realtime_svg(minutes: list[int]) -> str:
    labels = [f"{30 - i} min ago" for i in range(len(minutes))]
    return charts.columns([float(m) for m in minutes], labels=labels, series="pageviews")

