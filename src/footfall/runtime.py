"""The running engine: store, spool, writer and the read-only reference data adapters use.

One `Runtime` per process that owns a data directory. HTTP adapters read `sites`, `tokens`,
`limiter` and `enricher`, and hand finished events to `accept`, which returns once they
are durable in the spool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from footfall import manage
from footfall.api.auth import TokenRegistry
from footfall.config import Settings
from footfall.enrich import sources
from footfall.enrich.enricher import Enricher
from footfall.enrich.geo import open_geo
from footfall.enrich.sites import SiteRegistry
from footfall.enrich.visitors import SaltRing
from footfall.event import Event, encode_event_lines
from footfall.ingest.caps import MonthlyPageviews
from footfall.ingest.identities import Identities
from footfall.ingest.ratelimit import TokenBuckets
from footfall.pipeline.sessions import Sessionizer
from footfall.pipeline.spool import Spool, frame_lines
from footfall.pipeline.writer import Writer
from footfall.store.duckdb import DuckDBStore
from footfall.web.accounts import Accounts

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._closed = False
        self.started_at = time.time()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = DuckDBStore.for_settings(settings)
        self.salts = SaltRing()
        self.salts.rotate(self.store)
        self.sites = SiteRegistry()
        self.tokens = TokenRegistry()
        self.identities = Identities(self.store)
        self.accounts = Accounts(self.store, self.sites)  # dashboard users and share links
        self.refresh()
        self.geo = open_geo(settings.geoip_db)
        sources.preload()
        self.enricher = Enricher(self.salts, self.geo, self.sites, settings.exclusions)
        self.monthly_pageviews = MonthlyPageviews(self.store)
        self.limiter = TokenBuckets(settings.ingest_rate_limit, settings.ingest_burst)
        # Seed 002's public endpoint: a burst window and an hourly one, both per visitor IP.
        self.public_limits = (
            TokenBuckets.per_window(settings.public_rate_per_10s, 10),
            TokenBuckets.per_window(settings.public_rate_per_hour, 3600),
        )
        # Seed 004's server API: per secret key and endpoint.
        self.server_api_limits = {
            "track": TokenBuckets.per_window(settings.server_api_track_per_minute, 60),
            "identify": TokenBuckets.per_window(settings.server_api_identify_per_minute, 60),
            "user-id": TokenBuckets.per_window(settings.server_api_user_id_per_minute, 60),
        }

        self.spool = Spool(
            settings.spool_dir, settings.spool_segment_bytes, settings.spool_rotate_ms / 1000
        )
        self.sessionizer = Sessionizer(self.store, settings.session_timeout_minutes * 60_000_000)
        self.writer = Writer(self.spool, self.store, self.sessionizer, settings.writer_batch_events)
        self.writer.start()
        self.manage = manage.Context(self.store, on_change=self.refresh)

    def refresh(self) -> None:
        """Reload sites and tokens after a management change."""
        self.sites.replace(self.store.list_sites())
        self.tokens.replace(self.store.list_tokens())
        self.identities.clear()
        self.accounts.refresh()

    def accept(self, events: list[Event]) -> asyncio.Future[None]:
        """Make events durable: the caller may acknowledge them once the future is done."""
        return self.spool.append(frame_lines(encode_event_lines(events)), len(events))

    def rotate_salts(self) -> None:
        self.salts.rotate(self.store)

    def readiness(self) -> dict[str, Any]:
        return {
            "store": self.store.healthy(),
            "spool": {
                "directory": str(self.settings.spool_dir),
                "segments_pending": self.spool.pending_segments(),
                "records_written": self.spool.records_written,
                "fsyncs": self.spool.fsyncs,
            },
            "writer": {
                "lag_seconds": round(self.spool.lag_seconds(), 3),
                "events_committed": self.writer.events_committed,
                "torn_records_dropped": self.writer.torn_records_dropped,
                "torn_segments": self.writer.torn_segments[-10:],
                "undecodable_records": self.writer.undecodable_records,
                "duplicates_skipped": self.writer.duplicates_skipped,
                "last_error": self.writer.last_error,
            },
        }

    def close(self) -> None:
        """Flush the spool, drain it into the store, and close the store. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.spool.close()
        self.writer.stop()
        self.store.close()
        self.geo.close()
        log.info("stopped; spool drained into the store")


