"""Site resolution: which configured site a page hostname belongs to, and its settings."""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from footfall.enrich.exclusions import NO_EXCLUSIONS, Exclusions
from footfall.enrich.urls import normalize_host
from footfall.meta import Site

log = logging.getLogger(__name__)


class CompiledSettings(NamedTuple):
    """What enrichment needs of a site's settings, ready to use per hit."""

    exclusions: Exclusions
    query_params: frozenset[str]


class SiteRegistry:
    """In-memory view of the sites table, swapped whole when the sites change.

    Each site's settings are compiled here once, not per hit; sites with default settings have
    none, so enrichment skips that work entirely."""

    def __init__(self, sites: list[Site] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_domain: dict[str, Site] = {}
        self._by_id: dict[int, Site] = {}
        self._by_tracking_id: dict[str, Site] = {}
        self._by_server_key: dict[str, Site] = {}
        self._settings: dict[int, CompiledSettings] = {}
        self.replace(sites or [])

    def replace(self, sites: list[Site]) -> None:
        by_domain = {s.domain: s for s in sites}
        by_id = {s.id: s for s in sites}
        by_tracking_id = {s.tracking_id: s for s in sites}
        by_server_key = {s.server_key.hash: s for s in sites if s.server_key is not None}
        compiled = {s.id: _compile(s) for s in sites}
        settings = {i: c for i, c in compiled.items() if c.exclusions or c.query_params}
        with self._lock:
            self._by_domain, self._by_id, self._settings = by_domain, by_id, settings
            self._by_tracking_id, self._by_server_key = by_tracking_id, by_server_key

    def by_hostname(self, hostname: str) -> Site | None:
        # Ingest passes hosts that split_page_url normalized already: try them as they are.
        return self._by_domain.get(hostname) or self._by_domain.get(normalize_host(hostname))

    def by_tracking_id(self, tracking_id: str) -> Site | None:
        return self._by_tracking_id.get(tracking_id)

    def by_server_key_hash(self, key_hash: str) -> Site | None:
        return self._by_server_key.get(key_hash)

    def by_reference(self, ref: str) -> Site | None:
        """A site named the ways users name one: tracking id, numeric id or domain."""
        ref = ref.strip()
        if ref.isascii() and ref.isdigit():  # not "³", which isdigit() also accepts
            return self.by_id(int(ref))
        return self.by_tracking_id(ref) or self.by_hostname(ref)

    def by_id(self, site_id: int) -> Site | None:
        return self._by_id.get(site_id)

    def all(self) -> list[Site]:
        return list(self._by_id.values())

    def settings_of(self, site_id: int) -> CompiledSettings | None:
        """The site's compiled settings; None when it has only defaults."""
        return self._settings.get(site_id)


def _compile(site: Site) -> CompiledSettings:
    settings = site.settings
    try:
        exclusions = Exclusions(settings.exclude_ips, settings.exclude_countries, settings.exclude_paths)
    except ValueError:  # validated when set; a hand-edited database must not stop ingest
        log.exception("site %s has invalid exclusions; they are ignored", site.domain)
        exclusions = NO_EXCLUSIONS
    return CompiledSettings(exclusions, frozenset(settings.query_params))
