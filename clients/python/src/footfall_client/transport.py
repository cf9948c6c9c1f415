"""HTTP to Footfall's batch endpoint, and what to do when it fails.

One persistent connection (http.client, keep-alive), used by one thread at a time. Failures are
sorted into those worth retrying (the server was unreachable, busy or rate limiting: a later try
may succeed) and the rest (a wrong token, a malformed batch: the same request fails again).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

BATCH_PATH = "/api/ingest/server/batch"
MAX_BATCH_RECORDS = 1000  # the server's limit per request
MAX_BATCH_BYTES = 4 * 1024 * 1024  # half the server's 8 MiB body limit
USER_AGENT = "footfall-client/0.1 (python)"
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_rng = random.Random()


class FootfallError(Exception):
    """A request Footfall refused or that did not reach it; `status` is None for the latter."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None,
                 field: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.field = field
        self._retryable = retryable

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later: the server was not reached, or it said so."""
        if self._retryable is not None:
            return self._retryable
        return self.status is None or self.status in _RETRYABLE_STATUS


@dataclass(frozen=True)
class BatchResult:
    accepted: int
    rejected: list[dict[str, Any]]


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: try n waits a random time in [d/2, d], d = base·2^(n-1)
    capped at `cap`, so many clients that failed together do not retry together. A server's
    Retry-After wins (capped at `max_retry_after`, so a wrong header cannot park the client)."""

    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, error: FootfallError, rng: random.Random | None = None) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        ceiling: float = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return ceiling / 2 + (rng or _rng).random() * ceiling / 2


class Transport:
    """POSTs batch bodies to `<url>/api/ingest/server/batch` with `Authorization: Bearer`."""

    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port], not {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.path = parts.path.rstrip("/") + BATCH_PATH
        self.timeout = timeout
        if not token or not token.isprintable() or any(c.isspace() for c in token):
            raise ValueError("token must be a non-empty string without spaces or control characters")
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                        "User-Agent": USER_AGENT}
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()  # one request at a time on the connection

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "https":
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                         context=ssl.create_default_context())
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def forget(self) -> None:
        """Drop the connection without closing it: a forked child must not touch its parent's."""
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send(self, body: bytes) -> BatchResult:
        """One attempt. Raises FootfallError; a keep-alive connection the server closed while
        idle is reopened once, as that is not a failure of the server."""
        with self._lock:
            return self._send(body)

    def _send(self, body: bytes) -> BatchResult:
        for fresh in (self._conn is None, True):
            conn = self._connection()
            try:
                conn.request("POST", self.path, body=body, headers=self.headers)
                response = conn.getresponse()
                payload = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if fresh:
                    raise FootfallError(f"connection failed: {exc}") from exc
                continue
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise FootfallError(f"{type(exc).__name__}: {exc}") from exc
            if response.will_close:
                self.close()
            return _result(response.status, response.getheader("Retry-After"), payload)
        raise AssertionError("unreachable")


def _result(status: int, retry_header: str | None, payload: bytes) -> BatchResult:
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if 200 <= status < 300:
        return BatchResult(int(data.get("accepted", 0)), list(data.get("rejected", [])))
    message = str(data.get("error") or payload[:200].decode("utf-8", "replace") or "no body")
    field = data.get("field")
    raise FootfallError(f"HTTP {status}: {message}", status, retry_after(retry_header),
                        field if isinstance(field, str) else None)
