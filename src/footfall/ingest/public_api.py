"""Seed 002: the public tracking endpoint.

    POST /e/{trackingCode}   {"type": "pageview"|"event", "url", "referrer"?, "name"?, "data"?}

No API key: the tracking code names the site, as in a page's tracking snippet. The visitor is
whoever the request says through its headers: `User-Agent`, and the address of the caller, or
`X-Forwarded-For` when the caller is a trusted proxy or the site allows forwarded visitor
headers (a backend forwarding its visitors, as the seed's examples do). The time is the time
of receipt.

Because anyone may call it:
- an unknown tracking code is answered like a known one and nothing is stored, so a stray
  snippet cannot probe which sites exist;
- it has its own per-IP limits (by default 60 per 10 s and 5,000 per hour);
- `DNT: 1` and `Sec-GPC: 1` mean the visitor is not tracked at all, unless the site opts out.

Success is 202 {"ok": true}; errors are the seed-000 shape {"error", "field"}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from footfall.enrich import bots, urls
from footfall.ingest.http import (
    Accepted,
    IngestError,
    body_too_large,
    canonical_ip,
    decode_json,
    refuse_if_limited,
    visitor_address,
)
from footfall.ingest.model import Hit, PropValue
from footfall.ingest.server_api import MAX_PROPERTIES, now_us
from footfall.meta import Site
from footfall.runtime import Runtime

SOURCE_API = "public"
MAX_BODY = 16 * 1024
# sendBeacon can only send a body as text/plain (a "simple" request, no CORS preflight), so a
# tracking endpoint takes JSON under that type too.
_JSON_TYPES = ("application/json", "text/plain")

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=urls.MAX_URL_LENGTH)]


class PublicRecord(msgspec.Struct, kw_only=True):
    type: Literal["pageview", "event"] = "pageview"
    url: Url
    referrer: Annotated[str, msgspec.Meta(max_length=urls.MAX_URL_LENGTH)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    data: Annotated[dict[str, PropValue], msgspec.Meta(max_length=MAX_PROPERTIES)] | None = None


class PublicResult(msgspec.Struct):
    ok: bool


OK = msgspec.json.encode(PublicResult(ok=True))


def check_browser_body(headers: Mapping[str, str], body: bytes) -> None:
    """Size and type of a body a page may send: JSON, possibly labelled text/plain."""
    if len(body) > MAX_BODY:
        raise body_too_large(MAX_BODY)
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in _JSON_TYPES:
        raise IngestError(415, "Content-Type must be application/json (or text/plain, as sendBeacon sends)")


def track(rt: Runtime, code: str, caller_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    check_browser_body(headers, body)
    site = rt.sites.by_tracking_id(code)
    visitor_ip = _visitor_ip(site, caller_ip, headers)
    _check_rate(rt, visitor_ip)
    record = decode_json(body, PublicRecord)
    if site is None:  # answered like any other: which codes exist is nobody's business
        return Accepted(None, OK)
    if site.settings.respect_dnt and asks_not_to_be_tracked(headers):
        return Accepted(None, OK)  # not tracked, not even counted
    hit = _to_hit(site, record, visitor_ip, headers)
    event = rt.enricher.enrich(hit)
    return Accepted(None if event is None else rt.accept([event]), OK)


def asks_not_to_be_tracked(headers: Mapping[str, str]) -> bool:
    return headers.get("dnt", "").strip() == "1" or headers.get("sec-gpc", "").strip() == "1"


def _visitor_ip(site: Site | None, caller_ip: str, headers: Mapping[str, str]) -> str:
    """`caller_ip` has X-Forwarded-For applied already when the caller is a trusted proxy. A
    site that allows forwarded visitor headers takes the first address of the list, the
    original client as the forwarding backend states it."""
    forwarded = headers.get("x-forwarded-for")
    if site is not None and site.settings.allow_forwarded_for and forwarded:
        first = forwarded.split(",", 1)[0].strip()
        if canonical_ip(first) is not None:
            return first
    return caller_ip


def visitor_agent(agent: str) -> str:
    """The seed's own examples call this endpoint from backends (a payment webhook, say) that
    forward the visitor's User-Agent only when there is a visitor. The agent of an HTTP library
    then names the backend, not a crawler: the hit is kept, its visitor's agent unknown
    ("Other"). Crawlers forwarded by a backend are still bots."""
    return "" if bots.is_http_client(agent) else agent


def _check_rate(rt: Runtime, ip: str) -> None:
    refuse_if_limited(max(limit.take(ip) for limit in rt.public_limits))


def _to_hit(site: Site, record: PublicRecord, visitor_ip: str, headers: Mapping[str, str]) -> Hit:
    try:
        page = urls.split_page_url(record.url)
    except ValueError as exc:
        raise IngestError(422, f"url {exc}", "url") from None
    name = ""
    if record.type == "event":
        name = (record.name or "").strip()
        if not name:
            raise IngestError(422, "name is required for events", "name")
    received = now_us()
    return Hit(
        site_id=site.id,
        kind=record.type,
        page=page,
        ts_us=received,
        received_us=received,
        ip=visitor_address(visitor_ip),
        user_agent=visitor_agent(headers.get("user-agent", "")),
        source_api=SOURCE_API,
        name=name,
        referrer=record.referrer or "",
        props=record.data or {},
    )


__all__ = ["MAX_BODY", "track"]
