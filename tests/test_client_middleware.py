"""The Python client's middleware end to end: a Flask, a FastAPI and a Django app, served for real
on loopback behind a "proxy" (the test, on 127.0.0.1, sends X-Forwarded-For), each sending its
pageviews to a real Footfall server. The stored rows must say which pages were viewed, from
which device and country, and nothing else: no static asset, API call, POST, error page,
redirect, predicate-rejected page, or page seen with DNT or Sec-GPC.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from footfall_client import AsyncFootfall, Backoff, Footfall
from footfall_client.django import client_from_settings

from tests import client_apps
from tests.conftest import Site, free_port
from tests.test_enrichment_e2e import CHROME_WINDOWS, SAFARI_IPHONE, rows

PAGEVIEWS = ("SELECT pathname, device, browser, country, utm_source, source, language, source_api FROM events "
             "WHERE kind = 'pageview' ORDER BY pathname")


def drive(base: str, visitor_ip: str, agent: str) -> None:
    """The same visit on every app: two pages to count, and every kind of request not to."""
    headers = {"Host": "example.com", "User-Agent": agent, "X-Forwarded-For": visitor_ip,
               "Accept-Language": "de-DE,de;q=0.9,en;q=0.5", "Referer": "https://news.ycombinator.com/"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        for path in ("/", "/pricing?utm_source=newsletter&email=someone%40example.com", "/api/data",
                     "/static/app.css", "/private", "/form"):
            assert http.get(path).status_code == 200, path
        assert http.post("/form").status_code == 200
        assert http.get("/missing").status_code == 404
        assert http.get("/moved").status_code in (302, 307)
        assert http.get("/form", headers={"DNT": "1"}).status_code == 200
        assert http.get("/form", headers={"Sec-GPC": "1"}).status_code == 200
        assert http.get("/form", headers={"Sec-Purpose": "prefetch"}).status_code == 200


def expected(device: str, browser: str, country: str) -> list[tuple[str, ...]]:
    # The referrer names the source, unless a campaign tag does.
    return [(path, device, browser, country, utm, source, "de-DE", "server") for path, utm, source in
            (("/", "", "Hacker News"), ("/form", "", "Hacker News"), ("/pricing", "newsletter", "Newsletter"))]


def test_flask_pageviews_arrive_with_path_device_and_country(site: Site) -> None:
    client = Footfall(site.server.url, site.token)
    port = free_port()
    with client_apps.serve_wsgi(client_apps.flask_app(client), port):
        drive(f"http://127.0.0.1:{port}", "193.0.6.139", SAFARI_IPHONE)
    assert client.flush(timeout=20)
    assert client.stats.sent == 3 and client.stats.dropped_queue_full == client.stats.dropped_failed == 0
    client.close()
    assert rows(site, PAGEVIEWS) == expected("mobile", "Safari", "NL")


def test_fastapi_pageviews_arrive_with_path_device_and_country(site: Site) -> None:
    client = AsyncFootfall(site.server.url, site.token)
    port = free_port()
    app = client_apps.fastapi_app(client, base_url="https://example.com")
    with client_apps.serve_asgi(app, port):
        drive(f"http://127.0.0.1:{port}", "133.11.0.1", CHROME_WINDOWS)
    # uvicorn's shutdown ran the app's lifespan, which closed the client: its queue is sent.
    assert client.stats.sent == 3 and client.stats.queued == 0 and client.stats.dropped_failed == 0
    assert rows(site, PAGEVIEWS) == expected("desktop", "Chrome", "JP")


def test_litestar_pageviews_arrive_with_path_device_and_country(site: Site) -> None:
    client = Footfall(site.server.url, site.token)
    port = free_port()
    with client_apps.serve_asgi(client_apps.litestar_app(client), port):
        drive(f"http://127.0.0.1:{port}", "81.2.69.142", CHROME_WINDOWS)
    assert client.flush(timeout=20)
    assert client.stats.sent == 3
    client.close()
    assert rows(site, PAGEVIEWS) == expected("desktop", "Chrome", "GB")


def test_django_pageviews_arrive_with_path_device_and_country(site: Site) -> None:
    # The visitor's own X-Forwarded-For claims 8.8.8.8; the trusted proxy appended the real one.
    settings = {"URL": site.server.url, "TOKEN": site.token, "TRUSTED_PROXIES": ["127.0.0.1/32", "::1/128"]}
    port = free_port()
    with client_apps.serve_wsgi(client_apps.django_app(settings), port):
        drive(f"http://127.0.0.1:{port}", "8.8.8.8, 200.160.2.3", SAFARI_IPHONE)
    client = client_from_settings(settings)
    assert isinstance(client, Footfall)
    assert client.flush(timeout=20)
    assert client.stats.sent == 3
    client.close()
    assert rows(site, PAGEVIEWS) == expected("mobile", "Safari", "BR")


def test_django_under_asgi_records_from_its_async_path(site: Site) -> None:
    """Under ASGI the middleware runs async (no sync-async hop); the address is uvicorn's, which
    resolved X-Forwarded-For from its trusted 127.0.0.1."""
    client = Footfall(site.server.url, site.token)
    port = free_port()
    with client_apps.serve_asgi(client_apps.django_app({"CLIENT": client}, asgi=True), port):
        drive(f"http://127.0.0.1:{port}", "200.160.2.3", CHROME_WINDOWS)
    assert client.flush(timeout=20)
    assert client.stats.sent == 3
    client.close()
    assert rows(site, PAGEVIEWS) == expected("desktop", "Chrome", "BR")


def test_untrusted_forwarded_for_is_not_the_visitor(site: Site) -> None:
    """Without TRUSTED_PROXIES, Django's REMOTE_ADDR (loopback, never located) is the visitor,
    whatever X-Forwarded-For says."""
    settings = {"CLIENT": Footfall(site.server.url, site.token)}
    port = free_port()
    with client_apps.serve_wsgi(client_apps.django_app(settings), port):
        drive(f"http://127.0.0.1:{port}", "200.160.2.3", SAFARI_IPHONE)
    assert settings["CLIENT"].flush(timeout=20)
    settings["CLIENT"].close()
    assert rows(site, PAGEVIEWS) == expected("mobile", "Safari", "")


@contextlib.contextmanager
def flask_with(client: Footfall) -> Iterator[Callable[[str], float]]:
    """A served Flask app; yields get(path) -> seconds the app took to answer."""
    port = free_port()
    with client_apps.serve_wsgi(client_apps.flask_app(client), port), httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=10,
        headers={"Host": "example.com", "User-Agent": CHROME_WINDOWS, "X-Forwarded-For": "81.2.69.142"},
    ) as http:

        def get(path: str) -> float:
            start = time.perf_counter()
            assert http.get(path).status_code == 200
            return time.perf_counter() - start

        yield get


def test_server_down_app_keeps_its_speed_and_events_arrive_once_when_it_is_back(site: Site) -> None:
    client = Footfall(site.server.url, site.token, batch_size=10, flush_interval=0.05, max_queue=50,
                      max_retries=10_000, backoff=Backoff(base=0.05, cap=0.2))
    with flask_with(client) as get:
        up = [get(f"/down/{n}") for n in range(1000, 1060)]
        assert client.flush(timeout=20) and client.stats.sent == 60

        site.server.stop()
        down = [get(f"/down/{n}") for n in range(80)]
        time.sleep(0.5)  # the client keeps retrying in the background
        stats = client.stats
        # The queue holds 50, plus the one batch of 10 the sending thread retries: the newest
        # 20 to 30 were dropped, and counted. Nothing else is lost.
        dropped = stats.dropped_queue_full
        assert 20 <= dropped <= 30 and stats.queued == 50, stats
        kept = 80 - dropped
        assert stats.retries >= 2 and stats.dropped_failed == 0 and stats.sent == 60, stats
        assert stats.last_error and "connection" in stats.last_error.lower(), stats
        # Full speed: the app answers as it did with the server up (generous bounds: a shared CI box).
        assert statistics.median(down) < 3 * statistics.median(up) + 0.005, (statistics.median(down), up)
        assert max(down) < 0.5, max(down)

        site.server.start()  # the same port: the client's retries now succeed
        assert client.flush(timeout=30), client.stats
    stats = client.stats
    assert stats.sent == 60 + kept and stats.dropped_failed == 0 and stats.queued == 0, stats
    client.close()
    got = rows(site, "SELECT pathname, count(*) FROM events GROUP BY 1")
    assert sorted(got) == sorted((f"/down/{n}", 1) for n in [*range(kept), *range(1000, 1060)])


def test_predicate_and_privacy_switches(site: Site) -> None:
    """honour_privacy=False records DNT visitors; static_prefixes/suffixes are the user's."""
    client = Footfall(site.server.url, site.token)
    port = free_port()
    app = client_apps.flask_app(client, honour_privacy=False, static_prefixes=["/form"], static_suffixes=[])
    with client_apps.serve_wsgi(app, port), httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Host": "example.com", "User-Agent": CHROME_WINDOWS}
    ) as http:
        assert http.get("/", headers={"DNT": "1", "Sec-GPC": "1"}).status_code == 200
        assert http.get("/form").status_code == 200
    assert client.flush(timeout=20)
    client.close()
    assert rows(site, "SELECT pathname, country FROM events") == [("/", "")]


@pytest.fixture(autouse=True)
def _no_stray_clients() -> Iterator[None]:
    yield
    from footfall_client import django as django_middleware

    for made in django_middleware._clients.values():
        made.close(timeout=0)
    django_middleware._clients.clear()
