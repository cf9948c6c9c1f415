"""Dashboard accounts against a live server: first-start setup, sign-in and sign-out, CSRF,
sign-in rate limits, sessions ended by `users remove` and `users passwd`, cookie flags, share
links, and setup plus sign-in in real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FOOTFALL, Server, cli, cli_json

OWNER, OWNER_PASSWORD = "owner@example.com", "correct horse battery"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "accounts"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, f"no CSRF token in the page: {page.text[:300]}"
    return found.group(1)


def add_user(data_dir: Path, email: str, password: str, *extra: str) -> dict[str, Any]:
    """`footfall users add EMAIL --password-stdin`, as a script would run it."""
    result = subprocess.run(
        [*FOOTFALL, "users", "add", email, "--password-stdin", *extra, "--json", "--data-dir", str(data_dir)],
        input=password + "\n", capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    record: dict[str, Any] = json.loads(result.stdout)
    return record


def passwd(data_dir: Path, email: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FOOTFALL, "users", "passwd", email, "--password-stdin", "--data-dir", str(data_dir)],
        input=password + "\n", capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )


def client(server: Server, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, follow_redirects=False, **kw)


def sign_in(c: httpx.Client, email: str, password: str, next_path: str = "/", **headers: str) -> httpx.Response:
    token = csrf_of(c.get("/login"))
    return c.post("/login", data={"email": email, "password": password, "csrf_token": token, "next": next_path},
                  headers=headers)


def signed_in(c: httpx.Client) -> bool:
    """The account page answers a signed-in user, and sends anyone else to sign in."""
    r = c.get("/account")
    assert r.status_code in (200, 303), r.text
    return r.status_code == 200


def set_cookie(r: httpx.Response, name: str) -> str:
    headers = [h for h in r.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert len(headers) == 1, r.headers
    return headers[0]


@pytest.fixture
def server(make_server: Any) -> Server:
    s: Server = make_server()
    return s


@pytest.fixture
def owner(server: Server) -> Server:
    add_user(server.data_dir, OWNER, OWNER_PASSWORD, "--role", "owner")
    return server


# -- first start ---------------------------------------------------------------------------


def test_first_start_setup_makes_the_owner_then_is_gone(server: Server) -> None:
    with client(server) as first:
        # A fresh instance sends every visitor of the dashboard to setup.
        assert first.get("/", follow_redirects=True).url.path == "/setup"
        assert first.get("/login").headers["location"] == "/setup"
    with client(server) as c:
        page = c.get("/setup")
        assert page.status_code == 200 and "owner account" in page.text
        assert "HttpOnly" in set_cookie(page, "ff_csrf")
        token = csrf_of(page)
        form = {"email": "Owner@Example.com", "password": OWNER_PASSWORD, "confirm": OWNER_PASSWORD}

        assert c.post("/setup", data={**form, "csrf_token": "forged"}).status_code == 403
        short = c.post("/setup", data={**form, "password": "short", "confirm": "short", "csrf_token": token})
        assert short.status_code == 422 and "at least 10 characters" in short.text
        differ = c.post("/setup", data={**form, "confirm": OWNER_PASSWORD + "!", "csrf_token": token})
        assert differ.status_code == 422 and "differ" in differ.text
        bad_name = c.post("/setup", data={**form, "email": "no spaces allowed", "csrf_token": token})
        assert bad_name.status_code == 422
        assert cli_json(server.data_dir, "users", "list") == []

        done = c.post("/setup", data={**form, "csrf_token": token})
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert "ff_session=" in set_cookie(done, "ff_session")
        assert signed_in(c)  # setup signs the owner in

    users = cli_json(server.data_dir, "users", "list")
    assert [(u["email"], u["role"]) for u in users] == [("owner@example.com", "owner")]
    assert "password" not in json.dumps(users)

    with client(server) as stranger:
        assert stranger.get("/setup").headers["location"] == "/login"
        token = csrf_of(stranger.get("/login"))
        again = stranger.post("/setup", data={"email": "me@evil.test", "password": "x" * 12, "confirm": "x" * 12,
                                              "csrf_token": token})
        assert again.status_code == 404
    assert len(cli_json(server.data_dir, "users", "list")) == 1


def test_serve_says_the_first_visit_asks_for_an_owner(server: Server) -> None:
    assert "first visit asks for the owner account" in server.log_path.read_text()


# -- sign-in and sign-out ------------------------------------------------------------------


def test_sign_in_and_out(owner: Server) -> None:
    with client(owner) as c:
        assert not signed_in(c)
        assert c.get("/account").headers["location"] == "/login?next=/account"

        wrong = sign_in(c, OWNER, OWNER_PASSWORD + "x")
        assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
        unknown = sign_in(c, "nobody@example.com", OWNER_PASSWORD)
        assert unknown.status_code == 401 and unknown.text.count("Wrong email or password") == 1
        assert not signed_in(c)

        ok = sign_in(c, "  OWNER@example.com ", OWNER_PASSWORD, next_path="/account")
        assert ok.status_code == 303 and ok.headers["location"] == "/account"
        assert signed_in(c)
        # Signed in, /login goes on to where it was asked to.
        assert c.get("/login", params={"next": "/account"}).headers["location"] == "/account"
        account = c.get("/account")
        assert OWNER in account.text

        # Sign-out is a form POST with the session's CSRF token.
        assert c.post("/logout", data={"csrf_token": "forged"}).status_code == 403
        assert signed_in(c)
        out = c.post("/logout", data={"csrf_token": csrf_of(account)})
        assert out.status_code == 303 and out.headers["location"].startswith("/login")
        assert "Max-Age=0" in set_cookie(out, "ff_session")
        assert not signed_in(c)

    users = {u["email"]: u for u in cli_json(owner.data_dir, "users", "list")}
    assert users[OWNER]["last_login_at"] is not None


def test_next_never_leads_off_the_site(owner: Server) -> None:
    with client(owner) as c:
        for target in ("https://evil.test/", "//evil.test/x", "/\\evil.test", "javascript:alert(1)"):
            r = sign_in(c, OWNER, OWNER_PASSWORD, next_path=target)
            assert r.status_code == 303 and r.headers["location"] == "/", target
            c.cookies.clear()


def test_forms_refuse_a_wrong_or_missing_csrf_token(owner: Server) -> None:
    with client(owner) as c:
        page = c.get("/login")
        form = {"email": OWNER, "password": OWNER_PASSWORD, "next": "/"}
        assert c.post("/login", data=form).status_code == 403
        assert c.post("/login", data={**form, "csrf_token": "A" * 43}).status_code == 403
        refused = c.post("/login", data={**form, "csrf_token": csrf_of(page) + "x"})
        assert refused.status_code == 403 and "expired" in refused.text
        assert not signed_in(c)
        # The token is bound to this browser's cookie: another browser's token does not pass.
        with client(owner) as other:
            theirs = csrf_of(other.get("/login"))
        assert c.post("/login", data={**form, "csrf_token": theirs}).status_code == 403
        # Nor is a token of ours any use without the cookie (a cross-site form cannot send it).
        token = csrf_of(c.get("/login"))
        with client(owner) as bare:
            assert bare.post("/login", data={**form, "csrf_token": token}).status_code == 403
        assert c.post("/login", data={**form, "csrf_token": token}).status_code == 303


def test_json_api_and_ingest_routes_need_no_csrf_token(owner: Server) -> None:
    cli(owner.data_dir, "sites", "add", "example.com")
    secret = cli_json(owner.data_dir, "tokens", "create", "--name", "t", "--scope", "sites.manage")["token"]
    with client(owner) as c:
        added = c.post("/api/sites", json={"domain": "shop.example"}, headers={"Authorization": f"Bearer {secret}"})
        assert added.status_code == 201, added.text
        hit = c.post("/api/event", json={"name": "pageview", "url": "https://example.com/", "domain": "example.com"},
                     headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"})
        assert hit.status_code == 202, hit.text


# -- rate limits ---------------------------------------------------------------------------


def test_failed_sign_ins_are_limited_per_address(owner: Server) -> None:
    add_user(owner.data_dir, "second@example.com", OWNER_PASSWORD)
    with client(owner) as c:
        for i in range(5):
            assert sign_in(c, f"guess{i}@example.com", "wrong password!").status_code == 401
        limited = sign_in(c, "second@example.com", OWNER_PASSWORD)
        assert limited.status_code == 429
        assert "Too many failed sign-ins" in limited.text
        assert 60 <= int(limited.headers["retry-after"]) <= 15 * 60
        assert not signed_in(c)
    # The names tried are not logged (the addresses neither: see the per-account test).
    assert "guess" not in owner.log_path.read_text()


def test_failed_sign_ins_are_limited_per_account(make_server: Any) -> None:
    # Loopback is a trusted proxy here, so each attempt can come from its own address.
    s: Server = make_server(env={"FOOTFALL_TRUSTED_PROXIES": "127.0.0.1"})
    add_user(s.data_dir, OWNER, OWNER_PASSWORD, "--role", "owner")
    add_user(s.data_dir, "other@example.com", OWNER_PASSWORD)
    with client(s) as c:
        for i in range(5):
            r = sign_in(c, OWNER, "wrong password!", **{"X-Forwarded-For": f"198.51.100.{i + 1}"})
            assert r.status_code == 401
        r = sign_in(c, OWNER, OWNER_PASSWORD, **{"X-Forwarded-For": "198.51.100.99"})
        assert r.status_code == 429, "the account is held back from any address"
        r = sign_in(c, "other@example.com", OWNER_PASSWORD, **{"X-Forwarded-For": "198.51.100.1"})
        assert r.status_code == 303, "another account, from an address with failures left, signs in"
    for path in s.data_dir.rglob("*"):
        if path.is_file():
            assert b"198.51.100." not in path.read_bytes(), f"a client address was written to {path}"


# -- the CLI, and sessions that end -------------------------------------------------------


def test_users_cli_and_sessions_that_end(owner: Server) -> None:
    added = add_user(owner.data_dir, "Viewer@Example.com", "viewer password 1")
    assert added["email"] == "viewer@example.com" and added["role"] == "viewer"
    dup = subprocess.run(
        [*FOOTFALL, "users", "add", "viewer@example.com", "--password-stdin", "--data-dir", str(owner.data_dir)],
        input="viewer password 1\n", capture_output=True, text=True, timeout=120,
    )
    assert dup.returncode == 1 and "exists already" in dup.stderr
    short = subprocess.run(
        [*FOOTFALL, "users", "add", "x@example.com", "--password-stdin", "--data-dir", str(owner.data_dir)],
        input="short\n", capture_output=True, text=True, timeout=120,
    )
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    bad_role = cli(owner.data_dir, "users", "add", "y@example.com", "--role", "god", "--password-stdin", check=False)
    assert bad_role.returncode == 1 and "role" in bad_role.stderr

    with client(owner) as viewer, client(owner) as boss, client(owner) as boss_phone:
        assert sign_in(viewer, "viewer@example.com", "viewer password 1").status_code == 303
        assert sign_in(boss, OWNER, OWNER_PASSWORD).status_code == 303
        assert sign_in(boss_phone, OWNER, OWNER_PASSWORD).status_code == 303
        assert signed_in(viewer) and signed_in(boss) and signed_in(boss_phone)

        # Removing a user ends its sessions at once; others are untouched.
        removed = cli_json(owner.data_dir, "users", "remove", "viewer@example.com", "--yes")
        assert removed["removed"] == "viewer@example.com"
        assert not signed_in(viewer)
        assert sign_in(viewer, "viewer@example.com", "viewer password 1").status_code == 401
        assert signed_in(boss)

        # The last owner stays.
        last = cli(owner.data_dir, "users", "remove", OWNER, "--yes", check=False)
        assert last.returncode == 1 and "only owner" in last.stderr

        # A new password ends every session of the user; the old one no longer signs in.
        changed = passwd(owner.data_dir, OWNER, "a brand new password")
        assert changed.returncode == 0, changed.stderr
        assert not signed_in(boss) and not signed_in(boss_phone)
        assert sign_in(boss, OWNER, OWNER_PASSWORD).status_code == 401
        assert sign_in(boss, OWNER, "a brand new password").status_code == 303
        assert signed_in(boss)

    assert [u["email"] for u in cli_json(owner.data_dir, "users", "list")] == [OWNER]
    assert cli(owner.data_dir, "users", "remove", "nobody", "--yes", check=False).returncode == 1


def test_users_are_managed_without_a_server_and_kept_across_restarts(server: Server) -> None:
    server.stop()
    add_user(server.data_dir, OWNER, OWNER_PASSWORD, "--role", "owner")
    server.start()
    with client(server) as c:
        assert sign_in(c, OWNER, OWNER_PASSWORD).status_code == 303
        assert signed_in(c)
        server.stop()
        server.start()
        assert signed_in(c), "the signing key is kept in the store: sessions outlive a restart"
    server.stop()
    # Nothing the user typed is in any file: only the argon2 hash.
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert OWNER_PASSWORD.encode() not in path.read_bytes(), f"the password is in {path}"
    assert OWNER_PASSWORD not in server.log_path.read_text()


def test_changing_the_password_on_the_account_page(owner: Server) -> None:
    with client(owner) as c, client(owner) as elsewhere:
        assert sign_in(c, OWNER, OWNER_PASSWORD).status_code == 303
        assert sign_in(elsewhere, OWNER, OWNER_PASSWORD).status_code == 303
        token = csrf_of(c.get("/account"))
        form = {"current": OWNER_PASSWORD, "password": "another fine password", "confirm": "another fine password"}
        assert c.post("/account/password", data={**form, "csrf_token": "forged"}).status_code == 403
        wrong = c.post("/account/password", data={**form, "current": "not it at all", "csrf_token": token})
        assert wrong.status_code == 401
        done = c.post("/account/password", data={**form, "csrf_token": token})
        assert done.status_code == 303
        assert signed_in(c), "this session carries on with a new cookie"
        assert not signed_in(elsewhere), "the other sessions are over"
        assert sign_in(elsewhere, OWNER, "another fine password").status_code == 303


# -- cookies -------------------------------------------------------------------------------


def test_session_cookie_flags(make_server: Any) -> None:
    s: Server = make_server(env={"FOOTFALL_TRUSTED_PROXIES": "127.0.0.1"})
    add_user(s.data_dir, OWNER, OWNER_PASSWORD, "--role", "owner")
    with client(s) as c:
        plain = set_cookie(sign_in(c, OWNER, OWNER_PASSWORD), "ff_session")
        attributes = {a.strip().split("=")[0].lower(): a.strip() for a in plain.split(";")[1:]}
        assert attributes["httponly"] and attributes["path"] == "Path=/"
        assert attributes["samesite"].lower() == "samesite=lax"
        assert attributes["max-age"] == f"Max-Age={14 * 86400}"
        assert "secure" not in attributes, "plain http: a Secure cookie would never come back"
        # A session cookie is signed: changing any part of it signs nobody in.
        value = plain.split(";")[0].split("=", 1)[1]
        rest = value.split(".", 1)[1]
        for forged in (f"2.{rest}", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), "1.1.1.x.y"):
            with client(s, cookies={"ff_session": forged}) as f:
                assert not signed_in(f), forged
    with client(s) as c:
        behind_tls = sign_in(c, OWNER, OWNER_PASSWORD, **{"X-Forwarded-Proto": "https"})
        assert "; Secure" in set_cookie(behind_tls, "ff_session")


# -- share links ---------------------------------------------------------------------------


def test_share_links_open_the_site_until_revoked(owner: Server) -> None:
    cli(owner.data_dir, "sites", "add", "example.com")
    cli(owner.data_dir, "sites", "add", "other.example")
    made = cli(owner.data_dir, "sites", "share", "example.com")
    path = made.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"/share/[A-Za-z0-9_-]{32}", path), made.stdout
    second = cli_json(owner.data_dir, "sites", "share", "example.com")
    other = cli_json(owner.data_dir, "sites", "share", "other.example")
    assert second["path"] != path and second["site"] == "example.com"

    with client(owner) as anyone:
        page = anyone.get(path)
        assert page.status_code == 200 and "example.com" in page.text
        assert anyone.get(path + "x").status_code == 404
        assert anyone.get("/share/" + "A" * 32).status_code == 404

        links = cli_json(owner.data_dir, "sites", "shares", "example.com")
        assert [(link["id"], link["active"]) for link in links] == [(1, True), (second["id"], True)]
        assert "token" not in json.dumps(links)

        revoked = cli_json(owner.data_dir, "sites", "share", "example.com", "--revoke", "1")
        assert revoked["revoked"] == [1]
        assert anyone.get(path).status_code == 404
        assert anyone.get(second["path"]).status_code == 200
        again = cli(owner.data_dir, "sites", "share", "example.com", "--revoke", "1", check=False)
        assert again.returncode == 1 and "no live share link 1" in again.stderr
        # A link of one site is no key to another: revoking all of example.com's leaves it.
        assert cli_json(owner.data_dir, "sites", "share", "example.com", "--revoke")["revoked"] == [second["id"]]
        assert anyone.get(second["path"]).status_code == 404
        assert anyone.get(other["path"]).status_code == 200

    links = cli_json(owner.data_dir, "sites", "shares", "example.com")
    assert all(not link["active"] and link["revoked_at"] for link in links)
    owner.stop()
    token = path.rsplit("/", 1)[1].encode()
    for file in owner.data_dir.rglob("*"):
        if file.is_file():
            assert token not in file.read_bytes(), f"a share token is stored in the clear in {file}"


def test_share_links_of_a_removed_site_stop_working(owner: Server) -> None:
    cli(owner.data_dir, "sites", "add", "example.com")
    path = cli_json(owner.data_dir, "sites", "share", "example.com")["path"]
    with client(owner) as anyone:
        assert anyone.get(path).status_code == 200
        cli(owner.data_dir, "sites", "remove", "example.com", "--yes")
        assert anyone.get(path).status_code == 404


# -- in a real browser --------------------------------------------------------------------

@pytest.fixture
def browser() -> Iterator[Any]:
    from tests.test_tracker import CHROMIUM

    if CHROMIUM is None and not os.environ.get("CI"):
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        assert CHROMIUM is not None, "Debian's chromium is not installed (.ci/run installs it)"
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def test_setup_and_sign_in_in_a_browser(browser: Any, server: Server, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 390, "height": 760})  # a phone
    page = context.new_page()
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(server.url + "/", wait_until="load")
    assert page.url.endswith("/setup")
    page.screenshot(path=str(ARTIFACTS / "setup.png"), full_page=True)
    # Keyboard only: the email field has focus, Tab moves through the form, Enter submits.
    page.keyboard.type(OWNER)
    page.keyboard.press("Tab")
    page.keyboard.type(OWNER_PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.type(OWNER_PASSWORD + " typo")
    page.keyboard.press("Enter")
    page.wait_for_load_state("load")
    assert page.get_by_role("alert").inner_text() == "The two passwords differ."
    page.fill("#password", OWNER_PASSWORD)
    page.fill("#confirm", OWNER_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Create account").click()
    assert not page.url.endswith("/setup")

    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["ff_session"]["httpOnly"] and cookies["ff_session"]["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == "", "no script can read the session"

    page.goto(server.url + "/account", wait_until="load")
    assert OWNER in page.inner_text("main")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert "/login" in page.url and "You are signed out." in page.inner_text("main")

    page.fill("#email", OWNER)
    page.fill("#password", "not the password")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    page.screenshot(path=str(ARTIFACTS / "login-failed.png"), full_page=True)

    page.goto(server.url + "/account", wait_until="load")  # signed out: to sign-in, then back here
    assert "/login?next=/account" in page.url
    page.fill("#email", OWNER)
    page.fill("#password", OWNER_PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == server.url + "/account"
    page.screenshot(path=str(ARTIFACTS / "account.png"), full_page=True)
    page.screenshot(path=str(tmp_path / "account.png"), full_page=True)
    context.close()
    assert fetched and all(url.startswith(server.url + "/") for url in fetched), "a third-party request"
