"""`footfall serve`: open the data directory, offer a demo site on first start, run uvicorn."""

from __future__ import annotations

from typing import Any

import uvicorn
from rich.console import Console

from footfall import log as logsetup
from footfall import manage
from footfall.api.auth import SCOPES
from footfall.app import create_app
from footfall.config import Settings
from footfall.ingest.asgi import FastIngest
from footfall.ingest.protocol import ingest_protocol
from footfall.runtime import Runtime

DEMO_DOMAIN = "example.com"

UVICORN_OPTIONS: dict[str, Any] = {
    "access_log": False,  # uvicorn's access log carries client addresses and query strings
    "log_config": None,
    "server_header": False,
    # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1; Footfall trusts only
    # FOOTFALL_TRUSTED_PROXIES (see ingest.http.client_ip).
    "proxy_headers": False,
    "timeout_graceful_shutdown": 10,
}


def uvicorn_options(app: FastIngest) -> dict[str, Any]:
    """How uvicorn serves `app`: UVICORN_OPTIONS, and the protocol that answers the common
    ingest request below ASGI (see ingest/protocol.py)."""
    return {**UVICORN_OPTIONS, "http": ingest_protocol(app)}


def create_demo(rt: Runtime) -> str | None:
    """On an empty data directory, add example.com and a token for it; returns the secret."""
    if not rt.settings.demo_site or rt.store.list_sites() or rt.store.list_tokens():
        return None
    manage.sites_add(rt.manage, DEMO_DOMAIN)
    token = manage.tokens_create(rt.manage, "demo", list(SCOPES), [DEMO_DOMAIN])
    secret: str = token["token"]
    return secret


def run_server(settings: Settings) -> None:
    logsetup.setup(settings.log_level, settings.log_path)
    rt = Runtime(settings)
    try:
        secret = create_demo(rt)
        base = f"http://{settings.host}:{settings.port}"
        console = Console()
        console.print(f"[bold]Footfall[/bold] serving {settings.data_dir.resolve()} on {base}")
        if secret:
            console.print(f"  demo site   {DEMO_DOMAIN}")
            console.print("  API token   (shown once; store it now)")
            print(f"    {secret}", flush=True)
        console.print(f"  ingest      POST {base}/api/ingest/server/pageview | event | batch")
        console.print(f"  dashboard   {base}/")
        if not rt.accounts.has_users:
            console.print("              no accounts yet: the first visit asks for the owner account")
        console.print(f"  API docs    {base}/api/openapi.json")
        console.print(f"  health      {base}/healthz  {base}/readyz")
        app = create_app(rt)
        uvicorn.run(app, host=settings.host, port=settings.port, **uvicorn_options(app))
    finally:
        rt.close()  # already done by the app's shutdown, unless start-up failed
