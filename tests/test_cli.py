"""The CLI as a script uses it: no prompts, --json, with and without a live server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import FOOTFALL, Server, cli, cli_json

PAGEVIEW = {
    "url": "https://example.com/a",
    "timestamp": "2026-04-03T12:30:45Z",
    "visitor_ip": "203.0.113.42",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
}


def _post(server: Server, token: str, body: dict[str, Any] | None = None) -> int:
    r = httpx.post(
        server.url + "/api/ingest/server/pageview",
        json=body or PAGEVIEW,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return r.status_code


def test_sites_and_tokens_without_a_server(data_dir: Path) -> None:
    cli(data_dir, "sites", "add", "https://WWW.Example.com/", "--timezone", "Europe/Berlin")
    sites = cli_json(data_dir, "sites", "list")
    assert [(s["domain"], s["timezone"]) for s in sites] == [("example.com", "Europe/Berlin")]
    assert sites[0]["tracking_id"].startswith("FF-")

    created = cli_json(
        data_dir, "tokens", "create", "--name", "ci", "--scope", "site.manage_data",
        "--scope", "stats.read", "--site", "example.com",
    )
    assert created["token"].startswith("ff_")
    assert created["scopes"] == ["site.manage_data", "stats.read"]
    assert created["sites"] == ["example.com"]
    listed = cli_json(data_dir, "tokens", "list")
    assert [t["name"] for t in listed] == ["ci"]
    assert "token" not in listed[0]  # the secret is shown once, never listed
    # Stored only as a hash: the secret's bytes are nowhere in the data directory.
    for f in data_dir.rglob("*"):
        if f.is_file():
            assert created["token"].encode() not in f.read_bytes(), f

    shown = cli_json(data_dir, "sites", "show", "example.com")
    assert shown["events"] == 0 and shown["tokens"] == ["ci"]


def test_bad_input_is_a_clear_error(data_dir: Path) -> None:
    bad = cli(data_dir, "sites", "add", "not a domain", check=False)
    assert bad.returncode == 1 and "not a valid domain" in bad.stderr
    bad = cli(data_dir, "sites", "add", "a.example", "--timezone", "Mars/Base", check=False)
    assert bad.returncode == 1 and "unknown time zone" in bad.stderr
    cli(data_dir, "sites", "add", "a.example")
    dup = cli(data_dir, "sites", "add", "www.a.example", check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = cli(data_dir, "tokens", "create", "--name", "x", "--scope", "admin", check=False)
    assert bad.returncode == 1 and "unknown scope" in bad.stderr
    bad = cli(data_dir, "stats", "--site", "nope.example", "--from", "2026-04-01", "--to", "2026-04-02", check=False)
    assert bad.returncode == 1 and "no site" in bad.stderr
    bad = cli(data_dir, "stats", "--site", "a.example", "--from", "April", "--to", "2026-04-02", check=False)
    assert bad.returncode == 1 and "YYYY-MM-DD" in bad.stderr


def test_remove_asks_unless_yes(data_dir: Path) -> None:
    cli(data_dir, "sites", "add", "a.example")
    refused = subprocess.run(
        [*FOOTFALL, "sites", "remove", "a.example", "--data-dir", str(data_dir)],
        input="n\n", capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 1
    assert len(cli_json(data_dir, "sites", "list")) == 1
    removed = cli_json(data_dir, "sites", "remove", "a.example", "--yes")
    assert removed == {"removed": "a.example", "events_deleted": 0}
    assert cli_json(data_dir, "sites", "list") == []


def test_management_beside_a_live_server(make_server: Any, data_dir: Path) -> None:
    server = make_server(data_dir=data_dir)
    # The server holds the DuckDB file; these go through its control socket.
    cli(data_dir, "sites", "add", "example.com")
    token = cli_json(data_dir, "tokens", "create", "--name", "ci", "--scope", "site.manage_data",
                     "--site", "example.com")["token"]
    assert _post(server, token) == 202  # the server saw the new site and token at once

    rotated = cli_json(data_dir, "tokens", "rotate", "ci")["token"]
    assert rotated != token
    assert _post(server, token) == 401
    assert _post(server, rotated) == 202

    server.wait_drained()
    report = cli_json(data_dir, "stats", "--site", "example.com", "--from", "2026-04-01", "--to", "2026-04-30")
    assert report["totals"]["pageviews"] == 2
    assert report["top_pages"] == [{"page": "/a", "visitors": 1, "pageviews": 2}]
    assert len(report["days"]) == 30

    cli(data_dir, "tokens", "revoke", "ci")
    assert _post(server, rotated) == 401
    removed = cli_json(data_dir, "sites", "remove", "example.com", "--yes")
    assert removed["events_deleted"] == 2

    # After the server stops, the same commands open the store directly.
    server.stop()
    assert cli_json(data_dir, "sites", "list") == []
    assert cli_json(data_dir, "tokens", "list") == []


def test_stats_reads_in_the_sites_time_zone(make_server: Any, data_dir: Path) -> None:
    server = make_server(data_dir=data_dir)
    cli(data_dir, "sites", "add", "example.com", "--timezone", "America/New_York")
    token = cli_json(data_dir, "tokens", "create", "--name", "ci", "--scope", "site.manage_data")["token"]
    # 2026-04-04 02:00 UTC is still April 3rd in New York.
    assert _post(server, token, {**PAGEVIEW, "timestamp": "2026-04-04T02:00:00Z"}) == 202
    server.wait_drained()
    report = cli_json(data_dir, "stats", "--site", "example.com", "--from", "2026-04-01", "--to", "2026-04-05")
    assert [d["date"] for d in report["days"] if d["pageviews"]] == ["2026-04-03"]
    text = cli(data_dir, "stats", "--site", "example.com", "--from", "2026-04-01", "--to", "2026-04-05").stdout
    assert "Per day" in text and "Top pages" in text and "/a" in text


def test_config_lists_every_setting(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "footfall.toml").write_text('ingest_burst = 7\nport = 9001\n')
    env = {**os.environ, "FOOTFALL_PORT": "9002"}
    rows = json.loads(subprocess.run(
        [*FOOTFALL, "config", "--data-dir", str(tmp_path / "d"), "--json"],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    ).stdout)
    by_name = {r["name"]: r for r in rows}
    assert {"data_dir", "host", "port", "ingest_rate_limit", "ingest_burst", "trusted_proxies"} <= set(by_name)
    assert by_name["port"]["env"] == "FOOTFALL_PORT" and by_name["port"]["flag"] == "--port"
    assert by_name["port"]["default"] == "8000"
    assert by_name["port"]["current"] == "9002"  # env beats the file
    assert by_name["ingest_burst"]["current"] == "7"  # the file beats the default
    assert all(r["description"] for r in rows)


def test_serve_rejects_bad_settings(tmp_path: Path) -> None:
    bad = subprocess.run(
        [*FOOTFALL, "serve", "--data-dir", str(tmp_path), "--trusted-proxies", "not-an-ip"],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2 and "invalid setting" in bad.stderr


def test_every_command_rejects_bad_settings_without_a_traceback(tmp_path: Path) -> None:
    env = {"FOOTFALL_DUCKDB_MEMORY_LIMIT": "lots"}
    for args in (["config"], ["sites", "list"], ["serve"]):
        bad = cli(tmp_path, *args, env=env, check=False)
        assert bad.returncode == 2, (args, bad.stderr)
        assert "duckdb_memory_limit must be a size" in bad.stderr and "Traceback" not in bad.stderr


def test_duckdb_memory_limit_reaches_the_store(make_server: Any, data_dir: Path) -> None:
    """The limit is DuckDB's own setting in the serving process, shown by /readyz, and the
    management commands that open the file themselves take it as well."""
    server = make_server(env={"FOOTFALL_DUCKDB_MEMORY_LIMIT": "100MB"}, data_dir=data_dir)
    ready = httpx.get(server.url + "/readyz", timeout=5).json()
    assert ready["store"]["memory_limit"] == "95.3 MiB"  # DuckDB counts MB as 1000^2 bytes
    server.stop()
    cli(data_dir, "sites", "add", "limited.example", env={"FOOTFALL_DUCKDB_MEMORY_LIMIT": "64MiB"})
    server = make_server(data_dir=data_dir)
    ready = httpx.get(server.url + "/readyz", timeout=5).json()
    assert ready["store"]["memory_limit"] not in ("95.3 MiB", "64.0 MiB")  # DuckDB's default again
    assert "limited.example" in {s["domain"] for s in cli_json(data_dir, "sites", "list")}


def test_first_start_offers_a_demo_site(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"FOOTFALL_DEMO_SITE": "true"})
    server.start()
    try:
        out = server.log_path.read_text()
        secret = next(line.strip() for line in out.splitlines() if line.strip().startswith("ff_"))
        assert "example.com" in out and "/api/openapi.json" in out
        assert _post(server, secret) == 202
    finally:
        server.stop()
    # Shown once: a second start prints no token.
    server.start()
    server.stop()
    assert server.log_path.read_text().count("ff_") == 1
