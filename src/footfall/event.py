"""`Event`: the one normalized record that flows from enrichment to the store.

It holds derived fields only: no IP, no user agent, no query string. It is what the spool
holds (one JSON object per record, see `encode_event`) and, with the writer's `session_id`
in place of the caller's `session_key`, a row of the events table.
"""

from __future__ import annotations

import msgspec

PAGEVIEW = "pageview"
CUSTOM_EVENT = "event"
# Hits that are not events still travel the spool, so their counts are as durable as events:
AI_FETCH = "ai_fetch"  # a fetch by an AI crawler or assistant: a row of the AI-fetch table
DROPPED = "dropped"  # a bot, referrer-spam or excluded hit: counted per `name` (the reason)
EVENT_KINDS = (PAGEVIEW, CUSTOM_EVENT)

# Session modes a contract may give in `session_key` instead of a caller's key (seed 004's
# `session`). They begin with a NUL, which no caller's key may hold (see ingest.server_api.Id).
SESSION_MODE_PREFIX = "\x00"
SESSION_NONE = "\x00none"  # no session: the event is in no visit (a server event's default)
SESSION_LATEST = "\x00latest"  # the visitor's most recent visit, if one was under way in the last day
SESSION_NEW = "\x00new"  # a visit of its own, begun by this event
# Session ids are 64-bit; the top bit marks explicit sessions (a caller's key), so the two
# kinds never mix. An implicit visit's id is its visitor id xor its start time times this odd
# constant (pipeline.sessions.implicit_session_id; the store computes the same in its engine).
SESSION_EXPLICIT_BIT = 1 << 63
SESSION_ID_MIX = 0x9E37_79B9_7F4A_7C15  # 2**64 / golden ratio: multiplying by it permutes 64-bit values
# A visitor id is keyed by the UTC day of its event's time (enrich.visitors.SaltRing), so all
# events of one visitor id, and of an implicit visit, lie in one such day (the store relies on
# it to bound its search for stored visits).
VISITOR_DAY_US = 86_400_000_000

# Why a hit was dropped (the `name` of a DROPPED record).
DROP_BOT = "bot"
DROP_SPAM = "referrer_spam"
DROP_IP = "excluded_ip"
DROP_COUNTRY = "excluded_country"
DROP_PATH = "excluded_path"


# gc=False: an Event holds no cycles, and untracked structs keep the garbage collector's
# passes over hundreds of thousands of live events off the ingest path. omit_defaults: the
# spooled JSON carries only the fields a record has, which halves what is encoded, fsync'd
# and parsed again by the store (it reads a missing field as its default).
#
# Not keyword-only, and in this order (required fields first, the rarely set ones last): the
# enricher builds one Event per hit positionally, which msgspec does in a quarter of the time
# keyword arguments take (0.27 against 0.98 µs, a seventh of all enrichment). Everyone else
# uses keywords. The table's column order is the store's own (it inserts by name).
class Event(msgspec.Struct, gc=False, omit_defaults=True):
    site_id: int
    ts: int  # analytics time, microseconds since the Unix epoch, UTC
    received_at: int  # microseconds since the Unix epoch, UTC
    kind: str
    name: str
    visitor_id: int  # keyed 64-bit hash; see enrich.visitors
    source_api: str
    hostname: str = ""
    pathname: str = ""
    referrer_host: str = ""
    referrer_path: str = ""
    source: str = ""  # display name: "Google", "Hacker News", or the referring host
    channel: str = ""  # search, social, ai, email, referral, paid or direct
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device: str = ""
    country: str = ""
    region: str = ""
    city: str = ""
    # The caller's explicit session id; the writer turns every record's session into the
    # 64-bit `session_id` column (see pipeline.sessions).
    session_key: str | None = None
    page_id: str | None = None  # None for a pageview: the store assigns a UUIDv7
    user_id: str | None = None
    language: str = ""
    screen_width: int | None = None
    props: dict[str, str] = msgspec.field(default_factory=dict)
    revenue_amount: float | None = None
    revenue_currency: str | None = None
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    # A caller-derived id (e.g. the log importer's, from file content and line) or None: the
    # store then assigns a UUIDv7 at insert, off the ingest path. Replays of a spool segment
    # are made idempotent by the spool ledger, not by this id.
    event_id: str | None = None
    # Only for AI_FETCH and DROPPED records; never columns of the events table.
    bot: str = ""  # e.g. "GPTBot"
    bot_family: str = ""  # the operator, e.g. "OpenAI"
    ai_kind: str = ""  # training, search or assistant
    status_code: int | None = None  # as forwarded from edge or origin logs
    content_type: str = ""
    response_ms: float | None = None
    bytes_served: int | None = None


EVENT_FIELDS: tuple[str, ...] = Event.__struct_fields__
BOT_FIELDS = ("bot", "bot_family", "ai_kind", "status_code", "content_type", "response_ms", "bytes_served")
# Columns of the events table: the caller's raw session key is replaced by the session id.
STORED_FIELDS: tuple[str, ...] = tuple(
    "session_id" if f == "session_key" else f for f in EVENT_FIELDS if f not in BOT_FIELDS
)

# The spool's record format. JSON rather than msgpack so the store can parse a whole batch in
# its own engine (DuckDB's json_transform) without building Python objects per event.
_encoder = msgspec.json.Encoder()
encode_event = _encoder.encode
# Events as newline-ended records (the spool's frame_lines), in one call.
encode_event_lines = _encoder.encode_lines
