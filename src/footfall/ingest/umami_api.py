"""Umami's collection endpoint, as its tracker and @umami/node send: POST /api/send.

    User-Agent: <the visitor's>
    {"type": "event", "payload": {"website": "<id>", "hostname"?, "url"?, "referrer"?,
      "title"?, "screen"?, "language"?, "name"?, "data"?}}

The website id is the site's tracking id (`footfall sites add example.com --tracking-id
<your Umami website id>` keeps the one code already has). An event without a name is a
pageview; with one, a custom event with `data` as its properties. `url` is the page's path
(or a full URL), on `hostname` (else the site's domain). The visitor is the caller's address
(X-Forwarded-For only from trusted proxies) and User-Agent; an HTTP library's agent names a
backend, not a bot, as on /e/. `identify` calls are accepted and not stored. Unknown website
ids are answered alike and stored nowhere, since the tracker runs in pages. Answers: 200 {};
400 malformed JSON; 422 naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from footfall.enrich import urls
from footfall.ingest import sdk
from footfall.ingest.http import Accepted, IngestError, decode_json, visitor_address
from footfall.ingest.model import Hit
from footfall.ingest.public_api import asks_not_to_be_tracked, check_browser_body, visitor_agent
from footfall.ingest.server_api import now_us
from footfall.runtime import Runtime

SOURCE_API = "umami"
MAX_BODY = 16 * 1024

Text = Annotated[str, msgspec.Meta(max_length=urls.MAX_URL_LENGTH)]


class UmamiPayload(msgspec.Struct):
    website: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    hostname: Annotated[str, msgspec.Meta(max_length=253)] | None = None
    url: Text | None = None
    referrer: Text | None = None
    title: Text | None = None
    screen: Annotated[str, msgspec.Meta(max_length=20)] | None = None  # "1920x1080"
    language: Annotated[str, msgspec.Meta(max_length=35)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    data: dict[str, Any] | None = None


class UmamiSend(msgspec.Struct):
    payload: UmamiPayload
    type: Literal["event", "identify"] = "event"


OK = b"{}"


def send(rt: Runtime, caller_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    check_browser_body(headers, body)
    request: UmamiSend = decode_json(body, UmamiSend)
    payload = request.payload
    site = rt.sites.by_tracking_id(payload.website)
    if request.type != "event" or site is None:
        return Accepted(None, OK, 200)  # identify: no profiles kept; unknown ids: answered alike
    if site.settings.respect_dnt and asks_not_to_be_tracked(headers):
        return Accepted(None, OK, 200)
    path = payload.url or "/"
    url = path if "://" in path else f"https://{payload.hostname or site.domain}/{path.lstrip('/')}"
    try:
        page = urls.split_page_url(url)
    except ValueError as exc:
        raise IngestError(422, f"url {exc}", "payload.url") from None
    name = (payload.name or "").strip()
    received = now_us()
    hit = Hit(
        site_id=site.id,
        kind="event" if name else "pageview",
        page=page,
        ts_us=received,
        received_us=received,
        ip=visitor_address(caller_ip),
        user_agent=visitor_agent(headers.get("user-agent", "")),
        source_api=SOURCE_API,
        name=name,
        referrer=payload.referrer or "",
        language=(payload.language or "").strip(),
        screen_width=_screen_width(payload.screen),
        props=sdk.flat_props(payload.data or {}) if name else {},
    )
    event = rt.enricher.enrich(hit)
    return Accepted(None if event is None else rt.accept([event]), OK, 200)


def _screen_width(screen: str | None) -> int | None:
    width = (screen or "").split("x", 1)[0]
    return int(width) if width.isascii() and width.isdigit() and len(width) <= 6 else None


__all__ = ["MAX_BODY", "send"]
