"""Enrichment end to end: through the server API into the store, as a user sees it.

Real server, real DuckDB, the bundled geolocation data; rows are read back with SQL after the
server stops, so the assertions see exactly what was stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from tests.conftest import Site, cli, cli_json

PAGEVIEW = "/api/ingest/server/pageview"
BATCH = "/api/ingest/server/batch"
AI_FETCH = "/api/sites/example.com/ingest/ai-fetch"

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GPTBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.2; +https://openai.com/gptbot"
CLAUDEBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)"


def now() -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat().replace("+00:00", "Z")


def pageview(path: str, ip: str, agent: str, referrer: str = "", **extra: Any) -> dict[str, Any]:
    return {"url": f"https://example.com{path}", "timestamp": now(), "visitor_ip": ip, "user_agent": agent,
            "referrer": referrer, **extra}


def rows(site: Site, sql: str) -> list[tuple[Any, ...]]:
    """Stop the server (which drains the spool and checkpoints), read, start it again."""
    site.server.stop()
    assert not (site.server.data_dir / "footfall.duckdb.wal").exists(), "a graceful stop left the WAL"
    assert not list((site.server.data_dir / "spool").iterdir()), "a graceful stop left spool segments"
    con = duckdb.connect(str(site.server.data_dir / "footfall.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
        site.server.start()


@pytest.fixture
def live(site: Site) -> Iterator[Site]:
    yield site


def test_a_browser_pageview_gets_agent_geo_and_source(live: Site) -> None:
    r = live.post(PAGEVIEW, pageview("/pricing?utm_medium=cpc&utm_source=google", "8.8.8.8", CHROME_WINDOWS,
                                     "https://www.google.com/search?q=analytics"))
    assert r.status_code == 202, r.text
    r = live.post(PAGEVIEW, pageview("/blog", "2001:4860:4860::8888", SAFARI_IPHONE, "https://news.ycombinator.com/"))
    assert r.status_code == 202, r.text
    r = live.post(PAGEVIEW, pageview("/", "192.168.1.20", FIREFOX_LINUX, "https://example.com/blog"))
    assert r.status_code == 202, r.text
    got = rows(live, "SELECT pathname, browser, browser_version, os, device, country, source, channel "
                     "FROM events ORDER BY pathname")
    assert got == [
        ("/", "Firefox", "125", "Linux", "desktop", "", "", "direct"),  # private IP: no country; self-referral
        ("/blog", "Safari", "17", "iOS", "mobile", "US", "Hacker News", "social"),
        ("/pricing", "Chrome", "124", "Windows", "desktop", "US", "Google", "paid"),
    ]


def test_bots_and_ai_crawlers_are_counted_apart_not_stored(live: Site) -> None:
    for agent in (GOOGLEBOT, GOOGLEBOT, GPTBOT, "curl/8.5.0"):
        r = live.post(PAGEVIEW, pageview("/docs", "203.0.113.9", agent))
        assert r.status_code == 202 and r.content == b"", r.text
    r = live.post(PAGEVIEW, pageview("/docs", "203.0.113.10", FIREFOX_LINUX))
    assert r.status_code == 202
    live.server.wait_drained()
    shown = cli_json(live.server.data_dir, "sites", "show", "example.com")
    assert shown["events"] == 1
    assert shown["not_counted"] == {"bot": 4}
    assert shown["ai_fetches"] == 1
    assert rows(live, "SELECT bot, bot_family, reason, hits FROM dropped_hits ORDER BY bot") == [
        ("GPTBot", "OpenAI", "bot", 1), ("Googlebot", "Google", "bot", 2), ("curl", "curl", "bot", 1),
    ]
    assert rows(live, "SELECT bot, bot_family, ai_kind, pathname, source_api FROM ai_fetches") == [
        ("GPTBot", "OpenAI", "training", "/docs", "server"),
    ]


def test_ai_fetch_endpoint(live: Site) -> None:
    body = {"path": "/guide?utm_source=x&secret=1", "hostname": "www.Example.com", "status_code": 200,
            "content_type": "text/html; charset=utf-8", "response_ms": 12.5, "bytes_served": 5120,
            "user_agent": CLAUDEBOT, "timestamp": now()}
    r = live.post(AI_FETCH, body)
    assert r.status_code == 202 and r.content == b"", r.text
    # Also addressed by tracking id; without timestamp and optional fields.
    tracking_id = cli_json(live.server.data_dir, "sites", "show", "example.com")["tracking_id"]
    r = live.post(f"/api/sites/{tracking_id}/ingest/ai-fetch", {"path": "/b", "user_agent": GPTBOT})
    assert r.status_code == 202, r.text

    not_ai = live.post(AI_FETCH, {**body, "user_agent": GOOGLEBOT})
    assert not_ai.status_code == 422 and not_ai.json()["field"] == "user_agent"
    browser = live.post(AI_FETCH, {**body, "user_agent": CHROME_WINDOWS})
    assert browser.status_code == 422
    assert live.post(AI_FETCH, {**body, "status_code": 42}).json()["field"] == "status_code"
    assert live.post(AI_FETCH, {"user_agent": GPTBOT}).json()["field"] == "path"
    assert live.post("/api/sites/nope.example/ingest/ai-fetch", body).status_code == 404
    assert live.client.post(AI_FETCH, json=body).status_code == 401
    reader = cli_json(live.server.data_dir, "tokens", "create", "--name", "reader", "--scope", "stats.read",
                      "--json")["token"]
    assert live.post(AI_FETCH, body, token=reader).status_code == 403
    cli(live.server.data_dir, "sites", "add", "other.org")
    assert live.post("/api/sites/other.org/ingest/ai-fetch", body).status_code == 403  # not the token's site

    live.server.wait_drained()
    got = rows(live, "SELECT bot, bot_family, ai_kind, hostname, pathname, status_code, content_type, "
                     "response_ms, bytes_served, source_api FROM ai_fetches ORDER BY pathname")
    assert got == [
        ("GPTBot", "OpenAI", "training", "example.com", "/b", None, "", None, None, "ai_fetch"),
        ("ClaudeBot", "Anthropic", "training", "example.com", "/guide", 200, "text/html", 12.5, 5120, "ai_fetch"),
    ]


def test_exclusions_spam_and_kept_query_parameters(live: Site) -> None:
    data = live.server.data_dir
    cli(data, "sites", "update", "example.com", "--exclude-ip", "203.0.113.0/24", "--exclude-path", "/admin/*",
        "--exclude-country", "US", "--query-param", "q")
    hits = [
        pageview("/a", "203.0.113.50", FIREFOX_LINUX),                 # excluded network
        pageview("/admin/users", "198.51.100.1", FIREFOX_LINUX),       # excluded path
        pageview("/b", "8.8.8.8", FIREFOX_LINUX),                      # excluded country (US)
        pageview("/c", "198.51.100.2", FIREFOX_LINUX, "https://semalt.com/"),  # referrer spam
        pageview("/search?q=running+shoes&email=a%40b.c", "198.51.100.3", FIREFOX_LINUX),  # kept, q only
    ]
    r = live.post(BATCH, [{"type": "pageview", **h} for h in hits])
    assert r.status_code == 202 and r.json() == {"accepted": 5, "rejected": []}, r.text
    live.server.wait_drained()
    shown = cli_json(data, "sites", "show", "example.com")
    assert shown["not_counted"] == {
        "excluded_country": 1, "excluded_ip": 1, "excluded_path": 1, "referrer_spam": 1,
    }
    assert shown["events"] == 1
    assert rows(live, "SELECT pathname, props FROM events") == [("/search", {"query.q": "running shoes"})]

    # Clearing the lists counts those hits again.
    cli(data, "sites", "update", "example.com", "--exclude-ip", "", "--exclude-path", "", "--exclude-country", "")
    assert live.post(PAGEVIEW, hits[0]).status_code == 202
    live.server.wait_drained()
    assert cli_json(data, "sites", "show", "example.com")["events"] == 2


def test_bad_site_settings_are_refused(live: Site) -> None:
    for args, word in ((["--exclude-ip", "10.0.0.300/8"], "10.0.0.300/8"),
                       (["--exclude-country", "USA"], "USA"),
                       (["--exclude-path", "admin"], "admin"),
                       (["--query-param", "utm_source"], "utm_source")):
        result = cli(live.server.data_dir, "sites", "update", "example.com", *args, check=False)
        assert result.returncode != 0 and word in result.stderr + result.stdout, result


def test_instance_wide_exclusions(make_server: Any) -> None:
    env = {"FOOTFALL_EXCLUDE_PATHS": "/health*,/wp-*", "FOOTFALL_EXCLUDE_IPS": "198.51.100.0/24"}
    site = Site(make_server(env=env))
    try:
        for path, ip in (("/healthz", "192.0.2.1"), ("/wp-login.php", "192.0.2.1"), ("/x", "198.51.100.9"),
                         ("/kept", "192.0.2.1")):
            assert site.post(PAGEVIEW, pageview(path, ip, FIREFOX_LINUX)).status_code == 202
        site.server.wait_drained()
        shown = cli_json(site.server.data_dir, "sites", "show", "example.com")
        assert shown["events"] == 1
        assert shown["not_counted"] == {"excluded_ip": 1, "excluded_path": 2}
    finally:
        site.client.close()


def test_ai_fetch_site_reference_that_only_looks_numeric_is_404(live: Site) -> None:
    """"³" passes str.isdigit() but is no number: found by schemathesis as a 500."""
    fetch = {"path": "/", "user_agent": GPTBOT}
    r = live.client.post("/api/sites/%C2%B3/ingest/ai-fetch", json=fetch, headers=live.headers())
    assert r.status_code == 404, r.text
