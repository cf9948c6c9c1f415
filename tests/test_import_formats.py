"""Access-log formats, detection, user patterns and the page-view rules (issue 6), on
real-looking lines of each server, nasty ones included: IPv6, quotes in user agents, `-`
fields, junk, truncated lines."""

from __future__ import annotations

import datetime as dt

import pytest

from footfall.importer.detect import UnknownFormat, detect
from footfall.importer.formats import FORMATS, Directive, LogLine
from footfall.importer.pageviews import PageFilter
from footfall.importer.patterns import pattern_format

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
T0 = int(dt.datetime(2026, 4, 3, 12, 30, 45, tzinfo=dt.UTC).timestamp()) * 1_000_000


def parse(fmt: str, *lines: str) -> list[LogLine | None]:
    parser = FORMATS[fmt].parser()
    out: list[LogLine | None] = []
    for line in lines:
        try:
            out.append(parser(line))
        except Directive:
            continue
    return out


def test_combined_with_zone_quotes_ipv6_and_dashes() -> None:
    a, b, c = parse(
        "combined",
        f'203.0.113.7 - - [03/Apr/2026:14:30:45 +0200] "GET /docs/start?utm_source=x HTTP/1.1" 200 5120 '
        f'"https://www.google.com/" "{FIREFOX}"',
        '2001:db8::1 - alice [03/Apr/2026:12:30:45 +0000] "GET /pricing HTTP/2.0" 200 - "-" '
        '"Mozilla/5.0 (compatible; \\"quoted\\" agent)"',
        '198.51.100.9 - - [03/Apr/2026:12:30:45 +0000] "GET /x\\x22y HTTP/1.1" 200 12 "-" "-" "10.0.0.1" rt=0.002',
    )
    assert a == LogLine("203.0.113.7", T0, "GET", "/docs/start?utm_source=x", 200, "https://www.google.com/", FIREFOX)
    assert b is not None and b.ip == "2001:db8::1" and b.referrer == "" and b.status == 200
    assert b.agent == 'Mozilla/5.0 (compatible; "quoted" agent)'  # Apache's \" escape undone
    assert c is not None and c.target == '/x"y' and c.agent == "-"  # nginx's \x22; extra fields ignored


def test_common_and_vhost_combined() -> None:
    (a,) = parse("common", '198.51.100.4 - - [03/Apr/2026:12:30:45 +0000] "GET /about HTTP/1.0" 200 -')
    assert a == LogLine("198.51.100.4", T0, "GET", "/about", 200, "", "")
    (b,) = parse(
        "vhost_combined",
        f'www.example.com:443 203.0.113.7 - - [03/Apr/2026:12:30:45 +0000] "GET / HTTP/1.1" 200 3512 "-" "{CHROME}"',
    )
    assert b is not None and b.host == "www.example.com" and b.agent == CHROME and b.target == "/"


def test_junk_and_truncated_lines_are_not_parsed() -> None:
    assert parse(
        "combined",
        "this is not a log line",
        '203.0.113.7 - - [03/Apr/2026:12:30:45 +0000] "GET / HTTP/1.1" 200 51',
        "203.0.113.7 - - [03/Apr/2026:12:0",
        "",
    ) == [None, None, None, None]
    # A request line that is binary junk parses, as no page view (no method, no target).
    (junk,) = parse("combined", '203.0.113.7 - - [03/Apr/2026:12:30:45 +0000] "\\x16\\x03\\x01" 400 150 "-" "-"')
    assert junk is not None and junk.status == 400 and junk.target == ""


def test_nginx_json() -> None:
    (a,) = parse(
        "nginx_json",
        '{"time_iso8601":"2026-04-03T14:30:45+02:00","remote_addr":"2001:db8::5","request":"GET /blog/post-1?ref=x '
        'HTTP/1.1","status":"200","body_bytes_sent":"1234","http_referer":"https://news.ycombinator.com/",'
        f'"http_user_agent":"{CHROME}","host":"example.com","http_sec_purpose":""}}',
    )
    assert a == LogLine(
        "2001:db8::5", T0, "GET", "/blog/post-1?ref=x", 200, "https://news.ycombinator.com/", CHROME, "example.com"
    )


def test_caddy_json_with_prefetch() -> None:
    (a,) = parse(
        "caddy_json",
        f'{{"level":"info","ts":{T0 / 1e6},"logger":"http.log.access.log0","msg":"handled request",'
        '"request":{"remote_ip":"203.0.113.7","remote_port":"51234","client_ip":"203.0.113.7","proto":"HTTP/2.0",'
        '"method":"GET","host":"example.com","uri":"/docs/","headers":{"User-Agent":["' + FIREFOX + '"],'
        '"Referer":["https://duckduckgo.com/"],"Sec-Purpose":["prefetch;prerender"]}},"bytes_read":0,"user_id":"",'
        '"duration":0.0012,"size":5120,"status":200,"resp_headers":{"Content-Type":["text/html; charset=utf-8"]}}',
    )
    assert a == LogLine(
        "203.0.113.7", T0, "GET", "/docs/", 200, "https://duckduckgo.com/", FIREFOX, "example.com", True
    )


def test_traefik_json_with_nanoseconds() -> None:
    (a,) = parse(
        "traefik_json",
        '{"ClientAddr":"[2001:db8::2]:52100","ClientHost":"2001:db8::2","ClientPort":"52100",'
        '"DownstreamContentSize":5120,"DownstreamStatus":200,"Duration":1234567,"OriginStatus":200,'
        '"RequestAddr":"example.com","RequestHost":"example.com","RequestMethod":"GET","RequestPath":"/pricing?plan=pro",'
        '"RequestPort":"-","RequestProtocol":"HTTP/2.0","RequestScheme":"https","StartUTC":"2026-04-03T12:30:45.123456789Z",'
        f'"level":"info","msg":"","request_User-Agent":"{CHROME}","request_Referer":"https://www.bing.com/",'
        '"time":"2026-04-03T12:30:45Z"}',
    )
    assert a == LogLine(
        "2001:db8::2", T0 + 123456, "GET", "/pricing?plan=pro", 200, "https://www.bing.com/", CHROME, "example.com"
    )


def test_alb_and_classic_elb() -> None:
    alb, ipv6, elb = parse(
        "elb",
        "https 2026-04-03T12:30:45.000000Z app/my-loadbalancer/50dc6c495c0c9188 203.0.113.7:2817 10.0.0.1:80 0.000 "
        '0.001 0.000 200 200 34 366 "GET https://example.com:443/docs/start?x=1 HTTP/1.1" "' + CHROME + '" '
        "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 "
        "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/t/73e2d6bc "
        '"Root=1-58337262-36d228ad5d99923122bbe354" "example.com" "-" 0 2026-04-03T12:30:44.990000Z "forward" "-" "-"',
        "h2 2026-04-03T12:30:45.000000Z app/my-loadbalancer/50dc6c495c0c9188 2001:db8::7:2817 10.0.0.1:80 0.000 "
        '0.001 0.000 304 304 34 0 "GET https://example.com:443/ HTTP/2.0" "-" - - - "-" "-" "-"',
        "2026-04-03T12:30:45.000000Z my-loadbalancer 198.51.100.3:2817 10.0.0.1:80 0.000073 0.001048 0.000057 200 200 "
        '0 29 "GET http://example.com:80/about HTTP/1.1" "curl/8.5.0" - -',
    )
    assert alb == LogLine("203.0.113.7", T0, "GET", "/docs/start?x=1", 200, "", CHROME, "example.com")
    assert ipv6 is not None and ipv6.ip == "2001:db8::7" and ipv6.status == 304 and ipv6.agent == "-"
    assert elb == LogLine("198.51.100.3", T0, "GET", "/about", 200, "", "curl/8.5.0", "example.com")


CLOUDFRONT = [
    "#Version: 1.0",
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
    "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes "
    "time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version",
    "\t".join(
        [
            "2026-04-03",
            "12:30:45",
            "SFO5-C1",
            "5120",
            "2001:db8::9",
            "GET",
            "d111111abcdef8.cloudfront.net",
            "/docs/start",
            "200",
            "https://www.google.com/",
            CHROME.replace(" ", "%20"),
            "utm_source=x",
            "-",
            "Miss",
            "abc==",
            "example.com",
            "https",
            "150",
            "0.002",
            "-",
            "TLSv1.3",
            "TLS_AES_128_GCM_SHA256",
            "Miss",
            "HTTP/2.0",
        ]
    ),
]
IIS = [
    "#Software: Microsoft Internet Information Services 10.0",
    "#Version: 1.0",
    "#Date: 2026-04-03 12:30:45",
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) "
    "sc-status sc-substatus sc-win32-status time-taken",
    f"2026-04-03 12:30:45 10.0.0.5 GET /default.aspx - 443 - 203.0.113.7 {CHROME.replace(' ', '+')} "
    "https://www.google.com/ 200 0 0 15",
]


def test_cloudfront_and_iis() -> None:
    (cf,) = parse("cloudfront", *CLOUDFRONT)
    assert cf == LogLine(
        "2001:db8::9", T0, "GET", "/docs/start?utm_source=x", 200, "https://www.google.com/", CHROME, "example.com"
    )
    (iis,) = parse("iis", *IIS)
    assert iis == LogLine("203.0.113.7", T0, "GET", "/default.aspx", 200, "https://www.google.com/", CHROME, "")


COMBINED_LINE = f'203.0.113.7 - - [03/Apr/2026:12:30:45 +0000] "GET / HTTP/1.1" 200 51 "-" "{FIREFOX}"'


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([COMBINED_LINE, "junk", COMBINED_LINE], "combined"),
        (['198.51.100.4 - - [03/Apr/2026:12:30:45 +0000] "GET /about HTTP/1.0" 200 -'], "common"),
        (["example.com:80 " + COMBINED_LINE], "vhost_combined"),
        (
            [
                '{"remote_addr":"203.0.113.7","time_local":"03/Apr/2026:12:30:45 +0000",'
                '"request":"GET / HTTP/1.1","status":200}'
            ],
            "nginx_json",
        ),
        (
            ['{"ts":1775219445.5,"request":{"client_ip":"203.0.113.7","method":"GET","uri":"/"},"status":200}'],
            "caddy_json",
        ),
        (
            [
                '{"ClientHost":"203.0.113.7","RequestMethod":"GET","RequestPath":"/","DownstreamStatus":200,'
                '"StartUTC":"2026-04-03T12:30:45Z"}'
            ],
            "traefik_json",
        ),
        (
            [
                "2026-04-03T12:30:45.000000Z lb 198.51.100.3:2817 - -1 -1 -1 503 0 0 0 "
                '"GET http://example.com:80/ HTTP/1.1" "-" - -'
            ],
            "elb",
        ),
        (CLOUDFRONT, "cloudfront"),
        (IIS, "iis"),
    ],
)
def test_detection(lines: list[str], expected: str) -> None:
    assert detect(lines).name == expected


def test_detection_refuses_what_it_cannot_tell() -> None:
    with pytest.raises(UnknownFormat, match="--format"):
        detect(["hello", "world"])


def test_user_patterns_nginx_log_format_and_regex() -> None:
    fmt = pattern_format(
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
        '"$http_user_agent" rt=$request_time uct="$upstream_connect_time"'
    )
    (a,) = [fmt.parser()(COMBINED_LINE.replace(f'"{FIREFOX}"', f'"{FIREFOX}" rt=0.012 uct="0.001"'))]
    assert a == LogLine("203.0.113.7", T0, "GET", "/", 200, "", FIREFOX)
    regex = pattern_format(
        r'(?P<ip>\S+) (?P<time>\S+) (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) "(?P<agent>[^"]*)"'
    )
    assert regex.parser()(f'2001:db8::4 2026-04-03T12:30:45Z GET /a 200 "{CHROME}"') == LogLine(
        "2001:db8::4", T0, "GET", "/a", 200, "", CHROME
    )
    with pytest.raises(ValueError, match="must capture status"):
        pattern_format(r"(?P<ip>\S+) (?P<time>\S+) (?P<request>.*)")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        pattern_format(r"(?P<ip>\S+")


def test_page_view_rules() -> None:
    rules = PageFilter("example.com", exclude_paths=["/admin/*"])

    def why(
        method: str = "GET", status: int = 200, target: str = "/", host: str = "", prefetch: bool = False
    ) -> str | None:
        return rules.reject(LogLine("203.0.113.7", T0, method, target, status, "", FIREFOX, host, prefetch))

    assert why() is None and why(target="/blog/post.html?x=1") is None and why(host="www.example.com:443") is None
    assert why(method="POST") == "method" and why(method="HEAD") == "method"
    assert why(status=304) == "status" and why(status=404) == "status" and why(status=301) == "status"
    assert why(target="/static/app.css") == "static" and why(target="/img/Logo.PNG?v=2") == "static"
    assert why(target="/dir.css/page") is None  # only the last segment's extension counts
    assert why(prefetch=True) == "prefetch"
    assert why(target="/admin/users") == "path"
    assert why(host="other.org") == "host"
    assert why(target="*") == "target" and why(target="") == "target"
    lenient = PageFilter(
        "example.com", include_304=True, static_extensions=frozenset({"css"}), include_paths=["/blog/*"]
    )
    assert lenient.reject(LogLine("1.2.3.4", T0, "GET", "/blog/a.png", 304, "", "")) is None
    assert lenient.reject(LogLine("1.2.3.4", T0, "GET", "/docs", 200, "", "")) == "path"


def test_line_event_ids_are_the_server_apis() -> None:
    # The importer gives each line the event id the batch API derives from the record's `id`,
    # so an import in-process and one through --server store a line once. derived_event_id
    # formats its UUID by hand (for speed): it must be exactly uuid's.
    import uuid
    from hashlib import blake2b

    from footfall.ingest.sdk import derived_event_id

    for site_id, message in [(1, "0f" * 16), (7, "x"), (3, "caf\u00e9 \udcff")]:
        digest = blake2b(f"server\x00{site_id}\x00{message}".encode("utf-8", "surrogatepass"), digest_size=16)
        assert derived_event_id("server", site_id, message) == str(uuid.UUID(bytes=digest.digest(), version=4))
