"""The Python client (clients/python) against a real Footfall server: batching by size and time,
flush and close, the exit hook, sync mode's errors, the bounded queue, retries with backoff and
Retry-After, and the asyncio variant with the same behaviour."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import random
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest
from footfall_client import AsyncFootfall, Backoff, Footfall, FootfallError, records
from footfall_client.transport import Transport, retry_after

from tests.conftest import CLIENT_SRC, Site, free_port
from tests.test_enrichment_e2e import FIREFOX_LINUX, rows

PAGE = "https://example.com"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def nowhere() -> str:
    """A loopback URL where nothing listens: every request fails to connect."""
    return f"http://127.0.0.1:{free_port()}"


def test_a_full_batch_goes_at_once_and_the_rest_on_flush(site: Site) -> None:
    client = Footfall(site.server.url, site.token, batch_size=5, flush_interval=60)
    for n in range(5):
        assert client.pageview(f"{PAGE}/a/{n}", "8.8.8.8", FIREFOX_LINUX)
    wait_for(lambda: client.stats.sent == 5)
    assert client.stats.requests == 1
    for n in range(3):
        client.pageview(f"{PAGE}/b/{n}", "8.8.8.8", FIREFOX_LINUX)
    time.sleep(0.3)
    assert client.stats.queued == 3 and client.stats.sent == 5  # not a full batch, not yet time
    assert client.flush(timeout=10)
    assert client.stats.sent == 8 and client.stats.requests == 2 and client.stats.queued == 0
    client.close()
    assert len(rows(site, "SELECT pathname FROM events")) == 8


def test_a_partial_batch_goes_after_the_interval(site: Site) -> None:
    client = Footfall(site.server.url, site.token, batch_size=100, flush_interval=0.2)
    client.event("signup", f"{PAGE}/join", {"plan": "pro"}, visitor_ip="8.8.8.8", user_agent=FIREFOX_LINUX)
    client.event("webhook", f"{PAGE}/billing")  # no visitor: one anonymous server visitor
    wait_for(lambda: client.stats.sent == 2, timeout=5)
    assert client.stats.requests == 1
    client.close()
    got = rows(site, "SELECT name, pathname, country, props FROM events ORDER BY name")
    assert got == [("signup", "/join", "US", {"plan": "pro"}), ("webhook", "/billing", "", {})]


def test_records_still_queued_at_exit_are_sent(site: Site) -> None:
    """The atexit hooks send what a script queued and never flushed, for both clients."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(CLIENT_SRC)!r})
        from footfall_client import AsyncFootfall, Footfall
        url, token = sys.argv[1], sys.argv[2]
        client = Footfall(url, token, flush_interval=600)
        for n in range(3):
            client.pageview(f"https://example.com/exit/thread/{{n}}", "8.8.8.8", "{FIREFOX_LINUX}")
        aclient = AsyncFootfall(url, token, flush_interval=600)
        async def main():
            for n in range(2):
                await aclient.pageview(f"https://example.com/exit/async/{{n}}", "8.8.8.8", "{FIREFOX_LINUX}")
        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script, site.server.url, site.token], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = rows(site, "SELECT pathname FROM events ORDER BY pathname")
    assert got == [("/exit/async/0",), ("/exit/async/1",), ("/exit/thread/0",), ("/exit/thread/1",),
                   ("/exit/thread/2",)]


def test_sync_mode_sends_in_the_callers_thread_and_raises(site: Site) -> None:
    client = Footfall(site.server.url, site.token, sync=True)
    assert client.pageview(f"{PAGE}/sync", "8.8.8.8", FIREFOX_LINUX)
    assert client.stats.sent == 1 and client.stats.queued == 0
    with pytest.raises(FootfallError) as bad_ip:
        client.pageview(f"{PAGE}/x", "not-an-ip", FIREFOX_LINUX)
    assert bad_ip.value.field == "visitor_ip" and "IPv4 or IPv6" in str(bad_ip.value)
    with pytest.raises(FootfallError) as unknown_site:
        client.pageview("https://elsewhere.example/", "8.8.8.8", FIREFOX_LINUX)
    assert unknown_site.value.field == "url"
    with pytest.raises(FootfallError) as wrong_token:
        Footfall(site.server.url, "wrong", sync=True).event("x", f"{PAGE}/")
    assert wrong_token.value.status == 401 and not wrong_token.value.retryable
    with pytest.raises(FootfallError) as down:
        Footfall(nowhere(), site.token, sync=True).pageview(f"{PAGE}/", "8.8.8.8", FIREFOX_LINUX)
    assert down.value.status is None and down.value.retryable
    with pytest.raises(ValueError, match="timezone"):
        client.pageview(f"{PAGE}/", "8.8.8.8", FIREFOX_LINUX, timestamp=dt.datetime(2026, 1, 1))
    client.close()
    assert rows(site, "SELECT pathname FROM events") == [("/sync",)]


def test_a_past_timestamp_is_kept(site: Site) -> None:
    client = Footfall(site.server.url, site.token, sync=True)
    moment = dt.datetime(2026, 4, 3, 12, 30, 45, 250_000, tzinfo=dt.UTC)
    client.pageview(f"{PAGE}/old", "8.8.8.8", FIREFOX_LINUX, timestamp=moment)
    client.pageview(f"{PAGE}/older", "8.8.8.8", FIREFOX_LINUX, timestamp=moment.timestamp() - 60)
    client.close()
    got = rows(site, "SELECT pathname, ts FROM events ORDER BY ts")
    assert [path for path, _ in got] == ["/older", "/old"]


def test_refused_records_and_refused_requests_are_counted_not_retried(site: Site) -> None:
    client = Footfall(site.server.url, site.token, flush_interval=60)
    client.pageview(f"{PAGE}/good", "8.8.8.8", FIREFOX_LINUX)
    client.pageview(f"{PAGE}/bad", "999.1.1.1", FIREFOX_LINUX)
    assert client.flush(timeout=10)
    stats = client.stats
    assert (stats.sent, stats.rejected, stats.dropped_failed, stats.retries) == (1, 1, 0, 0), stats
    assert stats.last_error and "visitor_ip" in stats.last_error

    wrong = Footfall(site.server.url, "wrong-token", flush_interval=60)
    for n in range(4):
        wrong.pageview(f"{PAGE}/{n}", "8.8.8.8", FIREFOX_LINUX)
    assert wrong.flush(timeout=10)
    stats = wrong.stats
    assert (stats.sent, stats.dropped_failed, stats.retries, stats.requests) == (0, 4, 0, 1), stats
    assert stats.last_error and "401" in stats.last_error
    # A property JSON cannot encode drops that record only; the sending thread goes on.
    client.event("bad", f"{PAGE}/x", {"when": dt.datetime.now(dt.UTC)})  # type: ignore[dict-item]
    client.event("fine", f"{PAGE}/y", {"n": 1})
    assert client.flush(timeout=10)
    stats = client.stats
    assert (stats.sent, stats.dropped_failed) == (2, 1) and "JSON" in (stats.last_error or ""), stats
    client.close()
    wrong.close()
    with pytest.raises(ValueError, match="token"):
        Footfall(site.server.url, "two words")


def test_the_queue_is_bounded_and_never_blocks() -> None:
    client = Footfall(nowhere(), "token", batch_size=10, max_queue=100, max_retries=10_000,
                      backoff=Backoff(base=0.05, cap=0.1))
    slowest = 0.0
    for n in range(1000):
        start = time.perf_counter()
        client.pageview(f"{PAGE}/{n}", "8.8.8.8", FIREFOX_LINUX)
        slowest = max(slowest, time.perf_counter() - start)
    assert slowest < 0.05, slowest  # never waits on the network or the full queue
    time.sleep(0.3)
    stats = client.stats
    # 100 queued, plus the batch of 10 the sending thread may have taken (and retries) early.
    assert 90 <= stats.queued <= 100 and 890 <= stats.dropped_queue_full <= 900, stats
    assert stats.retries >= 1 and stats.sent == 0 and stats.dropped_failed == 0, stats
    started = time.monotonic()
    client.close(timeout=0.3)
    assert time.monotonic() - started < 2
    stats = client.stats
    # Every record is in exactly one counter: refused at the door, or given up on at close.
    assert stats.dropped_queue_full + stats.dropped_failed == 1000 and stats.queued == 0, stats
    assert not client.pageview(f"{PAGE}/late", "8.8.8.8", FIREFOX_LINUX)  # closed: refused, counted
    assert client.stats.dropped_queue_full + client.stats.dropped_failed == 1001


def test_retries_honour_retry_after_on_429(make_server: Any) -> None:
    server = make_server(env={"FOOTFALL_INGEST_RATE_LIMIT": "0.5", "FOOTFALL_INGEST_BURST": "1"})
    site = Site(server)
    client = Footfall(server.url, site.token, batch_size=1, flush_interval=60, backoff=Backoff(base=0.01, cap=0.02))
    started = time.monotonic()
    client.pageview(f"{PAGE}/1", "8.8.8.8", FIREFOX_LINUX)
    client.pageview(f"{PAGE}/2", "8.8.8.8", FIREFOX_LINUX)
    assert client.flush(timeout=20)
    elapsed = time.monotonic() - started
    stats = client.stats
    assert stats.sent == 2 and stats.retries >= 1 and stats.dropped_failed == 0, stats
    assert stats.last_error and "429" in stats.last_error
    # The server said to wait (2 s at 0.5/s); the backoff alone would have retried in 20 ms.
    assert elapsed >= 1.5, elapsed
    client.close()
    site.client.close()


def test_backoff_grows_exponentially_with_jitter_and_retry_after_wins() -> None:
    backoff = Backoff(base=0.5, cap=8.0, max_retry_after=60.0)
    failure = FootfallError("connection refused")
    rng = random.Random(1)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)):
        delays = [backoff.delay(attempt, failure, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not one value
    assert backoff.delay(1, FootfallError("HTTP 429", 429, retry_after=7.0)) == 7.0
    assert backoff.delay(1, FootfallError("HTTP 503", 503, retry_after=3600.0)) == 60.0


def test_retry_after_header_forms() -> None:
    assert retry_after("3") == 3.0
    now = time.time()
    assert retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None
    assert FootfallError("x", 429).retryable and FootfallError("x", 503).retryable
    assert not FootfallError("x", 422).retryable and not FootfallError("x", 401).retryable


def test_asyncio_client_batches_flushes_retries_and_raises(site: Site) -> None:
    async def main() -> None:
        client = AsyncFootfall(site.server.url, site.token, batch_size=3, flush_interval=60)
        for n in range(3):
            assert await client.pageview(f"{PAGE}/async/{n}", "8.8.8.8", FIREFOX_LINUX)
        for _ in range(500):  # a full batch goes without a flush
            if client.stats.sent == 3:
                break
            await asyncio.sleep(0.01)
        assert client.stats.sent == 3 and client.stats.requests == 1
        await client.event("signup", f"{PAGE}/async/join", {"plan": "pro"})
        assert client.stats.queued == 1
        assert await client.flush(timeout=10)
        assert client.stats.sent == 4
        await client.close()

        sync = AsyncFootfall(site.server.url, site.token, sync=True)
        assert await sync.pageview(f"{PAGE}/async/sync", "8.8.8.8", FIREFOX_LINUX)
        with pytest.raises(FootfallError) as bad:
            await sync.pageview(f"{PAGE}/x", "8.8.8.8", "")
        assert bad.value.field == "user_agent"
        await sync.close()

        down = AsyncFootfall(nowhere(), site.token, batch_size=2, max_queue=4, max_retries=10_000,
                             backoff=Backoff(base=0.02, cap=0.05))
        for n in range(10):
            await down.pageview(f"{PAGE}/{n}", "8.8.8.8", FIREFOX_LINUX)
        assert not await down.flush(timeout=0.3)  # the server is down: not everything is sent
        stats = down.stats
        assert stats.retries >= 2 and stats.sent == 0 and stats.dropped_queue_full in (4, 5, 6), stats
        await down.close(timeout=0.1)
        stats = down.stats
        assert stats.dropped_queue_full + stats.dropped_failed == 10 and stats.queued == 0, stats

    asyncio.run(main())
    got = rows(site, "SELECT kind, pathname FROM events ORDER BY pathname")
    assert got == [("pageview", "/async/0"), ("pageview", "/async/1"), ("pageview", "/async/2"),
                   ("event", "/async/join"), ("pageview", "/async/sync")]


def test_a_forked_child_sends_only_its_own_records(site: Site) -> None:
    """A pre-forking server (gunicorn --preload) makes the client before forking: the child must
    not send what the parent had queued, and must get a sending thread of its own."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(CLIENT_SRC)!r})
        from footfall_client import Footfall
        client = Footfall(sys.argv[1], sys.argv[2], flush_interval=600)
        agent = "{FIREFOX_LINUX}"
        client.pageview("https://example.com/parent/0", "8.8.8.8", agent)
        client.pageview("https://example.com/parent/1", "8.8.8.8", agent)
        pid = os.fork()
        if pid == 0:
            client.pageview("https://example.com/child/0", "8.8.8.8", agent)
            ok = client.flush(timeout=20) and client.stats.sent == 1
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert client.flush(timeout=20) and client.stats.sent == 2
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    done = subprocess.run([sys.executable, "-c", script, site.server.url, site.token], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = rows(site, "SELECT pathname FROM events ORDER BY pathname")
    assert got == [("/child/0",), ("/parent/0",), ("/parent/1",)]


def test_a_batch_sent_again_is_stored_once(site: Site) -> None:
    """When the answer to a batch is lost after the server stored it (a timeout, a dropped
    connection), the client sends the same bytes again: the records' ids make that count once."""
    transport = Transport(site.server.url, site.token)
    body = records.encode_batch([records.pageview(f"{PAGE}/once", "8.8.8.8", FIREFOX_LINUX),
                                 records.event("signup", f"{PAGE}/once", {"plan": "pro"})])
    assert transport.send(body).accepted == 2
    assert transport.send(body).accepted == 2  # the retry: accepted again, stored once
    again = records.encode_batch([records.pageview(f"{PAGE}/once", "8.8.8.8", FIREFOX_LINUX)])
    assert transport.send(again).accepted == 1  # a new record (a new id), same page: stored
    transport.close()
    got = rows(site, "SELECT kind, pathname FROM events ORDER BY kind")
    assert got == [("event", "/once"), ("pageview", "/once"), ("pageview", "/once")]
