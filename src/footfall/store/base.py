"""The store interface every engine implements; nothing outside `store/` writes SQL."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from footfall.meta import ServerKey, Site, SiteSettings, Token
from footfall.query.model import Query, QueryResult


class StoreError(Exception):
    """A store operation was refused (lock held by another process, constraint, ...)."""


class SessionKeys(NamedTuple):
    """The columns of a staged batch that sessions depend on, in staging order."""

    site_id: list[int]
    visitor_id: list[int]
    ts: list[int]
    session_key: list[str | None]


class Staged(NamedTuple):
    """A batch in the staging area: the session columns of its events, and how many records
    (events, AI fetches, dropped hits) parsed."""

    keys: SessionKeys
    records: int
    # Records whose caller-derived event id was stored already (or came twice in the batch):
    # a retried delivery, left out on purpose.
    duplicates: int = 0


class SessionSpan(NamedTuple):
    site_id: int
    visitor_id: int
    session_id: int
    start_us: int
    end_us: int


class VisitorWindows(NamedTuple):
    """Implicit sessions of visitor k touching [lo_us[k], hi_us[k]] are wanted; as columns,
    which the sessionizer fills and the store hands to its engine without a tuple per row."""

    site_id: list[int]
    visitor_id: list[int]
    lo_us: list[int]
    hi_us: list[int]


class SessionMerge(NamedTuple):
    """Rows of `old_session_id` become `new_session_id`; all lie within [lo_us, hi_us]."""

    site_id: int
    visitor_id: int
    old_session_id: int
    new_session_id: int
    lo_us: int
    hi_us: int


class IdentityUpdate(NamedTuple):
    """What one /identify call (seed 004) changes: `aliases` (keyed hashes, see
    ingest.identities) now name `user_id`; `previous` is the user id the visitor had, when a
    given `traits.userId` replaces it."""

    user_id: str
    previous: str | None
    aliases: list[str]
    email_hash: str | None
    name: str | None
    traits: dict[str, Any]


class Store(Protocol):
    # metadata
    def list_sites(self) -> list[Site]: ...
    def update_site_settings(self, site_id: int, settings: SiteSettings) -> None: ...
    def add_site(self, domain: str, timezone: str, tracking_id: str) -> Site: ...
    def remove_site(self, site_id: int) -> int: ...
    def list_tokens(self) -> list[Token]: ...
    def add_token(self, token: Token) -> None: ...
    def replace_token_secret(self, token_id: str, secret_hash: str, rotated_at: str) -> None: ...
    def delete_token(self, token_id: str) -> None: ...
    def set_server_key(self, site_id: int, key: ServerKey | None) -> None: ...
    # identified visitors (see ingest.identities)
    def identity_key(self) -> bytes: ...
    def resolve_alias(self, site_id: int, alias: str) -> str | None: ...
    def save_identity(self, site_id: int, profile: IdentityUpdate) -> None: ...
    def forget_identities(self, site_id: int) -> int: ...
    def identified_visitor(self, site_id: int, user_id: str) -> dict[str, Any] | None: ...
    # salts (see enrich.visitors.SaltStore)
    def load_salts(self) -> dict[int, bytes]: ...
    def save_salt(self, day: int, salt: bytes) -> None: ...
    def delete_salts_before(self, day: int) -> int: ...
    # the writer
    def committed_segments(self) -> set[str]: ...
    def forget_segments(self, names: list[str]) -> None: ...
    def session_spans(self, windows: VisitorWindows, gap_us: int) -> list[SessionSpan]: ...
    def stage_batch(self, payloads: list[bytes]) -> Staged: ...
    def commit_staged(
        self, session_ids: list[int | None], merges: list[SessionMerge], segments: list[str]
    ) -> None: ...
    # reading
    def count_events(self, site_id: int | None = None) -> int: ...
    def pageviews_received_since(self, site_id: int, since_us: int) -> int: ...
    def not_counted(self, site_id: int) -> dict[str, int]: ...
    def count_ai_fetches(self, site_id: int) -> int: ...
    def run_query(self, query: Query) -> QueryResult: ...
    def healthy(self) -> dict[str, Any]: ...
    def wal_bytes(self) -> int: ...
    def checkpoint(self) -> bool: ...
    def close(self) -> None: ...
