"""Geolocation against real databases with known answers.

MaxMind's own test databases (the ones its readers are tested with) come from the maxminddb
source distribution on PyPI, fetched once and kept in the pytest cache. DB-IP and IPinfo files
are not distributed for testing, so small files in their documented layouts are written here
with mmdb-writer and read back through the same reader a real download would go through.
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import os
import random
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from footfall.enrich import geo
from footfall.enrich.geo import (
    SPECIAL_IPV4,
    SPECIAL_IPV6,
    UNKNOWN,
    Geo,
    GeoDatabaseError,
    GeoLocator,
    open_geo,
    public_address,
)

MAXMIND_TEST_DBS = (
    "GeoIP2-City-Test.mmdb",
    "GeoLite2-City-Test.mmdb",
    "GeoLite2-Country-Test.mmdb",
    "GeoLite2-ASN-Test.mmdb",
)


def _fetch_maxmind_test_dbs(target: Path) -> None:
    """Download the maxminddb sdist matching the installed reader and keep its test databases."""
    version = importlib.metadata.version("maxminddb")
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        result = subprocess.run(
            [*command, f"maxminddb=={version}", "-d", tmp], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"could not download the maxminddb sdist: {result.stderr}"
        (sdist,) = Path(tmp).glob("maxminddb-*.tar.gz")
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in MAXMIND_TEST_DBS and "/test-data/" in member.name:
                    source = tar.extractfile(member)
                    assert source is not None
                    partial = target / f"{name}.partial"
                    partial.write_bytes(source.read())
                    partial.replace(target / name)  # whole files only, even if interrupted


@pytest.fixture(scope="session")
def maxmind_dbs(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    version = importlib.metadata.version("maxminddb")
    cache = getattr(pytestconfig, "cache", None)  # None under -p no:cacheprovider
    target = cache.mkdir(f"maxminddb-{version}-test-data") if cache else tmp_path_factory.mktemp("maxminddb")
    if not all((target / name).is_file() for name in MAXMIND_TEST_DBS):
        _fetch_maxmind_test_dbs(target)
    missing = [name for name in MAXMIND_TEST_DBS if not (target / name).is_file()]
    assert not missing, f"maxminddb {version} sdist no longer ships {missing}"
    return target


@pytest.fixture(scope="session")
def default_locator() -> Iterator[GeoLocator]:
    locator = open_geo(None)
    yield locator
    locator.close()


def _open(path: Path) -> Iterator[GeoLocator]:
    locator = open_geo(path)
    yield locator
    locator.close()


@pytest.fixture(params=["GeoIP2-City-Test.mmdb", "GeoLite2-City-Test.mmdb"])
def city_locator(request: pytest.FixtureRequest, maxmind_dbs: Path) -> Iterator[GeoLocator]:
    yield from _open(maxmind_dbs / request.param)


# Answers read from the source JSON the test databases are built from (source-data/*.json).
CITY_ANSWERS = [
    ("81.2.69.142", Geo("GB", "England", "London")),
    ("2.125.160.216", Geo("GB", "England", "Boxford")),  # largest subdivision, not West Berkshire
    ("216.160.83.56", Geo("US", "Washington", "Milton")),
    ("89.160.20.112", Geo("SE", "Östergötland County", "Linköping")),
    ("175.16.199.1", Geo("CN", "Jilin Sheng", "Changchun")),
    ("67.43.156.1", Geo("BT", "", "")),  # a country without region or city
    ("202.196.224.1", Geo("PH", "", "")),  # located country, not the represented one (US)
    ("2001:218::1", Geo("JP", "", "")),
    ("2a02:cf40::1", Geo("NO", "", "")),
    ("::ffff:81.2.69.142", Geo("GB", "England", "London")),  # IPv4-mapped, as dual-stack sockets give it
    ("1.2.3.4", UNKNOWN),  # public, but not in the test data
]


@pytest.mark.parametrize(("ip", "expected"), CITY_ANSWERS)
def test_maxmind_city_known_answers(city_locator: GeoLocator, ip: str, expected: Geo) -> None:
    assert city_locator.lookup(ip) == expected


@pytest.mark.parametrize(
    ("ip", "expected"),
    [("81.2.69.142", Geo("GB")), ("216.160.83.56", Geo("US")), ("2a02:cf40::1", Geo("NO")), ("1.2.3.4", UNKNOWN)],
)
def test_maxmind_country_database_gives_country_only(maxmind_dbs: Path, ip: str, expected: Geo) -> None:
    for locator in _open(maxmind_dbs / "GeoLite2-Country-Test.mmdb"):
        assert locator.lookup(ip) == expected


def test_description_names_the_database(maxmind_dbs: Path) -> None:
    for locator in _open(maxmind_dbs / "GeoLite2-City-Test.mmdb"):
        assert "GeoLite2-City" in locator.description


def test_database_without_locations_is_refused(maxmind_dbs: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="ASN"):
        open_geo(maxmind_dbs / "GeoLite2-ASN-Test.mmdb")


def test_missing_or_corrupt_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="cannot open"):
        open_geo(tmp_path / "absent.mmdb")
    garbage = tmp_path / "garbage.mmdb"
    garbage.write_bytes(b"not a MaxMind DB file" * 100)
    with pytest.raises(GeoDatabaseError, match="cannot open"):
        open_geo(garbage)


# --- other vendors' layouts -------------------------------------------------------------------


def _write_mmdb(path: Path, database_type: str, records: dict[str, dict[str, Any]], ip_version: int = 6) -> Path:
    writer = MMDBWriter(
        ip_version=ip_version,
        database_type=database_type,
        languages=["en"],
        description="Footfall layout test",
        ipv4_compatible=ip_version == 6,
    )
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


def _names(english: str) -> dict[str, dict[str, str]]:
    return {"names": {"en": english, "de": f"{english} (de)"}}


def test_dbip_city_layout(tmp_path: Path) -> None:
    # DB-IP's city records follow MaxMind's nesting, with subdivision names but no codes.
    record = {
        "continent": {"code": "NA", "geoname_id": 6255149, **_names("North America")},
        "country": {"iso_code": "US", "is_in_european_union": False, "geoname_id": 6252001, **_names("United States")},
        "subdivisions": [_names("California")],
        "city": _names("Mountain View"),
        "location": {"latitude": 37.4, "longitude": -122.1},
    }
    path = _write_mmdb(tmp_path / "dbip-city-lite.mmdb", "DBIP-City-Lite", {"203.0.114.0/24": record})
    for locator in _open(path):
        assert locator.lookup("203.0.114.9") == Geo("US", "California", "Mountain View")
        assert locator.lookup("203.0.115.9") == UNKNOWN


def test_ipinfo_lite_layout(tmp_path: Path) -> None:
    # IPinfo Lite is flat; its "country" is the country's name and the code is "country_code".
    record = {
        "asn": "AS15169",
        "as_name": "Google LLC",
        "as_domain": "google.com",
        "country_code": "US",
        "country": "United States",
        "continent_code": "NA",
        "continent": "North America",
    }
    path = _write_mmdb(tmp_path / "ipinfo_lite.mmdb", "ipinfo ipinfo_lite.mmdb", {"8.8.8.0/24": record})
    for locator in _open(path):
        assert locator.lookup("8.8.8.8") == Geo("US", "", "")


def test_flat_location_layout(tmp_path: Path) -> None:
    # IPinfo's location files (and similar) use strings: a two-letter "country", "region", "city".
    record = {"country": "de", "region": "Hesse", "city": "Frankfurt am Main", "timezone": "Europe/Berlin"}
    path = _write_mmdb(tmp_path / "location.mmdb", "ipinfo location.mmdb", {"2a00:1450::/32": record})
    for locator in _open(path):
        assert locator.lookup("2a00:1450::1") == Geo("DE", "Hesse", "Frankfurt am Main")


def test_ipv4_only_database_answers_ipv6_with_unknown(tmp_path: Path) -> None:
    record = {"country": {"iso_code": "FR"}}
    path = _write_mmdb(tmp_path / "v4.mmdb", "GeoLite2-Country", {"90.0.0.0/8": record}, ip_version=4)
    for locator in _open(path):
        assert locator.lookup("90.1.2.3") == Geo("FR")
        assert locator.lookup("2a02:cf40::1") == UNKNOWN


def test_special_addresses_are_never_looked_up(tmp_path: Path) -> None:
    # A database that does "know" private ranges must still not be asked about them.
    record = {"country": {"iso_code": "DE"}}
    special = ["10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "192.168.0.0/16", "fe80::/10", "fc00::/7", "::1/128"]
    path = _write_mmdb(tmp_path / "knows-private.mmdb", "GeoLite2-Country", {net: record for net in special})
    for locator in _open(path):
        for ip in ("10.1.2.3", "100.64.0.1", "127.0.0.1", "192.168.1.1", "fe80::1", "fd00::1", "::1"):
            assert locator.lookup(ip) == UNKNOWN, ip


# --- the bundled default ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "country"),
    [("8.8.8.8", "US"), ("2001:4860:4860::8888", "US"), ("::ffff:8.8.8.8", "US")],
)
def test_default_locates_well_known_public_addresses(default_locator: GeoLocator, ip: str, country: str) -> None:
    assert default_locator.lookup(ip) == Geo(country, "", "")


@pytest.mark.parametrize(
    "ip",
    [
        *("10.0.0.1", "172.16.5.4", "192.168.0.1", "127.0.0.1", "169.254.1.1", "100.64.0.1", "0.0.0.0", "224.0.0.1"),
        *("255.255.255.255", "::1", "::", "fe80::1", "fd12:3456::1", "ff02::1", "2001:db8::1", "::ffff:10.0.0.1"),
    ],
)
def test_default_leaves_special_addresses_unknown(default_locator: GeoLocator, ip: str) -> None:
    assert default_locator.lookup(ip) == UNKNOWN


@pytest.mark.parametrize("text", ["", "not an ip", "1.2.3", "256.1.1.1", "fe80::1%eth0", "8.8.8.8 ", "1::2::3"])
def test_default_answers_unknown_for_text_that_is_not_an_address(default_locator: GeoLocator, text: str) -> None:
    assert default_locator.lookup(text) == UNKNOWN


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=50))
def test_any_text_gets_an_answer_not_an_exception(default_locator: GeoLocator, text: str) -> None:
    assert isinstance(default_locator.lookup(text), Geo)


def test_default_repeats_answers_from_its_cache(default_locator: GeoLocator) -> None:
    assert default_locator.lookup("8.8.4.4") is default_locator.lookup("8.8.4.4")


def test_loading_geoip2fast_leaves_the_environment_alone() -> None:
    # In a fresh interpreter: in this one the engine may already be loaded.
    script = (
        "import os\n"
        "from footfall.enrich.geo import open_geo\n"
        "before = dict(os.environ)\n"
        "assert open_geo(None).lookup('8.8.8.8').country == 'US'\n"
        "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())\n"
    )
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONWARNINGS", "PYTHONIOENCODING")}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- the special-address check ----------------------------------------------------------------


def _edges(cidrs: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        yield cidr, str(net.network_address)
        yield cidr, str(net.broadcast_address)


@pytest.mark.parametrize(("cidr", "ip"), list(_edges(SPECIAL_IPV4)) + list(_edges(SPECIAL_IPV6)))
def test_both_ends_of_every_special_block_are_special(cidr: str, ip: str) -> None:
    assert public_address(ip) is None, cidr


@pytest.mark.parametrize(
    "ip",
    [
        *("9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0"),
        *("192.167.255.255", "192.169.0.0", "223.255.255.255", "2001:200::1", "2a00::1", "fbff:ffff::1", "2c0f::1"),
    ],
)
def test_neighbours_of_special_blocks_are_public(ip: str) -> None:
    assert public_address(ip) == ip


def test_ipv4_mapped_addresses_are_looked_up_as_ipv4() -> None:
    assert public_address("::ffff:8.8.8.8") == "8.8.8.8"
    assert public_address("::ffff:192.168.1.1") is None


SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


@settings(max_examples=1000, deadline=None)
@given(st.ip_addresses())
def test_everything_python_calls_non_public_is_special(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in SIX_TO_FOUR:
        return  # newer Pythons call 6to4 non-global, but it embeds a public IPv4 that databases locate
    non_public = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address.is_reserved)
        or address in ipaddress.ip_network("100.64.0.0/10")
    )
    if non_public:
        assert public_address(str(address)) is None


def test_compact_bundled_table_answers_as_geoip2fast_does() -> None:
    """The flat-array copy of geoip2fast's data gives its engine's answers, v4 and v6."""
    with geo._environment_preserved():
        from geoip2fast import GeoIP2Fast
    data = resources.files("geoip2fast") / geo.GEOIP2FAST_DATA_FILE
    engine = GeoIP2Fast(verbose=False, geoip2fast_data_file=str(data))
    locator = geo.open_geo(None)
    rng = random.Random(11)
    compared = 0
    for i in range(3000):
        if i % 3:
            ip = socket.inet_ntop(socket.AF_INET, rng.getrandbits(32).to_bytes(4, "big"))
        else:  # global unicast, where the IPv6 networks are
            value = (0x2000 + rng.getrandbits(13)) << 112 | rng.getrandbits(112)
            ip = socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
        public = geo.public_address(ip)
        if public is None:
            continue
        compared += 1
        assert locator.lookup(ip).country == geo._iso_country(engine.lookup(public).country_code), ip
    assert compared > 2000
