"""Client IP for rate limiting: X-Forwarded-For counts only from FOOTFALL_TRUSTED_PROXIES."""

from __future__ import annotations

from typing import Any

from tests.conftest import Site

PAGEVIEW = {
    "url": "https://example.com/",
    "timestamp": "2026-04-03T12:30:45Z",
    "visitor_ip": "203.0.113.42",
    "user_agent": "Mozilla/5.0",
}


def _statuses(site: Site, forwarded: list[str]) -> list[int]:
    return [
        site.client.post(
            "/api/ingest/server/pageview", json=PAGEVIEW,
            headers={**site.headers(), "X-Forwarded-For": f}, timeout=10,
        ).status_code
        for f in forwarded
    ]


def test_forwarded_for_is_ignored_from_an_untrusted_peer(make_server: Any) -> None:
    site = Site(make_server(env={"FOOTFALL_INGEST_RATE_LIMIT": "0.01", "FOOTFALL_INGEST_BURST": "2"}))
    # Loopback is not trusted by default, so every request is the peer's: the third is limited.
    assert _statuses(site, ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) == [202, 202, 429]


def test_forwarded_for_is_believed_from_a_trusted_proxy(make_server: Any) -> None:
    site = Site(make_server(env={
        "FOOTFALL_INGEST_RATE_LIMIT": "0.01", "FOOTFALL_INGEST_BURST": "2",
        "FOOTFALL_TRUSTED_PROXIES": "127.0.0.1/32",
    }))
    assert _statuses(site, ["198.51.100.1"] * 3) == [202, 202, 429]
    assert _statuses(site, ["198.51.100.2"]) == [202]  # another visitor has its own bucket
