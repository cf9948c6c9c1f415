"""Visitor identity without cookies or stored personal data.

`visitor_id` is a keyed 64-bit BLAKE2b hash of (site, IP, user agent) under the random salt of
the event's UTC day. Salts live in the store so every process agrees on them, and are deleted
two days after their day, after which nobody can recompute a visitor from an IP and agent.

A record older than the oldest kept salt (historical replay) is hashed with the current salt
plus its own date: visitors still count right within that day, and the hash links to nothing
outside the replay.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from hashlib import blake2b
from typing import Any, Protocol

from footfall.event import VISITOR_DAY_US

SALT_BYTES = 32
# Salts of today-1 .. today+1 are kept; tomorrow's exists early so clocks running slightly
# ahead near midnight still hash with the salt of their own day.
KEEP_PAST_DAYS = 1
KEEP_FUTURE_DAYS = 1

EPOCH = dt.date(1970, 1, 1)


class SaltStore(Protocol):
    def load_salts(self) -> dict[int, bytes]: ...
    def save_salt(self, day: int, salt: bytes) -> None: ...
    def delete_salts_before(self, day: int) -> int: ...


def day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def utc_day_of_us(ts_us: int) -> int:
    return ts_us // VISITOR_DAY_US


class SaltRing:
    """The kept daily salts, refreshed from the store by `rotate`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._salts: dict[int, bytes] = {}
        self._keyed: dict[int, Any] = {}  # day -> blake2b keyed with its salt
        self._today = -1

    def rotate(self, store: SaltStore, today: dt.date | None = None) -> None:
        """Create missing salts for the kept days and delete expired ones. Idempotent."""
        today_n = day_number(today or dt.datetime.now(dt.UTC).date())
        salts = store.load_salts()
        for day in range(today_n - KEEP_PAST_DAYS, today_n + KEEP_FUTURE_DAYS + 1):
            if day not in salts:
                salt = secrets.token_bytes(SALT_BYTES)
                store.save_salt(day, salt)
                salts[day] = salt
        store.delete_salts_before(today_n - KEEP_PAST_DAYS)
        kept = {d: s for d, s in salts.items() if d >= today_n - KEEP_PAST_DAYS}
        # A keyed hasher per day, copied per hit: cheaper than keying a new one every time.
        keyed = {d: blake2b(key=s, digest_size=8) for d, s in kept.items()}
        with self._lock:
            self._salts, self._keyed, self._today = kept, keyed, today_n

    @property
    def kept_days(self) -> list[int]:
        return sorted(self._salts)

    def visitor_id(self, site_id: int, ts_us: int, ip: str, user_agent: str) -> int:
        day = ts_us // VISITOR_DAY_US  # utc_day_of_us, inlined: this runs for every hit
        keyed = self._keyed.get(day)
        message = f"{site_id}\x00{ip}\x00{user_agent}".encode("utf-8", "surrogatepass")
        if keyed is None:
            keyed = self._keyed.get(self._today)
            if keyed is None:
                raise RuntimeError("salts not loaded: call SaltRing.rotate first")
            message += b"\x00" + day.to_bytes(4, "big", signed=True)
        hasher = keyed.copy()
        hasher.update(message)
        return int.from_bytes(hasher.digest(), "big")
