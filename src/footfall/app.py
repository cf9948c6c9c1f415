"""The HTTP application: Litestar routes over one `Runtime`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.params import Parameter

from footfall import __version__, control, tracker
from footfall.api.sites import site_handlers
from footfall.api.stats import stats_handlers
from footfall.ingest import (
    ai_fetch,
    browser_api,
    collect_api,
    plausible_api,
    posthog_api,
    public_api,
    segment_api,
    server_api,
    track_api,
    umami_api,
)
from footfall.ingest.asgi import FastIngest, IngestRoute, Receive, run_route
from footfall.ingest.http import Accepted, IngestError
from footfall.openapi import patch_openapi
from footfall.runtime import Runtime
from footfall.web import auth
from footfall.web.auth_routes import auth_handlers
from footfall.web.dashboard import dashboard_handlers

log = logging.getLogger(__name__)

SALT_ROTATION_SECONDS = 60.0

# The public endpoints are called from any site's pages: any origin may post, nothing is read
# back but {"ok": true}, and no credentials are involved.
_CORS = {"Access-Control-Allow-Origin": "*"}
_PREFLIGHT = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


def _json(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(content=body, status_code=status, media_type="application/json", headers=headers)


def ingest_routes(rt: Runtime) -> dict[str, IngestRoute]:
    """Every ingest route, once: path, body limit and the contract's work."""

    # Seed 000 names the visitor in the body; the caller's own IP is not used.
    def pageview(_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return server_api.ingest_one(rt, "pageview", headers, body)

    def event(_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return server_api.ingest_one(rt, "event", headers, body)

    def batch(_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return server_api.ingest_batch(rt, headers, body)

    def browser_pageview(ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return browser_api.ingest(rt, "pageview", ip, headers, body)

    def browser_event(ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return browser_api.ingest(rt, "event", ip, headers, body)

    def segment_batch(ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return segment_api.ingest_batch(rt, ip, headers, body)

    def posthog_capture(ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return posthog_api.ingest(rt, ip, headers, body)

    def umami_send(ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return umami_api.send(rt, ip, headers, body)

    def plausible_event(ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return plausible_api.event(rt, ip, headers, body)

    def server_track(_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return track_api.track(rt, headers, body)

    def server_identify(_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return track_api.identify(rt, headers, body)

    def collect_pageview(ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return collect_api.collect(rt, "pageview", ip, headers, body)

    def collect_event(ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        return collect_api.collect(rt, "event", ip, headers, body)

    return {
        "/api/ingest/server/pageview": IngestRoute(server_api.MAX_BODY, pageview),
        "/api/ingest/server/event": IngestRoute(server_api.MAX_BODY, event),
        "/api/ingest/server/batch": IngestRoute(server_api.MAX_BATCH_BODY, batch),
        "/ingest": IngestRoute(browser_api.MAX_BODY, browser_pageview, headers=_CORS),
        "/ingest/event": IngestRoute(browser_api.MAX_BODY, browser_event, headers=_CORS),
        "/v1/batch": IngestRoute(segment_api.MAX_BODY, segment_batch),
        "/api/send": IngestRoute(umami_api.MAX_BODY, umami_send, headers=_CORS),
        "/api/event": IngestRoute(plausible_api.MAX_BODY, plausible_event, plausible_api.error_body, headers=_CORS),
        **{path: IngestRoute(posthog_api.MAX_BODY, posthog_capture) for path in ("/batch/", "/capture/", "/i/v0/e/")},
        "/api/v1/collect/pageview": IngestRoute(collect_api.MAX_BODY, collect_pageview, collect_api.error_body),
        "/api/v1/collect/event": IngestRoute(collect_api.MAX_BODY, collect_event, collect_api.error_body),
        # Seed 004: limited per secret key, not per caller address.
        "/api/v1/track": IngestRoute(track_api.MAX_BODY, server_track, rate_limited=False),
        "/api/v1/identify": IngestRoute(track_api.MAX_BODY, server_identify, rate_limited=False),
    }


def create_app(rt: Runtime) -> FastIngest:
    routes = ingest_routes(rt)

    async def run(request: Request[Any, Any, Any], route: IngestRoute) -> Response[bytes]:
        peer = request.client.host if request.client else None
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, body, extra = await run_route(rt, route, peer, headers, cast(Receive, request.receive))
        return _json(status, body, extra)

    def declare(path: str, status: int, operation_id: str) -> HTTPRouteHandler:
        """A fast route as Litestar sees it: for the OpenAPI document, and as the way in should
        FastIngest ever be bypassed."""

        async def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
            return await run(request, routes[path])

        handler.__name__ = operation_id
        return post(path, status_code=status, operation_id=operation_id)(handler)

    declared = [
        declare("/api/ingest/server/pageview", 202, "ingestServerPageview"),
        declare("/api/ingest/server/event", 202, "ingestServerEvent"),
        declare("/api/ingest/server/batch", 202, "ingestServerBatch"),
        declare("/ingest", 202, "ingestBrowserPageview"),
        declare("/ingest/event", 202, "ingestBrowserEvent"),
        declare("/api/v1/collect/pageview", 200, "collectPageview"),
        declare("/api/v1/collect/event", 200, "collectEvent"),
        declare("/api/v1/track", 202, "serverTrack"),
        declare("/api/v1/identify", 202, "serverIdentify"),
        declare("/v1/batch", 200, "segmentBatch"),
        declare("/api/send", 200, "umamiSend"),
        declare("/api/event", 202, "plausibleEvent"),
        declare("/batch/", 200, "posthogBatch"),
        declare("/capture/", 200, "posthogCapture"),
        declare("/i/v0/e/", 200, "posthogEvents"),
    ]
    # (Litestar keeps paths without their trailing slash; PostHog's end in one.)
    assert {p for h in declared for p in h.paths} == {p.rstrip("/") for p in routes}, "every fast route is declared"

    @post("/api/sites/{site:str}/ingest/ai-fetch", status_code=202, operation_id="ingestAiFetch")
    async def ai_fetch_route(request: Request[Any, Any, Any], site: str) -> Response[bytes]:
        return await run(request, IngestRoute(ai_fetch.MAX_BODY, functools.partial(ai_fetch.ingest_ai_fetch, rt, site)))

    @post("/e/{code:str}", status_code=202, operation_id="trackPublic")
    async def public_track(request: Request[Any, Any, Any], code: str) -> Response[bytes]:
        work = functools.partial(public_api.track, rt, code)
        return await run(request, IngestRoute(public_api.MAX_BODY, work, rate_limited=False, headers=_CORS))

    @get("/api/v1/user-id", operation_id="serverUserId")
    async def server_user_id(request: Request[Any, Any, Any], visitor_id: str | None = Parameter(
            query="visitorId", default=None, description="The visitor id to resolve")) -> Response[bytes]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            return _json(200, track_api.user_id(rt, headers, visitor_id))
        except IngestError as exc:
            return _json(exc.status, exc.body(), exc.headers)

    @get("/js/footfall.js", include_in_schema=False)
    async def tracker_script() -> Response[bytes]:
        return Response(content=tracker.SCRIPT, media_type="application/javascript", headers=tracker.HEADERS)

    @get("/healthz", operation_id="health")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "uptime_seconds": round(time.time() - rt.started_at, 1)}

    @get("/readyz", operation_id="ready")
    async def readyz() -> Response[bytes]:
        try:
            report = await asyncio.to_thread(rt.readiness)
            ready = report["writer"]["last_error"] is None
        except Exception as exc:  # the store is not answering: not ready, and say why
            report, ready = {"error": f"{type(exc).__name__}: {exc}"}, False
        report["status"] = "ready" if ready else "not ready"
        return _json(200 if ready else 503, msgspec.json.encode(report))

    app: Litestar

    @get("/api/openapi.json", include_in_schema=False)
    async def openapi_document() -> dict[str, Any]:
        return patch_openapi(app.openapi_schema.to_schema())

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        control_server = await control.serve(rt.settings.control_socket, rt.manage)
        rt.spool.start_syncing()  # the sync helper starts now, not with the first request

        async def rotate_salts() -> None:
            while True:
                await asyncio.sleep(SALT_ROTATION_SECONDS)
                try:
                    await asyncio.to_thread(rt.rotate_salts)
                except Exception:
                    log.exception("salt rotation failed; will retry")

        rotation = asyncio.create_task(rotate_salts())
        try:
            yield
        finally:
            rotation.cancel()
            control_server.close()
            await control_server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                rt.settings.control_socket.unlink()
            # Here, not after uvicorn returns: uvicorn re-raises a caught SIGTERM once it has
            # shut down, which ends the process before any code after it runs.
            await asyncio.to_thread(rt.close)

    def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
        return _json(exc.status_code, IngestError(exc.status_code, str(exc.detail)).body(), exc.headers)

    def internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        log.exception("unhandled error", exc_info=exc)
        return _json(500, IngestError(500, "internal error").body())

    app = Litestar(
        route_handlers=[
            *declared, ai_fetch_route, public_track, server_user_id, tracker_script, healthz, readyz, openapi_document,
            *site_handlers(rt),
            *stats_handlers(rt),
            *auth_handlers(rt),
            *dashboard_handlers(rt),
        ],
        state=State({auth.RUNTIME_STATE: rt}),  # how web.auth's guards reach the runtime
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Footfall",
            version=__version__,
            description="Privacy-first web analytics with first-class server-side tracking.",
            path="/api/schema",
        ),
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        request_max_body_size=server_api.MAX_BATCH_BODY,
        logging_config=None,  # footfall.log configures logging once for the process
        debug=False,
    )
    pages_post_to = ("/e/", "/ingest", "/api/send", "/api/event")
    return FastIngest(rt, routes, app, preflight={p: {**_CORS, **_PREFLIGHT} for p in pages_post_to})
