"""Hit -> Event. Raw IP, user agent and query string are used here and go no further.

One pass per hit: who sent it (bot, AI crawler or a browser), whether it counts at all
(do-not-track, referrer spam, exclusions), and the derived fields of what is stored. A hit
that does not count still becomes a record (AI_FETCH or DROPPED) so the dashboard can say
how much was filtered and why; those records carry no visitor identity. Do-not-track hits
leave nothing at all.
"""

from __future__ import annotations

from footfall.enrich import bots, sources, urls
from footfall.enrich.exclusions import NO_EXCLUSIONS, Exclusions
from footfall.enrich.geo import GeoLocator
from footfall.enrich.sites import SiteRegistry
from footfall.enrich.useragents import parse_agent
from footfall.enrich.visitors import SaltRing
from footfall.event import (
    AI_FETCH,
    DROP_BOT,
    DROP_SPAM,
    DROPPED,
    PAGEVIEW,
    Event,
)
from footfall.ingest.model import Hit

MAX_PROP_VALUE = 2000
QUERY_PROP_PREFIX = "query."  # an allow-listed query parameter is kept as this property


def prop_to_str(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)[:MAX_PROP_VALUE]


def not_counted(hit: Hit, reason: str, bot: bots.BotMatch | None = None) -> Event:
    """A record of a hit that is not an event: site, time, path and why; nobody's identity."""
    return Event(
        site_id=hit.site_id,
        ts=hit.ts_us,
        received_at=hit.received_us,
        kind=DROPPED,
        name=reason,
        hostname=hit.page.hostname,
        pathname=hit.page.pathname,
        visitor_id=0,
        source_api=hit.source_api,
        bot=bot.name if bot else "",
        bot_family=bot.family if bot else "",
    )


class Enricher:
    def __init__(
        self, salts: SaltRing, geo: GeoLocator, sites: SiteRegistry, instance: Exclusions = NO_EXCLUSIONS
    ) -> None:
        self.salts = salts
        self.geo = geo
        self.sites = sites
        self.instance = instance

    def enrich(self, hit: Hit) -> Event | None:
        """The record of a hit; None when the visitor asked not to be tracked (not even
        counted: seed 000 stores nothing for `dnt`)."""
        page = hit.page
        if hit.dnt:
            return None
        # An empty agent is "Other", still counted (seed 001); bots are told apart by what
        # they say they are.
        bot = bots.detect_bot(hit.user_agent) if hit.user_agent else None
        if bot is not None:
            if bot.ai:
                return ai_fetch(hit, bot)
            return not_counted(hit, DROP_BOT, bot)
        ref_host, ref_path = urls.split_referrer(hit.referrer)
        if ref_host and sources.is_referrer_spam(ref_host):
            return not_counted(hit, DROP_SPAM)
        geo = self.geo.lookup(hit.ip)
        site_exclusions = self.sites.exclusions(hit.site_id)
        reason = None
        if self.instance:
            reason = self.instance.reason(hit.ip, geo.country, page.pathname)
        if reason is None and site_exclusions:
            reason = site_exclusions.reason(hit.ip, geo.country, page.pathname)
        if reason is not None:
            return not_counted(hit, reason)

        utm = page.utm
        if hit.utm:  # a contract's explicit campaign fields win over the URL's
            utm = {**utm, **{k: v for k, v in hit.utm.items() if v}}
        utm_source = utm.get("utm_source", "")
        source = sources.classify_source(ref_host, page.hostname, utm_source, utm.get("utm_medium", ""))
        agent = parse_agent(hit.user_agent)
        props = {k: prop_to_str(v) for k, v in hit.props.items()} if hit.props else {}
        if page.query:
            kept = self.sites.query_params(hit.site_id)
            if kept:
                props.update(urls.allowed_query(page.query, kept, QUERY_PROP_PREFIX))
        return Event(
            site_id=hit.site_id,
            ts=hit.ts_us,
            received_at=hit.received_us,
            kind=hit.kind,
            name=hit.name if hit.kind != PAGEVIEW else PAGEVIEW,
            hostname=page.hostname,
            pathname=page.pathname,
            referrer_host=ref_host,
            referrer_path=ref_path,
            source=source.source,
            channel=source.channel,
            utm_source=utm_source,
            utm_medium=utm.get("utm_medium", ""),
            utm_campaign=utm.get("utm_campaign", ""),
            utm_term=utm.get("utm_term", ""),
            utm_content=utm.get("utm_content", ""),
            visitor_id=self.salts.visitor_id(hit.site_id, hit.ts_us, hit.ip, hit.user_agent),
            session_key=hit.session_id,
            page_id=hit.page_id,
            user_id=hit.user_id,
            browser=agent.browser,
            browser_version=agent.browser_version,
            os=agent.os,
            os_version=agent.os_version,
            device=agent.device,
            country=geo.country,
            region=geo.region,
            city=geo.city,
            language=hit.language,
            screen_width=hit.screen_width,
            props=props,
            revenue_amount=hit.revenue_amount,
            revenue_currency=hit.revenue_currency,
            source_api=hit.source_api,
        )


def ai_fetch(
    hit: Hit,
    bot: bots.BotMatch,
    status_code: int | None = None,
    content_type: str = "",
    response_ms: float | None = None,
    bytes_served: int | None = None,
) -> Event:
    """A fetch by an AI crawler or assistant: which bot read which page, never a visitor."""
    return Event(
        site_id=hit.site_id,
        ts=hit.ts_us,
        received_at=hit.received_us,
        kind=AI_FETCH,
        name=bot.name,
        hostname=hit.page.hostname,
        pathname=hit.page.pathname,
        visitor_id=0,
        source_api=hit.source_api,
        bot=bot.name,
        bot_family=bot.family,
        ai_kind=bot.ai,
        status_code=status_code,
        content_type=content_type,
        response_ms=response_ms,
        bytes_served=bytes_served,
    )
