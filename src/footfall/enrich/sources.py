"""Traffic source of a visit.

Seam for the source classifier: until the search-engine, social and AI-assistant lists are
wired in, the source is the referring host, or the campaign source when there is no referrer.
Self-referrals (navigation within the site) are not a source.
"""

from __future__ import annotations


def classify(referrer_host: str, site_host: str, utm_source: str) -> str:
    if referrer_host and referrer_host != site_host:
        return referrer_host
    return utm_source
