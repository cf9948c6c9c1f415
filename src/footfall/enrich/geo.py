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

from footfall.memory import return_freed_memory

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


_BUCKET_BITS = 16  # both integer tables below are indexed by an address's top 16 bits


class _Spans:
    """Sorted, merged integer ranges of `bits`-bit addresses with a membership test.

    A table by the top 16 bits answers most addresses at once (their block holds no span, or
    lies wholly inside one); only blocks a span edge falls in are searched by bisection.
    """

    _NONE, _ALL, _SOME = 0, 1, 2

    def __init__(self, cidrs: Iterable[str], bits: int) -> None:
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
        self._shift = bits - _BUCKET_BITS
        self.blocks = bytearray(1 << _BUCKET_BITS)
        block_size = 1 << self._shift
        for first, last in merged:
            for block in range(first >> self._shift, (last >> self._shift) + 1):
                start = block << self._shift
                whole = first <= start and start + block_size - 1 <= last
                if self.blocks[block] != self._ALL:
                    self.blocks[block] = self._ALL if whole else self._SOME

    def __contains__(self, value: int) -> bool:
        block = self.blocks[value >> self._shift]
        if block != self._SOME:
            return block == self._ALL
        i = bisect.bisect_right(self._starts, value) - 1
        return i >= 0 and value <= self._ends[i]


_SPECIAL_V4 = _Spans(SPECIAL_IPV4, 32)
_SPECIAL_V6 = _Spans(SPECIAL_IPV6, 128)


def public_packed(ip: str) -> bytes | None:
    """The packed address to look up (4 bytes for IPv4, 16 for IPv6), or None when `ip` is
    special-purpose or not an address at all.

    IPv4-mapped IPv6 (::ffff:a.b.c.d, what a dual-stack socket reports for IPv4 clients) comes
    back as plain IPv4, which is how every database indexes it.
    """
    if ":" not in ip:
        try:
            packed = socket.inet_pton(socket.AF_INET, ip)
        except (OSError, ValueError):  # ValueError: a NUL or an unencodable character
            return None
        return None if int.from_bytes(packed, "big") in _SPECIAL_V4 else packed
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, ValueError):
        return None
    value = int.from_bytes(packed, "big")
    if value >> 32 == _IPV4_MAPPED_PREFIX:
        return None if (value & 0xFFFF_FFFF) in _SPECIAL_V4 else packed[12:]
    return None if value in _SPECIAL_V6 else packed


def public_address(ip: str) -> str | None:
    """`public_packed` as text, for backends that take addresses as strings."""
    packed = public_packed(ip)
    if packed is None:
        return None
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    return ip


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
        self.lookup: Callable[[str], Geo] = self._cached

    def _locate(self, ip: str) -> Geo:
        public = public_address(ip)
        return UNKNOWN if public is None else self._resolve(public)

    def close(self) -> None:
        self._cached.cache_clear()
        if self._close is not None:
            self._close()


class _BundledLocator(GeoLocator):
    """The bundled country table answers in well under a microsecond, less than an LRU cache
    costs once its misses are counted (a million hits from 100,000 addresses missed a third
    of the time), so it is looked up directly and holds no addresses at all."""

    def __init__(self, table: _CountryTable) -> None:
        super().__init__(self._locate_packed, f"geoip2fast bundled country data ({table.source})", cache_size=0)
        self._table = table
        self._geos = {code: Geo(code) for code in table.codes if code}  # one shared Geo per country
        self.lookup = self._locate_packed

    def _locate_packed(self, ip: str) -> Geo:
        if ":" not in ip:  # IPv4, most traffic: public_packed and country inlined, one int
            try:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
            except (OSError, ValueError):
                return UNKNOWN
            if _SPECIAL_V4.blocks[value >> 16] and value in _SPECIAL_V4:  # most blocks hold none
                return UNKNOWN
            return self._geos.get(self._table.country_v4(value), UNKNOWN)
        packed = public_packed(ip)
        if packed is None:
            return UNKNOWN
        return self._geos.get(self._table.country(packed), UNKNOWN)


def open_geo(path: Path | None, *, cache_size: int = DEFAULT_CACHE_SIZE) -> GeoLocator:
    """The locator for the configured database file, or the bundled country data when None."""
    if path is None:
        return _geoip2fast_locator()
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

        # Where each top-16-bit block starts in the sorted starts: a search then bisects only
        # the few networks of one block (~4 probes instead of ~19).
        self.v4_blocks = _block_index(self.v4_first, 32)
        self.v6_blocks = _block_index(self.v6_high, 64)

    def country(self, packed: bytes) -> str:
        """The country of a packed address (4 or 16 bytes), "" when no network holds it."""
        value = int.from_bytes(packed, "big")
        if len(packed) == 4:
            return self.country_v4(value)
        high, low = value >> 64, value & 0xFFFF_FFFF_FFFF_FFFF
        block = high >> (64 - _BUCKET_BITS)
        i = bisect.bisect_right(self.v6_high, high, self.v6_blocks[block], self.v6_blocks[block + 1]) - 1
        while i >= 0 and self.v6_high[i] == high and self.v6_low[i] > low:
            i -= 1  # networks longer than /64 share a high half: find the one at or below
        if i < 0:
            return ""
        first = self.v6_high[i] << 64 | self.v6_low[i]
        if value > first + (1 << (128 - self.v6_len[i])) - 1:
            return ""
        return self.codes[self.v6_country[i]]


    def country_v4(self, value: int) -> str:
        block = value >> (32 - _BUCKET_BITS)
        i = bisect.bisect_right(self.v4_first, value, self.v4_blocks[block], self.v4_blocks[block + 1]) - 1
        if i < 0 or value > self.v4_first[i] + (1 << (32 - self.v4_len[i])) - 1:
            return ""
        return self.codes[self.v4_country[i]]


def _block_index(starts: array[int], bits: int) -> array[int]:
    """index[b] = the position of the first start at or above block b (b << (bits - 16));
    index[65536] = len(starts). Starts below block b's first address all lie before index[b],
    so bisect_right(starts, v, index[b], index[b + 1]) is bisect_right(starts, v)."""
    shift = bits - _BUCKET_BITS
    index = array("I", bytes(4 * ((1 << _BUCKET_BITS) + 1)))
    position = 0
    for block in range(1 << _BUCKET_BITS):
        first = block << shift
        while position < len(starts) and starts[position] < first:
            position += 1
        index[block] = position
    index[1 << _BUCKET_BITS] = len(starts)
    return index


@functools.cache
def _country_table() -> _CountryTable:
    # One table per process, loaded on first use (~0.5 s); the package is located without
    # importing its engine, which would also change this process's environment.
    with _environment_preserved():
        data_file = resources.files("geoip2fast") / GEOIP2FAST_DATA_FILE
    with resources.as_file(data_file) as data_path:
        table = _CountryTable(Path(data_path))
    # The data file's ~55 MB of transient objects: glibc kept ~18 MB of them resident.
    return_freed_memory()
    return table


def _geoip2fast_locator() -> GeoLocator:
    return _BundledLocator(_country_table())
