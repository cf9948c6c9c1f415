"""Umami's /api/send, driven by the real @umami/node client (installed from the npm registry
into a temporary directory) against a live server, plus the tracker's own request shapes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Site, cli
from tests.test_enrichment_e2e import CHROME_WINDOWS, rows

WEBSITE = "4fb7fa4c-5b46-438d-94b3-3a8fb9bc2e8b"  # an Umami website id, kept as the tracking id
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def umami_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if NODE is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the @umami/node test")
        pytest.skip("needs node and npm")
    prefix = tmp_path_factory.mktemp("umami-node")
    subprocess.run(["npm", "install", "--silent", "--prefix", str(prefix), "@umami/node@0.4"],
                   check=True, capture_output=True, timeout=300)
    yield prefix / "node_modules" / "@umami" / "node"


@pytest.fixture
def shop(site: Site) -> Iterator[Site]:
    cli(site.server.data_dir, "sites", "add", "shop.example", "--tracking-id", WEBSITE)
    yield site


def test_real_umami_node_client(umami_node: Path, shop: Site) -> None:
    script = f"""
    const {{ Umami }} = require({json.dumps(str(umami_node))});
    const umami = new Umami();
    umami.init({{ websiteId: {json.dumps(WEBSITE)}, hostUrl: {json.dumps(shop.server.url)} }});
    (async () => {{
      const a = await umami.track({{ hostname: "shop.example", url: "/pricing", referrer: "https://www.google.com/",
                                    language: "en-US", screen: "1440x900", title: "Pricing" }});
      const b = await umami.track("signup", {{ plan: "pro", seats: 3 }});
      const c = await umami.identify({{ email: "jane@example.com" }});
      console.log(JSON.stringify([a.status, b.status, c.status]));
    }})();
    """
    done = subprocess.run([NODE or "node", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [200, 200, 200]
    stored = rows(shop, "SELECT s.domain, kind, name, pathname, referrer_host, language, screen_width, browser, props "
                        "FROM events JOIN sites s ON s.id = site_id ORDER BY kind DESC")
    assert stored[0][:8] == ("shop.example", "pageview", "pageview", "/pricing", "google.com", "en-US", 1440, "Other")
    assert stored[1][:4] == ("shop.example", "event", "signup", "/")
    assert dict(stored[1][8]) == {"plan": "pro", "seats": "3"}
    assert len(stored) == 2  # identify keeps nothing


def test_tracker_shapes_unknown_ids_and_errors(shop: Site) -> None:
    def send(body: object, **headers: str) -> tuple[int, bytes]:
        r = shop.client.post("/api/send", content=json.dumps(body), headers={
            "Content-Type": "application/json", "User-Agent": CHROME_WINDOWS, **headers})
        return r.status_code, r.content

    pageview = {"type": "event", "payload": {"website": WEBSITE, "hostname": "shop.example", "url": "/a?x=1"}}
    assert send(pageview) == (200, b"{}")
    assert send({"type": "event", "payload": {"website": "unknown-id", "url": "/b"}}) == (200, b"{}")
    assert send(pageview, DNT="1") == (200, b"{}")
    assert send({"type": "event", "payload": {"url": "/c"}})[0] == 422
    assert send({"type": "click", "payload": {"website": WEBSITE}})[0] == 422
    r = shop.client.options("/api/send", headers={"Origin": "https://shop.example",
                                                   "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204
    stored = rows(shop, "SELECT pathname, browser FROM events")
    assert stored == [("/a", "Chrome")]
