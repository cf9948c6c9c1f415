"""Footfall's app plus a bare ASGI endpoint, in one uvicorn process, for the ingest comparison.

    python benchmarks/asgi_wrapper.py --data-dir D --port P

Builds the app exactly as `footfall serve` does (footfall/server.py: settings, logging,
`Runtime`, `create_app`, the same uvicorn options and protocol) and wraps it in an ASGI callable that
answers `POST /bare` itself: read the whole body, send 202 with an empty body. Everything
else, lifespan included, goes to Footfall. So the bare route and the ingest routes share the
process, the event loop, uvicorn, the settings and the background threads and processes (spool
rotation, the spool's sync helper, writer), and the ratio between them is the cost of Footfall's request handling alone.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from footfall import log as logsetup
from footfall.app import create_app
from footfall.config import load_settings
from footfall.runtime import Runtime
from footfall.server import uvicorn_options

BARE_PATH = "/bare"
_BARE_START = {
    "type": "http.response.start",
    "status": 202,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"0")],
}
_BARE_BODY = {"type": "http.response.body", "body": b"", "more_body": False}


async def bare(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body", False):
            break
    await send(_BARE_START)
    await send(_BARE_BODY)


def wrap(app: Any) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == BARE_PATH:
            await bare(receive, send)
        else:
            await app(scope, receive, send)

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = load_settings(data_dir=args.data_dir, port=args.port)
    logsetup.setup(settings.log_level, settings.log_path)
    rt = Runtime(settings)
    try:
        app = create_app(rt)
        uvicorn.run(wrap(app), host=settings.host, port=settings.port, **uvicorn_options(app))
    finally:
        rt.close()


if __name__ == "__main__":
    main()
