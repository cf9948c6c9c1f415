"""The in-process import of a big file on worker processes: each parses, judges and enriches
whole blocks of lines (the work that holds Python's interpreter), while this process loads
the resulting events into the store in order, through the same writer path as ever.

Only for formats parsed in bulk (no state between blocks: the common log format family), and
files big enough to repay the workers' start-up (imports and geolocation data, ~2 s).
Workers enrich with the same salts (read from the store here), site and settings.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

from footfall.config import load_settings
from footfall.enrich import sources
from footfall.enrich.enricher import Enricher
from footfall.enrich.geo import open_geo
from footfall.enrich.sites import SiteRegistry
from footfall.enrich.visitors import SaltRing
from footfall.event import encode_event
from footfall.importer.formats import FORMATS, Format
from footfall.importer.pageviews import PageFilter
from footfall.importer.pipeline import Source, Summary, after_block, block_judge
from footfall.importer.reader import LogFile, decode
from footfall.meta import Site

MIN_PARALLEL_BYTES = 32 << 20


def default_workers() -> int:
    """One CPU stays with this process (it loads the store); at least one worker."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class WorkerSetup(NamedTuple):
    data_dir: Path
    site: Site
    salts: dict[int, bytes]
    fmt: str
    page_filter: PageFilter
    now_us: int


class KnownSalts:
    """Salts given, not kept: a worker's (the store's, as the importing process read them) or
    a dry run's (made up: nothing it computes can be linked to anything)."""

    def __init__(self, salts: dict[int, bytes]) -> None:
        self.salts = dict(salts)

    def load_salts(self) -> dict[int, bytes]:
        return dict(self.salts)

    def save_salt(self, day: int, salt: bytes) -> None:
        self.salts[day] = salt

    def delete_salts_before(self, day: int) -> int:
        return 0


_worker: tuple[WorkerSetup, Enricher] | None = None


def _start_worker(setup: WorkerSetup) -> None:
    global _worker
    settings = load_settings(data_dir=setup.data_dir)
    salts = SaltRing()
    salts.rotate(KnownSalts(setup.salts))
    sources.preload()
    _worker = (setup, Enricher(salts, open_geo(settings.geoip_db), SiteRegistry([setup.site]), settings.exclusions))


def _work(name: str, first_line: int, data: bytes) -> tuple[bytes, Summary]:
    assert _worker is not None
    return judge_and_enrich(*_worker, name, first_line, data)


def judge_and_enrich(
    setup: WorkerSetup, enricher: Enricher, name: str, first_line: int, data: bytes
) -> tuple[bytes, Summary]:
    """A block's events (encoded, one per line) and counts. Blocks are independent, so they
    may be done anywhere and loaded in any order (sessions and dedupe do not depend on it)."""
    from footfall.importer.local import enrich_batch  # local imports this module

    # A judge per block: nothing is carried over from the block before (see block_judge).
    judge = block_judge(FORMATS[setup.fmt], setup.page_filter, name, setup.now_us)
    part = Summary()
    lines, text = decode(data)
    events = enrich_batch(enricher, setup.site, judge(first_line, lines, text is not None, part), part)
    # One bytes object, not a list: a fraction of the pickling. JSON text holds no raw newline.
    return b"\n".join([encode_event(e) for e in events]), part


def eligible(log: LogFile, fmt: Format, workers: int, any_size: bool = False) -> bool:
    """Whether to use workers: a bulk format, from a file (standard input is read here), big
    enough (or `any_size`, when the user asked for workers)."""
    if workers <= 0 or fmt.bulk is None or fmt.name not in FORMATS or log.size is None:
        return False
    return any_size or log.size >= MIN_PARALLEL_BYTES


def import_file(
    log: LogFile,
    setup: WorkerSetup,
    enricher: Enricher,
    workers: int,
    source: Source,
    summary: Summary,
    load: Callable[[list[bytes]], None],
) -> None:
    """Judge and enrich the file's blocks on `workers` processes, and here too whenever all of
    them are busy (this process mostly waits otherwise: loading the store takes less); `load`
    the events in batches."""
    in_flight: deque[tuple[Future[tuple[bytes, Summary]], int, int]] = deque()
    payloads: list[bytes] = []
    furthest = 0

    def done(events: bytes, part: Summary, lines: int, position: int) -> None:
        nonlocal furthest
        summary.merge(part)
        if events:
            payloads.extend(events.split(b"\n"))
        furthest = max(furthest, position)
        after_block(source, summary, log.name, lines, furthest)
        if len(payloads) >= source.batch_lines:
            load(payloads[:])
            payloads.clear()

    def take_one() -> None:
        future, lines, position = in_flight.popleft()
        done(*future.result(), lines, position)

    context = multiprocessing.get_context("spawn")  # not fork: this process runs DuckDB's threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(setup,)) as pool:
        number = 1
        for data, position in log.chunks():
            lines = data.count(b"\n") + 1
            if len(in_flight) < 2 * workers:
                in_flight.append((pool.submit(_work, log.name, number, data), lines, position))
            else:
                done(*judge_and_enrich(setup, enricher, log.name, number, data), lines, position)
                while in_flight and in_flight[0][0].done():
                    take_one()
            number += lines
        while in_flight:
            take_one()
    if payloads:
        load(payloads)
