"""Goals (seed 003): managed over HTTP and the CLI, counted at query time by `footfall stats`."""

from __future__ import annotations

from typing import Any

from tests.conftest import Site, cli, cli_json
from tests.test_enrichment_e2e import CHROME_WINDOWS, FIREFOX_LINUX


def record(kind: str, path: str, ip: str, agent: str, minute: int, name: str | None = None) -> dict[str, Any]:
    body = {"type": kind, "url": f"https://example.com{path}", "timestamp": f"2026-04-03T12:{minute:02d}:00Z",
            "visitor_ip": ip, "user_agent": agent}
    return {**body, "name": name} if name else body


def test_goals_over_http_and_conversions_in_stats(site: Site) -> None:
    admin = cli_json(site.server.data_dir, "tokens", "create", "--name", "admin", "--scope", "sites.manage")["token"]
    batch = [
        record("pageview", "/pricing", "198.51.100.1", CHROME_WINDOWS, 0),
        record("event", "/pricing", "198.51.100.1", CHROME_WINDOWS, 1, "signup"),
        record("pageview", "/blog/a", "198.51.100.2", CHROME_WINDOWS, 2),
        record("pageview", "/blog/b", "198.51.100.2", CHROME_WINDOWS, 3),
        record("event", "/blog/b", "198.51.100.2", CHROME_WINDOWS, 4, "signup"),
        record("event", "/blog/b", "198.51.100.2", CHROME_WINDOWS, 5, "signup"),
        record("pageview", "/", "198.51.100.3", FIREFOX_LINUX, 6),
        record("pageview", "/blogging", "198.51.100.4", FIREFOX_LINUX, 7),
    ]
    r = site.post("/api/ingest/server/batch", batch)
    assert r.status_code == 202 and r.json()["accepted"] == 8, r.text
    # The goals come after the data: they are counted at query time, so they apply to it.
    headers = {"Authorization": f"Bearer {admin}"}
    seed_goal = b'{"name":"Pro Signup","type":"event","value":"signup"}'  # seed 003, verbatim
    r = site.client.post("/api/sites/example.com/goals", content=seed_goal, headers=headers)
    assert r.status_code == 201, r.text
    signup = r.json()
    assert signup["name"] == "Pro Signup" and signup["id"].startswith("g_")
    r = site.client.post("/api/sites/example.com/goals", json={"name": "Blog", "type": "pageview", "value": "/blog/*"},
                         headers=headers)
    assert r.status_code == 201, r.text
    listed = site.client.get("/api/sites/example.com/goals", headers=headers).json()
    assert [g["name"] for g in listed] == ["Pro Signup", "Blog"]

    report = site.stats("2026-04-03", "2026-04-03")
    assert report["totals"]["visitors"] == 4
    assert report["goals"] == [
        {"goal": "Pro Signup", "type": "event", "value": "signup", "visitors": 2, "completions": 3,
         "conversion_rate": 50.0},
        {"goal": "Blog", "type": "pageview", "value": "/blog/*", "visitors": 1, "completions": 2,
         "conversion_rate": 25.0},  # /blogging is not under /blog/
    ]

    r = site.client.delete(f"/api/sites/example.com/goals/{signup['id']}", headers=headers)
    assert r.status_code == 200, r.text
    assert [g["name"] for g in site.client.get("/api/sites/example.com/goals", headers=headers).json()] == ["Blog"]
    assert site.client.delete("/api/sites/example.com/goals/nope", headers=headers).status_code == 404


def test_goal_errors_and_cli(site: Site) -> None:
    admin = cli_json(site.server.data_dir, "tokens", "create", "--name", "admin", "--scope", "sites.manage")["token"]
    headers = {"Authorization": f"Bearer {admin}"}
    for body, status in (({"name": "x", "type": "click", "value": "y"}, 400),
                         ({"name": "x", "type": "pageview", "value": "no-slash"}, 422),
                         ({"name": "", "type": "event", "value": "y"}, 400)):
        r = site.client.post("/api/sites/example.com/goals", json=body, headers=headers)
        assert r.status_code == status, (body, r.text)
        assert set(r.json()) == {"error", "field"}
    assert site.client.get("/api/sites/example.com/goals").status_code == 401
    assert site.client.get("/api/sites/example.com/goals", headers=site.headers()).status_code == 403

    data = site.server.data_dir
    added = cli_json(data, "goals", "add", "example.com", "--name", "Docs", "--page", "/docs/*")
    assert added["type"] == "pageview" and added["value"] == "/docs/*"
    assert cli(data, "goals", "add", "example.com", "--name", "Docs", "--event", "x", check=False).returncode != 0
    assert [g["name"] for g in cli_json(data, "goals", "list", "example.com")] == ["Docs"]
    assert cli_json(data, "goals", "remove", "example.com", "Docs") == {"removed": "Docs"}
    assert cli_json(data, "goals", "list", "example.com") == []
