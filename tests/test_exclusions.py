"""Exclusion lists: IP networks, countries and path globs, and the instance-wide settings.

Pure unit tests on real values: no server, no store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from footfall.config import Settings, load_settings
from footfall.enrich.exclusions import (
    NO_EXCLUSIONS,
    Exclusions,
    parse_country,
    parse_network,
    parse_path_glob,
)
from footfall.event import DROP_COUNTRY, DROP_IP, DROP_PATH

# --- IP networks ----------------------------------------------------------------------------


def ip_reason(exclusions: Exclusions, ip: str) -> str | None:
    return exclusions.reason(ip, "", "/")


def test_ipv4_cidr_and_single_address() -> None:
    ex = Exclusions(ips=["203.0.113.0/24", "192.0.2.1"])
    assert ip_reason(ex, "203.0.113.0") == DROP_IP
    assert ip_reason(ex, "203.0.113.255") == DROP_IP
    assert ip_reason(ex, "192.0.2.1") == DROP_IP
    assert ip_reason(ex, "203.0.114.1") is None
    assert ip_reason(ex, "192.0.2.2") is None  # a single address is a /32, not its neighbours


def test_cidr_with_host_bits_set_is_accepted_as_its_network() -> None:
    assert parse_network("10.1.2.3/8").with_prefixlen == "10.0.0.0/8"
    ex = Exclusions(ips=["10.1.2.3/8"])
    assert ip_reason(ex, "10.200.0.1") == DROP_IP


def test_ipv6_cidr_and_single_address_any_spelling() -> None:
    ex = Exclusions(ips=["2001:db8::/32", "2a00:1450:4001:82b::200e"])
    assert ip_reason(ex, "2001:db8::1") == DROP_IP
    assert ip_reason(ex, "2001:DB8:0:0::abcd") == DROP_IP  # upper case, uncompressed: same address
    assert ip_reason(ex, "2a00:1450:4001:082b:0000:0000:0000:200e") == DROP_IP
    assert ip_reason(ex, "2001:db9::1") is None
    assert ip_reason(ex, "2a00:1450:4001:82b::200f") is None


def test_v4_and_v6_lists_do_not_cross_match_plain_addresses() -> None:
    assert ip_reason(Exclusions(ips=["0.0.0.0/0"]), "2001:db8::1") is None
    assert ip_reason(Exclusions(ips=["::/0"]), "8.8.8.8") is None


def test_ipv4_mapped_cidr_matches_the_mapped_form() -> None:
    # What the code does today: a network written in the mapped form matches mapped addresses.
    ex = Exclusions(ips=["::ffff:198.51.100.0/120"])
    assert ip_reason(ex, "::ffff:198.51.100.7") == DROP_IP


def test_ipv4_cidr_matches_ipv4_mapped_ipv6_address() -> None:
    ex = Exclusions(ips=["203.0.113.0/24"])
    assert ip_reason(ex, "::ffff:203.0.113.5") == DROP_IP


def test_not_an_address_is_never_excluded() -> None:
    ex = Exclusions(ips=["0.0.0.0/0", "::/0"])
    for ip in ("", "unknown", "999.1.1.1", "1.2.3.4:5678", "::ffff:zz"):
        assert ip_reason(ex, ip) is None, ip


def test_ip_check_is_cached_and_gives_the_same_answer() -> None:
    ex = Exclusions(ips=["203.0.113.0/24"])
    assert [ex.ip_excluded("203.0.113.9") for _ in range(3)] == [True, True, True]
    assert ex.ip_excluded.cache_info().hits == 2


# --- countries ------------------------------------------------------------------------------


def test_countries_are_case_insensitive_on_input_and_trimmed() -> None:
    ex = Exclusions(countries=["us", " De ", "FR"])
    assert ex.countries == frozenset({"US", "DE", "FR"})
    assert ex.reason("", "US", "/") == DROP_COUNTRY
    assert ex.reason("", "DE", "/") == DROP_COUNTRY
    assert ex.reason("", "GB", "/") is None


def test_unknown_country_is_never_excluded() -> None:
    ex = Exclusions(countries=["US"])
    assert ex.reason("8.8.8.8", "", "/") is None


# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("/admin/", True),
        ("/admin/users", True),
        ("/admin/users/42/edit", True),  # fnmatch's * crosses slashes
        ("/admin", False),
        ("/Admin/users", False),  # paths are case-sensitive
        ("/administrator", False),
        ("/index.php", True),
        ("/wp/xmlrpc.php", True),
        ("/index.php5", False),
        ("/exact", True),
        ("/exact/", False),
        ("/exactly", False),
        ("/not/exact", False),
        ("/", False),
    ],
)
def test_path_globs_match_the_whole_path(path: str, excluded: bool) -> None:
    ex = Exclusions(paths=["/admin/*", "*.php", "/exact"])
    assert (ex.reason("", "", path) == DROP_PATH) is excluded


def test_path_glob_character_class_and_question_mark() -> None:
    ex = Exclusions(paths=["/v[12]/?"])
    assert ex.reason("", "", "/v1/a") == DROP_PATH
    assert ex.reason("", "", "/v2/b") == DROP_PATH
    assert ex.reason("", "", "/v3/a") is None
    assert ex.reason("", "", "/v1/ab") is None


# --- order and truthiness -------------------------------------------------------------------


def test_reasons_in_order_ip_then_country_then_path() -> None:
    ex = Exclusions(ips=["203.0.113.0/24"], countries=["US"], paths=["/admin/*"])
    assert ex.reason("203.0.113.1", "US", "/admin/x") == DROP_IP
    assert ex.reason("8.8.8.8", "US", "/admin/x") == DROP_COUNTRY
    assert ex.reason("8.8.8.8", "GB", "/admin/x") == DROP_PATH
    assert ex.reason("8.8.8.8", "GB", "/pricing") is None


def test_empty_exclusions_are_falsy_and_exclude_nothing() -> None:
    assert not Exclusions()
    assert not NO_EXCLUSIONS
    assert NO_EXCLUSIONS.reason("203.0.113.1", "US", "/admin/x") is None
    assert Exclusions(ips=["192.0.2.1"])
    assert Exclusions(countries=["us"])
    assert Exclusions(paths=["/x"])


# --- invalid input --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "nope", "300.1.1.1", "10.0.0.0/33", "2001:db8::/129", "1.2.3.4:80"])
def test_parse_network_rejects_with_the_value_in_the_message(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address or CIDR range") as info:
        parse_network(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", ["", "USA", "u1", "U", "Ü1", "U S"])
def test_parse_country_rejects_with_the_value_in_the_message(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a two-letter ISO country code") as info:
        parse_country(bad)
    assert repr(bad) in str(info.value)


def test_parse_country_normalises() -> None:
    assert parse_country(" gb ") == "GB"


@pytest.mark.parametrize("bad", ["", "   ", "admin/*", "?x", "x.php"])
def test_parse_path_glob_rejects_with_the_value_in_the_message(bad: str) -> None:
    with pytest.raises(ValueError, match="must start with / or \\*") as info:
        parse_path_glob(bad)
    assert repr(bad) in str(info.value)


def test_parse_path_glob_trims() -> None:
    assert parse_path_glob("  /admin/*  ") == "/admin/*"
    assert parse_path_glob("*.php") == "*.php"


def test_exclusions_constructor_raises_for_any_bad_item() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        Exclusions(ips=["10.0.0.0/8", "nope"])
    with pytest.raises(ValueError, match="'USA'"):
        Exclusions(countries=["US", "USA"])
    with pytest.raises(ValueError, match="'admin'"):
        Exclusions(paths=["/ok", "admin"])


# --- instance-wide settings -----------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read FOOTFALL_* variables; the developer's own must not leak into these tests."""
    for name in ("FOOTFALL_CONFIG", "FOOTFALL_EXCLUDE_IPS", "FOOTFALL_EXCLUDE_COUNTRIES", "FOOTFALL_EXCLUDE_PATHS"):
        monkeypatch.delenv(name, raising=False)


def settings(tmp_path: Path, **values: str) -> Settings:
    return load_settings(data_dir=tmp_path, **values)


@pytest.mark.usefixtures("clean_env")
def test_settings_exclusions_from_comma_separated_lists(tmp_path: Path) -> None:
    s = settings(tmp_path, exclude_ips="10.0.0.0/8, 192.0.2.1", exclude_paths="/wp-*")
    ex = s.exclusions
    assert ex
    assert ex.reason("10.20.30.40", "", "/") == DROP_IP
    assert ex.reason("192.0.2.1", "", "/") == DROP_IP
    assert ex.reason("192.0.2.2", "", "/") is None
    assert ex.reason("192.0.2.2", "", "/wp-login.php") == DROP_PATH
    assert ex.reason("192.0.2.2", "", "/blog/wp-x") is None
    assert not ex.countries


@pytest.mark.usefixtures("clean_env")
def test_settings_countries_and_blank_items(tmp_path: Path) -> None:
    ex = settings(tmp_path, exclude_countries=" us, ,de,").exclusions
    assert ex.countries == frozenset({"US", "DE"})
    assert ex.reason("", "DE", "/") == DROP_COUNTRY


@pytest.mark.usefixtures("clean_env")
def test_settings_default_excludes_nothing(tmp_path: Path) -> None:
    assert not settings(tmp_path).exclusions


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("field", "value", "bad"),
    [
        ("exclude_ips", "10.0.0.0/8, nope", "nope"),
        ("exclude_countries", "US, USA", "USA"),
        ("exclude_paths", "/ok, wp-*", "wp-*"),
    ],
)
def test_settings_invalid_exclusion_is_a_validation_error_naming_the_field(
    tmp_path: Path, field: str, value: str, bad: str
) -> None:
    with pytest.raises(ValidationError) as info:
        settings(tmp_path, **{field: value})
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert repr(bad) in errors[0]["msg"]
