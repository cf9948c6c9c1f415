"""PostHog's capture API, driven by the real `posthog` client against a live server:
pageviews and events arrive with their page, time and properties, once each."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from posthog import Posthog

from tests.conftest import Site, cli_json
from tests.test_enrichment_e2e import CHROME_WINDOWS, GOOGLEBOT, rows


@pytest.fixture
def project_key(site: Site) -> Iterator[str]:
    yield str(cli_json(site.server.data_dir, "sites", "show", "example.com")["tracking_id"])


def client(site: Site, key: str, **options: object) -> Posthog:
    return Posthog(key, host=site.server.url, sync_mode=True, max_retries=0, capture_mode="v0", **options)


def test_pageviews_and_events_from_the_real_client(site: Site, project_key: str) -> None:
    visitor = {"$ip": "198.51.100.7", "$raw_user_agent": CHROME_WINDOWS,
               "$current_url": "https://example.com/pricing?utm_source=ads", "$referrer": "https://www.google.com/"}
    when = dt.datetime(2026, 4, 3, 12, 0, tzinfo=dt.UTC)
    order = str(uuid.uuid4())
    for gzip in (False, True):
        ph = client(site, project_key, gzip=gzip, historical_migration=True)
        ph.capture("$pageview", distinct_id="anon-1", properties=visitor, timestamp=when)
        ph.capture("order completed", distinct_id="u-1", properties={**visitor, "plan": "pro", "items": [1, 2]},
                   timestamp=when, uuid=order)  # the same uuid twice: stored once
        ph.capture("$identify", distinct_id="u-1", properties={"$set": {"email": "jane@example.com"}})
        ph.capture("crawled", distinct_id="bot", properties={**visitor, "$raw_user_agent": GOOGLEBOT})
        ph.flush()
        ph.shutdown()
    stored = rows(site, "SELECT kind, name, pathname, utm_source, referrer_host, browser, epoch(ts)::BIGINT, props "
                        "FROM events WHERE source_api = 'posthog' ORDER BY kind DESC, name")
    assert [(k, n) for k, n, *_ in stored] == [("pageview", "pageview"), ("pageview", "pageview"),
                                               ("event", "order completed")]
    for _, _, path, utm, referrer, browser, ts, _ in stored:
        assert (path, utm, referrer, browser, ts) == ("/pricing", "ads", "google.com", "Chrome", int(when.timestamp()))
    assert dict(stored[-1][7]) == {"plan": "pro", "items": "[1,2]"}  # PostHog's own $ properties left out
    assert cli_json(site.server.data_dir, "sites", "show", "example.com")["not_counted"] == {"bot": 2}


def test_capture_shapes_and_key_errors(site: Site, project_key: str) -> None:
    one = {"event": "signup", "distinct_id": "u-2", "properties": {"$current_url": "https://example.com/join"}}
    r = site.client.post("/capture/", json={**one, "api_key": project_key})
    assert (r.status_code, r.json()) == (200, {"status": 1}), r.text
    assert site.client.post("/i/v0/e/", json={**one, "token": project_key}).status_code == 200
    assert site.client.post("/capture/", json=one).status_code == 401
    assert site.client.post("/capture/", json={**one, "api_key": "nope"}).status_code == 401
    assert site.client.post("/batch/", json={"api_key": project_key}).status_code == 400
    unusable = [{"event": ""}, "junk", {"event": "x", "timestamp": "1900-01-01T00:00:00Z"}, {"event": "$autocapture"}]
    mixed = {"api_key": project_key, "batch": [*unusable, {"event": "kept"}]}
    assert site.client.post("/batch/", json=mixed).status_code == 200
    names = [n for (n,) in rows(site, "SELECT name FROM events WHERE source_api = 'posthog' ORDER BY name")]
    assert names == ["kept", "signup", "signup"]
