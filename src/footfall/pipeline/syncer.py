"""The spool's sync helper: a small child process that makes the spool's writes durable.

Why a process. The event loop writes a group of records into the segment itself (a pwrite
into the page cache, a few microseconds), and only the fdatasync is slow (~0.1 ms, a device
flush). A thread that syncs must take the GIL back after every call into the kernel, and
behind a busy event loop that wait was longer than the sync itself (p50 0.31 ms for a synced
write in the server, 0.09 ms alone): the loop and the committer thread took turns. The helper
holds no GIL of ours: it syncs and answers on a socket, and the loop reads the answer as it
reads a request. Single-record ingest against the committer thread, 15 paired runs on a
noisy shared machine: median +3%, mean +9%, 11 of 15 not slower (benchmarks/README.md).

Protocol, over a SOCK_SEQPACKET socket pair (one message per request, at most one in flight):
- request: `seq` (u64), then per segment with unsynced writes its id (u64) and a flag (u8)
  saying whether its file descriptor rides along (SCM_RIGHTS, in the entries' order). The
  helper keeps the descriptors of the last request's segments and closes the others, and
  the parent mirrors that set, so a descriptor crosses once per segment in the usual case.
- answer: `seq` and an errno (0: every write made before the request was sent is durable).
The helper exits when the socket closes: the server stopped, or was killed.

The child's program is sync_process.py; this module is the server's end.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from footfall.pipeline.sync_process import ANSWER, MAX_SEGMENTS, REQUEST_ENTRY, REQUEST_HEAD

if TYPE_CHECKING:
    import asyncio

_PROGRAM = str(Path(__file__).with_name("sync_process.py"))


class SyncHelper:
    """The server's end of one helper process: requests go out from the event loop's
    thread, answers are read by the loop as it reads a socket (the spool keeps one in flight)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_answer: Callable[[SyncHelper, int, int], None],
        on_lost: Callable[[SyncHelper], None],
    ) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # -I -S: no site-packages, no environment: a bare interpreter (~10 MB) that
            # cannot pick up anything but this file.
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", _PROGRAM, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.loop = loop
        self._on_answer = on_answer
        self._on_lost = on_lost
        self._held: set[int] = set()  # the segments whose descriptors the helper holds
        self._retired = False
        loop.add_reader(ours.fileno(), self._readable)

    def request(self, seq: int, segments: list[tuple[int, int]]) -> None:
        """Ask for every write made so far to `segments` ((id, descriptor) pairs) to be
        synced; the answer will carry `seq`. Raises OSError if the helper is gone."""
        if len(segments) > MAX_SEGMENTS:
            raise OSError(f"{len(segments)} spool segments to sync at once, at most {MAX_SEGMENTS}")
        passed = [fd for number, fd in segments if number not in self._held]
        message = REQUEST_HEAD.pack(seq) + b"".join(
            REQUEST_ENTRY.pack(number, number not in self._held) for number, _ in segments
        )
        if passed:
            rights = struct.pack(f"{len(passed)}i", *passed)
            self.sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        else:
            self.sock.send(message)
        self._held = {number for number, _ in segments}

    def _readable(self) -> None:
        try:
            answer = self.sock.recv(ANSWER.size)
        except BlockingIOError:
            return
        except OSError:
            answer = b""
        if self._retired:  # stopped by `retire`: the socket's end, nothing more to hear
            self._close_socket()
            return
        if len(answer) != ANSWER.size:  # the helper exited (or was killed)
            self._on_lost(self)
            return
        seq, error = ANSWER.unpack(answer)
        self._on_answer(self, seq, error)

    def retire(self) -> None:
        """Stop the helper, from any thread. Its descriptors close with it; the socket is
        closed by the loop when it reads the end (or here, if the loop is closed)."""
        self._retired = True
        with contextlib.suppress(OSError):  # the helper may be gone already
            self.sock.shutdown(socket.SHUT_RDWR)
        if on_loop_thread(self.loop) or self.loop.is_closed():
            self._close_socket()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _close_socket(self) -> None:
        if self.sock.fileno() < 0:
            return
        if not self.loop.is_closed():
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the caller runs on `loop` (asyncio is imported here, in the server process
    only: the helper never needs it)."""
    import asyncio

    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
