"""Ingest requests answered by the HTTP protocol itself (ingest/protocol.py), over raw sockets
to a real `footfall serve`: the cases it takes, the ones it hands to ASGI, and the two mixed
on one connection, pipelined, where answers must come back in order."""

from __future__ import annotations

import datetime as dt
import json
import socket
from typing import Any

import httpx

from tests.conftest import Site

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
PAGEVIEW = "/api/ingest/server/pageview"


def body(n: int) -> bytes:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    record = {"url": f"https://example.com/proto/{n}", "timestamp": now, "visitor_ip": f"198.51.100.{n % 250 + 1}",
              "user_agent": UA}
    return json.dumps(record).encode()


def request(site: Site, payload: bytes, path: str = PAGEVIEW, version: str = "1.1", extra: str = "",
            length: int | None = None) -> bytes:
    head = (
        f"POST {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {site.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload) if length is None else length}\r\n{extra}\r\n"
    )
    return head.encode() + payload


class Conn:
    """One raw HTTP/1.1 connection that reads responses back one by one."""

    def __init__(self, site: Site) -> None:
        self.sock = socket.create_connection(("127.0.0.1", site.server.port), timeout=15)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed mid-response: {self.buf!r}"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if status == 100:
            return status, headers, b""
        size = int(headers.get("content-length", "0"))
        while len(self.buf) < size:
            assert self._fill(), "connection closed mid-body"
        content, self.buf = self.buf[:size], self.buf[size:]
        return status, headers, content

    def closed_by_server(self) -> bool:
        try:
            return not self._fill() and not self.buf
        except (ConnectionResetError, TimeoutError):
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def records_written(site: Site) -> int:
    return int(httpx.get(site.server.url + "/readyz", timeout=5).json()["spool"]["records_written"])


def test_many_requests_on_one_keep_alive_connection(site: Site) -> None:
    before = records_written(site)
    with Conn(site) as conn:
        for n in range(50):
            conn.send(request(site, body(n)))
            status, headers, content = conn.response()
            assert (status, content) == (202, b"")
            assert headers["content-type"] == "application/json" and "date" in headers
    assert records_written(site) - before == 50


def test_pipelined_requests_of_every_kind_are_answered_in_order(site: Site) -> None:
    before = records_written(site)
    with Conn(site) as conn:
        conn.send(
            request(site, body(1))  # answered by the protocol, after its sync
            + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # Litestar, queued behind it
            + request(site, b'{"url": "https://example.com/x"}')  # 422 from the protocol or ASGI
            + request(site, body(2), path=PAGEVIEW + "?via=query")  # a query string: ASGI's way
            + request(site, body(3))
        )
        answers = [conn.response() for _ in range(5)]
    assert [a[0] for a in answers] == [202, 200, 422, 202, 202]
    assert json.loads(answers[1][2])["status"] == "ok"
    assert json.loads(answers[2][2])["field"] == "timestamp"
    assert records_written(site) - before == 3


def test_a_body_over_the_limit_is_refused_and_the_connection_goes_on(site: Site) -> None:
    with Conn(site) as conn:
        big = b'{"url": "' + b"a" * (70 * 1024) + b'"}'
        conn.send(request(site, big))  # declared too long: refused before the body is read
        status, _, content = conn.response()
        assert status == 413 and "larger than" in json.loads(content)["error"]
        conn.send(request(site, body(1)))
        assert conn.response()[0] == 202
        # Chunked, with no declared length: refused once the body passes the limit.
        chunk = b"a" * 40_000
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
        head = request(site, b"", extra="Transfer-Encoding: chunked\r\n").replace(b"Content-Length: 0\r\n", b"")
        conn.send(head + chunked)
        assert conn.response()[0] == 413
        conn.send(request(site, body(2)))
        assert conn.response()[0] == 202


def test_refusals_before_the_body_keep_the_connection(site: Site) -> None:
    with Conn(site) as conn:
        bad_token = request(site, body(1)).replace(site.token.encode(), b"ff_wrong")
        conn.send(bad_token)
        status, _, content = conn.response()
        assert status == 401 and json.loads(content)["error"]
        conn.send(request(site, body(2)))
        assert conn.response()[0] == 202


def test_http_1_0_and_expect_continue_take_the_asgi_way(site: Site) -> None:
    with Conn(site) as conn:
        conn.send(request(site, body(1), version="1.0"))
        status, _, _ = conn.response()
        assert status == 202
        assert conn.closed_by_server()  # HTTP/1.0 without keep-alive
    with Conn(site) as conn:
        payload = body(2)
        conn.send(request(site, b"", extra="Expect: 100-continue\r\n", length=len(payload)))
        assert conn.response()[0] == 100
        conn.send(payload)
        assert conn.response()[0] == 202


def test_connection_close_is_honoured(site: Site) -> None:
    with Conn(site) as conn:
        conn.send(request(site, body(1), extra="Connection: close\r\n"))
        status, headers, _ = conn.response()
        assert status == 202 and headers.get("connection") == "close"
        assert conn.closed_by_server()


def test_a_client_gone_before_its_answer_loses_nothing_else(site: Site) -> None:
    before = records_written(site)
    for n in range(20):  # sent, and the socket closed without reading the answer
        with socket.create_connection(("127.0.0.1", site.server.port), timeout=5) as sock:
            sock.sendall(request(site, body(n)))
    with Conn(site) as conn:
        conn.send(request(site, body(99)))
        assert conn.response()[0] == 202
    # What was received whole was accepted: the records are there, whether or not the
    # client stayed for its answer.
    assert records_written(site) - before == 21
    site.server.wait_drained()
    ready: dict[str, Any] = httpx.get(site.server.url + "/readyz", timeout=5).json()
    assert ready["writer"]["last_error"] is None
