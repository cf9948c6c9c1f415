"""`AsyncFootfall`: the same client for asyncio apps. `await client.pageview(...)` queues (it
never waits on the network); a task on the running loop sends batches, the blocking HTTP call
offloaded to a thread so the loop never stalls. `sync=True` awaits the request and raises.

`enqueue()` is a plain method, so ASGI middleware can queue a record without awaiting.
Await `close()` on shutdown (e.g. in the app's lifespan); records still queued when the
interpreter exits without it are sent from the atexit hook, blocking, for up to `exit_timeout`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import threading
import time
import weakref
from typing import Any

from footfall_client import records
from footfall_client.batching import Batcher, Stats, raise_rejected
from footfall_client.records import PropValue, Record
from footfall_client.transport import Backoff, BatchResult, Transport


class AsyncFootfall:
    """As `Footfall`, for asyncio: the same options and methods, awaited."""

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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None  # set after each delivered or dropped body
        self._stopping = False
        _live.add(self)

    async def pageview(
        self,
        url: str,
        visitor_ip: str,
        user_agent: str,
        referrer: str | None = None,
        timestamp: dt.datetime | float | None = None,
        **fields: Any,
    ) -> bool:
        record = records.pageview(url, visitor_ip, user_agent, referrer, timestamp, **fields)
        return await self._send_now(record) if self.sync else self.enqueue(record)

    async def event(
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
        record = records.event(name, url, properties, visitor_ip, user_agent, timestamp, **fields)
        return await self._send_now(record) if self.sync else self.enqueue(record)

    def enqueue(self, record: Record) -> bool:
        """Queue a record without awaiting; safe from the loop's thread or any other."""
        length = self._batcher.put(record)
        if not length:
            return False
        if self._task is None or self._task.done():
            self._start()  # first use, or a new loop (the last one's task ended with it)
        if length >= self._batcher.batch_size:
            self._wake_up()
        return True

    @property
    def stats(self) -> Stats:
        return self._batcher.stats()

    async def flush(self, timeout: float | None = None) -> bool:
        """As `Footfall.flush`, awaited."""
        batcher = self._batcher
        target = batcher.enqueued
        deadline = None if timeout is None else time.monotonic() + timeout
        while batcher.settled < target:
            if self._task is None or self._task.done() or self._progress is None:
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._progress.clear()
            self._wake_up()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)
        return True

    async def close(self, timeout: float | None = None) -> None:
        """As `Footfall.close`, awaited."""
        batcher = self._batcher
        with batcher.lock:
            if batcher.closed:
                return
            batcher.closed = True
        wait = self.exit_timeout if timeout is None else timeout
        batcher.deadline = time.monotonic() + wait
        self._stopping = True
        if self._task is not None:
            self._wake_up()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), wait + 1.0)
            except TimeoutError:
                self._task.cancel()
        batcher.drop_leftovers("closed before the records could be sent")
        await asyncio.to_thread(self._transport.close)
        _live.discard(self)

    async def __aenter__(self) -> AsyncFootfall:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the sending task ----------------------------------------------------------------

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # queued from a thread with no loop: the task starts on the next call from the loop
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._wake, self._progress = asyncio.Event(), asyncio.Event()
        self._task = loop.create_task(self._run(), name="footfall-client")

    def _wake_up(self) -> None:
        if self._wake is None or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        assert self._wake is not None and self._progress is not None
        batcher = self._batcher
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            while batch := batcher.take():
                for body, count in batcher.bodies(batch):
                    await batcher.deliver_async(self._post, body, count, asyncio.sleep)
                    self._progress.set()
            if stopping:
                return

    async def _post(self, body: bytes) -> BatchResult:
        return await asyncio.to_thread(self._transport.send, body)

    async def _send_now(self, record: Record) -> bool:
        self._batcher.requests += 1
        raise_rejected(await self._post(records.encode_batch([record])))
        self._batcher.sent += 1
        return True

    def _send_at_exit(self) -> None:
        """The loop is gone: send what is left from this thread, blocking, within exit_timeout."""
        batcher = self._batcher
        with batcher.lock:
            if batcher.closed:
                return
            batcher.closed = True
        batcher.deadline = time.monotonic() + self.exit_timeout
        while batch := batcher.take():
            for body, count in batcher.bodies(batch):
                batcher.deliver(self._transport.send, body, count, time.sleep)
        self._transport.close()


_live: weakref.WeakSet[AsyncFootfall] = weakref.WeakSet()


def _send_all_at_exit() -> None:
    for client in list(_live):
        client._send_at_exit()


atexit.register(_send_all_at_exit)
