"""Seed 001, the collect API, against a live server: the seed's examples verbatim, its
responses and status codes, and what is stored (read back with SQL after a graceful stop)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Site, cli, cli_json
from tests.test_enrichment_e2e import CHROME_WINDOWS, GOOGLEBOT, GPTBOT, rows

PAGEVIEW = "/api/v1/collect/pageview"
EVENT = "/api/v1/collect/event"
TRACKING_ID = "gx_abc123"  # the seed's own example id

# The seed's curl examples, byte for byte but for the user agent it elides ("...").
SEED_PAGEVIEW = """{
"tracking_id": "gx_abc123",
"url": "https://example.com/blog/my-post",
"pathname": "/blog/my-post",
"referrer": "https://google.com",
"ip": "203.0.113.42",
"user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
"utm_source": "newsletter"
}"""
SEED_EVENT = """{
"tracking_id": "gx_abc123",
"name": "Signup",
"url": "https://example.com/register",
"pathname": "/register",
"ip": "203.0.113.42",
"user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
"props": {
"plan": "growth",
"referral": "product-hunt"
}
}"""


class Collect:
    def __init__(self, site: Site) -> None:
        self.site = site
        data = site.server.data_dir
        cli(data, "sites", "add", "shop.example", "--tracking-id", TRACKING_ID)
        self.token = str(cli_json(data, "tokens", "create", "--name", "collector", "--scope", "collect:write")["token"])

    def post(self, path: str, body: Any, token: str | None = None, **headers: str) -> httpx.Response:
        content = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.site.client.post(path, content=content, headers={
            "Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json", **headers})


@pytest.fixture
def live(site: Site) -> Iterator[Collect]:
    yield Collect(site)


def pageview(**fields: Any) -> dict[str, Any]:
    return {"tracking_id": TRACKING_ID, "url": "https://shop.example/p", "pathname": "/p",
            "ip": "198.51.100.7", "user_agent": CHROME_WINDOWS, **fields}


def test_seed_examples_verbatim(live: Collect) -> None:
    r = live.post(PAGEVIEW, SEED_PAGEVIEW)
    assert (r.status_code, r.json()) == (200, {"ok": True}), r.text
    r = live.post(EVENT, SEED_EVENT)
    assert (r.status_code, r.json()) == (200, {"ok": True}), r.text
    stored = rows(live.site, "SELECT s.domain, kind, name, hostname, pathname, referrer_host, utm_source, props "
                             "FROM events JOIN sites s ON s.id = site_id ORDER BY kind DESC")
    # Stored under the site the tracking id names; the page's own host is kept as given.
    assert stored[0][:7] == ("shop.example", "pageview", "pageview", "example.com", "/blog/my-post", "google.com",
                             "newsletter")
    assert stored[1][:5] == ("shop.example", "event", "Signup", "example.com", "/register")
    assert dict(stored[1][7]) == {"plan": "growth", "referral": "product-hunt"}


def test_pageview_fields_are_stored_as_given(live: Collect) -> None:
    moment = dt.datetime(2026, 4, 3, 12, 0, tzinfo=dt.UTC)
    r = live.post(PAGEVIEW, pageview(url="https://shop.example/a/b?email=x@y.z#top", pathname="/a/b?email=x#top",
                                     referrer="https://news.ycombinator.com/item?id=1", utm_medium="email",
                                     utm_campaign="spring", timestamp=int(moment.timestamp())))
    assert r.status_code == 200, r.text
    (row,) = rows(live.site, "SELECT pathname, epoch(ts)::BIGINT, referrer_host, utm_medium, utm_campaign, "
                             "device, browser, country FROM events")
    assert row == ("/a/b", int(moment.timestamp()), "news.ycombinator.com", "email", "spring", "desktop", "Chrome", "")


def test_ip_defaults_to_the_caller_and_user_agent_to_other(live: Collect) -> None:
    body = {"tracking_id": TRACKING_ID, "url": "https://shop.example/", "pathname": "/"}
    assert live.post(PAGEVIEW, body).status_code == 200
    assert live.post(PAGEVIEW, {**body, "ip": "127.0.0.1"}).status_code == 200  # the same visitor
    stored = rows(live.site, "SELECT visitor_id, browser, device FROM events")
    assert len(stored) == 2 and stored[0] == stored[1] and stored[0][1:] == ("Other", "other")


def test_bots_are_skipped_and_counted(live: Collect) -> None:
    for agent in (GOOGLEBOT, GPTBOT):
        r = live.post(PAGEVIEW, pageview(user_agent=agent))
        assert (r.status_code, r.json()) == (200, {"ok": True, "skipped": "bot"}), r.text
    r = live.post(EVENT, pageview(name="Signup", user_agent=GOOGLEBOT))
    assert r.json() == {"ok": True, "skipped": "bot"}
    live.site.server.wait_drained()
    shown = cli_json(live.site.server.data_dir, "sites", "show", "shop.example")
    assert shown["events"] == 0 and shown["not_counted"]["bot"] == 3 and shown["ai_fetches"] == 1


def test_unknown_tracking_id_is_404_ok_false(live: Collect) -> None:
    r = live.post(PAGEVIEW, pageview(tracking_id="gx_nope"))
    assert (r.status_code, r.json()) == (404, {"ok": False})


def test_scope_and_site_are_403_and_tokens_401(live: Collect) -> None:
    r = live.post(PAGEVIEW, pageview(), token=live.site.token)  # site.manage_data, stats.read only
    assert r.status_code == 403 and r.json()["ok"] is False and "collect:write" in r.json()["message"]
    data = live.site.server.data_dir
    other = cli_json(data, "tokens", "create", "--name", "other", "--scope", "collect:write", "--site", "example.com")
    r = live.post(PAGEVIEW, pageview(), token=other["token"])
    assert r.status_code == 403 and r.json()["ok"] is False
    assert live.post(PAGEVIEW, pageview(), token="ff_wrong").status_code == 401
    r = live.site.client.post(PAGEVIEW, json=pageview())
    assert r.status_code == 401 and r.json()["ok"] is False


@pytest.mark.parametrize(("path", "body", "field"), [
    (PAGEVIEW, {"tracking_id": TRACKING_ID, "url": "https://shop.example/"}, "pathname"),
    (PAGEVIEW, {"tracking_id": TRACKING_ID, "pathname": "/"}, "url"),
    (PAGEVIEW, {"url": "https://shop.example/", "pathname": "/"}, "tracking_id"),
    (PAGEVIEW, pageview(url="not a url"), "url"),
    (PAGEVIEW, pageview(ip="300.1.1.1"), "ip"),
    (PAGEVIEW, pageview(timestamp="yesterday"), "timestamp"),
    (PAGEVIEW, pageview(timestamp=int(time.time()) + 7200), "timestamp"),
    (EVENT, pageview(), "name"),
    (EVENT, pageview(name="x" * 256), "name"),
    (EVENT, pageview(name="Signup", props={"nested": {"a": 1}}), "props"),
    (EVENT, pageview(name="Signup", props={f"k{i}": "v" * 100 for i in range(40)}), "props"),
])
def test_invalid_fields_are_422_naming_them(live: Collect, path: str, body: dict[str, Any], field: str) -> None:
    r = live.post(path, body)
    assert r.status_code == 422, r.text
    answer = r.json()
    assert answer["ok"] is False and list(answer["errors"]) == [field], answer


def test_malformed_json_and_content_type(live: Collect) -> None:
    r = live.post(PAGEVIEW, "{not json")
    assert r.status_code == 400 and r.json()["ok"] is False
    r = live.post(PAGEVIEW, json.dumps(pageview()), **{"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["ok"] is False


def test_monthly_pageview_cap_gives_402_then_lifts(live: Collect) -> None:
    data = live.site.server.data_dir
    cli(data, "sites", "update", "shop.example", "--monthly-pageview-cap", "3")
    for _ in range(3):
        assert live.post(PAGEVIEW, pageview()).json() == {"ok": True}
    for path, body in ((PAGEVIEW, pageview()), (EVENT, pageview(name="Signup"))):
        r = live.post(path, body)
        assert (r.status_code, r.json()) == (402, {"ok": False, "reason": "cap_exceeded"})
    cli(data, "sites", "update", "shop.example", "--monthly-pageview-cap", "0")
    assert live.post(PAGEVIEW, pageview()).json() == {"ok": True}
    live.site.server.wait_drained()
    assert cli_json(data, "sites", "show", "shop.example")["events"] == 4


def test_rate_limit_is_429_in_the_contracts_shape(make_server: Any) -> None:
    site = Site(make_server(env={"FOOTFALL_INGEST_RATE_LIMIT": "1", "FOOTFALL_INGEST_BURST": "2"}))
    live = Collect(site)
    answers = [live.post(PAGEVIEW, pageview()) for _ in range(5)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and "Retry-After" in limited[0].headers and limited[0].json()["ok"] is False
    site.client.close()


# -- fuzzing: random and mutated bodies never give a 5xx, every answer is the seed's shape ----

@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collect]:
    from tests.conftest import Server

    server = Server(tmp_path_factory.mktemp("collect-fuzz") / "data").start()
    site = Site(server)
    yield Collect(site)
    site.client.close()
    server.kill()


_values = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
_fields = st.sampled_from(["tracking_id", "url", "pathname", "referrer", "ip", "user_agent", "utm_source",
                           "timestamp", "name", "props"])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from([PAGEVIEW, EVENT]), data=st.data())
def test_fuzzed_bodies_get_the_seeds_answers(fuzzed: Collect, path: str, data: st.DataObject) -> None:
    body: Any = pageview(name="Signup", props={"plan": "pro"})
    for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
        key = data.draw(_fields)
        if data.draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = data.draw(_values | st.dictionaries(st.text(max_size=5), _values, max_size=3))
    if data.draw(st.integers(min_value=0, max_value=9)) == 0:
        body = data.draw(_values | st.lists(_values, max_size=3))
    r = fuzzed.post(path, body)
    assert r.status_code in (200, 400, 402, 403, 404, 413, 422, 429), (r.status_code, r.text)
    answer = r.json()
    assert isinstance(answer, dict) and isinstance(answer["ok"], bool), answer
    assert answer["ok"] is (r.status_code == 200), answer
