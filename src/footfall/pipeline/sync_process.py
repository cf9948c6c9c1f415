"""The spool's sync helper process: fdatasync what the server asks, answer, repeat.

Run by `syncer.SyncHelper` as `python -I -S sync_process.py FD`, so it imports only what it
needs from the standard library (a bare interpreter, ~10 MB). The protocol is described in
syncer.py.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys

REQUEST_HEAD = struct.Struct("<Q")
REQUEST_ENTRY = struct.Struct("<QB")
ANSWER = struct.Struct("<Qi")
# SCM_RIGHTS carries at most 253 descriptors a message (Linux's SCM_MAX_FD). A request names
# the segments written since the last sync: the active one and those sealed meanwhile, a few.
MAX_SEGMENTS = 253
_FD_BYTES = struct.calcsize("i")


def serve(fd: int) -> None:
    """The child's loop: sync what each request names, answer, until the socket closes."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group; the server's
    # graceful stop still needs its last syncs, and the closed socket ends this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    held: dict[int, int] = {}
    message_bytes = REQUEST_HEAD.size + MAX_SEGMENTS * REQUEST_ENTRY.size
    control_bytes = socket.CMSG_SPACE(MAX_SEGMENTS * _FD_BYTES)
    while True:
        message, ancillary, _, _ = sock.recvmsg(message_bytes, control_bytes)
        if not message:
            return
        passed: list[int] = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(data) - len(data) % _FD_BYTES
                passed += struct.unpack(f"{usable // _FD_BYTES}i", data[:usable])
        (seq,) = REQUEST_HEAD.unpack_from(message)
        error = 0
        kept: dict[int, int] = {}
        for offset in range(REQUEST_HEAD.size, len(message), REQUEST_ENTRY.size):
            segment, has_fd = REQUEST_ENTRY.unpack_from(message, offset)
            target = passed.pop(0) if has_fd else held.pop(segment)
            kept[segment] = target
            if not error:
                try:
                    os.fdatasync(target)
                except OSError as exc:
                    error = exc.errno or -1
        for stale in held.values():
            os.close(stale)
        held = kept
        sock.send(ANSWER.pack(seq, error))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
