"""Memory handed back to the system: glibc's freed heap pages, and DuckDB's own allocator."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from footfall.memory import return_freed_memory
from footfall.store.duckdb import DuckDBStore


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_pages_go_back_to_the_system() -> None:
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    chunk = 64 << 10  # below glibc's mmap threshold: the chunks come from the heap
    blocks = [libc.malloc(chunk) for _ in range(2048)]  # 128 MiB
    for b in blocks:
        ctypes.memset(b, 1, chunk)  # resident
    kept = blocks[::16]  # one block in 16 stays: the heap cannot just shrink from its top
    for b in blocks:
        if b not in kept:
            libc.free(b)
    before = _rss_kb()
    return_freed_memory()
    released_mb = (before - _rss_kb()) / 1024
    for b in kept:
        libc.free(b)
    assert released_mb > 60, released_mb  # of the 120 MiB freed


def test_duckdbs_allocator_purges_in_the_background(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "footfall.duckdb")
    try:
        row = store._cursor().execute("SELECT current_setting('allocator_background_threads')").fetchone()
        assert row == (True,)
    finally:
        store.close()


_DROP_A_TABLE = """
import footfall.store.duckdb  # before DuckDB loads, as in the server
import duckdb

def rss_mb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024

con = duckdb.connect()
con.execute("SET threads = 1")
base = rss_mb()
con.execute("CREATE TABLE t AS SELECT range AS a, range::VARCHAR || 'padding-padding' AS b FROM range(3000000)")
grown = rss_mb() - base
con.execute("DROP TABLE t")
print(grown, rss_mb() - base)
"""


@pytest.mark.parametrize("user_setting", [None, "dirty_decay_ms:1000"])
def test_duckdbs_allocator_returns_freed_pages_at_once_unless_the_user_says_otherwise(
    user_setting: str | None,
) -> None:
    """The store sets DuckDB's allocator to return freed pages at once (see store/duckdb.py):
    a dropped table's memory leaves the resident set as the statement ends, not a second
    later. A setting of the user's own (here DuckDB's default decay) is kept."""
    env = {k: v for k, v in os.environ.items() if k != "DUCKDB_JE_MALLOC_CONF"}
    if user_setting:
        env["DUCKDB_JE_MALLOC_CONF"] = user_setting
    out = subprocess.run(
        [sys.executable, "-c", _DROP_A_TABLE], env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    grown, left = (float(x) for x in out.split())
    assert grown > 80, out  # the table was resident
    if user_setting is None:
        assert left < grown * 0.2, out
    else:
        assert left > grown * 0.8, out
