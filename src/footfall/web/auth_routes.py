"""Sign-in, sign-out and first-start setup pages.

    GET  /setup    on a fresh instance (no accounts), the form that makes the owner account;
                   afterwards it redirects to /login, and POST /setup is 404
    GET  /login    the sign-in form (?next=/path comes back there afterwards)
    POST /login    email, password, csrf_token, next -> 303 with the session cookie;
                   401 wrong name or password, 403 bad CSRF token, 429 too many failures
    POST /logout   csrf_token -> 303 to /login, session cookie deleted
    GET  /account  who is signed in, a sign-out button, the change-password form
    POST /account/password   current, password, confirm, csrf_token -> 303 back; the user's
                   other sessions end (a new cookie keeps this one)

The pages are standalone (their CSS inline, nothing fetched from anywhere) so they work before
the dashboard's assets do and cannot be framed. Client addresses are used for rate limits
only, in memory; nothing here logs them or the names tried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import MediaType, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect

from footfall import manage
from footfall.runtime import Runtime
from footfall.web import auth
from footfall.web.accounts import MIN_PASSWORD, ROLE_OWNER, check_password, normalize_login, verify_password

_TEMPLATES = Environment(
    loader=PackageLoader("footfall.web", "templates"), autoescape=select_autoescape(["html"]), trim_blocks=True,
    lstrip_blocks=True,
)
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # Nothing but our own inline style; forms post only to us; never in a frame (clickjacking).
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
EXPIRED_FORM = "This form expired or did not come from this site. Please try again."


def _field(form: Any, name: str, limit: int = 2048) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _redirect(path: str) -> Redirect:
    return Redirect(path, status_code=303, headers={"Cache-Control": "no-store"})


def auth_handlers(rt: Runtime) -> list[HTTPRouteHandler]:
    """The route handlers, bound to one runtime."""
    limiter = auth.LoginLimiter(rt.settings.login_failures_per_15min)

    def page(request: Request[Any, Any, Any], template: str, status: int = 200,
             headers: dict[str, str] | None = None, **context: Any) -> Response[Any]:
        html = _TEMPLATES.get_template(template).render(
            csrf_token=auth.csrf_token(request), min_password=MIN_PASSWORD, **context
        )
        response: Response[Any] = Response(
            content=html, status_code=status, media_type=MediaType.HTML, headers={**_PAGE_HEADERS, **(headers or {})}
        )
        return auth.finish(request, response)

    @get("/login", include_in_schema=False)
    async def login_page(request: Request[Any, Any, Any], next: str | None = None) -> Response[Any]:
        if not rt.accounts.has_users:
            return _redirect(auth.SETUP_PATH)
        target = auth.local_path(next)
        if auth.current_user(request) is not None:
            return _redirect(target)
        notice = "You are signed out." if request.query_params.get("signed_out") else None
        return page(request, "auth/login.html", next=target, email="", error=None, notice=notice)

    @post("/login", include_in_schema=False)
    async def login(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        email, password = _field(form, "email", 254), _field(form, "password", 4096)
        target = auth.local_path(_field(form, "next"))

        def again(status: int, error: str, headers: dict[str, str] | None = None) -> Response[Any]:
            return page(request, "auth/login.html", status, headers, next=target, email=email, error=error, notice=None)

        if not auth.csrf_valid(request, _field(form, auth.CSRF_FIELD)):
            return again(403, EXPIRED_FORM)
        ip, account = auth.request_ip(request), email.strip().lower()
        wait = limiter.wait(ip, account)
        if wait:
            minutes = max(1, round(wait / 60))
            return again(429, f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                         {"Retry-After": str(wait)})
        user = rt.accounts.by_login(email)
        if not await asyncio.to_thread(verify_password, user, password) or user is None:
            limiter.failed(ip, account)
            return again(401, "Wrong email or password.")
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        await asyncio.to_thread(rt.store.record_login, user.id, now)
        response = _redirect(target)
        auth.start_session(request, response, user)
        return response

    @post("/logout", include_in_schema=False)
    async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
        if auth.current_user(request) is not None:
            await auth.check_csrf(request)
        response = _redirect(auth.LOGIN_PATH + "?signed_out=1")
        auth.end_session(request, response)
        return response

    @get("/setup", include_in_schema=False)
    async def setup_page(request: Request[Any, Any, Any]) -> Response[Any]:
        if rt.accounts.has_users:
            return _redirect(auth.LOGIN_PATH)
        return page(request, "auth/setup.html", email="", error=None)

    @post("/setup", include_in_schema=False)
    async def setup(request: Request[Any, Any, Any]) -> Response[Any]:
        if rt.accounts.has_users:
            raise NotFoundException("setup is done: sign in at /login")
        form = await request.form()
        email, password, confirm = _field(form, "email", 254), _field(form, "password"), _field(form, "confirm")

        def again(status: int, error: str) -> Response[Any]:
            return page(request, "auth/setup.html", status, email=email, error=error)

        if not auth.csrf_valid(request, _field(form, auth.CSRF_FIELD)):
            return again(403, EXPIRED_FORM)
        try:
            normalize_login(email)
            check_password(password)
        except ValueError as exc:
            return again(422, str(exc).capitalize() + ".")
        if password != confirm:
            return again(422, "The two passwords differ.")
        try:
            await asyncio.to_thread(manage.users_add, rt.manage, email, password, ROLE_OWNER, True)
        except manage.Conflict:  # someone finished setup first
            raise NotFoundException("setup is done: sign in at /login") from None
        except manage.ManageError as exc:
            return again(422, str(exc))
        user = rt.accounts.by_login(email)
        assert user is not None, "users_add refreshes the accounts"
        response = _redirect("/")
        auth.start_session(request, response, user)
        return response

    @get("/account", include_in_schema=False)
    async def account_page(request: Request[Any, Any, Any]) -> Response[Any]:
        user = auth.current_user(request)
        if user is None:
            return auth.sign_in_redirect(request)
        changed = request.query_params.get("changed")
        notice = "Your password is changed; other sessions are signed out." if changed else None
        return page(request, "auth/account.html", user=user, error=None, notice=notice)

    @post("/account/password", include_in_schema=False)
    async def change_password(request: Request[Any, Any, Any]) -> Response[Any]:
        user = auth.current_user(request)
        if user is None:
            return auth.sign_in_redirect(request)
        await auth.check_csrf(request)
        form = await request.form()
        current, password, confirm = _field(form, "current", 4096), _field(form, "password"), _field(form, "confirm")

        def again(status: int, error: str, headers: dict[str, str] | None = None) -> Response[Any]:
            return page(request, "auth/account.html", status, headers, user=user, error=error, notice=None)

        # Guessing the current password from a stolen session is held back like sign-in is.
        ip = auth.request_ip(request)
        wait = limiter.wait(ip, user.email)
        if wait:
            return again(429, "Too many wrong passwords. Try again later.", {"Retry-After": str(wait)})
        if not await asyncio.to_thread(verify_password, user, current):
            limiter.failed(ip, user.email)
            return again(401, "The current password is wrong.")
        try:
            check_password(password)
        except ValueError as exc:
            return again(422, str(exc).capitalize() + ".")
        if password != confirm:
            return again(422, "The two new passwords differ.")
        await asyncio.to_thread(manage.users_passwd, rt.manage, user.email, password)
        renewed = rt.accounts.user(user.id)
        response = _redirect("/account?changed=1")
        if renewed is not None:
            auth.start_session(request, response, renewed)
        return response

    return [login_page, login, logout, setup_page, setup, account_page, change_password]
