"""WSGI middleware (Flask, and any WSGI app): a pageview per 2xx HTML GET response.

    app.wsgi_app = FootfallMiddleware(app.wsgi_app, Footfall(FOOTFALL_URL, FOOTFALL_TOKEN))

The visitor's address is `REMOTE_ADDR` as the app sees it when the response starts, so a proxy
fix applied inside or outside this middleware (werkzeug's `ProxyFix`, which rewrites the
environ) is honoured; `trusted_proxies=` resolves X-Forwarded-For here when nothing else does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from footfall_client.web import PageTracker, Sink, is_html, url_path

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class FootfallMiddleware:
    def __init__(self, app: WSGIApp, client: Sink, **options: Any) -> None:
        """`options`: those of `web.PageTracker` (base_url, predicate(environ), honour_privacy,
        trusted_proxies, static_prefixes, static_suffixes)."""
        self.app = app
        self.tracker = PageTracker(client, **options)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        tracker = self.tracker
        if environ.get("REQUEST_METHOD") != "GET" or tracker.skips_path(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status[:1] == "2" and is_html(_content_type(headers)):
                self._record(environ)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)

    def _record(self, environ: Environ) -> None:
        tracker = self.tracker
        get = environ.get
        if tracker.opted_out(get("HTTP_DNT"), get("HTTP_SEC_GPC"), get("HTTP_SEC_PURPOSE") or get("HTTP_PURPOSE")):
            return
        if tracker.predicate is not None and not tracker.predicate(environ):
            return
        # WSGI strings are bytes decoded as latin-1; as UTF-8 they are the path the visitor asked for.
        path = (get("SCRIPT_NAME", "") + get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace")
        host = get("HTTP_HOST") or f"{get('SERVER_NAME', '')}:{get('SERVER_PORT', '')}"
        url = tracker.page_url(get("wsgi.url_scheme", "http"), host, url_path(path), get("QUERY_STRING", ""))
        ip = tracker.visitor_ip(get("REMOTE_ADDR"), get("HTTP_X_FORWARDED_FOR"))
        tracker.record(url, ip, get("HTTP_USER_AGENT"), get("HTTP_REFERER"), get("HTTP_ACCEPT_LANGUAGE"))


def _content_type(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "content-type":
            return value
    return None
