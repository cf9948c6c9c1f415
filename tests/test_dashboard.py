"""The dashboard in real headless Chromium against a live server, and its SVG charts.

One server for the module holds a small, hand-made data set sent through the ingest API with
explicit timestamps (relative to today, in UTC, the site's time zone). The page's numbers are
checked against POST /api/v2/query and against the figures worked out by hand below.
Screenshots at phone and laptop widths go to test-artifacts/.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footfall.meta import Site as SiteRecord
from footfall.web import charts, dashboard
from tests.conftest import FOOTFALL, Server, Site, cli, cli_json

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="needs Debian's chromium: apt-get install chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

EMAIL, PASSWORD = "owner@example.com", "correct horse battery staple"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.4 Mobile/15E148 Safari/604.1")
MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
       "Version/17.4 Safari/605.1.15")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0.0.0 Mobile Safari/537.36")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GPTBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)"

# By hand, for the default view (the last 30 days, today included):
#   visitors A..E and G (F is 40 days back, in the period compared against);
#   the last 7 days leave out E; day -2 alone has A and B.
VISITORS_30D, PAGEVIEWS_30D, VISITORS_7D, VISITORS_DAY_MINUS_2 = 6, 9, 5, 2
FUNNEL_30D = [2, 1]  # /pricing: A and C; then signup: only A (D signed up without seeing /pricing)


@dataclass
class Dash:
    server: Server
    site: Site
    today: dt.date

    @property
    def url(self) -> str:
        return self.server.url

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /api/v2/query, as any script would."""
        r = self.site.client.post("/api/v2/query", json={"site_id": "example.com", **body},
                                  headers=self.site.headers())
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    def days(self, first: int, last: int = 0) -> list[str]:
        return [(self.today - dt.timedelta(days=first)).isoformat(), (self.today - dt.timedelta(days=last)).isoformat()]


def _records(now: dt.datetime) -> list[dict[str, Any]]:
    def at(days_ago: int, hour: int, minute: int = 0) -> dt.datetime:
        return (now - dt.timedelta(days=days_ago)).replace(hour=hour, minute=minute, second=0, microsecond=0)

    def pv(when: dt.datetime, path: str, ip: str, ua: str, **extra: Any) -> dict[str, Any]:
        return {"type": "pageview", "url": "https://example.com" + path, "visitor_ip": ip, "user_agent": ua,
                "timestamp": when.isoformat().replace("+00:00", "Z"), **extra}

    def ev(when: dt.datetime, name: str, path: str, ip: str, ua: str, props: dict[str, Any]) -> dict[str, Any]:
        return {**pv(when, path, ip, ua), "type": "event", "name": name, "properties": props}

    a, b, c, d = ("81.2.69.142", CHROME), ("8.8.8.8", FIREFOX), ("1.1.1.1", IPHONE), ("81.2.69.160", MAC)
    return [
        pv(at(2, 10), "/", *a, referrer="https://www.google.com/"),
        pv(at(2, 10, 1), "/pricing", *a),
        ev(at(2, 10, 2), "signup", "/pricing", *a, {"plan": "pro"}),
        pv(at(2, 10, 3), "/signup", *a),
        pv(at(2, 11), "/", *b, referrer="https://news.ycombinator.com/"),
        pv(at(1, 9), "/pricing?utm_source=newsletter", *c),
        pv(at(1, 9, 5), "/docs", *c),
        pv(at(1, 12), "/docs", *d, referrer="https://www.google.com/"),
        ev(at(1, 12, 1), "signup", "/docs", *d, {"plan": "free"}),
        pv(at(10, 8), "/", "9.9.9.9", ANDROID, referrer="https://www.google.com/"),
        pv(at(40, 8), "/", "8.8.4.4", FIREFOX),  # F: only in the previous period
        pv(now - dt.timedelta(seconds=60), "/", "203.0.113.9", CHROME),  # G: realtime
        pv(at(1, 13), "/docs", "66.249.66.1", GOOGLEBOT),  # a bot: not counted
        pv(at(1, 14), "/docs", "20.15.240.64", GPTBOT),  # an AI crawler's fetch
    ]


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    server = Server(tmp_path_factory.mktemp("dashboard") / "data").start()
    try:
        site = Site(server)
        subprocess.run([*FOOTFALL, "users", "add", EMAIL, "--role", "owner", "--password-stdin",
                        "--data-dir", str(server.data_dir)], input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True, timeout=120)
        cli(server.data_dir, "goals", "add", "example.com", "--name", "Signup", "--event", "signup")
        cli(server.data_dir, "funnels", "add", "example.com", "--name", "Pricing to signup",
            "--step", "page:/pricing", "--step", "event:signup")
        now = dt.datetime.now(dt.UTC)
        r = site.post("/api/ingest/server/batch", _records(now))
        assert r.status_code == 202 and not r.json()["rejected"], r.text
        server.wait_drained()
        yield Dash(server, site, now.date())
        site.client.close()
    finally:
        server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        assert CHROMIUM is not None, "Debian's chromium is not installed (.ci/run installs it)"
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def signed_in(browser: Any, dash: Dash, path: str = "/example.com", **context: Any) -> Any:
    """A fresh browser context, signed in through the login form, on `path`."""
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    page.goto(dash.url + path)
    assert urlsplit(page.url).path == "/login", page.url
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(dash.url + path.split("?")[0])))
    return page


def tile(page: Any, metric: str) -> float:
    return float(page.get_attribute(f"#kpi-{metric}", "data-value"))


def panel_rows(page: Any, panel: str) -> dict[str, list[str]]:
    """A list panel's rows: the label, then each number cell's raw value."""
    out = {}
    for row in page.query_selector_all(f"#panel-{panel} tbody tr"):
        link = row.query_selector("td.label a")
        if link is None:
            continue
        out[link.inner_text().strip()] = [c.get_attribute("data-value") for c in row.query_selector_all("td.num")]
    return out


def kpis(dash: Dash, date_range: Any, filters: list[Any] | None = None) -> dict[str, Any]:
    metrics = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"]
    answer = dash.query({"metrics": metrics, "date_range": date_range, "filters": filters or []})
    return dict(zip(metrics, answer["results"][0]["metrics"], strict=True))


# -- signed out ----------------------------------------------------------------------------


def test_every_dashboard_route_needs_sign_in(dash: Dash) -> None:
    with httpx.Client(base_url=dash.url) as c:
        for path in ("/", "/example.com", "/example.com/export.csv?dim=visit:source", "/example.com/realtime.json"):
            r = c.get(path)
            assert r.status_code == 303, (path, r.status_code)
            assert r.headers["location"].startswith("/login"), r.headers["location"]
        assert c.get("/example.com").headers["location"] == "/login?next=/example.com"
        # A share link that does not exist opens nothing.
        assert c.get("/share/not-a-real-token").status_code == 404
        assert c.get("/share/not-a-real-token/export.csv?dim=visit:source").status_code == 404


# -- the page ------------------------------------------------------------------------------


@needs_chromium
def test_kpis_chart_and_lists_match_the_api(browser: Any, dash: Dash) -> None:
    page = signed_in(browser, dash)
    expected = kpis(dash, dash.days(29))
    assert expected["visitors"] == VISITORS_30D and expected["pageviews"] == PAGEVIEWS_30D
    for metric, value in expected.items():
        assert tile(page, metric) == pytest.approx(float(value)), metric
    # Against the 30 days before: F alone, so visitors went from 1 to 6.
    assert kpis(dash, dash.days(59, 30))["visitors"] == 1
    assert page.inner_text("#kpi-visitors .change") == "+500%"

    # The chart: a point per day, each the API's figure for that day.
    points = page.query_selector_all("#chart .chart-wide .pt")
    assert len(points) == 30
    daily = dash.query({"metrics": ["visitors"], "date_range": dash.days(29), "dimensions": ["time:day"]})
    by_day = {r["dimensions"][0]: r["metrics"][0] for r in daily["results"]}
    values = [int(p.get_attribute("data-value").replace(",", "")) for p in points]
    assert values[-3] == by_day[dash.days(2)[0]] == 2
    assert sum(values) == sum(by_day.values())
    assert "visitors" in points[-3].query_selector("title").text_content()

    # Top lists: the same rows and numbers as the API's breakdowns.
    for panel, dimension in (("sources", "visit:source"), ("pages", "event:page"), ("devices", "visit:device")):
        metrics = ["visitors", "pageviews"] if panel == "pages" else ["visitors"]
        answer = dash.query({"metrics": metrics, "date_range": dash.days(29), "dimensions": [dimension],
                             "order_by": [["visitors", "desc"]], "pagination": {"limit": 10}})
        api = {r["dimensions"][0]: [str(v) for v in r["metrics"]] for r in answer["results"]}
        assert panel_rows(page, panel) == api, panel
    assert panel_rows(page, "sources")["Google"] == ["3"]

    # Goals, custom events and the funnel.
    assert panel_rows(page, "goals")["Signup"][0] == "2"
    assert panel_rows(page, "events")["signup"] == ["2", "2"]
    assert page.query_selector("#panel-funnel .steps") is None  # worked out when chosen
    page.click("#panel-funnel a:text-is('Pricing to signup')")
    page.wait_for_url(re.compile(r"funnel=Pricing"))
    steps = [int(li.get_attribute("data-visitors")) for li in page.query_selector_all("#panel-funnel .steps li")]
    assert steps == FUNNEL_30D
    assert "1 dropped off (50.0%)" in page.inner_text("#panel-funnel")
    # Bots and AI crawlers.
    bots = page.inner_text("#panel-bots")
    assert "Googlebot" in bots and "GPTBot" in bots and "/docs" in bots
    page.context.close()


@needs_chromium
def test_clicking_a_row_filters_the_whole_page(browser: Any, dash: Dash) -> None:
    page = signed_in(browser, dash)
    page.click("#panel-sources a:text-is('Hacker News')")
    page.wait_for_url(re.compile(r"f=is%2Cvisit%3Asource%2CHacker\+News"))
    assert parse_qs(urlsplit(page.url).query)["f"] == ["is,visit:source,Hacker News"]
    expected = kpis(dash, dash.days(29), [["is", "visit:source", ["Hacker News"]]])
    assert expected["visitors"] == 1
    assert tile(page, "visitors") == 1 and tile(page, "pageviews") == expected["pageviews"]
    assert "Source is Hacker News" in page.inner_text("nav.filters")
    assert list(panel_rows(page, "sources")) == ["Hacker News"]

    # A second filter adds to the first; removing the chip removes it.
    page.click("#panel-pages a:text-is('/')")
    page.wait_for_url(re.compile(r"event%3Apage"))
    assert tile(page, "visitors") == 1
    page.click("nav.filters a.chip:has-text('Source is Hacker News')")
    page.wait_for_url(lambda url: "visit%3Asource" not in url)
    assert tile(page, "visitors") == kpis(dash, dash.days(29), [["is", "event:page", ["/"]]])["visitors"]

    # The page list filtered by a page: /pricing was seen by A and C.
    page.goto(dash.url + "/example.com")
    page.click("#panel-pages a:text-is('/pricing')")
    page.wait_for_url(re.compile(r"%2Fpricing"))
    assert tile(page, "visitors") == 2
    page.context.close()


@needs_chromium
def test_the_date_range_changes(browser: Any, dash: Dash) -> None:
    page = signed_in(browser, dash)
    page.click("#picker summary")
    page.click("#picker a:text-is('Last 7 days')")
    page.wait_for_url(re.compile(r"period=7d"))
    assert tile(page, "visitors") == VISITORS_7D == kpis(dash, dash.days(6))["visitors"]
    assert len(page.query_selector_all("#chart .chart-wide .pt")) == 7

    # Today: hourly points.
    page.click("#picker summary")
    page.click("#picker a:text-is('Today')")
    page.wait_for_url(re.compile(r"period=today"))
    assert len(page.query_selector_all("#chart .chart-wide .pt")) == 24
    assert tile(page, "visitors") == kpis(dash, dash.days(0))["visitors"]

    # A custom range through the form, keeping a filter already set.
    page.goto(dash.url + "/example.com?f=is,visit:device,desktop")
    page.click("#picker summary")
    day = dash.days(2)[0]
    page.fill("#picker input[name=from]", day)
    page.fill("#picker input[name=to]", day)
    page.click("#picker button[type=submit]")
    page.wait_for_url(re.compile(r"period=custom"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["from"] == [day] and query["to"] == [day] and query["f"] == ["is,visit:device,desktop"]
    expected = kpis(dash, [day, day], [["is", "visit:device", ["desktop"]]])
    assert tile(page, "visitors") == expected["visitors"] == VISITORS_DAY_MINUS_2
    assert len(page.query_selector_all("#chart .chart-wide .pt")) == 24  # one day: by the hour
    # The view is all in its URL: opening it anew shows the same.
    page.goto(page.url)
    assert tile(page, "visitors") == VISITORS_DAY_MINUS_2
    page.context.close()


@needs_chromium
def test_csv_downloads_the_breakdown(browser: Any, dash: Dash, tmp_path: Path) -> None:
    page = signed_in(browser, dash, "/example.com?period=7d&sources=channel")
    with page.expect_download() as info:
        page.click("#panel-sources a.export")
    target = tmp_path / "channels.csv"
    info.value.save_as(target)
    assert info.value.suggested_filename.startswith("example.com-visit-channel-")
    rows = list(csv.reader(io.StringIO(target.read_text())))
    answer = dash.query({"metrics": ["visitors"], "date_range": dash.days(6), "dimensions": ["visit:channel"],
                         "order_by": [["visitors", "desc"]]})
    assert rows[0] == ["channel", "visitors"]
    assert rows[1:] == [[r["dimensions"][0], str(r["metrics"][0])] for r in answer["results"]]
    assert len(rows) > 2

    # Any breakdown, with the page's filters: property values of custom events.
    r = page.request.get(dash.url + "/example.com/export.csv?dim=event:props:plan")
    assert r.status == 200 and r.headers["content-type"].startswith("text/csv")
    assert sorted(csv.reader(io.StringIO(r.text()))) == sorted([["plan", "visitors", "events"],
                                                                ["pro", "1", "1"], ["free", "1", "1"]])
    r = page.request.get(dash.url + "/example.com/export.csv?dim=visit:nope")
    assert r.status == 400 and "dim" in r.json()["error"]
    page.context.close()


@needs_chromium
def test_share_link_works_signed_out_until_revoked(browser: Any, dash: Dash) -> None:
    link = cli_json(dash.server.data_dir, "sites", "share", "example.com")
    path = link["path"]
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(dash.url + path)
    assert page.url == dash.url + path  # no sign-in asked
    assert "example.com" in page.inner_text("header") and "read-only" in page.inner_text("header")
    assert tile(page, "visitors") == VISITORS_30D
    page.click("#panel-sources a:text-is('Google')")  # filtering stays on the share link
    page.wait_for_url(re.compile(re.escape(path) + r"\?f="))
    assert tile(page, "visitors") == 3
    assert page.query_selector("form.signout") is None
    r = page.request.get(dash.url + path + "/export.csv?dim=visit:source")
    assert r.status == 200 and "Google,3" in r.text()
    # It opens only its own site, and not the signed-in routes.
    assert page.request.get(dash.url + "/example.com", max_redirects=0).status == 303

    cli(dash.server.data_dir, "sites", "share", "example.com", "--revoke", str(link["id"]))
    response = page.goto(dash.url + path)
    assert response.status == 404 and "revoked" in page.inner_text("main")
    assert page.request.get(dash.url + path + "/export.csv?dim=visit:source").status == 404
    assert page.request.get(dash.url + path + "/realtime.json").status == 404
    ctx.close()


@needs_chromium
def test_realtime_and_no_third_party_requests(browser: Any, dash: Dash) -> None:
    page = signed_in(browser, dash)
    hosts: set[str] = set()
    page.on("request", lambda req: hosts.add(urlsplit(req.url).netloc))
    page.reload()
    page.wait_for_load_state("networkidle")
    assert hosts == {urlsplit(dash.url).netloc}
    assert int(page.inner_text("#realtime-count")) >= 1  # G, a minute ago
    r = page.request.get(dash.url + "/example.com/realtime.json")
    data = r.json()
    assert data["visitors"] >= 1 and len(data["pageviews_per_minute"]) == 30 and sum(data["pageviews_per_minute"]) >= 1
    # The page's own script fetches it too (when the tab becomes visible again).
    with page.expect_response(lambda resp: resp.url.endswith("/realtime.json")):
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.context.close()


@needs_chromium
def test_keyboard_and_screenshots(browser: Any, dash: Dash) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = signed_in(browser, dash, viewport={"width": 1280, "height": 900})
    # Tab from the top: the skip link first, and every control is a real link or button.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#panel-sources td.label') !== null"):
            break
    else:
        raise AssertionError("the sources list is not reachable with the keyboard")
    assert page.evaluate("document.activeElement.tagName") == "A"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"f="))
    page.goto(dash.url + "/example.com?funnel=Pricing+to+signup&prop=plan")
    page.screenshot(path=str(ARTIFACTS / "dashboard-laptop.png"), full_page=True)
    page.context.close()

    phone = signed_in(browser, dash, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                      is_mobile=True, has_touch=True)
    # Nothing wider than the screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    phone.screenshot(path=str(ARTIFACTS / "dashboard-phone-first-screen.png"))
    phone.context.close()


def test_bad_view_parameters_are_400_not_500(dash: Dash) -> None:
    with httpx.Client(base_url=dash.url) as c:
        page = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        r = c.post("/login", data={"csrf_token": token.group(1), "email": EMAIL, "password": PASSWORD,
                                   "next": "/example.com"})
        assert r.status_code == 303
        for query, word in (("period=fortnight", "period"), ("period=custom&from=2026-01-01", "from"),
                            ("f=equals,visit:source,x", "f"), ("f=is,visit:nope,x", "f"), ("pages=nope", "pages"),
                            ("metric=bounce_rate", "metric"), ("f=matches,event:page,(", "f")):
            r = c.get("/example.com?" + query)
            assert r.status_code == 400, (query, r.status_code)
            assert word in r.text
        assert c.get("/nosuchsite.example").status_code == 404
        # One site: straight to it; more: a list.
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/example.com"
        cli(dash.server.data_dir, "sites", "add", "second.example")
        r = c.get("/")
        assert r.status_code == 200 and 'href="/example.com"' in r.text and 'href="/second.example"' in r.text
        assert c.get("/second.example").status_code == 200  # an empty site shows zeros, not an error
        assert c.get("/static/dashboard.css").headers["content-type"].startswith("text/css")
        assert c.get("/static/nope.css").status_code == 404


def test_funnels_over_http_and_the_cli(dash: Dash) -> None:
    data_dir = dash.server.data_dir
    admin = cli_json(data_dir, "tokens", "create", "--name", "funnels", "--scope", "sites.manage")["token"]
    headers = {"Authorization": f"Bearer {admin}"}
    client = dash.site.client
    body = {"name": "Docs to signup", "steps": [{"type": "pageview", "value": "/docs*"},
                                                 {"type": "event", "value": "signup"}]}
    r = client.post("/api/sites/example.com/funnels", json=body, headers=headers)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["id"].startswith("f_") and made["steps"] == body["steps"]
    assert client.post("/api/sites/example.com/funnels", json=body, headers=headers).status_code == 409
    one_step = {"name": "x", "steps": body["steps"][:1]}
    assert client.post("/api/sites/example.com/funnels", json=one_step, headers=headers).status_code in (400, 422)
    bad = {"name": "y", "steps": [{"type": "pageview", "value": "docs"}, {"type": "event", "value": "signup"}]}
    r = client.post("/api/sites/example.com/funnels", json=bad, headers=headers)
    assert r.status_code == 422 and "step 1" in r.text
    assert client.post("/api/sites/example.com/funnels", json=body).status_code == 401
    listed = client.get("/api/sites/example.com/funnels", headers=headers).json()
    assert [f["name"] for f in listed] == ["Pricing to signup", "Docs to signup"]
    assert cli_json(data_dir, "funnels", "list", "example.com") == listed

    # Shown on the dashboard when chosen: C and D saw /docs, then only D signed up (after it).
    with httpx.Client(base_url=dash.url) as c:
        login = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token is not None
        c.post("/login", data={"csrf_token": token.group(1), "email": EMAIL, "password": PASSWORD})
        page = c.get("/example.com", params={"funnel": "Docs to signup"})
        assert page.status_code == 200
        assert re.findall(r'data-visitors="(\d+)"', page.text) == ["2", "1"]

    assert client.delete(f"/api/sites/example.com/funnels/{made['id']}", headers=headers).json() == {
        "removed": made["id"]}
    assert client.delete("/api/sites/example.com/funnels/nope", headers=headers).status_code == 404
    bad_cli = cli(data_dir, "funnels", "add", "example.com", "--name", "z", "--step", "page:/a", check=False)
    assert bad_cli.returncode != 0 and "2 to 8 steps" in bad_cli.stderr + bad_cli.stdout


def test_random_query_strings_never_cause_a_500(dash: Dash) -> None:
    keys = st.sampled_from(["period", "from", "to", "f", "pages", "sources", "locations", "devices", "metric", "prop",
                            "funnel", "dim", "x"])
    values = st.one_of(st.text(max_size=40), st.sampled_from([
        "custom", "7d", "all", "2026-02-30", "is,visit:source,Google", "is,event:props:,x", "contains,event:page,/",
        "is_not,event:goal,Signup", "entry", "visitors", "event:props:plan", "visit:city"]))
    with httpx.Client(base_url=dash.url) as c:
        login = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token is not None
        c.post("/login", data={"csrf_token": token.group(1), "email": EMAIL, "password": PASSWORD})

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(st.tuples(keys, values), max_size=6), st.sampled_from(["", "/export.csv", "/realtime.json"]))
        def check(pairs: list[tuple[str, str]], route: str) -> None:
            r = c.get("/example.com" + route, params=pairs)
            assert r.status_code in (200, 400), (pairs, route, r.status_code, r.text[:300])

        check()


@given(st.lists(st.tuples(st.sampled_from(["period", "from", "to", "f", "pages", "sources", "metric", "prop"]),
                          st.text(max_size=30)), max_size=8))
def test_view_params_parse_or_name_the_parameter(pairs: list[tuple[str, str]]) -> None:
    query: dict[str, list[str]] = {}
    for key, value in pairs:
        query.setdefault(key, []).append(value)
    try:
        params = dashboard.parse_params(query)
    except dashboard.ParamError as exc:
        assert str(exc).split(":")[0] in {k for k, _ in pairs} | {"from and to"}
        return
    # A view's own links give it back.
    again = dashboard.parse_params(parse_qs(params.href()[1:], keep_blank_values=True))
    assert again == params


def test_view_queries_and_ranges() -> None:
    site = SiteRecord(id=1, domain="shop.example", timezone="Europe/Berlin", tracking_id="FF-1", created_at="x")
    today = dt.date(2026, 3, 15)
    for period, first, last, previous, interval in (
        ("today", "2026-03-15", "2026-03-15", ["2026-03-14", "2026-03-14"], "time:hour"),
        ("7d", "2026-03-09", "2026-03-15", ["2026-03-02", "2026-03-08"], "time:day"),
        ("month", "2026-03-01", "2026-03-15", ["2026-02-14", "2026-02-28"], "time:day"),
        ("lastmonth", "2026-02-01", "2026-02-28", ["2026-01-01", "2026-01-31"], "time:day"),
        ("12mo", "2025-04-01", "2026-03-15", ["2024-04-01", "2025-03-31"], "time:month"),
    ):
        rng = dashboard.resolve_range(dashboard.ViewParams(period=period), today)
        assert (rng.date_range, rng.previous, rng.interval) == ([first, last], previous, interval), period
    params = dashboard.parse_params({"f": ["is,visit:source,Google"], "sources": ["channel"], "prop": ["plan"]})
    queries = dashboard.view_queries(site, params, today)
    assert queries["kpi"]["include"] == {"comparisons": {"mode": "custom", "date_range": ["2026-01-15", "2026-02-13"]}}
    assert set(queries) == {"kpi", "chart", "pages", "sources", "locations", "devices", "events",
                            "props"}  # no goals: the site has none
    assert queries["sources"]["dimensions"] == ["visit:channel"]
    assert all(q["filters"][0] == ["is", "visit:source", ["Google"]] for q in queries.values())
    assert queries["kpi"]["date_range"] == ["2026-02-14", "2026-03-15"]
    assert dashboard.view_queries(site, dashboard.ViewParams(period="all"), today)["kpi"]["date_range"] == "all"


# -- charts.py -----------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def test_time_series_places_points_on_the_scale() -> None:
    svg = charts.time_series([("2026-01-01", 0), ("2026-01-02", 10), ("2026-01-03", 5)], series="Visitors",
                             width=800, height=240)
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == SVG + "svg" and root.get("viewBox") == "0 0 800 240"
    circles = [(float(c.get("cx", "")), float(c.get("cy", ""))) for c in root.iter(SVG + "circle")]
    # Plot area: x from 52 to 784, y from 12 (the top tick, 10) to 210 (zero).
    assert circles == [(52.0, 210.0), (418.0, 12.0), (784.0, 111.0)]
    titles = [t.text for t in root.iter(SVG + "title")]
    assert "2026-01-02: 10 visitors" in titles
    labels = [t.text for t in root.iter(SVG + "text") if t.get("class") == "ylabel"]
    assert labels == ["0", "5", "10"]  # counts: whole-number ticks
    fractional = ET.fromstring(charts.time_series([("a", 1), ("b", 2)], integers=False))
    ylabels = [t.text for t in fractional.iter(SVG + "text") if t.get("class") == "ylabel"]
    assert ylabels == ["0", "0.5", "1", "1.5", "2"]
    points = [g for g in root.iter(SVG + "g") if g.get("class") == "pt"]
    assert [p.get("data-value") for p in points] == ["0", "10", "5"]
    line = next(root.iter(SVG + "polyline")).get("points")
    assert line == "52,210 418,12 784,111"


def test_time_series_edge_cases_and_escaping() -> None:
    one = ET.fromstring(charts.time_series([("<today>", 3)]))
    (circle,) = list(one.iter(SVG + "circle"))
    assert float(circle.get("cx", "")) == 52 + (800 - 52 - 16) / 2  # a single point sits in the middle
    assert "<today>: 3 visitors" in [t.text for t in one.iter(SVG + "title")]
    empty = ET.fromstring(charts.time_series([]))
    assert list(empty.iter(SVG + "circle")) == []
    zero = ET.fromstring(charts.time_series([("a", 0), ("b", 0)]))
    assert {c.get("cy") for c in zero.iter(SVG + "circle")} == {"210"}
    # Many points: at most 8 x labels, the first and the last among them.
    many = ET.fromstring(charts.time_series([(f"d{i}", i) for i in range(30)]))
    xlabels = [t.text for g in many.iter(SVG + "g") if g.get("class") == "xlabels" for t in g]
    assert len(xlabels) <= 9 and xlabels[0] == "d0" and xlabels[-1] == "d29"


def test_nice_ticks_columns_and_share() -> None:
    assert charts.nice_ticks(0) == [0.0, 1.0]
    assert charts.nice_ticks(7) == [0, 2, 4, 6, 8]
    assert charts.nice_ticks(1234)[-1] >= 1234
    assert charts.nice_ticks(2, integers=True) == [0, 1, 2]
    assert charts.compact(1500) == "1.5k" and charts.compact(2_000_000) == "2M" and charts.compact(12) == "12"
    cols = ET.fromstring(charts.columns([0, 2, 4], labels=["a", "b", "c"], width=300, height=48))
    rects = list(cols.iter(SVG + "rect"))
    assert [float(r.get("height", "")) for r in rects] == [0.0, 23.0, 46.0]
    assert charts.share(5, 10) == 50.0 and charts.share(1, 0) == 0.0
