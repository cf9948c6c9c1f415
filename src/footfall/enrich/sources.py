"""Traffic source and channel of a visit, from its referrer host and campaign (UTM) values.

The source is a display name ("Google", "Hacker News", "ChatGPT") when the referrer or the
campaign source is known, else the referring host, else the campaign source as given. The channel
is one of `CHANNELS`.

Known hosts come from the CC0 lists shipped in `data/sources/` (see ORIGIN.md there): search
engines, social networks and AI assistants, plus a few webmail hosts of our own. Matching is by
domain labels, so a list entry also covers its subdomains ("old.reddit.com" is reddit) but never a
look-alike ("notgoogle.com" is not Google). Search engines are the exception: only their mirror
subdomains (www2, m, search, a country label) count, because a search engine's domain hosts many
products that are not search ("docs.google.com" is a referral, not a Google search).

The lists' `{}` wildcard stands for a country: as the top-level domain, optionally after a generic
second level ("google.{}" covers google.de, google.co.uk and google.com.au), or as a label
("{}.search.yahoo.com" covers uk.search.yahoo.com). Entries that name a path ("x.com/i/grok")
are skipped: only the host is matched here, and the host alone would claim the whole site.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from typing import NamedTuple
from urllib.parse import unquote

import yaml

from footfall.enrich.urls import URL_CACHE_SIZE, normalize_host, split_referrer

SEARCH = "search"
SOCIAL = "social"
AI = "ai"
EMAIL = "email"
REFERRAL = "referral"
DIRECT = "direct"
PAID = "paid"
CHANNELS: tuple[str, ...] = (SEARCH, SOCIAL, AI, EMAIL, REFERRAL, DIRECT, PAID)

CACHE_SIZE = 16_384
DATA_PACKAGE = "footfall.enrich"
DATA_DIR = "data/sources"


class Source(NamedTuple):
    source: str
    channel: str


DIRECT_VISIT = Source("", DIRECT)

# Webmail front ends: a click from a mail read in the browser (or the Gmail app) is email.
WEBMAIL_HOSTS: Mapping[str, str] = {
    "mail.google.com": "Gmail",
    "com.google.android.gm": "Gmail",
    "outlook.live.com": "Outlook.com",
    "outlook.office.com": "Outlook",
    "outlook.office365.com": "Outlook",
    "mail.yahoo.com": "Yahoo Mail",
    "mail.aol.com": "AOL Mail",
    "mail.proton.me": "Proton Mail",
    "mail.protonmail.com": "Proton Mail",
    "app.fastmail.com": "Fastmail",
    "mail.zoho.com": "Zoho Mail",
    "mail.zoho.eu": "Zoho Mail",
    "e.mail.ru": "Mail.ru",
    "mail.yandex.ru": "Yandex Mail",
    "mail.yandex.com": "Yandex Mail",
    "app.tuta.com": "Tuta",
    "navigator.gmx.net": "GMX",
    "email.t-online.de": "T-Online Mail",
}

# General sites the search list names because they embed an engine's search box. The list tells
# them apart by the query string, which Footfall never keeps, so they are left to be referrals.
NOT_SEARCH_HOSTS = frozenset({"cnn.com", "msnbc.msn.com", "fastweb.it", "optuszoo.com.au"})

# Short or alternative campaign names people put in utm_source, by the key of the list name
# they mean (see `_name_key`).
CAMPAIGN_ALIASES: Mapping[str, str] = {
    "fb": "facebook",
    "ig": "instagram",
    "tw": "twitter",
    "x": "twitter",
    "li": "linkedin",
    "yt": "youtube",
    "hn": "hackernews",
    "ycombinator": "hackernews",
    "ddg": "duckduckgo",
    "openai": "chatgpt",
    "bard": "gemini",
    "mistral": "lechat",
}
CAMPAIGN_EMAIL_NAMES: Mapping[str, str] = {"newsletter": "Newsletter", "email": "Email", "mail": "Email"}

# utm_medium values by channel, compared after `_name_key` (so "Paid_Search" is "paidsearch").
# Anything starting with "paid" is paid too.
PAID_MEDIUMS = frozenset(
    {"cpc", "ppc", "cpm", "cpv", "cpa", "cpp", "cpi", "display", "banner", "retargeting", "remarketing", "sem"}
    | {"ad", "ads", "sponsored"}
)
EMAIL_MEDIUMS = frozenset({"email", "newsletter", "mail", "emailmarketing"})
SOCIAL_MEDIUMS = frozenset({"social", "socialmedia", "socialnetwork", "sm", "organicsocial"})
SEARCH_MEDIUMS = frozenset({"organic", "organicsearch", "seo"})
REFERRAL_MEDIUMS = frozenset({"referral", "referrer", "link"})
EMAIL_MENTIONS = ("newsletter", "email", "e-mail")

# A generic second level before a country TLD, folded into the `{}` wildcard (google.com.au).
_GENERIC_SECOND_LEVELS = frozenset({"co", "com", "org", "net", "edu", "ac", "gov", "or", "ne"})
_NAME_KEY_DROP = re.compile(r"[^0-9a-z+]")


class _Tables(NamedTuple):
    exact: dict[str, Source]
    wildcard: dict[str, Source]  # keys contain "{}"
    names: dict[str, Source]  # by `_name_key` of display names and aliases
    spam: frozenset[str]


# --- loading the lists ------------------------------------------------------------------------


def _read_text(name: str) -> str:
    return resources.files(DATA_PACKAGE).joinpath(DATA_DIR, name).read_text(encoding="utf-8")


def _read_yaml(name: str) -> dict[str, object]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is 5x faster when built
    data = yaml.load(_read_text(name), Loader=loader)
    return data if isinstance(data, dict) else {}


def _search_engine_hosts(data: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    """(display name, host pattern) from SearchEngines.yml, whose entries are lists of
    {urls: [...], params: ...} blocks."""
    for name, blocks in data.items():
        for block in blocks if isinstance(blocks, list) else ():
            urls = block.get("urls") if isinstance(block, dict) else None
            for url in urls if isinstance(urls, list) else ():
                yield str(name), str(url)


def _plain_hosts(data: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    """(display name, host pattern) from Socials.yml and AIAssistants.yml: name -> [host, ...]."""
    for name, hosts in data.items():
        for host in hosts if isinstance(hosts, list) else ():
            yield str(name), str(host)


def _name_key(text: str) -> str:
    return _NAME_KEY_DROP.sub("", text.lower())


def _list_table(entries: Iterable[tuple[str, str]], channel: str) -> tuple[dict[str, Source], dict[str, Source]]:
    """Host table and name table of one list. Within a list the first mention of a host wins."""
    hosts: dict[str, Source] = {}
    names: dict[str, Source] = {}
    for raw_name, pattern in entries:
        known = Source(unquote(raw_name), channel)  # the lists percent-encode some names: "Google%2B"
        names.setdefault(_name_key(known.source), known)
        host = normalize_host(pattern)
        if "/" in host or (channel == SEARCH and host in NOT_SEARCH_HOSTS):
            continue
        hosts.setdefault(host, known)
    return hosts, names


def _load() -> _Tables:
    lists = (
        (_search_engine_hosts(_read_yaml("SearchEngines.yml")), SEARCH),
        (_plain_hosts(_read_yaml("Socials.yml")), SOCIAL),
        (_plain_hosts(_read_yaml("AIAssistants.yml")), AI),
        (((name, host) for host, name in WEBMAIL_HOSTS.items()), EMAIL),
    )
    hosts: dict[str, Source] = {}
    names: dict[str, Source] = {}
    # Later lists win a host or name both claim: facebook.com is social rather than search, and
    # chatgpt.com or perplexity.ai are AI assistants rather than search engines.
    for entries, channel in lists:
        list_hosts, list_names = _list_table(entries, channel)
        hosts.update(list_hosts)
        names.update(list_names)
    for alias, key in CAMPAIGN_ALIASES.items():
        if key in names:
            names.setdefault(alias, names[key])
    for key, label in CAMPAIGN_EMAIL_NAMES.items():
        names.setdefault(key, Source(label, EMAIL))
    exact = {host: known for host, known in hosts.items() if "{}" not in host}
    wildcard = {host: known for host, known in hosts.items() if "{}" in host}
    return _Tables(exact, wildcard, names, _load_spam())


def _load_spam() -> frozenset[str]:
    lines = (line.strip() for line in _read_text("referrer-spammers.txt").splitlines())
    return frozenset(normalize_host(line) for line in lines if line and not line.startswith("#"))


@functools.cache
def _tables() -> _Tables:
    return _load()


def preload() -> None:
    """Parse the lists now (~30 ms) rather than on the first classification."""
    _tables()


# --- host matching ----------------------------------------------------------------------------


def _is_country(label: str) -> bool:
    return len(label) == 2 and label.isascii() and label.isalpha()


def _is_mirror_label(label: str) -> bool:
    """www, www2, ww1, m, mobile, search or a country: a subdomain that is still the search page."""
    stem = label.rstrip("0123456789")
    return (bool(stem) and stem == "w" * len(stem)) or label in ("m", "mobile", "search") or _is_country(label)


def _wildcard_forms(labels: list[str]) -> Iterator[str]:
    """The `{}` patterns `labels` could match: country TLD folded, then country labels folded."""
    if _is_country(labels[-1]):
        core = labels[:-1]
        if len(core) >= 2 and core[-1] in _GENERIC_SECOND_LEVELS:
            core = core[:-1]
        yield ".".join(core) + ".{}"
    folded = ["{}" if _is_country(label) else label for label in labels[:-1]]
    if "{}" in folded:
        yield ".".join([*folded, labels[-1]])


def _match_suffix(tables: _Tables, labels: list[str]) -> Source | None:
    known = tables.exact.get(".".join(labels))
    if known is None:
        for pattern in _wildcard_forms(labels):
            known = tables.wildcard.get(pattern)
            if known is not None:
                break
    return known


def _match_host(tables: _Tables, host: str) -> Source | None:
    """The listed source of `host` or of the closest parent domain that claims it."""
    labels = host.split(".")
    for start in range(len(labels) - 1):  # longest suffix first, never a bare TLD
        known = _match_suffix(tables, labels[start:])
        if known is not None and (known.channel != SEARCH or all(map(_is_mirror_label, labels[:start]))):
            return known
    return None


def _match_campaign(tables: _Tables, utm_source: str) -> Source | None:
    """Known source named by utm_source: a host ("chatgpt.com", as ChatGPT tags its links) or a
    name ("google", "Hacker News", "fb")."""
    lowered = utm_source.lower()
    if "." in lowered:
        host = normalize_host(lowered.removeprefix("https://").removeprefix("http://").split("/", 1)[0])
        known = _match_host(tables, host) if host else None
        if known is not None:
            return known
    return tables.names.get(_name_key(lowered))


# --- classification ---------------------------------------------------------------------------


def _medium_channel(medium: str) -> str | None:
    key = _name_key(medium)
    if key in PAID_MEDIUMS or key.startswith("paid"):
        return PAID
    for mediums, channel in (
        (EMAIL_MEDIUMS, EMAIL),
        (SOCIAL_MEDIUMS, SOCIAL),
        (SEARCH_MEDIUMS, SEARCH),
        (REFERRAL_MEDIUMS, REFERRAL),
    ):
        if key in mediums:
            return channel
    return None


def _channel(medium: str, utm_source: str, by_referrer: Source | None, by_campaign: Source | None) -> str:
    # Explicit paid and email tagging beats the referrer: a paid click still arrives from Google,
    # and a newsletter link is often opened in a webmail or a social app's browser.
    from_medium = _medium_channel(medium) if medium else None
    if from_medium in (PAID, EMAIL):
        return from_medium
    lowered = utm_source.lower()
    if any(word in lowered for word in EMAIL_MENTIONS):
        return EMAIL
    if by_referrer is not None:
        return by_referrer.channel
    if from_medium is not None:
        return from_medium
    if by_campaign is not None:
        return by_campaign.channel
    return REFERRAL


def _classify(referrer_host: str, site_host: str, utm_source: str, utm_medium: str) -> Source:
    referrer = normalize_host(referrer_host) if referrer_host else ""
    if referrer and referrer == normalize_host(site_host):
        referrer = ""  # navigation within the site is not a source
    campaign, medium = utm_source.strip(), utm_medium.strip()
    if not (referrer or campaign or medium):
        return DIRECT_VISIT
    tables = _tables()
    by_referrer = _match_host(tables, referrer) if referrer else None
    by_campaign = _match_campaign(tables, campaign) if campaign else None
    if campaign:
        name = by_campaign.source if by_campaign is not None else campaign
    else:
        name = by_referrer.source if by_referrer is not None else referrer
    return Source(name, _channel(medium, campaign, by_referrer, by_campaign))


_classify_cached = functools.lru_cache(maxsize=CACHE_SIZE)(_classify)


def classify_source(referrer_host: str, site_host: str, utm_source: str = "", utm_medium: str = "") -> Source:
    """Source name and channel of a visit.

    `referrer_host` and `site_host` are host names as `urls.normalize_host` gives them (they are
    normalised again, cheaply, in case). A referrer equal to the site's own host is ignored.
    No referrer and no campaign values is a direct visit: ("", "direct").
    """
    return _classify_cached(referrer_host, site_host, utm_source, utm_medium)


def classify(referrer_host: str, site_host: str, utm_source: str) -> str:
    """The source name alone, for callers that store no channel."""
    return classify_source(referrer_host, site_host, utm_source).source


@functools.lru_cache(maxsize=CACHE_SIZE)
def is_referrer_spam(referrer_host: str) -> bool:
    """Whether the host, or a parent domain of it, is on the referrer-spam list."""
    if not referrer_host:
        return False
    spam = _tables().spam
    labels = normalize_host(referrer_host).split(".")
    return any(".".join(labels[start:]) in spam for start in range(len(labels) - 1))


class Referral(NamedTuple):
    """Where a visit came from: the referrer's host and path, and the source and channel."""

    host: str
    path: str
    source: str
    channel: str


DIRECT_REFERRAL = Referral("", "", DIRECT_VISIT.source, DIRECT_VISIT.channel)


@functools.lru_cache(maxsize=URL_CACHE_SIZE)
def referral(referrer: str, site_host: str, utm_source: str, utm_medium: str) -> Referral | None:
    """The referral of a hit from its raw referrer URL and campaign values, in one cached
    step (the enricher's: one lookup per hit instead of three); None for referrer spam."""
    host, path = split_referrer(referrer)
    if host and is_referrer_spam(host):
        return None
    found = classify_source(host, site_host, utm_source, utm_medium)
    return Referral(host, path, found.source, found.channel)
