"""Hit -> Event. Raw IP and user agent are used here and go no further."""

from __future__ import annotations

from footfall.enrich import sources, urls
from footfall.enrich.visitors import SaltRing
from footfall.event import PAGEVIEW, Event
from footfall.ingest.model import Hit

MAX_PROP_VALUE = 2000


def prop_to_str(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)[:MAX_PROP_VALUE]


class Enricher:
    def __init__(self, salts: SaltRing) -> None:
        self.salts = salts

    def enrich(self, hit: Hit) -> Event:
        page = hit.page
        utm = page.utm
        if hit.utm:  # a contract's explicit campaign fields win over the URL's
            utm = {**utm, **{k: v for k, v in hit.utm.items() if v}}
        ref_host, ref_path = urls.split_referrer(hit.referrer)
        utm_source = utm.get("utm_source", "")
        return Event(
            event_id=None,
            site_id=hit.site_id,
            ts=hit.ts_us,
            received_at=hit.received_us,
            kind=hit.kind,
            name=hit.name if hit.kind != PAGEVIEW else "pageview",
            hostname=page.hostname,
            pathname=page.pathname,
            referrer_host=ref_host,
            referrer_path=ref_path,
            source=sources.classify(ref_host, page.hostname, utm_source),
            utm_source=utm_source,
            utm_medium=utm.get("utm_medium", ""),
            utm_campaign=utm.get("utm_campaign", ""),
            utm_term=utm.get("utm_term", ""),
            utm_content=utm.get("utm_content", ""),
            visitor_id=self.salts.visitor_id(hit.site_id, hit.ts_us, hit.ip, hit.user_agent),
            session_key=hit.session_id,
            page_id=hit.page_id,
            user_id=hit.user_id,
            # User agent and geo parsing arrive with the full enrichment; until then the
            # agent is reduced to nothing rather than kept.
            browser="",
            browser_version="",
            os="",
            os_version="",
            device="",
            country="",
            region="",
            city="",
            language=hit.language,
            screen_width=hit.screen_width,
            props={k: prop_to_str(v) for k, v in hit.props.items()},
            revenue_amount=hit.revenue_amount,
            revenue_currency=hit.revenue_currency,
            source_api=hit.source_api,
        )
