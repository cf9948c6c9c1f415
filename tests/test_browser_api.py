"""Seeds 000 and 003: the tracker's endpoints POST /ingest and /ingest/event over HTTP (the
script itself is driven in Chromium by test_tracker.py)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Site, cli, cli_json
from tests.test_enrichment_e2e import CHROME_WINDOWS, rows

# Seed 003's server-side example, with its placeholder as the site's tracking id.
SEED_EVENT = """{
"site_id": "YOUR_SITE_ID",
"name": "purchase",
"url": "https://your-site.com/checkout/success",
"referrer": "",
"props": {
"plan": "pro",
"amount": "49"
}
}"""


@pytest.fixture
def shop(site: Site) -> Iterator[Site]:
    cli(site.server.data_dir, "sites", "add", "your-site.com", "--tracking-id", "YOUR_SITE_ID")
    yield site


def post(site: Site, path: str, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return site.client.post(path, content=content, headers={"Content-Type": "application/json",
                                                            "User-Agent": CHROME_WINDOWS, **headers})


def test_seed_003_server_side_event(shop: Site) -> None:
    r = post(shop, "/ingest/event", SEED_EVENT)
    assert (r.status_code, r.content) == (202, b""), r.text
    assert r.headers["access-control-allow-origin"] == "*"
    (row,) = rows(shop, "SELECT s.domain, kind, name, pathname, props FROM events JOIN sites s ON s.id = site_id")
    assert row[:4] == ("your-site.com", "event", "purchase", "/checkout/success")
    assert dict(row[4]) == {"plan": "pro", "amount": "49"}


def test_pageview_site_from_origin_then_url(shop: Site) -> None:
    body = {"url": "https://your-site.com/a", "referrer": "https://www.google.com/", "screen_width": 1280}
    assert post(shop, "/ingest", body, Origin="https://www.your-site.com").status_code == 202
    assert post(shop, "/ingest", {"url": "https://your-site.com/b"}).status_code == 202  # no Origin
    stored = rows(shop, "SELECT s.domain, pathname, source, screen_width FROM events JOIN sites s ON s.id = site_id "
                        "ORDER BY pathname")
    assert stored == [("your-site.com", "/a", "Google", 1280), ("your-site.com", "/b", "", None)]


def test_unknown_sites_dnt_and_gpc_store_nothing(shop: Site) -> None:
    for headers in ({"Origin": "https://stranger.example"}, {"DNT": "1"}, {"Sec-GPC": "1"}):
        r = post(shop, "/ingest", {"url": "https://your-site.com/x"} if "DNT" in headers or "Sec-GPC" in headers
                 else {"url": "https://stranger.example/x"}, **headers)
        assert (r.status_code, r.content) == (202, b"")
    shop.server.wait_drained()
    assert cli_json(shop.server.data_dir, "sites", "show", "your-site.com")["events"] == 0


def test_preflight_and_text_plain(shop: Site) -> None:
    r = shop.client.options("/ingest/event", headers={"Origin": "https://your-site.com",
                                                      "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 204 and "POST" in r.headers["access-control-allow-methods"]
    r = post(shop, "/ingest", {"url": "https://your-site.com/"}, **{"Content-Type": "text/plain;charset=UTF-8"})
    assert r.status_code == 202


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/ingest", "{", 400, None),
    ("/ingest", {"referrer": "x"}, 422, "url"),
    ("/ingest/event", {"site_id": "YOUR_SITE_ID", "url": "https://your-site.com/"}, 422, "name"),
    ("/ingest/event", {"site_id": "YOUR_SITE_ID", "name": " ", "url": "https://your-site.com/"}, 422, "name"),
    ("/ingest/event", {"name": "x", "url": "https://your-site.com/", "props": {"a": {"b": 1}}}, 422, "props"),
])
def test_bad_bodies(shop: Site, path: str, body: Any, status: int, field: str | None) -> None:
    r = post(shop, path, body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.headers["access-control-allow-origin"] == "*"


def test_tracker_script_is_served_small(shop: Site) -> None:
    r = shop.client.get("/js/footfall.js", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/javascript")
    assert len(gzip.compress(r.content, 9)) < 2048
    assert "window" in r.text and "/ingest" in r.text
