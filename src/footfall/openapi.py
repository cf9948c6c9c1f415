"""The OpenAPI document at /api/openapi.json.

Litestar documents routes and query parameters; the ingest routes read their raw body to
honour the contract's exact error codes, so their request bodies and responses are described
here, from the same msgspec types that decode them.
"""

from __future__ import annotations

from typing import Any

import msgspec

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

_ERRORS = {
    "400": "Malformed JSON",
    "401": "Missing or wrong API token",
    "403": "The token lacks the scope or the site",
    "404": "Unknown site",
    "413": "Body too large",
    "415": "Content-Type is not application/json",
    "422": "A field is invalid; `field` names it",
    "429": "Rate limited; see Retry-After",
}

_COLLECT_ERRORS = {
    **{code: text for code, text in _ERRORS.items() if code != "404"},
    "402": "The site's monthly pageview cap is reached: {ok: false, reason: cap_exceeded}",
    "403": "The token lacks the collect:write scope or the site",
    "404": "Unknown tracking id: {ok: false}",
    "422": "Fields failed validation; `errors` names each",
}


_PUBLIC_ERRORS = {
    "400": "Malformed JSON",
    "413": "Body too large",
    "415": "Content-Type is not application/json or text/plain",
    "422": "A field is invalid; `field` names it",
    "429": "Rate limited (per visitor IP: 60 per 10 s, 5,000 per hour by default); see Retry-After",
}


_SEGMENT_ERRORS = {
    "400": "Malformed JSON, or not a batch",
    "401": "Missing or unknown write key (the site's tracking id, as the Basic auth user name)",
    "413": "Body too large",
    "415": "Content-Type is not application/json",
    "429": "Rate limited; see Retry-After",
}
_POSTHOG_ERRORS = {
    **{code: text for code, text in _SEGMENT_ERRORS.items() if code != "401"},
    "401": "Missing or unknown project key (the site's tracking id, as api_key)",
}
_PLAUSIBLE_ERRORS = {
    "400": "Not a JSON object, or a field missing or invalid: `errors` names each, as Plausible's do",
    **{code: text for code, text in _PUBLIC_ERRORS.items() if code in ("413", "415", "429")},
}
# Seed 004's server API, keyed by the site's secret key in X-API-Key.
_SERVER_V1_ERRORS = {
    "400": "Missing or invalid parameters; `field` names the one",
    "401": "Missing or invalid secret key",
    "404": "Visitor not found: no visitor was identified with that email",
    "413": "Body too large",
    "429": "Rate limited per key (track 1,000, identify 500, user-id 100 a minute); see Retry-After",
}
_SERVER_V1 = ("/api/v1/track", "/api/v1/identify")
# Called by pages, or keyed in the body (PostHog's api_key): no key header.
_KEYLESS = ("/e/{code}", "/ingest", "/ingest/event", "/api/send", "/api/event", "/batch/", "/capture/", "/i/v0/e/")


class Error(msgspec.Struct):
    error: str
    field: str | None


# path -> (request body type, success status, success body type (str: text/plain) or None for
# empty, error body type, error statuses)
INGEST_OPERATIONS: dict[str, tuple[Any, str, Any, Any, dict[str, str]]] = {
    "/api/ingest/server/pageview": (server_api.ServerRecord, "202", None, Error, _ERRORS),
    "/api/ingest/server/event": (server_api.ServerRecord, "202", None, Error, _ERRORS),
    "/api/ingest/server/batch": (
        list[server_api.BatchRecord] | server_api.BatchEnvelope,
        "202",
        server_api.BatchResult,
        Error,
        _ERRORS,
    ),
    "/api/v1/collect/pageview": (
        collect_api.CollectPageview, "200", collect_api.CollectResult, collect_api.CollectError, _COLLECT_ERRORS
    ),
    "/api/v1/collect/event": (
        collect_api.CollectEvent, "200", collect_api.CollectResult, collect_api.CollectError, _COLLECT_ERRORS
    ),
    "/api/sites/{site}/ingest/ai-fetch": (ai_fetch.AiFetchRecord, "202", None, Error, _ERRORS),
    "/ingest": (browser_api.BrowserPageview, "202", None, Error, _PUBLIC_ERRORS),
    "/ingest/event": (browser_api.BrowserEvent, "202", None, Error, _PUBLIC_ERRORS),
    "/v1/batch": (segment_api.SegmentBatch, "200", segment_api.SegmentResult, Error, _SEGMENT_ERRORS),
    **{
        path: (posthog_api.PostHogBody, "200", posthog_api.PostHogResult, Error, _POSTHOG_ERRORS)
        for path in ("/batch/", "/capture/", "/i/v0/e/")
    },
    "/api/v1/track": (track_api.TrackRequest, "202", track_api.Success, Error, _SERVER_V1_ERRORS),
    "/api/v1/identify": (track_api.IdentifyRequest, "202", track_api.Success, Error, _SERVER_V1_ERRORS),
    "/api/send": (umami_api.UmamiSend, "200", None, Error, _PUBLIC_ERRORS),
    "/api/event": (plausible_api.PlausibleEvent, "202", str, plausible_api.PlausibleErrors, _PLAUSIBLE_ERRORS),
    "/e/{code}": (public_api.PublicRecord, "202", public_api.PublicResult, Error, _PUBLIC_ERRORS),
}


def patch_openapi(document: dict[str, Any]) -> dict[str, Any]:
    types = [t for op in INGEST_OPERATIONS.values() for t in (op[0], op[2], op[3]) if t is not None]
    types.append(track_api.UserId)
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    document.setdefault("components", {}).setdefault("schemas", {}).update(components)
    security: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    document["components"].setdefault("securitySchemes", {}).update(
        {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            "basic": {"type": "http", "scheme": "basic"},
        }
    )
    index = 0
    for path, (_, status, success, _error, errors) in INGEST_OPERATIONS.items():
        request_schema = schemas[index]
        index += 1
        op = document["paths"][path.rstrip("/")]["post"]  # Litestar drops a trailing slash
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": request_schema}},
        }
        ok: dict[str, Any] = {"description": "Accepted: durable in the spool"}
        if success is not None:
            ok["content"] = {"text/plain" if success is str else "application/json": {"schema": schemas[index]}}
            index += 1
        error_ref = schemas[index]
        index += 1
        responses = {status: ok}
        for code, text in errors.items():
            responses[code] = {"description": text, "content": {"application/json": {"schema": error_ref}}}
        op["responses"] = responses
        op["security"] = (
            [] if path in _KEYLESS
            else [{"basic": []}] if path == "/v1/batch"
            else [{"apiKey": []}] if path in _SERVER_V1
            else security
        )
    user_id = document["paths"].get("/api/v1/user-id", {}).get("get")
    if user_id is not None:  # a GET, described by Litestar but for its key and answers
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        user_id["security"] = [{"apiKey": []}]
        user_id["responses"] = {
            "200": {"description": "The visitor's stable user id",
                    "content": {"application/json": {"schema": schemas[index]}}},
            **{code: {"description": text, "content": error}
               for code, text in _SERVER_V1_ERRORS.items() if code in ("400", "401", "429")},
        }
    return document
