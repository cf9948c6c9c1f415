"""`footfall import` end to end (issue 6): a fixture log into a real data directory, read back
with `footfall stats` and the DuckDB file, against numbers worked out by hand; re-imports,
compressed files and standard input, malformed lines, --server against the in-process result,
and the refusal to write next to a running server.

The fixture (tests/data/access-combined.log, 15 lines, 2026-04-03 UTC) holds three visitors:
  A 203.0.113.10 Firefox: / 10:00 (+ its CSS), /pricing 10:05 (logged as 12:05 +0200), a POST
    at 10:10, /docs/start 12:00 (more than 30 minutes later: a second visit)
  B 198.51.100.20 Chrome with quotes in its agent: /pricing 10:02 (+ favicon)
  C 2001:db8::30 Safari iPhone: /docs/start 11:00, a 304, a 404, /docs/start 11:03
plus Googlebot on /pricing, GPTBot on /docs/start, a junk line and a truncated last line.
So: 6 page views; visitors A, B, C = 3; visits A1 A2 B C = 4; bounces A2 and B = 50%;
duration (300 + 0 + 0 + 180) / 4 = 120 s; top pages /docs/start 3 views by 2 visitors,
/pricing 2 by 2, / 1 by 1; 1 bot, 1 AI fetch; 2 malformed (lines 13 and 15); not page views:
2 static, 1 method, 2 status.
"""

from __future__ import annotations

import bz2
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

import duckdb

from tests.conftest import FOOTFALL, Server, cli, cli_json

FIXTURE = Path(__file__).parent / "data" / "access-combined.log"
DAY = "2026-04-03"
TOTALS = {"visitors": 3, "visits": 4, "pageviews": 6, "bounce_rate": 50, "visit_duration": 120, "events": 0}
TOP_PAGES = [
    {"page": "/docs/start", "visitors": 2, "pageviews": 3},
    {"page": "/pricing", "visitors": 2, "pageviews": 2},
    {"page": "/", "visitors": 1, "pageviews": 1},
]


def new_dir(tmp_path: Path, name: str) -> Path:
    data = tmp_path / name
    cli(data, "sites", "add", "example.com")
    return data


def run_import(data: Path, *args: str, check: bool = True, stdin: bytes | None = None) -> dict[str, Any]:
    result = subprocess.run(
        [*FOOTFALL, "import", *args, "--site", "example.com", "--data-dir", str(data), "--json", "--no-progress"],
        capture_output=True,
        input=stdin,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr.decode()
    summary: dict[str, Any] = json.loads(result.stdout) if result.stdout else {}
    summary["_exit"], summary["_stderr"] = result.returncode, result.stderr.decode()
    return summary


def stats(data: Path) -> dict[str, Any]:
    report = cli_json(data, "stats", "--site", "example.com", "--from", DAY, "--to", DAY)
    return {"totals": report["totals"], "top_pages": report["top_pages"]}


def not_counted(data: Path) -> tuple[dict[str, int], int]:
    shown = cli_json(data, "sites", "show", "example.com")
    return shown["not_counted"], shown["ai_fetches"]


def table(data: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(data / "footfall.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_fixture_gives_the_hand_computed_numbers_and_reimport_changes_nothing(tmp_path: Path) -> None:
    data = new_dir(tmp_path, "data")
    summary = run_import(data, str(FIXTURE))
    assert {k: summary[k] for k in ("lines", "pageviews", "bots", "ai_fetches", "excluded", "malformed")} == {
        "lines": 15,
        "pageviews": 6,
        "bots": 1,
        "ai_fetches": 1,
        "excluded": 0,
        "malformed": 2,
    }
    assert summary["not_pageviews_by_reason"] == {"static": 2, "method": 1, "status": 2}
    assert [entry.split(": ")[0] for entry in summary["malformed_lines"]] == [f"{FIXTURE}:13", f"{FIXTURE}:15"]
    assert summary["first"] == "2026-04-03T10:00:00Z" and summary["last"] == "2026-04-03T12:00:00Z"
    assert summary["already_imported"] == 0
    assert stats(data) == {"totals": TOTALS, "top_pages": TOP_PAGES}
    assert not_counted(data) == ({"bot": 2}, 1)
    # The rows themselves: UTC times of the lines, sources from the referrers, no query strings.
    rows = table(
        data,
        "SELECT strftime(ts, '%H:%M'), pathname, source, browser, utm_source, source_api "
        "FROM events ORDER BY ts, pathname",
    )
    assert rows == [
        ("10:00", "/", "Google", "Firefox", "", "import"),
        ("10:02", "/pricing", "Hacker News", "Chrome", "hn", "import"),
        ("10:05", "/pricing", "", "Firefox", "", "import"),
        ("11:00", "/docs/start", "", "Safari", "", "import"),
        ("11:03", "/docs/start", "", "Safari", "", "import"),
        ("12:00", "/docs/start", "", "Firefox", "", "import"),
    ]
    assert table(data, "SELECT bot, pathname FROM ai_fetches") == [("GPTBot", "/docs/start")]

    again = run_import(data, str(FIXTURE))
    assert again["already_imported"] == 8 and again["pageviews"] == 6  # 6 page views, a bot, an AI fetch
    assert "already imported" not in again["_stderr"]  # the JSON summary carries it
    assert stats(data) == {"totals": TOTALS, "top_pages": TOP_PAGES}
    assert not_counted(data) == ({"bot": 2}, 1)
    assert table(data, "SELECT count(*) FROM events")[0][0] == 6


def test_order_of_files_and_compression_do_not_matter(tmp_path: Path) -> None:
    lines = FIXTURE.read_bytes().split(b"\n")
    first, second = tmp_path / "a.log.gz", tmp_path / "b.log.bz2"
    first.write_bytes(gzip.compress(b"\n".join(lines[:7]) + b"\n"))
    second.write_bytes(bz2.compress(b"\n".join(lines[7:])))
    data = new_dir(tmp_path, "data")
    summary = run_import(data, str(second), str(first))  # later lines first
    assert summary["pageviews"] == 6 and summary["malformed"] == 2
    assert summary["formats"] == {str(second): "combined", str(first): "combined"}
    assert stats(data) == {"totals": TOTALS, "top_pages": TOP_PAGES}
    # The same lines from standard input are the same lines: nothing new.
    again = run_import(data, "-", stdin=FIXTURE.read_bytes())
    assert again["already_imported"] == 8 and stats(data)["totals"] == TOTALS


def test_a_visit_spanning_two_files_imported_apart_is_one_visit(tmp_path: Path) -> None:
    # C's two views (11:00 and 11:03) in separate files, imported in separate runs, later one first.
    lines = [ln for ln in FIXTURE.read_text().split("\n") if ln.startswith("2001:db8::30") and " 200 " in ln]
    early, late = tmp_path / "early.log", tmp_path / "late.log"
    early.write_text(lines[0] + "\n")
    late.write_text(lines[1] + "\n")
    data = new_dir(tmp_path, "data")
    run_import(data, str(late))
    run_import(data, str(early))
    totals = stats(data)["totals"]
    assert (totals["visitors"], totals["visits"], totals["pageviews"], totals["bounce_rate"]) == (1, 1, 2, 0)


def test_worker_processes_give_the_same_result(tmp_path: Path) -> None:
    # ~3 MB over several 1 MB blocks: 40 visitors x 5 page views with assets and bots, one day.
    agents = [
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    ]
    lines = []
    for second in range(0, 86_400, 8):
        visitor = second % 40
        ip = f"203.0.113.{visitor}" if visitor % 2 else f"2001:db8::{visitor:x}"
        agent = agents[visitor % 3]
        stamp = f"03/Apr/2026:{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d} +0000"
        for path in (f"/page-{second % 97}", "/static/site.css", "/img/a.png"):
            lines.append(f'{ip} - - [{stamp}] "GET {path} HTTP/1.1" 200 512 "https://www.google.com/" "{agent}"')
    lines.insert(5000, "junk in the middle")
    log = tmp_path / "big.log"
    log.write_text("\n".join(lines) + "\n")
    assert log.stat().st_size > 3_000_000
    one, many = new_dir(tmp_path, "one"), new_dir(tmp_path, "many")
    alone = run_import(one, str(log), "--workers", "0")
    together = run_import(many, str(log), "--workers", "1")  # a worker, and this process when it is busy
    volatile = ("seconds", "lines_per_second", "_stderr")
    assert {k: v for k, v in alone.items() if k not in volatile} == {
        k: v for k, v in together.items() if k not in volatile
    }
    assert alone["malformed"] == 1 and alone["malformed_lines"] == [
        f"{log}:5001: not a combined line: 'junk in the middle'"
    ]
    assert alone["pageviews"] > 5000 and alone["bots"] > 3000
    assert stats(one) == stats(many)
    again = run_import(many, str(log), "--workers", "2")
    assert again["already_imported"] == alone["pageviews"] + alone["bots"]
    assert stats(one) == stats(many)


def test_dry_run_writes_nothing_and_max_errors_stops(tmp_path: Path) -> None:
    data = new_dir(tmp_path, "data")
    dry = run_import(data, str(FIXTURE), "--dry-run")
    assert dry["dry_run"] is True and dry["pageviews"] == 6 and dry["bots"] == 1 and dry["ai_fetches"] == 1
    assert stats(data)["totals"]["pageviews"] == 0
    stopped = run_import(data, str(FIXTURE), "--max-errors", "1", check=False)
    assert stopped["_exit"] == 1 and "more than 1 malformed lines" in stopped["_stderr"]
    assert stopped["malformed"] == 2


def test_options_304_paths_and_a_user_pattern(tmp_path: Path) -> None:
    data = new_dir(tmp_path, "data")
    summary = run_import(data, str(FIXTURE), "--include-304", "--exclude-path", "/pricing", "--dry-run")
    # + C's 304 on /docs/install; - A's and B's /pricing (the bot's /pricing is left out too)
    assert summary["pageviews"] == 5 and summary["bots"] == 0
    assert summary["not_pageviews_by_reason"]["path"] == 3
    only = run_import(data, str(FIXTURE), "--include-path", "/docs/*", "--dry-run")
    assert only["pageviews"] == 3 and only["ai_fetches"] == 1
    pattern = run_import(
        data,
        str(FIXTURE),
        "--dry-run",
        "--pattern",
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent"',
    )
    assert pattern["pageviews"] == 6 and pattern["malformed"] == 2 and pattern["formats"] == {str(FIXTURE): "pattern"}
    bad = subprocess.run(
        [*FOOTFALL, "import", str(FIXTURE), "--site", "example.com", "--format", "apache", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown --format 'apache'" in bad.stderr


def test_unknown_site_and_unknown_format_are_clear_errors(tmp_path: Path) -> None:
    data = new_dir(tmp_path, "data")
    result = subprocess.run(
        [*FOOTFALL, "import", str(FIXTURE), "--site", "nope.example", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "no site 'nope.example'" in result.stderr
    junk = tmp_path / "junk.log"
    junk.write_text("hello\nworld\n")
    unknown = run_import(data, str(junk), check=False)
    assert unknown["_exit"] == 1 and "could not tell the log format" in unknown["_stderr"]


def test_server_import_matches_in_process_and_in_process_refuses_a_running_server(tmp_path: Path) -> None:
    local = new_dir(tmp_path, "local")
    run_import(local, str(FIXTURE))
    expected = stats(local), not_counted(local)

    server = Server(tmp_path / "remote")
    cli(server.data_dir, "sites", "add", "example.com")
    token = cli_json(
        server.data_dir,
        "tokens",
        "create",
        "--name",
        "importer",
        "--scope",
        "site.manage_data",
        "--site",
        "example.com",
    )["token"]
    server.start()
    try:
        refused = run_import(server.data_dir, str(FIXTURE), check=False)
        assert refused["_exit"] == 1 and "--server" in refused["_stderr"] and "running" in refused["_stderr"]
        sent = run_import(server.data_dir, str(FIXTURE), "--server", server.url, "--token", token)
        assert sent["pageviews"] == 6 and sent["bots"] == 1 and sent["ai_fetches"] == 1 and sent["rejected"] == 0
        server.wait_drained()
        assert (stats(server.data_dir), not_counted(server.data_dir)) == expected
        run_import(server.data_dir, str(FIXTURE), "--server", server.url, "--token", token)  # again: nothing new
        server.wait_drained()
        assert (stats(server.data_dir), not_counted(server.data_dir)) == expected
        wrong = run_import(server.data_dir, str(FIXTURE), "--server", server.url, "--token", "nope", check=False)
        assert wrong["_exit"] == 1 and "HTTP 401" in wrong["_stderr"]
    finally:
        server.stop()
    assert table(server.data_dir, "SELECT count(*) FROM events")[0][0] == 6


def test_no_address_agent_or_query_string_of_the_log_is_in_any_file(tmp_path: Path) -> None:
    """Invariant 2 for imports: the log's raw fields die in enrichment, as live hits' do."""
    import re

    from tests.test_privacy import files_under

    data = new_dir(tmp_path, "data")
    run_import(data, str(FIXTURE))
    text = FIXTURE.read_text(errors="replace")
    addresses = set(re.findall(r"^(\S+) ", text, re.M)) - {"-"}
    agents = {a for a in re.findall(r'"([^"]*)"\s*$', text, re.M) if len(a) > 8}
    queries = {q for q in re.findall(r'"[A-Z]+ \S*?(\?[^ "#]+)', text) if len(q) > 3}
    assert len(addresses) >= 3 and len(agents) >= 3, (addresses, agents)
    words = [w.encode() for w in addresses | agents | queries]
    for path in files_under(data):
        found = [w for w in words if w in path.read_bytes()]
        assert not found, f"{path}: {found}"
    dumped = repr([table(data, f'SELECT * FROM "{t}"') for (t,) in
                   table(data, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")])
    assert not [w for w in addresses | agents | queries if w in dumped]
