"""AI crawler fetches forwarded from edge or origin logs.

POST /api/sites/{site}/ingest/ai-fetch records that an AI crawler or assistant (GPTBot,
ClaudeBot, PerplexityBot, ...) fetched a page of the site. Auth is a token with
`site.manage_data` for that site; `{site}` is its domain, tracking id or numeric id. A user
agent that is not an AI crawler is refused with 422: this table is not a general bot log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated

import msgspec

from footfall.api import auth
from footfall.enrich import bots, urls
from footfall.enrich.enricher import ai_fetch
from footfall.ingest.http import Accepted, IngestError, decode_json, require_json
from footfall.ingest.model import Hit
from footfall.ingest.server_api import authorize, in_time_range, now_us, utc_us
from footfall.runtime import Runtime

SOURCE_API = "ai_fetch"
MAX_BODY = 16 * 1024


class AiFetchRecord(msgspec.Struct, kw_only=True):
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=urls.MAX_URL_LENGTH)]
    user_agent: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    hostname: Annotated[str, msgspec.Meta(max_length=253)] | None = None
    status_code: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    content_type: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    response_ms: Annotated[float, msgspec.Meta(ge=0, le=3_600_000)] | None = None
    bytes_served: Annotated[int, msgspec.Meta(ge=0)] | None = None
    timestamp: dt.datetime | None = None  # RFC3339; the time of receipt when absent


def ingest_ai_fetch(rt: Runtime, site_ref: str, _ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    token = authorize(rt, headers)
    require_json(headers)
    record = decode_json(body, AiFetchRecord)
    site = rt.sites.by_reference(site_ref)
    if site is None:
        raise IngestError(404, f"no site {site_ref!r}", "site")
    if not auth.allows_site(token, site.id):
        raise IngestError(403, f"token may not write to {site.domain}", "site")
    bot = bots.is_ai_crawler(record.user_agent)
    if bot is None:
        raise IngestError(422, "user_agent is not a known AI crawler or assistant", "user_agent")
    received = now_us()
    ts = received
    if record.timestamp is not None:
        ts = in_time_range(utc_us(record.timestamp), received)
    hostname = urls.normalize_host(record.hostname) if record.hostname else site.domain
    path = record.path.split("?", 1)[0].split("#", 1)[0]  # the query string is never kept
    page = urls.PageUrl(hostname, urls.clean_path(path), {}, "")
    hit = Hit(
        site_id=site.id, kind="pageview", page=page, ts_us=ts, received_us=received, ip="",
        user_agent=record.user_agent, source_api=SOURCE_API,
    )
    event = ai_fetch(
        hit, bot, record.status_code, (record.content_type or "").split(";", 1)[0].strip().lower(),
        record.response_ms, record.bytes_served,
    )
    return Accepted(rt.accept([event]), b"")
