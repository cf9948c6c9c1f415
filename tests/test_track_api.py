"""Seed 004's server API (/api/v1/track, /identify, /user-id) against a live server: the
seed's examples verbatim (curl bodies, its Python and Node functions), secret keys and their
rotation, per-key rate limits, sessions, identified visitors and what is kept of them."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, Site, cli, cli_json
from tests.test_enrichment_e2e import rows
from tests.test_privacy import files_under

SEED_TRACK = {"userId": "hm_usr_a1b2c3d4e5f6", "eventName": "subscription_renewed",
              "properties": {"plan": "pro", "amount": 29.99, "currency": "USD"}}
SEED_TRACK_BY_EMAIL = {"email": "jane@example.com", "eventName": "invoice_paid",
                       "properties": {"amount": 99.99, "currency": "USD"}}
SEED_IDENTIFY = {"userId": "hm_usr_a1b2c3d4e5f6",
                 "traits": {"userId": "usr_123", "email": "jane@example.com", "name": "Jane Doe",
                            "plan": "enterprise", "company": "Acme Inc"}}
SEED_LATEST = {"userId": "hm_usr_a1b2c3d4e5f6", "eventName": "email_opened", "session": "latest",
               "properties": {"campaign": "onboarding_day_3"}}
SEED_NEW = {"visitorId": "abc123", "eventName": "webhook_received", "session": "new",
            "properties": {"source": "stripe"}}
OK = {"success": True}


class Api:
    """A live server with example.com and its server key."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.key = make_key(site)

    def post(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        return self.site.client.post(f"/api/v1/{path}", json=body, headers={"X-API-Key": key or self.key})

    def user_id(self, visitor_id: str, key: str | None = None) -> httpx.Response:
        return self.site.client.get("/api/v1/user-id", params={"visitorId": visitor_id},
                                    headers={"X-API-Key": key or self.key})


def make_key(site: Site, domain: str = "example.com") -> str:
    return str(cli_json(site.server.data_dir, "sites", "server-key", domain)["server_key"])


@pytest.fixture
def api(site: Site) -> Iterator[Api]:
    yield Api(site)


def ago(**delta: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(**delta)).isoformat().replace("+00:00", "Z")


def test_seed_examples_verbatim(api: Api) -> None:
    for body in (SEED_TRACK, SEED_LATEST, SEED_NEW):
        r = api.post("track", body)
        assert (r.status_code, r.json()) == (202, OK), r.text
    r = api.post("identify", SEED_IDENTIFY)
    assert (r.status_code, r.json()) == (202, OK)
    r = api.user_id("abc123")
    assert r.status_code == 200 and set(r.json()) == {"userId"}
    assert r.json()["userId"].startswith("ff_usr_")
    # The site keeps no identified visitors (the default), so nobody was identified by email.
    r = api.post("track", SEED_TRACK_BY_EMAIL)
    assert r.status_code == 404 and "error" in r.json()


def test_the_seeds_python_and_node_examples(api: Api) -> None:
    """The seed's own client functions, with only the base URL and key pointed at us."""
    base = api.site.server.url + "/api/v1"
    python = textwrap.dedent(f"""
        import requests
        import os
        API_URL = {base!r}
        SECRET_KEY = os.environ["HIMETRICA_SECRET_KEY"]
        def track_event(user_id: str, event_name: str, properties: dict = None):
            response = requests.post(
                f"{{API_URL}}/track",
                headers={{"X-API-Key": SECRET_KEY, "Content-Type": "application/json"}},
                json={{"userId": user_id, "eventName": event_name, "properties": properties or {{}}}},
            )
            response.raise_for_status()
            return response.json()
        print(track_event("hm_usr_abc123", "subscription_renewed", {{"plan": "pro", "amount": 29.99}}))
    """)
    env = {"HIMETRICA_SECRET_KEY": api.key, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'success': True}"
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node for the seed's Node.js example")
    script = f"""
    const API_URL = {json.dumps(base)};
    const SECRET_KEY = process.env.HIMETRICA_SECRET_KEY;
    async function trackServerEvent(userId, eventName, properties = {{}}) {{
      const response = await fetch(`${{API_URL}}/track`, {{
        method: "POST",
        headers: {{ "X-API-Key": SECRET_KEY, "Content-Type": "application/json" }},
        body: JSON.stringify({{ userId, eventName, properties }}),
      }});
      if (!response.ok) {{ const error = await response.json(); throw new Error(error.error); }}
      return response.json();
    }}
    (async () => {{
      const paid = await trackServerEvent("hm_usr_abc123", "invoice_paid", {{ amount: 99.99, currency: "USD" }});
      console.log(JSON.stringify(paid));
      try {{ await trackServerEvent("hm_usr_abc123", "not a valid name"); }} catch (e) {{ console.log(e.message); }}
    }})();
    """
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()
    assert json.loads(first) == OK
    assert "eventName" in second or "regex" in second
    stored = rows(api.site, "SELECT name, props, source_api, user_id FROM events ORDER BY name")
    assert [(r[0], dict(r[1]), r[2], r[3]) for r in stored] == [
        ("invoice_paid", {"amount": "99.99", "currency": "USD"}, "server_v1", None),
        ("subscription_renewed", {"plan": "pro", "amount": "29.99"}, "server_v1", None),
    ]


def test_events_are_stored_with_time_properties_and_no_session(api: Api) -> None:
    then = ago(days=3)
    assert api.post("track", {**SEED_TRACK, "timestamp": then}).status_code == 202
    assert api.post("track", {"visitorId": "v1", "eventName": "nested", "properties": {
        "order": {"id": 7, "items": ["a", "b"]}, "url": "https://example.com/checkout"}}).status_code == 202
    stored = rows(api.site, "SELECT name, epoch_us(ts), pathname, session_id, props, browser, country "
                            "FROM events ORDER BY ts")
    backfilled, nested = stored
    assert backfilled[0] == "subscription_renewed"
    assert backfilled[1] == int(dt.datetime.fromisoformat(then).timestamp() * 1_000_000)
    assert backfilled[2] == "/" and backfilled[3] is None  # no page, no session (the default)
    assert backfilled[5:] == ("Other", "")  # a backend's call says nothing of device or place
    assert nested[2] == "/checkout"  # a `url` property names the page
    assert json.loads(dict(nested[4])["order"]) == {"id": 7, "items": ["a", "b"]}


def test_user_id_is_stable_per_visitor_and_site_and_tracks_the_same_visitor(api: Api) -> None:
    first = api.user_id("abc123").json()["userId"]
    assert api.user_id("abc123").json()["userId"] == first
    assert api.user_id("abc124").json()["userId"] != first
    api.site.server.stop()
    api.site.server.start()
    assert api.user_id("abc123").json()["userId"] == first  # the key that makes it is kept
    # visitorId and the userId /user-id gave for it are one visitor.
    assert api.post("track", {"visitorId": "abc123", "eventName": "a"}).status_code == 202
    assert api.post("track", {"userId": first, "eventName": "b"}).status_code == 202
    assert api.post("track", {"visitorId": "someone-else", "eventName": "c"}).status_code == 202
    visitors = dict(rows(api.site, "SELECT name, visitor_id FROM events"))
    assert visitors["a"] == visitors["b"] != visitors["c"]


def test_sessions_none_new_and_latest(api: Api) -> None:
    # Within one UTC day, the span of a visitor hash: from 00:30 today, or yesterday's evening
    # before 06:00.
    now = dt.datetime.now(dt.UTC)
    base = now.replace(hour=0, minute=30, second=0, microsecond=0)
    if now.hour < 6:
        base -= dt.timedelta(hours=6)

    def at(minutes: int) -> str:
        return (base + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    sent = [
        {"eventName": "none", "timestamp": at(0)},
        {"eventName": "latest_without_visit", "session": "latest", "timestamp": at(30)},
        {"eventName": "new", "session": "new", "timestamp": at(60)},
        # Two hours on, far past the 30-minute gap: "latest" still joins that visit.
        {"eventName": "latest", "session": "latest", "timestamp": at(180)},
        {"eventName": "later_none", "timestamp": at(181)},
    ]
    for body in sent:
        assert api.post("track", {"visitorId": "s", **body}).status_code == 202
    assert api.post("track", {"visitorId": "other", "eventName": "other_latest", "session": "latest",
                              "timestamp": at(182)}).status_code == 202
    sessions = dict(rows(api.site, "SELECT name, session_id FROM events"))
    assert sessions["none"] is None and sessions["later_none"] is None
    assert sessions["latest_without_visit"] is None and sessions["other_latest"] is None
    assert sessions["new"] is not None and sessions["latest"] == sessions["new"]
    day = base.date().isoformat()
    stats = api.site.stats(day, day)
    assert stats["totals"]["visits"] == 1 and stats["totals"]["events"] == 6, stats["totals"]


def test_caller_session_ids_cannot_pose_as_session_modes(site: Site) -> None:
    body = {"url": "https://example.com/", "timestamp": ago(minutes=1), "visitor_ip": "198.51.100.1",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "session_id": "\u0000none"}
    r = site.post("/api/ingest/server/pageview", body)
    assert r.status_code == 422 and r.json()["field"] == "session_id"


def test_keys_are_required_and_rotation_kills_the_old_one_at_once(api: Api) -> None:
    r = api.site.client.post("/api/v1/track", json=SEED_TRACK)
    assert r.status_code == 401 and "error" in r.json()
    assert api.post("track", SEED_TRACK, key="ff_sk_wrong").status_code == 401
    assert api.post("track", SEED_TRACK, key=api.site.token).status_code == 401  # an API token is not a key
    old = api.key
    new = make_key(api.site)  # the server is running: the change reaches it over the control socket
    assert new != old and new.startswith("ff_sk_")
    assert api.post("track", SEED_TRACK, key=old).status_code == 401
    assert api.user_id("x", key=old).status_code == 401
    assert api.post("track", SEED_TRACK, key=new).status_code == 202
    shown = cli_json(api.site.server.data_dir, "sites", "show", "example.com")
    assert shown["server_key"]["hint"] == new[:10] and "hash" not in json.dumps(shown["server_key"])
    assert new[:10] in shown["integrations"]["server API X-API-Key (seed 004)"]
    cli(api.site.server.data_dir, "sites", "server-key", "example.com", "--revoke")
    assert api.post("track", SEED_TRACK, key=new).status_code == 401
    # Only a hash of a key is kept.
    api.site.server.stop()
    assert not any(new.encode() in p.read_bytes() for p in files_under(api.site.server.data_dir))
    api.site.server.start()


def test_keys_over_the_sites_api(site: Site) -> None:
    admin = cli_json(site.server.data_dir, "tokens", "create", "--name", "admin", "--scope", "sites.manage")["token"]
    headers = {"Authorization": f"Bearer {admin}"}
    made = site.client.post("/api/sites/example.com/server-key", headers=headers)
    assert made.status_code == 201, made.text
    key = made.json()["server_key"]
    ok = site.client.post("/api/v1/track", json=SEED_TRACK, headers={"X-API-Key": key})
    assert ok.status_code == 202
    assert site.client.delete("/api/sites/example.com/server-key", headers=headers).json()["revoked"] is True
    assert site.client.post("/api/v1/track", json=SEED_TRACK, headers={"X-API-Key": key}).status_code == 401


@pytest.mark.parametrize(("path", "body", "field"), [
    ("track", {"eventName": "x"}, "userId"),
    ("track", {"userId": "u"}, "eventName"),
    ("track", {"userId": "u", "eventName": "has space"}, "eventName"),
    ("track", {"userId": "u", "eventName": "é"}, "eventName"),
    ("track", {"userId": "u", "eventName": "x" * 256}, "eventName"),
    ("track", {"userId": "u", "eventName": "x", "properties": {"blob": "y" * 10_300}}, "properties"),
    ("track", {"userId": "u", "eventName": "x", "properties": [1]}, "properties"),
    ("track", {"userId": "u", "eventName": "x", "session": "old"}, "session"),
    ("track", {"userId": "u", "eventName": "x", "timestamp": "yesterday"}, "timestamp"),
    ("track", {"userId": "u", "eventName": "x", "timestamp": "2099-01-01T00:00:00Z"}, "timestamp"),
    ("track", {"email": "not-an-email", "eventName": "x"}, "email"),
    ("track", {"userId": "", "eventName": "x"}, "userId"),
    ("identify", {"userId": "u"}, "traits"),
    ("identify", {"userId": "u", "traits": "x"}, "traits"),
    ("identify", {"traits": {}}, "userId"),
    ("identify", {"userId": "u", "traits": {"email": 5}}, "traits"),
    ("identify", {"userId": "u", "traits": {"notes": "z" * 10_300}}, "traits"),
])
def test_bad_parameters_are_400_naming_the_field(api: Api, path: str, body: dict[str, Any], field: str) -> None:
    r = api.post(path, body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and r.json()["error"]


def test_malformed_bodies_and_user_id_without_visitor(api: Api) -> None:
    r = api.site.client.post("/api/v1/track", content=b'{"userId": ', headers={"X-API-Key": api.key})
    assert r.status_code == 400 and "error" in r.json()
    r = api.site.client.get("/api/v1/user-id", headers={"X-API-Key": api.key})
    assert r.status_code == 400 and r.json()["field"] == "visitorId"
    r = api.site.client.get("/api/v1/user-id", params={"visitorId": "a"})
    assert r.status_code == 401


def test_rate_limits_per_key_and_endpoint(make_server: Any) -> None:
    site = Site(make_server(env={"FOOTFALL_SERVER_API_TRACK_PER_MINUTE": "5",
                                 "FOOTFALL_SERVER_API_IDENTIFY_PER_MINUTE": "3"}))
    cli(site.server.data_dir, "sites", "add", "other.org")
    api, other = Api(site), make_key(site, "other.org")
    # user-id at its default, 100 a minute: the 101st is refused, with when to come back.
    answers = [api.user_id(f"v{i}").status_code for i in range(101)]
    assert answers[:100] == [200] * 100 and answers[100] == 429
    refused = api.user_id("v")
    assert refused.status_code == 429 and "error" in refused.json() and int(refused.headers["Retry-After"]) >= 1
    assert [api.post("track", SEED_TRACK).status_code for _ in range(6)] == [202] * 5 + [429]
    assert [api.post("identify", SEED_IDENTIFY).status_code for _ in range(4)] == [202] * 3 + [429]
    # Another site's key has its own budget.
    assert api.post("track", SEED_TRACK, key=other).status_code == 202
    assert api.user_id("v", key=other).status_code == 200
    assert rows(site, "SELECT count(*) FROM events")[0][0] == 6  # nothing refused was stored
    site.client.close()


def test_identified_visitors_merge_devices_and_keep_no_email(api: Api) -> None:
    data = api.site.server.data_dir
    # Off (the default): identify is accepted and keeps nothing.
    assert api.post("identify", SEED_IDENTIFY).status_code == 202
    cli(data, "sites", "update", "example.com", "--identified-visitors")
    assert api.post("track", SEED_TRACK_BY_EMAIL).status_code == 404  # nothing was kept while off
    # A phone (visitorId) and a laptop (the seed's userId) become the same user, usr_123.
    phone = api.user_id("phone-1").json()["userId"]
    assert api.post("identify", {"visitorId": "phone-1", "traits": {"userId": "usr_123"}}).status_code == 202
    assert api.post("identify", SEED_IDENTIFY).status_code == 202
    assert api.post("track", SEED_TRACK_BY_EMAIL).status_code == 202
    assert api.post("track", {"visitorId": "phone-1", "eventName": "from_phone"}).status_code == 202
    assert api.post("track", {"userId": phone, "eventName": "by_user_id"}).status_code == 202
    assert api.post("track", {"userId": "usr_123", "eventName": "external_id"}).status_code == 202
    assert api.post("track", {"email": "JANE@Example.com", "eventName": "email_case"}).status_code == 202
    assert api.post("track", {"email": "john@example.com", "eventName": "x"}).status_code == 404
    stored = rows(api.site, "SELECT name, user_id, visitor_id FROM events")
    assert {r[1] for r in stored} == {"usr_123"} and len({r[2] for r in stored}) == 1, stored
    (profile,) = rows(api.site, "SELECT user_id, email_hash, name, traits FROM identified_visitors")
    assert profile[0] == "usr_123" and profile[2] == "Jane Doe"
    assert json.loads(profile[3]) == {"plan": "enterprise", "company": "Acme Inc"}
    assert profile[1] and "@" not in profile[1]
    api.site.server.stop()
    for path in files_under(data):
        assert b"jane@example.com" not in path.read_bytes().lower(), path
    api.site.server.start()
    # Turning it off deletes what was kept: track-by-email no longer finds her.
    cli(data, "sites", "update", "example.com", "--no-identified-visitors")
    assert api.post("track", SEED_TRACK_BY_EMAIL).status_code == 404
    assert rows(api.site, "SELECT count(*) FROM identified_visitors")[0][0] == 0


def test_hypothesis_bodies_never_5xx(api: Api) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalar = (st.none() | st.booleans() | st.integers() | st.text(max_size=20)
              | st.floats(allow_nan=False, allow_infinity=False))
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
    field = st.sampled_from(["userId", "email", "visitorId", "eventName", "properties", "timestamp",
                             "session", "traits", "zz"])

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(["track", "identify"]), body=st.dictionaries(field, value, max_size=6))
    def run(path: str, body: dict[str, Any]) -> None:
        r = api.post(path, body)
        assert r.status_code in (202, 400, 404), (body, r.status_code, r.text)
        assert isinstance(r.json(), dict)

    run()
    ready = api.site.server.wait_drained()
    assert ready["writer"]["last_error"] is None and ready["writer"]["undecodable_records"] == 0


def test_server_key_in_a_fresh_server_output(tmp_path: Any) -> None:
    """`footfall sites server-key` prints the key on its own line for scripts."""
    data = tmp_path / "d"
    cli(data, "sites", "add", "example.com")
    out = cli(data, "sites", "server-key", "example.com").stdout.strip().splitlines()
    assert out[-1].startswith("ff_sk_") and len(out[-1]) > 40
    server = Server(data).start()
    try:
        r = httpx.post(server.url + "/api/v1/track", json=SEED_TRACK, headers={"X-API-Key": out[-1]})
        assert r.status_code == 202
    finally:
        server.kill()


def test_a_site_without_identified_visitors_keeps_no_trait(api: Api) -> None:
    traits = {"userId": "zqx-user-77", "email": "zqx.person@example.org", "name": "Zqx Person", "phone": "zqx-555"}
    assert api.post("identify", {"visitorId": "zqx-visitor", "traits": traits}).status_code == 202
    assert api.post("track", {"visitorId": "zqx-visitor", "eventName": "seen"}).status_code == 202
    assert rows(api.site, "SELECT count(*) FROM events")[0][0] == 1
    api.site.server.stop()
    words = [b"zqx-user-77", b"zqx.person", b"Zqx Person", b"zqx-555", b"zqx-visitor"]
    for path in [*files_under(api.site.server.data_dir), api.site.server.log_path]:
        data = path.read_bytes()
        assert not [w for w in words if w in data], path
    api.site.server.start()
