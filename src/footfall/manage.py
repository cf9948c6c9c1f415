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
from footfall.meta import Goal, ServerKey, Site, Token
from footfall.query.compile import build_query, day_series
from footfall.query.model import Filter, QueryError
from footfall.store.base import Store, StoreError


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
    record["settings"] = msgspec.structs.asdict(site.settings)
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

SUMMARY_METRICS = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"]


def stats(ctx: Context, site: str, date_from: str, date_to: str, limit: int = 10) -> dict[str, Any]:
    s = site_by_name(ctx, site)
    try:
        first, last = dt.date.fromisoformat(date_from), dt.date.fromisoformat(date_to)
    except ValueError as exc:
        raise ManageError(f"dates are YYYY-MM-DD ({exc})") from None
    if (last - first).days > 3660:
        raise ManageError("the range is longer than ten years")
    try:
        totals = ctx.store.run_query(build_query(s, first, last, SUMMARY_METRICS)).records()[0]
        daily = ctx.store.run_query(
            build_query(s, first, last, ["visitors", "visits", "pageviews", "events"], ["time:day"])
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
    by_day = {row["time:day"]: row for row in daily}
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
    whose path matches the value, where `*` stands for any run of characters."""
    if goal.type == "event":
        return [Filter("is", "event:kind", ("event",)), Filter("is", "event:name", (goal.value,))]
    pattern = ".*".join(re.escape(part) for part in goal.value.split("*"))
    return [Filter("is", "event:kind", ("pageview",)), Filter("matches", "event:page", (pattern,))]


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
    s = site_by_name(ctx, site)
    kept = tuple(g for g in s.settings.goals if goal not in (g.id, g.name))
    if len(kept) == len(s.settings.goals):
        raise NotFound(f"{s.domain} has no goal {goal!r}; `footfall goals list {s.domain}` shows them")
    _save_settings(ctx, s, goals=kept)
    return {"removed": goal}


def _save_settings(ctx: Context, s: Site, **changes: Any) -> Site:
    settings = msgspec.structs.replace(s.settings, **changes)
    ctx.store.update_site_settings(s.id, settings)
    ctx.on_change()
    return msgspec.structs.replace(s, settings=settings)


def _goal_conversions(ctx: Context, s: Site, first: dt.date, last: dt.date, visitors: int) -> list[dict[str, Any]]:
    out = []
    for goal in s.settings.goals:
        (row,) = ctx.store.run_query(
            build_query(s, first, last, ["visitors", "events", "pageviews"], filters=goal_filters(goal))
        ).records()
        completions = row["events"] if goal.type == "event" else row["pageviews"]
        rate = round(100.0 * row["visitors"] / visitors, 1) if visitors else 0.0
        out.append({"goal": goal.name, "type": goal.type, "value": goal.value, "visitors": row["visitors"],
                    "completions": completions, "conversion_rate": rate})
    return out


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
    "stats": stats,
    "goals.list": goals_list,
    "goals.add": goals_add,
    "goals.remove": goals_remove,
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
