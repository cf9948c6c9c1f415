"""Seed 002, the public endpoint POST /e/{trackingCode}, against a live server: the seed's
examples verbatim, visitor context from headers, unknown codes, DNT/GPC, CORS, rate limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Site, cli, cli_json
from tests.test_enrichment_e2e import CHROME_WINDOWS, GOOGLEBOT, rows

CODE = "YOUR_TRACKING_CODE"  # the seed's placeholder, used as a real tracking id
PATH = f"/e/{CODE}"

SEED_EVENT = """{
    "type": "event",
    "url": "https://example.com/checkout/success",
    "referrer": "https://example.com/cart",
    "name": "purchase",
    "data": {
      "order_id": "ORD-12345",
      "value": 99.99,
      "currency": "USD"
    }
  }"""
SEED_PAGEVIEW = """{
    "type": "pageview",
    "url": "https://example.com/products/widget",
    "referrer": "https://google.com/search"
  }"""


class Public:
    def __init__(self, site: Site) -> None:
        self.site = site
        cli(site.server.data_dir, "sites", "add", "shop.example", "--tracking-id", CODE)

    def post(self, body: Any, path: str = PATH, **headers: str) -> httpx.Response:
        content = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.site.client.post(path, content=content, headers={"Content-Type": "application/json", **headers})


@pytest.fixture
def live(site: Site) -> Iterator[Public]:
    yield Public(site)


def test_seed_examples_verbatim(live: Public) -> None:
    r = live.post(SEED_EVENT)
    assert (r.status_code, r.json()) == (202, {"ok": True}), r.text
    r = live.post(SEED_PAGEVIEW, **{"User-Agent": CHROME_WINDOWS, "X-Forwarded-For": "203.0.113.50"})
    assert r.status_code == 202, r.text
    stored = rows(live.site, "SELECT s.domain, kind, name, pathname, referrer_host, browser, props "
                             "FROM events JOIN sites s ON s.id = site_id ORDER BY kind")
    assert stored[0][:5] == ("shop.example", "event", "purchase", "/checkout/success", "example.com")
    assert dict(stored[0][6]) == {"order_id": "ORD-12345", "value": "99.99", "currency": "USD"}
    assert stored[1][:6] == ("shop.example", "pageview", "pageview", "/products/widget", "google.com", "Chrome")


def test_forwarded_for_counts_only_when_trusted_or_allowed(live: Public) -> None:
    headers = {"User-Agent": CHROME_WINDOWS}
    body = {"type": "pageview", "url": "https://shop.example/"}
    live.post(body, **headers, **{"X-Forwarded-For": "198.51.100.1"})
    live.post(body, **headers, **{"X-Forwarded-For": "198.51.100.2"})
    cli(live.site.server.data_dir, "sites", "update", "shop.example", "--allow-forwarded-for")
    live.post(body, **headers, **{"X-Forwarded-For": "198.51.100.3, 10.0.0.1"})
    live.post(body, **headers, **{"X-Forwarded-For": "198.51.100.4"})
    visitors = [v for (v,) in rows(live.site, "SELECT visitor_id FROM events ORDER BY ts")]
    # Not allowed: both are the caller (loopback), one visitor. Allowed: two more visitors.
    assert visitors[0] == visitors[1] and len(set(visitors)) == 3


def test_unknown_code_is_answered_alike_and_stores_nothing(live: Public) -> None:
    r = live.post(SEED_PAGEVIEW, path="/e/no-such-code")
    assert (r.status_code, r.json()) == (202, {"ok": True})
    live.site.server.wait_drained()
    assert cli_json(live.site.server.data_dir, "sites", "show", "shop.example")["events"] == 0
    assert cli_json(live.site.server.data_dir, "sites", "show", "example.com")["events"] == 0


@pytest.mark.parametrize("header", ["DNT", "Sec-GPC"])
def test_dnt_and_gpc_are_honoured_unless_the_site_opts_out(live: Public, header: str) -> None:
    assert live.post(SEED_PAGEVIEW, **{header: "1", "User-Agent": CHROME_WINDOWS}).status_code == 202
    live.site.server.wait_drained()
    shown = cli_json(live.site.server.data_dir, "sites", "show", "shop.example")
    assert shown["events"] == 0 and shown["not_counted"] == {}  # not even counted
    cli(live.site.server.data_dir, "sites", "update", "shop.example", "--ignore-dnt")
    assert live.post(SEED_PAGEVIEW, **{header: "1", "User-Agent": CHROME_WINDOWS}).status_code == 202
    live.site.server.wait_drained()
    assert cli_json(live.site.server.data_dir, "sites", "show", "shop.example")["events"] == 1


def test_bots_are_counted_not_tracked(live: Public) -> None:
    assert live.post(SEED_PAGEVIEW, **{"User-Agent": GOOGLEBOT}).status_code == 202
    live.site.server.wait_drained()
    shown = cli_json(live.site.server.data_dir, "sites", "show", "shop.example")
    assert shown["events"] == 0 and shown["not_counted"] == {"bot": 1}


def test_sendbeacon_text_plain_and_cors(live: Public) -> None:
    r = live.post(SEED_PAGEVIEW, **{"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://shop.example"})
    assert r.status_code == 202 and r.headers["access-control-allow-origin"] == "*"
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    r = live.site.client.options(PATH, headers=preflight)
    assert r.status_code == 204, r.text
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "content-type" in r.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize(("body", "status", "field"), [
    ("{not json", 400, None),
    ({"type": "pageview"}, 422, "url"),
    ({"type": "click", "url": "https://shop.example/"}, 422, "type"),
    ({"type": "event", "url": "https://shop.example/"}, 422, "name"),
    ({"type": "pageview", "url": "javascript:alert(1)"}, 422, "url"),
    ({"type": "event", "name": "x", "url": "https://shop.example/", "data": {"a": [1]}}, 422, "data"),
])
def test_bad_bodies(live: Public, body: Any, status: int, field: str | None) -> None:
    r = live.post(body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field


def test_own_rate_limits_per_visitor_ip(make_server: Any) -> None:
    site = Site(make_server(env={"FOOTFALL_PUBLIC_RATE_PER_10S": "3"}))
    live = Public(site)
    answers = [live.post(SEED_PAGEVIEW).status_code for _ in range(5)]
    assert answers[:3] == [202, 202, 202] and answers[3:] == [429, 429]
    # The seed-000 limit does not apply here, and this one does not apply there.
    r = site.post("/api/ingest/server/pageview", {"url": "https://example.com/", "timestamp": "2026-04-03T12:00:00Z",
                                                  "visitor_ip": "203.0.113.9", "user_agent": CHROME_WINDOWS})
    assert r.status_code == 202
    site.client.close()


# -- fuzzing: no 5xx, every answer 202 {"ok": true} or the JSON error ------------------------

@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Public]:
    from tests.conftest import Server

    server = Server(tmp_path_factory.mktemp("public-fuzz") / "data", env={"FOOTFALL_PUBLIC_RATE_PER_10S": "0",
                                                                          "FOOTFALL_PUBLIC_RATE_PER_HOUR": "0"}).start()
    site = Site(server)
    yield Public(site)
    site.client.close()
    server.kill()


_values = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_bodies_and_headers(fuzzed: Public, data: st.DataObject) -> None:
    body: Any = json.loads(SEED_EVENT)
    for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
        key = data.draw(st.sampled_from(["type", "url", "referrer", "name", "data", "extra"]))
        if data.draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = data.draw(_values | st.dictionaries(st.text(max_size=5), _values, max_size=3))
    headers = {k: v for k, v in data.draw(st.fixed_dictionaries({}, optional={
        "User-Agent": st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
        "X-Forwarded-For": st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40),
        "DNT": st.sampled_from(["0", "1", "yes"]),
    })).items()}
    code = data.draw(st.sampled_from([CODE, "nope", "%20", "x" * 300]))
    r = fuzzed.post(body, path=f"/e/{code}", **headers)
    assert r.status_code in (202, 400, 404, 413, 415, 422), (r.status_code, r.text)
    assert r.json() == {"ok": True} if r.status_code == 202 else set(r.json()) == {"error", "field"}
