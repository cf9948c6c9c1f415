"""Plausible's event API, as its tracker (script or @plausible-analytics/tracker) sends: POST /api/event.

    User-Agent: <the visitor's>      Content-Type: text/plain (the tracker's) or application/json
    {"n": "pageview" | "engagement" | <custom name>, "u": <page URL>, "d"?: "site.example[,rollup.example]",
     "r"?: <referrer>, "p"?: {props}, "$"?: {"amount", "currency"}, "i"?: bool, "h"?: 1,
     "e"?: <engaged ms>, "sd"?: <scroll depth %>}

Long names (`name`, `url`, `domain`, `referrer`, `props`, `revenue`, `interactive`, `hashMode`)
and the older `m`/`meta` for props are taken too. `d` names Footfall sites by domain, else the
URL's host names one; a list records the event for every listed site that exists, as Plausible
does for roll-ups. Unknown domains are answered alike and stored nowhere, since the tracker runs
in pages. The visitor is the caller's address (X-Forwarded-For only from trusted proxies) and
User-Agent; DNT and GPC mean not tracked unless the site opts out; the time is the time of receipt.

- `pageview` is a pageview; any other name a custom event with `p` as its (flat) properties and
  `$` as its revenue (an invalid revenue is ignored, as Plausible ignores it).
- `engagement` (time on page and scroll depth, sent when a page is left or hidden) is kept as a
  custom event named "engagement" on that page, with the properties `engagement_ms` and
  `scroll_depth` beside the page's own.
- `h: 1` (hash-based routing) keeps the fragment's route as part of the path: `/#/pricing`. A
  fragment's own query (`#/a?x=1`) and parameter-only fragments (`#access_token=...`) are dropped,
  like every query string.
- `i: false` (a non-interactive event) is accepted; Footfall has no place for it.

Answers as Plausible's: 202 `ok` (text/plain); 400 {"errors": {"<field>": ["<message>"]}}
for a body that is not a JSON object or a missing or invalid field (and 413, 415 and 429 in
that shape, under "request").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from footfall.enrich import urls
from footfall.ingest.http import Accepted, IngestError, decode_json, visitor_address
from footfall.ingest.model import Hit, PropValue
from footfall.ingest.public_api import asks_not_to_be_tracked, check_browser_body, visitor_agent
from footfall.ingest.server_api import MAX_PROPERTIES, MAX_PROPERTY_KEY, MAX_PROPERTY_VALUE, now_us
from footfall.meta import Site
from footfall.runtime import Runtime

SOURCE_API = "plausible"
MAX_BODY = 16 * 1024
PAGEVIEW = "pageview"
ENGAGEMENT = "engagement"
MAX_NAME = 120  # Plausible's limit on event names
# Plausible ignores engagement times of 30 days or more (an old tracker sent nonsense).
MAX_ENGAGEMENT_MS = 30 * 24 * 3600 * 1000
# Revenue amounts the events table holds (DECIMAL(18, 4)); a larger one is no revenue.
MAX_REVENUE = 1e14

Lenient = Annotated[Any, msgspec.Meta(description="An object, or the object as JSON text; anything else is ignored")]
Count = int | str  # the tracker sends integers; Plausible takes their decimal text too


class PlausibleEvent(msgspec.Struct, kw_only=True):
    """Plausible's event body: the short names its tracker sends, or the long ones."""

    n: Annotated[str | int, msgspec.Meta(description="Event name: pageview, engagement or a custom name")] | None = None
    name: str | int | None = None
    u: Annotated[str, msgspec.Meta(description="The page's full URL")] | None = None
    url: str | None = None
    d: Annotated[str, msgspec.Meta(description="Site domain, or a comma-separated list of them")] | None = None
    domain: str | None = None
    r: str | None = None
    referrer: str | None = None
    p: Annotated[Any, msgspec.Meta(description="Custom properties: a flat object, or it as JSON text")] = None
    props: Lenient = None
    m: Lenient = None
    meta: Lenient = None
    dollar: Annotated[Any, msgspec.Meta(description="Revenue: {amount, currency (ISO 4217)}")] = msgspec.field(
        default=None, name="$"
    )
    revenue: Lenient = None
    i: bool | None = None
    interactive: bool | None = None
    h: Annotated[int, msgspec.Meta(description="1: hash-based routing")] | None = None
    hash_mode: int | None = msgspec.field(default=None, name="hashMode")
    e: Annotated[Count, msgspec.Meta(description="engagement: engaged time in ms")] | None = None
    sd: Annotated[Count, msgspec.Meta(description="engagement: scroll depth in %")] | None = None
    v: Annotated[Any, msgspec.Meta(description="Tracker version (ignored)")] = None


class PlausibleErrors(msgspec.Struct):
    errors: dict[str, list[str]]


OK = b"ok"
TEXT = "text/plain; charset=utf-8"
UNPARSABLE = "Unable to parse request body as json"
BLANK = "can't be blank"
BLANK_ENGAGEMENT = "engagement event requires a valid integer value for at least one of 'sd' or 'e' fields"
# A body field, short or long, as Plausible names it in its errors.
_ERROR_KEYS = {
    "n": "event_name", "name": "event_name", "u": "url", "d": "domain", "r": "referrer", "i": "interactive",
    "h": "hash_mode", "hashMode": "hash_mode", "e": "engagement_time", "sd": "scroll_depth",
}
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_encoder = msgspec.json.Encoder()


class Invalid(IngestError):
    """A 400 naming every field at fault, as Plausible's {"errors": {field: [messages]}}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        field, messages = next(iter(errors.items()))
        super().__init__(400, f"{field} {messages[0]}", field)
        self.errors = errors


def error_body(exc: IngestError) -> bytes:
    errors = exc.errors if isinstance(exc, Invalid) else {exc.field or "request": [exc.message]}
    return _encoder.encode(PlausibleErrors(errors))


def event(rt: Runtime, caller_ip: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    check_browser_body(headers, body)
    try:
        record: PlausibleEvent = decode_json(body, PlausibleEvent)
    except IngestError as exc:  # broken JSON, not an object, or a field of the wrong type
        field = exc.field.split(".", 1)[0] if exc.field else None
        raise Invalid({_ERROR_KEYS.get(field, field): [exc.message]} if field else {"request": [UNPARSABLE]}) from None
    hits = _hits(rt, record, caller_ip, headers)
    events = [e for e in map(rt.enricher.enrich, hits) if e is not None]
    return Accepted(rt.accept(events) if events else None, OK, 202, TEXT)


def _hits(rt: Runtime, record: PlausibleEvent, caller_ip: str, headers: Mapping[str, str]) -> list[Hit]:
    """One Hit per listed site that exists and tracks this visitor; 400 for what Plausible refuses."""
    errors: dict[str, list[str]] = {}
    name = _name(record, errors)
    page = _page(record, errors)
    domains = _domains(record, page, errors)
    engagement = _engagement(record, errors) if name == ENGAGEMENT else {}
    props = _props(_first(record.p, record.props, record.m, record.meta), errors)
    if errors or page is None:  # no page: `url` is among the errors
        raise Invalid(errors)
    sites: dict[int, Site] = {}
    for domain in domains:
        site = rt.sites.by_hostname(domain) if domain else None
        if site is not None and not (site.settings.respect_dnt and asks_not_to_be_tracked(headers)):
            sites.setdefault(site.id, site)
    if not sites:  # unknown domains and opted-out visitors: answered alike, nothing stored
        return []
    amount, currency = _revenue(_first(record.dollar, record.revenue)) if name != ENGAGEMENT else (None, None)
    received = now_us()
    ip = visitor_address(caller_ip)
    agent = visitor_agent(headers.get("user-agent", ""))
    referrer = _first(record.r, record.referrer) or ""
    return [
        Hit(
            site_id=site.id,
            kind="pageview" if name == PAGEVIEW else "event",
            page=page,
            ts_us=received,
            received_us=received,
            ip=ip,
            user_agent=agent,
            source_api=SOURCE_API,
            name="" if name == PAGEVIEW else name,
            referrer=referrer[: urls.MAX_URL_LENGTH],  # cut, as Plausible cuts it
            props={**props, **engagement},
            revenue_amount=amount,
            revenue_currency=currency,
        )
        for site in sites.values()
    ]


def _first(*values: Any) -> Any:
    """The first value given: a short name's, else its long name's (as Plausible reads them)."""
    return next((v for v in values if v is not None), None)


def _name(record: PlausibleEvent, errors: dict[str, list[str]]) -> str:
    value = _first(record.n, record.name)
    name = str(value).strip() if value is not None else ""
    if not name:
        errors["event_name"] = [BLANK]
    elif len(name) > MAX_NAME:
        errors["event_name"] = [f"should be at most {MAX_NAME} character(s)"]
    return name


def _page(record: PlausibleEvent, errors: dict[str, list[str]]) -> urls.PageUrl | None:
    url = _first(record.u, record.url)
    if url is None:
        errors["url"] = ["is required"]
        return None
    try:
        page = urls.split_page_url(url)
    except ValueError as exc:
        errors["url"] = [str(exc)]
        return None
    if _first(record.h, record.hash_mode) == 1:
        route = _hash_route(urlsplit(url.strip()).fragment)
        if route:
            page = page._replace(pathname=urls.clean_path(f"{page.pathname}#{route}"))
    return page


def _hash_route(fragment: str) -> str:
    """A hash router's route (`/pricing` of `#/pricing?ref=x`), never parameters: the
    fragment's query is cut, and a fragment of parameters (`#access_token=...`) is no route."""
    route = fragment.split("?", 1)[0]
    return "" if "=" in route or "&" in route else route


def _domains(record: PlausibleEvent, page: urls.PageUrl | None, errors: dict[str, list[str]]) -> list[str]:
    raw = _first(record.d, record.domain)
    if raw is None:
        return [page.hostname] if page is not None else []
    if not raw.strip():
        errors["domain"] = [BLANK]
        return []
    return [urls.normalize_host(d) for d in raw.split(",")]


def _props(value: Any, errors: dict[str, list[str]]) -> dict[str, PropValue]:
    """Plausible's custom properties: an object or its JSON text, flat; nested and blank
    values are left out, at most 30 are kept, and a key or value past its limit is a 400."""
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return {}
    if not isinstance(value, dict):
        return {}
    props: dict[str, PropValue] = {}
    for key, prop in value.items():
        if len(props) >= MAX_PROPERTIES:
            break
        if not isinstance(prop, str | int | float | bool) or not key.strip() or not str(prop).strip():
            continue
        if len(key) > MAX_PROPERTY_KEY or (isinstance(prop, str) and len(prop) > MAX_PROPERTY_VALUE):
            errors["props"] = [f"keys should have at most {MAX_PROPERTY_KEY} characters "
                               f"and values {MAX_PROPERTY_VALUE} characters"]
            break
        props[key] = prop
    return props


def _engagement(record: PlausibleEvent, errors: dict[str, list[str]]) -> dict[str, PropValue]:
    """Engaged time and scroll depth as properties; Plausible needs at least one of them."""
    found: dict[str, PropValue] = {}
    engaged = _count(record.e)
    if engaged is not None and 0 <= engaged < MAX_ENGAGEMENT_MS:
        found["engagement_ms"] = engaged
    depth = _count(record.sd)
    if depth is not None and depth >= 0:
        found["scroll_depth"] = min(depth, 100)
    if not found:
        errors["event_name"] = [BLANK_ENGAGEMENT]
    return found


def _count(value: int | str | None) -> int | None:
    if isinstance(value, str):
        return int(value) if _INTEGER.fullmatch(value) else None
    return value


def _revenue(value: Any) -> tuple[float | None, str | None]:
    """{amount, currency} (or its JSON text) with an ISO 4217 code and a finite decimal amount;
    anything else is no revenue, as in Plausible."""
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None, None
    if not isinstance(value, dict):
        return None, None
    amount, currency = value.get("amount"), value.get("currency")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isalpha()
            and currency.isupper()):
        return None, None
    if isinstance(amount, str) and _DECIMAL.fullmatch(amount.strip()):
        amount = float(amount)
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return None, None
    try:
        number = float(amount)
    except OverflowError:  # an integer past a float's range
        return None, None
    return (number, currency) if math.isfinite(number) and abs(number) < MAX_REVENUE else (None, None)


__all__ = ["MAX_BODY", "error_body", "event"]
