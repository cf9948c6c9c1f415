"""Site resolution: which configured site a page hostname belongs to, and its settings."""

from __future__ import annotations

import logging
import threading

from footfall.enrich.exclusions import NO_EXCLUSIONS, Exclusions
from footfall.enrich.urls import normalize_host
from footfall.meta import Site

log = logging.getLogger(__name__)


class SiteRegistry:
    """In-memory view of the sites table, swapped whole when the sites change.

    Each site's exclusions are compiled here once, not per hit."""

    def __init__(self, sites: list[Site] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_domain: dict[str, Site] = {}
        self._by_id: dict[int, Site] = {}
        self._exclusions: dict[int, Exclusions] = {}
        self._query_params: dict[int, frozenset[str]] = {}
        self.replace(sites or [])

    def replace(self, sites: list[Site]) -> None:
        by_domain = {s.domain: s for s in sites}
        by_id = {s.id: s for s in sites}
        exclusions = {s.id: _compile(s) for s in sites}
        query_params = {s.id: frozenset(s.settings.query_params) for s in sites if s.settings.query_params}
        with self._lock:
            self._by_domain, self._by_id = by_domain, by_id
            self._exclusions, self._query_params = exclusions, query_params

    def by_hostname(self, hostname: str) -> Site | None:
        return self._by_domain.get(normalize_host(hostname))

    def by_id(self, site_id: int) -> Site | None:
        return self._by_id.get(site_id)

    def all(self) -> list[Site]:
        return list(self._by_id.values())

    def exclusions(self, site_id: int) -> Exclusions:
        return self._exclusions.get(site_id, NO_EXCLUSIONS)

    def query_params(self, site_id: int) -> frozenset[str]:
        return self._query_params.get(site_id, frozenset())


def _compile(site: Site) -> Exclusions:
    settings = site.settings
    try:
        return Exclusions(settings.exclude_ips, settings.exclude_countries, settings.exclude_paths)
    except ValueError:  # validated when set; a hand-edited database must not stop ingest
        log.exception("site %s has invalid exclusions; they are ignored", site.domain)
        return NO_EXCLUSIONS
