"""Invariant 4 under fire: random and mutated bodies never make the ingest API fail with a 5xx.

One live server for the module. Hypothesis drives our own body generators; schemathesis drives
the server's OpenAPI document. Every answer is a 202 or the contract's JSON error, and
whatever was acknowledged must reach the store (nothing undecodable, no writer error).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.conftest import Server, Site, cli, cli_json

PAGEVIEW = "/api/ingest/server/pageview"
EVENT = "/api/ingest/server/event"
BATCH = "/api/ingest/server/batch"
ENDPOINTS = (PAGEVIEW, EVENT, BATCH)
PLAUSIBLE = "/api/event"  # its own answers: tests/test_plausible_api.py fuzzes its bodies
STATS_QUERY = "/api/v2/query"  # Plausible's Stats API: {"error": ...}; tests/test_query_api.py fuzzes its bodies
ERROR_STATUSES = {400, 401, 403, 404, 413, 415, 422, 429}

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = Server(tmp_path_factory.mktemp("fuzz") / "data").start()
    site = Site(server)
    cli(server.data_dir, "sites", "add", "other.org")  # configured, but not the token's site
    for name, scope, limit in (
        ("sites-admin", "sites.manage", []),
        ("sites-other", "sites.manage", ["--site", "other.org"]),
        ("collector", "collect:write", []),
    ):
        created = cli_json(server.data_dir, "tokens", "create", "--name", name, "--scope", scope, *limit)
        site_tokens[name] = str(created["token"])
    site_tokens["server-key"] = str(cli_json(server.data_dir, "sites", "server-key", "example.com")["server_key"])
    yield site
    site.client.close()
    server.kill()


# Tokens for the sites API. Fuzzed paths name sites by number too ("1" is example.com), so
# changes go through a token limited to other.org: example.com, which the ingest fuzzers
# write to, is never removed. Only adding needs the unlimited one.
site_tokens: dict[str, str] = {}


# -- strategies ----------------------------------------------------------------------------

huge_ints = st.integers(min_value=-(2**130), max_value=2**130)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)

HOSTS = ["example.com", "www.example.com", "WWW.EXAMPLE.COM", "other.org", "unknown.example", "example.com."]
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
moments = st.datetimes(min_value=dt.datetime(1985, 1, 1), max_value=dt.datetime(2040, 1, 1), timezones=offsets)


def rfc3339(moment: dt.datetime) -> str:
    text = moment.isoformat()
    return text.replace("+00:00", "Z") if moment.utcoffset() == dt.timedelta(0) else text


urls = st.one_of(
    st.builds(
        lambda scheme, host, path, query: f"{scheme}://{host}/{path}{query}",
        st.sampled_from(["http", "https", "HTTPS", "ftp", "javascript"]),
        st.sampled_from(HOSTS),
        st.text(max_size=30),
        st.sampled_from(["", "?utm_source=x", "?utm_source=&utm_medium=%ZZ", "?a=b&email=x%40y.z", "#frag"]),
    ),
    st.text(max_size=60),
)
timestamps = st.one_of(
    moments.map(rfc3339),
    moments.map(lambda m: m.replace(tzinfo=None).isoformat()),  # no offset
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
        fullmatch=True,
    ),
    st.text(max_size=30),
)
ips = st.one_of(st.ip_addresses().map(str), st.text(max_size=20), st.just(" 203.0.113.42 "))
props = st.dictionaries(st.text(max_size=20), scalars, max_size=6) | json_values

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "url": urls,
    "timestamp": timestamps,
    "visitor_ip": ips,
    "user_agent": st.text(max_size=80),
    "name": st.text(max_size=40),
    "referrer": urls,
    "language": st.text(max_size=12),
    "session_id": st.text(max_size=20),
    "page_id": st.text(max_size=20),
    "properties": props,
    "screen_width": st.integers() | huge_ints,
    "dnt": st.booleans(),
    "type": st.sampled_from(["pageview", "event", "click", ""]),
    "utm_source": st.text(max_size=10),
}

# Each field either plausible for its name or any JSON value at all; any subset of fields.
records = st.fixed_dictionaries({}, optional={k: v | json_values for k, v in FIELDS.items()})
bodies = st.one_of(records, st.dictionaries(st.text(max_size=12), json_values, max_size=6), json_values)


def valid_record(moment: dt.datetime) -> dict[str, Any]:
    return {
        "url": "https://www.example.com/docs/start?utm_source=newsletter",
        "timestamp": rfc3339(moment),
        "visitor_ip": "203.0.113.42",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
        "name": "signup_started",
        "referrer": "https://search.example/",
        "language": "en-US",
        "session_id": "018f5b11-43cb-7c0e-9d2d-3f0e7c68a001",
        "page_id": "018f5b11-43cb-7c0e-9d2d-3f0e7c68a002",
        "properties": {"plan": "pro", "seats": 3},
        "screen_width": 1280,
        "type": "event",
    }


recent = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2026, 1, 1), timezones=offsets)


@st.composite
def mutated_records(draw: st.DrawFn) -> dict[str, Any]:
    """A fully valid record with one to three fields removed, replaced or added."""
    record = valid_record(draw(recent))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        action = draw(st.sampled_from(["drop", "replace", "plausible", "add"]))
        key = draw(st.sampled_from(sorted(FIELDS)))
        if action == "drop":
            record.pop(key, None)
        elif action == "replace":
            record[key] = draw(json_values)
        elif action == "plausible":
            record[key] = draw(FIELDS[key])
        else:
            record[draw(st.text(max_size=12))] = draw(json_values)
    return record


# JSON numbers as text, beyond what Python floats or 64-bit integers hold ([0-9]: `\d` is Unicode).
NUMBER_LITERALS = st.from_regex(r"-?(0|[1-9][0-9]{0,400})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,5})?", fullmatch=True)


# -- posting and judging -------------------------------------------------------------------


def encode(body: Any, ascii_only: bool) -> bytes:
    """JSON text; lone surrogates either escaped or as the (invalid UTF-8) bytes themselves."""
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def wrap_for(path: str, body: Any, envelope: bool) -> Any:
    if path != BATCH:
        return body
    items = body if isinstance(body, list) else [body]
    return {"events": items} if envelope else items


def post(live: Site, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return live.client.post(path, content=content, headers=headers or live.headers())


# Records acknowledged with a 202. Each must reach the store: as an event, or (bots, AI
# crawlers, referrer spam) as a hit counted under its reason for not being one; dnt records
# are acknowledged only.
acknowledged = {"stored": 0}


def count_stored(path: str, body: Any, r: httpx.Response) -> None:
    if path == BATCH:
        items = body["events"] if isinstance(body, dict) else body
        rejected = {x["index"] for x in r.json()["rejected"]}
        kept = [x for i, x in enumerate(items) if i not in rejected]
    else:
        kept = [body]
    acknowledged["stored"] += sum(1 for x in kept if x.get("dnt") is not True)


def judge(r: httpx.Response, path: str, body: Any) -> None:
    """A 202 in the contract's shape, or the contract's JSON error; never a 5xx."""
    event(f"{path.rsplit('/', 1)[1]} {r.status_code}")  # --hypothesis-show-statistics shows the mix
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code == 202:
        count_stored(path, body, r)
        if path == BATCH:
            result = r.json()
            assert set(result) == {"accepted", "rejected"}, result
            assert isinstance(result["accepted"], int) and result["accepted"] >= 0
            for rejection in result["rejected"]:
                assert set(rejection) == {"index", "error", "field"}, rejection
                assert isinstance(rejection["error"], str) and rejection["error"]
                assert rejection["field"] is None or isinstance(rejection["field"], str)
            if isinstance(body, dict) and isinstance(body.get("events"), list):
                body = body["events"]
            if isinstance(body, list):
                assert result["accepted"] + len(result["rejected"]) == len(body), result
                assert sorted(x["index"] for x in result["rejected"]) == [x["index"] for x in result["rejected"]]
        else:
            assert r.content == b"", r.text
        return
    assert r.status_code in ERROR_STATUSES, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    error = r.json()
    assert isinstance(error, dict) and set(error) == {"error", "field"}, error
    assert isinstance(error["error"], str) and error["error"]
    assert error["field"] is None or isinstance(error["field"], str)


@FUZZ
@given(path=st.sampled_from(ENDPOINTS), body=bodies, envelope=st.booleans(), ascii_only=st.booleans())
def test_random_bodies(live: Site, path: str, body: Any, envelope: bool, ascii_only: bool) -> None:
    body = wrap_for(path, body, envelope)
    judge(post(live, path, encode(body, ascii_only)), path, body)


@FUZZ
@given(path=st.sampled_from(ENDPOINTS), data=st.data(), envelope=st.booleans())
def test_mutated_valid_records(live: Site, path: str, data: st.DataObject, envelope: bool) -> None:
    if path == BATCH:
        body: Any = data.draw(st.lists(mutated_records() | st.builds(valid_record, recent), min_size=1, max_size=8))
    else:
        body = data.draw(mutated_records())
    body = wrap_for(path, body, envelope)
    judge(post(live, path, encode(body, ascii_only=True)), path, body)


@settings(FUZZ, max_examples=150)
@given(
    path=st.sampled_from(ENDPOINTS),
    field=st.sampled_from(["properties", "screen_width", "timestamp", "name", "url"]),
    number=NUMBER_LITERALS,
    moment=recent,
)
def test_huge_number_literals(live: Site, path: str, field: str, number: str, moment: dt.datetime) -> None:
    record = valid_record(moment)
    record[field] = {"n": "__NUMBER__"} if field == "properties" else "__NUMBER__"
    text = json.dumps(wrap_for(path, record, envelope=False)).replace('"__NUMBER__"', number)
    judge(post(live, path, text.encode()), path, json.loads(text))


@settings(FUZZ, max_examples=150)
@given(
    path=st.sampled_from(ENDPOINTS),
    field=st.sampled_from(["url", "user_agent", "name", "referrer", "language", "session_id", "zz", "properties"]),
    raw=st.binary(min_size=1, max_size=12),
    moment=recent,
)
def test_raw_bytes_inside_strings(live: Site, path: str, field: str, raw: bytes, moment: dt.datetime) -> None:
    """Arbitrary bytes (invalid UTF-8, quotes, controls) where a JSON string's text goes."""
    record = valid_record(moment)
    record[field] = {"__BYTES__": 1} if field == "properties" else "__BYTES__"
    text = json.dumps(wrap_for(path, record, envelope=False)).encode()
    content = text.replace(b"__BYTES__", raw)
    r = post(live, path, content)
    body = None
    if r.status_code == 202:  # the bytes were valid, or in a field nobody reads
        body = json.loads(content.decode("utf-8", "replace"), strict=False)
    judge(r, path, body)


# Printable ASCII without edge spaces: what an HTTP client will put in a header at all.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)


@settings(FUZZ, max_examples=200)
@given(
    path=st.sampled_from(ENDPOINTS),
    content=st.binary(max_size=300),
    content_type=st.none() | st.sampled_from(["application/json", "text/plain", "application/x+json"]) | header_text,
    auth=st.sampled_from(["valid", "none", "garbage", "api-key"]),
    garbage=header_text,
)
def test_random_bytes_and_headers(
    live: Site, path: str, content: bytes, content_type: str | None, auth: str, garbage: str
) -> None:
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if auth == "valid":
        headers["Authorization"] = f"Bearer {live.token}"
    elif auth == "garbage":
        headers["Authorization"] = garbage
    elif auth == "api-key":
        headers["X-Api-Key"] = garbage or live.token
    r = live.client.post(path, content=content, headers=headers)
    judge(r, path, json.loads(content) if r.status_code == 202 else None)


# -- schemathesis over the OpenAPI document --------------------------------------------------
# schemathesis 4.32's lazy loader (`schemathesis.pytest.from_fixture`) fails on pytest 9
# (it sets `Function._nodeid`, which pytest 9 no longer has), and the eager
# `@schema.parametrize()` needs the server before collection. So each operation's
# `as_strategy()` is driven by Hypothesis here, inside an ordinary test.


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_openapi_no_server_errors(live: Site, mode: schemathesis.GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(live.server.url + "/api/openapi.json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= set(ENDPOINTS)
    for operation in operations:
        if mode is schemathesis.GenerationMode.NEGATIVE and not list(operation.body):
            continue  # no body: any string is a valid path segment, there is nothing to get wrong
        drive(live, operation, mode)


def drive(live: Site, operation: Any, mode: schemathesis.GenerationMode) -> None:
    secret = live.token
    collect = operation.path.startswith("/api/v1/collect/")
    if collect:
        secret = site_tokens["collector"]
    elif operation.path.startswith("/api/sites") and "ingest" not in operation.path:
        adding = operation.path == "/api/sites" and operation.method.upper() == "POST"
        secret = site_tokens["sites-admin" if adding else "sites-other"]
    auth = {"Authorization": f"Bearer {secret}"}
    if operation.path.startswith("/api/v1/") and not collect:  # seed 004: the site's secret key
        auth = {"X-API-Key": site_tokens["server-key"]}

    @settings(max_examples=75, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=live.server.url, headers=auth, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])
        # Random tracking codes and Plausible domains: answered, nothing stored.
        # And identify calls, which store no event.
        public = operation.path.startswith("/e/") or operation.path in (PLAUSIBLE, "/api/v1/identify")
        if operation.path not in ENDPOINTS and response.status_code == 202 and not public:
            acknowledged["stored"] += 1  # an AI fetch the generator got right
        if collect and response.status_code == 200:
            acknowledged["stored"] += 1  # a collected record, or a bot's counted as one
        if response.status_code >= 400 and operation.path.startswith("/api/"):
            error = response.json()  # every API error is its contract's one JSON shape
            if collect:  # seed 001: {"ok": false, ...}
                assert isinstance(error, dict) and error.get("ok") is False, (case.path, error)
            elif operation.path == PLAUSIBLE:  # Plausible's own: {"errors": {field: [messages]}}
                assert isinstance(error, dict) and set(error) == {"errors"} and error["errors"], (case.path, error)
            elif operation.path == STATS_QUERY:  # the Stats API's, as Plausible's: {"error": message}
                assert isinstance(error, dict) and set(error) == {"error"} and error["error"], (case.path, error)
            else:
                assert isinstance(error, dict) and set(error) == {"error", "field"}, (case.path, error)
        if operation.path in ENDPOINTS:  # and the contract's own shapes, as above
            headers = [(k, v) for k, values in response.headers.items() for v in values]
            judge(httpx.Response(response.status_code, headers=headers, content=response.content),
                  operation.path, case.body)

    run()


# -- afterwards: the acknowledged records were all stored ----------------------------------


def test_accepted_records_all_reached_the_store(live: Site) -> None:
    """Runs last: fuzzed records that got a 202 were decodable and written, nothing stalled."""
    ready = live.server.wait_drained()
    writer = ready["writer"]
    assert writer["last_error"] is None, writer
    assert writer["undecodable_records"] == 0 and writer["torn_records_dropped"] == 0, writer
    assert acknowledged["stored"] > 0, "the fuzzers never produced an accepted record"
    shown = cli_json(live.server.data_dir, "sites", "show", "example.com")
    records = shown["events"] + sum(shown["not_counted"].values())
    assert records == acknowledged["stored"] == writer["events_committed"], (shown, ready)
    log = live.server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "unhandled error" not in log, log[-4000:]
