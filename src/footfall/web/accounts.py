"""Dashboard accounts and share links: sign-in names, argon2 passwords, roles, and the
in-memory view of both that the web routes read on every request.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile) and
never kept or logged in clear. Share-link tokens are 192 random bits, stored as a SHA-256 (as
API tokens are, see api.auth): a slow hash would add nothing to a secret that cannot be guessed.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from footfall.api.auth import hash_secret
from footfall.enrich.sites import SiteRegistry
from footfall.meta import ROLES, ShareLink, Site, User
from footfall.store.base import Store

ROLE_OWNER, ROLE_ADMIN, ROLE_VIEWER = ROLES
# Owners and admins may change things from the dashboard (forms); viewers only read. Only an
# owner is made by first-start setup, and the last owner cannot be removed, so the instance is
# never left without one (which would reopen /setup to whoever comes first).
MANAGING_ROLES = frozenset({ROLE_OWNER, ROLE_ADMIN})

MIN_PASSWORD = 10
# argon2 takes any length, but hashing megabytes per sign-in attempt is a cheap denial of service.
MAX_PASSWORD = 1024

SHARE_PATH = "/share/"

_LOGIN = re.compile(r"^[a-z0-9._%+\-]+(@[a-z0-9.\-]+)?$")
_HASHER = PasswordHasher()


def normalize_login(raw: str) -> str:
    """A sign-in name as stored: an email address or a plain user name, lower case.
    Raises ValueError with a message for the user."""
    name = raw.strip().lower()
    if not name or len(name) > 254 or not _LOGIN.match(name):
        raise ValueError("an account is an email address or a user name (letters, digits, . _ % + -)")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password is at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"a password is at most {MAX_PASSWORD} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
    return role


def hash_password(password: str) -> str:
    return _HASHER.hash(check_password(password))


@functools.cache
def _dummy_hash() -> str:
    # Made on first use, not at import: the CLI imports this module and never verifies.
    return _HASHER.hash(secrets.token_urlsafe(16))


def verify_password(user: User | None, password: str) -> bool:
    """Whether `password` is the user's. An unknown account (None) is checked against a dummy
    hash, so a wrong name takes as long as a wrong password and answers do not tell names apart.
    Slow on purpose (argon2): call it off the event loop."""
    encoded = user.password_hash if user is not None else _dummy_hash()
    if len(password) > MAX_PASSWORD:
        password = password[:MAX_PASSWORD + 1]  # still hashed, still wrong: same time, bounded
    try:
        ok: bool = _HASHER.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    return ok and user is not None


def new_share_token() -> str:
    return secrets.token_urlsafe(24)


def share_path(token: str) -> str:
    return SHARE_PATH + token


class Accounts:
    """Users and live share links, swapped whole when they change (the runtime refreshes this
    after every management operation), so each request reads them without the store."""

    def __init__(self, store: Store, sites: SiteRegistry) -> None:
        self._store = store
        self._sites = sites
        self._lock = threading.Lock()
        self.cookie_key = store.cookie_key()
        self._by_id: dict[int, User] = {}
        self._by_email: dict[str, User] = {}
        self._links: dict[str, ShareLink] = {}
        self.refresh()

    def refresh(self) -> None:
        users = self._store.list_users()
        links = {link.token_hash: link for link in self._store.list_share_links() if link.revoked_at is None}
        with self._lock:
            self._by_id = {u.id: u for u in users}
            self._by_email = {u.email: u for u in users}
            self._links = links

    @property
    def has_users(self) -> bool:
        return bool(self._by_id)

    def user(self, user_id: int) -> User | None:
        return self._by_id.get(user_id)

    def by_login(self, raw: str) -> User | None:
        try:
            return self._by_email.get(normalize_login(raw))
        except ValueError:
            return None

    def share_link(self, token: str) -> ShareLink | None:
        """The live (unrevoked) link a token opens, on a site that still exists."""
        if not token or len(token) > 128:
            return None
        digest = hash_secret(token)
        link = self._links.get(digest)
        if link is None or not hmac.compare_digest(link.token_hash, digest):
            return None
        return link if self._sites.by_id(link.site_id) is not None else None

    def site_for_share(self, token: str) -> Site | None:
        link = self.share_link(token)
        return None if link is None else self._sites.by_id(link.site_id)
