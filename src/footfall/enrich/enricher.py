"""Hit -> Event. Raw IP, user agent and query string are used here and go no further.

One pass per hit: who sent it (bot, AI crawler or a browser), whether it counts at all
(do-not-track, referrer spam, exclusions), and the derived fields of what is stored. A hit
that does not count still becomes a record (AI_FETCH or DROPPED) so the dashboard can say
how much was filtered and why; those records carry no visitor identity. Do-not-track hits
leave nothing at all.
"""

from __future__ import annotations

from typing import cast

from footfall.enrich import bots, sources, urls
from footfall.enrich.exclusions import NO_EXCLUSIONS, Exclusions
from footfall.enrich.geo import GeoLocator
from footfall.enrich.sites import CompiledSettings, SiteRegistry
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
        self.instance = instance if instance else None

    def enrich(self, hit: Hit) -> Event | None:
        """The record of a hit; None when the visitor asked not to be tracked (not even
        counted: seed 000 stores nothing for `dnt`). This runs for every hit, so its common
        path is written for speed: cached lookups, no work for features a site does not use."""
        if hit.dnt:
            return None
        agent_text = hit.user_agent
        # An empty agent is "Other", still counted (seed 001); bots are told apart by what
        # they say they are.
        bot = bots.detect_bot(agent_text) if agent_text else None
        if bot is not None:
            return ai_fetch(hit, bot) if bot.ai else not_counted(hit, DROP_BOT, bot)
        ref_host, ref_path = urls.split_referrer(hit.referrer) if hit.referrer else _NO_REFERRER
        if ref_host and sources.is_referrer_spam(ref_host):
            return not_counted(hit, DROP_SPAM)
        page = hit.page
        geo = self.geo.lookup(hit.ip)
        site_id = hit.site_id
        settings = self.sites.settings_of(site_id)
        if self.instance is not None or settings is not None:
            reason = self._excluded(hit, geo.country, settings)
            if reason is not None:
                return not_counted(hit, reason)

        # The campaign values present, keyed by their Event field names (urls.UTM_KEYS).
        utm = page.utm
        if hit.utm:  # a contract's explicit campaign fields win over the URL's
            utm = cast(urls.Utm, {**utm, **{k: v for k, v in hit.utm.items() if v and k in urls.UTM_KEYS}})
        source = sources.classify_source(ref_host, page.hostname, utm.get("utm_source", ""), utm.get("utm_medium", ""))
        agent = parse_agent(agent_text)
        props = {k: prop_to_str(v) for k, v in hit.props.items()} if hit.props else {}
        if page.query and settings is not None and settings.query_params:
            props.update(urls.allowed_query(page.query, settings.query_params, QUERY_PROP_PREFIX))
        return Event(
            site_id=site_id,
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
            **utm,
            visitor_id=self.salts.visitor_id(site_id, hit.ts_us, hit.ip, agent_text),
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

    def _excluded(self, hit: Hit, country: str, settings: CompiledSettings | None) -> str | None:
        path = hit.page.pathname
        reason = None
        if self.instance is not None:
            reason = self.instance.reason(hit.ip, country, path)
        if reason is None and settings is not None and settings.exclusions:
            reason = settings.exclusions.reason(hit.ip, country, path)
        return reason


_NO_REFERRER = ("", "")


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
