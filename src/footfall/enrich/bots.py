"""Bots and AI crawlers, recognised from the user agent.

Rules are applied in this order, first hit wins:
1. an empty agent (or "-", what access logs write for a missing one);
2. our AI-agent table (footfall.enrich.data.bot_rules.AI_AGENTS): name, operator and purpose;
3. the crawler-user-agents package's patterns: a long list of named bots, some tagged as AI;
4. our generic signatures (footfall.enrich.data.bot_rules): HTTP libraries, headless browsers
   and monitors by name; the stems "bot", "crawl", "spider", ... ending a product name; a web or
   e-mail address in the agent; an agent that is one bare product name, with none of the
   platform and engine every browser sends.

An empty agent is a bot here. Where a contract lets a server leave the agent out (seed 001),
the caller decides whether a missing agent means a bot; parse_agent counts it as "Other".

Speed: crawler-user-agents has about 1,500 patterns, and one big alternation of them costs
hundreds of microseconds per agent in Python's regex engine, which tries every alternative at
every position. Nearly all patterns are plain literals, so they are compiled into one regex
shaped as a trie (alternatives share prefixes, so each position costs a character or two), and
the few real regexes are searched separately. Results are cached: agents repeat heavily.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from footfall.enrich.data import bot_rules
from footfall.enrich.textcache import TextCache

CRAWLER_PACKAGE = "crawleruseragents"
CRAWLER_DATA_FILE = "crawler-user-agents.json"
_AI_TAG = "ai-crawler"
_SEARCH_TAG = "search-engine"


class BotMatch(NamedTuple):
    name: str  # e.g. "GPTBot", "Googlebot", "curl", "empty"
    family: str  # the operator, e.g. "OpenAI", "Google"; the bot's own name when unknown
    ai: str  # "" for a bot that is not an AI agent, else "training", "search" or "assistant"


# --- building blocks -------------------------------------------------------------------------


def trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of `words`, shaped as a trie so the engine shares their prefixes.

    At one position a longer word wins over a word that is its prefix, and the matched text is
    always exactly one of the words.
    """
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # marks the end of a word
    return _node_pattern(root)


def _node_pattern(node: dict[str, Any]) -> str:
    branches = [re.escape(char) + _node_pattern(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if "" in node:
        return f"(?:{body})?"
    return body


_REGEX_SPECIAL = frozenset(".^$*+?{}[]()|")

# Put in front of a trie of words that must start a word of the agent. Besides keeping "Sonic"
# from matching "ViewSonic", it makes the search fast: the engine tries the trie's alternatives
# only where a word starts, not at every character.
WORD_START = "(?<![A-Za-z0-9])"


def literal_of(pattern: str) -> str | None:
    """The plain text a regex matches when it is only escaped characters, else None."""
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if not escaped or escaped.isalnum():  # \d, \s, ... are classes, not characters
                return None
            out.append(escaped)
        elif char in _REGEX_SPECIAL:
            return None
        else:
            out.append(char)
    return "".join(out)


def display_name(text: str) -> str:
    """A bot's name from the text that identified it: no version slash, URL scheme or comment."""
    text = text.strip()
    if "(" in text[1:]:
        text = text[: text.index("(", 1)]
    text = text.removeprefix("https://").removeprefix("http://")
    return text.strip(" /;:,_+-()[]") or text


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*[A-Za-z0-9]")
_NOT_A_NAME = frozenset(bot_rules.BROWSER_WORDS)


def first_name_word(user_agent: str, end: int | None = None) -> str:
    """The first word of an agent that is not browser boilerplate ("Mozilla", "compatible")."""
    for word in _WORD.finditer(user_agent, 0, len(user_agent) if end is None else end):
        if word.group().lower() not in _NOT_A_NAME:
            return word.group()
    return ""


def _is_address(text: str) -> bool:
    return "://" in text or ("." in text and "/" in text.strip("/"))


def _named(text: str, ai: str, user_agent: str) -> BotMatch:
    """A match named after the text that identified it, or, when that text is a web address,
    after the agent's first own word ("YandexAdditional" rather than "yandex.com/bots")."""
    name = display_name(text)
    if _is_address(text):
        name = first_name_word(user_agent) or name
    return BotMatch(name, operator_of(name), ai)


def operator_of(name: str) -> str:
    lowered = name.lower()
    for needle, operator in bot_rules.OPERATORS:
        if needle in lowered:
            return operator
    return name


# --- our AI table ---------------------------------------------------------------------------

_AI_BY_TOKEN = {token.lower(): BotMatch(name, family, ai) for token, name, family, ai in bot_rules.AI_AGENTS}
_AI_RE = re.compile(WORD_START + trie_pattern(_AI_BY_TOKEN))


def _match_ai_table(lowered: str) -> BotMatch | None:
    found = _AI_RE.search(lowered)
    return _AI_BY_TOKEN[found.group()] if found else None


# --- crawler-user-agents --------------------------------------------------------------------


def crawler_entries() -> list[dict[str, Any]]:
    """crawler-user-agents' JSON list, read from its installed directory without importing it."""
    spec = importlib.util.find_spec(CRAWLER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return []
    path = Path(next(iter(spec.submodule_search_locations))) / CRAWLER_DATA_FILE
    entries: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return entries


def _ai_kind_from_tags(tags: list[str]) -> str:
    # The package says a crawler is AI but not what for; one that is also a search engine feeds
    # an AI search product, and otherwise collecting content for models is the usual purpose.
    if _AI_TAG not in tags:
        return ""
    return bot_rules.SEARCH if _SEARCH_TAG in tags else bot_rules.TRAINING


def required_literal(pattern: str) -> str | None:
    """The longest run of plain text a match of `pattern` must contain, or None if unsure.

    Only text outside groups and classes counts, and a character followed by a quantifier is
    optional; a top-level "|" makes every run optional.
    """
    runs: list[str] = []
    current: list[str] = []
    depth = 0
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if depth == 0 and escaped and not escaped.isalnum():
                current.append(escaped)
                continue
            char = "\\" + escaped
        elif depth == 0 and char not in _REGEX_SPECIAL:
            current.append(char)
            continue
        if char in "*?{" and current:
            current.pop()  # the quantified character may be absent
        if char == "{":
            for skipped in chars:  # the rest of a {m,n} quantifier
                if skipped == "}":
                    break
        if char == "|" and depth == 0:
            return None
        depth += 1 if char in "([" else -1 if char in ")]" else 0
        runs.append("".join(current))
        current = []
    runs.append("".join(current))
    longest = max(runs, key=len)
    return longest or None


def _alternatives(pattern: str) -> list[str]:
    """A pattern's top-level alternatives when it is a plain "a|b|c", else the pattern itself."""
    if "|" in pattern and not any(char in pattern for char in "()[]\\"):
        return pattern.split("|")
    return [pattern]


@dataclass
class _CrawlerRules:
    words: dict[str, str] = field(default_factory=dict)  # literal starting with a letter or digit -> AI kind
    others: dict[str, str] = field(default_factory=dict)  # literal starting with punctuation
    prefixes: dict[str, str] = field(default_factory=dict)  # ^literal
    suffixes: dict[str, str] = field(default_factory=dict)  # literal$
    # (text every match contains, or "" when none is known; the regex; AI kind)
    regexes: list[tuple[str, re.Pattern[str], str]] = field(default_factory=list)

    def add(self, pattern: str, ai: str) -> None:
        for alternative in _alternatives(pattern):
            self._add_one(alternative, ai)

    def _add_one(self, pattern: str, ai: str) -> None:
        if literal := literal_of(pattern):
            table = self.words if literal[0].isalnum() else self.others
            table.setdefault(literal, ai)
        elif pattern.startswith("^") and (literal := literal_of(pattern[1:])):
            self.prefixes.setdefault(literal, ai)
        elif pattern.endswith("$") and (literal := literal_of(pattern[:-1])):
            self.suffixes.setdefault(literal, ai)
        else:
            self.regexes.append((required_literal(pattern) or "", re.compile(pattern), ai))


def _load_crawler_rules() -> _CrawlerRules:
    rules = _CrawlerRules()
    for entry in crawler_entries():
        if entry["pattern"] not in bot_rules.IGNORED_CRAWLER_PATTERNS:
            rules.add(entry["pattern"], _ai_kind_from_tags(entry.get("tags", [])))
    return rules


def _compile_trie(words: Iterable[str], prefix: str = "") -> re.Pattern[str] | None:
    pattern = trie_pattern(words)
    return re.compile(prefix + pattern) if pattern else None


_CRAWLERS = _load_crawler_rules()
# Bot names found inside other words are mostly device or browser names ("ViewSonic", "HTC
# Butterfly"), so a literal that starts with a letter or digit must start a word.
_CRAWLER_WORD_RE = _compile_trie(_CRAWLERS.words, WORD_START)
_CRAWLER_OTHER_RE = _compile_trie(_CRAWLERS.others)
_CRAWLER_PREFIXES = tuple(_CRAWLERS.prefixes)
_CRAWLER_SUFFIXES = tuple(_CRAWLERS.suffixes)


def _match_crawler_literals(user_agent: str) -> BotMatch | None:
    for regex, table in ((_CRAWLER_WORD_RE, _CRAWLERS.words), (_CRAWLER_OTHER_RE, _CRAWLERS.others)):
        if regex is not None and (found := regex.search(user_agent)):
            return _named(found.group(), table[found.group()], user_agent)
    return None


def _match_crawler_package(user_agent: str) -> BotMatch | None:
    # Case-sensitive, as the package's patterns are written.
    if found := _match_crawler_literals(user_agent):
        return found
    if user_agent.startswith(_CRAWLER_PREFIXES):
        prefix = next(p for p in _CRAWLER_PREFIXES if user_agent.startswith(p))
        return _named(prefix, _CRAWLERS.prefixes[prefix], user_agent)
    if user_agent.endswith(_CRAWLER_SUFFIXES):
        suffix = next(s for s in _CRAWLER_SUFFIXES if user_agent.endswith(s))
        return _named(suffix, _CRAWLERS.suffixes[suffix], user_agent)
    for needed, regex, ai in _CRAWLERS.regexes:
        if needed in user_agent and (match := regex.search(user_agent)):
            return _named(match.group(), ai, user_agent)
    return None


# --- our generic signatures -----------------------------------------------------------------

_TOOL_BY_TOKEN = {token: name for token, name in bot_rules.TOOLS}
_TOOL_RE = re.compile(WORD_START + trie_pattern(_TOOL_BY_TOKEN))
_HTTP_CLIENT_RE = re.compile(WORD_START + trie_pattern(token for token, _ in bot_rules.HTTP_CLIENTS))
_STEM_RE = re.compile(trie_pattern(bot_rules.GENERIC_STEMS))
_PREFIX_RE = re.compile(WORD_START + trie_pattern(bot_rules.GENERIC_PREFIXES))
_PRODUCT_CHAR = re.compile(r"[a-z0-9_.\-]")
_WORD_CHAR = re.compile(r"[a-z0-9_]")
_NEXT_WORD = re.compile(r" +(?!\d+\.\d)[a-z0-9]")  # another word, but not a version number
# A browser's agent never carries a web address or an e-mail address; bots often give theirs.
_ADDRESS_HINTS = ("://", "www.", "@")
_ADDRESS = re.compile(r"https?://|\bwww\.[a-z0-9-]+\.|[a-z0-9._-]@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b")
# Agents that borrow only the "Mozilla/5.0" prefix: the whole agent is one product name inside a
# "compatible" comment, or one product after the prefix, with no platform or engine, which every
# browser sends.
_BARE_SHELL = re.compile(
    r"^Mozilla/5\.0 (?:\(compatible; ?(?P<comment>[A-Za-z][\w.\-]*)(?:/v?\d[^;)]*)?(?:;[^)]*)?\)"
    r"|(?P<product>[A-Za-z][\w.\-]*)(?:/[\w.\-]+)?)$"
)
# Scripts and tools often send only "Name/1.2.3"; browsers add platform and engine.
_BARE_PRODUCT = re.compile(r"^(?P<product>[A-Za-z][\w.\-]*)/v?\d[\w.\-]*$")
_BARE_BROWSERS = frozenset(bot_rules.BARE_BROWSERS)
_NOT_BOTS = tuple(bot_rules.NOT_BOTS)


def _product_span(lowered: str, start: int, end: int) -> tuple[int, int]:
    """Widen [start, end) to the whole product token around it ("foobot" in "foobot/2.1")."""
    while start > 0 and _PRODUCT_CHAR.match(lowered, start - 1):
        start -= 1
    while end < len(lowered) and _PRODUCT_CHAR.match(lowered, end):
        end += 1
    return start, end


def _stem_names_a_bot(lowered: str, stem_end: int, start: int, end: int) -> bool:
    """A stem counts when it ends a word of a product name that is not followed by more words.

    "Googlebot/2.1", "Sogou web spider/4.0" and "(compatible; FooBot)" are bots; device models
    such as "IDbot553", "M_bot_tab_71", "XBot Junior" and "VR BOT 552" are not.
    """
    if _WORD_CHAR.match(lowered, stem_end):
        return False
    if start > 0 and lowered[start - 1] in "/@:":
        return False  # part of a web or e-mail address ("+http://example.com/bot.html")
    if _NEXT_WORD.match(lowered, end):
        return False
    return not lowered[start:end].startswith(_NOT_BOTS)


def _match_tool(lowered: str) -> BotMatch | None:
    found = _TOOL_RE.search(lowered)
    if found is None:
        return None
    name = _TOOL_BY_TOKEN[found.group()]
    return BotMatch(name, operator_of(name), "")


def _match_stem(user_agent: str, lowered: str) -> BotMatch | None:
    position = 0
    while found := _STEM_RE.search(lowered, position):
        start, end = _product_span(lowered, found.start(), found.end())
        if _stem_names_a_bot(lowered, found.end(), start, end):
            return _named(user_agent[start:end], "", user_agent)
        position = found.start() + 1
    if found := _PREFIX_RE.search(lowered):
        start, end = _product_span(lowered, found.start(), found.end())
        return _named(user_agent[start:end], "", user_agent)
    return None


def _match_address(user_agent: str, lowered: str) -> BotMatch | None:
    if not any(hint in lowered for hint in _ADDRESS_HINTS):
        return None
    found = _ADDRESS.search(lowered)
    if found is None:
        return None
    name = first_name_word(user_agent, found.start())
    if not name:
        name = display_name(lowered[found.start() :].split()[0].split("@")[-1])
    return BotMatch(name, operator_of(name), "")


def _match_bare_shape(user_agent: str) -> BotMatch | None:
    if found := _BARE_SHELL.match(user_agent):
        return _named(found.group("comment") or found.group("product"), "", user_agent)
    found = _BARE_PRODUCT.match(user_agent)
    if found and found.group("product").lower() not in _BARE_BROWSERS:
        return _named(found.group("product"), "", user_agent)
    return None


def _match_generic(user_agent: str, lowered: str) -> BotMatch | None:
    return (
        _match_tool(lowered)
        or _match_stem(user_agent, lowered)
        or _match_address(user_agent, lowered)
        or _match_bare_shape(user_agent)
    )


# --- public ---------------------------------------------------------------------------------

EMPTY = BotMatch(bot_rules.EMPTY_AGENT, bot_rules.EMPTY_AGENT, "")


def detect_uncached(user_agent: str) -> BotMatch | None:
    """detect_bot without the cache."""
    stripped = user_agent.strip()
    if not stripped or stripped == "-":
        return EMPTY
    lowered = user_agent.lower()
    return _match_ai_table(lowered) or _match_crawler_package(user_agent) or _match_generic(user_agent, lowered)


_cache = TextCache(detect_uncached)
# The bot behind a user agent, or None for a person's browser (cached).
detect_bot: Callable[[str], BotMatch | None] = _cache.lookup
cache_clear = _cache.clear
cache_info = _cache.info


def is_http_client(user_agent: str) -> bool:
    """Whether the agent is an HTTP library or command-line client (curl, requests, fetch...)."""
    return _HTTP_CLIENT_RE.search(user_agent.lower()) is not None


def is_ai_crawler(user_agent: str) -> BotMatch | None:
    """The match when the agent is an AI crawler, searcher or assistant fetcher, else None."""
    match = detect_bot(user_agent)
    return match if match is not None and match.ai else None
