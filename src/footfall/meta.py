"""Metadata records: sites and API tokens. The store persists them; registries cache them."""

from __future__ import annotations

import msgspec


class Site(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    domain: str
    timezone: str
    tracking_id: str
    created_at: str  # RFC3339, UTC


class Token(msgspec.Struct, kw_only=True, frozen=True):
    id: str  # public handle, safe to print and log
    name: str
    secret_hash: str  # sha256 of the secret; the secret itself is never stored
    scopes: tuple[str, ...]
    site_ids: tuple[int, ...] | None  # None means every site
    created_at: str
    last_rotated_at: str | None = None
