"""The browser tracker (footfall.js) in real headless Chromium against a live server.

The page lives on its own origin, http://shop.test:PORT (Chromium maps that name to loopback),
served by a plain HTTP server; the tracker comes from Footfall on 127.0.0.1, so every request
is cross-origin, as on a real site. What the tracker sent is read back from the store.
"""

from __future__ import annotations

import http.server
import os
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Site, cli, cli_json, free_port
from tests.test_enrichment_e2e import CHROME_WINDOWS, rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Skipped on a machine without Debian's chromium; never in CI, which installs it (.ci/run).
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="needs Debian's chromium: apt-get install chromium")

PAGE = """<!doctype html><html><head><title>shop</title>
<script defer src="{footfall}/js/footfall.js" data-outbound data-downloads {extra}></script></head>
<body><a id="out" href="https://elsewhere.example/x">out</a> <a id="file" href="/files/report.pdf">pdf</a>
<button id="buy" onclick="window.footfall.event('purchase', {{plan: 'pro', seats: 3}})">buy</button>
<button id="hk" onclick="window.hk && window.hk.event && window.hk.event('signup', {{plan: 'free'}})">hk</button>
<button id="nav" onclick="history.pushState({{}}, '', '/spa/second')">nav</button>
</body></html>"""


class PageServer:
    """A static site on loopback: `files` (path -> body and content type) as given, every other
    path the test page (as an SPA server does)."""

    def __init__(self, html: str, files: dict[str, tuple[bytes, str]] | None = None) -> None:
        page = html.encode()
        served = files or {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, content_type = served.get(self.path) or (
                    page, "text/html" if not self.path.endswith(".pdf") else "application/pdf")
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        assert CHROMIUM is not None, "Debian's chromium is not installed (.ci/run installs it)"
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--host-resolver-rules=MAP shop.test 127.0.0.1", "--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def shop(site: Site) -> Iterator[Site]:
    cli(site.server.data_dir, "sites", "add", "shop.test")
    yield site


def open_page(browser: Any, site: Site, extra: str = "", init_script: str = "", headers: dict[str, str] | None = None
              ) -> tuple[Any, PageServer]:
    pages = PageServer(PAGE.format(footfall=site.server.url, extra=extra))
    # Headless Chromium says "HeadlessChrome", which is rightly a bot: present as the browser it is.
    context = browser.new_context(extra_http_headers=headers or {}, user_agent=CHROME_WINDOWS)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.goto(f"http://shop.test:{pages.port}/start?utm_source=launch", wait_until="load")
    return page, pages


def wait_for_events(site: Site, domain: str, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while cli_json(site.server.data_dir, "sites", "show", domain)["events"] < count:
        assert time.monotonic() < deadline, f"the tracker sent fewer than {count} records"
        time.sleep(0.2)


def test_pageviews_spa_navigation_and_events(browser: Any, shop: Site) -> None:
    page, pages = open_page(browser, shop)
    try:
        page.click("#buy")
        page.click("#hk")
        page.click("#nav")
        page.click("#out", modifiers=["ControlOrMeta"])  # a new tab: this page stays
        page.click("#file", modifiers=["ControlOrMeta"])
        wait_for_events(shop, "shop.test", 6)
    finally:
        pages.close()
    stored = rows(shop, "SELECT kind, name, pathname, utm_source, browser, props FROM events ORDER BY ts")
    assert [(k, n, p) for k, n, p, *_ in stored] == [
        ("pageview", "pageview", "/start"), ("event", "purchase", "/start"), ("event", "signup", "/start"),
        ("pageview", "pageview", "/spa/second"), ("event", "Outbound Link", "/spa/second"),
        ("event", "File Download", "/spa/second"),
    ]
    assert stored[0][3] == "launch" and stored[0][4] == "Chrome"
    assert dict(stored[1][5]) == {"plan": "pro", "seats": "3"}
    assert dict(stored[4][5]) == {"url": "https://elsewhere.example/x"}


@pytest.mark.parametrize("signal", ["dnt", "gpc"])
def test_dnt_and_gpc_send_nothing(browser: Any, shop: Site, signal: str) -> None:
    init = ("Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'});" if signal == "dnt"
            else "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true});")
    page, pages = open_page(browser, shop, init_script=init)
    try:
        page.click("#buy")  # window.footfall.event exists and does nothing
        page.wait_for_timeout(1000)
    finally:
        pages.close()
    shop.server.wait_drained()
    assert cli_json(shop.server.data_dir, "sites", "show", "shop.test")["events"] == 0


def test_data_site_names_the_site_and_localhost_is_skipped_unless_asked(browser: Any, shop: Site) -> None:
    tracking_id = cli_json(shop.server.data_dir, "sites", "show", "example.com")["tracking_id"]
    _page, pages = open_page(browser, shop, extra=f'data-site="{tracking_id}"')
    pages.close()
    wait_for_events(shop, "example.com", 1)  # data-site wins over the page's origin
    for extra, expected in (("", 0), ("data-allow-localhost", 1)):
        local = PageServer(PAGE.format(footfall=shop.server.url, extra=f'data-site="{tracking_id}" {extra}'))
        context = browser.new_context(user_agent=CHROME_WINDOWS)
        context.new_page().goto(f"http://localhost:{local.port}/local", wait_until="load")
        time.sleep(1)
        context.close()
        local.close()
        shop.server.wait_drained()
        paths = [p for (p,) in rows(shop, "SELECT pathname FROM events WHERE pathname = '/local'")]
        assert len(paths) == expected
