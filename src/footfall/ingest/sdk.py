"""What the adapters for existing analytics SDKs (Segment, PostHog) share: compressed bodies,
their nested properties made flat, their timestamps, their ids made Footfall event ids."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import zlib
from collections.abc import Callable, Mapping
from hashlib import blake2b
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from footfall.enrich import urls
from footfall.event import Event
from footfall.ingest.http import IngestError
from footfall.ingest.model import Hit, PropValue
from footfall.ingest.server_api import MAX_PROPERTIES, in_time_range, utc_us
from footfall.meta import Site

if TYPE_CHECKING:
    from footfall.runtime import Runtime

M = TypeVar("M")

MAX_PROP_TEXT = 2000


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress at most `limit` + 1 bytes: a small bomb cannot fill memory."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as f:
            return f.read(limit + 1)
    except (OSError, EOFError, zlib.error):
        raise IngestError(400, "body is not valid gzip") from None


def flat_props(properties: Mapping[str, Any], skip_prefix: str | None = None) -> dict[str, PropValue]:
    """SDK properties nest; Footfall's are flat: nested values are kept as JSON text. Keys
    starting with `skip_prefix` (an SDK's own bookkeeping, e.g. PostHog's "$lib") are left out."""
    flat: dict[str, PropValue] = {}
    for key, value in properties.items():
        if len(flat) >= MAX_PROPERTIES:
            break
        if value is None or not key or (skip_prefix and key.startswith(skip_prefix)):
            continue
        if isinstance(value, str | int | float | bool):
            flat[key[:300]] = value
        else:
            flat[key[:300]] = msgspec.json.encode(value).decode()[:MAX_PROP_TEXT]
    return flat


def time_us(moment: dt.datetime | None, received: int) -> int | None:
    """A message's time in microseconds, the time of receipt when it has none; None when out
    of range (before 1991, more than an hour ahead)."""
    try:
        return checked_time_us(moment, received)
    except IngestError:
        return None


def checked_time_us(moment: dt.datetime | None, received: int) -> int:
    """As `time_us`, but a time out of range is a 422 on `timestamp`. SDK times without a
    zone are UTC, as their libraries mean them."""
    if moment is None:
        return received
    try:
        return in_time_range(utc_us(moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)), received)
    except OverflowError:
        raise IngestError(422, "timestamp is out of range", "timestamp") from None


def derived_event_id(namespace: str, site_id: int, message_id: str) -> str:
    """A stable event id per site and SDK message id, so a retried delivery is stored once."""
    digest = bytearray(
        blake2b(f"{namespace}\x00{site_id}\x00{message_id}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
    )
    # What str(uuid.UUID(bytes=..., version=4)) gives, in half the time (the log importer
    # derives one per line): the version and variant bits set, then the 8-4-4-4-12 hex form.
    digest[6] = digest[6] & 0x0F | 0x40
    digest[8] = digest[8] & 0x3F | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def events_of(
    rt: Runtime,
    site: Site,
    items: list[msgspec.Raw],
    message_type: type[M],
    to_hit: Callable[[M], Hit | None],
    message_id: Callable[[M], str | None],
) -> list[Event]:
    """Each SDK message that counts as an Event: decoded and judged alone (an unusable one
    never costs the others), enriched, and given a stable id from its message id so that a
    retried delivery is stored once."""
    events: list[Event] = []
    for item in items:
        try:
            message = msgspec.json.decode(item, type=message_type)
        except (msgspec.DecodeError, UnicodeDecodeError):  # ValidationError is a DecodeError
            continue
        hit = to_hit(message)
        if hit is None:
            continue
        event = rt.enricher.enrich(hit)
        if event is None:
            continue
        ref = message_id(message)
        if ref and event.kind == hit.kind:  # an event, not a bot's count
            event.event_id = derived_event_id(message_type.__name__, site.id, ref)
        events.append(event)
    return events


def page_or_home(url: str, site: Site) -> urls.PageUrl:
    """The page an SDK message names, else the site's home page: SDK events need not carry one."""
    try:
        return urls.split_page_url(url or f"https://{site.domain}/")
    except ValueError:
        return urls.split_page_url(f"https://{site.domain}/")
