"""Enrichment and ingest helpers as pure functions, with a real DuckDB for salts."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest

from footfall.enrich.urls import split_page_url, split_referrer
from footfall.enrich.visitors import SaltRing, day_number
from footfall.ingest.http import client_ip
from footfall.ingest.ratelimit import TokenBuckets
from footfall.store.duckdb import DuckDBStore


def _us(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1_000_000)


def test_salts_rotate_daily_and_are_deleted_two_days_later(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "f.duckdb")
    ring = SaltRing()
    d0 = dt.date(2026, 4, 3)
    ring.rotate(store, today=d0)
    assert sorted(store.load_salts()) == [day_number(d0) - 1, day_number(d0), day_number(d0) + 1]
    first = store.load_salts()[day_number(d0)]
    ring.rotate(store, today=d0 + dt.timedelta(days=1))
    assert store.load_salts()[day_number(d0)] == first  # kept the day after
    ring.rotate(store, today=d0 + dt.timedelta(days=2))
    assert day_number(d0) not in store.load_salts()  # deleted two days later
    assert min(store.load_salts()) == day_number(d0) + 1
    store.close()


def test_visitor_hash_is_daily_and_per_site(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "f.duckdb")
    ring = SaltRing()
    ring.rotate(store, today=dt.date(2026, 4, 3))
    a = ring.visitor_id(1, _us("2026-04-03T10:00:00+00:00"), "203.0.113.42", "UA")
    assert a == ring.visitor_id(1, _us("2026-04-03T23:59:00+00:00"), "203.0.113.42", "UA")
    assert a != ring.visitor_id(2, _us("2026-04-03T10:00:00+00:00"), "203.0.113.42", "UA")
    assert a != ring.visitor_id(1, _us("2026-04-03T10:00:00+00:00"), "203.0.113.43", "UA")
    assert a != ring.visitor_id(1, _us("2026-04-04T00:00:01+00:00"), "203.0.113.42", "UA")
    assert 0 <= a < 2**64
    # Historical: older than the oldest kept salt, stable within its day, distinct across days.
    old1 = ring.visitor_id(1, _us("2025-01-01T08:00:00+00:00"), "203.0.113.42", "UA")
    assert old1 == ring.visitor_id(1, _us("2025-01-01T20:00:00+00:00"), "203.0.113.42", "UA")
    assert old1 != ring.visitor_id(1, _us("2025-01-02T08:00:00+00:00"), "203.0.113.42", "UA")
    # A new ring reading the same store agrees: salts are shared through the store.
    other = SaltRing()
    other.rotate(store, today=dt.date(2026, 4, 3))
    assert other.visitor_id(1, _us("2026-04-03T10:00:00+00:00"), "203.0.113.42", "UA") == a
    store.close()


def test_page_url_cleaning_keeps_only_utm() -> None:
    page = split_page_url("HTTPS://WWW.Example.COM/docs/start?utm_source=news&email=a@b.c&utm_medium=mail#x")
    assert page.hostname == "example.com"
    assert page.pathname == "/docs/start"
    assert page.utm == {"utm_source": "news", "utm_medium": "mail"}
    assert split_page_url("https://example.com").pathname == "/"
    for bad in ["example.com/x", "ftp://example.com/", "https:///path", "https://[::1/"]:
        with pytest.raises(ValueError):
            split_page_url(bad)


def test_referrer_keeps_host_and_path_only() -> None:
    assert split_referrer("https://www.google.com/search?q=secret") == ("google.com", "/search")
    assert split_referrer("") == ("", "")
    assert split_referrer("not a url") == ("", "")


def test_token_bucket_rate_and_burst() -> None:
    b = TokenBuckets(rate=20, burst=40)
    assert all(b.take("ip", now=0.0) == 0 for _ in range(40))
    wait = b.take("ip", now=0.0)
    assert wait == pytest.approx(0.05)
    assert b.take("ip", now=0.05) == 0  # one token refilled
    assert b.take("other", now=0.0) == 0  # per client
    assert TokenBuckets(rate=0, burst=1).take("ip") == 0  # off


def test_client_ip_trusts_forwarded_for_only_from_trusted_proxies() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_ip("198.51.100.7", "203.0.113.9", ()) == "198.51.100.7"
    assert client_ip("198.51.100.7", "203.0.113.9", proxies) == "198.51.100.7"
    assert client_ip("10.0.0.2", "203.0.113.9", proxies) == "203.0.113.9"
    # A client-forged left-most entry is skipped: the right-most untrusted hop wins.
    assert client_ip("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.5", proxies) == "203.0.113.9"
    assert client_ip("10.0.0.2", "garbage", proxies) == "10.0.0.2"
