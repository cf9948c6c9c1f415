"""PostHog's capture API, as its libraries speak it: POST /batch/, /capture/ and /i/v0/e/.

    {"api_key": "<project key>", "batch": [{"event": "$pageview"|name, "distinct_id",
      "properties": {"$current_url", "$referrer", "$ip", "$raw_user_agent", ...},
      "timestamp", "uuid"}], "historical_migration"?}
    or one event at the top level: {"api_key", "event", "distinct_id", "properties", ...}

The project key is the site's tracking id (`footfall sites show`). `$pageview` events are
pageviews and events not named with a `$` are custom events; both are attributed to
`$current_url`, else the site's home page. PostHog's other `$` events (identify, autocapture,
feature flags...) are accepted and not stored, and so are its `$` properties, but for the
visitor's `$ip` and `$raw_user_agent` (else the caller's own address and an unknown agent).
An event's `uuid` makes a retried delivery count once; `timestamp` backfills (the
`historical_migration` flag changes nothing here: every record goes to the buckets of its
own time). Answers: 200 {"status": 1}; 400 for a body that is not an event or a batch; 401
for a missing or unknown key. An unusable event is skipped alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import msgspec

from footfall.enrich import urls
from footfall.ingest import sdk
from footfall.ingest.http import Accepted, IngestError, body_too_large, decode_json, require_json, visitor_address
from footfall.ingest.model import Hit
from footfall.ingest.server_api import MAX_BATCH_BODY, now_us
from footfall.meta import Site
from footfall.runtime import Runtime

SOURCE_API = "posthog"
MAX_BODY = MAX_BATCH_BODY
MAX_EVENTS = 2500
PAGEVIEW_EVENT = "$pageview"


class PostHogEvent(msgspec.Struct):
    event: str | None = None
    distinct_id: Any = None
    properties: dict[str, Any] | None = None
    timestamp: dt.datetime | None = None
    uuid: str | None = None


class PostHogBody(PostHogEvent):
    """A batch, or one event at the top level (the /capture/ shape)."""

    api_key: str | None = None
    token: str | None = None  # the browser library's name for the key
    batch: list[msgspec.Raw] | None = None
    historical_migration: bool = False


class PostHogResult(msgspec.Struct):
    status: int


OK = msgspec.json.encode(PostHogResult(status=1))


def ingest(rt: Runtime, caller_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    require_json(headers)
    if headers.get("content-encoding", "").strip().lower() == "gzip":
        body = sdk.gunzip(body, MAX_BODY)
    if len(body) > MAX_BODY:
        raise body_too_large(MAX_BODY)
    envelope: PostHogBody = decode_json(body, PostHogBody)
    key = envelope.api_key or envelope.token or _bearer(headers.get("authorization"))
    if not key:
        raise IngestError(401, "missing project key (api_key)", "api_key")
    site = rt.sites.by_tracking_id(key)
    if site is None:
        raise IngestError(401, "unknown project key", "api_key")
    if envelope.batch is None and envelope.event is None:
        raise IngestError(400, "neither an event nor a batch", "batch")
    raw = envelope.batch if envelope.batch is not None else [msgspec.Raw(msgspec.json.encode(envelope))]
    if len(raw) > MAX_EVENTS:
        raise IngestError(400, f"a batch holds at most {MAX_EVENTS} events", "batch")
    received = now_us()
    events = sdk.events_of(
        rt, site, raw, PostHogEvent, lambda m: _to_hit(site, m, caller_ip, received), lambda m: m.uuid
    )
    return Accepted(rt.accept(events) if events else None, OK, 200)


def _to_hit(site: Site, message: PostHogEvent, caller_ip: str, received: int) -> Hit | None:
    name = (message.event or "").strip()
    if not name or (name.startswith("$") and name != PAGEVIEW_EVENT):
        return None  # PostHog's own bookkeeping events: no page or event to count
    properties = message.properties or {}
    page = sdk.page_or_home(sdk.text(properties.get("$current_url")), site)
    ts = sdk.time_us(message.timestamp, received)
    if ts is None:
        return None
    pageview = name == PAGEVIEW_EVENT
    return Hit(
        site_id=site.id,
        kind="pageview" if pageview else "event",
        page=page,
        ts_us=ts,
        received_us=received,
        ip=visitor_address(sdk.text(properties.get("$ip")), caller_ip),
        user_agent=sdk.text(properties.get("$raw_user_agent"))[:4096],
        source_api=SOURCE_API,
        name="" if pageview else name[:255],
        referrer=sdk.text(properties.get("$referrer"))[: urls.MAX_URL_LENGTH],
        props={} if pageview else sdk.flat_props(properties, skip_prefix="$"),
    )


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


__all__ = ["MAX_BODY", "ingest"]
