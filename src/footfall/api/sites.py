"""The sites API: what `footfall sites` does, over HTTP, for a token with `sites.manage`.

    GET    /api/sites                   the sites the token may touch
    POST   /api/sites                   {"domain", "timezone"?, "tracking_id"?} -> 201 the site
    GET    /api/sites/{site}            one site, its counts and tokens
    GET    /api/sites/{site}/goals      its goals; POST {"name", "type", "value"} adds one (seed 003)
    DELETE /api/sites/{site}/goals/{id} removes one (by id or name)
    GET    /api/sites/{site}/funnels    its funnels; POST {"name", "steps": [{"type", "value"}, ...]} adds one
    DELETE /api/sites/{site}/funnels/{id} removes one (by id or name)
    PATCH  /api/sites/{site}            settings: exclusions, kept query parameters, caps, identified visitors
    POST   /api/sites/{site}/server-key the server API's secret key (seed 004), shown once; the old one dies
    DELETE /api/sites/{site}/server-key removes it
    DELETE /api/sites/{site}            the site and all of its data

`{site}` is a domain, tracking id or numeric id. The same `manage` functions as the CLI do the
work, so both paths validate and answer alike. A token limited to some sites sees and changes
only those, and cannot add sites.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler

from footfall import manage
from footfall.api import auth
from footfall.ingest.http import IngestError
from footfall.meta import Token
from footfall.runtime import Runtime

Domain = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
Items = Annotated[list[Annotated[str, msgspec.Meta(max_length=200)]], msgspec.Meta(max_length=1000)]


class NewSite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    domain: Domain
    timezone: Annotated[str, msgspec.Meta(max_length=64)] = "UTC"
    tracking_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class SiteChanges(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Each list given replaces that list; an empty list clears it."""

    exclude_ips: Items | None = None
    exclude_countries: Items | None = None
    exclude_paths: Items | None = None
    query_params: Items | None = None
    monthly_pageview_cap: Annotated[int, msgspec.Meta(ge=0)] | None = None  # 0 removes the cap
    allow_forwarded_for: bool | None = None
    respect_dnt: bool | None = None
    identified_visitors: bool | None = None  # off deletes the identified visitors kept


class NewGoal(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Seed 003's goal: {"name", "type": "event"|"pageview", "value"}."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    type: Literal["event", "pageview"]
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class NewFunnelStep(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["event", "pageview"]
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class NewFunnel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """{"name", "steps": [{"type": "event"|"pageview", "value"}, ...]}, steps in order."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    steps: Annotated[list[NewFunnelStep], msgspec.Meta(min_length=2, max_length=manage.MAX_FUNNEL_STEPS)]


def _status(exc: manage.ManageError) -> int:
    if isinstance(exc, manage.NotFound):
        return 404
    if isinstance(exc, manage.Conflict):
        return 409
    return 422


def site_handlers(rt: Runtime) -> list[HTTPRouteHandler]:
    """The route handlers, bound to one runtime."""

    def authorized(request: Request[Any, Any, Any]) -> Token:
        headers = {k.lower(): v for k, v in request.headers.items()}
        return auth.authorize(rt.tokens, headers, auth.SCOPE_SITES_MANAGE)

    def allowed(token: Token, record: dict[str, Any]) -> bool:
        return auth.allows_site(token, int(record["id"]))

    async def run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # The store is used from a worker thread: DuckDB calls block.
        try:
            return await asyncio.to_thread(func, rt.manage, *args, **kwargs)
        except manage.ManageError as exc:
            raise IngestError(_status(exc), str(exc)) from None

    async def one(token: Token, ref: str) -> dict[str, Any]:
        record: dict[str, Any] = await run(manage.sites_show, ref)
        if not allowed(token, record):
            # As if it did not exist: a limited token does not learn other sites' names.
            raise IngestError(404, f"no site {ref!r}")
        return record

    async def answer(request: Request[Any, Any, Any], work: Callable[[Token], Any], status: int = 200) -> Response[Any]:
        try:
            result = await work(authorized(request))
        except IngestError as exc:
            return Response(content=exc.body(), status_code=exc.status, media_type="application/json")
        return Response(content=result, status_code=status)

    @get("/api/sites", operation_id="listSites")
    async def list_sites(request: Request[Any, Any, Any]) -> Response[Any]:
        async def work(token: Token) -> list[dict[str, Any]]:
            records: list[dict[str, Any]] = await run(manage.sites_list)
            return [r for r in records if allowed(token, r)]

        return await answer(request, work)

    @post("/api/sites", operation_id="addSite")
    async def add_site(request: Request[Any, Any, Any], data: NewSite) -> Response[Any]:
        async def work(token: Token) -> dict[str, Any]:
            if token.site_ids is not None:
                raise IngestError(403, "a token limited to some sites cannot add sites")
            record: dict[str, Any] = await run(manage.sites_add, data.domain, data.timezone, data.tracking_id)
            return record

        return await answer(request, work, 201)

    @get("/api/sites/{site:str}", operation_id="showSite")
    async def show_site(request: Request[Any, Any, Any], site: str) -> Response[Any]:
        return await answer(request, lambda token: one(token, site))

    @patch("/api/sites/{site:str}", operation_id="updateSite")
    async def update_site(request: Request[Any, Any, Any], site: str, data: SiteChanges) -> Response[Any]:
        async def work(token: Token) -> dict[str, Any]:
            await one(token, site)
            record: dict[str, Any] = await run(manage.sites_update, site, **msgspec.structs.asdict(data))
            return record

        return await answer(request, work)

    @delete("/api/sites/{site:str}", operation_id="removeSite", status_code=200)
    async def remove_site(request: Request[Any, Any, Any], site: str) -> Response[Any]:
        async def work(token: Token) -> dict[str, Any]:
            await one(token, site)
            result: dict[str, Any] = await run(manage.sites_remove, site)
            return result

        return await answer(request, work)

    @get("/api/sites/{site:str}/goals", operation_id="listGoals")
    async def list_goals(request: Request[Any, Any, Any], site: str) -> Response[Any]:
        async def work(token: Token) -> list[dict[str, Any]]:
            await one(token, site)
            goals: list[dict[str, Any]] = await run(manage.goals_list, site)
            return goals

        return await answer(request, work)

    @post("/api/sites/{site:str}/goals", operation_id="addGoal")
    async def add_goal(request: Request[Any, Any, Any], site: str, data: NewGoal) -> Response[Any]:
        async def work(token: Token) -> dict[str, Any]:
            await one(token, site)
            goal: dict[str, Any] = await run(manage.goals_add, site, data.name, data.type, data.value)
            return goal

        return await answer(request, work, 201)

    @delete("/api/sites/{site:str}/goals/{goal:str}", operation_id="removeGoal", status_code=200)
    async def remove_goal(request: Request[Any, Any, Any], site: str, goal: str) -> Response[Any]:
        async def work(token: Token) -> dict[str, Any]:
            await one(token, site)
            result: dict[str, Any] = await run(manage.goals_remove, site, goal)
            return result

        return await answer(request, work)

    @get("/api/sites/{site:str}/funnels", operation_id="listFunnels")
    async def list_funnels(request: Request[Any, Any, Any], site: str) -> Response[Any]:
        async def work(token: Token) -> list[dict[str, Any]]:
            await one(token, site)
            funnels: list[dict[str, Any]] = await run(manage.funnels_list, site)
            return funnels

        return await answer(request, work)

    @post("/api/sites/{site:str}/funnels", operation_id="addFunnel")
    async def add_funnel(request: Request[Any, Any, Any], site: str, data: NewFunnel) -> Response[Any]:
        async def work(token: Token) -> dict[str, Any]:
            await one(token, site)
            steps = [msgspec.structs.asdict(step) for step in data.steps]
            funnel: dict[str, Any] = await run(manage.funnels_add, site, data.name, steps)
            return funnel

        return await answer(request, work, 201)

    @delete("/api/sites/{site:str}/funnels/{funnel:str}", operation_id="removeFunnel", status_code=200)
    async def remove_funnel(request: Request[Any, Any, Any], site: str, funnel: str) -> Response[Any]:
        async def work(token: Token) -> dict[str, Any]:
            await one(token, site)
            result: dict[str, Any] = await run(manage.funnels_remove, site, funnel)
            return result

        return await answer(request, work)

    @post("/api/sites/{site:str}/server-key", operation_id="makeServerKey", status_code=201)
    async def make_server_key(request: Request[Any, Any, Any], site: str) -> Response[Any]:
        async def work(token: Token) -> dict[str, Any]:
            await one(token, site)
            result: dict[str, Any] = await run(manage.sites_server_key, site)
            return result

        return await answer(request, work, 201)

    @delete("/api/sites/{site:str}/server-key", operation_id="revokeServerKey", status_code=200)
    async def revoke_server_key(request: Request[Any, Any, Any], site: str) -> Response[Any]:
        async def work(token: Token) -> dict[str, Any]:
            await one(token, site)
            result: dict[str, Any] = await run(manage.sites_server_key, site, revoke=True)
            return result

        return await answer(request, work)

    return [
        list_sites, add_site, show_site, update_site, remove_site, list_goals, add_goal, remove_goal,
        list_funnels, add_funnel, remove_funnel, make_server_key, revoke_server_key,
    ]
