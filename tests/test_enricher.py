"""Enricher: one Hit in, one Event (or nothing) out, on the real bundled data.

Real salts in a salt file, the bundled geoip2fast country data, the shipped source and bot lists;
no server, no store, no mocks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from importlib import resources
from typing import Any

import msgspec
import pytest

from footfall.enrich.enricher import Enricher
from footfall.enrich.exclusions import NO_EXCLUSIONS, Exclusions
from footfall.enrich.geo import GeoLocator, open_geo
from footfall.enrich.sites import SiteRegistry
from footfall.enrich.urls import split_page_url
from footfall.enrich.visitors import SaltRing
from footfall.event import (
    AI_FETCH,
    DROP_BOT,
    DROP_COUNTRY,
    DROP_IP,
    DROP_PATH,
    DROP_SPAM,
    DROPPED,
    PAGEVIEW,
    Event,
)
from footfall.ingest.model import Hit
from footfall.meta import Site, SiteSettings
from footfall.store.salts import SaltFile

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GPTBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.2; +https://openai.com/gptbot"

DAY = dt.date(2026, 4, 3)
PLAIN = 1  # example.com, no settings
STRICT = 2  # strict.example, exclusions
SEARCHY = 3  # searchy.example, keeps the `q` query parameter


def us(hour: int, minute: int = 0) -> int:
    return int(dt.datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=dt.UTC).timestamp() * 1_000_000)


def site(site_id: int, domain: str, settings: SiteSettings | None = None) -> Site:
    return Site(
        id=site_id,
        domain=domain,
        timezone="UTC",
        tracking_id=f"t{site_id}",
        created_at="2026-04-01T00:00:00Z",
        settings=settings or SiteSettings(),
    )


SITES = SiteRegistry(
    [
        site(PLAIN, "example.com"),
        site(
            STRICT,
            "strict.example",
            SiteSettings(exclude_ips=("203.0.113.0/24",), exclude_countries=("US",), exclude_paths=("/admin/*",)),
        ),
        site(SEARCHY, "searchy.example", SiteSettings(query_params=("q",))),
    ]
)
DOMAINS = {PLAIN: "example.com", STRICT: "strict.example", SEARCHY: "searchy.example"}


@pytest.fixture(scope="module")
def salts(tmp_path_factory: pytest.TempPathFactory) -> SaltRing:
    ring = SaltRing()
    ring.rotate(SaltFile(tmp_path_factory.mktemp("salts") / "salts.json"), today=DAY)
    return ring


@pytest.fixture(scope="module")
def geo() -> Iterator[GeoLocator]:
    locator = open_geo(None)
    yield locator
    locator.close()


@pytest.fixture(scope="module")
def enricher(salts: SaltRing, geo: GeoLocator) -> Enricher:
    return Enricher(salts, geo, SITES)


def hit(
    path: str = "/",
    *,
    site_id: int = PLAIN,
    ip: str = "8.8.8.8",
    user_agent: str = CHROME_WINDOWS,
    ts_us: int | None = None,
    **extra: Any,
) -> Hit:
    ts = us(12) if ts_us is None else ts_us
    return Hit(
        site_id=site_id,
        kind="pageview",
        page=split_page_url(f"https://{DOMAINS[site_id]}{path}"),
        ts_us=ts,
        received_us=ts + 1_000,
        ip=ip,
        user_agent=user_agent,
        source_api="server",
        **extra,
    )


def counted(enricher: Enricher, h: Hit) -> Event:
    event = enricher.enrich(h)
    assert event is not None
    assert event.kind == PAGEVIEW, (event.kind, event.name)
    return event


def dropped(enricher: Enricher, h: Hit) -> Event:
    event = enricher.enrich(h)
    assert event is not None
    assert event.kind == DROPPED
    assert event.visitor_id == 0
    return event


# --- a browser pageview ---------------------------------------------------------------------


def test_chrome_windows_from_google_search(enricher: Enricher) -> None:
    h = hit("/pricing", referrer="https://www.google.com/search?q=secret+search+words")
    event = counted(enricher, h)
    assert event.name == PAGEVIEW
    assert (event.hostname, event.pathname) == ("example.com", "/pricing")
    assert (event.browser, event.browser_version, event.os, event.device) == ("Chrome", "124", "Windows", "desktop")
    assert event.country == "US"
    assert (event.source, event.channel) == ("Google", "search")
    assert (event.referrer_host, event.referrer_path) == ("google.com", "/search")
    assert event.visitor_id != 0
    assert (event.ts, event.received_at, event.source_api, event.site_id) == (h.ts_us, h.ts_us + 1_000, "server", 1)
    assert event.bot == event.bot_family == event.ai_kind == ""
    encoded = msgspec.json.encode(event)
    assert b"8.8.8.8" not in encoded
    assert CHROME_WINDOWS.encode() not in encoded
    assert b"Mozilla" not in encoded
    assert b"secret" not in encoded  # the referrer's query string


def test_same_visitor_same_day_is_one_visitor_other_agent_is_another(enricher: Enricher) -> None:
    morning = counted(enricher, hit("/", ts_us=us(8)))
    evening = counted(enricher, hit("/docs", ts_us=us(23, 59)))
    firefox = counted(enricher, hit("/", ts_us=us(8), user_agent=FIREFOX_LINUX))
    other_ip = counted(enricher, hit("/", ts_us=us(8), ip="1.1.1.1"))
    other_site = counted(enricher, hit("/", ts_us=us(8), site_id=SEARCHY))
    assert morning.visitor_id == evening.visitor_id != 0
    assert firefox.visitor_id not in (0, morning.visitor_id)
    assert other_ip.visitor_id != morning.visitor_id
    assert other_site.visitor_id != morning.visitor_id


def test_do_not_track_leaves_nothing(enricher: Enricher) -> None:
    assert enricher.enrich(hit(dnt=True)) is None
    assert enricher.enrich(hit(dnt=True, user_agent=GOOGLEBOT)) is None  # not even a bot count
    assert enricher.enrich(hit("/admin/x", site_id=STRICT, dnt=True)) is None


def test_private_ip_has_no_country(enricher: Enricher) -> None:
    event = counted(enricher, hit(ip="192.168.1.1"))
    assert (event.country, event.region, event.city) == ("", "", "")
    assert event.visitor_id != 0


def test_ipv4_mapped_ipv6_is_located_as_ipv4(enricher: Enricher) -> None:
    assert counted(enricher, hit(ip="::ffff:8.8.8.8")).country == "US"


def test_no_referrer_is_direct_and_self_referral_is_not_a_source(enricher: Enricher) -> None:
    assert (counted(enricher, hit()).source, counted(enricher, hit()).channel) == ("", "direct")
    event = counted(enricher, hit("/b", referrer="https://www.example.com/a?x=1"))
    assert (event.source, event.channel) == ("", "direct")
    assert (event.referrer_host, event.referrer_path) == ("example.com", "/a")


# --- bots, AI crawlers, empty agents, referrer spam ----------------------------------------


def test_googlebot_is_dropped_as_a_bot(enricher: Enricher) -> None:
    event = dropped(enricher, hit("/pricing", user_agent=GOOGLEBOT))
    assert event.name == DROP_BOT
    assert (event.bot, event.bot_family) == ("Googlebot", "Google")
    assert (event.hostname, event.pathname) == ("example.com", "/pricing")
    assert event.browser == event.country == event.source == ""
    encoded = msgspec.json.encode(event)
    assert b"8.8.8.8" not in encoded
    assert b"compatible" not in encoded


def test_gptbot_is_an_ai_fetch(enricher: Enricher) -> None:
    event = enricher.enrich(hit("/docs/api", user_agent=GPTBOT))
    assert event is not None
    assert event.kind == AI_FETCH
    assert (event.name, event.bot, event.bot_family, event.ai_kind) == ("GPTBot", "GPTBot", "OpenAI", "training")
    assert event.pathname == "/docs/api"
    assert event.visitor_id == 0
    assert b"8.8.8.8" not in msgspec.json.encode(event)


def test_bots_are_recognised_before_exclusions(enricher: Enricher) -> None:
    # A crawler on an excluded path still counts as a crawler, not as an exclusion.
    assert dropped(enricher, hit("/admin/x", site_id=STRICT, user_agent=GOOGLEBOT)).name == DROP_BOT
    event = enricher.enrich(hit("/admin/x", site_id=STRICT, user_agent=GPTBOT))
    assert event is not None and event.kind == AI_FETCH


def test_empty_user_agent_is_a_counted_pageview_of_browser_other(enricher: Enricher) -> None:
    event = counted(enricher, hit(user_agent=""))
    assert (event.browser, event.os, event.device) == ("Other", "Other", "other")
    assert event.visitor_id != 0


def spam_host() -> str:
    text = resources.files("footfall.enrich").joinpath("data/sources/referrer-spammers.txt").read_text("utf-8")
    return next(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def test_referrer_spam_is_dropped(enricher: Enricher) -> None:
    host = spam_host()
    for referrer in (f"https://{host}/", f"http://www.{host}/offer?x=1", f"https://sub.{host}"):
        event = dropped(enricher, hit("/", referrer=referrer))
        assert event.name == DROP_SPAM, referrer
        assert event.referrer_host == event.bot == ""


# --- exclusions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "path", "reason"),
    [
        ("203.0.113.9", "/", DROP_IP),
        ("8.8.8.8", "/", DROP_COUNTRY),
        ("192.168.1.1", "/admin/users", DROP_PATH),
        ("203.0.113.9", "/admin/users", DROP_IP),  # ip before path
        ("8.8.8.8", "/admin/users", DROP_COUNTRY),  # country before path
    ],
)
def test_site_exclusions(enricher: Enricher, ip: str, path: str, reason: str) -> None:
    event = dropped(enricher, hit(path, site_id=STRICT, ip=ip))
    assert event.name == reason
    assert (event.hostname, event.pathname) == ("strict.example", path)
    assert event.bot == event.country == ""
    assert ip.encode() not in msgspec.json.encode(event)


def test_site_exclusions_let_other_hits_through(enricher: Enricher) -> None:
    assert counted(enricher, hit("/pricing", site_id=STRICT, ip="192.168.1.1")).pathname == "/pricing"
    assert counted(enricher, hit("/admin", site_id=STRICT, ip="1.1.1.1")).pathname == "/admin"


@pytest.mark.parametrize(("ip", "path"), [("203.0.113.9", "/"), ("8.8.8.8", "/"), ("192.168.1.1", "/admin/users")])
def test_site_without_settings_is_unaffected_by_another_sites_exclusions(
    enricher: Enricher, ip: str, path: str
) -> None:
    assert counted(enricher, hit(path, site_id=PLAIN, ip=ip)).pathname == path


def test_site_ip_exclusion_matches_ipv4_mapped_client(enricher: Enricher) -> None:
    assert dropped(enricher, hit(site_id=STRICT, ip="::ffff:203.0.113.9")).name == DROP_IP


def test_instance_exclusions_apply_to_every_site(salts: SaltRing, geo: GeoLocator) -> None:
    instance = Exclusions(ips=["198.51.100.0/24"], countries=["de"], paths=["/health", "*.php"])
    enricher = Enricher(salts, geo, SITES, instance=instance)
    for site_id in (PLAIN, STRICT, SEARCHY):
        assert dropped(enricher, hit(site_id=site_id, ip="198.51.100.7")).name == DROP_IP
        assert dropped(enricher, hit("/health", site_id=site_id, ip="192.168.1.1")).name == DROP_PATH
        assert dropped(enricher, hit("/x/index.php", site_id=site_id, ip="192.168.1.1")).name == DROP_PATH
        assert counted(enricher, hit("/ok", site_id=site_id, ip="192.168.1.1")).pathname == "/ok"
    # Site exclusions still apply on top of the instance's.
    assert dropped(enricher, hit("/admin/x", site_id=STRICT, ip="192.168.1.1")).name == DROP_PATH
    assert dropped(enricher, hit(site_id=STRICT, ip="8.8.8.8")).name == DROP_COUNTRY
    # The instance is checked first: its reason wins when both lists match.
    assert dropped(enricher, hit("/health", site_id=STRICT, ip="203.0.113.9")).name == DROP_PATH


def test_default_instance_exclusions_are_empty(salts: SaltRing, geo: GeoLocator) -> None:
    for instance in (NO_EXCLUSIONS, Exclusions()):
        enricher = Enricher(salts, geo, SITES, instance=instance)
        assert counted(enricher, hit("/health", ip="198.51.100.7")).pathname == "/health"
    assert counted(Enricher(salts, geo, SITES), hit("/health")).pathname == "/health"


# --- query strings and campaigns ------------------------------------------------------------


def test_query_allow_list_keeps_only_the_named_parameter(enricher: Enricher) -> None:
    event = counted(enricher, hit("/search?q=+red+shoes&token=s3cr3t&email=a%40b.example&Q=upper&q=second",
                                  site_id=SEARCHY))
    assert event.pathname == "/search"
    assert event.props == {"query.q": "red shoes"}  # first value, trimmed; names are case-sensitive
    encoded = msgspec.json.encode(event)
    for secret in (b"s3cr3t", b"a@b.example", b"a%40b", b"token", b"upper", b"second"):
        assert secret not in encoded


def test_query_params_are_dropped_on_sites_without_an_allow_list(enricher: Enricher) -> None:
    event = counted(enricher, hit("/search?q=red+shoes&token=s3cr3t"))
    assert event.props == {}
    assert b"s3cr3t" not in msgspec.json.encode(event)
    assert b"red" not in msgspec.json.encode(event)


def test_allowed_query_param_merges_with_caller_props(enricher: Enricher) -> None:
    event = counted(enricher, hit("/search?q=shoes", site_id=SEARCHY, props={"plan": "pro", "n": 3, "ok": True}))
    assert event.props == {"plan": "pro", "n": "3", "ok": "true", "query.q": "shoes"}
    assert counted(enricher, hit("/search?other=1", site_id=SEARCHY)).props == {}


def test_utm_values_from_the_url(enricher: Enricher) -> None:
    event = counted(
        enricher,
        hit("/l?utm_source=newsletter&utm_medium=email&utm_campaign=spring&utm_term=shoes&utm_content=top&x=1"),
    )
    assert (event.utm_source, event.utm_medium, event.utm_campaign, event.utm_term, event.utm_content) == (
        "newsletter",
        "email",
        "spring",
        "shoes",
        "top",
    )
    assert event.channel == "email"
    assert event.props == {}


def test_hit_utm_overrides_the_urls_and_blank_values_do_not(enricher: Enricher) -> None:
    h = hit("/l?utm_source=url-source&utm_medium=cpc&utm_campaign=url-campaign",
            utm={"utm_source": "x", "utm_campaign": ""})
    event = counted(enricher, h)
    assert event.utm_source == "x"
    assert event.source == "Twitter"  # "x" is a campaign alias of X/Twitter
    assert event.utm_medium == "cpc"  # not given by the hit: the URL's stays
    assert event.utm_campaign == "url-campaign"  # blank in the hit: the URL's stays
    assert event.channel == "paid"
    # The URL's cached split is shared between hits; the override must not have changed it.
    assert split_page_url("https://example.com/l?utm_source=url-source&utm_medium=cpc&utm_campaign=url-campaign"
                          ).utm["utm_source"] == "url-source"


def test_hit_utm_without_url_campaign(enricher: Enricher) -> None:
    event = counted(enricher, hit("/", utm={"utm_source": "google", "utm_medium": "cpc"}))
    assert (event.utm_source, event.utm_medium) == ("google", "cpc")
    assert (event.source, event.channel) == ("Google", "paid")


def test_custom_event_keeps_its_name(enricher: Enricher) -> None:
    h = hit("/checkout")
    custom = msgspec.structs.replace(h, kind="event", name="signup")
    event = enricher.enrich(custom)
    assert event is not None
    assert (event.kind, event.name, event.pathname) == ("event", "signup", "/checkout")
    assert event.visitor_id == counted(enricher, h).visitor_id
