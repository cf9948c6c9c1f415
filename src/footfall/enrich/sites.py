"""Site resolution: which configured site a page hostname belongs to."""

from __future__ import annotations

import threading

from footfall.enrich.urls import normalize_host
from footfall.meta import Site


class SiteRegistry:
    """In-memory view of the sites table, swapped whole when the sites change."""

    def __init__(self, sites: list[Site] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_domain: dict[str, Site] = {}
        self._by_id: dict[int, Site] = {}
        self.replace(sites or [])

    def replace(self, sites: list[Site]) -> None:
        by_domain = {s.domain: s for s in sites}
        by_id = {s.id: s for s in sites}
        with self._lock:
            self._by_domain, self._by_id = by_domain, by_id

    def by_hostname(self, hostname: str) -> Site | None:
        return self._by_domain.get(normalize_host(hostname))

    def by_id(self, site_id: int) -> Site | None:
        return self._by_id.get(site_id)

    def all(self) -> list[Site]:
        return list(self._by_id.values())
