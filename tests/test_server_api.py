"""Seed 000, the server-side tracking API, against a real `footfall serve` process.

Most tests share one server (module scope) and keep apart by the analytics day they write to;
tests that stop the server or change its limits get their own.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import httpx
import pytest

from tests.conftest import Server, Site, cli, cli_json

PAGEVIEW = "/api/ingest/server/pageview"
EVENT = "/api/ingest/server/event"
BATCH = "/api/ingest/server/batch"
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"

# The seed document's examples, verbatim.
SEED_PAGEVIEW = """{
"url": "https://www.example.com/docs/start?utm_source=newsletter",
"timestamp": "2026-04-03T12:30:45Z",
"visitor_ip": "203.0.113.42",
"user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15",
"referrer": "https://search.example/",
"language": "en-US",
"session_id": "018f5b11-43cb-7c0e-9d2d-3f0e7c68a001",
"page_id": "018f5b11-43cb-7c0e-9d2d-3f0e7c68a002"
}"""
SEED_EVENT = """{
"url": "https://www.example.com/pricing",
"timestamp": "2026-04-03T12:34:10Z",
"visitor_ip": "203.0.113.42",
"user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15",
"name": "signup_started",
"properties": {
"plan": "pro",
"source": "pricing"
},
"session_id": "018f5b11-43cb-7c0e-9d2d-3f0e7c68a001"
}"""
SEED_DNT = """{
"url": "https://www.example.com/private",
"timestamp": "2026-04-03T12:30:45Z",
"visitor_ip": "203.0.113.42",
"user_agent": "Mozilla/5.0",
"dnt": true
}"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server for the module: example.com (token `ci` restricted to it) and other.org."""
    server = Server(tmp_path_factory.mktemp("server_api") / "data").start()
    site = Site(server)
    cli(server.data_dir, "sites", "add", "other.org")
    yield site
    site.client.close()
    server.kill()


def record(day: str = "2025-01-01", **fields: Any) -> dict[str, Any]:
    """A valid pageview on `day` (noon UTC); `fields` override or, when None, remove keys."""
    body: dict[str, Any] = {
        "url": "https://example.com/page",
        "timestamp": f"{day}T12:00:00Z",
        "visitor_ip": "203.0.113.42",
        "user_agent": UA,
    }
    for key, value in fields.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def post_raw(site: Site, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
    return site.client.post(path, content=content, headers=headers)


def assert_error(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The contract's error shape: the status, a JSON body {"error": text, "field": name}."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "field"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert body["field"] == field, body
    return dict(body)


def day_counts(report: dict[str, Any], metric: str) -> dict[str, int]:
    """The days of a stats report with a non-zero `metric`."""
    return {d["date"]: d[metric] for d in report["days"] if d[metric]}


def records_written(site: Site) -> int:
    return int(site.client.get("/readyz").json()["spool"]["records_written"])


# -- the seed's examples -------------------------------------------------------------------


def test_seed_examples_replay_into_april(live: Site) -> None:
    headers = live.headers()
    for body in (SEED_PAGEVIEW, SEED_EVENT, SEED_DNT):
        json.loads(body)  # the constants are the seed's JSON, not a typo of it
    pv = post_raw(live, PAGEVIEW, SEED_PAGEVIEW.encode(), headers)
    assert pv.status_code == 202 and pv.content == b"", pv.text
    ev = post_raw(live, EVENT, SEED_EVENT.encode(), headers)
    assert ev.status_code == 202 and ev.content == b"", ev.text
    written = records_written(live)
    dnt = post_raw(live, PAGEVIEW, SEED_DNT.encode(), headers)
    assert dnt.status_code == 202 and dnt.content == b"", dnt.text
    # Do-not-track is acknowledged like any record, but nothing reaches the spool.
    assert records_written(live) == written

    april = live.stats("2026-04-01", "2026-04-30")
    assert april["totals"]["pageviews"] == 1
    assert april["totals"]["events"] == 1
    # Same visitor, and the event shares the pageview's explicit session_id: one visit.
    assert april["totals"]["visitors"] == 1
    assert april["totals"]["visits"] == 1
    assert len(april["days"]) == 30
    assert day_counts(april, "pageviews") == {"2026-04-03": 1}
    assert day_counts(april, "events") == {"2026-04-03": 1}
    assert day_counts(april, "visitors") == {"2026-04-03": 1}
    # Only the path is page context: no query string, no dnt page.
    assert [(p["page"], p["pageviews"]) for p in april["top_pages"]] == [("/docs/start", 1)]

    for first, last in (("2026-03-01", "2026-03-31"), ("2026-05-01", "2026-05-31")):
        other = live.stats(first, last)
        assert other["totals"]["pageviews"] == 0 and other["totals"]["events"] == 0, other["totals"]
        assert day_counts(other, "pageviews") == {} and day_counts(other, "events") == {}
        assert other["top_pages"] == []


def test_rfc3339_offsets_are_converted_to_utc(live: Site) -> None:
    # Seed shape, in 2025 so this test does not touch the seed replay's April 2026.
    r = live.post(PAGEVIEW, record(timestamp="2025-04-03T23:30:00-05:00", url="https://example.com/west"))
    assert r.status_code == 202, r.text
    r = live.post(PAGEVIEW, record(timestamp="2025-04-06T01:30:00+05:30", url="https://example.com/east"))
    assert r.status_code == 202, r.text
    r = live.post(PAGEVIEW, record(timestamp="2025-04-08T12:00:00.123456+00:00", url="https://example.com/utc"))
    assert r.status_code == 202, r.text
    report = live.stats("2025-04-01", "2025-04-30")
    # 23:30-05:00 is 04:30Z the next day; 01:30+05:30 is 20:00Z the day before.
    assert day_counts(report, "pageviews") == {"2025-04-04": 1, "2025-04-05": 1, "2025-04-08": 1}


# -- authentication and site resolution ----------------------------------------------------


def test_x_api_key_works_like_bearer(live: Site) -> None:
    body = record("2025-01-10")
    r = live.client.post(PAGEVIEW, json=body, headers={"X-Api-Key": live.token})
    assert r.status_code == 202 and r.content == b"", r.text
    r = live.client.post(EVENT, json={**body, "name": "k"}, headers={"x-api-key": live.token})
    assert r.status_code == 202, r.text
    r = live.client.post(BATCH, json=[{**body, "type": "pageview"}], headers={"X-Api-Key": live.token})
    assert r.status_code == 202 and r.json() == {"accepted": 1, "rejected": []}, r.text
    assert_error(live.client.post(PAGEVIEW, json=body, headers={"X-Api-Key": "ff_wrong"}), 401)
    report = live.stats("2025-01-10", "2025-01-10")
    assert report["totals"]["pageviews"] == 2 and report["totals"]["events"] == 1


@pytest.mark.parametrize(
    "url",
    [
        "https://www.example.com/a",
        "https://WWW.Example.COM/a",
        "https://EXAMPLE.com/a",
        "http://example.com./a",
        "https://example.com:8443/a",
    ],
)
def test_hostname_normalization_resolves_the_site(live: Site, url: str) -> None:
    before = records_written(live)
    r = live.post(PAGEVIEW, record("2025-01-11", url=url))
    assert r.status_code == 202, r.text
    assert records_written(live) == before + 1


def test_normalized_hosts_count_as_one_site(live: Site) -> None:
    for url in ("https://www.example.com/n", "https://WWW.EXAMPLE.COM/n", "https://example.com/n"):
        assert live.post(PAGEVIEW, record("2025-01-12", url=url)).status_code == 202
    report = live.stats("2025-01-12", "2025-01-12")
    assert report["totals"]["pageviews"] == 3
    assert [(p["page"], p["pageviews"]) for p in report["top_pages"]] == [("/n", 3)]


def test_missing_and_wrong_tokens_are_401(live: Site) -> None:
    body = json.dumps(record()).encode()
    for path in (PAGEVIEW, EVENT, BATCH):
        assert_error(post_raw(live, path, body, {"Content-Type": "application/json"}), 401)
        assert_error(post_raw(live, path, body, live.headers("ff_not_a_real_token")), 401)
        bad_scheme = {"Authorization": f"Basic {live.token}", "Content-Type": "application/json"}
        assert_error(post_raw(live, path, body, bad_scheme), 401)
        empty = {"Authorization": "Bearer", "Content-Type": "application/json"}
        assert_error(post_raw(live, path, body, empty), 401)


def test_token_without_manage_data_is_403(live: Site) -> None:
    reader = cli_json(live.server.data_dir, "tokens", "create", "--name", "reader", "--scope", "stats.read")
    for path in (PAGEVIEW, EVENT, BATCH):
        body = [{**record(), "type": "pageview"}] if path == BATCH else record(name="e")
        assert_error(live.post(path, body, token=reader["token"]), 403)


def test_token_restricted_to_another_site_is_403(live: Site) -> None:
    # `ci` may write only to example.com; other.org is configured but not its site.
    other = record(url="https://other.org/x")
    assert_error(live.post(PAGEVIEW, other), 403, "url")
    assert_error(live.post(EVENT, {**other, "name": "e"}), 403, "url")
    scoped = cli_json(
        live.server.data_dir, "tokens", "create", "--name", "other-only",
        "--scope", "site.manage_data", "--site", "other.org",
    )
    assert_error(live.post(PAGEVIEW, record(), token=scoped["token"]), 403, "url")
    assert live.post(PAGEVIEW, other, token=scoped["token"]).status_code == 202


def test_unknown_site_is_404(live: Site) -> None:
    for url in ("https://unknown.example/x", "https://sub.example.com/x", "https://example.com.evil.test/"):
        assert_error(live.post(PAGEVIEW, record(url=url)), 404, "url")
    assert_error(live.post(EVENT, record(url="https://unknown.example/x", name="e")), 404, "url")


def test_rotate_and_revoke_take_effect_at_once(live: Site) -> None:
    data_dir = live.server.data_dir
    created = cli_json(data_dir, "tokens", "create", "--name", "rotating", "--scope", "site.manage_data")
    old = created["token"]
    body = record("2025-01-13")
    assert live.post(PAGEVIEW, body, token=old).status_code == 202

    rotated = cli_json(data_dir, "tokens", "rotate", "rotating")
    new = rotated["token"]
    assert new != old and rotated["name"] == "rotating"
    assert_error(live.post(PAGEVIEW, body, token=old), 401)
    assert live.post(PAGEVIEW, body, token=new).status_code == 202
    assert live.client.post(PAGEVIEW, json=body, headers={"X-Api-Key": new}).status_code == 202

    cli(data_dir, "tokens", "revoke", "rotating")
    assert_error(live.post(PAGEVIEW, body, token=new), 401)
    assert_error(live.post(BATCH, [{**body, "type": "pageview"}], token=new), 401)
    assert live.stats("2025-01-13", "2025-01-13")["totals"]["pageviews"] == 3


# -- request-level errors ------------------------------------------------------------------


@pytest.mark.parametrize("path", [PAGEVIEW, EVENT, BATCH])
@pytest.mark.parametrize(
    "content",
    [b"{", b'{"url": }', b"not json", b"", b'{"url": "https://example.com/"} trailing', b'{"url": 5', b"[1, 2"],
)
def test_malformed_json_is_400(live: Site, path: str, content: bytes) -> None:
    assert_error(post_raw(live, path, content, live.headers()), 400)


def test_invalid_utf8_is_400_and_rejects_only_its_batch_record(live: Site) -> None:
    before = records_written(live)
    good = json.dumps(record("2025-01-17", name="e")).encode()
    for field in (b'"url"', b'"user_agent"', b'"name"'):
        bad = good.replace(field + b': "', field + b': "\xff\xed\xa0\x80', 1)
        assert bad != good
        assert_error(post_raw(live, PAGEVIEW if field != b'"name"' else EVENT, bad, live.headers()), 400)
    bad_props = json.dumps(record("2025-01-17", name="e", properties={"k": "v"})).encode().replace(b'"k"', b'"\xff"')
    assert_error(post_raw(live, EVENT, bad_props, live.headers()), 400)
    assert records_written(live) == before
    pv = json.dumps({**record("2025-01-17"), "type": "pageview"}).encode()
    broken = pv.replace(b'"user_agent": "', b'"user_agent": "\xc3\x28', 1)
    r = post_raw(live, BATCH, b"[" + pv + b", " + broken + b", " + pv + b"]", live.headers())
    assert r.status_code == 202, r.text
    result = r.json()
    assert result["accepted"] == 2 and [(x["index"], x["field"]) for x in result["rejected"]] == [(1, None)]
    assert "UTF-8" in result["rejected"][0]["error"]
    assert live.stats("2025-01-17", "2025-01-17")["totals"]["pageviews"] == 2


@pytest.mark.parametrize("path", [PAGEVIEW, EVENT])
def test_body_over_64_kib_is_413(live: Site, path: str) -> None:
    big = record(name="e", user_agent="x" * (64 * 1024))
    assert_error(live.post(path, big), 413)
    # Without a Content-Length (chunked) the limit still holds.
    payload = json.dumps(big).encode()
    chunks = (payload[i : i + 8192] for i in range(0, len(payload), 8192))
    assert_error(live.client.post(path, content=chunks, headers=live.headers()), 413)
    # Just under the limit is not refused for size (the user agent is then too long: 422).
    small = record(name="e", user_agent="x" * 60_000)
    assert live.post(path, small).status_code == 422


def test_batch_body_over_8_mib_is_413(live: Site) -> None:
    content = b"[" + b" " * (8 * 1024 * 1024) + b"]"
    assert_error(post_raw(live, BATCH, content, live.headers()), 413)


@pytest.mark.parametrize("path", [PAGEVIEW, EVENT, BATCH])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "json"])
def test_non_json_content_type_is_415(live: Site, path: str, content_type: str | None) -> None:
    headers = {"Authorization": f"Bearer {live.token}"}
    if content_type:
        headers["Content-Type"] = content_type
    body = record(name="e")
    content = json.dumps([{**body, "type": "event"}] if path == BATCH else body).encode()
    assert_error(post_raw(live, path, content, headers), 415)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/ld+json"])
def test_json_content_type_variants_are_accepted(live: Site, content_type: str) -> None:
    headers = {"Authorization": f"Bearer {live.token}", "Content-Type": content_type}
    r = post_raw(live, PAGEVIEW, json.dumps(record("2025-01-14")).encode(), headers)
    assert r.status_code == 202, r.text


# -- field validation: 422 naming the field -------------------------------------------------

INVALID: list[tuple[str, dict[str, Any], str]] = [
    # (endpoint kind, fields to override (None removes), field the error must name)
    ("pageview", {"url": None}, "url"),
    ("pageview", {"timestamp": None}, "timestamp"),
    ("pageview", {"visitor_ip": None}, "visitor_ip"),
    ("pageview", {"user_agent": None}, "user_agent"),
    ("event", {"url": None, "name": "e"}, "url"),
    ("event", {"timestamp": None, "name": "e"}, "timestamp"),
    ("event", {"visitor_ip": None, "name": "e"}, "visitor_ip"),
    ("event", {"user_agent": None, "name": "e"}, "user_agent"),
    ("event", {}, "name"),
    ("event", {"name": ""}, "name"),
    ("event", {"name": "   "}, "name"),
    ("event", {"name": 7}, "name"),
    ("pageview", {"timestamp": "2026-04-03 noon"}, "timestamp"),
    ("pageview", {"timestamp": "2026-13-03T12:30:45Z"}, "timestamp"),
    ("pageview", {"timestamp": "2026-04-03"}, "timestamp"),
    ("pageview", {"timestamp": "03/04/2026 12:30"}, "timestamp"),
    ("pageview", {"timestamp": "2026-04-03T12:30:45"}, "timestamp"),  # no offset
    ("event", {"timestamp": "2026-04-03T12:30:45.5", "name": "e"}, "timestamp"),  # no offset
    ("pageview", {"timestamp": 1775219445}, "timestamp"),
    ("pageview", {"timestamp": "1970-01-01T00:00:00Z"}, "timestamp"),
    ("pageview", {"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
    ("pageview", {"visitor_ip": "203.0.113.999"}, "visitor_ip"),
    ("pageview", {"visitor_ip": "not an ip"}, "visitor_ip"),
    ("pageview", {"visitor_ip": ""}, "visitor_ip"),
    ("pageview", {"visitor_ip": "203.0.113.42, 10.0.0.1"}, "visitor_ip"),
    ("pageview", {"visitor_ip": 3405803818}, "visitor_ip"),
    ("pageview", {"url": "ftp://example.com/file"}, "url"),
    ("pageview", {"url": "javascript:alert(1)"}, "url"),
    ("pageview", {"url": "example.com/relative"}, "url"),
    ("pageview", {"url": "/docs/start"}, "url"),
    ("pageview", {"url": "https://"}, "url"),
    ("pageview", {"url": "http://[::1/"}, "url"),
    ("pageview", {"url": "https://example.com/" + "a" * 3000}, "url"),
    ("pageview", {"url": ["https://example.com/"]}, "url"),
    ("event", {"name": "e", "properties": {"plan": {"tier": "pro"}}}, "properties"),
    ("event", {"name": "e", "properties": {"plan": ["pro"]}}, "properties"),
    ("event", {"name": "e", "properties": {"plan": None}}, "properties"),
    ("event", {"name": "e", "properties": ["plan", "pro"]}, "properties"),
    ("event", {"name": "e", "properties": "plan=pro"}, "properties"),
    ("event", {"name": "e", "properties": {f"k{i}": i for i in range(31)}}, "properties"),
    ("event", {"name": "e", "properties": {"": "x"}}, "properties"),
    ("event", {"name": "e", "properties": {"big": "x" * 2001}}, "properties.big"),
    ("pageview", {"user_agent": 5}, "user_agent"),
    ("pageview", {"user_agent": ""}, "user_agent"),
    ("pageview", {"referrer": 1}, "referrer"),
    ("pageview", {"language": True}, "language"),
    ("pageview", {"session_id": 12}, "session_id"),
    ("pageview", {"session_id": ""}, "session_id"),
    ("pageview", {"page_id": {"id": 1}}, "page_id"),
    ("pageview", {"screen_width": "1280"}, "screen_width"),
    ("pageview", {"screen_width": -1}, "screen_width"),
    ("pageview", {"dnt": "yes"}, "dnt"),
    ("pageview", {"dnt": 1}, "dnt"),
]


@pytest.mark.parametrize(
    ("kind", "fields", "field"), INVALID, ids=[f"{k}-{f}-{i}" for i, (k, _, f) in enumerate(INVALID)]
)
def test_invalid_field_is_422_naming_it(live: Site, kind: str, fields: dict[str, Any], field: str) -> None:
    before = records_written(live)
    body = record("2025-01-15", **fields)
    assert_error(live.post(PAGEVIEW if kind == "pageview" else EVENT, body), 422, field)
    # The same record in a batch is rejected alone, naming the same field.
    r = live.post(BATCH, [{**body, "type": kind}])
    assert r.status_code == 202, r.text
    result = r.json()
    assert result["accepted"] == 0
    assert [(x["index"], x["field"]) for x in result["rejected"]] == [(0, field)]
    assert isinstance(result["rejected"][0]["error"], str) and result["rejected"][0]["error"]
    # Never half a record: nothing reached the spool.
    assert records_written(live) == before


@pytest.mark.parametrize("content", [b"[]", b"null", b'"pageview"', b"42", b"true"])
def test_body_that_is_not_an_object_is_422(live: Site, content: bytes) -> None:
    for path in (PAGEVIEW, EVENT):
        r = post_raw(live, path, content, live.headers())
        assert r.status_code == 422, r.text
        assert set(r.json()) == {"error", "field"}


def test_utm_fields_at_top_level_do_not_fail(live: Site) -> None:
    # The seed says they are ignored, not refused.
    body = record("2025-01-16", utm_source="toplevel", utm_medium="x", utm_campaign="y")
    assert live.post(PAGEVIEW, body).status_code == 202


# -- what is stored ------------------------------------------------------------------------


def test_utm_comes_from_the_url_query_only_and_the_query_is_not_stored(site: Site) -> None:
    secret_marker = "QSECRET7f3a"
    url = (
        "https://www.example.com/docs/start?utm_source=newsletter&utm_medium=email"
        f"&utm_campaign=spring&utm_term=shoes&utm_content=hero&email=alice%40mail.test&token={secret_marker}"
    )
    top_level = {
        "utm_source": "toplevel-source", "utm_medium": "toplevel-medium", "utm_campaign": "toplevel-campaign",
        "utm_term": "toplevel-term", "utm_content": "toplevel-content",
    }
    assert site.post(PAGEVIEW, record("2026-04-03", url=url, **top_level)).status_code == 202
    plain = record("2026-04-03", url=f"https://example.com/plain?q={secret_marker}#frag", **top_level)
    assert site.post(PAGEVIEW, plain).status_code == 202
    event = record(
        "2026-04-03", url=f"https://example.com/buy?utm_source=ads&ref={secret_marker}", name="purchase",
        properties={"plan": "pro", "seats": 3, "trial": False}, **top_level,
    )
    assert site.post(EVENT, event).status_code == 202
    site.server.wait_drained()
    site.server.stop()

    data_dir = site.server.data_dir
    con = duckdb.connect(str(data_dir / "footfall.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT pathname, kind, name, utm_source, utm_medium, utm_campaign, utm_term, utm_content, "
            "map_extract(props, 'plan'), map_extract(props, 'seats') FROM events ORDER BY pathname"
        ).fetchall()
        text_columns = [
            name for name, typ in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'"
            ).fetchall() if typ == "VARCHAR" or typ.startswith("MAP")
        ]
        leaks = con.execute(
            "SELECT count(*) FROM events WHERE "
            + " OR ".join(f"CAST({c} AS VARCHAR) ILIKE '%' || ? || '%'" for c in text_columns),
            [secret_marker] * len(text_columns),
        ).fetchone()
        toplevel = con.execute(
            "SELECT count(*) FROM events WHERE "
            + " OR ".join(f"CAST({c} AS VARCHAR) ILIKE '%toplevel%'" for c in text_columns)
        ).fetchone()
    finally:
        con.close()
    assert rows == [
        ("/buy", "event", "purchase", "ads", "", "", "", "", ["pro"], ["3"]),
        ("/docs/start", "pageview", "pageview", "newsletter", "email", "spring", "shoes", "hero", [], []),
        ("/plain", "pageview", "pageview", "", "", "", "", "", [], []),
    ]
    assert leaks == (0,) and toplevel == (0,)
    # Invariant 2: no byte of the dropped query string is anywhere in the data directory.
    for f in data_dir.rglob("*"):
        if f.is_file():
            content = f.read_bytes()
            assert secret_marker.encode() not in content, f
            assert b"alice" not in content, f
            assert b"203.0.113.42" not in content, f


# -- rate limiting -------------------------------------------------------------------------


def test_rate_limit_is_429_with_retry_after(make_server: Any) -> None:
    limited = Site(make_server(env={"FOOTFALL_INGEST_RATE_LIMIT": "2", "FOOTFALL_INGEST_BURST": "3"}))
    try:
        body = record("2025-02-01")
        for _ in range(3):  # the burst
            assert limited.post(PAGEVIEW, body).status_code == 202
        r = limited.post(PAGEVIEW, body)
        assert_error(r, 429)
        retry_after = int(r.headers["Retry-After"])
        assert 1 <= retry_after <= 2
        # One bucket per client IP covers all three ingest endpoints, even unauthenticated.
        assert_error(limited.post(EVENT, {**body, "name": "e"}), 429)
        assert_error(limited.post(BATCH, [{**body, "type": "pageview"}]), 429)
        assert_error(limited.client.post(PAGEVIEW, json=body), 429)
        # Health checks are not ingest and are never limited.
        assert limited.client.get("/healthz").status_code == 200
        time.sleep(math.ceil(retry_after))
        assert limited.post(PAGEVIEW, body).status_code == 202
        assert limited.stats("2025-02-01", "2025-02-01")["totals"]["pageviews"] == 4
    finally:
        limited.client.close()


# -- batch ---------------------------------------------------------------------------------


def test_batch_mixed_records_as_array_and_envelope(live: Site) -> None:
    pv = record("2025-02-10", type="pageview", url="https://example.com/b1")
    ev = record("2025-02-10", type="event", name="signup", url="https://example.com/b1", properties={"p": 1})
    r = live.post(BATCH, [pv, ev, pv])
    assert r.status_code == 202, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"accepted": 3, "rejected": []}
    r = live.post(BATCH, {"events": [ev, pv]})
    assert r.status_code == 202 and r.json() == {"accepted": 2, "rejected": []}, r.text
    assert live.post(BATCH, []).json() == {"accepted": 0, "rejected": []}
    assert live.post(BATCH, {"events": []}).json() == {"accepted": 0, "rejected": []}
    report = live.stats("2025-02-10", "2025-02-10")
    assert report["totals"]["pageviews"] == 3 and report["totals"]["events"] == 2


def test_batch_bad_records_never_drop_the_good_ones(live: Site) -> None:
    good = record("2025-02-11", type="pageview")
    records: list[Any] = [
        good,                                                       # 0 ok
        {**good, "visitor_ip": "nope"},                             # 1 visitor_ip
        record("2025-02-11", type="event", name="e"),               # 2 ok
        {**good, "type": "event"},                                  # 3 name
        {**good, "type": "click"},                                  # 4 type
        {k: v for k, v in good.items() if k != "type"},             # 5 type missing
        {**good, "url": "https://unknown.example/"},                # 6 unknown site
        {**good, "url": "https://other.org/"},                      # 7 site the token may not use
        {**good, "timestamp": "2025-02-11T12:00:00"},               # 8 no offset
        42,                                                         # 9 not an object
        {**good, "dnt": True},                                      # 10 accepted, not stored
        {**good, "properties": {"a": {"b": 1}}},                    # 11 nested property
        record("2025-02-11", type="event", name="f", url="https://www.EXAMPLE.com/z"),  # 12 ok
    ]
    r = live.post(BATCH, {"events": records})
    assert r.status_code == 202, r.text
    result = r.json()
    rejected = {x["index"]: x for x in result["rejected"]}
    assert all(set(x) == {"index", "error", "field"} and x["error"] for x in result["rejected"])
    assert {i: x["field"] for i, x in rejected.items()} == {
        1: "visitor_ip", 3: "name", 4: "type", 5: "type", 6: "url", 7: "url", 8: "timestamp",
        9: None, 11: "properties",
    }
    assert result["accepted"] == 4
    report = live.stats("2025-02-11", "2025-02-11")
    assert report["totals"]["pageviews"] == 1 and report["totals"]["events"] == 2


def test_batch_over_1000_records_is_422(live: Site) -> None:
    before = records_written(live)
    one = record("2025-02-12", type="pageview")
    assert_error(live.post(BATCH, [one] * 1001), 422, "events")
    assert_error(live.post(BATCH, {"events": [one] * 1001}), 422, "events")
    assert records_written(live) == before
    r = live.post(BATCH, [one] * 1000)
    assert r.status_code == 202 and r.json() == {"accepted": 1000, "rejected": []}
    assert live.stats("2025-02-12", "2025-02-12")["totals"]["pageviews"] == 1000


@pytest.mark.parametrize(
    ("content", "field"),
    [(b'{"events": {}}', "events"), (b'{"events": "x"}', "events"), (b'{"records": []}', "events"), (b"7", None)],
)
def test_batch_wrong_envelope_is_422(live: Site, content: bytes, field: str | None) -> None:
    r = post_raw(live, BATCH, content, live.headers())
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["error"]


# -- health and the OpenAPI document -------------------------------------------------------


def test_healthz_and_readyz(live: Site) -> None:
    health = live.client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = live.client.get("/readyz")
    assert ready.status_code == 200
    report = ready.json()
    assert report["status"] == "ready"
    assert isinstance(report["writer"]["lag_seconds"], int | float) and report["writer"]["lag_seconds"] >= 0
    assert report["writer"]["last_error"] is None


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def test_openapi_documents_the_ingest_endpoints(live: Site) -> None:
    r = live.client.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    for path in (PAGEVIEW, EVENT, BATCH):
        op = doc["paths"][path]["post"]
        assert op["requestBody"]["required"] is True
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert {"202", "400", "401", "403", "404", "413", "415", "422", "429"} <= set(op["responses"])
        error = _resolve(doc, op["responses"]["422"]["content"]["application/json"]["schema"])
        assert set(error["required"]) == {"error", "field"}
        assert {"bearer", "apiKey"} <= {name for req in op["security"] for name in req}
        if path == BATCH:
            variants = [_resolve(doc, s) for s in body["anyOf"]]
            array = next(v for v in variants if v.get("type") == "array")
            item = _resolve(doc, array["items"])
            assert "type" in item["required"] and set(item["properties"]["type"]["enum"]) == {"pageview", "event"}
            envelope = next(v for v in variants if v.get("type") == "object")
            assert envelope["required"] == ["events"]
            result = _resolve(doc, op["responses"]["202"]["content"]["application/json"]["schema"])
            assert set(result["properties"]) == {"accepted", "rejected"}
        else:
            schema = _resolve(doc, body)
            assert {"url", "timestamp", "visitor_ip", "user_agent"} <= set(schema["required"])
            assert {"name", "properties", "dnt", "session_id", "page_id"} <= set(schema["properties"])
            assert "content" not in op["responses"]["202"]  # empty body
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-Api-Key"}
    assert schemes["bearer"]["scheme"] == "bearer"


def test_unknown_route_and_method_are_json_errors(live: Site) -> None:
    r = live.client.get(PAGEVIEW)
    assert r.status_code == 405 and "error" in r.json()
    r = live.client.post("/api/ingest/server/nope", json={})
    assert r.status_code == 404 and "error" in r.json()
