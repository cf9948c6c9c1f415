"""A bounded LRU cache for functions of one client-sent string, such as a user agent.

Agents repeat heavily (a million hits carry a few thousand distinct ones), so their parses are
cached. Only strings up to `max_length` characters are cached: a flood of long unique agents
then cannot hold more than `maxsize * max_length` characters, and real browser agents are well
under that length.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import _CacheInfo, lru_cache
from typing import Generic, TypeVar

T = TypeVar("T")

AGENT_CACHE_SIZE = 16_384
AGENT_CACHEABLE_LENGTH = 512


class TextCache(Generic[T]):
    def __init__(
        self, func: Callable[[str], T], maxsize: int = AGENT_CACHE_SIZE, max_length: int = AGENT_CACHEABLE_LENGTH
    ) -> None:
        cached = lru_cache(maxsize=maxsize)(func)

        # A closure rather than __call__: this runs for every hit, and a plain function call
        # is the cheapest Python has.
        def lookup(text: str) -> T:
            return func(text) if len(text) > max_length else cached(text)

        self.lookup = lookup
        self.clear = cached.cache_clear
        self.info: Callable[[], _CacheInfo] = cached.cache_info
