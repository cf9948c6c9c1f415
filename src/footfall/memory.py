"""Handing freed memory back to the system.

glibc's malloc keeps memory that was freed in the middle of its heaps for reuse, so a
process that once needed much (a data file parsed, a burst of ingest written to DuckDB) stays
that big while it idles. `malloc_trim` returns the free pages.
"""

from __future__ import annotations

import contextlib
import ctypes


def return_freed_memory() -> None:
    """Return glibc's free heap pages to the system (a few ms); nothing to do elsewhere."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
