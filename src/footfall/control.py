"""The control socket: how management commands reach a running server.

DuckDB admits one writing process per file. While `footfall serve` runs it owns the file and
listens on `<data-dir>/footfall.sock` (mode 0600: only the owner may manage); a CLI command
sends one JSON line `{"op": ..., "args": {...}}` and reads one JSON line back. With no server
listening, the CLI opens the store itself and runs the same operation (see `manage`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from footfall import manage
from footfall.config import Settings
from footfall.store.base import StoreError

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20


async def serve(path: Path, ctx: manage.Context) -> asyncio.AbstractServer:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a server that was killed

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            reply = await asyncio.to_thread(_answer, ctx, line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path=str(path), limit=MAX_LINE)
    finally:
        os.umask(old_umask)
    return server


def _answer(ctx: manage.Context, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        op, args = request["op"], request.get("args") or {}
        return {"ok": True, "result": manage.run(ctx, op, args)}
    except manage.ManageError as exc:
        return {"ok": False, "error": str(exc)}
    except (ValueError, KeyError, TypeError) as exc:
        return {"ok": False, "error": f"bad control request: {exc}"}
    except Exception as exc:  # reported to the caller; the server keeps running
        log.exception("control operation failed")
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _ask_server(path: Path, op: str, args: dict[str, Any]) -> dict[str, Any] | None:
    """The server's reply, or None when no server listens on the socket."""
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        return None
    with sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
        stream.flush()
        line = stream.readline(MAX_LINE)
    if not line:
        raise manage.ManageError("the server closed the control connection without answering")
    reply: dict[str, Any] = json.loads(line)
    return reply


def call(settings: Settings, op: str, args: dict[str, Any], wait_seconds: float = 15.0) -> Any:
    """Run a management operation on the server if one runs, else on the store directly."""
    from footfall.store.duckdb import DuckDBStore

    deadline = time.monotonic() + wait_seconds
    while True:
        reply = _ask_server(settings.control_socket, op, args)
        if reply is not None:
            if not reply.get("ok"):
                raise manage.ManageError(str(reply.get("error")))
            return reply.get("result")
        try:
            store = DuckDBStore.for_settings(settings, open_attempts=3)
        except StoreError:
            # A server is starting (it holds the file but is not listening yet): wait for it.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        try:
            return manage.run(manage.Context(store), op, args)
        finally:
            store.close()
