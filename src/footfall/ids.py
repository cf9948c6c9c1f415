"""Identifiers: UUIDv7 for events and pages (time-ordered, so the store stays clustered)."""

from __future__ import annotations

import os
import random
import time

# Ids need uniqueness, not secrecy: a generator seeded from the OS avoids an os.urandom
# system call per id, which on the ingest path also released and re-took the GIL each time.
_random = random.Random(os.urandom(32))


def uuid7(unix_ms: int | None = None) -> str:
    """A RFC 9562 version-7 UUID string: 48-bit milliseconds, then 74 random bits."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = _random.getrandbits(80)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7
    value = value & ~(0x3 << 62) | (0x2 << 62)  # RFC variant
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
