"""Small Flask, FastAPI, Litestar and Django apps with Footfall's middleware, served for real on loopback
(tests/test_client_middleware.py), and called in-process by benchmarks/bench_middleware.py.

Every app has the same pages: `/` and `/pricing` (HTML), `/api/data` (JSON), `/static/app.css`
(a static asset), `/form` (HTML, also for POST), `/missing` (404 HTML), `/moved` (a redirect)
and `/private` (HTML, which the tests' predicate rejects).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from litestar import Response as LitestarResponse  # the Litestar app's handlers are annotated with these
from litestar.response import Redirect

PAGE = "<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1></body></html>"


def not_private(path: str) -> bool:
    return not path.startswith("/private")


# -- Flask (WSGI) ------------------------------------------------------------------------------


def flask_app(client: Any | None, **options: Any) -> Any:
    """A Flask app behind one trusted proxy (werkzeug's ProxyFix), with the middleware when
    `client` is given."""
    from flask import Flask, redirect
    from footfall_client.wsgi import FootfallMiddleware
    from werkzeug.middleware.proxy_fix import ProxyFix

    app = Flask(__name__)
    app.add_url_rule("/", "home", lambda: PAGE)
    app.add_url_rule("/pricing", "pricing", lambda: PAGE)
    app.add_url_rule("/private", "private", lambda: PAGE)
    app.add_url_rule("/down/<int:n>", "down", lambda n: PAGE)
    app.add_url_rule("/form", "form", lambda: PAGE, methods=["GET", "POST"])
    app.add_url_rule("/api/data", "data", lambda: {"ok": True})
    app.add_url_rule("/static/app.css", "css", lambda: ("body{}", 200, {"Content-Type": "text/css"}))
    app.add_url_rule("/missing", "missing", lambda: (PAGE, 404))
    app.add_url_rule("/moved", "moved", lambda: redirect("/"))
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    if client is not None:
        app.wsgi_app = FootfallMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, client, predicate=lambda environ: not_private(environ["PATH_INFO"]), **options
        )
    return app


@contextlib.contextmanager
def serve_wsgi(app: Any, port: int) -> Iterator[None]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(10)


# -- FastAPI (ASGI) ------------------------------------------------------------------------------


def fastapi_app(client: Any | None, **options: Any) -> Any:
    """A FastAPI app with the middleware when `client` is given; an AsyncFootfall client is
    closed (its queue sent) by the app's lifespan, as the README shows."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
    from footfall_client.asgi import FootfallMiddleware

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield
        close = getattr(client, "close", None)
        if close is not None and asyncio.iscoroutinefunction(close):
            await close()

    async def page() -> str:  # async handlers: no thread-pool hop, so the benchmark sees the middleware
        return PAGE

    async def data() -> JSONResponse:
        return JSONResponse({"ok": True})

    async def css() -> PlainTextResponse:
        return PlainTextResponse("body{}", media_type="text/css")

    async def missing() -> HTMLResponse:
        return HTMLResponse(PAGE, status_code=404)

    async def moved() -> RedirectResponse:
        return RedirectResponse("/")

    app = FastAPI(lifespan=lifespan)
    for path in ("/", "/pricing", "/private"):
        app.get(path, response_class=HTMLResponse)(page)
    app.api_route("/form", methods=["GET", "POST"], response_class=HTMLResponse)(page)
    app.get("/api/data")(data)
    app.get("/static/app.css")(css)
    app.get("/missing")(missing)
    app.get("/moved")(moved)
    if client is not None:
        app.add_middleware(
            FootfallMiddleware, client=client, predicate=lambda scope: not_private(scope["path"]), **options
        )
    return app


def _page() -> str:
    return PAGE


def _data() -> dict[str, bool]:
    return {"ok": True}


def _css() -> str:
    return "body{}"


def _missing() -> LitestarResponse[str]:
    return LitestarResponse(PAGE, status_code=404)


def _moved() -> Redirect:
    return Redirect("/")


def litestar_app(client: Any | None, **options: Any) -> Any:
    """A Litestar app, the middleware added as Litestar's own middleware list takes it."""
    from footfall_client.asgi import FootfallMiddleware
    from litestar import Litestar, MediaType, get, route
    from litestar.middleware import DefineMiddleware

    html: dict[str, Any] = {"media_type": MediaType.HTML, "sync_to_thread": False}
    handlers = [
        get(["/", "/pricing", "/private"], **html)(_page),
        route("/form", http_method=["GET", "POST"], status_code=200, **html)(_page),
        get("/api/data", sync_to_thread=False)(_data),
        get("/static/app.css", media_type="text/css", sync_to_thread=False)(_css),
        get("/missing", **html)(_missing),
        get("/moved", sync_to_thread=False)(_moved),
    ]
    middleware = []
    if client is not None:
        predicate = lambda scope: not_private(scope["path"])  # noqa: E731
        middleware = [DefineMiddleware(FootfallMiddleware, client=client, predicate=predicate, **options)]
    return Litestar(route_handlers=handlers, middleware=middleware, openapi_config=None)


@contextlib.contextmanager
def serve_asgi(app: Any, port: int) -> Iterator[None]:
    """uvicorn in a thread, with its defaults: X-Forwarded-For is trusted from 127.0.0.1."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(15)


# -- Django ------------------------------------------------------------------------------------


def _django_page(request: Any) -> Any:
    from django.http import HttpResponse, HttpResponseRedirect, JsonResponse

    path = request.path
    if path == "/api/data":
        return JsonResponse({"ok": True})
    if path == "/static/app.css":
        return HttpResponse("body{}", content_type="text/css")
    if path == "/missing":
        return HttpResponse(PAGE, status=404)
    if path == "/moved":
        return HttpResponseRedirect("/")
    return HttpResponse(PAGE)


def _urlpatterns() -> list[Any]:
    from django.urls import re_path

    return [re_path(r"^.*$", _django_page)]


def __getattr__(name: str) -> Any:
    # Django reads ROOT_URLCONF's `urlpatterns` (this module's) only once configured.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


def configure_django() -> None:
    """Minimal settings, once per process (Django's settings are global)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="tests-only",
            ALLOWED_HOSTS=["example.com"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            USE_TZ=True,
        )
        django.setup()


def django_app(footfall: dict[str, Any] | None, asgi: bool = False) -> Callable[..., Any]:
    """Django's WSGI (or ASGI) handler, with the middleware configured by `footfall`
    (settings.FOOTFALL) when given. The handler reads MIDDLEWARE and FOOTFALL when it is built."""
    configure_django()
    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler

    settings.MIDDLEWARE = ["footfall_client.django.FootfallMiddleware"] if footfall is not None else []
    settings.FOOTFALL = {"PREDICATE": lambda request: not_private(request.path), **(footfall or {})}
    return ASGIHandler() if asgi else WSGIHandler()
