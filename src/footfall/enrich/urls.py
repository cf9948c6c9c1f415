"""URL cleaning: hostname, pathname and campaign values; referrer host and path.

Query strings are personal-data prone (emails, tokens, search terms), so only the UTM keys
survive; everything else in a query string is dropped here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, TypedDict, cast
from urllib.parse import parse_qsl, urlsplit

UTM_KEYS: tuple[str, ...] = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
MAX_URL_LENGTH = 2048
MAX_PATH_LENGTH = 1024
MAX_UTM_LENGTH = 200


# Splitting a URL costs microseconds of pure Python; a site's traffic repeats a few thousand
# page and referrer URLs, so the results are cached (in memory only, never written).
URL_CACHE_SIZE = 65_536


class Utm(TypedDict, total=False):
    """The campaign values a URL carries; keys are the Event fields they fill."""

    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_term: str
    utm_content: str


class PageUrl(NamedTuple):
    hostname: str
    pathname: str
    utm: Utm  # shared by every hit of a cached URL: read, never modify
    query: str  # the raw query string: held in memory for the allow-list, never stored


def normalize_host(host: str) -> str:
    """Lowercase, no trailing dot, `www.` removed: the form sites are stored and matched in."""
    host = host.strip().lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


@lru_cache(maxsize=URL_CACHE_SIZE)
def split_page_url(url: str) -> PageUrl:
    """Split an absolute http(s) URL. Raises ValueError with a user-facing reason."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ValueError("must be an absolute http or https URL")
    return PageUrl(normalize_host(host), clean_path(parts.path), _utm(parts.query), parts.query)


def clean_path(path: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    return path[:MAX_PATH_LENGTH]


def _utm(query: str) -> Utm:
    if "utm_" not in query:
        return {}
    found: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=False):
        key = key.lower()
        if key in UTM_KEYS and key not in found:
            found[key] = value.strip()[:MAX_UTM_LENGTH]
    return cast(Utm, found)


def allowed_query(query: str, names: frozenset[str], prefix: str) -> dict[str, str]:
    """The allow-listed parameters of a query string, as `prefix + name` -> value."""
    kept: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key in names and prefix + key not in kept:
            kept[prefix + key] = value.strip()[:MAX_UTM_LENGTH]
    return kept


@lru_cache(maxsize=URL_CACHE_SIZE)
def split_referrer(referrer: str) -> tuple[str, str]:
    """(host, path) of a referrer URL; ("", "") when it is empty or not a web URL."""
    if not referrer:
        return "", ""
    try:
        parts = urlsplit(referrer.strip())
        host = parts.hostname
    except ValueError:
        return "", ""
    if not host or parts.scheme.lower() not in ("http", "https", "android-app"):
        return "", ""
    return normalize_host(host), clean_path(parts.path) if parts.path else "/"
