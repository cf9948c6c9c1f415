"""Shared fixtures: a real `footfall serve` process on loopback over a real data directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

FOOTFALL = [sys.executable, "-m", "footfall"]

# The Python client (clients/python) is its own distribution; its tests import it from source,
# so the one install command of the README is enough.
CLIENT_SRC = Path(__file__).resolve().parent.parent / "clients" / "python" / "src"
if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `footfall ARGS --data-dir D` in a subprocess, as a user or script would."""
    result = subprocess.run(
        [*FOOTFALL, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"footfall {' '.join(args)} failed: {result.stdout}\n{result.stderr}")
    return result


def cli_json(data_dir: Path, *args: str) -> Any:
    return json.loads(cli(data_dir, *args, "--json").stdout)


class Server:
    """`footfall serve` in a child process; restartable on the same data directory."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "FOOTFALL_DEMO_SITE": "false",
            "FOOTFALL_INGEST_RATE_LIMIT": "0",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*FOOTFALL, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): the spool is drained into the store."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def wait_drained(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the writer has loaded everything acknowledged into the store."""
        deadline = time.monotonic() + timeout
        while True:
            ready = httpx.get(self.url + "/readyz", timeout=5).json()
            if ready["spool"]["segments_pending"] == 0 and ready["writer"]["lag_seconds"] == 0:
                return dict(ready)
            if time.monotonic() > deadline:
                raise AssertionError(f"writer did not drain: {ready}")
            time.sleep(0.05)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: make_server(env={...}) starts a server on a fresh data directory."""
    servers: list[Server] = []

    def factory(env: dict[str, str] | None = None, data_dir: Path | None = None) -> Server:
        server = Server(data_dir or tmp_path / f"data{len(servers)}", env)
        servers.append(server)
        return server.start()

    yield factory
    for s in servers:
        s.kill()


class Site:
    """A live server with site example.com and a site.manage_data + stats.read token."""

    def __init__(self, server: Server) -> None:
        self.server = server
        cli(server.data_dir, "sites", "add", "example.com")
        created = cli_json(
            server.data_dir, "tokens", "create", "--name", "ci", "--scope", "site.manage_data",
            "--scope", "stats.read", "--site", "example.com",
        )
        self.token: str = created["token"]
        self.client = httpx.Client(base_url=server.url, timeout=30)

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"}

    def post(self, path: str, body: Any, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.client.post(path, json=body, headers=self.headers(token), **kw)

    def stats(self, date_from: str, date_to: str) -> Any:
        self.server.wait_drained()
        return cli_json(self.server.data_dir, "stats", "--site", "example.com", "--from", date_from, "--to", date_to)


@pytest.fixture
def site(make_server: Any) -> Iterator[Site]:
    s = Site(make_server())
    yield s
    s.client.close()
