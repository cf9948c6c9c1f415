"""The spool: append-only, fsync'd segment files. A record in the spool is an acknowledged event.

Framing: 4-byte little-endian payload length, 4-byte CRC32 of the payload, the payload. The
payload is one record (a JSON `Event`, `frame`) or, with the length's top bit set, the records
of one request each ended by a newline (`frame_lines`: JSON has no raw newline), so a batch
request's thousand records cost one checksum to write and one to read. Frames are only
appended, so damage can only be a torn tail, which `read_segment` detects, reports and drops.

Segment files are zero-filled ahead of the records (`_Segment.zeroed`), so a small commit
overwrites blocks the file already has and `fdatasync` flushes only the data. An append that
grows the file also commits its new size and blocks to the file system's journal: ~150-190 us
a sync here against ~90-110 (benchmarks/bench_spool.py). Zeros after the last record are not data:
no record has an empty payload, so the zero-length header they read as ends a segment. A
closed segment is cut to its records.

Group commit: requests on the event loop append in groups, one per pass of the loop or per
LOOP_GROUP_RECORDS (see `Spool.append`). The loop writes a group into the active segment
itself and asks the sync helper, a small child process (pipeline/syncer.py, which says why a
process), to fdatasync; one request is out at a time, and every group written meanwhile
shares the next sync. Without a helper (it could not start, or died), and for `append_sync`
from other threads, the write is synced where it is made (one pwrite with RWF_DSYNC where
Linux has it, else pwrite and fdatasync).

A segment is sealed when it is large enough or (by the rotation thread) old enough, and
handed to the writer once its groups are synced; segments found at start-up (including one
that was active at a crash) are handed over at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from footfall.pipeline.syncer import SyncHelper, on_loop_thread

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
SEGMENT_SUFFIX = ".seg"


_LINES = 1 << 31  # in a frame's length: the payload is newline-ended records


def frame(payload: bytes) -> bytes:
    """One record as a frame."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def frame_lines(lines: bytes) -> bytes:
    """Records, each ended by a newline, as one frame. Per-record frames cost the event loop
    ~0.2 us a record more (a checksum and a header each: 733 against 541 us for 1,000 events
    with their encoding), and the writer ~0.4 us a record to read (a Python step a record:
    40 against 20 ms for 50,000 records)."""
    return _HEADER.pack(len(lines) | _LINES, zlib.crc32(lines)) + lines


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
        lines = length & _LINES
        length ^= lines
        start = pos + _HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        if lines:
            split = payload.split(b"\n")
            split.pop()  # what follows the last record's newline: nothing
            records += split
        else:
            records.append(payload)
        pos = start + length
    # Torn: what is left, short of the zeros that were never written over.
    return SegmentRead(records, len(data[pos:].rstrip(b"\0")))



# A small commit past the zeros fills this far ahead of it, then as far again as the file
# is long (doubling, up to ZERO_FILL_MAX at a time). A quiet site's segments thus stay small,
# and a busy one's pays the slower, file-growing commit a few times a segment.
ZERO_FILL_MIN = 64 << 10
ZERO_FILL_MAX = 1 << 20

# A pass of the event loop over 50 busy keep-alive connections reads ~50 single-record
# requests (~2 ms of work). Written and synced as one group at the end of the pass, their
# sync waited for the whole pass, and the next pass waited for the sync: the loop and the
# sync took turns, and the clients all waited for both. Writing a group every
# LOOP_GROUP_RECORDS while the pass goes on overlaps the two: single-record ingest +7% (2
# paired runs for each of 12, 16 and 24; 8 gained less). A batch request is a group at once.
LOOP_GROUP_RECORDS = 16
# After the sync helper exits unexpectedly, the loop syncs its groups itself (slower, never
# wrong) for this long before it starts another.
HELPER_RESTART_AFTER_S = 1.0
_ZEROS = memoryview(bytes(ZERO_FILL_MAX))


@dataclass
class _Segment:
    path: Path
    fd: int
    number: int  # in the file's name; the sync helper's name for it
    size: int  # bytes of records
    first_write: float  # wall time of the first record, for the writer-lag figure
    zeroed: int = 0  # the file's length: zeros from `size` on
    last_seq: int = 0  # the last loop group written here (0: none); durable once synced


@dataclass
class _LoopGroup:
    """Records appended on an event loop during one pass of its ready callbacks."""

    chunks: list[bytes] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    count: int = 0


class SpoolClosed(RuntimeError):
    pass


class Spool:
    def __init__(self, directory: Path, segment_bytes: int, rotate_seconds: float) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.rotate_seconds = rotate_seconds
        # Guards the segments, the sync state and the counters: the loop writes and hears
        # syncs, the rotation thread seals, other threads may append_sync, the writer reads.
        self._io_lock = threading.Lock()
        self._closed: list[tuple[Path, float, int]] = []  # (segment, first write time, bytes), oldest first
        self._active: _Segment | None = None
        # Segments full or old, whose loop groups wait for a sync before the writer gets them.
        self._sealed: list[_Segment] = []
        self._loop_group: _LoopGroup | None = None
        self._loop_of_thread: tuple[int, asyncio.AbstractEventLoop] | None = None
        # Loop groups are numbered as written. A sync request names the last one written
        # (one request is out while requested > synced); the helper's answer names it back.
        self._written_seq = 0
        self._requested_seq = 0
        self._synced_seq = 0
        self._waiting: collections.deque[tuple[int, list[asyncio.Future[None]]]] = collections.deque()
        self._helper: SyncHelper | None = None
        self._helper_restart_at = 0.0
        self._stopping = False
        self.records_written = 0
        self.fsyncs = 0
        existing = sorted(directory.glob("*" + SEGMENT_SUFFIX))
        self._next_seq = max((int(p.stem) for p in existing), default=0) + 1
        for p in existing:
            stat = p.stat()
            self._closed.append((p, stat.st_mtime, stat.st_size))
        self._segments_changed = threading.Condition()
        self._stop_rotating = threading.Event()
        self._rotator = threading.Thread(target=self._rotate_loop, name="spool-rotate", daemon=True)
        self._rotator.start()

    # -- producers --------------------------------------------------------------------------

    def append(self, framed: bytes, count: int = 1) -> asyncio.Future[None]:
        """A future, on the running loop, that is done once the records are durable (the
        caller may then acknowledge them).

        Records appended while the event loop runs one pass of its ready callbacks are
        written together and share a sync: written and synced request by request, the
        hand-over cost more than the request's own work. A group goes early once it holds
        LOOP_GROUP_RECORDS (see there)."""
        loop = self._running_loop()
        group = self._loop_group
        if group is None:
            group = self._loop_group = _LoopGroup()
            loop.call_soon(self._write_loop_group, loop)
        future: asyncio.Future[None] = loop.create_future()
        group.chunks.append(framed)
        group.futures.append(future)
        group.count += count
        if group.count >= LOOP_GROUP_RECORDS:
            # The call_soon above then finds no group, or writes the next one early.
            self._write_loop_group(loop)
        return future

    def start_syncing(self) -> None:
        """Start the running loop's sync helper ahead of the first append (a server does,
        so its first request does not wait for a process to start)."""
        loop = self._running_loop()
        with self._io_lock:
            if not self._stopping:
                self._helper_for(loop)

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

    def _write_loop_group(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write the loop's group into the active segment and have it synced: by the helper
        (the group's futures settle when its answer comes), or here if there is none."""
        group, self._loop_group = self._loop_group, None
        if group is None:
            return
        try:
            with self._io_lock:
                if self._stopping:
                    raise SpoolClosed("spool is closed")
                helper = self._helper_for(loop)
                data = b"".join(group.chunks)
                if helper is None:
                    self._write(data, group.count)
                    _settle_all(group.futures, None)
                    return
                self._written_seq += 1
                self._write(data, group.count, self._written_seq)
                self._waiting.append((self._written_seq, group.futures))
                if self._requested_seq <= self._synced_seq:  # no request is out
                    self._request_sync(helper)
        except BaseException as exc:  # the callers must hear of it, never a silent loss
            if not isinstance(exc, SpoolClosed):
                log.exception("spool write failed")
            _settle_all(group.futures, exc)

    def append_sync(self, framed: bytes, count: int = 1) -> None:
        """Append from a thread with no event loop: written and synced in the caller's thread."""
        with self._io_lock:
            if self._stopping:
                raise SpoolClosed("spool is closed")
            self._write(framed, count)

    # -- writing ----------------------------------------------------------------------------

    def _write(self, data: bytes, count: int, seq: int = 0) -> None:
        """Append at the end of the active segment (opening one if none is), with `_io_lock`
        held: synced before it returns, or, for loop group `seq`, left for the helper."""
        seg = self._active or self._open_segment()
        end = seg.size + len(data)
        if end > seg.zeroed and len(data) < ZERO_FILL_MIN:
            # Grow the file past the records: this commit syncs its size, the next ones
            # need not. A large commit (a batch) just grows the file: writing its bytes
            # twice would cost more than the journal commit it saves.
            ahead = min(ZERO_FILL_MAX, max(ZERO_FILL_MIN, seg.zeroed))
            _pwrite_all(seg.fd, _ZEROS[:ahead], end)
            seg.zeroed = end + ahead
        if seq:
            _pwrite_all(seg.fd, data, seg.size)
            seg.last_seq = seq
        else:
            _pwrite_durably(seg.fd, data, seg.size)  # over zeros: the data alone is synced
            self.fsyncs += 1
        seg.size = end
        seg.zeroed = max(seg.zeroed, end)
        self.records_written += count
        if seg.size >= self.segment_bytes or self._is_old(seg):
            self._seal_active()

    def _open_segment(self) -> _Segment:
        number = self._next_seq
        path = self.directory / f"{number:016d}{SEGMENT_SUFFIX}"
        self._next_seq += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        _fsync_dir(self.directory)  # the new name must survive a crash too
        self._active = _Segment(path, fd, number, 0, time.time())
        return self._active

    # -- syncing ----------------------------------------------------------------------------

    def _helper_for(self, loop: asyncio.AbstractEventLoop) -> SyncHelper | None:
        """This loop's sync helper, started on first use (with `_io_lock` held). None while
        one cannot be had: the loop then syncs its groups itself."""
        helper = self._helper
        if helper is not None and helper.loop is not loop:
            # A spool used from a second event loop (tests do): the first one's groups are
            # made durable here and the helper goes; the new loop gets its own.
            self._drop_helper(helper)
            helper = None
        if helper is None and time.monotonic() >= self._helper_restart_at:
            try:
                helper = self._helper = SyncHelper(loop, self._synced, self._helper_lost)
            except Exception:
                log.exception("could not start the spool's sync helper; syncing in the server")
                self._helper_restart_at = time.monotonic() + HELPER_RESTART_AFTER_S
        return helper

    def _request_sync(self, helper: SyncHelper) -> None:
        """Send the helper every segment written since the last request (`_io_lock` held)."""
        segments = [s for s in self._open_segments() if s.last_seq > self._requested_seq]
        try:
            helper.request(self._written_seq, [(s.number, s.fd) for s in segments])
        except OSError:
            log.exception("the spool's sync helper cannot be reached")
            self._drop_helper(helper)
            return
        self._requested_seq = self._written_seq

    def _synced(self, helper: SyncHelper, seq: int, errno_: int) -> None:
        """The helper's answer, on the loop: the groups up to `seq` are durable, or failed."""
        error: OSError | None = None
        if errno_:
            error = OSError(errno_, f"spool sync failed: {os.strerror(errno_)}")
            log.error("%s", error)
        with self._io_lock:
            self.fsyncs += 1
            settled = self._settle_through(seq, error)
            if self._helper is helper and not self._stopping and self._written_seq > self._synced_seq:
                self._request_sync(helper)
        for futures in settled:
            _settle_all(futures, error)

    def _helper_lost(self, helper: SyncHelper) -> None:
        """The helper exited (killed, out of memory): on the loop, sync here what it had not."""
        log.error("the spool's sync helper exited (code %s); syncing in the server for now", helper.process.poll())
        with self._io_lock:
            if self._helper is helper:
                self._drop_helper(helper)
                self._helper_restart_at = time.monotonic() + HELPER_RESTART_AFTER_S

    def _drop_helper(self, helper: SyncHelper) -> None:
        """Retire `helper` and make every loop group written so far durable here, settling
        their futures (`_io_lock` held; from any thread)."""
        self._helper = None
        helper.retire()
        error = self._sync_here()
        settled = self._settle_through(self._written_seq, error)
        loop = helper.loop
        for futures in settled:
            _settle_on(loop, futures, error)

    def _sync_here(self) -> OSError | None:
        """fdatasync, in this thread, every segment with loop groups not yet synced."""
        try:
            for seg in self._open_segments():
                if seg.last_seq > self._synced_seq:
                    os.fdatasync(seg.fd)
                    self.fsyncs += 1
        except OSError as exc:
            log.exception("spool sync failed")
            return exc
        return None

    def _settle_through(self, seq: int, error: BaseException | None) -> list[list[asyncio.Future[None]]]:
        """Mark the loop groups up to `seq` synced; hand over the sealed segments that holds
        whole. Returns the groups' futures, to settle outside the lock (`_io_lock` held)."""
        self._synced_seq = max(self._synced_seq, seq)
        settled = []
        waiting = self._waiting
        while waiting and waiting[0][0] <= seq:
            settled.append(waiting.popleft()[1])
        if self._sealed:
            self._sealed = [s for s in self._sealed if not self._hand_over_if_synced(s)]
        return settled

    # -- sealing and handing over -----------------------------------------------------------

    def _open_segments(self) -> list[_Segment]:
        """The segments not yet handed to the writer, oldest first (`_io_lock` held)."""
        return [*self._sealed, self._active] if self._active is not None else list(self._sealed)

    def _is_old(self, seg: _Segment) -> bool:
        return time.time() - seg.first_write >= self.rotate_seconds

    def _rotate_loop(self) -> None:
        """Seal the active segment when it is old and no write came to do it (`_write` seals
        an old one as it writes: under a steady stream, on time, not up to a period late)."""
        while not self._stop_rotating.wait(self.rotate_seconds / 2):
            self._rotate_if_due()

    def _rotate_if_due(self) -> None:
        with self._io_lock:
            seg = self._active
            if seg is not None and seg.size and self._is_old(seg):
                self._seal_active()

    def close_active_now(self) -> bool:
        """Hand the active segment to the writer as soon as it is synced, if it holds records
        (the writer, done with a backlog, takes the tail of a burst without waiting for the
        rotation)."""
        with self._io_lock:
            if self._active is None or not self._active.size:
                return False
            self._seal_active()
            return True

    def _seal_active(self) -> None:
        """No more writes to the active segment: to the writer once synced (`_io_lock` held)."""
        seg = self._active
        assert seg is not None
        self._active = None
        if not self._hand_over_if_synced(seg):
            self._sealed.append(seg)

    def _hand_over_if_synced(self, seg: _Segment) -> bool:
        """Close a sealed segment and give it to the writer, once its groups are synced. Never
        raises: it runs as groups settle, and their futures must still be settled."""
        if seg.last_seq > self._synced_seq:
            return False
        try:
            os.ftruncate(seg.fd, seg.size)  # the zeros go (if they stay, readers skip them)
        except OSError:
            log.warning("could not cut spool segment %s to its records; readers skip the zeros", seg.path.name)
        with contextlib.suppress(OSError):  # the records are synced: nothing is lost with the descriptor
            os.close(seg.fd)
        with self._segments_changed:
            self._closed.append((seg.path, seg.first_write, seg.size))
            self._segments_changed.notify_all()
        return True

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
        with self._io_lock:
            writing = [s.first_write for s in self._open_segments() if s.size]
        with self._segments_changed:
            closed = [self._closed[0][1]] if self._closed else []
        oldest = min(closed + writing, default=None)
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def pending_segments(self) -> int:
        with self._io_lock:
            writing = len(self._open_segments())
        with self._segments_changed:
            return len(self._closed) + writing

    def close(self) -> None:
        """Sync what is written, hand every segment to the writer, stop the helper. From any
        thread; appends after it fail."""
        with self._io_lock:
            if self._stopping:
                return
            self._stopping = True
        self._stop_rotating.set()
        self._rotator.join()
        with self._io_lock:
            if self._helper is not None:
                # Syncs here what it had not, which hands every sealed segment over.
                self._drop_helper(self._helper)
            if self._active is not None:
                self._seal_active()
        with self._segments_changed:  # wake a writer resting in wait_for_bytes
            self._segments_changed.notify_all()


def _settle_on(
    loop: asyncio.AbstractEventLoop, futures: list[asyncio.Future[None]], error: BaseException | None
) -> None:
    """Settle a loop's futures from any thread (nothing waits on a closed loop's)."""
    if on_loop_thread(loop):
        _settle_all(futures, error)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(_settle_all, futures, error)


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
    for `append_sync` and for the loop's groups while it has no sync helper. (When a
    committer thread made every write this way, one call instead of two was +4.7%: each call
    into the kernel cost it the GIL back, behind the busy event loop.)"""
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
