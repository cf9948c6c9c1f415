"""A user's own log format: nginx `log_format` syntax, or a regular expression with named groups.

Both become one regular expression whose named groups are the `LogLine` fields' sources:
`ip`, `time` (common log format time, ISO 8601 or epoch seconds), `request` (or `method` and
`target`/`path` + `query`), `status`, `referrer`, `agent`, `host`, `purpose`. Other groups
are ignored. nginx variables map onto them (`$remote_addr` is `ip`, `$time_local` is `time`,
and so on); a variable Footfall does not use matches up to the next literal character.
"""

from __future__ import annotations

import re

from footfall.importer.formats import Format, LogLine, Parser, any_time_us, dash, split_request, unbackslash

NGINX_VARIABLES = {
    "remote_addr": "ip", "realip_remote_addr": "ip", "http_x_forwarded_for": "forwarded", "binary_remote_addr": "",
    "time_local": "time", "time_iso8601": "time", "msec": "time",
    "request": "request", "request_method": "method", "request_uri": "target", "uri": "path",
    "document_uri": "path", "args": "query", "query_string": "query",
    "status": "status", "http_referer": "referrer", "http_user_agent": "agent",
    "host": "host", "http_host": "host", "server_name": "host",
    "http_sec_purpose": "purpose", "http_purpose": "purpose",
}  # fmt: skip
FIELDS = (
    "ip",
    "time",
    "request",
    "method",
    "target",
    "path",
    "query",
    "status",
    "referrer",
    "agent",
    "host",
    "purpose",
)
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def is_nginx_log_format(pattern: str) -> bool:
    return "(?P<" not in pattern and _VARIABLE.search(pattern) is not None


def nginx_to_regex(log_format: str) -> str:
    """nginx `log_format` text (the quoted part, concatenated) to a regular expression."""
    out: list[str] = []
    used: set[str] = set()
    pos = 0
    for m in _VARIABLE.finditer(log_format):
        out.append(re.escape(log_format[pos : m.start()]))
        name = m.group(1) or m.group(2)
        following = log_format[m.end() : m.end() + 1]
        if following == '"':
            value = r'(?:[^"\\]|\\.)*'
        elif following:
            value = "[^" + re.escape(following) + "]*"
        else:
            value = ".*"
        field = NGINX_VARIABLES.get(name, "")
        if field and field != "forwarded" and field not in used:
            used.add(field)
            out.append(f"(?P<{field}>{value})")
        else:
            out.append(f"(?:{value})")
        pos = m.end()
    out.append(re.escape(log_format[pos:]))
    return "".join(out)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a user pattern; ValueError saying what is missing."""
    regex = nginx_to_regex(pattern) if is_nginx_log_format(pattern) else pattern
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise ValueError(f"the pattern is not a valid regular expression: {exc}") from None
    groups = set(compiled.groupindex)
    missing = [g for g in ("ip", "time", "status") if g not in groups]
    if "request" not in groups and not ({"method", "target"} <= groups or {"method", "path"} <= groups):
        missing.append("request (or method and target)")
    if missing:
        raise ValueError(f"the pattern must capture {', '.join(missing)} (named groups, or nginx variables)")
    return compiled


def pattern_format(pattern: str) -> Format:
    compiled = compile_pattern(pattern)
    names = [f for f in FIELDS if f in compiled.groupindex]

    def make() -> Parser:
        match = compiled.match

        def parse(line: str) -> LogLine | None:
            m = match(line)
            if m is None:
                return None
            g = dict(zip(names, m.group(*names), strict=True)) if len(names) > 1 else {names[0]: m.group(names[0])}
            if g.get("request") is not None:
                method, target = split_request(unbackslash(g["request"]))
            else:
                method = g.get("method") or ""
                target = g.get("target") or g.get("path") or ""
                if g.get("query") and dash(g["query"]) and "?" not in target:
                    target += "?" + g["query"]
            return LogLine(
                dash(g["ip"]),
                any_time_us(g["time"]),
                method,
                target,
                int(g["status"]),
                unbackslash(dash(g.get("referrer"))),
                unbackslash(dash(g.get("agent"))),
                dash(g.get("host")),
                "prefetch" in (g.get("purpose") or "").lower(),
            )

        return parse

    return Format("pattern", "your pattern", make)
