"""Access-log formats: each turns one line into a `LogLine`, or None when the line is not one.

A parser is a plain function of the line's text (per-line work is the import's hot path), made
per file by `Format.parser()` so that formats whose columns are declared in the file itself
(IIS and CloudFront's `#Fields:` directives) keep that state per file. Values are unescaped
the way each server escapes them; a "-" field means empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote

import msgspec

from footfall.importer.times import clf_us, iso_us


# A struct, not a NamedTuple: built once per line, and msgspec builds one in a fifth of the time.
class LogLine(msgspec.Struct, gc=False):
    ip: str
    ts_us: int
    method: str
    target: str  # the request target: path and query, or an absolute URL (proxies, ELB)
    status: int
    referrer: str
    agent: str
    host: str = ""  # the virtual host, when the format logs one
    prefetch: bool = False  # the request said Purpose/Sec-Purpose: prefetch


class Directive(Exception):
    """A comment or directive line (`#Fields: ...`): neither a request nor malformed."""


Parser = Callable[[str], LogLine | None]


class Bulk(NamedTuple):
    """Regexes for judging lines in bulk: `head` (matched on every line) ends after the status,
    with groups (host, ip, time, method, target, status); `tail`, matched where it ended and
    only on page views, has (referrer, agent)."""

    head: re.Pattern[str]
    tail: re.Pattern[str]


class Format(NamedTuple):
    name: str
    description: str
    parser: Callable[[], Parser]  # a new parser per file
    # Optional: regexes mapped over a whole block of lines at once (in C): most lines are
    # judged on the head's strings without building a LogLine. Lines they do not match, and
    # lines with a backslash (they do not unescape), go to `parser`.
    bulk: Bulk | None = None


def dash(value: str | None) -> str:
    return "" if value is None or value == "-" else value


def unbackslash(value: str) -> str:
    """Apache escapes `"` and `\\` in logged headers as `\\"` and `\\\\`; nginx writes `\\x22`."""
    if "\\" not in value:
        return value
    return _ESCAPE.sub(_unescape_one, value)


_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)")


def _unescape_one(m: re.Match[str]) -> str:
    s = m.group(1)
    if len(s) == 3:
        return chr(int(s[1:], 16))
    return s


def split_request(request: str) -> tuple[str, str]:
    """("GET", "/path?q") of a request line `GET /path?q HTTP/1.1`; ("", "") when it is junk."""
    method, _, rest = request.partition(" ")
    target, _, protocol = rest.rpartition(" ")
    if not protocol.startswith("HTTP/"):
        target = rest  # HTTP/0.9: no protocol
    if not target or " " in target:
        return "", ""
    return method, target


# -- Apache and nginx text formats ----------------------------------------------------------

# A quoted field with backslash escapes, as an unrolled loop: Python's engine pays per
# alternation, and `(?:[^"\\]|\\.)*` cost 13 µs a combined line against ~1.5 µs for this.
_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
_CLF_HEAD = r'(\S+) \S+ (?:\S+|"[^"]*") \[([^\]]+)\] ' + _QUOTED + r" (\d{3}) (?:\d+|-)"
_COMMON = re.compile(_CLF_HEAD + r"\s*$")
_COMBINED = re.compile(_CLF_HEAD + r" " + _QUOTED + r" " + _QUOTED)
_VHOST_COMBINED = re.compile(r"([^\s:]+)(?::\d+)? " + _CLF_HEAD + r" " + _QUOTED + r" " + _QUOTED)
# The same without escapes, for lines with no backslash at all (nearly all): twice as fast.
_PLAIN = r'"([^"]*)"'
_PLAIN_HEAD = _CLF_HEAD.replace(_QUOTED, _PLAIN)
_PLAIN_COMMON = re.compile(_PLAIN_HEAD + r"\s*$")
_PLAIN_COMBINED = re.compile(_PLAIN_HEAD + r" " + _PLAIN + r" " + _PLAIN)
_PLAIN_VHOST_COMBINED = re.compile(r"([^\s:]+)(?::\d+)? " + _PLAIN_HEAD + r" " + _PLAIN + r" " + _PLAIN)


def _clf_parser(
    pattern: re.Pattern[str], plain: re.Pattern[str], with_host: bool, with_agent: bool
) -> Callable[[], Parser]:
    match = pattern.match
    match_plain = plain.match

    def make() -> Parser:
        def parse(line: str) -> LogLine | None:
            escaped = "\\" in line
            m = match(line) if escaped else match_plain(line)
            if m is None:
                return None
            groups = m.groups()
            if with_host:
                host, ip, moment, request, status, referrer, agent = groups
            elif with_agent:
                ip, moment, request, status, referrer, agent = groups
                host = ""
            else:
                ip, moment, request, status = groups
                referrer = agent = host = ""
            if escaped:
                request, referrer, agent = unbackslash(request), unbackslash(referrer), unbackslash(agent)
            # The request line, split here rather than by split_request: this runs for every line.
            method, _, rest = request.partition(" ")
            target, _, protocol = rest.rpartition(" ")
            if not protocol.startswith("HTTP/") or " " in target:
                method, target = split_request(request)
            return LogLine(
                ip, clf_us(moment), method, target, int(status), "" if referrer == "-" else referrer, agent, host
            )

        return parse

    return make


# -- JSON formats ---------------------------------------------------------------------------

_decode_json = msgspec.json.Decoder().decode


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = _decode_json(line)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def _first(obj: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value not in (None, "", "-"):
            return value
    return None


def any_time_us(value: Any) -> int:
    """A time as JSON logs write it: epoch seconds (number or text), ISO 8601, or CLF."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(value * 1_000_000)
    if isinstance(value, str):
        if value.replace(".", "", 1).isdigit():
            return round(float(value) * 1_000_000)
        if len(value) > 20 and value[2] == "/":
            return clf_us(value)
        return iso_us(value)
    raise ValueError("no time")


def _purpose(value: Any) -> bool:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return isinstance(value, str) and "prefetch" in value.lower()


def _nginx_json() -> Parser:
    def parse(line: str) -> LogLine | None:
        obj = _json_object(line)
        if obj is None:
            return None
        ip = _first(obj, "remote_addr", "client_ip", "ip", "realip_remote_addr")
        moment = _first(obj, "time_iso8601", "time_local", "timestamp", "@timestamp", "time", "msec")
        if not isinstance(ip, str) or moment is None:
            return None
        method = _first(obj, "request_method", "method")
        target = _first(obj, "request_uri", "uri")
        request = _first(obj, "request")
        if isinstance(request, str) and (method is None or target is None):
            method, target = split_request(request)
        elif target is not None and "?" not in str(target) and (args := _first(obj, "args", "query_string")):
            target = f"{target}?{args}"
        status = _first(obj, "status", "status_code")
        return LogLine(
            ip,
            any_time_us(moment),
            str(method or ""),
            str(target or ""),
            int(status or 0),
            str(_first(obj, "http_referer", "referer", "referrer") or ""),
            str(_first(obj, "http_user_agent", "user_agent", "agent") or ""),
            str(_first(obj, "http_host", "host", "server_name") or ""),
            _purpose(_first(obj, "http_sec_purpose", "http_purpose")),
        )

    return parse


def _header(headers: Any, name: str) -> str:
    if not isinstance(headers, dict):
        return ""
    value = headers.get(name)
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value) if value is not None else ""


def _caddy_json() -> Parser:
    def parse(line: str) -> LogLine | None:
        obj = _json_object(line)
        if obj is None:
            return None
        request = obj.get("request")
        if not isinstance(request, dict):
            return None
        ip = _first(request, "client_ip", "remote_ip", "remote_addr")
        if not isinstance(ip, str):
            return None
        headers = request.get("headers")
        return LogLine(
            ip,
            any_time_us(obj.get("ts")),
            str(request.get("method") or ""),
            str(request.get("uri") or ""),
            int(obj.get("status") or 0),
            _header(headers, "Referer"),
            _header(headers, "User-Agent"),
            str(request.get("host") or ""),
            _purpose(_header(headers, "Sec-Purpose") or _header(headers, "Purpose")),
        )

    return parse


def _traefik_json() -> Parser:
    def parse(line: str) -> LogLine | None:
        obj = _json_object(line)
        if obj is None:
            return None
        ip = _first(obj, "ClientHost")
        if not isinstance(ip, str):
            return None
        status = _first(obj, "DownstreamStatus", "OriginStatus")
        return LogLine(
            ip,
            any_time_us(_first(obj, "StartUTC", "StartLocal", "time")),
            str(obj.get("RequestMethod") or ""),
            str(obj.get("RequestPath") or ""),
            int(status or 0),
            str(_first(obj, "request_Referer") or ""),
            str(_first(obj, "request_User-Agent") or ""),
            str(obj.get("RequestHost") or ""),
            _purpose(_first(obj, "request_Sec-Purpose", "request_Purpose")),
        )

    return parse


# -- AWS ------------------------------------------------------------------------------------

# Classic ELB: time elb client:port backend:port 3 timings elb_status backend_status bytes bytes
# "request" "user agent" ...; ALB puts a type first and logs more after.
_ELB = re.compile(
    r"(?:(?:https?|h2|wss?|grpcs?) )?(\d{4}-\d\d-\d\dT\S+Z) \S+ (\S+?)(?::\d+)? \S+ \S+ \S+ \S+ (\d{3}|-) \S+ \S+ \S+ "
    + r'"([^"]*)" '
    + _QUOTED
)


def _elb() -> Parser:
    match = _ELB.match

    def parse(line: str) -> LogLine | None:
        m = match(line)
        if m is None:
            return None
        moment, client, status, request, agent = m.groups()
        method, target = split_request(request)
        host = ""
        if target.startswith(("http://", "https://")):
            rest = target.split("://", 1)[1]
            authority, slash, path = rest.partition("/")
            host, target = authority.rsplit(":", 1)[0] if ":" in authority else authority, slash + path
        if status == "-":
            return None
        return LogLine(
            client.strip("[]"), iso_us(moment), method, target or "/", int(status), "", unbackslash(agent), host
        )

    return parse


# -- W3C extended (IIS, CloudFront) ---------------------------------------------------------

CLOUDFRONT_FIELDS = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
]
IIS_FIELDS = [
    "date",
    "time",
    "s-ip",
    "cs-method",
    "cs-uri-stem",
    "cs-uri-query",
    "s-port",
    "cs-username",
    "c-ip",
    "cs(User-Agent)",
    "cs(Referer)",
    "sc-status",
    "sc-substatus",
    "sc-win32-status",
    "time-taken",
]


def _w3c(default_fields: list[str], separator: str | None, decode: Callable[[str], str]) -> Callable[[], Parser]:
    def make() -> Parser:
        fields = {name: i for i, name in enumerate(default_fields)}

        def parse(line: str) -> LogLine | None:
            nonlocal fields
            if line.startswith("#"):
                if line.startswith("#Fields:"):
                    fields = {name: i for i, name in enumerate(line[8:].split())}
                raise Directive
            values = line.rstrip("\r").split(separator)
            if len(values) < len(fields):
                return None

            def get(name: str) -> str:
                i = fields.get(name)
                return "" if i is None else dash(values[i])

            stem, query = get("cs-uri-stem"), get("cs-uri-query")
            status = get("sc-status")
            if not stem or not status.isdigit():
                return None
            return LogLine(
                get("c-ip"),
                iso_us(f"{get('date')}T{get('time')}Z"),
                get("cs-method"),
                decode(stem) + ("?" + query if query else ""),
                int(status),
                decode(get("cs(Referer)")),
                decode(get("cs(User-Agent)")),
                get("x-host-header") or get("cs-host") or get("cs(Host)"),
            )

        return parse

    return make


def _cloudfront_text(value: str) -> str:
    # CloudFront URL-encodes spaces and other characters, some twice (e.g. %2520).
    value = unquote(value)
    return unquote(value) if "%" in value else value


def _iis_text(value: str) -> str:
    return value.replace("+", " ")


def _bulk(with_host: bool, with_agent: bool) -> Bulk:
    host = r"([^\s:]+)(?::\d+)? " if with_host else "()"
    head = re.compile(
        host + r'(\S+) \S+ (?:\S+|"[^"]*") \[(\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
        r'"([^" ]*) ?([^" ]*)[^"]*" (\d{3}) '
    )
    tail = re.compile(r'(?:\d+|-) "([^"]*)" "([^"]*)"' if with_agent else r"(?:\d+|-)()()\s*$")
    return Bulk(head, tail)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "vhost_combined",
            "Apache vhost_combined: %v:%p then combined",
            _clf_parser(_VHOST_COMBINED, _PLAIN_VHOST_COMBINED, True, True),
            _bulk(True, True),
        ),
        Format(
            "combined",
            "Apache/nginx combined (extra fields after it are ignored)",
            _clf_parser(_COMBINED, _PLAIN_COMBINED, False, True),
            _bulk(False, True),
        ),
        Format(
            "common",
            "Apache/nginx common log format",
            _clf_parser(_COMMON, _PLAIN_COMMON, False, False),
            _bulk(False, False),
        ),
        Format("nginx_json", "nginx log_format escape=json with nginx variable names", _nginx_json),
        Format("caddy_json", "Caddy's JSON access log", _caddy_json),
        Format("traefik_json", "Traefik's JSON access log", _traefik_json),
        Format("elb", "AWS Classic ELB and ALB access logs", _elb),
        Format(
            "cloudfront",
            "AWS CloudFront standard logs (W3C, tab-separated)",
            _w3c(CLOUDFRONT_FIELDS, "\t", _cloudfront_text),
        ),
        Format("iis", "IIS W3C extended log", _w3c(IIS_FIELDS, None, _iis_text)),
    )
}

__all__ = ["FORMATS", "Directive", "Format", "LogLine", "Parser", "any_time_us", "split_request"]
