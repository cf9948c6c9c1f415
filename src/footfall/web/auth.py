"""Dashboard sessions, CSRF tokens, sign-in rate limits, and the guards page routes call.

For the page routes (see web.dashboard):

    user = auth.current_user(request)              # a signed-in User, or None
    if user is None:
        return auth.sign_in_redirect(request)     # /setup on a fresh instance, else /login?next=…
    viewer = auth.viewer_for(request, site, token) # a signed-in user, or a live share link of `site`
    auth.csrf_token(request)                       # for every form: <input name="csrf_token" …>
    await auth.check_csrf(request)                 # first thing in every form POST: 403 if wrong

Sessions are stateless signed cookies: `user id . session version . issued at . session id .
HMAC-SHA256`, keyed by a random key kept in the store (`Store.cookie_key`), valid for
SESSION_DAYS. The user's session version is in the cookie: changing the password bumps it and
removing the user drops it, so either ends every session of that user at the next request.

CSRF tokens are HMACs, never stored: of the session id when signed in, else of a random
pre-session cookie (the sign-in and setup forms). A form posts it as `csrf_token` (or a script
sends it as `X-CSRF-Token`); SameSite=Lax cookies are the second line of defence. Litestar's
CSRFConfig is not used: it covers every unsafe route but those excluded by pattern, and the
token- and key-authenticated API and ingest routes must stay free of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import PermissionDeniedException
from litestar.response import Redirect

from footfall.ingest.http import client_ip, from_trusted_proxy
from footfall.ingest.ratelimit import TokenBuckets
from footfall.meta import ShareLink, Site, User
from footfall.web.accounts import MANAGING_ROLES, Accounts

if TYPE_CHECKING:
    from footfall.runtime import Runtime

# The app's state holds the runtime under this key (see app.create_app).
RUNTIME_STATE = "runtime"

SESSION_COOKIE = "ff_session"
PRE_SESSION_COOKIE = "ff_csrf"
SESSION_DAYS = 14
SESSION_SECONDS = SESSION_DAYS * 86_400
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

LOGIN_PATH = "/login"
SETUP_PATH = "/setup"

_USER_STATE = "footfall_user"
_NEW_PRE_SESSION = "footfall_new_csrf"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class Session(NamedTuple):
    user_id: int
    version: int
    issued_at: int
    sid: str  # random: what this session's CSRF tokens are bound to


class Viewer(NamedTuple):
    """Who is looking at a site's dashboard: a signed-in user, or a share link's visitor."""

    site: Site
    user: User | None = None
    share: ShareLink | None = None

    @property
    def read_only(self) -> bool:
        """Share links and viewer accounts see the page and change nothing."""
        return self.user is None or self.user.role not in MANAGING_ROLES


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    rt: Runtime = request.app.state[RUNTIME_STATE]
    return rt


def accounts_of(request: Request[Any, Any, Any]) -> Accounts:
    return runtime_of(request).accounts


# -- signing -------------------------------------------------------------------------------


def _subkey(key: bytes, purpose: str) -> bytes:
    """One key per use of the stored key, so a signature for one use is never valid for another."""
    return hmac.new(key, b"footfall/" + purpose.encode(), hashlib.sha256).digest()


def _mac(key: bytes, purpose: str, message: str) -> str:
    digest = hmac.new(_subkey(key, purpose), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def encode_session(key: bytes, user: User, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    payload = f"{user.id}.{user.session_version}.{issued}.{secrets.token_urlsafe(12)}"
    return f"{payload}.{_mac(key, 'session', payload)}"


def decode_session(key: bytes, value: str | None, now: float | None = None) -> Session | None:
    """The session a cookie holds if its signature is right and it has not expired."""
    if not value or len(value) > 200:
        return None
    payload, _, signature = value.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _mac(key, "session", payload).encode()):
        return None
    parts = payload.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts[:3]):
        return None
    session = Session(int(parts[0]), int(parts[1]), int(parts[2]), parts[3])
    age = (time.time() if now is None else now) - session.issued_at
    return session if -60 <= age < SESSION_SECONDS else None


def _session(request: Request[Any, Any, Any]) -> tuple[Session, User] | None:
    """The request's valid session and its user, looked up once per request."""
    state = request.state
    if _USER_STATE not in state:
        accounts = accounts_of(request)
        session = decode_session(accounts.cookie_key, request.cookies.get(SESSION_COOKIE))
        user = accounts.user(session.user_id) if session is not None else None
        # A removed user, or one whose password changed since: the session is over.
        valid = session is not None and user is not None and user.session_version == session.version
        state[_USER_STATE] = (session, user) if valid else None
    found: tuple[Session, User] | None = state[_USER_STATE]
    return found


# -- guards --------------------------------------------------------------------------------


def current_user(request: Request[Any, Any, Any]) -> User | None:
    found = _session(request)
    return None if found is None else found[1]


def site_for_share(request: Request[Any, Any, Any], token: str) -> Site | None:
    """The site a share link's token opens; None when unknown, revoked or its site is gone."""
    return accounts_of(request).site_for_share(token)


def viewer_for(request: Request[Any, Any, Any], site: Site, share_token: str | None = None) -> Viewer | None:
    """Who may read `site`'s dashboard: the signed-in user, else the share link whose token is
    given (or is the route's `token` path parameter) if it is live and for this site."""
    user = current_user(request)
    if user is not None:
        return Viewer(site, user=user)
    token = share_token if share_token is not None else request.path_params.get("token")
    if isinstance(token, str):
        link = accounts_of(request).share_link(token)
        if link is not None and link.site_id == site.id:
            return Viewer(site, share=link)
    return None


def local_path(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this server, else `default`: `next` never leads elsewhere."""
    if (
        not target or not target.startswith("/") or target.startswith("//") or "\\" in target
        or any(ord(c) < 0x20 for c in target) or len(target) > 2000
    ):
        return default
    return target


def sign_in_redirect(request: Request[Any, Any, Any]) -> Redirect:
    """Where a signed-out visitor of a page goes: setup on a fresh instance, else sign-in,
    coming back to the page afterwards."""
    if not accounts_of(request).has_users:
        return Redirect(SETUP_PATH, status_code=303)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "" if here == "/" else f"?next={quote(local_path(here), safe='/')}"
    return Redirect(LOGIN_PATH + target, status_code=303)


# -- cookies -------------------------------------------------------------------------------


def is_https(request: Request[Any, Any, Any]) -> bool:
    """Whether the visitor reached us over https: directly, or through a trusted proxy that says so."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and from_trusted_proxy(peer, runtime_of(request).settings.trusted_networks)


def start_session(request: Request[Any, Any, Any], response: Response[Any], user: User) -> None:
    value = encode_session(accounts_of(request).cookie_key, user)
    response.set_cookie(
        SESSION_COOKIE, value, max_age=SESSION_SECONDS, path="/", httponly=True, samesite="lax",
        secure=is_https(request),
    )


def end_session(request: Request[Any, Any, Any], response: Response[Any]) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def finish(request: Request[Any, Any, Any], response: Response[Any]) -> Response[Any]:
    """Set the pre-session cookie that `csrf_token` made for this page, if it made one."""
    value = request.state.get(_NEW_PRE_SESSION)
    if value:
        response.set_cookie(
            PRE_SESSION_COOKIE, value, path="/", httponly=True, samesite="lax", secure=is_https(request)
        )
    return response


# -- CSRF ----------------------------------------------------------------------------------


def csrf_token(request: Request[Any, Any, Any]) -> str:
    """The token this request's forms must post back. Signed out, it is bound to a random
    pre-session cookie that the page's response must set: pass the response to `finish`."""
    key = accounts_of(request).cookie_key
    found = _session(request)
    if found is not None:
        return _mac(key, "csrf", "s:" + found[0].sid)
    value = request.cookies.get(PRE_SESSION_COOKIE) or request.state.get(_NEW_PRE_SESSION)
    if not value:
        value = secrets.token_urlsafe(24)
        request.state[_NEW_PRE_SESSION] = value
    return _mac(key, "csrf", "p:" + value)


def csrf_valid(request: Request[Any, Any, Any], submitted: str | None) -> bool:
    """Whether `submitted` is the token of this request's session (or, signed out, of its
    pre-session cookie)."""
    if not submitted or len(submitted) > 100:
        return False
    key = accounts_of(request).cookie_key
    found = _session(request)
    if found is not None:
        expected = _mac(key, "csrf", "s:" + found[0].sid)
    else:
        cookie = request.cookies.get(PRE_SESSION_COOKIE)
        if not cookie:
            return False
        expected = _mac(key, "csrf", "p:" + cookie)
    return hmac.compare_digest(submitted.encode(), expected.encode())


async def submitted_csrf(request: Request[Any, Any, Any]) -> str | None:
    """The token a request carries: the X-CSRF-Token header, else the form's csrf_token."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in _FORM_TYPES:
        return None
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def check_csrf(request: Request[Any, Any, Any]) -> None:
    """403 unless the request carries its CSRF token. Call it first in every form POST."""
    if not csrf_valid(request, await submitted_csrf(request)):
        raise PermissionDeniedException("the form's CSRF token is missing or wrong: reload the page and try again")


# -- sign-in rate limits -------------------------------------------------------------------

LIMIT_WINDOW_SECONDS = 15 * 60


class LoginLimiter:
    """Failed sign-ins per client address and per account name: checked before each attempt,
    counted after each failure, so people who type their password right are never held up.
    In memory only; nothing of it is logged."""

    def __init__(self, failures_per_window: int) -> None:
        self.by_ip = TokenBuckets.per_window(failures_per_window, LIMIT_WINDOW_SECONDS)
        self.by_account = TokenBuckets.per_window(failures_per_window, LIMIT_WINDOW_SECONDS)

    def wait(self, ip: str, account: str) -> int:
        """Seconds until another attempt is allowed; 0: go ahead."""
        return math.ceil(max(self.by_ip.wait(ip), self.by_account.wait(account)))

    def failed(self, ip: str, account: str) -> None:
        self.by_ip.take(ip)
        self.by_account.take(account)


def request_ip(request: Request[Any, Any, Any]) -> str:
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), runtime_of(request).settings.trusted_networks)
