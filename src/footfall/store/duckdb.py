"""The embedded store: one DuckDB file in the data directory.

DuckDB lets a single process open a file for writing. The server is that process while it
runs; management commands from other processes reach it over the control socket (see
`footfall.control`) instead of opening the file themselves.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import msgspec

from footfall.event import (
    AI_FETCH,
    BOT_FIELDS,
    DROP_BOT,
    DROPPED,
    EVENT_FIELDS,
    EVENT_KINDS,
    SESSION_EXPLICIT_BIT,
    SESSION_ID_MIX,
    SESSION_MODE_PREFIX,
    STORED_FIELDS,
    VISITOR_DAY_US,
)
from footfall.memory import duckdb_pages_returned_at_once
from footfall.meta import ServerKey, ShareLink, Site, SiteSettings, Token, User
from footfall.query.model import Query, QueryError, QueryResult
from footfall.store.base import (
    IdentityUpdate,
    SessionKeys,
    SessionMerge,
    SessionSpan,
    Staged,
    StepMatch,
    StoreError,
    VisitorWindows,
)
from footfall.store.salts import SaltFile
from footfall.store.sql import (
    VISIT_COLUMNS,
    VISIT_EVENT_FILTER,
    VISIT_FIRST_COLUMNS,
    VISIT_PAGE_COLUMNS,
    compile_query,
    merge_visits,
    rebuild_visits_sql,
    visit_rows_of_events,
)

if TYPE_CHECKING:  # config imports enrichment; the store needs only the type
    from footfall.config import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# DuckDB folds its WAL into the database file (compressing row groups) once the WAL passes
# this size. Its default, 16 MiB, is ~40,000 events: during a burst every few batches paid
# for a checkpoint (half of the writer's commit time). The writer checkpoints in its quiet
# moments instead (see pipeline.writer), and this bounds the WAL, its replay after a crash,
# and the uncompressed rows DuckDB keeps in memory until a checkpoint (~140 MB at this size)
# when a backlog keeps the writer from resting.
CHECKPOINT_THRESHOLD = "64MiB"

# Column types of the events table, in its column order: one per `STORED_FIELDS` entry (one
# definition, see event.py). Rows are inserted by column name, so the orders may differ.
EVENT_COLUMN_TYPES: dict[str, str] = {
    "event_id": "UUID NOT NULL",
    "site_id": "UINTEGER NOT NULL",
    "ts": "TIMESTAMP NOT NULL",
    "received_at": "TIMESTAMP NOT NULL",
    "kind": "VARCHAR NOT NULL",
    "name": "VARCHAR NOT NULL",
    "hostname": "VARCHAR NOT NULL",
    "pathname": "VARCHAR NOT NULL",
    "referrer_host": "VARCHAR NOT NULL",
    "referrer_path": "VARCHAR NOT NULL",
    "source": "VARCHAR NOT NULL",
    "channel": "VARCHAR NOT NULL",
    "utm_source": "VARCHAR NOT NULL",
    "utm_medium": "VARCHAR NOT NULL",
    "utm_campaign": "VARCHAR NOT NULL",
    "utm_term": "VARCHAR NOT NULL",
    "utm_content": "VARCHAR NOT NULL",
    "visitor_id": "UBIGINT NOT NULL",
    "session_id": "UBIGINT",  # NULL: a server event sent with no session (seed 004)
    "page_id": "VARCHAR",
    "user_id": "VARCHAR",
    "browser": "VARCHAR NOT NULL",
    "browser_version": "VARCHAR NOT NULL",
    "os": "VARCHAR NOT NULL",
    "os_version": "VARCHAR NOT NULL",
    "device": "VARCHAR NOT NULL",
    "country": "VARCHAR NOT NULL",
    "region": "VARCHAR NOT NULL",
    "city": "VARCHAR NOT NULL",
    "language": "VARCHAR NOT NULL",
    "screen_width": "INTEGER",
    "props": "MAP(VARCHAR, VARCHAR) NOT NULL",
    "revenue_amount": "DECIMAL(18, 4)",
    "revenue_currency": "VARCHAR",
    "source_api": "VARCHAR NOT NULL",
}
assert sorted(EVENT_COLUMN_TYPES) == sorted(STORED_FIELDS), "events table and event.STORED_FIELDS disagree"

# Fetches by AI crawlers and assistants (see enrich.bots): which bot read which page.
AI_FETCH_COLUMN_TYPES: dict[str, str] = {
    "site_id": "UINTEGER NOT NULL",
    "ts": "TIMESTAMP NOT NULL",
    "bot": "VARCHAR NOT NULL",
    "bot_family": "VARCHAR NOT NULL",
    "ai_kind": "VARCHAR NOT NULL",
    "hostname": "VARCHAR NOT NULL",
    "pathname": "VARCHAR NOT NULL",
    "status_code": "SMALLINT",
    "content_type": "VARCHAR NOT NULL",
    "response_ms": "DOUBLE",
    "bytes_served": "BIGINT",
    "source_api": "VARCHAR NOT NULL",
}

# The visits rollup (see store/sql.py, where its columns are defined and why it is kept this way).
VISIT_COLUMN_TYPES: dict[str, str] = {
    "site_id": "UINTEGER NOT NULL",
    "session_id": "UBIGINT NOT NULL",
    "visitor_id": "UBIGINT NOT NULL",
    "s_start": "TIMESTAMP NOT NULL",
    "s_end": "TIMESTAMP NOT NULL",
    "n": "UINTEGER NOT NULL",  # events (engagement events are in no visit)
    "pv": "UINTEGER NOT NULL",  # pageviews
    **{c: EVENT_COLUMN_TYPES[c] for c in VISIT_FIRST_COLUMNS},
    "pv_first": "TIMESTAMP",  # NULL: a visit without pageviews (server events only)
    "pv_last": "TIMESTAMP",
    **{c: "VARCHAR" for c in VISIT_PAGE_COLUMNS},
}
assert tuple(VISIT_COLUMN_TYPES) == VISIT_COLUMNS, "visits table and sql.VISIT_COLUMNS disagree"
# How a spooled event's JSON fields are read into the staging table: column types without
# constraints, except the times (integer microseconds in the spool) and the caller's key.
_STAGED_TYPES: dict[str, str] = {
    **{f: EVENT_COLUMN_TYPES[f].replace(" NOT NULL", "") for f in STORED_FIELDS if f != "session_id"},
    **{f: AI_FETCH_COLUMN_TYPES.get(f, "VARCHAR").replace(" NOT NULL", "") for f in BOT_FIELDS},
    "event_id": "VARCHAR",
    "ts": "BIGINT",
    "received_at": "BIGINT",
    "session_key": "VARCHAR",
    "revenue_amount": "DOUBLE",
}
assert set(_STAGED_TYPES) == set(EVENT_FIELDS), "staging and Event disagree"
_STAGED_STRUCT = "{" + ", ".join(f'"{f}": "{t}"' for f, t in _STAGED_TYPES.items()) + "}"
# A record missing one of these is not an event this version wrote: counted, not loaded.
_REQUIRED = ("site_id", "ts", "received_at", "kind", "visitor_id")
_EVENT_KINDS_SQL = ", ".join(f"'{k}'" for k in EVENT_KINDS)

# The insert from staging: what the ingest path left out is made here, in the engine.
# A staged row's entry in staged_session_ids (see _STAGED_SESSION_IDS).
_SESSION_OF_STAGED = "x.ids[s.i + 1]"
_INSERT_EXPRESSIONS: dict[str, str] = {
    "event_id": "coalesce(s.event_id::UUID, uuidv7())",
    "ts": "make_timestamp(s.ts)",
    "received_at": "make_timestamp(s.received_at)",
    "session_id": f"{_SESSION_OF_STAGED}.id",
    "page_id": "coalesce(s.page_id, CASE WHEN s.kind = 'pageview' THEN uuidv7()::VARCHAR END)",
    "props": "coalesce(s.props, MAP {})",
    "revenue_amount": "s.revenue_amount::DECIMAL(18, 4)",
}


def _staged_value(f: str) -> str:
    """A staged record's value for events column `f`, as inserted."""
    plain = f"coalesce(s.{f}, '')" if EVENT_COLUMN_TYPES[f] == "VARCHAR NOT NULL" else f"s.{f}"
    return _INSERT_EXPRESSIONS.get(f, plain)


_INSERT_SELECT = ", ".join(_staged_value(f) for f in STORED_FIELDS)
_INSERT_COLUMNS = ", ".join(STORED_FIELDS)
assert chr(0) == SESSION_MODE_PREFIX, "stage_batch tells explicit session keys by chr(0)"
# A staged batch's session ids as one list indexed by the staged row number `i`: an entry
# {'id': session id, NULL for a record of no session} for each event, NULL for the other
# records. The inserts look the ids up in it rather than join the staging table with
# staged_sessions: DuckDB estimated the staging side of that join at a fifth of its rows (its
# filters) and built the join's hash table from it, the wide side, not from the two columns of
# staged_sessions. At 27,000 events that held the visit parts' insert at +32 MB over what it
# started with, +22 with the list; the events' insert +20 and +17.
_STAGED_SESSION_IDS = (
    "CREATE OR REPLACE TEMP TABLE staged_session_ids AS"
    " SELECT list(CASE WHEN x.i IS NOT NULL THEN {'id': x.session_id} END ORDER BY g.i) AS ids"
    " FROM range(0, (SELECT coalesce(max(i) + 1, 0) FROM staged)) g(i) LEFT JOIN staged_sessions x ON x.i = g.i"
)
# The staged events (of sites that still exist: a site removed while its events waited in the
# spool loses them), as `s`, beside their session ids `x`.
_STAGED_EVENTS = (
    f"staged s, staged_session_ids x WHERE {_SESSION_OF_STAGED} IS NOT NULL AND s.site_id IN (SELECT id FROM sites)"
)
# The columns of a staged batch's events that visits are made of.
_STAGED_VISIT_EVENTS = (
    f"(SELECT {_SESSION_OF_STAGED}.id AS session_id, "
    + ", ".join(
        f"{_staged_value(f)} AS {f}"
        for f in ("site_id", "visitor_id", "ts", "kind", "name", "pathname", "hostname", *VISIT_FIRST_COLUMNS)
    )
    + f" FROM {_STAGED_EVENTS})"
    + f" e WHERE {VISIT_EVENT_FILTER}"
)


# A batch's events as visit parts: one row per visit it touches (see commit_staged).
_INSERT_VISIT_PARTS = f"INSERT INTO visit_parts {merge_visits(f'({visit_rows_of_events(_STAGED_VISIT_EVENTS)})')}"
# Pending visit parts are folded into the visits table, at the latest, once they hold this many
# rows: queries merge them in, and this bounds that merge (see commit_staged).
FOLD_PARTS_ROWS = 200_000
FOLD_SLICE_VISITS = 25_000


def _lower_bound(a: int | None, b: int | None) -> int | None:
    """The earlier of two bounds, None (no bound) if either is."""
    return None if a is None or b is None else min(a, b)


_INSERT_AI_FETCHES = (
    f"INSERT INTO ai_fetches ({', '.join(AI_FETCH_COLUMN_TYPES)}) SELECT "
    + ", ".join(
        "make_timestamp(s.ts)" if f == "ts"
        else f"coalesce(s.{f}, '')" if AI_FETCH_COLUMN_TYPES[f] == "VARCHAR NOT NULL"
        else f"s.{f}"
        for f in AI_FETCH_COLUMN_TYPES
    )
    + f" FROM staged s WHERE s.kind = '{AI_FETCH}' AND s.site_id IN (SELECT id FROM sites)"
)
# An AI fetch is also a bot hit that was not counted as a visit.
_COUNT_DROPPED = f"""
    INSERT INTO dropped_hits
    SELECT s.site_id, make_timestamp(s.ts)::DATE AS day,
           CASE WHEN s.kind = '{AI_FETCH}' THEN '{DROP_BOT}' ELSE coalesce(s.name, '') END AS reason,
           coalesce(s.bot, '') AS bot, coalesce(any_value(s.bot_family), '') AS bot_family, count(*) AS hits
    FROM staged s
    WHERE s.kind IN ('{AI_FETCH}', '{DROPPED}') AND s.site_id IN (SELECT id FROM sites)
    GROUP BY 1, 2, 3, 4
    ON CONFLICT DO UPDATE SET hits = hits + excluded.hits
"""

# Spooled JSON to the staging table; `i` is the record's position in the batch, for the
# session ids to join on. Records missing a required field are deleted afterwards rather than
# filtered in the same statement: a filter on the unnested fields made DuckDB evaluate the
# JSON transform again for each of them (330 against 100 ms for 50,000 records).
_STAGE = (
    "CREATE OR REPLACE TEMP TABLE staged AS "
    f"SELECT i, unnest(json_transform(payload, '{_STAGED_STRUCT}')) FROM {{source}}"
)
# A chunk of a batch's records, a record a line in $1, as rows (i, payload) numbered from $2;
# the two unnests of one select go in step.
_STAGE_LINES = (
    "INSERT INTO staged_lines SELECT generate_subscripts(l, 1) - 1 + $2 AS i, unnest(l) AS payload"
    " FROM (SELECT string_split($1, chr(10)) AS l)"
)
# How much of a batch goes to DuckDB in one string: 2 MiB is ~4,000 records.
STAGE_CHUNK_BYTES = 2 << 20
# -- sessions of a batch, in the engine (pipeline/sessions.py states the rules) ------------------
#
# The implicit events of the batch in runs: a visitor's events sorted by time, a new run after
# a gap of `$gap` or more. Runs of a visitor are thus at least the gap apart.
_BATCH_RUNS = f"""
CREATE OR REPLACE TEMP TABLE batch_runs AS
SELECT i, site_id, visitor_id, ts,
       sum(new_run) OVER (PARTITION BY site_id, visitor_id ORDER BY ts, i ROWS UNBOUNDED PRECEDING) AS run
FROM (
    SELECT i, site_id, visitor_id, ts,
           CASE WHEN ts - lag(ts) OVER (PARTITION BY site_id, visitor_id ORDER BY ts, i) < $gap
                THEN 0 ELSE 1 END AS new_run
    FROM staged WHERE kind IN ({_EVENT_KINDS_SQL}) AND session_key IS NULL
)
"""
# The runs and the stored implicit visits ("spans") of their visitors near them, in one order
# per visitor (by start), cut into components. A run and a span are connected when an event
# of the run lies within the gap of the span (for a run, whose events are under a gap apart,
# that is: each starts before the other's end plus the gap). Runs are a gap apart, and so are
# stored spans (checked: _SPANS_OVERLAP), so only a run and a span can be connected, and the
# elements sorted by start split into components exactly where no run before a point reaches a
# span after it, nor a span before it a run after it: four running extremes and a sum.
_ELEMENT_ORDER = "PARTITION BY site_id, visitor_id ORDER BY e_start, run NULLS FIRST, session_id"
_COMPONENTS = f"""
CREATE OR REPLACE TEMP TABLE batch_elements AS
WITH runs AS (
    SELECT site_id, visitor_id, run, min(ts) AS e_start, max(ts) AS e_end FROM batch_runs GROUP BY ALL
), windows AS (
    SELECT site_id, visitor_id, make_timestamp(min(e_start) - $gap) AS lo, make_timestamp(max(e_end) + $gap) AS hi
    FROM runs GROUP BY ALL
), touched AS (
    SELECT DISTINCT e.site_id, e.visitor_id, e.session_id
    FROM events e JOIN windows w
      ON e.site_id = w.site_id AND e.visitor_id = w.visitor_id AND e.ts BETWEEN w.lo AND w.hi
    WHERE e.ts BETWEEN make_timestamp($lo) AND make_timestamp($hi) AND e.session_id < {SESSION_EXPLICIT_BIT}
), spans AS (
    SELECT e.site_id, e.visitor_id, e.session_id, epoch_us(min(e.ts)) AS e_start, epoch_us(max(e.ts)) AS e_end
    FROM events e JOIN touched t
      ON e.site_id = t.site_id AND e.visitor_id = t.visitor_id AND e.session_id = t.session_id
    WHERE e.ts >= make_timestamp($day_lo) AND e.ts < make_timestamp($day_hi)
    GROUP BY ALL
), elements AS (
    SELECT site_id, visitor_id, e_start, e_end, run, NULL::UBIGINT AS session_id FROM runs
    UNION ALL
    SELECT site_id, visitor_id, e_start, e_end, NULL, session_id FROM spans
), scanned AS (
    SELECT *,
        max(CASE WHEN run IS NOT NULL THEN e_end END) OVER before AS runs_end,
        max(CASE WHEN run IS NULL THEN e_end END) OVER before AS spans_end,
        min(CASE WHEN run IS NULL THEN e_start END) OVER after AS spans_start,
        min(CASE WHEN run IS NOT NULL THEN e_start END) OVER after AS runs_start
    FROM elements
    WINDOW before AS ({_ELEMENT_ORDER} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
           after AS ({_ELEMENT_ORDER} ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
)
SELECT site_id, visitor_id, e_start, e_end, run, session_id, spans_end,
       sum(CASE WHEN spans_start < runs_end + $gap OR runs_start < spans_end + $gap THEN 0 ELSE 1 END)
           OVER ({_ELEMENT_ORDER} ROWS UNBOUNDED PRECEDING) AS comp
FROM scanned
"""
# All of an implicit visit's events lie in its visitor id's UTC day (event.VISITOR_DAY_US). The
# spans of the stored visits a batch touches are thus read from the days around the batch only,
# not from the whole events table (which every batch scanned before: at 1M stored events a
# 2,000-event batch read 998,811 rows for them, and the table's blocks stayed cached in
# DuckDB's buffer pool).
def _visitor_days(lo_us: int, hi_us: int) -> tuple[int, int]:
    """The whole UTC days [start, end) that hold every event of a visitor with an event in
    [lo_us, hi_us]."""
    return lo_us // VISITOR_DAY_US * VISITOR_DAY_US, (hi_us // VISITOR_DAY_US + 1) * VISITOR_DAY_US


# Stored spans closer than the gap to one another: only the session modes make them (a "new"
# visit beside another, a "latest" visit stretched over others); the components above would
# join them, so such a batch is assigned one event at a time instead.
_SPANS_OVERLAP = "SELECT count(*) FROM batch_elements WHERE run IS NULL AND e_start < spans_end + $gap"
# Each component with a run is one visit. The batch's first event in it joins the earliest
# stored span if it is near it (in order of time that span is found first, and every merge
# keeps the earlier visit); else that event begins a new visit, earlier than every span.
_IMPLICIT_ID = (
    f"xor(visitor_id, ((min(e_start) FILTER (WHERE run IS NOT NULL))::HUGEINT * {SESSION_ID_MIX}"
    f" % {1 << 64})::UBIGINT) & {SESSION_EXPLICIT_BIT - 1}"
)
_WINNERS = f"""
CREATE OR REPLACE TEMP TABLE batch_winners AS
SELECT site_id, visitor_id, comp,
       CASE WHEN min(e_start) FILTER (WHERE run IS NULL) < min(e_start) FILTER (WHERE run IS NOT NULL) + $gap
            THEN arg_min(session_id, e_start) FILTER (WHERE run IS NULL)
            ELSE {_IMPLICIT_ID} END AS session_id
FROM batch_elements GROUP BY site_id, visitor_id, comp HAVING count(run) > 0
"""
_SESSIONS_OF_BATCH = f"""
CREATE OR REPLACE TEMP TABLE staged_sessions AS
SELECT s.i, coalesce(x.session_id, w.session_id) AS session_id
FROM staged s
LEFT JOIN explicit_ids x ON x.site_id = s.site_id AND x.session_key = s.session_key
LEFT JOIN batch_runs r ON r.i = s.i
LEFT JOIN batch_elements el ON el.site_id = r.site_id AND el.visitor_id = r.visitor_id AND el.run = r.run
LEFT JOIN batch_winners w ON w.site_id = el.site_id AND w.visitor_id = el.visitor_id AND w.comp = el.comp
WHERE s.kind IN ({_EVENT_KINDS_SQL})
"""
# The stored spans of each visit but the winner's merge into it.
_MERGES_OF_BATCH = """
SELECT e.site_id, e.visitor_id, e.session_id, w.session_id, e.e_start, e.e_end
FROM batch_elements e JOIN batch_winners w USING (site_id, visitor_id, comp)
WHERE e.run IS NULL AND e.session_id <> w.session_id
"""

_UNSTAGE_INCOMPLETE = "DELETE FROM staged WHERE " + " OR ".join(f"{f} IS NULL" for f in _REQUIRED)
# Records with a caller-derived event id (an SDK's message id, a log line's content) are
# stored once: the first of a batch, and only if the store does not hold it yet. The events
# table is searched by site and exact time too, so zone maps skip most of it. Run only when
# the batch has such ids: the live contracts leave them to the store (uuidv7 at insert).
_UNSTAGE_DUPLICATES = (
    "DELETE FROM staged WHERE event_id IS NOT NULL AND ("
    " i NOT IN (SELECT min(i) FROM staged WHERE event_id IS NOT NULL GROUP BY event_id)"
    " OR EXISTS (SELECT 1 FROM events e WHERE e.site_id = staged.site_id"
    "  AND e.ts = make_timestamp(staged.ts) AND e.event_id = TRY_CAST(staged.event_id AS UUID))"
    " OR EXISTS (SELECT 1 FROM counted_hits c WHERE c.site_id = staged.site_id"
    "  AND c.ts = make_timestamp(staged.ts) AND c.event_id = TRY_CAST(staged.event_id AS UUID)))"
)
# AI fetches and dropped hits are not rows of the events table; those with a caller-derived
# id (the log importer's bot lines) are remembered here, so a re-import counts them once.
_REMEMBER_COUNTED = (
    "INSERT INTO counted_hits SELECT s.site_id, make_timestamp(s.ts), s.event_id::UUID FROM staged s"
    f" WHERE s.kind IN ('{AI_FETCH}', '{DROPPED}') AND s.event_id IS NOT NULL AND s.site_id IN (SELECT id FROM sites)"
)

_DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    "CREATE SEQUENCE IF NOT EXISTS site_ids START 1",
    """CREATE TABLE IF NOT EXISTS sites (
        id INTEGER PRIMARY KEY DEFAULT nextval('site_ids'),
        domain VARCHAR NOT NULL UNIQUE,
        timezone VARCHAR NOT NULL,
        tracking_id VARCHAR NOT NULL UNIQUE,
        created_at VARCHAR NOT NULL,
        settings VARCHAR NOT NULL DEFAULT '{}')""",
    """CREATE TABLE IF NOT EXISTS tokens (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL UNIQUE,
        secret_hash VARCHAR NOT NULL UNIQUE,
        scopes VARCHAR[] NOT NULL,
        site_ids INTEGER[],
        created_at VARCHAR NOT NULL,
        last_rotated_at VARCHAR)""",
    # Data directories made before site settings existed.
    "ALTER TABLE sites ADD COLUMN IF NOT EXISTS settings VARCHAR DEFAULT '{}'",
    # The server API's secret key (meta.ServerKey as JSON: its hash, never the key).
    "ALTER TABLE sites ADD COLUMN IF NOT EXISTS server_key VARCHAR",
    # Identified visitors (seed 004's /identify, only for sites that turn it on): an alias is a
    # keyed hash of an id or email (see ingest.identities), pointing at the visitor's user id.
    """CREATE TABLE IF NOT EXISTS identity_aliases (
        site_id UINTEGER NOT NULL, alias VARCHAR NOT NULL, user_id VARCHAR NOT NULL,
        PRIMARY KEY (site_id, alias))""",
    """CREATE TABLE IF NOT EXISTS identified_visitors (
        site_id UINTEGER NOT NULL, user_id VARCHAR NOT NULL, email_hash VARCHAR, name VARCHAR,
        traits VARCHAR NOT NULL, first_seen VARCHAR NOT NULL, updated_at VARCHAR NOT NULL,
        PRIMARY KEY (site_id, user_id))""",
    # Salts moved to their own file (store.salts); a data directory from before loses the
    # table, and so its salts: visitor hashes start afresh, which is what rotation does anyway.
    "DROP TABLE IF EXISTS salts",
    # Dashboard accounts (web.accounts): passwords only as argon2 hashes. session_version is
    # in every session cookie; bumping it ends the user's sessions.
    "CREATE SEQUENCE IF NOT EXISTS user_ids START 1",
    """CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY DEFAULT nextval('user_ids'),
        email VARCHAR NOT NULL UNIQUE,
        password_hash VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        created_at VARCHAR NOT NULL,
        last_login_at VARCHAR,
        session_version INTEGER NOT NULL DEFAULT 1)""",
    # Public read-only links to a site's dashboard: the token's sha256, never the token.
    "CREATE SEQUENCE IF NOT EXISTS share_link_ids START 1",
    """CREATE TABLE IF NOT EXISTS share_links (
        id INTEGER PRIMARY KEY DEFAULT nextval('share_link_ids'),
        site_id UINTEGER NOT NULL,
        token_hash VARCHAR NOT NULL UNIQUE,
        created_at VARCHAR NOT NULL,
        revoked_at VARCHAR)""",
    # Spool segments whose events are committed: replaying one after a crash is a no-op.
    "CREATE TABLE IF NOT EXISTS spool_ledger (segment VARCHAR PRIMARY KEY, committed_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS events ("
    + ", ".join(f"{name} {typ}" for name, typ in EVENT_COLUMN_TYPES.items())
    + ")",
    "CREATE TABLE IF NOT EXISTS ai_fetches ("
    + ", ".join(f"{name} {typ}" for name, typ in AI_FETCH_COLUMN_TYPES.items())
    + ")",
    # Ids of AI fetches and dropped hits that came with a caller-derived id (see _REMEMBER_COUNTED).
    "CREATE TABLE IF NOT EXISTS counted_hits ("
    "site_id UINTEGER NOT NULL, ts TIMESTAMP NOT NULL, event_id UUID NOT NULL)",
    # Hits that were not counted, per site, UTC day and reason (and bot, for bots).
    """CREATE TABLE IF NOT EXISTS dropped_hits (
        site_id UINTEGER NOT NULL, day DATE NOT NULL, reason VARCHAR NOT NULL,
        bot VARCHAR NOT NULL, bot_family VARCHAR NOT NULL, hits UBIGINT NOT NULL,
        PRIMARY KEY (site_id, day, reason, bot))""",
    # Batches' pieces of visits not yet folded into the visits rollup (see commit_staged and
    # fold_visits): same columns; queries merge them in (sql.CURRENT_VISITS).
    "CREATE TABLE IF NOT EXISTS visit_parts ("
    + ", ".join(f"{c} {t}" for c, t in VISIT_COLUMN_TYPES.items()) + ")",
]


def _open(path: Path, attempts: int) -> duckdb.DuckDBPyConnection:
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:  # another process holds the write lock
            last = exc
            time.sleep(min(0.05 * 2**attempt, 0.5))
    raise StoreError(
        f"cannot open {path}: another process is using it ({last}). "
        "Is a footfall server running on this data directory with its control socket gone?"
    )


class DuckDBStore:
    @classmethod
    def for_settings(cls, settings: Settings, *, open_attempts: int = 20) -> DuckDBStore:
        """The data directory's store, opened with the settings that concern it: one place for
        the server, the management commands and the importer alike."""
        return cls(settings.database_path, open_attempts=open_attempts, memory_limit=settings.duckdb_memory_limit)

    def __init__(
        self, path: Path, *, open_attempts: int = 20, memory_limit: str | None = None, threads: int | None = None
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._con = _open(path, open_attempts)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._salts = SaltFile(path.with_name("salts.json"))
        self._staged = False  # a batch is in the staging table
        self._staged_rows: list[int] | None = None  # staging rows of the events (staged_session_keys)
        self._staged_with_ids = False  # some staged record has a caller-derived event id
        self._staged_uncounted = 0  # staged AI fetches and dropped hits (not rows of events)
        self._staged_first_us: int | None = None  # the staged events' earliest time, none explicit
        # The pending visit parts: how many rows, and how far back the stored visits they
        # continue can have ended (None: unknown, e.g. parts left by a crash; the fold then
        # reads the whole visits table once).
        self._parts_rows = 0
        self._parts_lo_us: int | None = None
        self._small_loads = 0  # in progress (see small_load)
        self._small_loads_lock = threading.Lock()
        cur = self._cursor()
        if threads:  # queries' threads; DuckDB's default is one a core
            cur.execute(f"SET threads = {int(threads)}")
        row = cur.execute("SELECT current_setting('threads')").fetchone()
        self._threads = int(row[0]) if row else 1
        cur.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        # DuckDB's own allocator (a jemalloc in its library) returns freed pages to the system
        # from background threads; without them it does so only while it allocates, so an idle
        # server kept what its last burst of ingest had used (~40 MB resident).
        cur.execute("SET allocator_background_threads = true")
        if memory_limit:  # a size checked by config.Settings (SET takes no parameters)
            cur.execute(f"SET memory_limit = '{memory_limit}'")
        for stmt in _DDL:
            cur.execute(stmt)
        _add_missing_event_columns(cur)
        _create_visits(cur)
        row = cur.execute("SELECT count(*) FROM visit_parts").fetchone()
        self._parts_rows = int(row[0]) if row else 0
        # Data directories from before events could have no session.
        cur.execute("ALTER TABLE events ALTER COLUMN session_id DROP NOT NULL")
        cur.execute(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
            [str(SCHEMA_VERSION)],
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's cursor in one write transaction, under the write lock: committed when
        the block ends, rolled back if it raises."""
        cur = self._cursor()
        with self._write_lock:
            cur.execute("BEGIN")
            try:
                yield cur
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """One DuckDB connection per thread, all on the same database instance."""
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._con.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            self._local.cur = cur
        return cur

    # -- metadata ---------------------------------------------------------------------------

    def list_sites(self) -> list[Site]:
        rows = self._cursor().execute(
            "SELECT id, domain, timezone, tracking_id, created_at, settings, server_key FROM sites ORDER BY id"
        ).fetchall()
        return [
            Site(id=r[0], domain=r[1], timezone=r[2], tracking_id=r[3], created_at=r[4], settings=_settings(r[5]),
                 server_key=None if r[6] is None else msgspec.json.decode(r[6], type=ServerKey))
            for r in rows
        ]

    def set_server_key(self, site_id: int, key: ServerKey | None) -> None:
        self._cursor().execute(
            "UPDATE sites SET server_key = ? WHERE id = ?",
            [None if key is None else msgspec.json.encode(key).decode(), site_id],
        )

    def update_site_settings(self, site_id: int, settings: SiteSettings) -> None:
        self._cursor().execute(
            "UPDATE sites SET settings = ? WHERE id = ?", [msgspec.json.encode(settings).decode(), site_id]
        )

    def add_site(self, domain: str, timezone: str, tracking_id: str) -> Site:
        created = _now_rfc3339()
        try:
            row = self._cursor().execute(
                "INSERT INTO sites (domain, timezone, tracking_id, created_at) "
                "VALUES (?, ?, ?, ?) RETURNING id",
                [domain, timezone, tracking_id, created],
            ).fetchone()
        except duckdb.ConstraintException as exc:
            raise StoreError(f"site {domain} already exists") from exc
        assert row is not None
        return Site(
            id=row[0], domain=domain, timezone=timezone, tracking_id=tracking_id, created_at=created
        )

    def remove_site(self, site_id: int) -> int:
        """Delete a site and every event of it; returns the number of events deleted."""
        with self._transaction() as cur:
            row = cur.execute("SELECT count(*) FROM events WHERE site_id = ?", [site_id]).fetchone()
            for table in (
                "events", "visits", "visit_parts", "ai_fetches", "dropped_hits", "counted_hits", "identity_aliases",
                "identified_visitors", "share_links",
            ):
                cur.execute(f"DELETE FROM {table} WHERE site_id = ?", [site_id])
            cur.execute("DELETE FROM sites WHERE id = ?", [site_id])
            parts = cur.execute("SELECT count(*) FROM visit_parts").fetchone()
            cur.execute(
                "UPDATE tokens SET site_ids = list_filter(site_ids, lambda x: x != ?) "
                "WHERE site_ids IS NOT NULL",
                [site_id],
            )
        self._parts_rows = int(parts[0]) if parts else 0
        return int(row[0]) if row else 0

    def list_tokens(self) -> list[Token]:
        rows = self._cursor().execute(
            "SELECT id, name, secret_hash, scopes, site_ids, created_at, last_rotated_at "
            "FROM tokens ORDER BY created_at, id"
        ).fetchall()
        return [
            Token(
                id=r[0],
                name=r[1],
                secret_hash=r[2],
                scopes=tuple(r[3]),
                site_ids=None if r[4] is None else tuple(r[4]),
                created_at=r[5],
                last_rotated_at=r[6],
            )
            for r in rows
        ]

    def add_token(self, token: Token) -> None:
        try:
            self._cursor().execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    token.id,
                    token.name,
                    token.secret_hash,
                    list(token.scopes),
                    None if token.site_ids is None else list(token.site_ids),
                    token.created_at,
                    token.last_rotated_at,
                ],
            )
        except duckdb.ConstraintException as exc:
            raise StoreError(f"a token named {token.name!r} already exists") from exc

    def replace_token_secret(self, token_id: str, secret_hash: str, rotated_at: str) -> None:
        self._cursor().execute(
            "UPDATE tokens SET secret_hash = ?, last_rotated_at = ? WHERE id = ?",
            [secret_hash, rotated_at, token_id],
        )

    def delete_token(self, token_id: str) -> None:
        self._cursor().execute("DELETE FROM tokens WHERE id = ?", [token_id])

    # -- salts ------------------------------------------------------------------------------
    # In a file beside the database, not in it: see store.salts.

    def load_salts(self) -> dict[int, bytes]:
        return self._salts.load_salts()

    def save_salt(self, day: int, salt: bytes) -> None:
        self._salts.save_salt(day, salt)

    def delete_salts_before(self, day: int) -> int:
        return self._salts.delete_salts_before(day)

    # -- dashboard accounts and share links -------------------------------------------------

    def cookie_key(self) -> bytes:
        """The key that signs dashboard session cookies (see web.auth): random, made once, kept
        so sessions outlive a restart."""
        return self._meta_secret("cookie_key")

    def list_users(self) -> list[User]:
        rows = self._cursor().execute(
            "SELECT id, email, password_hash, role, created_at, last_login_at, session_version FROM users ORDER BY id"
        ).fetchall()
        return [
            User(id=r[0], email=r[1], password_hash=r[2], role=r[3], created_at=r[4], last_login_at=r[5],
                 session_version=r[6])
            for r in rows
        ]

    def add_user(self, email: str, password_hash: str, role: str, *, only_if_first: bool = False) -> User:
        """Add an account; with `only_if_first`, only while there is none (first-start setup),
        checked in the same transaction so two setups cannot both win."""
        created = _now_rfc3339()
        cur = self._cursor()
        with self._write_lock:
            cur.execute("BEGIN")
            try:
                if only_if_first and cur.execute("SELECT count(*) FROM users").fetchall()[0][0]:
                    raise StoreError("an account exists already")
                row = cur.execute(
                    "INSERT INTO users (email, password_hash, role, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                    [email, password_hash, role, created],
                ).fetchone()
                cur.execute("COMMIT")
            except duckdb.ConstraintException as exc:
                cur.execute("ROLLBACK")
                raise StoreError(f"an account {email!r} exists already") from exc
            except Exception:
                cur.execute("ROLLBACK")
                raise
        assert row is not None
        return User(id=row[0], email=email, password_hash=password_hash, role=role, created_at=created)

    def set_user_password(self, user_id: int, password_hash: str) -> None:
        self._cursor().execute(
            "UPDATE users SET password_hash = ?, session_version = session_version + 1 WHERE id = ?",
            [password_hash, user_id],
        )

    def record_login(self, user_id: int, at: str) -> None:
        self._cursor().execute("UPDATE users SET last_login_at = ? WHERE id = ?", [at, user_id])

    def remove_user(self, user_id: int) -> bool:
        row = self._cursor().execute("DELETE FROM users WHERE id = ? RETURNING id", [user_id]).fetchone()
        return row is not None

    def list_share_links(self, site_id: int | None = None) -> list[ShareLink]:
        rows = self._cursor().execute(
            "SELECT id, site_id, token_hash, created_at, revoked_at FROM share_links "
            "WHERE ? IS NULL OR site_id = ? ORDER BY id",
            [site_id, site_id],
        ).fetchall()
        return [ShareLink(id=r[0], site_id=r[1], token_hash=r[2], created_at=r[3], revoked_at=r[4]) for r in rows]

    def add_share_link(self, site_id: int, token_hash: str) -> ShareLink:
        created = _now_rfc3339()
        row = self._cursor().execute(
            "INSERT INTO share_links (site_id, token_hash, created_at) VALUES (?, ?, ?) RETURNING id",
            [site_id, token_hash, created],
        ).fetchone()
        assert row is not None
        return ShareLink(id=row[0], site_id=site_id, token_hash=token_hash, created_at=created)

    def revoke_share_links(self, site_id: int, link_id: int | None = None) -> list[int]:
        """Revoke one of a site's links, or all of them; returns the ids revoked just now."""
        rows = self._cursor().execute(
            "UPDATE share_links SET revoked_at = ? WHERE site_id = ? AND (? IS NULL OR id = ?) "
            "AND revoked_at IS NULL RETURNING id",
            [_now_rfc3339(), site_id, link_id, link_id],
        ).fetchall()
        return sorted(int(r[0]) for r in rows)

    def _meta_secret(self, name: str) -> bytes:
        """A random key kept in the meta table under `name`, made on first use."""
        cur = self._cursor()
        cur.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT DO NOTHING", [name, secrets.token_hex(32)])
        row = cur.execute("SELECT value FROM meta WHERE key = ?", [name]).fetchone()
        assert row is not None
        return bytes.fromhex(row[0])

    # -- identified visitors ----------------------------------------------------------------

    def identity_key(self) -> bytes:
        """The instance's key for hashing visitor ids and emails (see ingest.identities):
        random, made once, kept so an email hashes the same way next month."""
        return self._meta_secret("identity_key")

    def resolve_alias(self, site_id: int, alias: str) -> str | None:
        row = self._cursor().execute(
            "SELECT user_id FROM identity_aliases WHERE site_id = ? AND alias = ?", [site_id, alias]
        ).fetchone()
        return None if row is None else str(row[0])

    def save_identity(self, site_id: int, profile: IdentityUpdate) -> None:
        """Point the aliases at the visitor's user id, and merge the traits into its profile
        (and those of the id it was known by before, when that changes)."""
        now = _now_rfc3339()
        with self._transaction() as cur:
            old: dict[str, Any] = {}
            email_hash, name, first_seen = profile.email_hash, profile.name, now
            for user_id in dict.fromkeys([p for p in (profile.previous, profile.user_id) if p]):
                row = cur.execute(
                    "DELETE FROM identified_visitors WHERE site_id = ? AND user_id = ? "
                    "RETURNING email_hash, name, traits, first_seen",
                    [site_id, user_id],
                ).fetchone()
                if row is not None:
                    email_hash, name = email_hash or row[0], name or row[1]
                    old.update(msgspec.json.decode(row[2]))
                    first_seen = min(first_seen, row[3])
            if profile.previous and profile.previous != profile.user_id:
                cur.execute(
                    "UPDATE identity_aliases SET user_id = ? WHERE site_id = ? AND user_id = ?",
                    [profile.user_id, site_id, profile.previous],
                )
            cur.execute(
                "INSERT INTO identified_visitors VALUES (?, ?, ?, ?, ?, ?, ?)",
                [site_id, profile.user_id, email_hash, name,
                 msgspec.json.encode({**old, **profile.traits}).decode(), first_seen, now],
            )
            cur.executemany(
                "INSERT INTO identity_aliases VALUES (?, ?, ?) "
                "ON CONFLICT (site_id, alias) DO UPDATE SET user_id = excluded.user_id",
                [[site_id, alias, profile.user_id] for alias in profile.aliases],
            )

    def forget_identities(self, site_id: int) -> int:
        """Delete every identified visitor of a site; returns how many there were."""
        with self._transaction() as cur:
            row = cur.execute("SELECT count(*) FROM identified_visitors WHERE site_id = ?", [site_id]).fetchone()
            cur.execute("DELETE FROM identified_visitors WHERE site_id = ?", [site_id])
            cur.execute("DELETE FROM identity_aliases WHERE site_id = ?", [site_id])
        return int(row[0]) if row else 0

    def identified_visitor(self, site_id: int, user_id: str) -> dict[str, Any] | None:
        row = self._cursor().execute(
            "SELECT user_id, email_hash, name, traits, first_seen, updated_at FROM identified_visitors "
            "WHERE site_id = ? AND user_id = ?",
            [site_id, user_id],
        ).fetchone()
        if row is None:
            return None
        return {"user_id": row[0], "email_hash": row[1], "name": row[2], "traits": msgspec.json.decode(row[3]),
                "first_seen": row[4], "updated_at": row[5]}

    # -- the writer -------------------------------------------------------------------------

    def committed_segments(self) -> set[str]:
        return {r[0] for r in self._cursor().execute("SELECT segment FROM spool_ledger").fetchall()}

    def forget_segments(self, names: list[str]) -> None:
        if names:
            self._cursor().execute(
                "DELETE FROM spool_ledger WHERE list_contains(?, segment)", [names]
            )

    def session_spans(self, windows: VisitorWindows, gap_us: int) -> list[SessionSpan]:
        """Implicit sessions (top bit clear) of the given visitors near the given windows."""
        if not windows.site_id:
            return []
        lo = min(windows.lo_us) - gap_us
        hi = max(windows.hi_us) + gap_us
        cur = self._cursor()
        _temp_table(cur, "session_keys", {
            "site_id": ("UINTEGER", windows.site_id),
            "visitor_id": ("UBIGINT", windows.visitor_id),
            "lo": ("TIMESTAMP", [t - gap_us for t in windows.lo_us]),
            "hi": ("TIMESTAMP", [t + gap_us for t in windows.hi_us]),
        })
        try:
            rows = cur.execute(
                """
                WITH touched AS (
                    SELECT DISTINCT e.site_id, e.visitor_id, e.session_id
                    FROM events e JOIN session_keys k
                      ON e.site_id = k.site_id AND e.visitor_id = k.visitor_id
                     AND e.ts BETWEEN k.lo AND k.hi
                    WHERE e.ts BETWEEN make_timestamp(?) AND make_timestamp(?)
                      AND e.session_id < 9223372036854775808
                )
                SELECT e.site_id, e.visitor_id, e.session_id,
                       epoch_us(min(e.ts)), epoch_us(max(e.ts))
                FROM events e JOIN touched t
                  ON e.site_id = t.site_id AND e.visitor_id = t.visitor_id
                 AND e.session_id = t.session_id
                WHERE e.ts >= make_timestamp(?) AND e.ts < make_timestamp(?)
                GROUP BY ALL
                """,
                [lo, hi, *_visitor_days(lo, hi)],
            ).fetchall()
        finally:
            cur.execute("DROP TABLE IF EXISTS session_keys")
        return [SessionSpan(int(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]

    @contextlib.contextmanager
    def small_load(self, *, hand_back: bool = False) -> Iterator[None]:
        """A small batch load runs on one DuckDB thread; with `hand_back`, DuckDB's allocator
        hands back what it frees at once.

        On a batch of a few thousand events DuckDB's parallel operators cost more than they
        gain: each thread builds its own row groups of the staging table's 50 columns and its
        own hash tables, so two threads held ~18 MB more for no speed (the writer alone,
        8,000-event batches, 2 CPUs), and the other cores are the HTTP side's. The thread count
        is the database's, not a connection's: a query that runs meanwhile has one thread until
        the load ends (setting it costs ~0.3 ms).

        DuckDB's allocator keeps freed pages for a second by default, to reuse them. A steady
        stream's batch frees and allocates anew statement after statement, so what its first
        statements freed stayed resident beside what the later ones took: the single-record
        benchmark's peak RSS was 219-224 MB with the default, 202-204 MB with pages returned at
        once (4 paired runs, ~15,000 events/s, the same throughput within the noise; a 250 ms
        decay kept as much as the default). Not for big batches: the 1,000-record batch
        benchmark, whose backlog the writer loads in batches of up to 50,000 events, fell from
        41-43k to 33-35k events/s end to end with pages returned at once (3 pairs). Nor for
        tiny ones, whose pages the next batch would reuse: at 1,000 events/s the queryability
        lag's p50 rose from 344-351 to 411-416 ms (the writer sets `hand_back`, see
        pipeline/writer.py HAND_BACK_BYTES)."""
        with self._small_loads_lock:
            self._small_loads += 1
            if self._small_loads == 1:
                self._cursor().execute("SET threads = 1")
        try:
            with duckdb_pages_returned_at_once() if hand_back else contextlib.nullcontext():
                yield
        finally:
            with self._small_loads_lock:
                self._small_loads -= 1
                if self._small_loads == 0:
                    self._cursor().execute(f"SET threads = {self._threads}")

    def stage_batch(self, payloads: Iterable[bytes]) -> Staged:
        """Parse spooled records (JSON, see event.encode_event) into the staging table.

        DuckDB parses the whole batch in its own engine, off the GIL; Python gets back only the
        columns sessions need, for the events among the records. Records that do not parse as
        this version's are left out: the caller counts them as `read` less the rest.

        The records reach DuckDB as strings of a record a line (JSON has no raw newline), split
        there: one value to convert. An Arrow array was built string by string holding the GIL
        (the event loop stalled up to 13-29 ms while 50,000 records were staged, 5 ms now, at
        the same speed), and pyarrow was ~25 MB of the server's memory. The lines go to a table
        STAGE_CHUNK_BYTES at a time, consumed from `payloads` as they come, and one statement
        parses them all: the whole batch as one string was held four times at once (the
        records, their join, its text, DuckDB's copy and split), a transient that set the
        server's peak memory under load; parsing each chunk apart held as little but cost a
        statement's fixed ~6 ms (the JSON type bound, a 50-column append) a chunk, -10% of the
        writer's events/s at 50,000-event batches."""
        cur = self._cursor()
        cur.execute("DROP TABLE IF EXISTS staged_sessions")  # left by a failed commit
        cur.execute("CREATE OR REPLACE TEMP TABLE staged_lines (i BIGINT, payload VARCHAR)")
        read = 0
        for chunk in _chunks(payloads, STAGE_CHUNK_BYTES):
            cur.execute(_STAGE_LINES, [_lines(chunk), read])
            read += len(chunk)
        try:
            cur.execute(_STAGE.replace("{source}", "staged_lines"))
        except duckdb.InvalidInputException:
            # Some record is not JSON at all: parse again, checking each one (twice the work,
            # so only on this rare path).
            cur.execute(_STAGE.replace("{source}", "(SELECT * FROM staged_lines WHERE json_valid(payload))"))
        cur.execute("DROP TABLE staged_lines")
        cur.execute(_UNSTAGE_INCOMPLETE)
        staged, with_ids, first_us, explicit = cur.execute(
            "SELECT count(*), count(event_id), min(ts),"
            " count(*) FILTER (WHERE session_key IS NOT NULL AND NOT starts_with(session_key, chr(0)))"
            " FROM staged"
        ).fetchall()[0]
        # Where stored visits the batch may extend can end, at the earliest (see commit_staged).
        self._staged_first_us = None if explicit else first_us
        duplicates = cur.execute(_UNSTAGE_DUPLICATES).fetchall()[0][0] if with_ids else 0
        self._staged_with_ids = bool(with_ids)
        self._staged = True
        events, modes, self._staged_uncounted = cur.execute(
            f"SELECT count(*) FILTER (WHERE kind IN ({_EVENT_KINDS_SQL})),"
            f" count(*) FILTER (WHERE kind IN ({_EVENT_KINDS_SQL}) AND starts_with(session_key, chr(0))),"
            f" count(*) FILTER (WHERE kind IN ('{AI_FETCH}', '{DROPPED}')) FROM staged"
        ).fetchall()[0]
        # Each statement costs ~1-3 ms however few rows it has (a fixed cost of every batch):
        # those that would find nothing are not run.
        keys = cur.execute(
            f"SELECT DISTINCT site_id, session_key FROM staged WHERE kind IN ({_EVENT_KINDS_SQL})"
            " AND NOT starts_with(session_key, chr(0))"
        ).fetchall() if explicit else []
        return Staged(int(staged - duplicates), int(duplicates), int(events), bool(modes), tuple(keys), read)

    def staged_session_keys(self) -> SessionKeys:
        """The staged events' session columns, in staging order (see SessionKeys)."""
        rows = self._cursor().execute(
            f"SELECT i, site_id, visitor_id, ts, session_key FROM staged WHERE kind IN ({_EVENT_KINDS_SQL}) ORDER BY i"
        ).fetchall()
        columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], [], []]
        self._staged_rows = columns[0]
        return SessionKeys(*columns[1:])

    def assign_sessions(self, gap_us: int, explicit_ids: dict[tuple[int, str], int]) -> list[SessionMerge] | None:
        """Give every staged event its session, as pipeline/sessions.py rules, in the engine:
        explicit keys get `explicit_ids`, the rest the visits of the gap rule (see
        _BATCH_RUNS and _COMPONENTS). Returns the stored visits to merge, or None when the
        stored visits near the batch overlap one another (only a session mode's visits do):
        the caller then assigns the batch one event at a time."""
        cur = self._cursor()
        cur.execute(_BATCH_RUNS, {"gap": gap_us})
        first, last = cur.execute("SELECT coalesce(min(ts), 0), coalesce(max(ts), 0) FROM batch_runs").fetchall()[0]
        lo, hi = first - gap_us, last + gap_us  # where the batch's runs can meet stored visits
        day_lo, day_hi = _visitor_days(lo, hi)
        cur.execute(_COMPONENTS, {"gap": gap_us, "lo": lo, "hi": hi, "day_lo": day_lo, "day_hi": day_hi})
        if cur.execute(_SPANS_OVERLAP, {"gap": gap_us}).fetchall()[0][0]:
            for table in ("batch_runs", "batch_elements"):
                cur.execute(f"DROP TABLE {table}")
            return None
        cur.execute(_WINNERS, {"gap": gap_us})
        _temp_table(cur, "explicit_ids", {
            "site_id": ("UINTEGER", [k[0] for k in explicit_ids]),
            "session_key": ("VARCHAR", [k[1] for k in explicit_ids]),
            "session_id": ("UBIGINT", list(explicit_ids.values())),
        })
        try:
            cur.execute(_SESSIONS_OF_BATCH)
        finally:
            cur.execute("DROP TABLE IF EXISTS explicit_ids")
        rows = cur.execute(_MERGES_OF_BATCH).fetchall()
        for table in ("batch_runs", "batch_elements", "batch_winners"):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        return [SessionMerge(*(int(v) for v in row)) for row in rows]

    def commit_staged(
        self,
        session_ids: list[int | None] | None,
        merges: list[SessionMerge],
        segments: list[str],
        reach_us: int | None = None,
    ) -> None:
        """Insert the staged events (with their session ids, in `staged_session_keys`' order,
        or None: those `assign_sessions` gave them), AI
        fetches and dropped-hit counts, apply session merges, add the batch's visit parts and
        record the spool segments, atomically.

        The batch's events become one part per visit in `visit_parts`, which queries merge in
        (sql.CURRENT_VISITS), so the rollup is exact at once; folding the parts into the
        visits table costs mostly the same whatever their number, so it is left to
        `fold_visits` (the writer calls it when idle), except when the parts pass
        FOLD_PARTS_ROWS or the batch merges visits (the rows to rename are then folded now).

        `reach_us`: a stored visit that an event of the batch without an explicit session
        joins ended at most this long before that event (the sessionizer's bound); with it,
        the fold reads only the recent end of the visits table."""
        any_events = session_ids is None or bool(session_ids)
        lo_us: int | None = None
        if reach_us is not None and self._staged_first_us is not None:
            lo_us = self._staged_first_us - reach_us
        parts_rows, parts_lo_us = self._parts_rows, self._parts_lo_us
        with self._transaction() as cur:
            _merge_table(cur, merges)
            if session_ids is not None:  # else assign_sessions made the staged_sessions table
                _temp_table(cur, "staged_sessions", {
                    "i": ("BIGINT", self._staged_rows or []),
                    "session_id": ("UBIGINT", session_ids),
                })
            try:
                if any_events:
                    cur.execute(_STAGED_SESSION_IDS)
                    cur.execute(f"INSERT INTO events ({_INSERT_COLUMNS}) SELECT {_INSERT_SELECT} FROM {_STAGED_EVENTS}")
                    row = cur.execute(_INSERT_VISIT_PARTS).fetchone()
                    if added := int(row[0]) if row else 0:
                        parts_lo_us = _lower_bound(parts_lo_us, lo_us) if parts_rows else lo_us
                        parts_rows += added
                if merges:
                    self._apply_merges(cur, merges)
                if merges or parts_rows >= FOLD_PARTS_ROWS:
                    bound = parts_lo_us if parts_rows else lo_us
                    if merges:
                        bound = _lower_bound(bound, min(m.lo_us for m in merges))
                    self._fold_parts(cur, bound)
                    parts_rows, parts_lo_us = 0, None
            finally:
                cur.execute("DROP TABLE IF EXISTS session_merges")
            if self._staged and self._staged_uncounted:
                cur.execute(_INSERT_AI_FETCHES)
                cur.execute(_COUNT_DROPPED)
                if self._staged_with_ids:
                    cur.execute(_REMEMBER_COUNTED)
            if segments:
                # One statement for all: executemany runs one a segment, and a steady stream's
                # batch spans dozens of segments (50 ms of the writer's ~500 a batch, at
                # ~18,000 single records/s, mostly waiting to get the GIL back after each).
                cur.execute(
                    "INSERT INTO spool_ledger SELECT unnest($1::VARCHAR[]), now() ON CONFLICT DO NOTHING",
                    [segments],
                )
        self._parts_rows, self._parts_lo_us = parts_rows, parts_lo_us
        cur.execute("DROP TABLE IF EXISTS staged")
        cur.execute("DROP TABLE IF EXISTS staged_sessions")
        cur.execute("DROP TABLE IF EXISTS staged_session_ids")
        self._staged = False
        self._staged_rows = None
        self._staged_first_us = None

    def visit_parts_pending(self) -> int:
        """Rows of visit parts not yet folded into the visits table."""
        return self._parts_rows

    def fold_visits(self) -> None:
        """Fold the pending visit parts into the visits table (queries answer the same before
        and after; they just merge fewer rows)."""
        if not self._parts_rows:
            return
        with self._transaction() as cur:
            _merge_table(cur, [])
            try:
                self._fold_parts(cur, self._parts_lo_us)
            finally:
                cur.execute("DROP TABLE IF EXISTS session_merges")
        self._parts_rows, self._parts_lo_us = 0, None

    @staticmethod
    def _fold_parts(cur: duckdb.DuckDBPyConnection, lo_us: int | None) -> None:
        """Fold the visit parts, and the visits merged by `session_merges` (under the id they
        merge into), into one row per visit (see store/sql.py): the stored rows of the visits
        concerned are taken out and merged with the parts. No visit's events are read again:
        one aggregate over the parts and one semi-join over the visits table (its recent end,
        with `lo_us`: the stored visits concerned ended at or after it). Only integer keys and
        the continuing visits' rows are materialized (a temporary table of every visit of
        the parts cost as much as the fold itself)."""
        recent = "true" if lo_us is None else f"v.s_end >= make_timestamp({int(lo_us)})"
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE visit_keys AS SELECT DISTINCT site_id, session_id FROM visit_parts"
            " UNION SELECT site_id, old_id FROM session_merges UNION SELECT site_id, new_id FROM session_merges"
        )

        def renamed(table: str) -> str:
            columns = ", ".join(
                "coalesce(m.new_id, v.session_id) AS session_id" if c == "session_id" else f"v.{c}"
                for c in VISIT_COLUMNS
            )
            return (
                f"SELECT {columns} FROM {table} v"
                " LEFT JOIN session_merges m ON m.site_id = v.site_id AND m.old_id = v.session_id"
            )

        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE stored_visits AS {renamed('visits')}"
            f" SEMI JOIN visit_keys k ON v.site_id = k.site_id AND v.session_id = k.session_id WHERE {recent}"
        )
        cur.execute(
            "DELETE FROM visits v USING visit_keys k WHERE v.site_id = k.site_id"
            f" AND v.session_id = k.session_id AND {recent}"
        )
        rows = f"({renamed('visit_parts')} UNION ALL SELECT * FROM stored_visits)"
        # The aggregate holds a state for every column of every visit it folds (~1 KB): all
        # at once, 200,000 visits (FOLD_PARTS_ROWS of many distinct visitors) took +180 MB.
        # In slices of FOLD_SLICE_VISITS it holds a slice's, for a rescan of the parts a slice.
        row = cur.execute("SELECT count(*) FROM visit_keys").fetchone()
        slices = max(1, -(-int(row[0] if row else 0) // FOLD_SLICE_VISITS))
        for k in range(slices):
            sliced = f"(SELECT * FROM {rows} WHERE hash(session_id) % {slices} = {k})" if slices > 1 else rows
            cur.execute(f"INSERT INTO visits {merge_visits(sliced)}")
        cur.execute("DELETE FROM visit_parts")
        for table in ("visit_keys", "stored_visits"):
            cur.execute(f"DROP TABLE {table}")

    @staticmethod
    def _apply_merges(cur: duckdb.DuckDBPyConnection, merges: list[SessionMerge]) -> None:
        """One UPDATE for all merges (the table `session_merges`); the time bounds let DuckDB
        skip untouched row groups."""
        lo, hi = min(m.lo_us for m in merges), max(m.hi_us for m in merges)
        cur.execute(
            """
            UPDATE events SET session_id = m.new_id FROM session_merges m
            WHERE events.site_id = m.site_id AND events.visitor_id = m.visitor_id
              AND events.session_id = m.old_id AND events.ts BETWEEN m.lo AND m.hi
              AND events.ts BETWEEN make_timestamp(?) AND make_timestamp(?)
            """,
            [lo, hi],
        )

    # -- reading ----------------------------------------------------------------------------

    def count_events(self, site_id: int | None = None) -> int:
        if site_id is None:
            row = self._cursor().execute("SELECT count(*) FROM events").fetchone()
        else:
            row = self._cursor().execute(
                "SELECT count(*) FROM events WHERE site_id = ?", [site_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def pageviews_received_since(self, site_id: int, since_us: int) -> int:
        row = self._cursor().execute(
            "SELECT count(*) FROM events WHERE site_id = ? AND kind = 'pageview' AND received_at >= make_timestamp(?)",
            [site_id, since_us],
        ).fetchone()
        return int(row[0]) if row else 0

    def not_counted(self, site_id: int) -> dict[str, int]:
        """Hits of a site that were not counted as visits, by reason (bots include AI fetches)."""
        rows = self._cursor().execute(
            "SELECT reason, sum(hits) FROM dropped_hits WHERE site_id = ? GROUP BY reason ORDER BY reason",
            [site_id],
        ).fetchall()
        return {str(reason): int(hits) for reason, hits in rows}

    def count_ai_fetches(self, site_id: int) -> int:
        row = self._cursor().execute("SELECT count(*) FROM ai_fetches WHERE site_id = ?", [site_id]).fetchone()
        return int(row[0]) if row else 0

    def run_query(self, query: Query) -> QueryResult:
        sql, params, columns = compile_query(query)
        try:
            rows = self._cursor().execute(sql, params).fetchall()
        except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.OutOfRangeException) as exc:
            # A value the engine refuses (a regular expression RE2 cannot compile, ...).
            raise QueryError(f"the query cannot be run: {str(exc).splitlines()[0]}") from None
        return QueryResult(columns=columns, rows=[[_plain(v) for v in r] for r in rows])

    def count_events_between(self, site_id: int, start_us: int, end_us: int) -> int:
        row = self._cursor().execute(
            "SELECT count(*) FROM events WHERE site_id = ? AND ts >= make_timestamp(?) AND ts < make_timestamp(?)",
            [site_id, start_us, end_us],
        ).fetchone()
        return int(row[0]) if row else 0

    def first_event_us(self, site_id: int) -> int | None:
        """When the site's first event happened (UTC microseconds), or None: `all` ranges start there."""
        row = self._cursor().execute("SELECT epoch_us(min(ts)) FROM events WHERE site_id = ?", [site_id]).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- dashboard panels -------------------------------------------------------------------

    def funnel(self, site_id: int, steps: list[StepMatch], start_us: int, end_us: int) -> list[int]:
        """Visitors reaching each step of a funnel in order within [start_us, end_us): step k
        counts the visitors who did step 1, then step 2 at or after it, ..., then step k.
        Taking each visitor's earliest match at every step finds an ordered path whenever one
        exists, so one pass per step is enough; the passes read only the events that match
        some step, picked out of the range in one scan."""
        if not steps:
            return []
        params: dict[str, Any] = {"site": site_id, "start": start_us, "end": end_us}
        matches = []
        for k, step in enumerate(steps):
            # The kind is one of two names, written into the text so DuckDB can prune on it.
            if step.kind not in EVENT_KINDS:
                raise StoreError(f"a funnel step matches {' or '.join(EVENT_KINDS)}, not {step.kind!r}")
            column = "pathname" if step.kind == "pageview" else "name"
            if step.exact is not None:
                params[f"p{k}"], test = step.exact, f"{column} = $p{k}"
            elif step.like is not None:
                params[f"p{k}"], test = step.like, f"{column} LIKE $p{k} ESCAPE '\\'"
            else:
                params[f"p{k}"], test = step.pattern, f"regexp_full_match({column}, $p{k})"
            matches.append(f"(kind = '{step.kind}' AND {test})")
        ctes = [
            "m AS MATERIALIZED (SELECT visitor_id, ts, "
            + ", ".join(f"{m} AS s{k}" for k, m in enumerate(matches))
            + " FROM events WHERE site_id = $site AND ts >= make_timestamp($start) AND ts < make_timestamp($end)"
            f" AND ({' OR '.join(matches)}))",
            "r0 AS (SELECT visitor_id, min(ts) AS t FROM m WHERE s0 GROUP BY visitor_id)",
        ]
        ctes += [
            f"r{k} AS (SELECT m.visitor_id, min(m.ts) AS t FROM m JOIN r{k - 1} p USING (visitor_id)"
            f" WHERE m.s{k} AND m.ts >= p.t GROUP BY m.visitor_id)"
            for k in range(1, len(steps))
        ]
        counts = ", ".join(f"(SELECT count(*) FROM r{k})" for k in range(len(steps)))
        row = self._cursor().execute(f"WITH {', '.join(ctes)} SELECT {counts}", params).fetchone()
        return [int(v) for v in row] if row else [0] * len(steps)

    def realtime(self, site_id: int, now_us: int) -> tuple[int, list[int]]:
        """Visitors in the 5 minutes before `now_us`, and pageviews in each of the 30 minutes
        before it, oldest minute first (by analytics time)."""
        minute = 60_000_000
        cur = self._cursor()
        row = cur.execute(
            "SELECT count(DISTINCT visitor_id) FROM events WHERE site_id = ? AND ts > make_timestamp(?)"
            " AND ts <= make_timestamp(?)",
            [site_id, now_us - 5 * minute, now_us],
        ).fetchone()
        rows = cur.execute(
            "SELECT (? - epoch_us(ts)) // ? AS ago, count(*) FROM events WHERE site_id = ? AND kind = 'pageview'"
            " AND ts > make_timestamp(?) AND ts <= make_timestamp(?) GROUP BY ago",
            [now_us, minute, site_id, now_us - 30 * minute, now_us],
        ).fetchall()
        per_minute = [0] * 30
        for ago, n in rows:
            if 0 <= int(ago) < 30:
                per_minute[29 - int(ago)] = int(n)
        return (int(row[0]) if row else 0), per_minute

    def event_property_keys(self, site_id: int, start_us: int, end_us: int, limit: int = 20) -> list[str]:
        """The property names custom events carry in the range, most used first."""
        rows = self._cursor().execute(
            "SELECT k FROM (SELECT unnest(map_keys(props)) AS k FROM events WHERE site_id = ? AND kind = 'event'"
            " AND ts >= make_timestamp(?) AND ts < make_timestamp(?)) GROUP BY k ORDER BY count(*) DESC, k LIMIT ?",
            [site_id, start_us, end_us, limit],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def bot_hits(self, site_id: int, first_day: str, last_day: str, limit: int = 20) -> list[dict[str, Any]]:
        """Hits not counted as visits between two UTC days (YYYY-MM-DD, inclusive), by reason
        and bot, most first."""
        rows = self._cursor().execute(
            "SELECT reason, bot, any_value(bot_family), sum(hits) AS n FROM dropped_hits WHERE site_id = ?"
            " AND day BETWEEN ?::DATE AND ?::DATE GROUP BY reason, bot ORDER BY n DESC, reason, bot LIMIT ?",
            [site_id, first_day, last_day, limit],
        ).fetchall()
        return [{"reason": r[0], "bot": r[1], "bot_family": r[2], "hits": int(r[3])} for r in rows]

    def ai_fetch_pages(self, site_id: int, start_us: int, end_us: int, limit: int = 20) -> list[dict[str, Any]]:
        """Which AI crawlers and assistants fetched which pages in the range, most first."""
        rows = self._cursor().execute(
            "SELECT bot, any_value(ai_kind), pathname, count(*) AS n FROM ai_fetches WHERE site_id = ?"
            " AND ts >= make_timestamp(?) AND ts < make_timestamp(?) GROUP BY bot, pathname"
            " ORDER BY n DESC, bot, pathname LIMIT ?",
            [site_id, start_us, end_us, limit],
        ).fetchall()
        return [{"bot": r[0], "ai_kind": r[1], "page": r[2], "fetches": int(r[3])} for r in rows]

    def healthy(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        row = self._cursor().execute("SELECT current_setting('memory_limit')").fetchone()
        return {
            "engine": "duckdb",
            "path": str(self.path),
            "ping_ms": (time.perf_counter() - t0) * 1e3,
            "memory_limit": row[0] if row else None,  # DuckDB's own wording, e.g. "95.3 MiB"
        }

    def wal_bytes(self) -> int:
        try:
            return self.path.with_name(self.path.name + ".wal").stat().st_size
        except FileNotFoundError:
            return 0

    def checkpoint(self) -> bool:
        """Fold the WAL into the database file now; False if DuckDB declined (e.g. a
        concurrent transaction) and it will be done later."""
        try:
            with self._write_lock:
                self._cursor().execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.debug("checkpoint deferred: %s", exc)
            return False
        return True

    def close(self) -> None:
        # Per-thread cursors keep the database open past close(), which skips DuckDB's
        # checkpoint on shutdown; checkpoint explicitly so a clean stop leaves no WAL.
        try:
            self._cursor().execute("CHECKPOINT")
        except duckdb.Error:
            log.warning("checkpoint on close failed; the WAL will be replayed on next open")
        self._con.close()


def _settings(text: str | None) -> SiteSettings:
    try:
        return msgspec.json.decode(text or "{}", type=SiteSettings)
    except msgspec.DecodeError:  # hand-edited: the site still works, with defaults
        log.error("a site's settings do not parse; defaults apply")
        return SiteSettings()


def _add_missing_event_columns(cur: duckdb.DuckDBPyConnection) -> None:
    """Columns added since a data directory was made (e.g. `channel`), with empty defaults.
    DuckDB cannot add a NOT NULL column to a table; the insert never writes NULL to them."""
    rows = cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
    ).fetchall()
    existing = {r[0] for r in rows}
    for name, typ in EVENT_COLUMN_TYPES.items():
        if name not in existing:
            default = " DEFAULT ''" if typ == "VARCHAR NOT NULL" else ""
            cur.execute(f"ALTER TABLE events ADD COLUMN {name} {typ.replace(' NOT NULL', '')}{default}")


def _chunks(payloads: Iterable[bytes], limit: int) -> Iterator[list[bytes]]:
    """`payloads` in lists of about `limit` bytes (a record is never split)."""
    chunk: list[bytes] = []
    size = 0
    for payload in payloads:
        chunk.append(payload)
        size += len(payload) + 1
        if size >= limit:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _lines(payloads: list[bytes]) -> str:
    """Records as one string, a record a line; a record that cannot be one (not UTF-8, or a
    raw newline inside: not this version's JSON) is left out as an empty line."""
    joined = b"\n".join(payloads)
    try:
        text = joined.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if not text or joined.count(b"\n") != len(payloads) - 1:
        text = "\n".join(_record_line(p) for p in payloads)
    return text


def _record_line(payload: bytes) -> str:
    """A spooled record as a line of the batch's string: empty if it cannot be one."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return "" if "\n" in text else text


def _plain(value: Any) -> Any:
    """JSON-friendly cell values: dates as ISO strings, decimals as floats."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "as_integer_ratio") and not isinstance(value, int | float):
        return float(value)
    return value


def _now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _temp_table(cur: duckdb.DuckDBPyConnection, name: str, columns: dict[str, tuple[str, list[Any]]]) -> None:
    """Temporary table `name` of the given columns (DuckDB type, values), from list parameters.
    For the writer's small side tables (session keys and merges); a batch's records go as one
    string (see stage_batch). TIMESTAMP values are integer microseconds."""
    select = ", ".join(
        f"make_timestamp(unnest(${k}::BIGINT[])) AS {column}" if typ == "TIMESTAMP"
        else f"unnest(${k}::{typ}[]) AS {column}"
        for k, (column, (typ, _)) in enumerate(columns.items(), start=1)
    )
    # Typed even when empty: a select of empty lists alone would give no column types.
    cur.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {select}",
        [values for _, values in columns.values()],
    )


def _merge_table(cur: duckdb.DuckDBPyConnection, merges: list[SessionMerge]) -> None:
    """The temporary table `session_merges` of `merges` (see _apply_merges and _fold_parts)."""
    _temp_table(cur, "session_merges", {
        "site_id": ("UINTEGER", [m.site_id for m in merges]),
        "visitor_id": ("UBIGINT", [m.visitor_id for m in merges]),
        "old_id": ("UBIGINT", [m.old_session_id for m in merges]),
        "new_id": ("UBIGINT", [m.new_session_id for m in merges]),
        "lo": ("TIMESTAMP", [m.lo_us for m in merges]),
        "hi": ("TIMESTAMP", [m.hi_us for m in merges]),
    })


def _create_visits(cur: duckdb.DuckDBPyConnection) -> None:
    """The visits rollup; a data directory from before it gets it built from its events once
    (ordered by site and start, so a range's visits are few row groups)."""
    exists = cur.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'visits'"
    ).fetchone()
    if exists and exists[0]:
        return
    cur.execute("BEGIN")
    try:
        cur.execute(
            "CREATE TABLE visits (" + ", ".join(f"{c} {t}" for c, t in VISIT_COLUMN_TYPES.items()) + ")"
        )
        cur.execute(f"INSERT INTO visits SELECT * FROM ({rebuild_visits_sql()}) ORDER BY site_id, s_start")
        cur.execute("DELETE FROM visit_parts")  # the rebuild holds every visit already
        cur.execute("COMMIT")
    except Exception:
        cur.execute("ROLLBACK")
        raise
