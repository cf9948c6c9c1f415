"""The browser tracker script, served at /js/footfall.js (see static/footfall.js)."""

from __future__ import annotations

from importlib import resources

SCRIPT: bytes = (resources.files("footfall") / "static" / "footfall.js").read_bytes()
# A day in caches: a new version reaches pages within a day, and the script is tiny.
HEADERS = {"Cache-Control": "public, max-age=86400", "Access-Control-Allow-Origin": "*"}
