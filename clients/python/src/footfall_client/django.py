"""Django middleware: a pageview per 2xx HTML GET response. In settings.py:

    MIDDLEWARE = ["footfall_client.django.FootfallMiddleware", ...]
    FOOTFALL = {"URL": "https://stats.example.com", "TOKEN": os.environ["FOOTFALL_TOKEN"]}

Other keys of FOOTFALL: "CLIENT" (a client of your own instead of URL and TOKEN), "OPTIONS"
(keyword arguments for the `Footfall` it makes), and the `web.PageTracker` options in upper
case: "BASE_URL", "PREDICATE" (a callable taking the request), "HONOUR_PRIVACY",
"TRUSTED_PROXIES", "STATIC_PREFIXES", "STATIC_SUFFIXES".

Django has no trusted-proxy setting of its own: the visitor is `REMOTE_ADDR` (which a proxy
middleware of yours may have set), or, when "TRUSTED_PROXIES" lists the proxy it came
through, the X-Forwarded-For hop that proxy saw. The host is `request.get_host()`, so
`USE_X_FORWARDED_HOST` and `ALLOWED_HOSTS` apply; the scheme honours `SECURE_PROXY_SSL_HEADER`.
Works under WSGI and ASGI (the middleware is sync- and async-capable).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase

from footfall_client.client import Footfall
from footfall_client.web import PageTracker, Sink, is_html, url_path

_OPTIONS = {"BASE_URL": "base_url", "PREDICATE": "predicate", "HONOUR_PRIVACY": "honour_privacy",
            "TRUSTED_PROXIES": "trusted_proxies", "STATIC_PREFIXES": "static_prefixes",
            "STATIC_SUFFIXES": "static_suffixes"}
_clients: dict[tuple[str, str], Footfall] = {}
_clients_lock = threading.Lock()


def client_from_settings(conf: dict[str, Any]) -> Sink:
    """The configured client; one per (URL, TOKEN) per process, however often Django builds the
    middleware chain."""
    if conf.get("CLIENT") is not None:
        client: Sink = conf["CLIENT"]
        return client
    key = (conf["URL"], conf["TOKEN"])
    with _clients_lock:
        if key not in _clients:
            _clients[key] = Footfall(*key, **conf.get("OPTIONS", {}))
        return _clients[key]


class FootfallMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        conf: dict[str, Any] = getattr(settings, "FOOTFALL", {})
        options = {name: conf[key] for key, name in _OPTIONS.items() if key in conf}
        self.tracker = PageTracker(client_from_settings(conf), **options)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        response = self.get_response(request)
        self._consider(request, response)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        response = await get_response(request)
        self._consider(request, response)
        return response

    def _consider(self, request: HttpRequest, response: HttpResponseBase) -> None:
        tracker = self.tracker
        if (
            request.method != "GET"
            or not 200 <= response.status_code < 300
            or not is_html(response.get("Content-Type"))
            or tracker.skips_path(request.path_info)
        ):
            return
        meta = request.META
        if tracker.opted_out(meta.get("HTTP_DNT"), meta.get("HTTP_SEC_GPC"),
                             meta.get("HTTP_SEC_PURPOSE") or meta.get("HTTP_PURPOSE")):
            return
        if tracker.predicate is not None and not tracker.predicate(request):
            return
        try:
            host = request.get_host()
        except DisallowedHost:
            return  # Django refused the host: no page of this site was served
        url = tracker.page_url(request.scheme or "http", host, url_path(request.path), meta.get("QUERY_STRING", ""))
        ip = tracker.visitor_ip(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))
        tracker.record(url, ip, meta.get("HTTP_USER_AGENT"), meta.get("HTTP_REFERER"), meta.get("HTTP_ACCEPT_LANGUAGE"))
