"""Plausible's /api/event, driven by the real @plausible-analytics/tracker (installed from the npm
registry into a temporary directory) in headless Chromium against a live server; then
Plausible's request shapes over HTTP, random bodies, and a scan of the data directory.

The page lives on its own origin, http://shop.example:PORT (Chromium maps that name to
loopback), and loads the library's ES module; Footfall on 127.0.0.1 is the endpoint, so every
request is cross-origin, as on a real site.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Server, Site, cli, cli_json
from tests.test_enrichment_e2e import CHROME_WINDOWS, rows
from tests.test_fuzz import FUZZ, encode, json_values
from tests.test_fuzz import urls as any_urls
from tests.test_privacy import IPS, KEPT, OTHER_AGENTS, PAGES, REFERRERS, scan, scan_store
from tests.test_tracker import CHROMIUM, PageServer, wait_for_events

TRACKER = "@plausible-analytics/tracker@0.4.6"
EVENT = "/api/event"
OK_TYPE = "text/plain; charset=utf-8"


# -- the real tracker in Chromium ----------------------------------------------------------


@pytest.fixture(scope="module")
def plausible_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The library's browser bundle (one ES module), as npm installs it."""
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("npm is needed for the @plausible-analytics/tracker test")
        pytest.skip("needs npm")
    prefix = tmp_path_factory.mktemp("plausible-tracker")
    subprocess.run(["npm", "install", "--silent", "--prefix", str(prefix), TRACKER],
                   check=True, capture_output=True, timeout=300)
    return prefix / "node_modules" / "@plausible-analytics" / "tracker" / "plausible.js"


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--host-resolver-rules=MAP shop.example 127.0.0.1", "--no-sandbox"])
        yield b
        b.close()


# The viewport is 720 px high and the page 2,880 (the controls float above it): 25% is seen at
# first, 50% after scrolling 720.
PAGE = """<!doctype html><html><head><title>shop</title><style>
  body {{ margin: 0 }} #bar {{ position: fixed; top: 0 }} #tall {{ height: 2880px }}</style>
<script type="module">
  import {{ init, track }} from "/plausible.js";
  window.__plausible = true;  // the tracker ignores browsers driven by WebDriver unless told it is a test
  init({{ domain: "shop.example", endpoint: "{endpoint}", outboundLinks: true, hashBasedRouting: {hash} }});
  window.buy = () => track("Purchase", {{ props: {{ plan: "pro", seats: "3" }},
                                         revenue: {{ amount: "29.90", currency: "EUR" }},
                                         callback: (result) => {{ window.bought = result }} }});
</script></head>
<body><div id="bar"><button id="buy" onclick="buy()">buy</button>
<button id="nav" onclick="history.pushState({{}}, '', '/spa/second')">nav</button>
<a id="out" href="https://elsewhere.example/x" target="_blank">out</a></div>
<div id="tall"></div></body></html>"""


@pytest.fixture
def shop(site: Site) -> Iterator[Site]:
    cli(site.server.data_dir, "sites", "add", "shop.example")
    yield site


def open_shop(browser: Any, shop: Site, plausible_js: Path, path: str, hash_routing: bool = False,
              referer: str | None = None) -> tuple[Any, PageServer]:
    html = PAGE.format(endpoint=shop.server.url + EVENT, hash="true" if hash_routing else "false")
    pages = PageServer(html, {"/plausible.js": (plausible_js.read_bytes(), "text/javascript")})
    # Headless Chromium says "HeadlessChrome", which is rightly a bot: present as the browser it is.
    page = browser.new_context(user_agent=CHROME_WINDOWS).new_page()
    page.goto(f"http://shop.example:{pages.port}{path}", wait_until="load", referer=referer)
    return page, pages


def test_real_tracker_pageviews_events_revenue_spa_and_engagement(
    browser: Any, shop: Site, plausible_js: Path
) -> None:
    started = time.time()
    page, pages = open_shop(browser, shop, plausible_js, "/start?utm_source=launch&email=jane%40example.org",
                            referer="https://www.google.com/")
    try:
        wait_for_events(shop, "shop.example", 1)  # the pageview
        page.wait_for_timeout(1200)  # time on the page
        page.evaluate("window.scrollTo(0, 720)")
        page.wait_for_timeout(300)
        page.click("#buy")
        page.wait_for_function("window.bought !== undefined")
        assert page.evaluate("window.bought") == {"status": 202}  # the tracker read Plausible's answer
        page.click("#out", modifiers=["ControlOrMeta"])  # a new tab: this page stays
        wait_for_events(shop, "shop.example", 3)
        page.click("#nav")  # the SPA's next page: the engagement of /start, then a pageview
        wait_for_events(shop, "shop.example", 5)
        # Another tab comes to the front (Playwright otherwise keeps every page focused): the
        # page loses focus and the tracker sends the engagement of /spa/second.
        page.context.new_cdp_session(page).send("Emulation.setFocusEmulationEnabled", {"enabled": False})
        page.context.new_page().bring_to_front()
        wait_for_events(shop, "shop.example", 6)
    finally:
        pages.close()
    stored = rows(shop, "SELECT kind, name, pathname, hostname, referrer_host, utm_source, browser, props, "
                        "revenue_amount, revenue_currency, epoch_ms(ts) FROM events ORDER BY ts")
    assert [(k, n, p) for k, n, p, *_ in stored] == [
        ("pageview", "pageview", "/start"), ("event", "Purchase", "/start"),
        ("event", "Outbound Link: Click", "/start"), ("event", "engagement", "/start"),
        ("pageview", "pageview", "/spa/second"), ("event", "engagement", "/spa/second"),
    ]
    pageview = stored[0]
    assert pageview[3:7] == ("shop.example", "google.com", "launch", "Chrome")
    assert started - 5 <= pageview[10] / 1000 <= time.time()  # the time of receipt
    assert dict(stored[1][7]) == {"plan": "pro", "seats": "3"} and stored[1][8:10] == (Decimal("29.9"), "EUR")
    assert dict(stored[2][7]) == {"url": "https://elsewhere.example/x"}
    first = dict(stored[3][7])
    assert first["scroll_depth"] == "50" and 1200 <= int(first["engagement_ms"]) < 60_000
    assert set(dict(stored[5][7])) == {"scroll_depth", "engagement_ms"}


def test_real_tracker_hash_routing(browser: Any, shop: Site, plausible_js: Path) -> None:
    page, pages = open_shop(browser, shop, plausible_js, "/app#/pricing?coupon=SECRET42", hash_routing=True)
    try:
        wait_for_events(shop, "shop.example", 1)
        page.evaluate("location.hash = '#/checkout'")
        wait_for_events(shop, "shop.example", 2)
    finally:
        pages.close()
    stored = rows(shop, "SELECT kind, pathname FROM events WHERE name = 'pageview' ORDER BY ts")
    assert stored == [("pageview", "/app#/pricing"), ("pageview", "/app#/checkout")]


# -- Plausible's request shapes over HTTP --------------------------------------------------


def send(site: Site, body: object, content_type: str = "text/plain", **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return site.client.post(EVENT, content=content, headers={
        "Content-Type": content_type, "User-Agent": CHROME_WINDOWS, **headers})


def test_request_shapes_answers_and_errors(shop: Site) -> None:
    cli(shop.server.data_dir, "sites", "add", "rollup.example")
    # What the tracker sends, as it sends it (text/plain, no preflight).
    r = send(shop, {"n": "pageview", "v": 36, "u": "https://shop.example/a?x=1", "d": "shop.example", "r": None})
    assert (r.status_code, r.content, r.headers["content-type"]) == (202, b"ok", OK_TYPE)
    assert r.headers["access-control-allow-origin"] == "*"
    # The long names of Plausible's Events API docs, as a backend sends them.
    assert send(shop, {"name": "pageview", "url": "https://shop.example/long", "domain": "shop.example",
                       "referrer": "https://news.ycombinator.com/item?id=1"}, "application/json").status_code == 202
    # A roll-up: every listed site that exists gets the event; unknown ones are skipped.
    rollup = {"n": "Signup", "u": "https://shop.example/join", "d": "nowhere.example, shop.example,rollup.example",
              "p": json.dumps({"plan": "free", "nested": {"no": 1}, "blank": " "}), "i": False}
    assert send(shop, rollup).content == b"ok"
    # No domain: the URL's host names the site. An invalid revenue is ignored, as Plausible ignores it.
    assert send(shop, {"n": 404, "u": "https://www.shop.example/missing", "$": {"amount": "x", "currency": "EUR"}}
                ).status_code == 202
    assert send(shop, {"n": "engagement", "u": "https://shop.example/a", "d": "shop.example", "sd": "130", "e": 2500,
                       "p": {"author": "kim"}}).status_code == 202
    # Hash mode keeps a route, not parameters.
    assert send(shop, {"n": "pageview", "u": "https://shop.example/#access_token=SECRET", "d": "shop.example",
                       "h": 1}).status_code == 202
    # Answered alike and stored nowhere: unknown sites, visitors who asked not to be tracked.
    unknown = {"n": "pageview", "u": "https://nowhere.example/", "d": "nowhere.example"}
    r = send(shop, unknown)
    assert (r.status_code, r.content) == (202, b"ok")
    dnt = {"n": "pageview", "u": "https://shop.example/dnt", "d": "shop.example"}
    assert send(shop, dnt, DNT="1").content == send(shop, dnt, **{"Sec-GPC": "1"}).content == b"ok"

    def errors(body: object, content_type: str = "text/plain") -> tuple[int, Any]:
        r = send(shop, body, content_type)
        assert r.headers["content-type"].startswith("application/json") and r.headers["access-control-allow-origin"]
        return r.status_code, r.json()

    unparsable = {"errors": {"request": ["Unable to parse request body as json"]}}
    assert errors(b'{"n": "pageview", "u":') == (400, unparsable)
    assert errors(b"[1, 2]") == (400, unparsable)
    assert errors(b"\xff\xfe") == (400, unparsable)
    blank, required = ["can't be blank"], ["is required"]
    assert errors({"n": "pageview", "d": "shop.example"}) == (400, {"errors": {"url": required}})
    assert errors({"u": "https://shop.example/", "d": "shop.example"}) == (400, {"errors": {"event_name": blank}})
    assert errors({"d": "shop.example"}) == (400, {"errors": {"event_name": blank, "url": required}})
    assert errors({"n": "pageview", "u": "https://shop.example/", "d": " "}) == (400, {"errors": {"domain": blank}})
    assert errors({"n": "x" * 121, "u": "https://shop.example/"})[1]["errors"]["event_name"] == [
        "should be at most 120 character(s)"]
    status, body = errors({"n": "engagement", "u": "https://shop.example/", "sd": -1, "e": "soon"})
    assert status == 400 and "'sd' or 'e'" in body["errors"]["event_name"][0]
    status, body = errors({"n": "pageview", "u": 5})
    assert status == 400 and list(body["errors"]) == ["url"]
    status, body = errors({"n": "pageview", "u": "ftp://shop.example/"})
    assert status == 400 and list(body["errors"]) == ["url"]
    status, body = errors({"n": "pageview", "u": "https://shop.example/", "p": {"k": "v" * 2001}})
    assert status == 400 and list(body["errors"]) == ["props"]
    status, body = errors({"n": "pageview", "u": "https://shop.example/"}, "application/x-www-form-urlencoded")
    assert status == 415 and list(body["errors"]) == ["request"]

    preflight = shop.client.options(EVENT, headers={"Origin": "https://shop.example",
                                                    "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"

    stored = rows(shop, "SELECT s.domain, kind, name, pathname, referrer_host, props, revenue_amount "
                        "FROM events JOIN sites s ON s.id = site_id ORDER BY ts, s.domain")
    assert [row[:5] for row in stored] == [
        ("shop.example", "pageview", "pageview", "/a", ""),
        ("shop.example", "pageview", "pageview", "/long", "news.ycombinator.com"),
        ("rollup.example", "event", "Signup", "/join", ""),
        ("shop.example", "event", "Signup", "/join", ""),
        ("shop.example", "event", "404", "/missing", ""),
        ("shop.example", "event", "engagement", "/a", ""),
        ("shop.example", "pageview", "pageview", "/", ""),
    ]
    assert dict(stored[2][5]) == dict(stored[3][5]) == {"plan": "free"}
    assert stored[4][6] is None
    assert dict(stored[5][5]) == {"author": "kim", "scroll_depth": "100", "engagement_ms": "2500"}


# -- the OpenAPI document, and random bodies -----------------------------------------------


def test_openapi_describes_the_event_endpoint(shop: Site) -> None:
    schema = schemathesis.openapi.from_url(shop.server.url + "/api/openapi.json", timeout=10)
    operations = {op.path: op for op in (result.ok() for result in schema.get_all_operations())}
    assert EVENT in operations  # so test_fuzz's schemathesis run drives it too
    document = shop.client.get("/api/openapi.json").json()["paths"][EVENT]["post"]
    assert document["security"] == [] and "text/plain" in document["responses"]["202"]["content"]
    assert document["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("PlausibleErrors")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("plausible-fuzz") / "data").start()
    cli(server.data_dir, "sites", "add", "example.com")
    yield server
    server.kill()


NAMES = st.sampled_from(["pageview", "engagement", "Signup", "", " "]) | st.text(max_size=130) | st.integers()
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    **{key: NAMES for key in ("n", "name")},
    **{key: any_urls for key in ("u", "url", "r", "referrer")},
    **{key: st.sampled_from(["example.com", "www.example.com,other.org", "", ",,", "unknown.example"])
       | st.text(max_size=20) for key in ("d", "domain")},
    **{key: st.dictionaries(st.text(max_size=12), json_values, max_size=6) | json_values | json_values.map(json.dumps)
       for key in ("p", "props", "m", "meta")},
    **{key: st.fixed_dictionaries({"amount": json_values | st.sampled_from(["12.5", "-3", "1e999", "nan"]),
                                   "currency": st.sampled_from(["EUR", "usd", "XX", ""]) | st.text(max_size=4)})
       | json_values for key in ("$", "revenue")},
    **{key: st.booleans() for key in ("i", "interactive")},
    **{key: st.integers(-2, 2) | st.integers() for key in ("h", "hashMode")},
    **{key: st.integers() | st.text(max_size=22) | st.from_regex(r"-?[0-9]{1,25}", fullmatch=True)
       for key in ("e", "sd")},
    "v": json_values,
}
events = st.fixed_dictionaries({}, optional={k: v | json_values for k, v in FIELDS.items()})


def judge(r: httpx.Response) -> None:
    """Plausible's answers: 202 `ok`, or a JSON {"errors": {field: [messages]}}; never a 5xx."""
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code == 202:
        assert (r.content, r.headers["content-type"]) == (b"ok", OK_TYPE)
        return
    assert r.status_code in (400, 413, 415, 429), (r.status_code, r.text)
    errors = r.json()["errors"]
    assert errors and all(isinstance(k, str) and v and all(isinstance(m, str) and m for m in v)
                          for k, v in errors.items()), errors


@FUZZ
@given(body=events | json_values, ascii_only=st.booleans(),
       content_type=st.sampled_from(["text/plain", "application/json"]))
def test_random_bodies_never_fail(live: Server, body: Any, ascii_only: bool, content_type: str) -> None:
    judge(httpx.post(live.url + EVENT, content=encode(body, ascii_only), headers={
        "Content-Type": content_type, "User-Agent": CHROME_WINDOWS}, timeout=30))


@FUZZ
@given(content=st.binary(max_size=300), raw=st.binary(min_size=1, max_size=12))
def test_random_bytes_never_fail(live: Server, content: bytes, raw: bytes) -> None:
    judge(httpx.post(live.url + EVENT, content=content, headers={"Content-Type": "text/plain"}, timeout=30))
    inside = b'{"n": "pageview", "u": "https://example.com/__", "p": {"k": "__"}}'.replace(b"__", raw)
    judge(httpx.post(live.url + EVENT, content=inside, headers={"Content-Type": "text/plain"}, timeout=30))


def test_fuzzed_events_reached_the_store(live: Server) -> None:
    """Runs after the fuzzers: what they got accepted was decodable and written."""
    writer = live.wait_drained()["writer"]
    assert writer["last_error"] is None and writer["undecodable_records"] == 0, writer
    assert writer["events_committed"] > 0, "the fuzzers never produced a stored event"
    log = live.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "ingest failed" not in log, log[-4000:]


# -- no personal data at rest ----------------------------------------------------------------


def test_no_ip_agent_query_string_or_fragment_at_rest(make_server: Any) -> None:
    """Addresses (X-Forwarded-For through a trusted proxy), agents, query strings and a
    fragment's token go through pageviews, events and engagement; then every file is scanned."""
    site = Site(make_server(env={"FOOTFALL_TRUSTED_PROXIES": "127.0.0.1", "FOOTFALL_LOG_LEVEL": "debug"}))
    server = site.server

    def send_all() -> None:
        for i, ip in enumerate(IPS):
            page, referrer = PAGES[i % len(PAGES)], REFERRERS[i % len(REFERRERS)]
            headers = {"User-Agent": OTHER_AGENTS[i % len(OTHER_AGENTS)], "X-Forwarded-For": ip}
            for body in ({"n": "pageview", "u": page, "d": "example.com", "r": referrer or None, "h": 1},
                         {"n": "Signup", "u": page, "d": "example.com", "p": {"plan": "pro"}},
                         {"n": "engagement", "u": page, "d": "example.com", "sd": 40, "e": 900}):
                r = send(site, body, **headers)
                assert r.status_code == 202, r.text

    send_all()
    server.kill()  # acknowledged events wait in the spool
    everything = scan(server, "kill -9")
    assert all(kept.encode() in everything for kept in KEPT)  # the scan saw the fresh events
    server.start()
    send_all()
    server.wait_drained()
    server.stop()
    scan(server, "a graceful stop")
    scan_store(server)
    shown = cli_json(server.data_dir, "sites", "show", "example.com")
    assert shown["events"] == 2 * 3 * len(IPS), shown
