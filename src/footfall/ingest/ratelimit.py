"""Per-client token buckets for the ingest endpoints.

`limits` (DESIGN's choice) offers fixed, moving and sliding windows but no token bucket, and
the ingest contract is a token bucket (rate with burst), so this small one is ours. It is
in-memory per process; scale-out moves it to Redis.
"""

from __future__ import annotations

import threading
import time


class TokenBuckets:
    def __init__(self, rate: float, burst: int, max_clients: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def per_window(cls, requests: int, seconds: float) -> TokenBuckets:
        """`requests` per `seconds` window, all of them usable at once; 0 turns it off."""
        return cls(requests / seconds, max(requests, 1))

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, client: str, now: float | None = None) -> float:
        """0.0 when the request may go ahead, else the seconds until a token is free."""
        return self._check(client, now, take=True)

    def wait(self, client: str, now: float | None = None) -> float:
        """What `take` would answer, without taking: for limits that count only failures
        (sign-in), checked before the attempt and taken after a failed one."""
        return self._check(client, now, take=False)

    def _check(self, client: str, now: float | None, take: bool) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if not take:
                    return 0.0
                if len(self._buckets) >= self.max_clients:
                    self._prune(now)
                bucket = self._buckets[client] = [self.burst, now]
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            if take:
                bucket[1] = now
                bucket[0] = tokens - 1.0 if tokens >= 1.0 else tokens
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # A bucket idle long enough to be full again holds no information.
        refill = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < refill}
        if len(self._buckets) >= self.max_clients:  # all busy: drop the oldest half
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1][1])[len(self._buckets) // 2 :]
            self._buckets = dict(keep)
