"""Exclusions: hits a site owner (or the instance) asked not to count, checked per hit.

An exclusion list holds IP networks (CIDRs or single addresses), ISO country codes and path
globs (`fnmatch` syntax: `/admin/*`, `*.php`). The instance-wide list from the settings and
each site's own list both apply.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache

from footfall.event import DROP_COUNTRY, DROP_IP, DROP_PATH

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def parse_network(text: str) -> IPNetwork:
    """A CIDR or a single address; raises ValueError with a message for the user."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR range") from None


def parse_country(text: str) -> str:
    code = text.strip().upper()
    if not _COUNTRY.match(code):
        raise ValueError(f"{text!r} is not a two-letter ISO country code")
    return code


def parse_path_glob(text: str) -> str:
    glob = text.strip()
    if not glob.startswith(("/", "*")):
        raise ValueError(f"path pattern {text!r} must start with / or *")
    return glob


class Exclusions:
    """A compiled exclusion list. Checks are cached per value: visitors repeat."""

    def __init__(self, ips: Iterable[str] = (), countries: Iterable[str] = (), paths: Iterable[str] = ()) -> None:
        self.networks = tuple(parse_network(n) for n in ips)
        self.countries = frozenset(parse_country(c) for c in countries)
        globs = [parse_path_glob(p) for p in paths]
        self.paths = tuple(globs)
        self._path_re = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)) if globs else None
        self.ip_excluded = lru_cache(maxsize=4096)(self._ip_excluded)

    def __bool__(self) -> bool:
        return bool(self.networks or self.countries or self.paths)

    def _ip_excluded(self, ip: str) -> bool:
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if any(address in net for net in self.networks):
            return True
        # A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d; an IPv4 range covers it.
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return mapped is not None and any(mapped in net for net in self.networks)

    def reason(self, ip: str, country: str, path: str) -> str | None:
        """Why this hit is excluded, or None."""
        if self.networks and self.ip_excluded(ip):
            return DROP_IP
        if country and country in self.countries:
            return DROP_COUNTRY
        if self._path_re is not None and self._path_re.match(path):
            return DROP_PATH
        return None


NO_EXCLUSIONS = Exclusions()
