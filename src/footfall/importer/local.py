"""The in-process import: candidates enriched as live hits are, then loaded into the store
batch by batch through the writer's own path (`pipeline.writer.load_batch`): the same
staging, event-id dedupe, sessionizer and single transaction per batch as live traffic.

DuckDB admits one writing process, so this runs only while no server holds the data
directory; with one running, `--server` sends the lines through its batch API instead.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterable

import msgspec

from footfall import control
from footfall.config import Settings
from footfall.enrich import sources, urls
from footfall.enrich.enricher import Enricher
from footfall.enrich.geo import GeoLocator, open_geo
from footfall.enrich.sites import SiteRegistry
from footfall.enrich.visitors import SaltRing
from footfall.event import AI_FETCH, DROP_BOT, DROPPED, PAGEVIEW, Event, encode_event
from footfall.importer import parallel
from footfall.importer.pageviews import BAD_TARGET, page_address
from footfall.importer.parallel import KnownSalts
from footfall.importer.pipeline import Candidate, Source, Summary, file_candidates, files
from footfall.ingest.model import Hit
from footfall.ingest.sdk import derived_event_id
from footfall.ingest.server_api import SOURCE_API as SERVER_SOURCE_API
from footfall.meta import Site, SiteSettings
from footfall.pipeline.sessions import Sessionizer
from footfall.pipeline.writer import load_batch
from footfall.store.base import StoreError
from footfall.store.duckdb import DuckDBStore

SOURCE_API = "import"
# The namespace of derived event ids: the server API's, so a line imported in-process and
# the same line sent with --server (its batch record `id`) are one event.
EVENT_ID_NAMESPACE = SERVER_SOURCE_API


class CannotImport(Exception):
    """The import cannot start or go on: a message for the user, not a traceback."""


def server_listening(settings: Settings) -> bool:
    path = settings.control_socket
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _server_holds(settings: Settings) -> CannotImport:
    return CannotImport(
        f"a footfall server is running on {settings.data_dir} and DuckDB admits one writer: "
        "import through it with --server http://HOST:PORT --token TOKEN "
        "(a token with the site.manage_data scope), or stop the server first"
    )


def page_url(site: Site, target: str) -> urls.PageUrl:
    """The page a request target names on the site (ValueError when it is no URL)."""
    return urls.split_page_url(page_address(site.domain, target))


def enrich_batch(enricher: Enricher, site: Site, batch: Iterable[Candidate], summary: Summary) -> list[Event]:
    """Each candidate enriched exactly as a live hit, with the event id of its line."""
    events: list[Event] = []
    received = time.time_ns() // 1000
    site_id = site.id
    enrich = enricher.enrich
    excluded = summary.excluded
    pageviews = bots = ai = 0
    for candidate in batch:
        line = candidate.line
        try:
            page = page_url(site, line.target)
        except ValueError:  # too long to be a page URL
            summary.not_pageviews[BAD_TARGET] += 1
            continue
        event = enrich(
            Hit(
                site_id=site_id,
                kind="pageview",
                page=page,
                ts_us=line.ts_us,
                received_us=received,
                ip=line.ip,
                user_agent=line.agent,
                source_api=SOURCE_API,
                referrer=line.referrer,
            )
        )
        if event is None:
            continue
        kind = event.kind
        if kind == PAGEVIEW:
            pageviews += 1
        elif kind == AI_FETCH:
            ai += 1
        elif kind == DROPPED:
            if event.name == DROP_BOT:
                bots += 1
            else:
                excluded[event.name] += 1
        event.event_id = derived_event_id(EVENT_ID_NAMESPACE, site_id, candidate.line_id)
        events.append(event)
    summary.pageviews += pageviews
    summary.bots += bots
    summary.ai_fetches += ai
    return events


class _Enriching:
    site: Site
    enricher: Enricher
    geo: GeoLocator

    def _start(self, settings: Settings, sites: list[Site], salts: SaltRing, site_ref: str) -> None:
        registry = SiteRegistry(sites)
        site = registry.by_reference(site_ref)
        if site is None:
            raise CannotImport(f"no site {site_ref!r} in {settings.data_dir}: add it with `footfall sites add`")
        self.site = site
        self.geo = open_geo(settings.geoip_db)
        sources.preload()
        self.enricher = Enricher(salts, self.geo, registry, settings.exclusions)


class LocalImport(_Enriching):
    """Enrich and store, in this process, on the data directory."""

    def __init__(self, settings: Settings, site_ref: str) -> None:
        if server_listening(settings):
            raise _server_holds(settings)
        try:
            self.store = DuckDBStore.for_settings(settings, open_attempts=3)
        except StoreError:
            raise _server_holds(settings) from None
        self.settings = settings
        try:
            salts = SaltRing()
            salts.rotate(self.store)
            self._start(settings, self.store.list_sites(), salts, site_ref)
        except BaseException:
            self.store.close()
            raise
        self.sessionizer = Sessionizer(self.store, settings.session_timeout_minutes * 60_000_000)
        # Loading a batch (DuckDB's staging, sessions, the commit) runs on a thread of its own
        # while this one reads and enriches the next: DuckDB's part runs off the GIL.
        self._batches: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=2)
        self._duplicates = 0
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._write, name="import-writer", daemon=True)
        self._writer.start()

    def load(self, batch: list[Candidate], summary: Summary) -> None:
        if self._error is not None:
            raise self._error
        events = enrich_batch(self.enricher, self.site, batch, summary)
        if events:
            self._batches.put([encode_event(e) for e in events])

    def run(self, source: Source, summary: Summary, now_us: int, workers: int, any_size: bool = False) -> None:
        """Import every file: big ones in a bulk format (any size with `any_size`) on `workers`
        processes (0: none)."""
        for log, fmt in files(source, summary):
            if parallel.eligible(log, fmt, workers, any_size):
                setup = parallel.WorkerSetup(
                    self.settings.data_dir, self.site, self.store.load_salts(), fmt.name, source.page_filter, now_us
                )
                parallel.import_file(log, setup, self.enricher, workers, source, summary, self._put)
            else:
                for batch in file_candidates(source, summary, log, fmt, now_us):
                    self.load(batch, summary)

    def _put(self, payloads: list[bytes]) -> None:
        if self._error is not None:
            raise self._error
        self._batches.put(payloads)

    def _write(self) -> None:
        while (payloads := self._batches.get()) is not None:
            if self._error is None:
                try:
                    self._duplicates += load_batch(self.store, self.sessionizer, payloads, []).duplicates
                except BaseException as exc:  # handed to the reading thread, which stops
                    self._error = exc

    def finish(self, summary: Summary) -> None:
        """Wait until every batch is committed."""
        self._stop_writer()
        summary.already_imported += self._duplicates
        if self._error is not None:
            raise self._error

    def _stop_writer(self) -> None:
        if self._writer.is_alive():
            self._batches.put(None)
            self._writer.join()

    def close(self) -> None:
        self._stop_writer()
        self.store.close()
        self.geo.close()


class DryRun(_Enriching):
    """Enrich as the import would, store nothing. Reads the site (and its exclusions) through
    `control.call`, so it works while a server runs too."""

    def __init__(self, settings: Settings, site_ref: str) -> None:
        try:
            record = control.call(settings, "sites.show", {"site": site_ref})
        except Exception as exc:
            raise CannotImport(f"cannot read site {site_ref!r}: {exc}") from None
        site = Site(
            id=record["id"],
            domain=record["domain"],
            timezone=record["timezone"],
            tracking_id=record["tracking_id"],
            created_at=record["created_at"],
            settings=msgspec.convert(record["settings"], SiteSettings),
        )
        salts = SaltRing()
        salts.rotate(KnownSalts({}))
        self._start(settings, [site], salts, site_ref)

    def load(self, batch: list[Candidate], summary: Summary) -> None:
        enrich_batch(self.enricher, self.site, batch, summary)

    def finish(self, summary: Summary) -> None:
        pass

    def close(self) -> None:
        self.geo.close()
