"""API tokens: scopes, secrets (shown once, stored as a hash) and request authentication."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Mapping

from footfall.ingest.http import IngestError
from footfall.meta import Token

SCOPE_MANAGE_DATA = "site.manage_data"
SCOPE_STATS_READ = "stats.read"
SCOPE_SITES_MANAGE = "sites.manage"
SCOPE_COLLECT_WRITE = "collect:write"  # seed 001's ability name, kept so its docs read true
SCOPES: tuple[str, ...] = (SCOPE_MANAGE_DATA, SCOPE_STATS_READ, SCOPE_SITES_MANAGE, SCOPE_COLLECT_WRITE)

SECRET_PREFIX = "ff_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


SERVER_KEY_PREFIX = "ff_sk_"  # a site's secret key for the server API (seed 004's hm_sk_)


def new_server_key() -> str:
    return SERVER_KEY_PREFIX + secrets.token_urlsafe(32)


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(6)


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a plain SHA-256 is enough; a slow password hash would
    # only cost time on every request.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def bearer_secret(authorization: str | None, api_key: str | None) -> str | None:
    """The secret from `Authorization: Bearer …`, else from `X-Api-Key`."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key and api_key.strip():
        return api_key.strip()
    return None


def authorize(tokens: TokenRegistry, headers: Mapping[str, str], scope: str) -> Token:
    """The token a request presents, if it holds `scope`: else 401 (none or unknown) or 403."""
    secret = bearer_secret(headers.get("authorization"), headers.get("x-api-key"))
    if secret is None:
        raise IngestError(401, "missing API token: send Authorization: Bearer <token>")
    token = tokens.authenticate(secret)
    if token is None:
        raise IngestError(401, "invalid API token")
    if scope not in token.scopes:
        raise IngestError(403, f"token lacks the {scope} scope")
    return token


def allows_site(token: Token, site_id: int) -> bool:
    return token.site_ids is None or site_id in token.site_ids


# Secrets that authenticated recently, so a busy client's requests skip the hash. Only valid
# secrets enter, so a flood of wrong ones cannot grow it; it is dropped whole when full.
VERIFIED_CACHE_SIZE = 1024


class TokenRegistry:
    """Tokens by secret hash, swapped whole when tokens change, so lookups take no lock."""

    def __init__(self, tokens: list[Token] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[str, Token] = {}
        self._verified: dict[str, Token] = {}
        self.replace(tokens or [])

    def replace(self, tokens: list[Token]) -> None:
        by_hash = {t.secret_hash: t for t in tokens}
        with self._lock:
            # A rotated or revoked secret must fail at once: the cache goes with the old set.
            self._by_hash, self._verified = by_hash, {}

    def authenticate(self, secret: str | None) -> Token | None:
        if not secret:
            return None
        verified = self._verified
        token = verified.get(secret)
        if token is not None:
            return token
        digest = hash_secret(secret)
        token = self._by_hash.get(digest)
        # The dict lookup already matched; compare again in constant time for good measure.
        if token is None or not hmac.compare_digest(token.secret_hash, digest):
            return None
        if len(verified) >= VERIFIED_CACHE_SIZE:
            verified.clear()
        verified[secret] = token
        return token
