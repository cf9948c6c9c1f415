"""Segment's HTTP tracking API, as its libraries speak it: POST /v1/batch.

    Authorization: Basic base64("<write key>:")   (or "writeKey" in the body)
    {"batch": [{"type": "page"|"track"|..., "event"?, "properties"?, "context"?: {"ip",
      "userAgent", "page": {"url", "referrer"}, "locale"}, "messageId", "timestamp"}, ...]}

The write key is the site's tracking id (`footfall sites show`). `page` messages are pageviews,
`track` messages are custom events named by `event`; both are attributed to the page URL they
carry (context.page.url or properties.url), else to the site's home page. The visitor is
context.ip and context.userAgent when the caller passes them through (else the caller's own
address and an unknown agent). `messageId` makes a retried delivery count once. `identify`,
`group`, `alias` and `screen` messages are accepted and not stored: Footfall keeps no user
profiles. Answers: 200 {"success": true}; 400 for a body that is not a batch; 401 for a
missing or unknown write key. A message that cannot be used (no event name, a time out of
range) is skipped alone.
"""

from __future__ import annotations

import base64
import binascii
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

SOURCE_API = "segment"
MAX_BODY = MAX_BATCH_BODY
MAX_MESSAGES = 2500


class SegmentPage(msgspec.Struct):
    url: str | None = None
    referrer: str | None = None


class SegmentContext(msgspec.Struct):
    ip: str | None = None
    userAgent: str | None = None
    page: SegmentPage | None = None
    locale: str | None = None


class SegmentMessage(msgspec.Struct):
    type: str
    event: str | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    context: SegmentContext | None = None
    messageId: str | None = None
    timestamp: dt.datetime | None = None


class SegmentBatch(msgspec.Struct):
    batch: list[msgspec.Raw]
    writeKey: str | None = None


class SegmentResult(msgspec.Struct):
    success: bool


OK = msgspec.json.encode(SegmentResult(success=True))
STORED_TYPES = ("page", "track")


def ingest_batch(rt: Runtime, caller_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    require_json(headers)
    if headers.get("content-encoding", "").strip().lower() == "gzip":  # the libraries' gzip option
        body = sdk.gunzip(body, MAX_BODY)
    if len(body) > MAX_BODY:
        raise body_too_large(MAX_BODY)
    envelope: SegmentBatch = decode_json(body, SegmentBatch)
    key = _basic_user(headers.get("authorization")) or envelope.writeKey
    if not key:
        raise IngestError(401, "missing write key: send it as the Basic auth user name")
    site = rt.sites.by_tracking_id(key)
    if site is None:
        raise IngestError(401, "unknown write key")
    if len(envelope.batch) > MAX_MESSAGES:
        raise IngestError(400, f"a batch holds at most {MAX_MESSAGES} messages", "batch")
    received = now_us()

    def to_hit(message: SegmentMessage) -> Hit | None:
        return _to_hit(site, message, caller_ip, received) if message.type in STORED_TYPES else None

    events = sdk.events_of(rt, site, envelope.batch, SegmentMessage, to_hit, lambda m: m.messageId)
    return Accepted(rt.accept(events) if events else None, OK, 200)


def _to_hit(site: Site, message: SegmentMessage, caller_ip: str, received: int) -> Hit | None:
    context = message.context or SegmentContext()
    properties = message.properties or {}
    page_info = context.page or SegmentPage()
    page = sdk.page_or_home(page_info.url or sdk.text(properties.get("url")), site)
    ts = sdk.time_us(message.timestamp, received)
    if ts is None:
        return None
    name = ""
    if message.type == "track":
        name = (message.event or "").strip()[:255]
        if not name:
            return None
    return Hit(
        site_id=site.id,
        kind="event" if message.type == "track" else "pageview",
        page=page,
        ts_us=ts,
        received_us=received,
        ip=visitor_address(context.ip, caller_ip),
        user_agent=(context.userAgent or "")[:4096],
        source_api=SOURCE_API,
        name=name,
        referrer=(page_info.referrer or sdk.text(properties.get("referrer")) or "")[: urls.MAX_URL_LENGTH],
        language=(context.locale or "")[:35],
        props=sdk.flat_props(properties) if message.type == "track" else {},
    )


def _basic_user(authorization: str | None) -> str | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


__all__ = ["MAX_BODY", "ingest_batch"]
