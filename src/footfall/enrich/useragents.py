"""User agent -> browser, OS and device class.

Browser and OS come from uap-core's rules (ua-parser with ua-parser-builtins), run by the
ua-parser-rs accelerator when it is installed. uap-core names devices but does not say whether
one is a phone, a tablet or a TV, so the device class is decided here from well-known markers.

Naming choices (the dashboard shows these strings as they are):
- Browser names fold uap-core's per-device variants ("Chrome Mobile", "Mobile Safari",
  "Firefox iOS", ...) into one name, because the device is its own dimension.
- ``browser_version`` is the major version only.
- ``os_version`` is the major version ("17" for iOS 17, "14" for Android 14, "10" for Windows 10
  and 11, which send the same token), except where people say two parts: "8.1" for Windows 8.1
  and "10.15" for macOS 10.15 (most Macs still report 10.15 whatever they run, because browsers
  froze that token).
- "Mac OS X" is reported as "macOS"; ChromeOS's version is its Chrome milestone.

Device classes are what the agent can tell: iPads asking for desktop sites (the default since
iPadOS 13) send a Mac agent and count as desktop, and an Android tablet whose browser claims
"Mobile" counts as a phone. Agents that name no device at all (scripts, bots) are "other".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from ua_parser import OS, BasicResolver, Domain, Resolver, UserAgent, load_builtins, load_lazy_builtins

from footfall.enrich.textcache import TextCache

DESKTOP = "desktop"
MOBILE = "mobile"
TABLET = "tablet"
OTHER = "other"
DEVICE_CLASSES = (DESKTOP, MOBILE, TABLET, OTHER)
UNKNOWN = "Other"  # uap-core's own word for "not recognised", kept so both read the same


class Agent(NamedTuple):
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str  # one of DESKTOP, MOBILE, TABLET, OTHER


NO_AGENT = Agent(UNKNOWN, "", UNKNOWN, "", OTHER)


def _make_resolver() -> tuple[Resolver, str]:
    """The fastest resolver available: ua-parser-rs when importable, else pure Python.

    The lazy matchers skip compiling Python regexes, which the native resolver never uses.
    Only the browser and OS rules are compiled: uap-core's device rules name models, which
    nothing here asks for (see `parse_uncached`), and they were 14 MB of the server's
    memory, more than half of what ua-parser-rs's compiled rules take.
    """
    try:
        from ua_parser.regex import Resolver as NativeResolver
    except ImportError:
        agents, systems, _devices = load_builtins()
        return BasicResolver((agents, systems, [])), "basic"
    agents, systems, _devices = load_lazy_builtins()
    return NativeResolver((agents, systems, [])), "ua-parser-rs"


_resolver, RESOLVER = _make_resolver()

# Device markers are matched against the agent lowercased with every run of other characters
# turned into one space, so " word" means "a token starting with word" and a trailing space ends
# the token. Anchoring each marker at a space keeps the scan fast (the regex engine only tries
# alternatives where a token starts) and spares word-boundary work.
_NON_ALNUM = re.compile(r"[^a-z0-9]+")

# TVs, set-top boxes, consoles and signage: checked first, because many of them also claim to be
# Android tablets, Linux desktops or Windows.
_TV_OR_CONSOLE = re.compile(
    r" (?:smart ?tv|hbbtv|google ?tv|crkey|chromecast|apple ?tv|roku|web0s|netcast|bravia|viera|philipstv"
    r"|vidaa|playstation|xbox|nintendo|ouya|stb|sonydtv\d*|inettvbrowser|tv|titanos|box|mibox|brightsign"
    r"|steamdeck|aft[a-z0-9]{1,7}) "
)
# Tablets that say so or are known by name (Kindle Fire models are "KF..."; Yandex's apps add
# "/apad"). Old Windows agents carry "Tablet PC" for a system component on ordinary PCs.
_TABLET = re.compile(r" (?:ipad|tablet (?!pc )|tab |kindle|silk |playbook|nexus (?:7|9|10) |kf[a-z]{2,6} |nook|apad )")
# "Mobi" is what browsers put in phone agents (Mozilla's own advice); the rest are phone
# platforms and feature-phone browsers whose agents may lack it.
_MOBILE = re.compile(
    r" (?:mobi|iphone|ipod |windows phone|windows ce|lumia |iemobile|blackberry|bb10 |symbian|series ?[346]0 "
    r"|midp|j2me |kaios|up browser|opera mini|nokia|palm|webos |brew |maui |wap |docomo|obigo|netfront"
    r"|polaris \d)"
)
_ANDROID = re.compile(r" (?:android|adr \d)")
# Chromebooks running Android apps say Android but are laptops.
_ANDROID_LAPTOP = re.compile(r" (?:chromebook|pixelbook)")
_DESKTOP = re.compile(
    r" (?:windows|win(?:10|7|8|32|64) |macintosh|mac os x|x11 |cros |linux|[a-z]*bsd |sunos|solaris|amiga"
    r"|beos|haiku|openvms)"
)
_DESKTOP_OS = frozenset({"Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Chrome OS", "FreeBSD", "OpenBSD"})


def device_class(user_agent: str, os_family: str) -> str:
    """Desktop, mobile, tablet or other, from the agent and uap-core's OS name."""
    lowered = user_agent.lower()
    tokens = f" {_NON_ALNUM.sub(' ', lowered)} "
    if _TV_OR_CONSOLE.search(tokens):
        return OTHER
    if _TABLET.search(tokens):
        return TABLET
    if _MOBILE.search(tokens):
        return MOBILE
    if _ANDROID.search(tokens):
        if _ANDROID_LAPTOP.search(tokens):
            return DESKTOP
        # Android browsers on phones say "Mobile"; without it, a tablet (Google's own rule). That
        # rule is a browser convention: Android's app HTTP stack (Dalvik) never says "Mobile",
        # and most of those agents are phones.
        return TABLET if lowered.startswith(("mozilla/", "opera/")) else MOBILE
    if os_family in _DESKTOP_OS or _DESKTOP.search(tokens):
        return DESKTOP
    return OTHER


def browser_name(family: str) -> str:
    if family == "Mobile Safari":
        return "Safari"
    for suffix in (" Mobile iOS", " Mobile", " iOS"):
        if family.endswith(suffix) and len(family) > len(suffix):
            return family[: -len(suffix)]
    return family


def os_name(family: str) -> str:
    return "macOS" if family == "Mac OS X" else family


def os_version(family: str, major: str | None, minor: str | None) -> str:
    if not major:
        return ""
    if minor and ((family == "Mac OS X" and major == "10") or family == "Windows"):
        return f"{major}.{minor}"
    return major


def parse_uncached(user_agent: str, resolver: Resolver | None = None) -> Agent:
    """parse_agent without the cache, optionally with another ua-parser resolver."""
    if not user_agent.strip():
        return NO_AGENT
    # uap-core's device domain names models, not classes; the class comes from device_class.
    result = (resolver or _resolver)(user_agent, Domain.USER_AGENT | Domain.OS)
    ua = result.user_agent or UserAgent()
    os = result.os or OS()
    version = os_version(os.family, os.major, os.minor)
    if os.family == "Chrome OS" and browser_name(ua.family) == "Chrome":
        # uap-core reads ChromeOS's platform build ("14541"); people know ChromeOS by the
        # milestone it shares with its Chrome ("124").
        version = ua.major or ""
    return Agent(
        browser=browser_name(ua.family),
        browser_version=ua.major or "",
        os=os_name(os.family),
        os_version=version,
        device=device_class(user_agent, os.family),
    )


_cache = TextCache(parse_uncached)
# Browser, OS and device class of a user agent; an empty agent is all "Other" (cached).
parse_agent: Callable[[str], Agent] = _cache.lookup
cache_clear = _cache.clear
cache_info = _cache.info
