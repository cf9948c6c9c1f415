"""`Footfall`: the threaded client. Calls queue a record and return at once; a background
thread sends batches (at `batch_size` records, every `flush_interval` seconds, on `flush()`,
and at exit), retrying what failed with backoff. `sync=True` sends in the caller's thread and
raises instead.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import threading
import time
import weakref
from typing import Any

from footfall_client import records
from footfall_client.batching import Batcher, Stats, raise_rejected
from footfall_client.records import PropValue, Record
from footfall_client.transport import Backoff, Transport


class Footfall:
    """Send pageviews and events to a Footfall server (`url`, e.g. "https://stats.example.com")
    with a token that has the `site.manage_data` scope."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        sync: bool = False,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        max_retries: int = 10,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        exit_timeout: float = 5.0,
    ) -> None:
        self.sync = sync
        self.flush_interval = flush_interval
        self.exit_timeout = exit_timeout
        self._transport = Transport(url, token, timeout)
        self._batcher = Batcher(batch_size, max_queue, max_retries, backoff or Backoff())
        self._fresh_threading()
        _live.add(self)

    def _fresh_threading(self) -> None:
        self._start_lock = threading.Lock()
        self._wake = threading.Event()  # a full batch, a flush, or close
        self._interrupt = threading.Event()  # cut a backoff wait short (close)
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- the API --------------------------------------------------------------------------

    def pageview(
        self,
        url: str,
        visitor_ip: str,
        user_agent: str,
        referrer: str | None = None,
        timestamp: dt.datetime | float | None = None,
        **fields: Any,
    ) -> bool:
        """Record a pageview of `url` by the visitor at `visitor_ip` with `user_agent`. Other
        server-API fields (language, session_id, page_id, properties, screen_width, dnt) go by
        keyword. Returns False if the record was dropped (queue full or client closed)."""
        return self.enqueue(records.pageview(url, visitor_ip, user_agent, referrer, timestamp, **fields))

    def event(
        self,
        name: str,
        url: str,
        properties: dict[str, PropValue] | None = None,
        *,
        visitor_ip: str | None = None,
        user_agent: str | None = None,
        timestamp: dt.datetime | float | None = None,
        **fields: Any,
    ) -> bool:
        """Record a custom event `name` on page `url`. Pass the visitor's address and agent to
        count it for that visitor; without them it belongs to one anonymous server visitor."""
        return self.enqueue(records.event(name, url, properties, visitor_ip, user_agent, timestamp, **fields))

    def enqueue(self, record: Record) -> bool:
        """Queue a built record (see `records`); never blocks. In sync mode, send it now."""
        if self.sync:
            self._send_now(record)
            return True
        length = self._batcher.put(record)
        if self._thread is None and length:
            self._start()
        if length >= self._batcher.batch_size:
            self._wake.set()
        return length > 0

    @property
    def stats(self) -> Stats:
        return self._batcher.stats()

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far and wait until each record is sent or given up on;
        False if `timeout` seconds passed first (e.g. the server is down and retries go on)."""
        batcher = self._batcher
        with batcher.lock:
            target = batcher.enqueued
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with batcher.settled_cond:
            while batcher.settled < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if self._thread is None or not self._thread.is_alive():
                    return False
                batcher.settled_cond.wait(left if left is not None else 1.0)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting records, send what is queued within `timeout` seconds (default
        `exit_timeout`), and count what could not be sent as `dropped_failed`."""
        batcher = self._batcher
        with batcher.lock:
            if batcher.closed:
                return
            batcher.closed = True
        wait = self.exit_timeout if timeout is None else timeout
        batcher.deadline = time.monotonic() + wait
        self._stopping = True
        self._wake.set()
        self._interrupt.set()
        if self._thread is not None:
            self._thread.join(wait + 1.0)
        batcher.drop_leftovers("closed before the records could be sent")
        self._transport.close()
        _live.discard(self)

    def __enter__(self) -> Footfall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the sending thread -----------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="footfall-client", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            while batch := self._batcher.take():
                for body, count in self._batcher.bodies(batch):
                    self._batcher.deliver(self._transport.send, body, count, self._backoff_wait)
            if stopping:
                return

    def _backoff_wait(self, seconds: float) -> None:
        if self._stopping:
            time.sleep(seconds)  # closing: retry_delay kept this within the deadline
        else:
            self._interrupt.wait(seconds)

    def _send_now(self, record: Record) -> None:
        self._batcher.requests += 1
        raise_rejected(self._transport.send(records.encode_batch([record])))
        self._batcher.sent += 1

    def _after_fork(self) -> None:
        # The parent keeps its queue, thread and connection; the child starts empty.
        self._batcher.reset()
        self._fresh_threading()
        self._transport.forget()


_live: weakref.WeakSet[Footfall] = weakref.WeakSet()


def _close_all() -> None:
    for client in list(_live):
        client.close()


def _reset_after_fork() -> None:
    for client in list(_live):
        client._after_fork()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_reset_after_fork)
