"""The bounded queue, the counters, and delivery with retries: what the threaded and the asyncio
clients share. Only the waiting differs between them (a thread sleeps, a task awaits).

Every queued record ends in exactly one counter: `sent` (the server accepted it), `rejected`
(the server refused that record alone: retrying cannot help), or `dropped_failed` (the whole
request failed for good, or retries ran out, or the client closed first). Records refused at the
door because the queue was full are `dropped_queue_full`; they were never queued.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from footfall_client.records import Record, batch_bodies, encodable
from footfall_client.transport import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, Backoff, BatchResult, FootfallError

log = logging.getLogger("footfall_client")


@dataclass(frozen=True)
class Stats:
    """A snapshot of a client's counters (see the module doc)."""

    queued: int
    sent: int
    rejected: int
    dropped_queue_full: int
    dropped_failed: int
    retries: int
    requests: int
    last_error: str | None


class Batcher:
    def __init__(self, batch_size: int, max_queue: int, max_retries: int, backoff: Backoff) -> None:
        if not 1 <= batch_size <= MAX_BATCH_RECORDS:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_RECORDS}")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.backoff = backoff
        self.reset()

    def reset(self) -> None:
        """Fresh state (also in a forked child: its parent still sends what was queued)."""
        self.lock = threading.Lock()
        self.settled_cond = threading.Condition(self.lock)
        self.queue: deque[Record] = deque()
        self.closed = False
        self.enqueued = self.settled = 0
        self.sent = self.rejected = self.dropped_queue_full = self.dropped_failed = 0
        self.retries = self.requests = 0
        self.last_error: str | None = None
        self.deadline: float | None = None  # monotonic time after which no retry starts (closing)

    def put(self, record: Record) -> int:
        """Queue a record without ever blocking; returns the queue length, 0 if it was dropped."""
        with self.lock:
            queue = self.queue
            if self.closed or len(queue) >= self.max_queue:
                self.dropped_queue_full += 1
                return 0
            queue.append(record)
            self.enqueued += 1
            return len(queue)

    def take(self) -> list[Record]:
        with self.lock:
            queue = self.queue
            return [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]

    def bodies(self, records: list[Record]) -> list[tuple[bytes, int]]:
        """Request bodies for records; a record JSON cannot encode (a property that is not a
        string, number or boolean) is dropped and counted, and the rest still go."""
        try:
            return batch_bodies(records, MAX_BATCH_BYTES)
        except (TypeError, ValueError):
            good = [r for r in records if encodable(r)]
            self.gave_up(len(records) - len(good), "a record could not be encoded as JSON")
            return batch_bodies(good, MAX_BATCH_BYTES) if good else []

    def stats(self) -> Stats:
        with self.lock:
            return Stats(len(self.queue), self.sent, self.rejected, self.dropped_queue_full, self.dropped_failed,
                         self.retries, self.requests, self.last_error)

    # -- outcomes ---------------------------------------------------------------------------

    def delivered(self, count: int, result: BatchResult) -> None:
        if result.rejected:
            first = result.rejected[0]
            self.last_error = f"record rejected: {first.get('error')} (field {first.get('field')})"
            log.warning("Footfall rejected %d of %d records; first: %s", len(result.rejected), count, first)
        self._settle(count, sent=count - len(result.rejected), rejected=len(result.rejected))

    def gave_up(self, count: int, error: FootfallError | str) -> None:
        self.last_error = str(error)
        log.warning("Footfall client dropped %d records: %s", count, error)
        self._settle(count, failed=count)

    def drop_leftovers(self, reason: str) -> None:
        with self.lock:
            leftover = len(self.queue)
            self.queue.clear()
        if leftover:
            self.gave_up(leftover, reason)

    def _settle(self, count: int, sent: int = 0, rejected: int = 0, failed: int = 0) -> None:
        with self.lock:
            self.sent += sent
            self.rejected += rejected
            self.dropped_failed += failed
            self.settled += count
            self.settled_cond.notify_all()

    def retry_delay(self, attempt: int, error: FootfallError) -> float | None:
        """Seconds to wait before try `attempt + 1`, or None to give up."""
        if not error.retryable or attempt > self.max_retries:
            return None
        delay = self.backoff.delay(attempt, error)
        if self.deadline is not None and time.monotonic() + delay > self.deadline:
            return None
        return delay

    # -- delivery -------------------------------------------------------------------------

    def deliver(self, send: Callable[[bytes], BatchResult], body: bytes, count: int,
                wait: Callable[[float], object]) -> None:
        """Send one body, retrying as the policy says; blocks the calling thread."""
        for attempt in itertools.count(1):
            self.requests += 1
            try:
                result = send(body)
            except Exception as exc:  # the sending thread must outlive any failure
                delay = self._failed(exc, attempt, count)
                if delay is None:
                    return
                wait(delay)
                continue
            self.delivered(count, result)
            return

    async def deliver_async(self, send: Callable[[bytes], Awaitable[BatchResult]], body: bytes, count: int,
                            wait: Callable[[float], Awaitable[object]]) -> None:
        """`deliver` for a task: the same policy, awaiting instead of blocking."""
        for attempt in itertools.count(1):
            self.requests += 1
            try:
                result = await send(body)
            except Exception as exc:  # the sending task must outlive any failure
                delay = self._failed(exc, attempt, count)
                if delay is None:
                    return
                await wait(delay)
                continue
            self.delivered(count, result)
            return

    def _failed(self, exc: Exception, attempt: int, count: int) -> float | None:
        """After failed try `attempt`: the seconds to wait before the next, or None when the
        records are given up on (counted here)."""
        error = as_error(exc)
        delay = self.retry_delay(attempt, error)
        if delay is None:
            self.gave_up(count, error)
        else:
            self._retrying(error, delay)
        return delay

    def _retrying(self, error: FootfallError, delay: float) -> None:
        self.retries += 1
        self.last_error = str(error)
        log.info("Footfall request failed (%s); retrying in %.2f s", error, delay)


def as_error(exc: Exception) -> FootfallError:
    """A transport's FootfallError as it is; anything else is a bug, not worth retrying."""
    if isinstance(exc, FootfallError):
        return exc
    log.error("Footfall client: unexpected error while sending", exc_info=exc)
    return FootfallError(f"unexpected {type(exc).__name__}: {exc}", retryable=False)


def raise_rejected(result: BatchResult) -> None:
    """Sync mode: a record the server refused is the caller's error."""
    if result.rejected:
        first = result.rejected[0]
        raise FootfallError(f"record rejected: {first.get('error')}", 422, field=first.get("field"))
