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
from footfall.enrich.geo import Geo, GeoLocator
from footfall.enrich.sites import CompiledSettings, SiteRegistry
from footfall.enrich.textcache import TextCache
from footfall.enrich.useragents import Agent, parse_uncached
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
        path is written for speed: one cached lookup per input (agent, referrer, address),
        no work for features a site does not use, keyword arguments only for what is set."""
        if hit.dnt:
            return None
        agent_text = hit.user_agent
        agent = identify(agent_text)
        if isinstance(agent, bots.BotMatch):
            return ai_fetch(hit, agent) if agent.ai else not_counted(hit, DROP_BOT, agent)
        page = hit.page
        # The campaign values present, keyed by their Event field names (urls.UTM_KEYS).
        utm = page.utm
        if hit.utm:  # a contract's explicit campaign fields win over the URL's
            utm = cast(urls.Utm, {**utm, **{k: v for k, v in hit.utm.items() if v and k in urls.UTM_KEYS}})
        if hit.referrer or utm:
            ref = sources.referral(hit.referrer, page.hostname, utm.get("utm_source", ""), utm.get("utm_medium", ""))
            if ref is None:
                return not_counted(hit, DROP_SPAM)
        else:
            ref = sources.DIRECT_REFERRAL
        geo = self.geo.lookup(hit.ip)
        site_id = hit.site_id
        settings = self.sites.settings_of(site_id)
        if self.instance is not None or settings is not None:
            reason = self._excluded(hit, geo.country, settings)
            if reason is not None:
                return not_counted(hit, reason)

        props = {k: prop_to_str(v) for k, v in hit.props.items()} if hit.props else {}
        if page.query and settings is not None and settings.query_params:
            props.update(urls.allowed_query(page.query, settings.query_params, QUERY_PROP_PREFIX))
        event = Event(  # positionally, in ENRICHED_FIELDS order: see event.py for why
            site_id,
            hit.ts_us,
            hit.received_us,
            hit.kind,
            hit.name if hit.kind != PAGEVIEW else PAGEVIEW,
            self.salts.visitor_id(site_id, hit.ts_us, hit.ip, agent_text)
            if hit.visitor_key is None
            # An empty address: no (address, agent) pair hashes like a named visitor.
            else self.salts.visitor_id(site_id, hit.ts_us, "", hit.visitor_key),
            hit.source_api,
            page.hostname,
            page.pathname,
            *ref,
            *agent,
            *geo,
            hit.session_id,
            hit.page_id,
            hit.user_id,
            hit.language,
            hit.screen_width,
            props,
            hit.revenue_amount,
            hit.revenue_currency,
        )
        for key, value in utm.items():  # rare, and cheaper than a ** in every call
            setattr(event, key, value)
        return event

    def _excluded(self, hit: Hit, country: str, settings: CompiledSettings | None) -> str | None:
        path = hit.page.pathname
        reason = None
        if self.instance is not None:
            reason = self.instance.reason(hit.ip, country, path)
        if reason is None and settings is not None and settings.exclusions:
            reason = settings.exclusions.reason(hit.ip, country, path)
        return reason


# The Event fields `Enricher.enrich` passes by position, named after what fills them. Checked
# at import, so a reordered Event or tuple fails loudly instead of filling the wrong columns.
ENRICHED_FIELDS = (
    "site_id", "ts", "received_at", "kind", "name", "visitor_id", "source_api", "hostname", "pathname",
    *("referrer_" + f if f in ("host", "path") else f for f in sources.Referral._fields),
    *Agent._fields,
    *Geo._fields,
    "session_key", "page_id", "user_id", "language", "screen_width", "props", "revenue_amount", "revenue_currency",
)  # fmt: skip
if Event.__struct_fields__[: len(ENRICHED_FIELDS)] != ENRICHED_FIELDS:
    raise ImportError("Event's fields are not in the order Enricher.enrich passes them")


def _identify_uncached(user_agent: str) -> bots.BotMatch | Agent:
    """The bot an agent names, else the browser, OS and device it describes. An empty agent
    is "Other", still counted (seed 001); "-" or blanks are the "empty" bot."""
    bot = bots.detect_uncached(user_agent) if user_agent else None
    return bot if bot is not None else parse_uncached(user_agent)


# Bot detection and agent parsing, cached together: one lookup per hit.
_identity_cache = TextCache(_identify_uncached)
identify = _identity_cache.lookup
clear_identity_cache = _identity_cache.clear


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
