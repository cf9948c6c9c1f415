"""`Event`: the one normalized record that flows from enrichment to the store.

It holds derived fields only: no IP, no user agent, no query string. Its field order is the
column order of the events table, so the store and the spool share this single definition.
"""

from __future__ import annotations

import msgspec

PAGEVIEW = "pageview"
CUSTOM_EVENT = "event"


class Event(msgspec.Struct, array_like=True, kw_only=True):
    event_id: str  # UUIDv7, generated at ingest; the replay key
    site_id: int
    ts: int  # analytics time, microseconds since the Unix epoch, UTC
    received_at: int  # microseconds since the Unix epoch, UTC
    kind: str
    name: str
    hostname: str
    pathname: str
    referrer_host: str
    referrer_path: str
    source: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_term: str
    utm_content: str
    visitor_id: int  # keyed 64-bit hash; see enrich.visitors
    # Explicit session ids from the caller are kept here until the writer turns every record's
    # session into the 64-bit `session_id` column (see pipeline.sessions).
    session_key: str | None
    session_id: int
    page_id: str | None
    user_id: str | None
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str
    country: str
    region: str
    city: str
    language: str
    screen_width: int | None
    props: dict[str, str]
    revenue_amount: float | None
    revenue_currency: str | None
    source_api: str


EVENT_FIELDS: tuple[str, ...] = Event.__struct_fields__
# Columns of the events table: everything but the caller's raw session key.
STORED_FIELDS: tuple[str, ...] = tuple(f for f in EVENT_FIELDS if f != "session_key")
