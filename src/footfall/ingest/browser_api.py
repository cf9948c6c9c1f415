"""Seeds 000 and 003: the endpoints of the browser tracker (footfall.js).

    POST /ingest         {"url", "referrer"?, "screen_width"?, "language"?, "site_id"?}   pageviews
    POST /ingest/event   {"site_id"?, "name", "url", "referrer"?, "props"?}              events

The site of a pageview is the page's origin (the `Origin` header, else the URL's host); an
event names it by `site_id` (tracking id or numeric id), as seed 003's server-side example
does, else by origin too. The visitor is the connection's address (X-Forwarded-For only from
trusted proxies) and its User-Agent; the time is the time of receipt.

As on every endpoint a page can reach: an unknown site is answered like a known one and
nothing is stored, DNT and GPC mean not tracked unless the site opts out, CORS is open, and
text/plain bodies (sendBeacon) are JSON. Custom events share the ingest rate limiter (seed 003).
Success is 202 with an empty body; errors are {"error", "field"}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec

from footfall.enrich import urls
from footfall.ingest.http import Accepted, IngestError, decode_json, visitor_address
from footfall.ingest.model import Hit, PropValue
from footfall.ingest.public_api import asks_not_to_be_tracked, check_browser_body
from footfall.ingest.server_api import MAX_PROPERTIES, now_us
from footfall.meta import Site
from footfall.runtime import Runtime

SOURCE_API = "browser"
MAX_BODY = 16 * 1024

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=urls.MAX_URL_LENGTH)]
SiteRef = Annotated[str, msgspec.Meta(max_length=64)]


class BrowserPageview(msgspec.Struct, kw_only=True):
    url: Url
    referrer: Annotated[str, msgspec.Meta(max_length=urls.MAX_URL_LENGTH)] | None = None
    site_id: SiteRef | None = None
    screen_width: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    language: Annotated[str, msgspec.Meta(max_length=35)] | None = None


class BrowserEvent(BrowserPageview, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    props: Annotated[dict[str, PropValue], msgspec.Meta(max_length=MAX_PROPERTIES)] | None = None


def ingest(rt: Runtime, kind: str, caller_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    check_browser_body(headers, body)
    record: BrowserPageview = decode_json(body, BrowserEvent if kind == "event" else BrowserPageview)
    try:
        page = urls.split_page_url(record.url)
    except ValueError as exc:
        raise IngestError(422, f"url {exc}", "url") from None
    site = _site(rt, record.site_id, headers.get("origin"), page.hostname)
    if site is None or (site.settings.respect_dnt and asks_not_to_be_tracked(headers)):
        return Accepted(None, b"")  # unknown sites and opted-out visitors: answered alike
    received = now_us()
    hit = Hit(
        site_id=site.id,
        kind="event" if kind == "event" else "pageview",
        page=page,
        ts_us=received,
        received_us=received,
        ip=visitor_address(caller_ip),
        user_agent=headers.get("user-agent", ""),
        source_api=SOURCE_API,
        name=record.name.strip() if isinstance(record, BrowserEvent) else "",
        referrer=record.referrer or "",
        language=(record.language or "").strip(),
        screen_width=record.screen_width,
        props=(record.props or {}) if isinstance(record, BrowserEvent) else {},
    )
    if hit.kind == "event" and not hit.name:
        raise IngestError(422, "name is required for events", "name")
    event = rt.enricher.enrich(hit)
    return Accepted(None if event is None else rt.accept([event]), b"")


def _site(rt: Runtime, ref: str | None, origin: str | None, page_host: str) -> Site | None:
    if ref:
        return rt.sites.by_reference(ref)
    if origin and origin != "null":
        try:
            host = urls.split_page_url(origin).hostname
        except ValueError:
            host = ""
        if host:
            return rt.sites.by_hostname(host)
    return rt.sites.by_hostname(page_host)


__all__ = ["MAX_BODY", "ingest"]
