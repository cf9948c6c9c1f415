"""Monthly pageview caps: how many pageviews a site has received this calendar month (UTC).

The count is the store's, refreshed every few seconds, plus the pageviews accepted since.
Pageviews still in the spool when the store is asked are missed for that one refresh (the
writer's lag, well under a second), so a cap can be passed by a few pageviews, never held
back early. Counted here: pageviews received through any contract; the collect API (seed 001)
is the contract that answers 402 once the cap is reached.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from footfall.store.base import Store

REFRESH_SECONDS = 5.0


def month_start_us(now_us: int) -> int:
    now = dt.datetime.fromtimestamp(now_us / 1_000_000, dt.UTC)
    start = dt.datetime(now.year, now.month, 1, tzinfo=dt.UTC)
    return int(start.timestamp()) * 1_000_000


@dataclass
class _Count:
    month_start_us: int
    stored: int  # in the store at the last refresh
    accepted: int  # accepted since
    refreshed_at: float


class MonthlyPageviews:
    """Used from the event loop's thread only, as the ingest handlers are."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._counts: dict[int, _Count] = {}

    def received(self, site_id: int, now_us: int) -> int:
        """Pageviews the site has received this month, as far as known."""
        month = month_start_us(now_us)
        count = self._counts.get(site_id)
        clock = time.monotonic()
        if count is None or count.month_start_us != month or clock - count.refreshed_at >= REFRESH_SECONDS:
            stored = self._store.pageviews_received_since(site_id, month)
            count = self._counts[site_id] = _Count(month, stored, 0, clock)
        return count.stored + count.accepted

    def add(self, site_id: int, pageviews: int = 1) -> None:
        count = self._counts.get(site_id)
        if count is not None:
            count.accepted += pageviews
