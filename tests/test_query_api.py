"""The Stats API v2 (`POST /api/v2/query`) and `footfall stats`, against a real server.

One server for the module. The fixture data set goes in through the real ingest APIs (the
server API with explicit timestamps, addresses and agents; Plausible's event API for revenue
and engagement), and every figure below is worked out by hand from it.

shop.example is in America/New_York (EDT, UTC-4 in May): local midnight is 04:00 UTC, so a visit
at 03:50-04:10 UTC crosses local midnight, but not the UTC day its visitor hash is salted with.

    visitor  local time (D1 = 2025-05-10, D2 = 05-11)   pages                  came from
    V1       D1 10:00, 10:02, 10:03 (signup, plan=pro)   / -> /pricing          Google
    V2       D1 12:00                                    /blog/a (bounce)       utm_source=newsletter
    V3       D1 23:50 -> D2 00:10                        / -> /blog/b           Hacker News
    V4       D2 11:00                                    /pricing (bounce)      Google
    V5       2024-05-10 12:00 (a year before)            /                      -
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from footfall.ingest.plausible_api import ENGAGEMENT
from footfall.query.model import ENGAGEMENT_EVENT
from tests.conftest import Server, cli, cli_json

QUERY = "/api/v2/query"
SITE = "shop.example"
CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0 Safari/537.36")
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.4 Mobile/15E148 Safari/604.1")
D1, D2 = "2025-05-10", "2025-05-11"
BOTH = [D1, D2]


def pv(path: str, ts: str, ip: str, agent: str, referrer: str | None = None, **extra: Any) -> dict[str, Any]:
    record = {"type": "pageview", "url": f"https://{SITE}{path}", "timestamp": ts, "visitor_ip": ip,
              "user_agent": agent, **extra}
    if referrer:
        record["referrer"] = referrer
    return record


FIXTURE = [
    pv("/", "2025-05-10T14:00:00Z", "203.0.113.1", CHROME_WIN, "https://www.google.com/"),
    pv("/pricing", "2025-05-10T14:02:00Z", "203.0.113.1", CHROME_WIN),
    {**pv("/pricing", "2025-05-10T14:03:00Z", "203.0.113.1", CHROME_WIN), "type": "event", "name": "signup",
     "properties": {"plan": "pro"}},
    pv("/blog/a?utm_source=newsletter&utm_medium=email", "2025-05-10T16:00:00Z", "203.0.113.2", FIREFOX_LINUX),
    pv("/", "2025-05-11T03:50:00Z", "203.0.113.3", IPHONE, "https://news.ycombinator.com/"),
    pv("/blog/b", "2025-05-11T04:10:00Z", "203.0.113.3", IPHONE),
    pv("/pricing", "2025-05-11T15:00:00Z", "203.0.113.4", CHROME_WIN, "https://www.google.com/"),
    pv("/", "2024-05-10T16:00:00Z", "203.0.113.5", FIREFOX_LINUX),
    # 2 November 2025: New York's clocks go back from 02:00 EDT to 01:00 EST.
    pv("/dst", "2025-11-02T05:30:00Z", "203.0.113.6", FIREFOX_LINUX),  # 01:30 EDT
    pv("/dst", "2025-11-02T06:30:00Z", "203.0.113.7", FIREFOX_LINUX),  # 01:30 EST
    pv("/dst", "2025-11-02T08:00:00Z", "203.0.113.8", FIREFOX_LINUX),  # 03:00 EST
]


class Live:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.url, timeout=30)
        self.token = ""
        self.tokens: dict[str, str] = {}

    def query(self, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.client.post(QUERY, json={"site_id": SITE, **body}, headers=headers)

    def ok(self, **body: Any) -> dict[str, Any]:
        r = self.query(body)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    def rows(self, **body: Any) -> list[tuple[list[Any], list[Any]]]:
        return [(r["dimensions"], r["metrics"]) for r in self.ok(**body)["results"]]

    def bad(self, body: dict[str, Any], status: int = 400, token: str | None = None) -> str:
        r = self.query(body, token)
        assert r.status_code == status, (body, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()
        assert set(error) == {"error"} and isinstance(error["error"], str) and error["error"], error
        return str(error["error"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = Server(tmp_path_factory.mktemp("query_api") / "data").start()
    data = server.data_dir
    cli(data, "sites", "add", SITE, "--timezone", "America/New_York")
    cli(data, "sites", "add", "other.example")
    site = Live(server)
    site.token = cli_json(data, "tokens", "create", "--name", "reader", "--scope", "stats.read",
                          "--scope", "site.manage_data", "--site", SITE)["token"]
    site.tokens["writer"] = cli_json(data, "tokens", "create", "--name", "writer",
                                     "--scope", "site.manage_data")["token"]
    site.tokens["other"] = cli_json(data, "tokens", "create", "--name", "other", "--scope", "stats.read",
                                    "--site", "other.example")["token"]
    site.tokens["all"] = cli_json(data, "tokens", "create", "--name", "all", "--scope", "stats.read")["token"]
    cli(data, "goals", "add", SITE, "--name", "Signup", "--event", "signup")
    cli(data, "goals", "add", SITE, "--name", "Blog", "--page", "/blog/*")
    r = site.client.post("/api/ingest/server/batch", json=FIXTURE, headers={"Authorization": f"Bearer {site.token}"})
    assert r.status_code == 202 and r.json()["accepted"] == len(FIXTURE), r.text
    server.wait_drained()
    yield site
    site.client.close()
    server.kill()


def test_totals_of_two_days(live: Live) -> None:
    answer = live.ok(metrics=["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
                              "views_per_visit"], date_range=BOTH)
    # 4 visits; 6 pageviews and a signup; V2 and V4 bounce; (180 + 0 + 1200 + 0) / 4 seconds.
    assert [r["metrics"] for r in answer["results"]] == [[4, 4, 6, 7, 50, 345, 1.5]]
    assert answer["results"][0]["dimensions"] == []
    query = answer["query"]
    assert query["site_id"] == SITE and query["metrics"][0] == "visitors"
    assert query["date_range"] == ["2025-05-10T00:00:00-04:00", "2025-05-11T23:59:59-04:00"]
    assert query["pagination"] == {"limit": 10000, "offset": 0} and answer["meta"] == {}


def test_a_visit_across_local_midnight_is_one_visit_either_day(live: Live) -> None:
    metrics = ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]
    # Per day, in New York: V3's first pageview is on D1, its second on D2. Visits count on
    # the day they began; visitors and pageviews on the day they happened.
    assert live.rows(metrics=metrics, date_range=BOTH, dimensions=["time:day"]) == [
        ([D1], [3, 3, 4, 33, 460]),  # V1, V2, V3 began; V2 bounced; (180 + 0 + 1200) / 3
        ([D2], [2, 1, 2, 100, 0]),  # V4 began (and bounced); V3 was there too
    ]
    # One day alone: V3's whole visit counts, not the half in the range.
    assert live.rows(metrics=metrics, date_range=[D1, D1]) == [([], [3, 3, 4, 33, 460])]
    assert live.rows(metrics=metrics, date_range=[D2, D2]) == [([], [2, 2, 2, 50, 600])]
    # In UTC, V3's pageviews are both on May 11th, and V2's is still on May 10th.
    utc = ["2025-05-11T00:00:00+00:00", "2025-05-11T23:59:59+00:00"]
    assert live.rows(metrics=["visitors", "pageviews"], date_range=utc) == [([], [2, 3])]


def test_hours_weeks_and_time_labels(live: Live) -> None:
    answer = live.ok(metrics=["pageviews"], date_range=[D1, D1], dimensions=["time"],
                     include={"time_labels": True})
    assert [(r["dimensions"], r["metrics"]) for r in answer["results"]] == [
        (["2025-05-10 10:00:00"], [2]), (["2025-05-10 12:00:00"], [1]), (["2025-05-10 23:00:00"], [1])]
    labels = answer["meta"]["time_labels"]
    assert len(labels) == 24 and labels[0] == "2025-05-10 00:00:00" and labels[-1] == "2025-05-10 23:00:00"
    assert answer["query"]["dimensions"] == ["time:hour"]
    # D1 is a Saturday: its week begins with the range; D2 (Sunday) is the same week.
    weeks = live.ok(metrics=["visitors"], date_range=BOTH, dimensions=["time:week"], include={"time_labels": True})
    assert weeks["meta"]["time_labels"] == [D1] and [r["dimensions"] for r in weeks["results"]] == [[D1]]
    months = live.ok(metrics=["visitors"], date_range=["2024-05-01", "2025-05-31"], dimensions=["time:month"])
    assert [(r["dimensions"], r["metrics"]) for r in months["results"]] == [
        (["2024-05-01"], [1]), (["2025-05-01"], [4])]


def test_hours_across_a_clock_change(live: Live) -> None:
    day = ["2025-11-02", "2025-11-02"]
    answer = live.ok(metrics=["pageviews"], date_range=day, dimensions=["time:hour"], include={"time_labels": True})
    # Both 01:30s are in the local 01:00 hour; the day has 25 hours and 24 hour labels.
    assert [(r["dimensions"], r["metrics"]) for r in answer["results"]] == [
        (["2025-11-02 01:00:00"], [2]), (["2025-11-02 03:00:00"], [1])]
    assert len(answer["meta"]["time_labels"]) == 24
    assert answer["query"]["date_range"] == ["2025-11-02T00:00:00-04:00", "2025-11-02T23:59:59-05:00"]
    assert live.rows(metrics=["pageviews"], date_range=["2025-11-01", "2025-11-03"], dimensions=["time:day"]) == [
        (["2025-11-02"], [3])]


def test_entry_and_exit_pages_and_sources(live: Live) -> None:
    assert live.rows(metrics=["visitors", "visits", "bounce_rate"], date_range=BOTH,
                     dimensions=["visit:entry_page"]) == [
        (["/"], [2, 2, 0]), (["/blog/a"], [1, 1, 100]), (["/pricing"], [1, 1, 100])]
    assert live.rows(metrics=["visits"], date_range=BOTH, dimensions=["visit:exit_page"]) == [
        (["/pricing"], [2]), (["/blog/a"], [1]), (["/blog/b"], [1])]
    sources = dict((r[0][0], r[1]) for r in live.rows(metrics=["visitors", "pageviews"], date_range=BOTH,
                                                      dimensions=["visit:source"]))
    # A visit's source is its first event's: V1's second pageview (no referrer) is still Google's.
    assert sources["Google"] == [2, 3] and sources["Hacker News"] == [1, 2]
    assert sum(v[0] for v in sources.values()) == 4
    assert live.rows(metrics=["visitors"], date_range=BOTH, dimensions=["visit:utm_source"],
                     filters=[["is", "visit:utm_source", ["newsletter"]]]) == [(["newsletter"], [1])]
    devices = dict((r[0][0], r[1][0]) for r in live.rows(metrics=["visitors"], date_range=BOTH,
                                                         dimensions=["visit:device"]))
    assert devices == {"desktop": 3, "mobile": 1}


def test_pages_percentage_and_pagination(live: Live) -> None:
    pages = live.rows(metrics=["visitors", "pageviews", "percentage"], date_range=BOTH, dimensions=["event:page"])
    # Ties on visitors go by page; the signup on /pricing is V1's there too.
    assert pages == [(["/"], [2, 2, 50.0]), (["/pricing"], [2, 2, 50.0]), (["/blog/a"], [1, 1, 25.0]),
                     (["/blog/b"], [1, 1, 25.0])]
    page = live.ok(metrics=["visitors"], date_range=BOTH, dimensions=["event:page"],
                   pagination={"limit": 2, "offset": 1}, include={"total_rows": True})
    assert [r["dimensions"] for r in page["results"]] == [["/pricing"], ["/blog/a"]]
    assert page["meta"]["total_rows"] == 4
    ordered = live.rows(metrics=["pageviews"], date_range=BOTH, dimensions=["event:page"],
                        order_by=[["event:page", "desc"]])
    assert [r[0][0] for r in ordered] == ["/pricing", "/blog/b", "/blog/a", "/"]


def test_goals_and_conversion_rates(live: Live) -> None:
    # Blog: V2 and V3 viewed a page under /blog/; Signup: V1. Of 4 visitors.
    assert live.rows(metrics=["visitors", "events", "conversion_rate"], date_range=BOTH,
                     dimensions=["event:goal"]) == [(["Blog"], [2, 2, 50.0]), (["Signup"], [1, 1, 25.0])]
    # Google brought V1 and V4, of whom V1 signed up.
    rows = live.rows(metrics=["visitors", "conversion_rate", "group_conversion_rate"], date_range=BOTH,
                     dimensions=["visit:source"], filters=[["is", "event:goal", ["Signup"]]])
    assert rows == [(["Google"], [1, 25.0, 50.0])]
    assert live.rows(metrics=["visitors"], date_range=BOTH,
                     filters=[["is_not", "event:goal", ["Blog"]], ["is", "event:goal", ["Signup"]]]) == [([], [1])]


def test_filters_combined(live: Live) -> None:
    def totals(*filters: Any) -> list[Any]:
        return live.rows(metrics=["visitors", "pageviews"], date_range=BOTH, filters=list(filters))[0][1]

    assert totals(["or", [["is", "event:page", ["/pricing"]], ["contains", "event:page", ["blog"]]]]) == [4, 4]
    assert totals(["not", ["is", "visit:source", ["Google"]]]) == [2, 3]
    # Visits that entered on / (V1, V3), their events elsewhere: /pricing (and the signup), /blog/b.
    assert totals(["and", [["is", "visit:entry_page", ["/"]], ["is_not", "event:page", ["/"]]]]) == [2, 2]
    assert totals(["contains", "event:page", ["PRICING"]]) == [0, 0]
    assert totals(["contains", "event:page", ["PRICING"], {"case_sensitive": False}]) == [2, 2]
    assert totals(["matches", "event:page", ["^/blog/[ab]$"]]) == [2, 2]
    assert totals(["matches_not", "event:page", ["blog"]]) == [3, 4]
    assert totals(["contains_not", "event:page", ["/"]]) == [0, 0]
    assert totals(["is", "event:page", ["/", "/blog/b"]]) == [2, 3]
    # Visit metrics over visits with a matching event: those that saw /pricing (V1, V4).
    assert live.rows(metrics=["visits", "bounce_rate", "visit_duration"], date_range=BOTH,
                     filters=[["is", "event:page", ["/pricing"]]]) == [([], [2, 50, 90])]


def test_props_dimension(live: Live) -> None:
    assert live.rows(metrics=["visitors", "events"], date_range=BOTH, dimensions=["event:props:plan"]) == [
        (["(none)"], [4, 6]), (["pro"], [1, 1])]
    assert live.rows(metrics=["events"], date_range=BOTH, filters=[["is", "event:props:plan", ["pro"]]]) == [([], [1])]


def test_comparisons(live: Live) -> None:
    answer = live.ok(metrics=["visitors", "bounce_rate", "views_per_visit"], date_range=[D2, D2],
                     include={"comparisons": {"mode": "previous_period"}})
    assert answer["query"]["comparison_date_range"] == ["2025-05-10T00:00:00-04:00", "2025-05-10T23:59:59-04:00"]
    (row,) = answer["results"]
    assert row["metrics"] == [2, 50, 1.5]
    # Visitors in percent, the bounce rate in points.
    # D1: V1, V2, V3 with 5 pageviews in 3 visits.
    assert row["comparison"] == {"dimensions": [], "metrics": [3, 33, 1.67], "change": [-33, 17, -10]}
    yoy = live.ok(metrics=["visitors", "pageviews"], date_range=BOTH, dimensions=["time:day"],
                  include={"comparisons": {"mode": "year_over_year"}})
    assert yoy["query"]["comparison_date_range"][0] == "2024-05-10T00:00:00-04:00"
    first, second = yoy["results"]
    assert first["comparison"] == {"dimensions": ["2024-05-10"], "metrics": [1, 1], "change": [200, 300]}
    assert second["comparison"] == {"dimensions": ["2024-05-11"], "metrics": [0, 0], "change": [100, 100]}


def test_revenue_time_on_page_and_scroll_depth(live: Live) -> None:
    assert ENGAGEMENT_EVENT == ENGAGEMENT  # the name the Plausible adapter stores them under
    for agent, amount, ms, depth in ((CHROME_WIN, "29.90", 5000, 80), (FIREFOX_LINUX, "10.10", 3000, 40)):
        events = [
            {"n": "pageview", "u": f"https://{SITE}/checkout", "d": SITE},
            {"n": "Purchase", "u": f"https://{SITE}/checkout", "d": SITE,
             "revenue": {"amount": amount, "currency": "EUR"}},
            {"n": "engagement", "u": f"https://{SITE}/checkout", "d": SITE, "e": ms, "sd": depth},
        ]
        for body in events:
            r = live.client.post("/api/event", json=body, headers={"User-Agent": agent})
            assert r.status_code == 202, r.text
    live.server.wait_drained()
    answer = live.ok(metrics=["visitors", "events", "total_revenue", "average_revenue", "time_on_page",
                              "scroll_depth"], date_range="day", filters=[["is", "event:page", ["/checkout"]]])
    (row,) = answer["results"]
    # Engagement events are no events of their own: 2 pageviews and 2 purchases.
    assert row["metrics"][:2] == [2, 4]
    total, average = row["metrics"][2:4]
    assert total["value"] == 40.0 and total["currency"] == "EUR" and total["long"] == "€40.00"
    assert average["value"] == 20.0
    # (5 s + 3 s) / 2 visitors; (80 + 40) / 2 percent.
    assert row["metrics"][4:] == [4, 60]


def test_bad_queries_are_400_naming_the_fault(live: Live) -> None:
    base = {"metrics": ["visitors"], "date_range": BOTH}
    assert "unknown metric 'vistors'" in live.bad({**base, "metrics": ["vistors"]})
    assert "unknown dimension 'event:pagee'" in live.bad({**base, "dimensions": ["event:pagee"]})
    assert "unknown filter operator 'equals'" in live.bad({**base, "filters": [["equals", "event:page", ["/"]]]})
    assert "filters[0]" in live.bad({**base, "filters": [["is", "visit:nope", ["x"]]]})
    assert "not a regular expression" in live.bad({**base, "filters": [["matches", "event:page", ["[a-"]]]})
    assert "cannot be run" in live.bad({**base, "filters": [["matches", "event:page", ["(?<=a)b"]]]})  # not RE2
    assert "goal 'Nope' is not configured" in live.bad({**base, "filters": [["is", "event:goal", ["Nope"]]]})
    assert "unknown range '8d'" in live.bad({**base, "date_range": "8d"})
    assert "before the first" in live.bad({**base, "date_range": [D2, D1]})
    assert "not a date" in live.bad({**base, "date_range": ["2025-13-01", "2025-13-02"]})
    assert "conversion_rate" in live.bad({**base, "metrics": ["conversion_rate"]})
    assert "time dimension" in live.bad({**base, "include": {"time_labels": True}})
    assert "order_by" in live.bad({**base, "order_by": [["pageviews", "desc"]]})
    assert "metrics" in live.bad({**base, "metrics": []})
    assert "site_id" in live.bad({"metrics": ["visitors"], "date_range": "7d", "site_id": 5})
    assert "nope" in live.bad({**base, "include": {"nope": True}})
    assert live.bad({**base, "pagination": {"limit": 0}})
    headers = {"Authorization": f"Bearer {live.token}"}
    for content, fault in ((b"not json", "malformed"), (b"", "JSON object"),
                           (b'{"site_id": "shop.example", "filters": ' + b"[" * 5000 + b"]" * 5000 + b"}", "deeply")):
        r = live.client.post(QUERY, content=content, headers=headers)
        assert r.status_code == 400 and set(r.json()) == {"error"} and fault in r.json()["error"], r.text


def test_auth(live: Live) -> None:
    body = {"metrics": ["visitors"], "date_range": BOTH}
    r = live.client.post(QUERY, json={"site_id": SITE, **body})
    assert r.status_code == 401 and set(r.json()) == {"error"}
    live.bad(body, 401, token="ff_wrong")
    assert "stats.read" in live.bad(body, 403, token=live.tokens["writer"])
    live.bad(body, 403, token=live.tokens["other"])  # a token for other sites alone
    live.bad({**body, "site_id": "nope.example"}, 403)  # a limited token learns nothing
    assert "no site" in live.bad({**body, "site_id": "nope.example"}, 404, token=live.tokens["all"])
    # The tracking id names the site too.
    tracking_id = cli_json(live.server.data_dir, "sites", "show", SITE)["tracking_id"]
    assert live.rows(metrics=["visitors"], date_range=BOTH, site_id=tracking_id) == [([], [4])]


def test_cli_stats_with_query_options(live: Live) -> None:
    data = live.server.data_dir
    answer = cli_json(data, "stats", "--site", SITE, "--from", D1, "--to", D2, "--metric", "visitors",
                      "--metric", "pageviews", "--dimension", "event:page", "--filter", "event:page==/pricing|/",
                      "--compare", "previous_period")
    assert [(r["dimensions"], r["metrics"]) for r in answer["results"]] == [(["/"], [2, 2]), (["/pricing"], [2, 2])]
    assert all(r["comparison"]["metrics"] == [0, 0] for r in answer["results"])
    json_filter = json.dumps(["contains", "event:page", ["blog"]])
    answer = cli_json(data, "stats", "--site", SITE, "--from", D1, "--to", D2, "--filter", json_filter)
    assert answer["results"][0]["metrics"][0] == 2  # visitors, the default first metric
    text = cli(data, "stats", "--site", SITE, "--from", D1, "--to", D2, "--dimension", "visit:exit_page",
               "--metric", "visits").stdout
    assert "/blog/b" in text and "visit:exit_page" in text
    bad = cli(data, "stats", "--site", SITE, "--period", "8d", check=False)
    assert bad.returncode == 1 and "unknown range" in bad.stderr
    bad = cli(data, "stats", "--site", SITE, "--period", "7d", "--filter", "nonsense", check=False)
    assert bad.returncode == 1 and "dim==value" in bad.stderr
    # Without query options: the summary report, as before.
    report = cli_json(data, "stats", "--site", SITE, "--from", D1, "--to", D2)
    assert report["totals"]["pageviews"] == 6 and report["totals"]["events"] == 1
    assert [g["goal"] for g in report["goals"]] == ["Signup", "Blog"]


# -- random bodies: never a 5xx ---------------------------------------------------------------

names = st.sampled_from(["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
                         "views_per_visit", "percentage", "conversion_rate", "group_conversion_rate",
                         "time_on_page", "scroll_depth", "total_revenue", "average_revenue", "nope", ""])
dims = st.sampled_from(["time", "time:hour", "time:day", "time:week", "time:month", "event:goal", "event:page",
                        "event:hostname", "event:props:plan", "event:props:", "visit:entry_page", "visit:exit_page",
                        "visit:source", "visit:channel", "visit:referrer", "visit:utm_source", "visit:device",
                        "visit:browser", "visit:browser_version", "visit:os", "visit:os_version", "visit:country",
                        "visit:region", "visit:city", "event:name", "visit:nope"])
finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.none() | st.booleans() | st.integers() | finite | st.text(max_size=12)
values = st.lists(st.text(max_size=10) | st.integers() | json_scalars, max_size=3)
leaf = st.tuples(st.sampled_from(["is", "is_not", "contains", "contains_not", "matches", "matches_not", "has_done",
                                  "x"]), dims, values).map(list)
leaf_mod = st.tuples(st.sampled_from(["is", "contains", "matches"]), dims, values,
                     st.fixed_dictionaries({"case_sensitive": st.booleans()})).map(list)
filters = st.recursive(leaf | leaf_mod, lambda inner: st.one_of(
    st.tuples(st.sampled_from(["and", "or"]), st.lists(inner, max_size=3)).map(list),
    st.tuples(st.just("not"), inner).map(list)), max_leaves=6)
ranges = st.one_of(st.sampled_from(["day", "24h", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all",
                                    "5d"]),
                   st.lists(st.sampled_from([D1, D2, "2024-02-29", "2025-05-10T12:00:00Z", "2025-05-10T12:00:00",
                                             "1969-12-31", "9999-12-31", "x"]), min_size=2, max_size=2),
                   json_scalars)
bodies = st.fixed_dictionaries(
    {"metrics": st.lists(names, min_size=0, max_size=4), "date_range": ranges},
    optional={
        "dimensions": st.lists(dims, max_size=3),
        "filters": st.lists(filters, max_size=3) | json_scalars,
        "order_by": st.lists(st.tuples(names | dims, st.sampled_from(["asc", "desc", "up"])).map(list), max_size=2),
        "include": st.fixed_dictionaries({}, optional={
            "time_labels": st.booleans(), "total_rows": st.booleans(), "imports": st.booleans(),
            "comparisons": st.sampled_from([{"mode": "previous_period"}, {"mode": "year_over_year"},
                                            {"mode": "custom", "date_range": BOTH}, {"mode": "custom"}, None])}),
        "pagination": st.fixed_dictionaries({}, optional={"limit": st.integers(-1, 20_000),
                                                          "offset": st.integers(-1, 10)}),
        "extra": json_scalars,
    },
)


# And bodies that are mostly right, so that most of them are answered.
good_dims = st.sampled_from(["time", "time:day", "event:goal", "event:page", "event:props:plan", "visit:entry_page",
                             "visit:exit_page", "visit:source", "visit:device", "visit:utm_source", "visit:country"])
good_leaf = st.tuples(
    st.sampled_from(["is", "is_not", "contains", "contains_not", "matches", "matches_not"]),
    good_dims.filter(lambda d: not d.startswith("time")),
    st.lists(st.sampled_from(["/", "/pricing", "blog", "Google", "desktop", "pro", "Signup", "Blog", "(none)", "^/b",
                              "Direct / None"]) | st.text(max_size=6), min_size=1, max_size=3),
).map(list).filter(lambda f: f[1] != "event:goal" or f[0] not in ("is", "is_not") or
                   set(f[2]) <= {"Signup", "Blog"})
good_filters = st.recursive(good_leaf, lambda inner: st.one_of(
    st.tuples(st.sampled_from(["and", "or"]), st.lists(inner, min_size=1, max_size=3)).map(list),
    st.tuples(st.just("not"), inner).map(list)), max_leaves=5)
good_bodies = st.fixed_dictionaries(
    {"metrics": st.lists(st.sampled_from(["visitors", "visits", "pageviews", "events", "bounce_rate",
                                          "visit_duration", "views_per_visit", "percentage", "time_on_page",
                                          "scroll_depth", "total_revenue", "average_revenue"]),
                         min_size=1, max_size=4, unique=True),
     "date_range": st.sampled_from(["day", "7d", "month", "12mo", "year", "all", BOTH, [D1, D1], [D2, D2],
                                    ["2024-05-01", "2025-05-31"]])},
    optional={
        "dimensions": st.lists(good_dims, max_size=2, unique=True).filter(
            lambda ds: sum(d.startswith("time") for d in ds) <= 1),
        "filters": st.lists(good_filters, max_size=2),
        "include": st.fixed_dictionaries({}, optional={
            "total_rows": st.booleans(),
            "comparisons": st.sampled_from([{"mode": "previous_period"}, {"mode": "year_over_year"}])}),
        "pagination": st.fixed_dictionaries({"limit": st.integers(1, 5), "offset": st.integers(0, 3)}),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies | good_bodies)
def test_random_bodies_never_fail(live: Live, body: dict[str, Any]) -> None:
    r = live.query(body)
    event(f"status {r.status_code}")  # --hypothesis-show-statistics shows the mix
    assert r.status_code in (200, 400), (body, r.status_code, r.text)
    answer = r.json()
    if r.status_code == 400:
        assert set(answer) == {"error"} and answer["error"], answer
        return
    assert set(answer) == {"results", "meta", "query"}
    for result in answer["results"]:
        assert len(result["metrics"]) == len(body["metrics"])
        assert len(result["dimensions"]) == len(body.get("dimensions", []))


def test_no_query_failed_on_the_server(live: Live) -> None:
    """Runs last: whatever the queries above asked, the server raised nothing unhandled."""
    log = live.server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "unhandled error" not in log, log[-4000:]
