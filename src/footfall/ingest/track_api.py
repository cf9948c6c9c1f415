"""Seed 004: the server API, for backends, webhooks and background jobs.

    X-API-Key: ff_sk_…      the site's secret key (`footfall sites server-key <site>`)
    POST /api/v1/track      {userId | email | visitorId, eventName, properties?, timestamp?, session?}
    POST /api/v1/identify   {userId | email | visitorId, traits: {userId?, email?, name?, …}}
    GET  /api/v1/user-id?visitorId=…   -> {"userId": "ff_usr_…"}

Answers as the seed documents: 202 {"success": true}; errors {"error": …} with 400 (missing or
invalid parameters), 401 (missing or unknown key), 404 (no visitor identified by that email),
429 (past the key's limit for the endpoint; Retry-After says when to come back).

Who the visitor is, and what is kept of it, is `ingest.identities`: by default nothing but
the daily visitor hash. A site that turns on identified visitors keeps traits from /identify
(an email only as a keyed hash), and its events carry the visitor's user id.

`session`: omitted or null, the event is in no visit; "new", it begins a visit of its own;
"latest", it joins the visitor's most recent visit (see pipeline.sessions), or none if there
is none. `timestamp` (ISO 8601; UTC when it has no offset) backfills into its own time.
Events have no page; a `url` property attributes one to that page of the site.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from footfall.api import auth
from footfall.event import SESSION_LATEST, SESSION_NEW, SESSION_NONE
from footfall.ingest import sdk
from footfall.ingest.http import ANONYMOUS_ADDRESS, Accepted, IngestError, decode_json, refuse_if_limited
from footfall.ingest.model import Hit
from footfall.ingest.server_api import now_us
from footfall.meta import Site
from footfall.runtime import Runtime

SOURCE_API = "server_v1"
MAX_BODY = 32 * 1024
MAX_PROPERTIES_BYTES = 10 * 1024  # "max 10KB"
MAX_TRAITS_BYTES = 10 * 1024

VisitorRef = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
EventName = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_-]+$")]


class VisitorFields(msgspec.Struct, kw_only=True):
    """One of these names the visitor (userId first, then visitorId, then email)."""

    userId: VisitorRef | None = None
    visitorId: VisitorRef | None = None
    email: Email | None = None


class TrackRequest(VisitorFields, kw_only=True):
    eventName: EventName
    properties: dict[str, Any] | None = None
    timestamp: dt.datetime | None = None
    session: Literal["latest", "new"] | None = None


class Traits(msgspec.Struct, kw_only=True):
    """The known traits; any other key is kept as custom metadata."""

    userId: VisitorRef | None = None
    email: Email | None = None
    name: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class IdentifyRequest(VisitorFields, kw_only=True):
    traits: dict[str, Any]


class Success(msgspec.Struct):
    success: bool


class UserId(msgspec.Struct):
    userId: str


_encode = msgspec.json.Encoder().encode
OK = _encode(Success(success=True))
_SESSIONS = {None: SESSION_NONE, "new": SESSION_NEW, "latest": SESSION_LATEST}
_KNOWN_TRAITS = frozenset(Traits.__struct_fields__)


def authenticate(rt: Runtime, headers: Mapping[str, str], endpoint: str) -> Site:
    """The site whose secret key the request carries, within the key's rate for `endpoint`."""
    key = headers.get("x-api-key", "").strip()
    if not key:
        raise IngestError(401, "missing secret key: send X-API-Key: ff_sk_…")
    key_hash = auth.hash_secret(key)
    site = rt.sites.by_server_key_hash(key_hash)
    if site is None:
        raise IngestError(401, "invalid secret key")
    refuse_if_limited(rt.server_api_limits[endpoint].take(key_hash))
    return site


def track(rt: Runtime, headers: Mapping[str, str], body: bytes) -> Accepted:
    site = authenticate(rt, headers, "track")
    record: TrackRequest = _decode(body, TrackRequest)
    received = now_us()
    user_id = _resolve(rt, site, record)
    properties = record.properties or {}
    if len(msgspec.json.encode(properties)) > MAX_PROPERTIES_BYTES:
        raise IngestError(400, f"properties may be at most {MAX_PROPERTIES_BYTES} bytes encoded", "properties")
    try:
        ts = sdk.checked_time_us(record.timestamp, received)
    except IngestError as exc:
        raise IngestError(400, exc.message, exc.field) from None
    hit = Hit(
        site_id=site.id,
        kind="event",
        page=sdk.page_or_home(sdk.text(properties.get("url")), site),
        ts_us=ts,
        received_us=received,
        ip=ANONYMOUS_ADDRESS,  # a backend's call: no visitor address or agent, so no place or device
        user_agent="",
        source_api=SOURCE_API,
        name=record.eventName,
        props=sdk.flat_props(properties),
        session_id=_SESSIONS[record.session],
        user_id=user_id if site.settings.identified_visitors else None,
        visitor_key=user_id,
    )
    event = rt.enricher.enrich(hit)
    return Accepted(None if event is None else rt.accept([event]), OK, 202)


def identify(rt: Runtime, headers: Mapping[str, str], body: bytes) -> Accepted:
    site = authenticate(rt, headers, "identify")
    record: IdentifyRequest = _decode(body, IdentifyRequest)
    if len(msgspec.json.encode(record.traits)) > MAX_TRAITS_BYTES:
        raise IngestError(400, f"traits may be at most {MAX_TRAITS_BYTES} bytes encoded", "traits")
    try:
        known = msgspec.convert(record.traits, Traits)
    except msgspec.ValidationError as exc:
        raise IngestError(400, str(exc), "traits") from None
    if not site.settings.identified_visitors:
        _resolve(rt, site, record, must_exist=False)
        return Accepted(None, OK, 202)  # accepted, and kept nowhere: the site keeps no identities
    current = _resolve(rt, site, record)
    update = rt.identities.update_for(
        site,
        current,
        given_user_id=record.userId,
        email=known.email or record.email,
        new_user_id=known.userId,
        name=known.name,
        traits={k: v for k, v in record.traits.items() if k not in _KNOWN_TRAITS},
    )
    # A small write to the store, off the event loop; 202 once it is committed.
    saved = asyncio.get_running_loop().run_in_executor(None, rt.identities.save, site.id, update)
    return Accepted(saved, OK, 202)


def user_id(rt: Runtime, headers: Mapping[str, str], visitor_id: str | None) -> bytes:
    site = authenticate(rt, headers, "user-id")
    visitor_id = (visitor_id or "").strip()
    if not visitor_id or len(visitor_id) > 256:
        raise IngestError(400, "visitorId is required (1 to 256 characters)", "visitorId")
    return _encode(UserId(rt.identities.user_id_of(site.id, visitor_id)))


def _decode(body: bytes, type_: type[Any]) -> Any:
    try:
        return decode_json(body, type_)
    except IngestError as exc:  # the seed answers every bad parameter with a 400
        raise IngestError(400 if exc.status == 422 else exc.status, exc.message, exc.field) from None


def _resolve(rt: Runtime, site: Site, record: VisitorFields, *, must_exist: bool = True) -> str:
    if record.userId is None and record.visitorId is None and record.email is None:
        raise IngestError(400, "one of userId, email or visitorId is required", "userId")
    if record.userId is not None or record.visitorId is not None:
        found = rt.identities.resolve(site, user_id=record.userId, visitor_id=record.visitorId)
    else:
        found = rt.identities.resolve(site, email=record.email)
    if found is None:
        if not must_exist:
            return ""
        reason = "" if site.settings.identified_visitors else " (this site keeps no identified visitors)"
        raise IngestError(404, f"visitor not found: no visitor was identified with this email{reason}", "email")
    return found


__all__ = ["MAX_BODY", "identify", "track", "user_id"]
