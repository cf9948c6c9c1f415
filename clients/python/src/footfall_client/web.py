"""What the framework middleware share: which requests are pageviews, who the visitor is, and the
record. Each middleware (asgi, wsgi, django) only reads its framework's request and response.

A request is a pageview when it is a GET, its path is not a static asset, the visitor has not
asked not to be tracked (DNT or Sec-GPC, unless `honour_privacy=False`), it is not a prefetch,
the response is 2xx HTML, and the user's predicate (if any) accepts it. All of this runs in the
request, so it is string tests and a dict: no I/O, no parsing beyond that.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import quote

from footfall_client import records
from footfall_client.records import NO_VISITOR_IP, Record

# File types that are never pages. A path whose last segment ends in one is skipped before the
# app runs; anything else is judged by its response (only HTML counts).
STATIC_SUFFIXES = frozenset({
    "css", "js", "mjs", "map", "json", "xml", "txt", "ico", "png", "jpg", "jpeg", "gif", "webp", "avif",
    "svg", "bmp", "tif", "tiff", "woff", "woff2", "ttf", "otf", "eot", "mp4", "webm", "ogg", "mp3", "wav",
    "flac", "m4a", "pdf", "zip", "gz", "tgz", "bz2", "xz", "7z", "rar", "tar", "wasm", "csv", "webmanifest",
})
STATIC_PREFIXES = ("/static/", "/assets/", "/media/", "/favicon.ico", "/robots.txt")
HTML_TYPES = ("text/html", "application/xhtml+xml")
_URL_SAFE = "/:@!$&'()*+,;=-._~%"


class Sink(Protocol):
    """What the middleware needs of a client (`Footfall` or `AsyncFootfall`)."""

    def enqueue(self, record: Record) -> bool: ...


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PageTracker:
    """The settings of one middleware instance, and the decisions it makes per request."""

    def __init__(
        self,
        client: Sink,
        *,
        base_url: str | None = None,
        predicate: Callable[[Any], bool] | None = None,
        honour_privacy: bool = True,
        trusted_proxies: Iterable[str] = (),
        static_prefixes: Iterable[str] = STATIC_PREFIXES,
        static_suffixes: Iterable[str] = STATIC_SUFFIXES,
    ) -> None:
        """`base_url` ("https://www.example.com") replaces the scheme and host of the request
        (for an app that sees internal host names). `predicate` gets the framework's request
        (ASGI scope, WSGI environ, Django request) and returns False to skip it.
        `trusted_proxies` (CIDRs) are proxies whose X-Forwarded-For names the visitor, for
        setups where nothing in front of the app resolves it already."""
        self.client = client
        self.base_url = base_url.rstrip("/") if base_url else None
        self.predicate = predicate
        self.honour_privacy = honour_privacy
        self.trusted = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies)
        self.static_prefixes = tuple(static_prefixes)
        self.static_suffixes = frozenset(s.lower().lstrip(".") for s in static_suffixes)

    def skips_path(self, path: str) -> bool:
        """True for a static asset: by prefix, or by the file type of the last segment."""
        if path.startswith(self.static_prefixes):
            return True
        dot = path.rfind(".")
        return dot > path.rfind("/") and path[dot + 1 :].lower() in self.static_suffixes

    def opted_out(self, dnt: str | None, gpc: str | None, purpose: str | None) -> bool:
        """The visitor asked not to be tracked, or the browser is only prefetching."""
        if purpose and "prefetch" in purpose:
            return True
        return self.honour_privacy and (dnt == "1" or gpc == "1")

    def visitor_ip(self, peer: str | None, forwarded_for: str | None) -> str:
        """The peer the framework resolved, or (from a trusted proxy) the X-Forwarded-For hop
        nearest the proxy that is not itself trusted: the part a visitor cannot forge."""
        peer = peer or ""
        if not self.trusted or not forwarded_for or not _within(peer, self.trusted):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not _within(hop, self.trusted):
                return hop
        return hops[0] if hops else peer

    def page_url(self, scheme: str, host: str, path: str, query: str) -> str:
        base = self.base_url or f"{scheme}://{host}"
        return f"{base}{path}?{query}" if query else f"{base}{path}"

    def record(self, url: str, ip: str, agent: str | None, referrer: str | None, language: str | None) -> None:
        if language:  # the visitor's first choice of Accept-Language
            language = language.split(",", 1)[0].split(";", 1)[0].strip()[:35] or None
        self.client.enqueue(records.pageview(url, ip or NO_VISITOR_IP, agent or "-", referrer, language=language))


def is_html(content_type: str | None) -> bool:
    return content_type is not None and content_type.lstrip().lower().startswith(HTML_TYPES)


def url_path(path: str) -> str:
    """A decoded path as it goes in a URL (percent-encoded outside ASCII-safe characters)."""
    return path if path.isascii() and " " not in path else quote(path, safe=_URL_SAFE)


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
