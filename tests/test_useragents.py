"""User agent -> browser, OS, device class: real agents, the cache, and a labelled corpus."""

from __future__ import annotations

import importlib.util
from collections import Counter

import pytest
from ua_parser import BasicResolver, load_builtins

from footfall.enrich import textcache, useragents
from footfall.enrich.useragents import NO_AGENT, Agent, parse_agent, parse_uncached
from tests import agent_corpus

REAL_AGENTS: list[tuple[str, str, Agent]] = [
    (
        "Chrome on Windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
        "Safari/537.36",
        Agent("Chrome", "124", "Windows", "10", "desktop"),
    ),
    (
        "Safari on macOS",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 "
        "Safari/605.1.15",
        Agent("Safari", "17", "macOS", "10.15", "desktop"),
    ),
    (
        "Safari on iPhone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4.1 Mobile/15E148 Safari/604.1",
        Agent("Safari", "17", "iOS", "17", "mobile"),
    ),
    (
        "Chrome on iPhone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
        Agent("Chrome", "124", "iOS", "17", "mobile"),
    ),
    (
        "Safari on iPad",
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 "
        "Mobile/15E148 Safari/604.1",
        Agent("Safari", "16", "iOS", "16", "tablet"),
    ),
    (
        "Chrome on an Android phone",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 "
        "Mobile Safari/537.36",
        Agent("Chrome", "124", "Android", "14", "mobile"),
    ),
    (
        "Chrome on an Android tablet (Galaxy Tab S9)",
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 "
        "Safari/537.36",
        Agent("Chrome", "123", "Android", "13", "tablet"),
    ),
    (
        "Firefox on an Android phone",
        "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
        Agent("Firefox", "125", "Android", "14", "mobile"),
    ),
    (
        "Firefox on an Android tablet",
        "Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0",
        Agent("Firefox", "125", "Android", "14", "tablet"),
    ),
    (
        "Silk on a Kindle Fire",
        "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/124.2.1 like "
        "Chrome/124.0.6367.82 Safari/537.36",
        Agent("Amazon Silk", "124", "Android", "11", "tablet"),
    ),
    (
        "Firefox on Linux",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        Agent("Firefox", "125", "Linux", "", "desktop"),
    ),
    (
        "Edge on Windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
        "Safari/537.36 Edg/124.0.2478.80",
        Agent("Edge", "124", "Windows", "10", "desktop"),
    ),
    (
        "Chrome on Windows 8.1",
        "Mozilla/5.0 (Windows NT 6.3; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 "
        "Safari/537.36",
        Agent("Chrome", "109", "Windows", "8.1", "desktop"),
    ),
    (
        "Internet Explorer 11 on Windows 7",
        "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
        Agent("IE", "11", "Windows", "7", "desktop"),
    ),
    (
        "Chrome on a Chromebook",
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
        "Safari/537.36",
        Agent("Chrome", "124", "Chrome OS", "124", "desktop"),
    ),
    (
        "Samsung Internet on a Galaxy phone",
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        Agent("Samsung Internet", "24", "Android", "14", "mobile"),
    ),
    (
        "Samsung smart TV (Tizen)",
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 85.0.4183.93/6.0 TV "
        "Safari/537.36",
        Agent("Safari", "", "Tizen", "6", "other"),
    ),
    (
        "LG smart TV (webOS)",
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.88 "
        "Safari/537.36 WebAppManager",
        Agent("Chrome", "87", "Web0S", "", "other"),
    ),
    (
        "Android TV that also says Mobile",
        "Mozilla/5.0 (Linux; Android 9; BRAVIA 4K GB ATV3 Build/PTT1.190515.001.S104) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0.6099.230 Mobile Safari/537.36",
        Agent("Chrome", "120", "Android", "9", "other"),
    ),
    (
        "Fire TV stick",
        "Mozilla/5.0 (Linux; Android 9; AFTMM) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36",
        Agent("Android", "9", "Android", "9", "other"),
    ),
    (
        "PlayStation 5",
        "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 "
        "Safari/605.1.15",
        Agent("Safari", "13", "Other", "", "other"),
    ),
    (
        "Edge on an Xbox",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/116.0.0.0 Safari/537.36 Edg/116.0.1938.81",
        Agent("Edge", "116", "Windows", "10", "other"),
    ),
    (
        "an Android app's HTTP stack (no browser convention, most are phones)",
        "Dalvik/2.1.0 (Linux; U; Android 13; SM-A536B Build/TP1A.220624.014)",
        Agent("Android", "13", "Android", "13", "mobile"),
    ),
    ("no user agent", "", NO_AGENT),
    ("only spaces", "   ", NO_AGENT),
]


@pytest.mark.parametrize(("user_agent", "expected"), [(ua, agent) for _, ua, agent in REAL_AGENTS],
                         ids=[label for label, _, _ in REAL_AGENTS])  # fmt: skip
def test_real_agents(user_agent: str, expected: Agent) -> None:
    assert parse_agent(user_agent) == expected


def test_missing_agent_is_still_a_visit_of_unknown_kind() -> None:
    # Seed 001: server-side hits without a user agent are counted, under "Other".
    assert parse_agent("") == Agent("Other", "", "Other", "", "other")


def test_native_resolver_is_used_when_installed() -> None:
    expected = "ua-parser-rs" if importlib.util.find_spec("ua_parser_rs") else "basic"
    assert expected == useragents.RESOLVER


def test_pure_python_fallback_gives_the_same_answers() -> None:
    basic = BasicResolver(load_builtins())
    for _, user_agent, expected in REAL_AGENTS:
        assert parse_uncached(user_agent, basic) == expected


def test_second_call_hits_the_cache() -> None:
    useragents.cache_clear()
    agent = REAL_AGENTS[0][1]
    first = parse_agent(agent)
    before = useragents.cache_info()
    assert parse_agent(agent) is first
    after = useragents.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_long_agents_bypass_the_cache() -> None:
    useragents.cache_clear()
    long_agent = REAL_AGENTS[0][1] + " x" * textcache.AGENT_CACHEABLE_LENGTH
    assert parse_agent(long_agent).browser == "Chrome"
    assert useragents.cache_info().currsize == 0


# device-detector's device types, as our four classes. Its other types (wearables, cameras, car
# browsers, portable media players, ...) have no settled counterpart and are not scored.
DEVICE_CLASS = {
    "desktop": "desktop",
    "smartphone": "mobile",
    "phablet": "mobile",
    "feature phone": "mobile",
    "tablet": "tablet",
    "tv": "other",
    "console": "other",
}
# Floors for agreement with device-detector, which knows thousands of device models by name;
# we read only the markers in the agent. The fixtures collect unusual devices on purpose (TV
# boxes that claim to be phones, tablets that say "Mobile"), so real traffic agrees far more.
AGREEMENT_FLOOR = {"mobile": 0.98, "tablet": 0.80, "desktop": 0.80, "other": 0.50}


def test_device_class_agrees_with_a_labelled_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    corpus = agent_corpus.load()
    scored: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    for browser in corpus.browsers:
        # Client-hint fixtures are labelled from headers Footfall never sees.
        expected = DEVICE_CLASS.get(browser.device)
        if expected is None or browser.file.startswith("clienthints"):
            continue
        scored[expected] += 1
        agreed[expected] += parse_agent(browser.user_agent).device == expected
    lines = [f"  {kind:<8} {agreed[kind]:>6} / {scored[kind]:<6} {agreed[kind] / scored[kind]:.2%}" for kind in scored]
    with capsys.disabled():
        print("\ndevice class vs device-detector fixtures (agreeing / scored):", *lines, sep="\n")
    for kind, floor in AGREEMENT_FLOOR.items():
        assert agreed[kind] / scored[kind] >= floor, kind
