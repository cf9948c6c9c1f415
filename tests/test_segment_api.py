"""Segment's tracking API, driven by the real `segment-analytics-python` client against a
live server: pages and tracks arrive with their page, time and properties, once each."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator

import pytest
import segment.analytics as segment

from tests.conftest import Site, cli_json
from tests.test_enrichment_e2e import CHROME_WINDOWS, GOOGLEBOT, rows


@pytest.fixture
def write_key(site: Site) -> Iterator[str]:
    yield str(cli_json(site.server.data_dir, "sites", "show", "example.com")["tracking_id"])


def client(site: Site, key: str, **options: object) -> segment.Client:
    return segment.Client(write_key=key, host=site.server.url, sync_mode=True, max_retries=0, **options)


def test_pages_and_tracks_from_the_real_client(site: Site, write_key: str) -> None:
    ctx = {"ip": "198.51.100.7", "userAgent": CHROME_WINDOWS,
           "page": {"url": "https://example.com/pricing?utm_source=ads", "referrer": "https://www.google.com/"}}
    sent_at = dt.datetime(2026, 4, 3, 12, 0, tzinfo=dt.UTC)
    for gzip in (False, True):
        c = client(site, write_key, gzip=gzip)
        c.page(anonymous_id="anon-1", name="Pricing", context=ctx, timestamp=sent_at,
               message_id=f"page-{gzip}")
        c.track(user_id="u-1", event="Order Completed", properties={"revenue": 49.5, "plan": "pro",
                "products": [{"sku": "A-1"}]}, context=ctx, timestamp=sent_at, message_id=f"order-{gzip}")
        c.identify(user_id="u-1", traits={"email": "jane@example.com"})  # accepted, not kept
        c.track(user_id="u-1", event="Crawled", context={**ctx, "userAgent": GOOGLEBOT})
        c.flush()
    # A retried delivery of the same messages counts once.
    client(site, write_key).track(user_id="u-1", event="Order Completed", properties={"revenue": 49.5},
                                  context=ctx, timestamp=sent_at, message_id="order-False")
    stored = rows(site, "SELECT kind, name, pathname, utm_source, referrer_host, browser, epoch(ts)::BIGINT, props "
                        "FROM events WHERE source_api = 'segment' ORDER BY kind DESC, name")
    assert len(stored) == 4, stored
    for kind, name, path, utm, referrer, browser, ts, _ in stored:
        assert (path, utm, referrer, browser, ts) == ("/pricing", "ads", "google.com", "Chrome",
                                                      int(sent_at.timestamp()))
        assert (kind, name) in (("pageview", "pageview"), ("event", "Order Completed"))
    props = dict(stored[-1][7])
    assert props == {"revenue": "49.5", "plan": "pro", "products": '[{"sku":"A-1"}]'}
    shown = cli_json(site.server.data_dir, "sites", "show", "example.com")
    assert shown["not_counted"] == {"bot": 2}


def test_write_key_errors(site: Site, write_key: str) -> None:
    body = {"batch": [{"type": "track", "event": "x"}]}
    assert site.client.post("/v1/batch", json=body).status_code == 401
    bad = base64.b64encode(b"nope:").decode()
    assert site.client.post("/v1/batch", json=body, headers={"Authorization": f"Basic {bad}"}).status_code == 401
    r = site.client.post("/v1/batch", json={**body, "writeKey": write_key})
    assert (r.status_code, r.json()) == (200, {"success": True})
    r = site.client.post("/v1/batch", content=b"not gzip", headers={"Authorization": f"Basic {bad}",
                         "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 400
    # Unusable messages are skipped alone.
    mixed = {"writeKey": write_key, "batch": [{"type": "track"}, {"type": "page", "timestamp": "1900-01-01T00:00:00Z"},
                                              "junk", {"type": "page", "context": {"page": {"url": "https://example.com/ok"}}}]}
    assert site.client.post("/v1/batch", json=mixed).status_code == 200
    assert [p for (p,) in rows(site, "SELECT pathname FROM events WHERE source_api = 'segment' ORDER BY pathname")] == [
        "/", "/ok"]
