"""Seed 000: the server-side tracking API.

POST /api/ingest/server/pageview and /api/ingest/server/event take one record each;
POST /api/ingest/server/batch (ours) takes up to 1,000 mixed records. Auth is a token with
`site.manage_data` for the site named by the hostname of `url`. Success is 202 with an empty
body; errors are `{"error": ..., "field": ...}` with the contract's status codes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from footfall.api import auth
from footfall.enrich import urls
from footfall.event import Event
from footfall.ingest.http import (
    Accepted,
    IngestError,
    body_too_large,
    canonical_ip,
    check_declared_length,
    decode_json,
    malformed,
    require_json,
    validation_field,
    validation_message,
)
from footfall.ingest.model import Hit, PropValue
from footfall.meta import Token
from footfall.runtime import Runtime

SOURCE_API = "server"
MAX_BODY = 64 * 1024
MAX_BATCH_RECORDS = 1000
MAX_BATCH_BODY = 8 * 1024 * 1024
MAX_PROPERTIES = 30
MAX_PROPERTY_KEY = 300
MAX_PROPERTY_VALUE = 2000
MAX_FUTURE_US = 3600 * 1_000_000  # a timestamp at most an hour ahead of the server's clock
EARLIEST_US = 662_688_000 * 1_000_000  # 1991-01-01T00:00:00Z

Str2k = Annotated[str, msgspec.Meta(max_length=urls.MAX_URL_LENGTH)]
# Not beginning with a NUL: that marks the session modes of event.SESSION_*.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\u0000]")]
Pixels = Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class ServerRecord(msgspec.Struct, kw_only=True):
    """One pageview or event, as seed 000 documents it. Unknown fields (utm_*) are ignored."""

    url: Str2k
    timestamp: dt.datetime
    visitor_ip: Annotated[str, msgspec.Meta(min_length=2, max_length=64)]
    user_agent: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    name: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    referrer: Str2k | None = None
    language: Annotated[str, msgspec.Meta(max_length=35)] | None = None
    session_id: Id | None = None
    page_id: Id | None = None
    properties: dict[str, PropValue] | None = None
    screen_width: Pixels | None = None
    screen_height: Pixels | None = None
    viewport_width: Pixels | None = None
    viewport_height: Pixels | None = None
    dnt: bool | None = None


class BatchRecord(ServerRecord, kw_only=True):
    type: Literal["pageview", "event"]
    # Ours, optional: the caller's id of the record (e.g. the log importer's line id). A record
    # sent again with the same id, in any batch, is stored once (see sdk.derived_event_id).
    id: Id | None = None


class BatchEnvelope(msgspec.Struct):
    events: list[msgspec.Raw]


class BatchResult(msgspec.Struct):
    accepted: int
    rejected: list[dict[str, Any]]


_batch_encoder = msgspec.json.Encoder()


def authorize(rt: Runtime, headers: Mapping[str, str]) -> Token:
    return auth.authorize(rt.tokens, headers, auth.SCOPE_MANAGE_DATA)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def utc_us(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise IngestError(422, "timestamp must be RFC3339 with a time zone offset or Z", "timestamp")
    return (moment - _EPOCH) // _MICROSECOND  # exact integer arithmetic, in C


def in_time_range(ts_us: int, now_us: int) -> int:
    """`ts_us` if a record may carry that time (1991 to an hour ahead), else 422 on `timestamp`.
    Every contract that takes a caller's time checks it here."""
    if ts_us > now_us + MAX_FUTURE_US:
        raise IngestError(422, "timestamp is more than an hour in the future", "timestamp")
    if ts_us < EARLIEST_US:
        raise IngestError(422, "timestamp is before 1991", "timestamp")
    return ts_us


def to_hit(rt: Runtime, record: ServerRecord, kind: str, token: Token, now_us: int) -> Hit:
    """Validate one record into a Hit."""
    try:
        page = urls.split_page_url(record.url)
    except ValueError as exc:
        raise IngestError(422, f"url {exc}", "url") from None
    ts_us = in_time_range(utc_us(record.timestamp), now_us)
    ip = canonical_ip(record.visitor_ip)
    if ip is None:
        raise IngestError(422, "visitor_ip must be an IPv4 or IPv6 address", "visitor_ip")
    name = ""
    if kind == "event":
        name = (record.name or "").strip()
        if not name:
            raise IngestError(422, "name is required for events", "name")
    props = record.properties or {}
    if len(props) > MAX_PROPERTIES:
        raise IngestError(422, f"properties has more than {MAX_PROPERTIES} keys", "properties")
    for key, value in props.items():
        if not key or len(key) > MAX_PROPERTY_KEY:
            raise IngestError(422, f"property names are 1 to {MAX_PROPERTY_KEY} characters", "properties")
        if isinstance(value, str) and len(value) > MAX_PROPERTY_VALUE:
            raise IngestError(422, f"property values are at most {MAX_PROPERTY_VALUE} characters", f"properties.{key}")
    site = rt.sites.by_hostname(page.hostname)
    if site is None:
        raise IngestError(404, f"no site is configured for {page.hostname}", "url")
    if not auth.allows_site(token, site.id):
        raise IngestError(403, f"token may not write to {site.domain}", "url")
    return Hit(
        site_id=site.id,
        kind="event" if kind == "event" else "pageview",
        page=page,
        ts_us=ts_us,
        received_us=now_us,
        ip=ip,
        user_agent=record.user_agent,
        source_api=SOURCE_API,
        name=name,
        referrer=record.referrer or "",
        language=(record.language or "").strip(),
        session_id=record.session_id,
        page_id=record.page_id,
        props=props,
        screen_width=record.screen_width,
        dnt=bool(record.dnt),
    )


def now_us() -> int:
    return time.time_ns() // 1000


def ingest_one(rt: Runtime, kind: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    """Single-record endpoints: raises IngestError, or hands the event to the spool."""
    token = authorize(rt, headers)
    require_json(headers)
    if len(body) > MAX_BODY:
        raise body_too_large(MAX_BODY)
    record = decode_json(body, ServerRecord)
    event = rt.enricher.enrich(to_hit(rt, record, kind, token, now_us()))
    return Accepted(None if event is None else rt.accept([event]), b"")


def ingest_batch(rt: Runtime, headers: Mapping[str, str], body: bytes) -> Accepted:
    token = authorize(rt, headers)
    require_json(headers)
    if len(body) > MAX_BATCH_BODY:
        raise body_too_large(MAX_BATCH_BODY)
    raw = decode_json(body, list[msgspec.Raw] | BatchEnvelope)
    items: list[msgspec.Raw] = raw.events if isinstance(raw, BatchEnvelope) else raw
    if len(items) > MAX_BATCH_RECORDS:
        raise IngestError(422, f"a batch holds at most {MAX_BATCH_RECORDS} records", "events")
    received = now_us()
    events: list[Event] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            try:
                record = msgspec.json.decode(item, type=BatchRecord)
            except msgspec.ValidationError as exc:
                raise IngestError(422, validation_message(exc), validation_field(exc)) from None
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise malformed(exc) from None  # bad bytes inside this record only: reject just it
            hit = to_hit(rt, record, record.type, token, received)
        except IngestError as exc:
            rejected.append({"index": index, "error": exc.message, "field": exc.field})
            continue
        event = rt.enricher.enrich(hit)
        if event is not None:
            if record.id is not None:
                from footfall.ingest.sdk import derived_event_id  # sdk imports this module

                event.event_id = derived_event_id(SOURCE_API, hit.site_id, record.id)
            events.append(event)
    return Accepted(
        rt.accept(events) if events else None,
        _batch_encoder.encode(BatchResult(accepted=len(items) - len(rejected), rejected=rejected)),
    )


__all__ = ["MAX_BATCH_BODY", "MAX_BODY", "check_declared_length", "ingest_batch", "ingest_one"]
