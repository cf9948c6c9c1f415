"""Invariant 2, no personal data at rest: scan the bytes of every file the server wrote.

Visitor IPs, user agents, and query strings outside the UTM allow-list are sent through every
path (single records, batches, custom events, rejected and do-not-track records, and every
other contract: collect, /e/, the tracker's /ingest, Umami, Segment, PostHog), then the
data directory is scanned after a graceful stop and after a kill -9 (spool and WAL left
behind), and the store is read back through SQL too, because DuckDB may compress strings
so that a byte scan alone could miss them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from footfall.enrich.visitors import SaltRing
from footfall.store.duckdb import DuckDBStore
from tests.conftest import Server, Site, cli_json

IPS = [
    "198.51.100.77",
    "203.0.113.199",
    "2001:db8:85a3::8a2e:370:7334",
    "2001:0db8:0000:0000:0000:ff00:0042:8329",
    "::ffff:198.51.100.201",
    "fe80::1234:5678:9abc:def0",
]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; ZQXUA-ALPHA-7731) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0 ZQXUA-BRAVO-2292",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) ZQXUA-CHARLIE-4410 Mobile/15E148",
]
# Rejected and do-not-track records: nothing of them may be kept either.
REJECTED_IP, REJECTED_AGENT = "198.51.100.250", "ZQXUA-REJECTED-5150"
DNT_IP, DNT_AGENT = "198.51.100.251", "ZQXUA-DNT-6160"
BAD_IP = "not-an-ip-ZQXBADIP"

PAGES = [
    "https://example.com/signup/zqx-done?email=alice.zqx@example.org&token=SECRETTOKEN123"
    "&utm_source=zqx-newsletter&utm_campaign=zqx-spring",
    "https://www.example.com/account?session=QSVALUE-9981&email=alice.zqx%40example.org#access_token=FRAGSECRET-42",
    "https://example.com/search?q=zqx+private+search+words&utm_medium=zqx-mail",
]
REFERRERS = [
    "https://www.google.com/search?q=zqx+private+referrer+terms&sourceid=REFSECRET-5521",
    "https://news.ycombinator.com/item?id=REFSECRET-777",
    "https://mail.example.net/inbox?user=bob.zqx@example.net",
    "",
]
SECRETS = [
    "alice.zqx@example.org",
    "alice.zqx%40example.org",
    "alice.zqx",
    "bob.zqx",
    "SECRETTOKEN123",
    "QSVALUE-9981",
    "FRAGSECRET",
    "REFSECRET",
    "zqx+private",
    "zqx private",
    "private search words",
    "private referrer terms",
    "ZQXBADIP",
    "ZQXUA",
]
# Allowed through: the campaign values and the path, the positive controls of the scan.
KEPT = ["zqx-newsletter", "zqx-spring", "/signup/zqx-done"]


def forbidden() -> list[str]:
    words = {*SECRETS, *AGENTS, REJECTED_IP, REJECTED_AGENT, DNT_IP, DNT_AGENT, BAD_IP}
    for ip in [*IPS, REJECTED_IP, DNT_IP]:
        words.add(ip)
        words.add(str(ipaddress.ip_address(ip)))  # the normalized form enrichment sees
        words.add(ipaddress.ip_address(ip).exploded)
    return sorted(words)


def packed_v6() -> list[bytes]:
    """16-byte binary IPv6 addresses: long enough that a chance match cannot happen."""
    return [ipaddress.ip_address(ip).packed for ip in IPS if ipaddress.ip_address(ip).version == 6]


def recent() -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)).isoformat().replace("+00:00", "Z")


def records() -> list[dict[str, Any]]:
    out = []
    i = 0
    for ip in IPS:
        for agent in AGENTS:
            out.append({
                "url": PAGES[i % len(PAGES)],
                "timestamp": recent(),
                "visitor_ip": ip,
                "user_agent": agent,
                "referrer": REFERRERS[i % len(REFERRERS)],
                "language": "de-DE",
                "screen_width": 1280,
            })
            i += 1
    return out


def send_everything(site: Site) -> None:
    recs = records()
    for rec in recs[: len(recs) // 2]:
        r = site.post("/api/ingest/server/pageview", rec)
        assert r.status_code == 202, r.text
    r = site.post("/api/ingest/server/event", {**recs[0], "name": "Signup", "properties": {"plan": "pro"}})
    assert r.status_code == 202, r.text
    batch = [{"type": "pageview", **rec} for rec in recs[len(recs) // 2 :]]
    batch.append({"type": "pageview", "url": PAGES[0], "timestamp": "not-a-time",
                  "visitor_ip": REJECTED_IP, "user_agent": REJECTED_AGENT})
    batch.append({"type": "pageview", "url": PAGES[1], "timestamp": recent(),
                  "visitor_ip": DNT_IP, "user_agent": DNT_AGENT, "dnt": True})
    r = site.post("/api/ingest/server/batch", batch)
    assert r.status_code == 202, r.text
    result = r.json()
    assert result["accepted"] == len(batch) - 1 and [x["index"] for x in result["rejected"]] == [len(batch) - 2]
    r = site.post("/api/ingest/server/pageview", {**recs[0], "visitor_ip": BAD_IP})
    assert r.status_code == 422 and r.json()["field"] == "visitor_ip"
    send_through_other_contracts(site)


# Every other contract, one pageview per address, each carrying an address, an agent and a
# query string. The server trusts loopback as a proxy here, so X-Forwarded-For names the
# visitor on the page-facing endpoints.
OTHER_CONTRACTS = 6
OTHER_AGENTS = [a for a in AGENTS if not a.startswith("curl/")]


_collectors: dict[Path, str] = {}  # data directory -> its collect:write token


def send_through_other_contracts(site: Site) -> None:
    data = site.server.data_dir
    code = cli_json(data, "sites", "show", "example.com")["tracking_id"]
    if data not in _collectors:
        created = cli_json(data, "tokens", "create", "--name", "collector", "--scope", "collect:write")
        _collectors[data] = created["token"]
    for i, ip in enumerate(IPS):
        agent = OTHER_AGENTS[i % len(OTHER_AGENTS)]
        page, referrer = PAGES[i % len(PAGES)], REFERRERS[i % len(REFERRERS)]
        browser = {"User-Agent": agent, "X-Forwarded-For": ip}
        collect = {"tracking_id": code, "url": page, "pathname": "/" + page.split("/", 3)[3],
                   "referrer": referrer, "ip": ip, "user_agent": agent}
        umami = {"type": "event", "payload": {"website": code, "url": page, "referrer": referrer}}
        segment = {"writeKey": code, "batch": [{"type": "page", "context": {
            "ip": ip, "userAgent": agent, "page": {"url": page, "referrer": referrer}}}]}
        posthog = {"api_key": code, "batch": [{"event": "$pageview", "properties": {
            "$ip": ip, "$raw_user_agent": agent, "$current_url": page, "$referrer": referrer}}]}
        answers = [
            site.post("/api/v1/collect/pageview", collect, _collectors[data]),
            site.client.post(f"/e/{code}", json={"type": "pageview", "url": page, "referrer": referrer},
                             headers=browser),
            site.client.post("/ingest", json={"url": page, "referrer": referrer}, headers=browser),
            site.client.post("/api/send", json=umami, headers=browser),
            site.client.post("/v1/batch", json=segment),
            site.client.post("/batch/", json=posthog),
        ]
        assert len(answers) == OTHER_CONTRACTS
        assert all(r.status_code in (200, 202) for r in answers), [(r.status_code, r.text) for r in answers]


def files_under(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if stat.S_ISREG(path.lstat().st_mode):  # skips the control socket left by a kill
            yield path


def scan(server: Server, stage: str) -> bytes:
    """Assert no file holds a forbidden string; returns all bytes seen, for the positive checks."""
    seen = []
    words = [w.encode() for w in forbidden()] + packed_v6()
    leaks = []
    for path in [*files_under(server.data_dir), server.log_path]:
        data = path.read_bytes()
        seen.append(data)
        leaks += [f"{path.relative_to(server.data_dir.parent)}: {w!r}" for w in words if w in data]
    assert not leaks, f"personal data at rest after {stage}:\n" + "\n".join(leaks)
    return b"".join(seen)


def scan_store(server: Server) -> None:
    """Every cell of every table, decompressed by DuckDB itself."""
    con = duckdb.connect(str(server.data_dir / "footfall.duckdb"), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        text = "\n".join(repr(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
    finally:
        con.close()
    assert "events" in tables
    leaks = [w for w in forbidden() if w in text]
    assert not leaks, f"personal data in the store: {leaks}"
    for kept in KEPT:  # the allow-listed values did arrive, so the scan looked at real rows
        assert kept in text


@pytest.fixture(params=["info", "debug"])
def private_site(request: pytest.FixtureRequest, make_server: Any) -> Iterator[Site]:
    site = Site(make_server(env={"FOOTFALL_LOG_LEVEL": request.param, "FOOTFALL_TRUSTED_PROXIES": "127.0.0.1"}))
    yield site
    site.client.close()


def test_no_ip_agent_or_query_string_in_any_file(private_site: Site) -> None:
    site, server = private_site, private_site.server

    send_everything(site)
    server.wait_drained()
    server.stop()
    scan(server, "a graceful stop")
    scan_store(server)

    server.start()
    send_everything(site)
    server.kill()  # acknowledged events wait in the spool; the WAL may be unflushed
    everything = scan(server, "kill -9")
    # Positive control: the fresh events sit uncompressed in the spool or the WAL now, so
    # the byte scan must see the values that are allowed through.
    assert all(kept.encode() in everything for kept in KEPT)

    server.start()
    server.wait_drained()
    server.stop()
    scan(server, "restart after kill -9")
    scan_store(server)

    con = duckdb.connect(str(server.data_dir / "footfall.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM events").fetchone()
    finally:
        con.close()
    # The pageviews and the custom event are kept; curl's hits are counted as a bot's, and
    # DNT and rejected records leave nothing.
    bots = sum(1 for rec in records() if rec["user_agent"].startswith("curl/"))
    per_round = len(records()) - bots + 1 + OTHER_CONTRACTS * len(IPS)
    assert row is not None and row[0] == 2 * per_round
    shown = cli_json(server.data_dir, "sites", "show", "example.com")
    assert shown["not_counted"] == {"bot": 2 * bots}, shown


def test_a_deleted_salt_is_in_no_file(tmp_path: Path) -> None:
    """Two days on, a day's salt is gone from every file of the data directory, so nobody
    can recompute that day's visitor hashes from an IP and a user agent."""
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    ring = SaltRing()
    day0 = dt.date(2026, 4, 1)
    ring.rotate(store, today=day0)
    old = store.load_salts()
    ring.visitor_id(1, 0, "198.51.100.7", "Mozilla/5.0")  # used, as in a real day
    ring.rotate(store, today=day0 + dt.timedelta(days=3))
    assert not set(old) & set(store.load_salts())
    store.close()
    gone = [form for salt in old.values() for form in (salt, salt.hex().encode(), salt.hex().upper().encode())]
    for path in files_under(tmp_path):
        data = path.read_bytes()
        leaks = [path.name for form in gone if form in data]
        assert not leaks, f"a deleted salt is still in {leaks}"
    assert (tmp_path / "salts.json").exists()  # the scan did look at the salts' own file
