"""Geolocation of a visitor's IP address: country, region and city.

Two backends behind one `GeoLocator`:

- the default, geoip2fast's bundled country data (GeoLite2 Country, IPv4 and IPv6), so a fresh
  machine with no network and no configuration still reports countries;
- any MaxMind-format (.mmdb) file the operator configures (`FOOTFALL_GEOIP_DB`): GeoLite2 or
  GeoIP2 Country/City, DB-IP, IPinfo. Read with maxminddb, memory-mapped.

What is stored, whatever the backend:

- `country`: ISO 3166-1 alpha-2 code, upper case ("GB"); "" when unknown.
- `region`: the English name of the largest subdivision ("England", "California"), because
  that is what a dashboard shows a person and what every layout that has regions carries
  (DB-IP's subdivisions have names but no codes). "" when the database has no regions.
- `city`: the English city name ("London"); "" when unknown.

Special-purpose addresses (private, loopback, link-local, CGNAT, documentation, multicast,
reserved, unspecified) are never looked up: a server behind a proxy that forgot to pass the
client address must report "unknown", not the proxy's network.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import ipaddress
import os
import pickle
import socket
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import maxminddb
import maxminddb.errors

DEFAULT_CACHE_SIZE = 65_536
GEOIP2FAST_DATA_FILE = "geoip2fast-ipv6.dat.gz"
GEOIP2FAST_ATTRIBUTION = (
    "This product includes GeoLite2 data created by MaxMind, available from https://www.maxmind.com."
)


class Geo(NamedTuple):
    country: str = ""
    region: str = ""
    city: str = ""


UNKNOWN = Geo()


class GeoDatabaseError(ValueError):
    """A configured geolocation database that cannot be used; the message says why."""


# IANA special-purpose blocks that never locate a visitor. Kept as text so a reviewer can check
# them against the registries; turned into sorted integer spans once at import.
SPECIAL_IPV4 = (
    "0.0.0.0/8",  # "this network", includes the unspecified address
    "10.0.0.0/8",
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, includes the broadcast address
)
SPECIAL_IPV6 = (
    "::/127",  # unspecified and loopback
    "64:ff9b:1::/48",  # local-use NAT64
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # deprecated site-local
    "ff00::/8",  # multicast
)
_IPV4_MAPPED_PREFIX = 0xFFFF  # ::ffff:0:0/96, the upper 96 bits


class _Spans:
    """Sorted, merged integer ranges with a bisect membership test (~0.3 µs, no allocation)."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        networks = sorted(ipaddress.ip_network(c) for c in cidrs)
        merged: list[list[int]] = []
        for net in networks:
            first, last = int(net.network_address), int(net.broadcast_address)
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        self._starts = [span[0] for span in merged]
        self._ends = [span[1] for span in merged]

    def __contains__(self, value: int) -> bool:
        i = bisect.bisect_right(self._starts, value) - 1
        return i >= 0 and value <= self._ends[i]


_SPECIAL_V4 = _Spans(SPECIAL_IPV4)
_SPECIAL_V6 = _Spans(SPECIAL_IPV6)


def public_address(ip: str) -> str | None:
    """The address to look up, or None when `ip` is special-purpose or not an address at all.

    IPv4-mapped IPv6 (::ffff:a.b.c.d, what a dual-stack socket reports for IPv4 clients) comes
    back as plain IPv4, which is how every database indexes it.
    """
    if ":" not in ip:
        try:
            packed = socket.inet_pton(socket.AF_INET, ip)
        except (OSError, ValueError):  # ValueError: a NUL or an unencodable character
            return None
        return None if int.from_bytes(packed, "big") in _SPECIAL_V4 else ip
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, ValueError):
        return None
    value = int.from_bytes(packed, "big")
    if value >> 32 == _IPV4_MAPPED_PREFIX:
        return public_address(socket.inet_ntop(socket.AF_INET, packed[12:]))
    return None if value in _SPECIAL_V6 else ip


class GeoLocator:
    """Looks up public addresses with a backend; answers repeated addresses from a bounded LRU.

    The cache holds raw addresses in memory only (never on disk), at most `cache_size` of them.
    """

    def __init__(
        self,
        resolve: Callable[[str], Geo],
        description: str,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.description = description
        self._resolve = resolve
        self._close = close
        self._cached = functools.lru_cache(maxsize=cache_size)(self._locate)

    def lookup(self, ip: str) -> Geo:
        return self._cached(ip)

    def _locate(self, ip: str) -> Geo:
        public = public_address(ip)
        return UNKNOWN if public is None else self._resolve(public)

    def close(self) -> None:
        self._cached.cache_clear()
        if self._close is not None:
            self._close()


def open_geo(path: Path | None, *, cache_size: int = DEFAULT_CACHE_SIZE) -> GeoLocator:
    """The locator for the configured database file, or the bundled country data when None."""
    if path is None:
        return _geoip2fast_locator(cache_size)
    return _mmdb_locator(path, cache_size)


# --- MaxMind-format files ---------------------------------------------------------------------

# Database types that are valid .mmdb files but carry no location: pointing the setting at one
# by mistake would silently blank every country, so it is refused up front.
_NON_LOCATION_TYPES = ("ASN", "ISP", "Anonymous", "Connection-Type", "Domain", "User-Count", "IP-Risk", "Proxy")


def _mmdb_locator(path: Path, cache_size: int) -> GeoLocator:
    try:
        reader = maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.errors.InvalidDatabaseError) as exc:
        raise GeoDatabaseError(f"cannot open GeoIP database {path}: {exc}") from exc
    db_type = reader.metadata().database_type
    if any(marker.lower() in db_type.lower() for marker in _NON_LOCATION_TYPES):
        reader.close()
        raise GeoDatabaseError(f"GeoIP database {path} is a {db_type} database, which has no locations")

    def resolve(ip: str) -> Geo:
        try:
            record = reader.get(ip)
        except ValueError:  # an IPv6 address in an IPv4-only database
            return UNKNOWN
        return geo_from_record(record) if isinstance(record, Mapping) else UNKNOWN

    return GeoLocator(resolve, f"{db_type} ({path})", cache_size=cache_size, close=reader.close)


def geo_from_record(record: Mapping[str, Any]) -> Geo:
    """Read one database record, whichever vendor layout it has.

    MaxMind and DB-IP nest: {"country": {"iso_code"}, "subdivisions": [{"names": {"en"}}],
    "city": {"names": {"en"}}}. IPinfo and other flat layouts use strings: "country_code"
    (IPinfo Lite, where "country" is the country's name), or a two-letter "country", and
    "region"/"city" strings where present.
    """
    return Geo(_country(record), _region(record), _city(record))


def _country(record: Mapping[str, Any]) -> str:
    code = record.get("country_code")
    if code is None:
        country = record.get("country")
        code = country.get("iso_code") if isinstance(country, Mapping) else country
    return _iso_country(code)


def _iso_country(code: object) -> str:
    if isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalpha():
        return code.upper()
    return ""


def _region(record: Mapping[str, Any]) -> str:
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], Mapping):
        return _english_name(subdivisions[0])
    return _text(record.get("region") or record.get("state1"))


def _city(record: Mapping[str, Any]) -> str:
    city = record.get("city")
    return _english_name(city) if isinstance(city, Mapping) else _text(city)


def _english_name(place: Mapping[str, Any]) -> str:
    names = place.get("names")
    return _text(names.get("en")) if isinstance(names, Mapping) else ""


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


# --- geoip2fast bundled data ------------------------------------------------------------------


@contextmanager
def _environment_preserved() -> Iterator[None]:
    """geoip2fast sets PYTHONWARNINGS and PYTHONIOENCODING on import; don't let that leak into
    this process's environment and every child it starts."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


class _CountryTable:
    """geoip2fast's bundled country networks in flat arrays: about 9 MB instead of the ~55 MB
    of Python objects its own engine keeps for the whole life of the process.

    The data file is a gzipped pickle of sorted network starts, prefix lengths and country
    indexes (format versions 120 and 121, country only). IPv4 starts are 32-bit; IPv6 starts
    are kept as a (high, low) pair of 64-bit halves, searched on the high half first.
    """

    def __init__(self, path: Path) -> None:
        with gzip.open(path, "rb") as f:
            version, info, _total, database = pickle.load(f)  # the package's own data file
        if version not in (120, 121) or not info.get("country") or info.get("city") or info.get("asn"):
            raise GeoDatabaseError(f"{path.name}: not a geoip2fast country file this version can read")
        _index, names, first_ips, country_ids, net_lengths = database
        self.source = str(info.get("info", ""))
        # Indexes below 16 are geoip2fast's private/reserved blocks, 99 "not found": no country.
        self.codes = [_iso_country(n.split(":", 1)[0]) if i >= 16 else "" for i, n in enumerate(names)]
        self.v4_first, self.v4_len, self.v4_country = array("I"), array("B"), array("H")
        self.v6_high, self.v6_low, self.v6_len, self.v6_country = array("Q"), array("Q"), array("B"), array("H")
        for firsts, lengths, countries in zip(first_ips, net_lengths, country_ids, strict=True):
            for first, length, country in zip(firsts, lengths, countries, strict=True):
                if first <= 0xFFFF_FFFF:
                    self.v4_first.append(first)
                    self.v4_len.append(length)
                    self.v4_country.append(country)
                else:
                    self.v6_high.append(first >> 64)
                    self.v6_low.append(first & 0xFFFF_FFFF_FFFF_FFFF)
                    self.v6_len.append(length)
                    self.v6_country.append(country)

    def country(self, packed: bytes) -> str:
        """The country of a packed address (4 or 16 bytes), "" when no network holds it."""
        value = int.from_bytes(packed, "big")
        if len(packed) == 4:
            i = bisect.bisect_right(self.v4_first, value) - 1
            if i < 0 or value > self.v4_first[i] + (1 << (32 - self.v4_len[i])) - 1:
                return ""
            return self.codes[self.v4_country[i]]
        high, low = value >> 64, value & 0xFFFF_FFFF_FFFF_FFFF
        i = bisect.bisect_right(self.v6_high, high) - 1
        while i >= 0 and self.v6_high[i] == high and self.v6_low[i] > low:
            i -= 1  # networks longer than /64 share a high half: find the one at or below
        if i < 0:
            return ""
        first = self.v6_high[i] << 64 | self.v6_low[i]
        if value > first + (1 << (128 - self.v6_len[i])) - 1:
            return ""
        return self.codes[self.v6_country[i]]


@functools.cache
def _country_table() -> _CountryTable:
    # One table per process, loaded on first use (~0.5 s); the package is located without
    # importing its engine, which would also change this process's environment.
    with _environment_preserved():
        data_file = resources.files("geoip2fast") / GEOIP2FAST_DATA_FILE
    with resources.as_file(data_file) as data_path:
        return _CountryTable(Path(data_path))


def _geoip2fast_locator(cache_size: int) -> GeoLocator:
    table = _country_table()

    def resolve(ip: str) -> Geo:
        packed = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
        country = table.country(packed)
        return Geo(country) if country else UNKNOWN

    description = f"geoip2fast bundled country data ({table.source})"
    return GeoLocator(resolve, description, cache_size=cache_size)
