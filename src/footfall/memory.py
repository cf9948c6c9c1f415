"""Handing freed memory back to the system.

glibc's malloc keeps memory that was freed in the middle of its heaps for reuse, so a
process that once needed much (a data file parsed, a burst of ingest written to DuckDB) stays
that big while it idles. `malloc_trim` returns the free pages.

DuckDB allocates its data through a jemalloc linked into its own library (symbols prefixed
`duckdb_je_`), which keeps freed pages for a while ("decay", a second by default) to reuse
them. `duckdb_pages_returned_at_once` turns that off for a stretch of work (see
DuckDBStore.small_load).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import os
import threading
from collections.abc import Iterator
from typing import Any


def return_freed_memory() -> None:
    """Return glibc's free heap pages to the system (a few ms); nothing to do elsewhere."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _DuckDBAllocator:
    """The decay of DuckDB's jemalloc, read and set through its `mallctl`, and how many
    stretches of work currently want it at 0. Every call is a no-op when the library has no
    such symbol (another build)."""

    def __init__(self) -> None:
        self._mallctl: Any = None
        spec = importlib.util.find_spec("_duckdb")  # the extension module linking the allocator
        with contextlib.suppress(OSError, AttributeError):
            if spec is not None and spec.origin:
                self._mallctl = ctypes.CDLL(spec.origin).duckdb_je_mallctl
        self._lock = threading.Lock()
        self._returning = 0  # stretches of work in progress that asked for pages back at once
        self._usual_decay_ms: int | None = None  # the decay to restore when the last one ends

    def _read(self, name: str, ctype: Any) -> int | None:
        if self._mallctl is None:
            return None
        value = ctype()
        size = ctypes.c_size_t(ctypes.sizeof(value))
        if self._mallctl(name.encode(), ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0)):
            return None
        return int(value.value)

    def _write(self, name: str, value: int) -> bool:
        if self._mallctl is None:
            return False
        new = ctypes.c_ssize_t(value)
        return not self._mallctl(name.encode(), None, None, ctypes.byref(new), ctypes.c_size_t(ctypes.sizeof(new)))

    def _set_decay_ms(self, ms: int) -> None:
        """Set every arena's decay, and new arenas'."""
        if self._write("arenas.dirty_decay_ms", ms):
            for i in range(self._read("arenas.narenas", ctypes.c_uint) or 0):
                self._write(f"arena.{i}.dirty_decay_ms", ms)  # fails for arenas not in use: fine

    @contextlib.contextmanager
    def returning_at_once(self) -> Iterator[None]:
        with self._lock:
            self._returning += 1
            if self._returning == 1:
                # The decay new arenas get is the configured one (DuckDB's default, 1 s).
                self._usual_decay_ms = self._read("arenas.dirty_decay_ms", ctypes.c_ssize_t)
                if self._usual_decay_ms is not None:
                    self._set_decay_ms(0)
        try:
            yield
        finally:
            with self._lock:
                self._returning -= 1
                if self._returning == 0 and self._usual_decay_ms is not None:
                    self._set_decay_ms(self._usual_decay_ms)


@functools.cache
def _duckdb_allocator() -> _DuckDBAllocator:
    return _DuckDBAllocator()


def duckdb_pages_returned_at_once() -> contextlib.AbstractContextManager[None]:
    """While inside, DuckDB's allocator returns freed pages to the system at once, not after
    its decay; afterwards the decay is what it was. Left alone when the user configured a
    decay of their own (DUCKDB_JE_MALLOC_CONF). Nests, and is safe across threads."""
    if "decay" in os.environ.get("DUCKDB_JE_MALLOC_CONF", ""):
        return contextlib.nullcontext()
    return _duckdb_allocator().returning_at_once()
