"""Who a server-API call (seed 004) is about, without keeping who they are.

A call names its visitor by `visitorId` (an id the caller's app keeps for an anonymous
visitor), `userId` (the caller's own user id, or the `ff_usr_…` id that /user-id gave for a
visitorId) or `email` (of a visitor identified before). Each resolves to the visitor's *user
id*: a visitorId's is its `ff_usr_…` id, a userId is its own. The visitor's hash, like every
visitor's, is then a keyed hash of that user id under the day's salt (see enrich.visitors).

Sites that keep identified visitors (SiteSettings.identified_visitors, off by default) also
keep aliases: keyed hashes of the ids and emails a visitor was identified by, each naming its
user id. So `identify` with `traits.userId` merges a visitor's devices into one user, and
track-by-email works, with no email at rest. The key is the instance's own, made once
(store.identity_key); without it nobody can tell which email or id a hash is of.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from hashlib import blake2b
from typing import Literal

from footfall.meta import Site
from footfall.store.base import IdentityUpdate, Store

USER_ID_PREFIX = "ff_usr_"
AliasKind = Literal["user", "email"]


def normalize_email(email: str) -> str:
    return email.strip().lower()


class Identities:
    def __init__(self, store: Store, cache_size: int = 100_000) -> None:
        self.store = store
        self._keyed = blake2b(key=store.identity_key(), digest_size=16)
        self._lock = threading.Lock()
        # (site id, alias) -> user id, or None for an alias known to name nobody.
        self._cache: OrderedDict[tuple[int, str], str | None] = OrderedDict()
        self._cache_size = cache_size

    def _hash(self, *parts: str) -> str:
        hasher = self._keyed.copy()
        hasher.update("\x00".join(parts).encode("utf-8", "surrogatepass"))
        return hasher.hexdigest()

    def user_id_of(self, site_id: int, visitor_id: str) -> str:
        """A visitorId's stable user id: the same for the same site and visitorId, forever."""
        return USER_ID_PREFIX + self._hash("visitor", str(site_id), visitor_id)[:24]

    def alias(self, site_id: int, kind: AliasKind, value: str) -> str:
        return self._hash(kind, str(site_id), normalize_email(value) if kind == "email" else value)

    def resolve(self, site: Site, *, user_id: str | None = None, email: str | None = None,
                visitor_id: str | None = None) -> str | None:
        """The user id of the visitor a call names; None for an email nobody was identified by
        (always, on a site that keeps no identified visitors)."""
        identified = site.settings.identified_visitors
        if email is not None:
            return self._lookup(site.id, self.alias(site.id, "email", email)) if identified else None
        given = user_id if user_id is not None else self.user_id_of(site.id, visitor_id or "")
        if not identified:
            return given
        return self._lookup(site.id, self.alias(site.id, "user", given)) or given

    def update_for(self, site: Site, current: str, *, given_user_id: str | None, email: str | None,
                   new_user_id: str | None, name: str | None, traits: dict[str, object]) -> IdentityUpdate:
        """What an identify call changes, for `save`: the visitor known as `current` (by
        `given_user_id`, a visitorId's user id, or an email) is now `new_user_id` if given."""
        user_id = new_user_id or current
        aliases = {self.alias(site.id, "user", u) for u in (current, user_id, given_user_id) if u}
        if email:
            aliases.add(self.alias(site.id, "email", email))
        return IdentityUpdate(
            user_id=user_id,
            previous=current if current != user_id else None,
            aliases=sorted(aliases),
            email_hash=self.alias(site.id, "email", email) if email else None,
            name=name,
            traits=dict(traits),
        )

    def save(self, site_id: int, update: IdentityUpdate) -> None:
        """Store an identify call's changes (in a worker thread: it writes to the store)."""
        self.store.save_identity(site_id, update)
        with self._lock:
            if update.previous is not None:  # aliases of the previous id now name the new one
                for key in [k for k, v in self._cache.items() if k[0] == site_id and v == update.previous]:
                    self._cache[key] = update.user_id
            for alias in update.aliases:
                self._remember((site_id, alias), update.user_id)

    def clear(self) -> None:
        """Forget cached aliases: a management change (a site removed, identified visitors
        turned off) may have deleted them."""
        with self._lock:
            self._cache.clear()

    def _lookup(self, site_id: int, alias: str) -> str | None:
        key = (site_id, alias)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        found = self.store.resolve_alias(site_id, alias)
        with self._lock:
            self._remember(key, found)
        return found

    def _remember(self, key: tuple[int, str], user_id: str | None) -> None:
        self._cache[key] = user_id
        self._cache.move_to_end(key)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
