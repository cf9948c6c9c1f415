"""The sites API over HTTP against a live server: the same rules as `footfall sites`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Site, cli, cli_json

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def token(site: Site, name: str, *args: str) -> str:
    created = cli_json(site.server.data_dir, "tokens", "create", "--name", name, "--scope", "sites.manage", *args)
    return str(created["token"])


@pytest.fixture
def admin(site: Site) -> Iterator[tuple[Site, str]]:
    yield site, token(site, "admin")


def call(site: Site, method: str, path: str, secret: str, body: object = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"}
    if body is None:
        return site.client.request(method, path, headers=headers)
    return site.client.request(method, path, headers=headers, json=body)


def test_add_list_show_update_remove(admin: tuple[Site, str]) -> None:
    site, secret = admin
    new = {"domain": "https://www.Shop.Example/path", "timezone": "Europe/Berlin"}
    r = call(site, "POST", "/api/sites", secret, new)
    assert r.status_code == 201, r.text
    shop = r.json()
    assert (shop["domain"], shop["timezone"]) == ("shop.example", "Europe/Berlin")
    assert shop["tracking_id"].startswith("FF-")

    listed = call(site, "GET", "/api/sites", secret).json()
    assert {s["domain"] for s in listed} == {"example.com", "shop.example"}

    for ref in ("shop.example", shop["tracking_id"], str(shop["id"])):
        shown = call(site, "GET", f"/api/sites/{ref}", secret)
        assert shown.status_code == 200 and shown.json()["domain"] == "shop.example", shown.text
        assert shown.json()["events"] == 0 and shown.json()["not_counted"] == {}

    r = call(site, "PATCH", "/api/sites/shop.example", secret,
             {"exclude_ips": ["10.0.0.0/8"], "exclude_paths": ["/admin/*"], "query_params": ["q"]})
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == {"exclude_ips": ["10.0.0.0/8"], "exclude_countries": [],
                                    "exclude_paths": ["/admin/*"], "query_params": ["q"],
                                    "monthly_pageview_cap": None, "allow_forwarded_for": False,
                                    "respect_dnt": True, "goals": [], "funnels": [], "identified_visitors": False}
    # The CLI sees what the API set, and the other way round.
    assert cli_json(site.server.data_dir, "sites", "show", "shop.example")["settings"]["exclude_ips"] == ["10.0.0.0/8"]
    r = call(site, "PATCH", "/api/sites/shop.example", secret, {"exclude_ips": []})
    assert r.json()["settings"]["exclude_ips"] == [] and r.json()["settings"]["query_params"] == ["q"]

    r = call(site, "DELETE", "/api/sites/shop.example", secret)
    assert r.status_code == 200 and r.json() == {"removed": "shop.example", "events_deleted": 0}, r.text
    assert call(site, "GET", "/api/sites/shop.example", secret).status_code == 404


def test_exclusions_set_over_http_take_effect_at_once(admin: tuple[Site, str]) -> None:
    site, secret = admin
    assert call(site, "PATCH", "/api/sites/example.com", secret, {"exclude_paths": ["/private/*"]}).status_code == 200
    hit = {"url": "https://example.com/private/x", "timestamp": "2026-04-03T12:00:00Z",
           "visitor_ip": "198.51.100.4", "user_agent": FIREFOX}
    assert site.post("/api/ingest/server/pageview", hit).status_code == 202
    site.server.wait_drained()
    shown = call(site, "GET", "/api/sites/example.com", secret).json()
    assert shown["events"] == 0 and shown["not_counted"] == {"excluded_path": 1}


def test_errors(admin: tuple[Site, str]) -> None:
    site, secret = admin
    assert call(site, "POST", "/api/sites", secret, {"domain": "example.com"}).status_code == 409
    for body, word in (({"domain": "not a domain"}, "not a valid domain"),
                       ({"domain": "ok.example", "timezone": "Mars/Base"}, "time zone"),
                       ({"domain": "ok.example", "tracking_id": "x"}, "tracking id")):
        r = call(site, "POST", "/api/sites", secret, body)
        assert r.status_code == 422 and word in r.json()["error"], r.text
    r = call(site, "PATCH", "/api/sites/example.com", secret, {"exclude_countries": ["USA"]})
    assert r.status_code == 422 and "USA" in r.json()["error"]
    assert call(site, "PATCH", "/api/sites/example.com", secret, {"colour": "red"}).status_code == 400
    assert call(site, "POST", "/api/sites", secret, {}).status_code == 400
    assert call(site, "GET", "/api/sites/nope.example", secret).status_code == 404
    assert call(site, "DELETE", "/api/sites/nope.example", secret).status_code == 404
    assert site.client.get("/api/sites").status_code == 401
    assert call(site, "GET", "/api/sites", "ff_wrong").status_code == 401
    assert call(site, "GET", "/api/sites", site.token).status_code == 403  # no sites.manage scope
    for r in (call(site, "GET", "/api/sites/nope.example", secret), site.client.get("/api/sites")):
        assert set(r.json()) == {"error", "field"}


def test_a_token_limited_to_one_site_sees_and_changes_only_it(admin: tuple[Site, str]) -> None:
    site, secret = admin
    cli(site.server.data_dir, "sites", "add", "other.example")
    limited = token(site, "limited", "--site", "example.com")
    assert [s["domain"] for s in call(site, "GET", "/api/sites", limited).json()] == ["example.com"]
    assert call(site, "GET", "/api/sites/other.example", limited).status_code == 404
    assert call(site, "DELETE", "/api/sites/other.example", limited).status_code == 404
    assert call(site, "PATCH", "/api/sites/other.example", limited, {"query_params": ["q"]}).status_code == 404
    assert call(site, "POST", "/api/sites", limited, {"domain": "new.example"}).status_code == 403
    assert call(site, "PATCH", "/api/sites/example.com", limited, {"query_params": ["q"]}).status_code == 200
    assert call(site, "GET", "/api/sites/other.example", secret).status_code == 200
