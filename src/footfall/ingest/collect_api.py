"""Seed 001: the collect API.

    POST /api/v1/collect/pageview   {tracking_id, url, pathname, referrer?, ip?, user_agent?,
                                     utm_source?..utm_term?, timestamp? (unix seconds)}
    POST /api/v1/collect/event      {tracking_id, name, url, pathname, props?, ip?, user_agent?,
                                     timestamp?}

Auth is a Bearer token with the `collect:write` scope; the site is the one whose tracking id
is given. Answers as the seed documents them: 200 {"ok": true}, 200 {"ok": true, "skipped":
"bot"}, 402 {"ok": false, "reason": "cap_exceeded"} past the site's monthly pageview cap,
403 for a token without the scope (or the site), 404 {"ok": false} for an unknown tracking id,
422 naming the failing fields. Beyond the seed: `ip` defaults to the caller's address (through
trusted proxies only), explicit `utm_*` fields win over the URL's, a missing user agent counts
as "Other", and `timestamp` backfills into the buckets of its own time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from footfall.api import auth
from footfall.enrich import urls
from footfall.event import AI_FETCH, DROP_BOT, DROPPED, PAGEVIEW
from footfall.ingest.http import (
    Accepted,
    IngestError,
    body_too_large,
    canonical_ip,
    decode_json,
    require_json,
)
from footfall.ingest.model import Hit, PropValue
from footfall.ingest.server_api import in_time_range
from footfall.runtime import Runtime

SOURCE_API = "collect"
MAX_BODY = 64 * 1024
MAX_PROPS_BYTES = 4096  # "Max 4 KB encoded"
MAX_NAME = 255

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=urls.MAX_URL_LENGTH)]
Utm = Annotated[str, msgspec.Meta(max_length=urls.MAX_UTM_LENGTH)]


class CollectPageview(msgspec.Struct, kw_only=True):
    """A pageview as seed 001 documents it; unknown fields are ignored, as Laravel does."""

    tracking_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    url: Url
    pathname: Url
    referrer: Annotated[str, msgspec.Meta(max_length=urls.MAX_URL_LENGTH)] | None = None
    ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    user_agent: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    utm_source: Utm | None = None
    utm_medium: Utm | None = None
    utm_campaign: Utm | None = None
    utm_content: Utm | None = None
    utm_term: Utm | None = None
    timestamp: int | None = None  # unix seconds


class CollectEvent(CollectPageview, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
    props: dict[str, PropValue] | None = None


class CollectResult(msgspec.Struct, omit_defaults=True):
    ok: bool
    skipped: Literal["bot"] | None = None
    reason: Literal["cap_exceeded"] | None = None


class CollectError(msgspec.Struct, omit_defaults=True):
    """A refusal: `message` says why; `errors` names each failing field (Laravel's shape)."""

    ok: bool  # always false; no default, so it is always written
    message: str | None = None
    reason: str | None = None
    errors: dict[str, list[str]] | None = None


_encode = msgspec.json.Encoder().encode
_OK = _encode(CollectResult(ok=True))
_SKIPPED_BOT = _encode(CollectResult(ok=True, skipped="bot"))
_CAP_EXCEEDED = "cap_exceeded"


def error_body(exc: IngestError) -> bytes:
    """The seed's error bodies: exactly {"ok": false} for an unknown tracking id, the reason
    for a reached cap, Laravel's {"message", "errors"} for failing fields."""
    if exc.status == 404:
        return _encode(CollectError(ok=False))
    if exc.status == 402:
        return _encode(CollectError(ok=False, reason=_CAP_EXCEEDED))
    if exc.status == 422:
        field = exc.field or "body"
        return _encode(CollectError(ok=False, message=exc.message, errors={field: [exc.message]}))
    return _encode(CollectError(ok=False, message=exc.message))


def collect(rt: Runtime, kind: Literal["pageview", "event"], caller_ip: str, headers: Mapping[str, str],
            body: bytes) -> Accepted:
    token = auth.authorize(rt.tokens, headers, auth.SCOPE_COLLECT_WRITE)
    require_json(headers)
    if len(body) > MAX_BODY:
        raise body_too_large(MAX_BODY)
    record: CollectPageview = decode_json(body, CollectEvent if kind == "event" else CollectPageview)
    site = rt.sites.by_tracking_id(record.tracking_id)
    if site is None:
        raise IngestError(404, "tracking id not found", "tracking_id")
    if not auth.allows_site(token, site.id):
        raise IngestError(403, f"token may not write to {site.domain}", "tracking_id")
    now_us = time.time_ns() // 1000
    cap = site.settings.monthly_pageview_cap
    if cap is not None and rt.monthly_pageviews.received(site.id, now_us) >= cap:
        raise IngestError(402, "monthly pageview cap reached")
    hit = to_hit(site.id, kind, record, caller_ip, now_us)
    event = rt.enricher.enrich(hit)
    if event is None:  # not a case this contract has (no dnt field), but never store it
        return Accepted(None, _OK, 200)
    if cap is not None and event.kind == PAGEVIEW:
        rt.monthly_pageviews.add(site.id)
    skipped = event.kind == AI_FETCH or (event.kind == DROPPED and event.name == DROP_BOT)
    return Accepted(rt.accept([event]), _SKIPPED_BOT if skipped else _OK, 200)


def to_hit(site_id: int, kind: str, record: CollectPageview, caller_ip: str, now_us: int) -> Hit:
    """Validate one record into a Hit."""
    try:
        page = urls.split_page_url(record.url)
    except ValueError as exc:
        raise IngestError(422, f"The url {exc}.", "url") from None
    # The path stored is the one given, cleaned like the URL's: no query, no fragment.
    path = record.pathname.split("#", 1)[0].split("?", 1)[0].strip()
    if not path:
        raise IngestError(422, "The pathname field is required.", "pathname")
    page = page._replace(pathname=urls.clean_path(path))
    ts_us = now_us if record.timestamp is None else in_time_range(record.timestamp * 1_000_000, now_us)
    ip = canonical_ip(record.ip if record.ip is not None else caller_ip)  # a bad given ip is a 422
    if ip is None:
        raise IngestError(422, "The ip must be a valid IPv4 or IPv6 address.", "ip")
    name, props = "", {}
    if isinstance(record, CollectEvent):
        name = record.name.strip()
        if not name:
            raise IngestError(422, "The name field is required.", "name")
        props = record.props or {}
        if len(msgspec.json.encode(props)) > MAX_PROPS_BYTES:
            raise IngestError(422, f"The props may be at most {MAX_PROPS_BYTES} bytes encoded.", "props")
    utm = {k: v for k, v in _explicit_utm(record).items() if v}
    return Hit(
        site_id=site_id,
        kind="event" if kind == "event" else "pageview",
        page=page,
        ts_us=ts_us,
        received_us=now_us,
        ip=ip,
        user_agent=record.user_agent or "",
        source_api=SOURCE_API,
        name=name,
        referrer=record.referrer or "",
        props=props,
        utm=utm or None,
    )


def _explicit_utm(record: CollectPageview) -> dict[str, Any]:
    return {
        "utm_source": record.utm_source,
        "utm_medium": record.utm_medium,
        "utm_campaign": record.utm_campaign,
        "utm_content": record.utm_content,
        "utm_term": record.utm_term,
    }


__all__ = ["MAX_BODY", "collect", "error_body"]
