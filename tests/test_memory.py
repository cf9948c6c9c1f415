"""Memory handed back to the system: glibc's freed heap pages, and DuckDB's own allocator."""

from __future__ import annotations

import ctypes
import json
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
import json, sys
from pathlib import Path
from footfall.store.duckdb import DuckDBStore

def rss_mb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024

store = DuckDBStore(Path(sys.argv[1]) / "footfall.duckdb")
cur = store._cursor()

def drop_a_table():
    base = rss_mb()
    cur.execute("CREATE TEMP TABLE t AS SELECT range AS a, range::VARCHAR || 'padding' AS b FROM range(3000000)")
    grown = rss_mb() - base
    cur.execute("DROP TABLE t")
    return grown, rss_mb() - base

# Inside a small load first: pages kept from a table dropped outside one would be reused by
# the next table, which then would not grow the resident set (a flaky comparison). Inside,
# nothing is kept for the outside one to reuse.
with store.small_load(hand_back=True):
    inside = drop_a_table()
outside = drop_a_table() if sys.argv[2] == "both" else None
print(json.dumps([outside, inside]))
"""


@pytest.mark.parametrize("user_setting", [None, "dirty_decay_ms:1000"])
def test_a_small_load_hands_back_duckdbs_freed_pages_at_once(tmp_path: Path, user_setting: str | None) -> None:
    """Within a small load that hands back (a steady stream's sizable batch, see
    DuckDBStore.small_load) what DuckDB frees leaves the resident set as the statement ends;
    outside it DuckDB's allocator keeps it for a second, as it does throughout when the user
    configured its decay."""
    env = {k: v for k, v in os.environ.items() if k != "DUCKDB_JE_MALLOC_CONF"}
    if user_setting:
        env["DUCKDB_JE_MALLOC_CONF"] = user_setting
    out = subprocess.run(
        [sys.executable, "-c", _DROP_A_TABLE, str(tmp_path), "inside" if user_setting else "both"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    outside, (grown_in, left_in) = json.loads(out)
    assert grown_in > 60, out  # the table was resident
    if user_setting is None:
        grown_out, left_out = outside
        assert grown_out > 60 and left_out > grown_out * 0.8, out
        assert left_in < grown_in * 0.2, out
    else:
        assert left_in > grown_in * 0.8, out
