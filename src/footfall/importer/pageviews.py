"""Which log lines are real page views: GET, 2xx (or 304 when asked), not a static asset,
not a prefetch, on the site's host, and within the include/exclude path globs."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from footfall.enrich.urls import normalize_host
from footfall.importer.formats import LogLine

# Extensions of files that are not pages: stylesheets, scripts, images, fonts, media,
# archives and the machine-read files every site serves.
STATIC_EXTENSIONS = frozenset(
    [
        "css",
        "js",
        "mjs",
        "cjs",
        "map",
        "json",
        "xml",
        "txt",
        "webmanifest",
        "wasm",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "webp",
        "avif",
        "svg",
        "ico",
        "bmp",
        "tif",
        "tiff",
        "heic",
        "woff",
        "woff2",
        "ttf",
        "otf",
        "eot",
        "mp4",
        "webm",
        "mov",
        "avi",
        "mkv",
        "mp3",
        "ogg",
        "oga",
        "wav",
        "flac",
        "m4a",
        "aac",
        "pdf",
        "zip",
        "gz",
        "tgz",
        "bz2",
        "xz",
        "7z",
        "rar",
        "tar",
        "dmg",
        "exe",
        "msi",
        "apk",
        "deb",
        "rpm",
        "iso",
    ]
)

# Why a line is not a page view (the summary's breakdown).
NOT_GET = "method"
NOT_OK = "status"
STATIC = "static"
PREFETCH = "prefetch"
PATH_FILTERED = "path"
OTHER_HOST = "host"
BAD_TARGET = "target"


def page_address(domain: str, target: str) -> str:
    """The URL of a page view: the site's domain (the URL a hit of the site carries, which is
    how the server API finds the site) and the request's path and query."""
    return f"https://{domain}{target}"


def _globs(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class PageFilter:
    def __init__(
        self,
        domain: str,
        *,
        include_304: bool = False,
        static_extensions: frozenset[str] = STATIC_EXTENSIONS,
        include_paths: Sequence[str] = (),
        exclude_paths: Sequence[str] = (),
        any_host: bool = False,
    ) -> None:
        self.domain = normalize_host(domain)
        self.include_304 = include_304
        # One regex call per line: the path's last segment ends in a static extension.
        extensions = "|".join(re.escape(e) for e in sorted(static_extensions)) or "(?!)"
        self._static = re.compile(rf"[^?]*\.(?:{extensions})(?:\?|$)", re.IGNORECASE).match
        self.include = _globs(include_paths)
        self.exclude = _globs(exclude_paths)
        self.any_host = any_host
        self._hosts: dict[str, bool] = {}

    def reject(self, line: LogLine) -> str | None:
        """Why the line is not a page view; None when it is one."""
        return self.reject_fields(line.method, line.status, line.target, line.host, line.prefetch)

    def reject_fields(self, method: str, status: int, target: str, host: str, prefetch: bool = False) -> str | None:
        """As `reject`, from the fields (bulk parsing judges lines before making a LogLine)."""
        if method != "GET":
            return NOT_GET
        if not (200 <= status < 300 or (status == 304 and self.include_304)):
            return NOT_OK
        if prefetch:
            return PREFETCH
        if not target.startswith("/"):
            return BAD_TARGET
        if self._static(target) is not None:
            return STATIC
        if self.include is not None or self.exclude is not None:
            path = target.partition("?")[0]
            if self.include is not None and self.include.match(path) is None:
                return PATH_FILTERED
            if self.exclude is not None and self.exclude.match(path) is not None:
                return PATH_FILTERED
        if host and not self.any_host and not self._our_host(host):
            return OTHER_HOST
        return None

    def _our_host(self, host: str) -> bool:
        ours = self._hosts.get(host)
        if ours is None:
            name = normalize_host(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
            ours = self._hosts[host] = name == self.domain
        return ours
