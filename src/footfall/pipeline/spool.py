"""The spool: append-only, fsync'd segment files. A record in the spool is an acknowledged event.

Framing of one record: 4-byte little-endian payload length, 4-byte CRC32 of the payload, the
payload (a JSON `Event`). Records are only appended, so damage can only be a torn tail, which
`read_segment` detects, reports and drops.

Segment files are zero-filled ahead of the records (`_Segment.zeroed`), so a small commit
overwrites blocks the file already has and `fdatasync` flushes only the data. An append that
grows the file also commits its new size and blocks to the file system's journal: ~150-190 us
a sync here against ~90-110 (benchmarks/bench_spool.py). Zeros after the last record are not data:
no record has an empty payload, so the zero-length header they read as ends a segment. A
closed segment is cut to its records.

Group commit: producers hand framed bytes to one committer thread; everything that arrives
while it waits on a sync goes out in the next write and shares the next sync (one
pwrite with RWF_DSYNC where Linux has it, else pwrite and fdatasync). Requests on the event
loop are handed over in groups, one per pass of the loop or per LOOP_GROUP_RECORDS (see
`Spool.append`). A segment is closed, and handed to the writer, when it is large enough or
(by the committer) old enough; segments found at start-up (including one that was active at
a crash) are closed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
SEGMENT_SUFFIX = ".seg"


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass
class SegmentRead:
    records: list[bytes]
    torn_bytes: int  # bytes after the last whole record (0 for a clean segment)


def read_segment(path: Path) -> SegmentRead:
    data = path.read_bytes()
    records: list[bytes] = []
    pos, end = 0, len(data)
    while pos + _HEADER.size <= end:
        length, crc = _HEADER.unpack_from(data, pos)
        if length == 0:  # the zero-filled space after the last record (a crash before closing)
            break
        start = pos + _HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        records.append(payload)
        pos = start + length
    # Torn: what is left, short of the zeros that were never written over.
    return SegmentRead(records, len(data[pos:].rstrip(b"\0")))


Done = Callable[[BaseException | None], None]


# A small commit past the zeros fills this far ahead of it, then as far again as the file
# is long (doubling, up to ZERO_FILL_MAX at a time). A quiet site's segments thus stay small,
# and a busy one's pays the slower, file-growing commit a few times a segment.
ZERO_FILL_MIN = 64 << 10
ZERO_FILL_MAX = 1 << 20

# A pass of the event loop over 50 busy keep-alive connections reads ~50 single-record
# requests (~2 ms of work). Handed over as one group at the end of the pass, their sync
# waited for the whole pass, and the next pass waited for the sync: the loop and the
# committer took turns, and the clients all waited for both. Handing the committer every
# LOOP_GROUP_RECORDS while the pass goes on overlaps the two: single-record ingest +7% (2
# paired runs for each of 12, 16 and 24; 8 gained less), with ~19 records a sync instead of
# ~30. A batch request is a group of its own at once.
LOOP_GROUP_RECORDS = 16
_ZEROS = memoryview(bytes(ZERO_FILL_MAX))


@dataclass
class _Segment:
    path: Path
    fd: int
    size: int  # bytes of records
    first_write: float  # wall time of the first record, for the writer-lag figure
    zeroed: int = 0  # the file's length: zeros from `size` on


@dataclass
class _LoopGroup:
    """Records appended on an event loop during one pass of its ready callbacks."""

    chunks: list[bytes] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    count: int = 0


class Spool:
    def __init__(self, directory: Path, segment_bytes: int, rotate_seconds: float) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.rotate_seconds = rotate_seconds
        # Guards the active segment and the counters (the committer writes, readers look).
        self._io_lock = threading.Lock()
        # Producers -> committer. A SimpleQueue's put and get are C, and a get that waits
        # comes back holding the GIL once: a Condition's wait and notify are Python, and under
        # a busy event loop each of their steps waited for the GIL again, ~0.1 ms a commit.
        # None, put by `close` under `_submit_lock`, is the last item.
        self._queue: queue.SimpleQueue[tuple[bytes, Done, int] | None] = queue.SimpleQueue()
        self._submit_lock = threading.Lock()
        self._closed: list[tuple[Path, float, int]] = []  # (segment, first write time, bytes), oldest first
        self._active: _Segment | None = None
        self._loop_group: _LoopGroup | None = None
        self._loop_of_thread: tuple[int, asyncio.AbstractEventLoop] | None = None
        self._stopping = False
        self.records_written = 0
        self.fsyncs = 0
        existing = sorted(directory.glob("*" + SEGMENT_SUFFIX))
        self._next_seq = max((int(p.stem) for p in existing), default=0) + 1
        for p in existing:
            stat = p.stat()
            self._closed.append((p, stat.st_mtime, stat.st_size))
        self._segments_changed = threading.Condition()
        self._thread = threading.Thread(target=self._commit_loop, name="spool-commit", daemon=True)
        self._thread.start()

    # -- producers --------------------------------------------------------------------------

    def append(self, framed: bytes, count: int = 1) -> asyncio.Future[None]:
        """A future, on the running loop, that is done once the records are durable (the
        caller may then acknowledge them).

        Records appended while the event loop runs one pass of its ready callbacks travel to
        the committer together, and come back as one cross-thread wake-up: handing each
        request over on its own (a lock, a notify and a wake-up apiece) cost more than the
        request's own work. A group goes early once it holds LOOP_GROUP_RECORDS (see there)."""
        loop = self._running_loop()
        group = self._loop_group
        if group is None:
            group = self._loop_group = _LoopGroup()
            loop.call_soon(self._submit_loop_group, loop)
        future: asyncio.Future[None] = loop.create_future()
        group.chunks.append(framed)
        group.futures.append(future)
        group.count += count
        if group.count >= LOOP_GROUP_RECORDS:
            # The call_soon above then finds no group, or hands over the next one early.
            self._submit_loop_group(loop)
        return future

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The running event loop. asyncio.get_running_loop() calls getpid() (a system call,
        ~2 us in a VM: 5% of a single-record request) to tell a forked child from its parent,
        so the loop is remembered with its thread: a loop that is running in the thread that
        found it is that thread's running loop (one thread runs at most one loop)."""
        cached = self._loop_of_thread
        if cached is not None and cached[0] == threading.get_ident() and cached[1].is_running():
            return cached[1]
        loop = asyncio.get_running_loop()
        self._loop_of_thread = (threading.get_ident(), loop)
        return loop

    def _submit_loop_group(self, loop: asyncio.AbstractEventLoop) -> None:
        group, self._loop_group = self._loop_group, None
        if group is None:
            return
        futures = group.futures

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle_all, futures, error)

        try:
            self.submit(b"".join(group.chunks), done, group.count)
        except RuntimeError as exc:  # closed
            _settle_all(futures, exc)

    def submit(self, framed: bytes, done: Done, count: int = 1) -> None:
        """Queue `count` framed records; `done` runs on the committer thread once fsync'd."""
        with self._submit_lock:
            if self._stopping:
                raise RuntimeError("spool is closed")
            self._queue.put((framed, done, count))

    def append_sync(self, framed: bytes, count: int = 1) -> None:
        finished = threading.Event()
        failure: list[BaseException] = []

        def done(error: BaseException | None) -> None:
            if error is not None:
                failure.append(error)
            finished.set()

        self.submit(framed, done, count)
        finished.wait()
        if failure:
            raise failure[0]

    # -- writing ----------------------------------------------------------------------------

    def _write(self, data: bytes, count: int) -> None:
        """Append and fsync, opening a segment when none is active."""
        with self._io_lock:
            seg = self._active or self._open_segment()
            end = seg.size + len(data)
            if end > seg.zeroed and len(data) < ZERO_FILL_MIN:
                # Grow the file past the records: this commit syncs its size, the next ones
                # need not. A large commit (a batch) just grows the file: writing its bytes
                # twice would cost more than the journal commit it saves.
                ahead = min(ZERO_FILL_MAX, max(ZERO_FILL_MIN, seg.zeroed))
                _pwrite_all(seg.fd, _ZEROS[:ahead], end)
                seg.zeroed = end + ahead
            _pwrite_durably(seg.fd, data, seg.size)  # over zeros: the data alone is synced
            seg.size = end
            seg.zeroed = max(seg.zeroed, end)
            self.fsyncs += 1
            self.records_written += count
            if seg.size >= self.segment_bytes:
                self._close_active()

    def _commit_loop(self) -> None:
        """Write what is submitted, and close the active segment when it is old."""
        while True:
            try:
                item = self._queue.get(timeout=self.rotate_seconds / 2)
            except queue.Empty:
                self._rotate_if_due()
                continue
            batch: list[tuple[bytes, Done, int]] = []
            while item is not None:  # everything submitted so far goes in this commit
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None  # nothing can follow the sentinel
            if batch:
                self._write_group(batch)
            self._rotate_if_due(force=stopping)
            if stopping:
                return

    def _write_group(self, batch: list[tuple[bytes, Done, int]]) -> None:
        error: BaseException | None = None
        try:
            self._write(b"".join(chunk for chunk, _, _ in batch), sum(count for _, _, count in batch))
        except BaseException as exc:  # the callers must hear of it, never a silent loss
            log.exception("spool write failed")
            error = exc
        for _, done, _ in batch:
            done(error)

    def _open_segment(self) -> _Segment:
        path = self.directory / f"{self._next_seq:016d}{SEGMENT_SUFFIX}"
        self._next_seq += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        _fsync_dir(self.directory)  # the new name must survive a crash too
        self._active = _Segment(path, fd, 0, time.time())
        return self._active

    def _rotate_if_due(self, force: bool = False) -> None:
        with self._io_lock:
            seg = self._active
            if seg is not None and (force or (seg.size and time.time() - seg.first_write >= self.rotate_seconds)):
                self._close_active()

    def close_active_now(self) -> bool:
        """Hand the active segment to the writer now, if it holds records (the writer, done
        with a backlog, takes the tail of a burst without waiting for the rotation)."""
        with self._io_lock:
            if self._active is None or not self._active.size:
                return False
            self._close_active()
            return True

    def _close_active(self) -> None:
        """Hand the active segment to the writer (with `_io_lock` held)."""
        seg = self._active
        assert seg is not None
        try:
            os.ftruncate(seg.fd, seg.size)  # the zeros go (left by a crash, readers skip them)
        finally:
            os.close(seg.fd)
        self._active = None
        with self._segments_changed:
            self._closed.append((seg.path, seg.first_write, seg.size))
            self._segments_changed.notify_all()

    # -- the consumer -----------------------------------------------------------------------

    def closed_segments(self) -> list[Path]:
        with self._segments_changed:
            return [p for p, _, _ in self._closed]

    def wait_for_segments(self, timeout: float) -> None:
        with self._segments_changed:
            if not self._closed:
                self._segments_changed.wait(timeout)

    def closed_bytes(self) -> int:
        """Bytes in closed segments, waiting for the writer."""
        with self._segments_changed:
            return self._closed_bytes_locked()

    def _closed_bytes_locked(self) -> int:
        return sum(size for _, _, size in self._closed)

    def wait_for_bytes(self, nbytes: int, timeout: float) -> None:
        """Wait until closed segments hold at least `nbytes`, the spool closes, or `timeout`."""
        deadline = time.monotonic() + timeout
        with self._segments_changed:
            while not self._stopping and self._closed_bytes_locked() < nbytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._segments_changed.wait(left)

    def remove(self, paths: list[Path]) -> None:
        """Forget segments whose records are committed in the store."""
        for p in paths:
            p.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        gone = set(paths)
        with self._segments_changed:
            self._closed = [c for c in self._closed if c[0] not in gone]
            self._segments_changed.notify_all()

    def lag_seconds(self) -> float:
        """Age of the oldest record not yet in the store."""
        with self._segments_changed:
            oldest = self._closed[0][1] if self._closed else None
        if oldest is None and self._active is not None and self._active.size:
            oldest = self._active.first_write
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def pending_segments(self) -> int:
        with self._segments_changed:
            return len(self._closed) + (1 if self._active is not None else 0)

    def close(self) -> None:
        """Flush what is queued, close the active segment and stop the committer."""
        with self._submit_lock:
            if not self._stopping:
                self._stopping = True
                self._queue.put(None)
        with self._segments_changed:  # wake a writer resting in wait_for_bytes
            self._segments_changed.notify_all()
        self._thread.join()


def _settle_all(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled (client went away)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


# pwritev's flag for "this write is synced when it returns" (Linux 4.7+); None: unsupported.
_rwf_dsync: int | None = getattr(os, "RWF_DSYNC", None)


def _pwrite_durably(fd: int, data: bytes, offset: int) -> None:
    """pwrite and fdatasync, as one system call where the platform has RWF_DSYNC (Linux):
    each call into the kernel costs the committer the GIL back, which it waits for behind the
    busy event loop. With the SimpleQueue hand-off (Spool.__init__): single-record ingest
    +4.7%, median of 7 paired runs (6 of them faster)."""
    global _rwf_dsync
    view = memoryview(data)
    if _rwf_dsync is not None:
        try:
            while view:
                written = os.pwritev(fd, [view], offset, _rwf_dsync)
                view, offset = view[written:], offset + written
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            _rwf_dsync = None  # a kernel older than the flag: write, then sync
    _pwrite_all(fd, view, offset)
    os.fdatasync(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
