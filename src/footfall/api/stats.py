"""The Stats API v2: `POST /api/v2/query`, as Plausible's, for a token with `stats.read`.

    {"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d", ...}
    -> 200 {"results": [{"metrics": [...], "dimensions": [...]}], "meta": {...}, "query": {...}}

`site_id` is the site's domain (or its tracking id). The work is `query.v2.execute`, which the
dashboard and `footfall stats` call too. Every error is Plausible's shape, {"error": "..."}:
400 for a query that cannot be answered (the message names what is wrong), 401 without a
valid token, 403 for a token without the scope or the site, 404 for an unknown site.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec

from footfall.api import auth
from footfall.ingest.http import IngestError
from footfall.query import v2
from footfall.query.model import QueryError
from footfall.runtime import Runtime

Text = Annotated[str, msgspec.Meta(max_length=1000)]


class Comparisons(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    mode: Literal["previous_period", "year_over_year", "custom"]
    date_range: list[Text] | None = None  # for "custom": [first, last]
    match_day_of_week: bool | None = None


class Include(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    imports: bool = False
    time_labels: bool = False
    total_rows: bool = False
    comparisons: Comparisons | None = None


class Pagination(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=v2.MAX_LIMIT)] = v2.DEFAULT_LIMIT
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0


class StatsQuery(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Plausible's Stats API v2 query. Filters: [operator, dimension, [values], {"case_sensitive":
    false}?] with operators is, is_not, contains, contains_not, matches, matches_not, combined as
    ["and", [...]], ["or", [...]], ["not", filter]."""

    site_id: Text
    metrics: list[Text]
    date_range: Text | list[Text]
    dimensions: list[Text] = []
    filters: list[Any] = []
    order_by: list[list[Text]] | None = None
    include: Include | None = None
    pagination: Pagination | None = None


class Comparison(msgspec.Struct):
    dimensions: list[Any]
    metrics: list[Any]
    change: list[Any]  # percent, or points for rates


class Row(msgspec.Struct):
    metrics: list[Any]  # in the order asked for; revenue as {value, currency, short, long}
    dimensions: list[Any]
    comparison: Comparison | None = None


class Answer(msgspec.Struct):
    results: list[Row]
    meta: dict[str, Any]  # time_labels, total_rows, imports_included when asked for
    query: dict[str, Any]  # the query as answered: resolved date range, dimensions, order


class StatsError(msgspec.Struct):
    error: str


_RESPONSES = {
    200: ResponseSpec(data_container=Answer, description="The figures"),
    **{
        status: ResponseSpec(data_container=StatsError, description=text)
        for status, text in (
            (400, "A query that cannot be answered: the message names what is wrong"),
            (401, "Missing or wrong API token"),
            (403, "The token lacks the stats.read scope, or the site"),
            (404, "Unknown site"),
        )
    },
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=msgspec.json.encode({"error": message}), status_code=status,
                    media_type="application/json", headers=headers)


def _refused(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own refusals (a body that is not the request's shape, too large...), in
    Plausible's error shape, naming the field at fault."""
    message = str(exc.detail)
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0]
        if isinstance(first, dict) and first.get("key") == "data":  # no body at all
            message = "the request body is a JSON object: {\"site_id\", \"metrics\", \"date_range\", ...}"
        elif isinstance(first, dict):
            where = f" at {first['key']}" if first.get("key") else ""
            message = f"invalid request body: {first.get('message', message)}{where}"
    return _error(exc.status_code, message, exc.headers)


def _too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    """JSON nested past what the decoder follows (thousands of brackets)."""
    return _error(400, "invalid request body: nested too deeply")


def stats_handlers(rt: Runtime) -> list[HTTPRouteHandler]:
    """The route handlers, bound to one runtime."""

    @post(
        "/api/v2/query",
        operation_id="statsQuery",
        status_code=200,
        security=[{"bearer": []}],
        exception_handlers={HTTPException: _refused, RecursionError: _too_deep},
        responses=_RESPONSES,
        description="Plausible's Stats API v2: metrics over a date range, by dimensions, filtered.",
    )
    async def stats_query(request: Request[Any, Any, Any], data: StatsQuery) -> Response[Any]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            token = auth.authorize(rt.tokens, headers, auth.SCOPE_STATS_READ)
        except IngestError as exc:
            return _error(exc.status, exc.message, exc.headers)
        site = rt.sites.by_reference(data.site_id)
        if site is None or not auth.allows_site(token, site.id):
            if token.site_ids is not None:  # a limited token does not learn which sites exist
                return _error(403, f"this token may not read the site {data.site_id!r}")
            return _error(404, f"no site {data.site_id!r}")
        try:
            answer = await asyncio.to_thread(v2.execute, rt.store, site, msgspec.to_builtins(data))
        except QueryError as exc:
            return _error(400, str(exc))
        return Response(content=answer, status_code=200)

    return [stats_query]
