"""The writer: drains closed spool segments into the store, one transaction per batch.

A segment is deleted only after its batch is committed. The same transaction records the
segment in the store's ledger, so a crash between commit and delete replays nothing twice:
on the next pass the segment is found in the ledger and just deleted.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from footfall.memory import return_freed_memory
from footfall.pipeline.sessions import Sessionizer
from footfall.pipeline.spool import Spool, read_segment
from footfall.store.base import Staged, Store

log = logging.getLogger(__name__)

# The writer has the store fold its log into the database file (a checkpoint) in its quiet
# moments, work that would otherwise land in the middle of a burst: when idle, once the log
# holds this much (DuckDB's own threshold, ~40,000 events) or after this long without new
# events; and while it rests between the batches of a steady stream, once the log holds this
# much. The latter bounds memory: until a checkpoint DuckDB keeps appended rows in memory
# uncompressed (~540 bytes an event), so a stream that never let the writer go idle grew the
# server without bound (+110 MB in the 12 s of the single-record benchmark). 8 MiB (~18,000
# events) rather than 16: the single-record benchmark's peak RSS fell from 211-212 to 199-200 MB
# (2 paired runs, ~9,000 events/s), with no change in throughput within the noise.
CHECKPOINT_WAL_BYTES = 8 << 20
IDLE_CHECKPOINT_AFTER_S = 10.0
# A batch costs the store a fixed ~40 ms plus ~14 us an event (2 CPUs): loading every closed
# segment the moment it appears spent, under a steady stream of single-record requests, a
# third of the machine on those fixed costs, CPU the HTTP side needed. So after a batch that
# took all there was, the writer rests PACE times as long as the batch took (at most
# MAX_PAUSE_S), and the next batch is bigger; it stops resting as soon as REST_UNTIL_BYTES are
# waiting (a backlog: a big batch is efficient already). At 1,000 events/s a batch takes
# ~40 ms, so the rest stays under the spool's 200 ms rotation and adds nothing to lag.
# REST_UNTIL_BYTES was 2 MiB: at 20,000 single records/s that cut the rest short after ~0.35 s,
# 3 batches a second; at 8 MiB the writer's CPU fell from ~19% to ~14% and single-record
# ingest rose 4-8% (3 paired runs), with batch ingest within noise.
PACE = 2.0
MAX_PAUSE_S = 1.0
REST_UNTIL_BYTES = 8 << 20  # ~28,000 events
# A steady stream's batch of this much or more has the store hand back what it frees at once
# (Store.small_load): the single-record benchmark's peak RSS fell from 220-225 to 203-206 MB
# (~15,000 events/s, batches of ~20,000 events). Smaller batches keep their pages for the next
# one: handing them back too raised the queryability lag at 1,000 events/s (batches of a few
# hundred events) by ~65 ms at p50 and 80-140 ms at p99.
HAND_BACK_BYTES = 2 << 20  # ~7,000 events


# The writer thread calls into DuckDB some 35 times a batch, and needs the GIL back after
# each call; the event loop's thread holds it while it decodes requests, and gives it up only
# every switch interval (Python's default 5 ms). Under a burst of batch requests a statement
# that takes DuckDB 0.3 ms took the writer 20-45 ms, and its first batch of a burst 1.3 s
# instead of 0.35. So while the writer loads a batch the interval is 1 ms: end-to-end batch
# ingest rose from 46.7, 46.1, 46.7k to 50.7, 49.2, 48.1k events/s (3 paired runs, 2 CPUs),
# single-record ingest within the noise (ratio 0.45, 0.44, 0.46 against 0.45, 0.47, 0.48).
# (Before, the interval was 1 ms only once a batch had left a backlog behind it, which missed
# a burst's first batch: 42,500 -> 52,200 events/s then.) While the writer rests it asks for
# the GIL no more, and the interval is the usual one.
LOADING_SWITCH_INTERVAL_S = 0.001


def load_batch(
    store: Store,
    sessionizer: Sessionizer,
    payloads: Iterable[bytes],
    segments: list[Path],
    *,
    small: bool = False,
    hand_back: bool = False,
) -> Staged:
    """Spooled events into the store in one transaction: stage them, assign their sessions,
    commit them with the session merges and the segments' ledger rows. Returns what was
    staged; the rest of the records read were duplicates or did not parse as events.

    `segments` is read only at the commit: the writer fills it while `payloads` is consumed
    (it reads a segment when staging reaches it). `small`: a steady stream's batch, which the
    store may load with less (Store.small_load, with `hand_back`); a backlog or an import gets
    all it has."""
    with store.small_load(hand_back=hand_back) if small else contextlib.nullcontext():
        staged = store.stage_batch(payloads)
        session_ids, merges = sessionizer.assign(staged)
        store.commit_staged(session_ids, merges, [p.name for p in segments], sessionizer.reach_us)
    return staged


class Writer:
    def __init__(self, spool: Spool, store: Store, sessionizer: Sessionizer, batch_events: int) -> None:
        self.spool = spool
        self.store = store
        self.sessionizer = sessionizer
        self.batch_events = batch_events
        self.events_committed = 0
        self.torn_records_dropped = 0
        self.torn_segments: list[str] = []
        self.undecodable_records = 0
        self.duplicates_skipped = 0  # records whose event id was stored already (retries)
        self.last_error: str | None = None
        self.last_commit_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def start(self) -> None:
        self._forget_stale_ledger()
        self._thread.start()

    def _forget_stale_ledger(self) -> None:
        """Drop ledger rows whose segment file is gone (a crash between deleting a segment and
        forgetting it). The spool numbers new segments after the highest file left, so it may
        reuse such a name, and a stale row would make that new segment look committed and be
        deleted unread. Runs before anything is spooled, so every file present is in the list."""
        present = {p.name for p in self.spool.closed_segments()}
        stale = [name for name in self.store.committed_segments() if name not in present]
        if stale:
            log.info("forgetting %d spool ledger rows of segments already deleted", len(stale))
            self.store.forget_segments(stale)

    def stop(self) -> None:
        """Stop after draining every closed segment (call after the spool is closed)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        usual_interval = sys.getswitchinterval()
        catching_up = False  # the last batch left a backlog behind it
        failures = 0
        dirty = False  # committed since the last checkpoint
        while True:
            segments = self.spool.closed_segments()
            if not segments:
                if self._stop.is_set():
                    return
                if catching_up:
                    # The end of a burst: its tail need not wait for the spool's rotation.
                    catching_up = False
                    if self.spool.close_active_now():
                        continue
                if self.store.visit_parts_pending():
                    self._fold_visits()
                if dirty and (
                    self._log_is_large()
                    or time.time() - (self.last_commit_at or 0.0) >= IDLE_CHECKPOINT_AFTER_S
                ):
                    dirty = not self.store.checkpoint()
                    if not dirty:
                        # The burst is over and its rows are in the file: what the batches and
                        # the checkpoint freed goes back to the system instead of staying
                        # resident while the server idles. 20 s after the single-record
                        # benchmark the server kept 211-249 MB before; 187-188 MB with this
                        # and DuckDB's background purging (store/duckdb.py).
                        return_freed_memory()
                self.spool.wait_for_segments(timeout=0.25)
                continue
            try:
                started = time.monotonic()
                # Small unless the last batch left a backlog behind it (see load_batch); a
                # small one hands back what it frees if it is sizable (HAND_BACK_BYTES).
                small = not catching_up
                hand_back = small and self.spool.closed_bytes() >= HAND_BACK_BYTES
                sys.setswitchinterval(LOADING_SWITCH_INTERVAL_S)
                try:
                    loaded = self.drain_once(segments, small=small, hand_back=hand_back)
                finally:
                    sys.setswitchinterval(usual_interval)
                dirty = True
                failures = 0
                self.last_error = None
                behind = self.spool.closed_bytes() >= REST_UNTIL_BYTES
                catching_up = behind or loaded >= self.batch_events
                if loaded < self.batch_events and not self._stop.is_set():
                    rest_until = time.monotonic() + min(MAX_PAUSE_S, PACE * (time.monotonic() - started))
                    if not behind and self._log_is_large():
                        dirty = not self.store.checkpoint()  # part of the rest, not added to it
                    self.spool.wait_for_bytes(REST_UNTIL_BYTES, max(0.0, rest_until - time.monotonic()))
            except Exception as exc:  # keep the segments; try again, never drop them
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("writer batch failed (attempt %d); segments kept", failures)
                time.sleep(min(0.1 * 2**failures, 5.0))

    def _log_is_large(self) -> bool:
        """The store's log holds enough to be worth a checkpoint in a quiet moment."""
        return self.store.wal_bytes() >= CHECKPOINT_WAL_BYTES

    def _fold_visits(self) -> None:
        try:
            self.store.fold_visits()
        except Exception:  # the parts stay pending, queries still merge them: try again later
            log.exception("folding visit parts failed; will retry")

    def drain_once(self, segments: list[Path], *, small: bool = False, hand_back: bool = False) -> int:
        """Load a batch of segments into the store; returns the events committed. `small` and
        `hand_back`: as load_batch's, a steady stream's batch (even a full rest's worth of one)."""
        committed = self.store.committed_segments()
        already = [p for p in segments if p.name in committed]
        if already:
            self.spool.remove(already)
            self.store.forget_segments([p.name for p in already])
            return 0
        batch: list[Path] = []
        staged = load_batch(
            self.store, self.sessionizer, self._records(segments, batch), batch, small=small, hand_back=hand_back
        )
        loaded = staged.records
        self.duplicates_skipped += staged.duplicates
        if rejected := staged.read - loaded - staged.duplicates:
            # Whole records (their checksums match) that this version cannot read, e.g. written
            # by an incompatible one: reported and skipped, never blocking the segments behind.
            self.undecodable_records += rejected
            log.error("spool segments %s hold %d undecodable records; skipped", batch[0].name, rejected)
        self.spool.remove(batch)
        self.store.forget_segments([p.name for p in batch])
        self.events_committed += loaded
        self.last_commit_at = time.time()
        return loaded

    def _records(self, segments: list[Path], batch: list[Path]) -> Iterator[bytes]:
        """The records of a batch's segments, a segment read when the last one is consumed (so
        only one is held at a time); the batch ends after the segment that reaches
        batch_events. Each segment read is added to `batch`."""
        count = 0
        for path in segments:
            if batch and count >= self.batch_events:
                return
            read = read_segment(path)
            if read.torn_bytes:
                self.torn_records_dropped += 1
                self.torn_segments.append(path.name)
                log.warning(
                    "spool segment %s ends in a torn record: %d bytes dropped, %d whole records kept",
                    path.name, read.torn_bytes, len(read.records),
                )
            batch.append(path)
            count += len(read.records)
            yield from read.records
