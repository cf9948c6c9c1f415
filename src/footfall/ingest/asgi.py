"""The ingest routes as bare ASGI, in front of the Litestar app.

DESIGN allows this when the framework costs more than a third against a bare handler: the
ingest benchmark measured Litestar's routing, signature parsing and response machinery at
more than half of single-record ingest time. Every other path, and the OpenAPI description
of these routes, stays with Litestar. The common ingest request does not even reach this:
ingest/protocol.py answers it below ASGI, with the same checks and answers (`admit`,
`accepted_answer`, `failure_answer`, `response_headers`); this serves the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from footfall.ingest.http import (
    Accepted,
    IngestError,
    body_too_large,
    check_declared_length,
    client_ip,
    refuse_if_limited,
)
from footfall.runtime import Runtime

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

# Given the caller's IP (the peer, or what trusted proxies say), the request headers
# (lower-case names) and body: validate, hand the events to the spool, and return at once;
# the caller awaits durability. Raises IngestError.
IngestWork = Callable[[str, Mapping[str, str], bytes], Accepted]
# An IngestError as the contract's error body.
ErrorBody = Callable[[IngestError], bytes]


def _error_body(exc: IngestError) -> bytes:
    return exc.body()


class IngestRoute(NamedTuple):
    max_body: int
    work: IngestWork
    error_body: ErrorBody = _error_body  # seed 000's {"error", "field"} unless the contract differs
    rate_limited: bool = True  # by the ingest limit per client IP; False: the work limits itself
    headers: Mapping[str, str] | None = None  # on every answer, e.g. CORS for pages' endpoints


def check_rate(rt: Runtime, ip: str) -> None:
    if not rt.limiter.enabled:
        return
    refuse_if_limited(rt.limiter.take(ip))


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, at most `limit` bytes (413 past it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise IngestError(400, "client disconnected")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        if not message.get("more_body") and not chunks:
            return chunk  # the usual case: the whole body in one message
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def admit(rt: Runtime, route: IngestRoute, peer: str | None, headers: Mapping[str, str]) -> str:
    """What is checked before the body is read: the caller's IP (returned), its rate and the
    declared body length. Raises IngestError."""
    ip = client_ip(peer, headers.get("x-forwarded-for"), rt.settings.trusted_networks)
    if route.rate_limited:
        check_rate(rt, ip)
    check_declared_length(headers, route.max_body)
    return ip


Answer = tuple[int, bytes, Mapping[str, str]]  # status, body, headers beyond content-length/-type
_NO_HEADERS: Mapping[str, str] = {}


def accepted_answer(route: IngestRoute, accepted: Accepted) -> Answer:
    if accepted.content_type is None:  # JSON, as every error body is: the route's headers as they are
        return accepted.status, accepted.body, route.headers or _NO_HEADERS
    return accepted.status, accepted.body, {**(route.headers or {}), "content-type": accepted.content_type}


def refused_answer(route: IngestRoute, exc: IngestError) -> Answer:
    return exc.status, route.error_body(exc), {**(route.headers or {}), **exc.headers}


INTERNAL_ERROR: Answer = (500, IngestError(500, "internal error").body(), _NO_HEADERS)


def failure_answer(route: IngestRoute, exc: Exception) -> Answer:
    """The contract's refusal of bad input; for anything else (a bug), a logged 500, as
    every other path answers."""
    if isinstance(exc, IngestError):
        return refused_answer(route, exc)
    log.error("ingest failed", exc_info=exc)
    return INTERNAL_ERROR


def response_headers(body: bytes, extra: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-length", str(len(body)).encode())]
    if extra:
        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    if "content-type" not in extra:
        headers.append((b"content-type", b"application/json"))
    return headers


async def run_route(
    rt: Runtime, route: IngestRoute, peer: str | None, headers: Mapping[str, str], receive: Receive
) -> Answer:
    """Rate limit, read the body within its limit, do the work and wait until what it
    accepted is durable. One coroutine on purpose: every await level costs a frame and a
    resumption per request on the hot path."""
    try:
        ip = admit(rt, route, peer, headers)
        accepted = route.work(ip, headers, await read_body(receive, route.max_body))
        if accepted.durable is not None:
            await accepted.durable
        return accepted_answer(route, accepted)
    except Exception as exc:
        return failure_answer(route, exc)


class FastIngest:
    def __init__(
        self, rt: Runtime, routes: dict[str, IngestRoute], app: ASGIApp,
        preflight: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.rt = rt
        self.routes = routes
        self.app = app
        # Path prefix -> the headers of the answer to a CORS preflight (OPTIONS) under it.
        self.preflight = {prefix: [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                          for prefix, headers in (preflight or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            path = scope.get("path", "")
            for prefix, answer in self.preflight.items():
                if path.startswith(prefix):
                    await send({"type": "http.response.start", "status": 204, "headers": answer})
                    await send({"type": "http.response.body", "body": b""})
                    return
        route = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        status, body, extra = await run_route(self.rt, route, client[0] if client else None, headers, receive)
        await send({"type": "http.response.start", "status": status, "headers": response_headers(body, extra)})
        await send({"type": "http.response.body", "body": body})
