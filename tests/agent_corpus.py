"""A labelled corpus of real user agents, built from the test fixtures that PyPI's
`device-detector` package ships (Matomo's Device Detector fixtures, LGPL-3.0).

Its `bots.yml` lists crawlers and other bots with a name and category; the other fixture files
list clients with a client type ("browser", "mobile app", "library", "feed reader", ...) and a
device type. Nothing is copied into this repository: the files are read from the installed
package at test time.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml_rs

FIXTURE_PACKAGE = "device_detector"
FIXTURE_DIR = ("tests", "fixtures", "upstream")
BOT_FILE = "bots.yml"


@dataclass(frozen=True)
class Browser:
    user_agent: str
    client: str  # device-detector's browser name
    device: str  # device-detector's device type: "desktop", "smartphone", "tablet", "tv", ...
    file: str


@dataclass(frozen=True)
class Bot:
    user_agent: str
    name: str
    category: str  # "Search bot", "Crawler", "AI Data Scraper", ...; "" when not given


@dataclass(frozen=True)
class Corpus:
    browsers: tuple[Browser, ...]
    bots: tuple[Bot, ...]
    other_clients: dict[str, int]  # entries left out because they are not browsers, by client type


def fixture_dir() -> Path:
    spec = importlib.util.find_spec(FIXTURE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{FIXTURE_PACKAGE} is not installed; it is a test dependency")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*FIXTURE_DIR)


def _entries(path: Path) -> list[dict[str, Any]]:
    loaded = yaml_rs.loads(path.read_text(encoding="utf-8"))
    return [entry for entry in loaded if isinstance(entry, dict)] if isinstance(loaded, list) else []


def _text(value: Any) -> str:
    # YAML turns some agents into numbers or nulls; the agent is always the text as written.
    return "" if value is None else str(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _bot(entry: dict[str, Any]) -> Bot:
    bot = entry["bot"]
    return Bot(_text(entry.get("user_agent")), _text(bot.get("name")), _text(bot.get("category")))


@cache
def load() -> Corpus:
    directory = fixture_dir()
    bots = [_bot(entry) for entry in _entries(directory / BOT_FILE)]
    browsers: list[Browser] = []
    other_clients: dict[str, int] = {}
    for path in sorted(directory.glob("*.yml")):
        if path.name == BOT_FILE:
            continue
        for entry in _entries(path):
            if "bot" in entry:  # a few client-hint fixtures are bots too
                bots.append(_bot(entry))
                continue
            client = _mapping(entry.get("client"))
            kind = _text(client.get("type"))
            if kind != "browser":
                other_clients[kind or "(none)"] = other_clients.get(kind or "(none)", 0) + 1
                continue
            device = _mapping(entry.get("device"))
            browsers.append(
                Browser(_text(entry.get("user_agent")), _text(client.get("name")), _text(device.get("type")), path.name)
            )
    return Corpus(tuple(browsers), tuple(bots), other_clients)
