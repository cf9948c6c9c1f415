"""Management operations: sites, tokens and stats, as plain functions over a store.

The CLI runs them in its own process when no server holds the data directory, and through the
server's control socket when one does (DuckDB lets only one process write the file). Either
way the same function runs, so both paths behave identically.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from footfall.api import auth
from footfall.enrich.exclusions import parse_country, parse_network, parse_path_glob
from footfall.enrich.urls import normalize_host
from footfall.meta import Funnel, FunnelStep, Goal, ServerKey, Site, Token, User
from footfall.query import v2
from footfall.query.compile import build_query, day_series
from footfall.query.model import Filter, GoalRule, QueryError
from footfall.store.base import StepMatch, Store, StoreError
from footfall.web import accounts


class ManageError(Exception):
    """A management request that cannot be done; the message is for the user."""


class NotFound(ManageError):
    """The site or token named does not exist."""


class Conflict(ManageError):
    """What would be created exists already."""


@dataclass
class Context:
    store: Store
    # Called after sites or tokens change, so a running server refreshes its caches.
    on_change: Callable[[], None] = field(default=lambda: None)


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*$")


def normalize_domain(raw: str) -> str:
    text = raw.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].split(":", 1)[0]
    domain = normalize_host(text)
    if not domain or not _DOMAIN.match(domain):
        raise ManageError(f"{raw!r} is not a valid domain name")
    return domain


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ManageError(f"unknown time zone {name!r}; use an IANA name like Europe/Berlin") from None
    return name


def new_tracking_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "FF-" + "".join(secrets.choice(alphabet) for _ in range(10))


def site_by_name(ctx: Context, name: str) -> Site:
    """A site by domain, tracking id or numeric id."""
    sites = ctx.store.list_sites()
    key = name.strip()
    for s in sites:
        if key == s.tracking_id or key == str(s.id):
            return s
    try:
        domain = normalize_domain(key)
    except ManageError:
        domain = ""
    for s in sites:
        if s.domain == domain:
            return s
    raise NotFound(f"no site {name!r}; `footfall sites list` shows the sites")


def site_record(site: Site) -> dict[str, Any]:
    record = msgspec.structs.asdict(site)
    # Every setting, defaults too; goals and funnels as plain data.
    record["settings"] = {k: msgspec.to_builtins(v) for k, v in msgspec.structs.asdict(site.settings).items()}
    # The key's hint and age, never its hash: nothing that could be checked against guesses.
    key = site.server_key
    record["server_key"] = None if key is None else {"hint": key.hint, "created_at": key.created_at}
    return record


def integrations(site: Site) -> dict[str, str]:
    """What each contract and SDK needs to send to this site, as its docs name it."""
    tracking_id = site.tracking_id
    key = site.server_key
    return {
        "tracker": f'<script defer src="https://<footfall host>/js/footfall.js" data-site="{tracking_id}"></script>',
        "server API (seed 000) and dashboard": "an API token: `footfall tokens create`",
        "collect API tracking_id (seed 001)": tracking_id,
        "public endpoint (seed 002)": f"POST /e/{tracking_id}",
        "event API site_id (seed 003)": tracking_id,
        "server API X-API-Key (seed 004)": (
            f"{key.hint}… (`footfall sites server-key {site.domain}` replaces it)" if key is not None
            else f"none yet: `footfall sites server-key {site.domain}` makes one"
        ),
        "Plausible data-domain / domain": site.domain,
        "Umami website id": tracking_id,
        "Segment write key": tracking_id,
        "PostHog project api_key": tracking_id,
    }


# -- sites --------------------------------------------------------------------------------


def sites_add(ctx: Context, domain: str, timezone: str = "UTC", tracking_id: str | None = None) -> dict[str, Any]:
    domain = normalize_domain(domain)
    timezone = check_timezone(timezone)
    if tracking_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{4,64}", tracking_id):
        raise ManageError("a tracking id is 4 to 64 letters, digits, '-' or '_'")
    try:
        site = ctx.store.add_site(domain, timezone, tracking_id or new_tracking_id())
    except StoreError as exc:  # the domain or tracking id is taken
        raise Conflict(str(exc)) from None
    ctx.on_change()
    return site_record(site)


def sites_list(ctx: Context) -> list[dict[str, Any]]:
    return [site_record(s) for s in ctx.store.list_sites()]


def sites_show(ctx: Context, site: str) -> dict[str, Any]:
    s = site_by_name(ctx, site)
    record = site_record(s)
    record["events"] = ctx.store.count_events(s.id)
    record["not_counted"] = ctx.store.not_counted(s.id)
    record["ai_fetches"] = ctx.store.count_ai_fetches(s.id)
    record["tokens"] = [
        t.name for t in ctx.store.list_tokens() if t.site_ids is None or s.id in t.site_ids
    ]
    record["integrations"] = integrations(s)
    return record


def sites_server_key(ctx: Context, site: str, revoke: bool = False) -> dict[str, Any]:
    """Make the site's server-API secret key (seed 004), replacing the one it had, which stops
    working at once; or, with `revoke`, leave it none. The key is returned here only."""
    s = site_by_name(ctx, site)
    if revoke:
        ctx.store.set_server_key(s.id, None)
        ctx.on_change()
        return {"domain": s.domain, "revoked": s.server_key is not None}
    key = auth.new_server_key()
    ctx.store.set_server_key(
        s.id, ServerKey(hash=auth.hash_secret(key), hint=key[: len(auth.SERVER_KEY_PREFIX) + 4], created_at=_now())
    )
    ctx.on_change()
    return {"domain": s.domain, "server_key": key, "replaced": s.server_key is not None}


_QUERY_PARAM = re.compile(r"^[A-Za-z0-9_.\-\[\]]{1,64}$")


def _items(values: list[str]) -> tuple[str, ...]:
    """A list option's values; an empty string clears the list."""
    return tuple(v.strip() for v in values if v.strip())


def sites_update(
    ctx: Context,
    site: str,
    exclude_ips: list[str] | None = None,
    exclude_countries: list[str] | None = None,
    exclude_paths: list[str] | None = None,
    query_params: list[str] | None = None,
    monthly_pageview_cap: int | None = None,
    allow_forwarded_for: bool | None = None,
    respect_dnt: bool | None = None,
    identified_visitors: bool | None = None,
) -> dict[str, Any]:
    """Change a site's settings; each list given replaces that list. A cap of 0 removes it.
    Turning identified visitors off deletes the ones kept."""
    s = site_by_name(ctx, site)
    changes: dict[str, Any] = {}
    try:
        if exclude_ips is not None:
            changes["exclude_ips"] = tuple(str(parse_network(v)) for v in _items(exclude_ips))
        if exclude_countries is not None:
            changes["exclude_countries"] = tuple(parse_country(v) for v in _items(exclude_countries))
        if exclude_paths is not None:
            changes["exclude_paths"] = tuple(parse_path_glob(v) for v in _items(exclude_paths))
    except ValueError as exc:
        raise ManageError(str(exc)) from None
    if query_params is not None:
        params = _items(query_params)
        bad = [p for p in params if not _QUERY_PARAM.match(p) or p.lower().startswith("utm_")]
        if bad:
            raise ManageError(f"not a query parameter name to keep: {bad[0]!r}")
        changes["query_params"] = params
    if monthly_pageview_cap is not None:
        if monthly_pageview_cap < 0:
            raise ManageError("the monthly pageview cap is a number of pageviews, or 0 for none")
        changes["monthly_pageview_cap"] = monthly_pageview_cap or None
    if allow_forwarded_for is not None:
        changes["allow_forwarded_for"] = allow_forwarded_for
    if respect_dnt is not None:
        changes["respect_dnt"] = respect_dnt
    if identified_visitors is not None:
        changes["identified_visitors"] = identified_visitors
    saved = _save_settings(ctx, s, **changes)
    if identified_visitors is False:
        ctx.store.forget_identities(s.id)
        ctx.on_change()
    return site_record(saved)


def sites_remove(ctx: Context, site: str) -> dict[str, Any]:
    s = site_by_name(ctx, site)
    deleted = ctx.store.remove_site(s.id)
    ctx.on_change()
    return {"removed": s.domain, "events_deleted": deleted}


# -- tokens -------------------------------------------------------------------------------


def token_record(ctx: Context, t: Token, sites: dict[int, str] | None = None) -> dict[str, Any]:
    names = sites if sites is not None else {s.id: s.domain for s in ctx.store.list_sites()}
    return {
        "id": t.id,
        "name": t.name,
        "scopes": list(t.scopes),
        "sites": "all" if t.site_ids is None else [names.get(i, str(i)) for i in t.site_ids],
        "created_at": t.created_at,
        "last_rotated_at": t.last_rotated_at,
    }


def tokens_create(
    ctx: Context, name: str, scopes: list[str], sites: list[str] | None = None
) -> dict[str, Any]:
    name = name.strip()
    if not name or len(name) > 100:
        raise ManageError("a token name is 1 to 100 characters")
    if not scopes:
        raise ManageError(f"give at least one --scope: {', '.join(auth.SCOPES)}")
    unknown = [s for s in scopes if s not in auth.SCOPES]
    if unknown:
        raise ManageError(f"unknown scope {unknown[0]!r}; known: {', '.join(auth.SCOPES)}")
    site_ids = None if not sites or "all" in sites else tuple(site_by_name(ctx, s).id for s in sites)
    secret = auth.new_secret()
    token = Token(
        id=auth.new_token_id(),
        name=name,
        secret_hash=auth.hash_secret(secret),
        scopes=tuple(dict.fromkeys(scopes)),
        site_ids=site_ids,
        created_at=_now(),
    )
    try:
        ctx.store.add_token(token)
    except StoreError as exc:  # the name is taken
        raise Conflict(str(exc)) from None
    ctx.on_change()
    return {"token": secret, **token_record(ctx, token)}


def tokens_list(ctx: Context) -> list[dict[str, Any]]:
    names = {s.id: s.domain for s in ctx.store.list_sites()}
    return [token_record(ctx, t, names) for t in ctx.store.list_tokens()]


def _token_by_name(ctx: Context, ref: str) -> Token:
    for t in ctx.store.list_tokens():
        if ref in (t.id, t.name):
            return t
    raise NotFound(f"no token {ref!r}; `footfall tokens list` shows the tokens")


def tokens_revoke(ctx: Context, token: str) -> dict[str, Any]:
    t = _token_by_name(ctx, token)
    ctx.store.delete_token(t.id)
    ctx.on_change()
    return {"revoked": t.id, "name": t.name}


def tokens_rotate(ctx: Context, token: str) -> dict[str, Any]:
    t = _token_by_name(ctx, token)
    secret = auth.new_secret()
    now = _now()
    ctx.store.replace_token_secret(t.id, auth.hash_secret(secret), now)
    ctx.on_change()
    rotated = msgspec.structs.replace(t, last_rotated_at=now)
    return {"token": secret, **token_record(ctx, rotated)}


# -- stats --------------------------------------------------------------------------------

SUMMARY_METRICS = ["visitors", "visits", "pageviews", "custom_events", "bounce_rate", "visit_duration"]
# `footfall stats --filter dim==a|b` (is), `!=` (is_not), `~=` (contains), `!~` (contains_not).
_FILTER_FORMS = (("!=", "is_not"), ("!~", "contains_not"), ("~=", "contains"), ("==", "is"))


def parse_cli_filter(text: str) -> list[Any]:
    """A filter as the Stats API takes it, from JSON or the short `dim==value|value` form."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise ManageError(f"--filter {text!r} is not JSON: {exc}") from None
        if not isinstance(value, list):
            raise ManageError(f"--filter {text!r}: a filter is a JSON list")
        return value
    for sign, op in _FILTER_FORMS:
        dim, found, values = text.partition(sign)
        if found and dim.strip():
            return [op, dim.strip(), values.split("|")]
    raise ManageError(f"--filter {text!r}: give dim==value (also !=, ~=, !~; values split by |) or a JSON filter")


def stats(
    ctx: Context,
    site: str,
    date_from: str | None = None,
    date_to: str | None = None,
    limit: int = 10,
    period: str | None = None,
    metrics: list[str] | None = None,
    dimensions: list[str] | None = None,
    filters: list[str] | None = None,
    compare: str | None = None,
) -> dict[str, Any]:
    """The summary report for --from/--to; with any Stats API option (a period, metrics,
    dimensions, filters, a comparison), that query's Stats API v2 answer instead."""
    s = site_by_name(ctx, site)
    if period is not None or metrics or dimensions or filters or compare is not None:
        if period is not None and (date_from or date_to):
            raise ManageError("give --period or --from/--to, not both")
        if period is None and not (date_from and date_to):
            raise ManageError("give --period (e.g. 7d) or both --from and --to")
        body: dict[str, Any] = {
            "site_id": s.domain,
            "metrics": metrics or ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"],
            "date_range": period if period is not None else [date_from, date_to],
            "dimensions": dimensions or [],
            "filters": [parse_cli_filter(f) for f in filters or []],
            "pagination": {"limit": limit},
        }
        if compare is not None:
            body["include"] = {"comparisons": {"mode": compare}}
        try:
            return v2.execute(ctx.store, s, body)
        except QueryError as exc:
            raise ManageError(str(exc)) from None
    if not (date_from and date_to):
        raise ManageError("give --from and --to (YYYY-MM-DD), or --period")
    try:
        first, last = dt.date.fromisoformat(date_from), dt.date.fromisoformat(date_to)
    except ValueError as exc:
        raise ManageError(f"dates are YYYY-MM-DD ({exc})") from None
    if (last - first).days > 3660:
        raise ManageError("the range is longer than ten years")
    try:
        totals = ctx.store.run_query(build_query(s, first, last, SUMMARY_METRICS)).records()[0]
        totals["events"] = totals.pop("custom_events")
        daily = ctx.store.run_query(
            build_query(s, first, last, ["visitors", "visits", "pageviews", "custom_events"], ["time:day"])
        ).records()
        pages = ctx.store.run_query(
            build_query(
                s, first, last, ["visitors", "pageviews"], ["event:page"],
                filters=[Filter("is", "event:kind", ("pageview",))],
                order_by=[("pageviews", "desc"), ("visitors", "desc")], limit=limit,
            )
        ).records()
        goals = _goal_conversions(ctx, s, first, last, int(totals["visitors"] or 0))
    except QueryError as exc:
        raise ManageError(str(exc)) from None
    by_day = {row["time:day"]: {**row, "events": row["custom_events"]} for row in daily}
    empty = {"visitors": 0, "visits": 0, "pageviews": 0, "events": 0}
    days = [{"date": d, **{k: by_day.get(d, empty)[k] for k in empty}} for d in day_series(first, last)]
    return {
        "site": s.domain,
        "timezone": s.timezone,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "totals": totals,
        "days": days,
        "top_pages": [{"page": p["event:page"], "visitors": p["visitors"], "pageviews": p["pageviews"]} for p in pages],
        "goals": goals,
    }


# -- goals --------------------------------------------------------------------------------

GOAL_TYPES = ("event", "pageview")


def goal_filters(goal: Goal) -> list[Filter]:
    """The filters that select a goal's conversions: an event by exact name, or a pageview
    whose whole path matches the value, where `*` stands for any run of characters."""
    rule = GoalRule.from_goal(goal.name, goal.type, goal.value)
    if rule.kind == "event":
        return [Filter("is", "event:kind", ("event",)), Filter("is", "event:name", (rule.value,))]
    return [Filter("is", "event:kind", ("pageview",)), Filter("matches", "event:page", (rule.value,))]


def goals_list(ctx: Context, site: str) -> list[dict[str, Any]]:
    return [msgspec.structs.asdict(g) for g in site_by_name(ctx, site).settings.goals]


def goals_add(ctx: Context, site: str, name: str, type: str, value: str) -> dict[str, Any]:
    s = site_by_name(ctx, site)
    name, value = name.strip(), value.strip()
    if not name or len(name) > 120:
        raise ManageError("a goal's name is 1 to 120 characters")
    if type not in GOAL_TYPES:
        raise ManageError(f"a goal's type is {' or '.join(GOAL_TYPES)}, not {type!r}")
    if not value or len(value) > 1024:
        raise ManageError("a goal's value (event name or page path) is 1 to 1024 characters")
    if type == "pageview" and not value.startswith("/"):
        raise ManageError("a pageview goal's value is a path starting with / (`*` matches anything)")
    if any(g.name == name for g in s.settings.goals):
        raise Conflict(f"{s.domain} has a goal named {name!r} already")
    goal = Goal(id="g_" + secrets.token_hex(4), name=name, type=type, value=value)
    _save_settings(ctx, s, goals=(*s.settings.goals, goal))
    return msgspec.structs.asdict(goal)


def goals_remove(ctx: Context, site: str, goal: str) -> dict[str, Any]:
    return _remove_setting_item(ctx, site, "goals", goal)


# -- funnels ------------------------------------------------------------------------------

MAX_FUNNEL_STEPS = 8


def funnel_matches(funnel: Funnel) -> list[StepMatch]:
    """A funnel's steps as the store matches them (see Store.funnel)."""
    out = []
    for step in funnel.steps:
        # A goal's path pattern is a whole-path regular expression already; an event name is literal.
        rule = GoalRule.from_goal(funnel.name, step.type, step.value)
        pattern = rule.value if rule.kind == "pageview" else re.escape(rule.value)
        if rule.kind == "pageview" and "*" in step.value:
            like = re.sub(r"([%_\\])", r"\\\1", step.value).replace("*", "%")
            out.append(StepMatch(rule.kind, pattern, like=like))
        else:
            out.append(StepMatch(rule.kind, pattern, exact=step.value))
    return out


def _funnel_record(f: Funnel) -> dict[str, Any]:
    return {"id": f.id, "name": f.name, "steps": [msgspec.structs.asdict(step) for step in f.steps]}


def funnels_list(ctx: Context, site: str) -> list[dict[str, Any]]:
    return [_funnel_record(f) for f in site_by_name(ctx, site).settings.funnels]


def funnels_add(ctx: Context, site: str, name: str, steps: list[dict[str, str]]) -> dict[str, Any]:
    """Add a funnel: `steps` are {"type": "pageview"|"event", "value": path glob or event name},
    in order, 2 to MAX_FUNNEL_STEPS of them."""
    s = site_by_name(ctx, site)
    name = name.strip()
    if not name or len(name) > 120:
        raise ManageError("a funnel's name is 1 to 120 characters")
    if any(f.name == name for f in s.settings.funnels):
        raise Conflict(f"{s.domain} has a funnel named {name!r} already")
    if not 2 <= len(steps) <= MAX_FUNNEL_STEPS:
        raise ManageError(f"a funnel has 2 to {MAX_FUNNEL_STEPS} steps, not {len(steps)}")
    parsed = []
    for i, step in enumerate(steps, 1):
        kind, value = str(step.get("type", "")), str(step.get("value", "")).strip()
        if kind not in GOAL_TYPES:
            raise ManageError(f"step {i}: the type is {' or '.join(GOAL_TYPES)}, not {kind!r}")
        if not value or len(value) > 1024:
            raise ManageError(f"step {i}: the value (event name or page path) is 1 to 1024 characters")
        if kind == "pageview" and not value.startswith("/"):
            raise ManageError(f"step {i}: a pageview step is a path starting with / (`*` matches anything)")
        parsed.append(FunnelStep(type=kind, value=value))
    funnel = Funnel(id="f_" + secrets.token_hex(4), name=name, steps=tuple(parsed))
    _save_settings(ctx, s, funnels=(*s.settings.funnels, funnel))
    return _funnel_record(funnel)


def funnels_remove(ctx: Context, site: str, funnel: str) -> dict[str, Any]:
    return _remove_setting_item(ctx, site, "funnels", funnel)


def _remove_setting_item(ctx: Context, site: str, field: str, ref: str) -> dict[str, Any]:
    """Remove a goal or funnel (a `field` of the site's settings) by its id or name."""
    s = site_by_name(ctx, site)
    items = getattr(s.settings, field)
    kept = tuple(item for item in items if ref not in (item.id, item.name))
    if len(kept) == len(items):
        raise NotFound(f"{s.domain} has no {field[:-1]} {ref!r}; `footfall {field} list {s.domain}` shows them")
    _save_settings(ctx, s, **{field: kept})
    return {"removed": ref}


def _save_settings(ctx: Context, s: Site, **changes: Any) -> Site:
    settings = msgspec.structs.replace(s.settings, **changes)
    ctx.store.update_site_settings(s.id, settings)
    ctx.on_change()
    return msgspec.structs.replace(s, settings=settings)


def _goal_conversions(ctx: Context, s: Site, first: dt.date, last: dt.date, visitors: int) -> list[dict[str, Any]]:
    out = []
    for goal in s.settings.goals:
        (row,) = ctx.store.run_query(
            build_query(s, first, last, ["visitors", "custom_events", "pageviews"], filters=goal_filters(goal))
        ).records()
        completions = row["custom_events"] if goal.type == "event" else row["pageviews"]
        rate = round(100.0 * row["visitors"] / visitors, 1) if visitors else 0.0
        out.append({"goal": goal.name, "type": goal.type, "value": goal.value, "visitors": row["visitors"],
                    "completions": completions, "conversion_rate": rate})
    return out


# -- dashboard users and share links -------------------------------------------------------


def user_record(u: User) -> dict[str, Any]:
    """An account as shown: never its password hash."""
    return {"id": u.id, "email": u.email, "role": u.role, "created_at": u.created_at, "last_login_at": u.last_login_at}


def users_add(ctx: Context, email: str, password: str, role: str = accounts.ROLE_VIEWER,
              first: bool = False) -> dict[str, Any]:
    """Add a dashboard account. With `first`, only while there is none: first-start setup."""
    try:
        login = accounts.normalize_login(email)
        accounts.check_role(role)
        password_hash = accounts.hash_password(password)
    except ValueError as exc:
        raise ManageError(str(exc)) from None
    try:
        user = ctx.store.add_user(login, password_hash, role, only_if_first=first)
    except StoreError as exc:  # the name is taken, or setup was done already
        raise Conflict(str(exc)) from None
    ctx.on_change()
    return user_record(user)


def users_list(ctx: Context) -> list[dict[str, Any]]:
    return [user_record(u) for u in ctx.store.list_users()]


def _user_by_name(ctx: Context, ref: str) -> User:
    users = ctx.store.list_users()
    key = ref.strip().lower()
    for u in users:
        if key in (u.email, str(u.id)):
            return u
    raise NotFound(f"no account {ref!r}; `footfall users list` shows them")


def users_remove(ctx: Context, user: str) -> dict[str, Any]:
    """Remove an account; its sessions end at once. The last owner stays."""
    u = _user_by_name(ctx, user)
    owners = [o for o in ctx.store.list_users() if o.role == accounts.ROLE_OWNER]
    if owners == [u]:
        raise ManageError(f"{u.email} is the only owner; add another owner (`footfall users add --role owner`) first")
    ctx.store.remove_user(u.id)
    ctx.on_change()
    return {"removed": u.email, "id": u.id}


def users_passwd(ctx: Context, user: str, password: str) -> dict[str, Any]:
    """Set an account's password; every session it had ends."""
    u = _user_by_name(ctx, user)
    try:
        password_hash = accounts.hash_password(password)
    except ValueError as exc:
        raise ManageError(str(exc)) from None
    ctx.store.set_user_password(u.id, password_hash)
    ctx.on_change()
    return {"email": u.email, "id": u.id, "sessions_ended": True}


def share_create(ctx: Context, site: str) -> dict[str, Any]:
    """A public read-only link to the site's dashboard. The token is returned here only."""
    s = site_by_name(ctx, site)
    token = accounts.new_share_token()
    link = ctx.store.add_share_link(s.id, auth.hash_secret(token))
    ctx.on_change()
    return {"id": link.id, "site": s.domain, "token": token, "path": accounts.share_path(token),
            "created_at": link.created_at}


def share_list(ctx: Context, site: str) -> list[dict[str, Any]]:
    s = site_by_name(ctx, site)
    return [
        {"id": link.id, "site": s.domain, "created_at": link.created_at, "revoked_at": link.revoked_at,
         "active": link.revoked_at is None}
        for link in ctx.store.list_share_links(s.id)
    ]


def share_revoke(ctx: Context, site: str, link_id: int | None = None) -> dict[str, Any]:
    """Revoke one share link of the site, or all of them; they stop working at once."""
    s = site_by_name(ctx, site)
    revoked = ctx.store.revoke_share_links(s.id, link_id)
    if link_id is not None and not revoked:
        raise NotFound(f"{s.domain} has no live share link {link_id}; `footfall sites shares {s.domain}` lists them")
    ctx.on_change()
    return {"site": s.domain, "revoked": revoked}


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


OPERATIONS: dict[str, Callable[..., Any]] = {
    "sites.add": sites_add,
    "sites.list": sites_list,
    "sites.show": sites_show,
    "sites.remove": sites_remove,
    "sites.update": sites_update,
    "sites.server_key": sites_server_key,
    "tokens.create": tokens_create,
    "tokens.list": tokens_list,
    "tokens.revoke": tokens_revoke,
    "tokens.rotate": tokens_rotate,
    "users.add": users_add,
    "users.list": users_list,
    "users.remove": users_remove,
    "users.passwd": users_passwd,
    "shares.create": share_create,
    "shares.list": share_list,
    "shares.revoke": share_revoke,
    "stats": stats,
    "goals.list": goals_list,
    "goals.add": goals_add,
    "goals.remove": goals_remove,
    "funnels.list": funnels_list,
    "funnels.add": funnels_add,
    "funnels.remove": funnels_remove,
}


def run(ctx: Context, op: str, args: dict[str, Any]) -> Any:
    func = OPERATIONS.get(op)
    if func is None:
        raise ManageError(f"unknown operation {op!r}")
    try:
        inspect.signature(func).bind(ctx, **args)
    except TypeError as exc:
        raise ManageError(f"bad arguments for {op}: {exc}") from None
    return func(ctx, **args)
