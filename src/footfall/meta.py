"""Metadata records: sites and API tokens. The store persists them; registries cache them."""

from __future__ import annotations

import msgspec


class Goal(msgspec.Struct, kw_only=True, frozen=True):
    """A conversion (seed 003): an event by name, or a pageview of a path (`*` is a wildcard).
    Goals are counted at query time, so a new goal applies to past data too."""

    id: str
    name: str
    type: str  # "event" or "pageview"
    value: str


class FunnelStep(msgspec.Struct, kw_only=True, frozen=True):
    """A funnel step, matched as a goal is: an event by name, or a pageview of a path (`*` is a
    wildcard)."""

    type: str  # "event" or "pageview"
    value: str


class Funnel(msgspec.Struct, kw_only=True, frozen=True):
    """Ordered steps; the dashboard counts the visitors who went through them in order. Like
    goals, funnels are computed at query time, so a new funnel applies to past data too."""

    id: str
    name: str
    steps: tuple[FunnelStep, ...]


class SiteSettings(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What a site owner can change about how hits are counted."""

    exclude_ips: tuple[str, ...] = ()  # CIDRs or addresses whose hits are not counted
    exclude_countries: tuple[str, ...] = ()  # ISO codes
    exclude_paths: tuple[str, ...] = ()  # fnmatch globs on the path, e.g. /admin/*
    # Query parameters kept (as the `query.<name>` property) when the rest is stripped, e.g.
    # `q` for site search.
    query_params: tuple[str, ...] = ()
    # Pageviews received in a calendar month (UTC) past which the collect API (seed 001)
    # answers 402 cap_exceeded; None: no cap.
    monthly_pageview_cap: int | None = None
    # The public endpoint /e/{trackingCode} (seed 002) takes the visitor's address from
    # X-Forwarded-For even from an untrusted caller: for a backend that forwards its visitors.
    allow_forwarded_for: bool = False
    # Browser hits with DNT: 1 or Sec-GPC: 1 are not tracked at all, unless this is turned off.
    respect_dnt: bool = True
    goals: tuple[Goal, ...] = ()
    funnels: tuple[Funnel, ...] = ()
    # The server API's /identify (seed 004) keeps visitors' traits (name, custom fields; an
    # email only as a keyed hash) and events carry the identified user id. Off: identify
    # calls are accepted and stored nowhere, and events are anonymous.
    identified_visitors: bool = False


class ServerKey(msgspec.Struct, kw_only=True, frozen=True):
    """A site's secret key for the server API (seed 004): `ff_sk_…`, shown once."""

    hash: str  # sha256 of the key; the key itself is never stored
    hint: str  # its first characters, so a user can tell which key is in use
    created_at: str


class Site(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    domain: str
    timezone: str
    tracking_id: str
    created_at: str  # RFC3339, UTC
    settings: SiteSettings = SiteSettings()
    server_key: ServerKey | None = None


class Token(msgspec.Struct, kw_only=True, frozen=True):
    id: str  # public handle, safe to print and log
    name: str
    secret_hash: str  # sha256 of the secret; the secret itself is never stored
    scopes: tuple[str, ...]
    site_ids: tuple[int, ...] | None  # None means every site
    created_at: str
    last_rotated_at: str | None = None


ROLES: tuple[str, ...] = ("owner", "admin", "viewer")  # see web.accounts for what each may do


class User(msgspec.Struct, kw_only=True, frozen=True):
    """A dashboard account. The password is kept only as an argon2 hash."""

    id: int
    email: str  # the sign-in name: an email address or a plain user name, lower case
    password_hash: str
    role: str  # one of ROLES
    created_at: str
    last_login_at: str | None = None
    # Part of every session cookie; bumped when the password changes, which ends the user's
    # other sessions at once.
    session_version: int = 1


class ShareLink(msgspec.Struct, kw_only=True, frozen=True):
    """A public read-only link to one site's dashboard: /share/<token>, shown once."""

    id: int
    site_id: int
    token_hash: str  # sha256 of the token; the token itself is never stored
    created_at: str
    revoked_at: str | None = None
