"""ASGI middleware (Starlette, FastAPI, Litestar, any ASGI app): a pageview per 2xx HTML GET.

    app.add_middleware(FootfallMiddleware, client=Footfall(FOOTFALL_URL, FOOTFALL_TOKEN))  # Starlette, FastAPI
    Litestar(..., middleware=[DefineMiddleware(FootfallMiddleware, client=client)])          # Litestar

The visitor's address is `scope["client"]`, which the server resolves from X-Forwarded-For for
trusted proxies (uvicorn's `--forwarded-allow-ips`, hypercorn's and granian's equivalents);
`trusted_proxies=` resolves it here when nothing else does. Works with `Footfall` and
`AsyncFootfall` alike: queuing a record never awaits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from footfall_client.web import PageTracker, Sink, is_html, url_path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The request headers a pageview needs, by their ASGI (lower-case bytes) names.
_WANTED = {b"user-agent": "agent", b"referer": "referrer", b"accept-language": "language", b"host": "host",
           b"dnt": "dnt", b"sec-gpc": "gpc", b"sec-purpose": "purpose", b"purpose": "purpose",
           b"x-forwarded-for": "forwarded_for"}


class FootfallMiddleware:
    def __init__(self, app: ASGIApp, client: Sink, **options: Any) -> None:
        """`options`: those of `web.PageTracker` (base_url, predicate(scope), honour_privacy,
        trusted_proxies, static_prefixes, static_suffixes)."""
        self.app = app
        self.tracker = PageTracker(client, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or self.tracker.skips_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                content_type = None
                for name, value in message.get("headers", ()):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
                        break
                if is_html(content_type):
                    self._record(scope)
            await send(message)

        await self.app(scope, receive, send_and_record)

    def _record(self, scope: Scope) -> None:
        tracker = self.tracker
        found: dict[str, str] = {}
        wanted = _WANTED
        for name, value in scope["headers"]:
            key = wanted.get(name)
            if key is not None:
                found[key] = value.decode("latin-1")
        if tracker.opted_out(found.get("dnt"), found.get("gpc"), found.get("purpose")):
            return
        if tracker.predicate is not None and not tracker.predicate(scope):
            return
        raw_path = scope.get("raw_path")
        # raw_path is the path as the visitor sent it (percent-encoded, any mount prefix
        # included); not every server gives it, hence the decoded fallback.
        path = raw_path.decode("latin-1") if raw_path else url_path(scope.get("root_path", "") + scope["path"])
        host = found.get("host")
        if host is None:
            server = scope.get("server") or ("localhost", None)
            host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
        query = scope.get("query_string", b"").decode("latin-1")
        url = tracker.page_url(scope.get("scheme", "http"), host, path, query)
        client = scope.get("client")
        ip = tracker.visitor_ip(client[0] if client else None, found.get("forwarded_for"))
        tracker.record(url, ip, found.get("agent"), found.get("referrer"), found.get("language"))
