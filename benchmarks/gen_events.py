"""Load N synthetic events with realistic distributions into a Footfall data directory.

    .venv/bin/python benchmarks/gen_events.py --events 10000000 [--dir /tmp/ff-bench-10M]

The store is made by `DuckDBStore` (so the schema is the real one), the site and its goals by
`footfall.manage`; then the rows are generated inside DuckDB with SQL, one UTC calendar day per
statement (memory stays bounded, and rows land in time order, as live ingest writes them, so
DuckDB's zone maps on `ts` behave as in production). Nothing is generated row by row in Python.

Every random draw is a hash of a row's key (see `u()`), so the same arguments give the same data.

The shape (the issue's benchmark section):
- `--days` (30) UTC calendar days ending now; weekdays busier than weekends, a slow growth,
  and a diurnal curve peaking in the European afternoon.
- Visitors: the visitor id is a hash of (person, day), as the daily salt makes it in production,
  so distinct visitors over the range are the visitor-days: about N/8. A visitor-day has 1..12
  visits (geometric, mean ~1.8), each starting 95 min to 5 h after the previous one, so visits
  of one visitor never come within 30 minutes of each other and `session_id` (one per visit)
  agrees with what the sessionizer would make of `visitor_id` and the times.
- Visits: 30% are a single pageview (bounces); the rest have 2..15 events (mean ~6), 5 s to
  2 min apart. The first event is the entry pageview; later ones are custom events with a
  probability chosen so ~10% of all events are custom events (a few properties each; Purchase
  carries revenue), unless `--engagement` adds Plausible-style engagement events.
- Pages: ~2,000 paths, power law (the home page ~12% of pageviews, entry pages steeper).
- Sources: direct ~38%, Google ~33%, other search, social, AI assistants, email, and a power-law
  long tail of ~3,000 referring hosts (~8%); UTM tags on ~4% of visits (campaign mediums set
  the channel, as enrich.sources does).
- Devices, browsers and OS from one correlated platform table (Windows/Chrome first, iOS/Mobile
  Safari second, ...); countries power law over ~40, regions and cities power law within each
  (thousands of distinct cities); all fixed per visitor-day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from footfall.event import STORED_FIELDS
from footfall.manage import Context, goals_add, sites_add
from footfall.store.duckdb import DuckDBStore

SITE = "bench.example"
TIMEZONE = "Europe/Berlin"
DB_NAME = "footfall.duckdb"  # footfall.config: data_dir / "footfall.duckdb"
MARKER = "bench-data.json"
GEN_VERSION = 1  # bump when the generated shape changes, so old directories are rebuilt

GOALS = [
    ("Signup", "event", "Signup"),
    ("Purchase", "event", "Purchase"),
    ("Visit pricing", "pageview", "/pricing"),
    ("Read a blog post", "pageview", "/blog/*"),
]

# Shape parameters (see the module docstring).
SINGLE_PAGE_SHARE = 0.30
MULTI_MIN, MULTI_SPAN, MULTI_EXP = 2, 14, 2.2  # n = 2 + floor(u^EXP * SPAN) for multi-event visits
VISITS_P = 0.444  # P(visits > j) = p^j per visitor-day: mean 1 / (1 - p) ~ 1.8
MAX_VISITS = 12
CUSTOM_SHARE = 0.10  # of all events
UTM_SHARE = 0.04
PAGES = 2000

# (device, os, browser, weight per 1000, os versions, browser versions)
PLATFORMS = [
    ("desktop", "Windows", "Chrome", 280, "10|11", "131|130|129|128|127|126"),
    ("desktop", "Windows", "Edge", 60, "10|11", "131|130|129"),
    ("desktop", "Windows", "Firefox", 30, "10|11", "133|132|131|128"),
    ("desktop", "Windows", "Opera", 5, "10|11", "114|113"),
    ("desktop", "Mac OS X", "Chrome", 110, "10.15|14|15", "131|130|129|128"),
    ("desktop", "Mac OS X", "Safari", 60, "10.15|14|15", "18.1|18.0|17.6"),
    ("desktop", "Mac OS X", "Firefox", 15, "10.15|14", "133|132"),
    ("desktop", "Linux", "Firefox", 15, "", "133|132|128"),
    ("desktop", "Linux", "Chrome", 15, "", "131|130"),
    ("desktop", "Chrome OS", "Chrome", 10, "16093", "131|130"),
    ("mobile", "iOS", "Mobile Safari", 170, "18.1|18.0|17.6|17.5|16.7", "18.1|18.0|17.6|17.5|16.6"),
    ("mobile", "iOS", "Chrome Mobile iOS", 20, "18.1|18.0|17.6", "131|130"),
    ("mobile", "Android", "Chrome Mobile", 130, "14|13|12|11|10", "131|130|129|128"),
    ("mobile", "Android", "Samsung Internet", 25, "14|13|12", "26.0|25.0"),
    ("mobile", "Android", "Firefox Mobile", 5, "14|13", "133|132"),
    ("tablet", "iOS", "Mobile Safari", 25, "18.1|17.6", "18.1|17.6"),
    ("tablet", "Android", "Chrome", 10, "14|13", "131|130"),
    ("other", "Other", "Other", 15, "", ""),
]

# (source, referrer host, channel, weight per 1000); the rest is the long tail of referrals.
SOURCES = [
    ("", "", "direct", 380),
    ("Google", "www.google.com", "search", 330),
    ("Bing", "www.bing.com", "search", 25),
    ("DuckDuckGo", "duckduckgo.com", "search", 20),
    ("Yahoo!", "search.yahoo.com", "search", 5),
    ("Ecosia", "www.ecosia.org", "search", 5),
    ("Yandex", "yandex.ru", "search", 5),
    ("Baidu", "www.baidu.com", "search", 2),
    ("Twitter", "t.co", "social", 25),
    ("Facebook", "m.facebook.com", "social", 20),
    ("Reddit", "www.reddit.com", "social", 20),
    ("LinkedIn", "www.linkedin.com", "social", 12),
    ("Hacker News", "news.ycombinator.com", "social", 15),
    ("YouTube", "www.youtube.com", "social", 8),
    ("Instagram", "l.instagram.com", "social", 5),
    ("Mastodon", "mastodon.social", "social", 3),
    ("ChatGPT", "chatgpt.com", "ai", 15),
    ("Perplexity", "www.perplexity.ai", "ai", 5),
    ("Claude", "claude.ai", "ai", 3),
    ("GitHub", "github.com", "referral", 15),
    ("Gmail", "mail.google.com", "email", 6),
]
TAIL_HOSTS = 3000

# (utm_source, utm_medium, source, channel, weight per 1000 UTM-tagged visits)
UTMS = [
    ("newsletter", "email", "newsletter", "email", 400),
    ("google", "cpc", "Google", "paid", 250),
    ("twitter", "social", "Twitter", "social", 120),
    ("facebook", "paid_social", "Facebook", "paid", 100),
    ("linkedin", "social", "LinkedIn", "social", 80),
    ("producthunt", "referral", "producthunt", "referral", 50),
]

# (name, weight per 1000 custom events, first property, its values, second property, its values)
CUSTOM_EVENTS = [
    ("Outbound Link: Click", 300, "url", "tail:https://ext-{}.example.org/", "", ""),
    ("File Download", 100, "url", "tail:/files/doc-{}.pdf", "", ""),
    ("Form: Submission", 100, "form", "contact|newsletter|demo|feedback", "", ""),
    ("Signup", 120, "plan", "Free|Free|Free|Pro|Team", "method", "email|google|github"),
    ("Search", 80, "results", "0|1-5|6-20|20+", "", ""),
    ("404", 80, "path", "tail:/missing-{}", "", ""),
    ("Add to Cart", 80, "product", "tail:sku-{}", "quantity", "1|1|1|2|3"),
    ("Video Play", 60, "video", "intro|demo|webinar|tutorial-1|tutorial-2", "autoplay", "false|false|true"),
    ("Purchase", 40, "plan", "Pro|Pro|Team|Enterprise", "interval", "monthly|monthly|yearly"),
    ("Copy Code", 40, "language", "python|javascript|shell|go|ruby", "", ""),
]

NAMED_PAGES = [
    "/", "/pricing", "/blog", "/docs", "/features", "/about", "/signup", "/login", "/docs/getting-started",
    "/docs/api", "/changelog", "/integrations", "/contact", "/customers", "/compare", "/careers",
    "/security", "/privacy", "/terms", "/status",
]
DOC_SECTIONS = ["guides", "api", "sdk", "self-hosting", "integrations", "reference", "faq", "tutorials"]

# Countries (ISO code, weight) and a language for each; regions and cities are a power law inside.
COUNTRIES = [
    ("US", 280, "en-US"), ("DE", 90, "de-DE"), ("GB", 80, "en-GB"), ("IN", 60, "en-IN"), ("FR", 40, "fr-FR"),
    ("CA", 40, "en-CA"), ("NL", 25, "nl-NL"), ("BR", 25, "pt-BR"), ("JP", 20, "ja-JP"), ("AU", 20, "en-AU"),
    ("ES", 18, "es-ES"), ("IT", 16, "it-IT"), ("PL", 14, "pl-PL"), ("SE", 12, "sv-SE"), ("CH", 10, "de-CH"),
    ("AT", 10, "de-AT"), ("BE", 10, "nl-BE"), ("MX", 10, "es-MX"), ("KR", 9, "ko-KR"), ("SG", 9, "en-SG"),
    ("TR", 8, "tr-TR"), ("UA", 8, "uk-UA"), ("ID", 8, "id-ID"), ("CN", 8, "zh-CN"), ("DK", 7, "da-DK"),
    ("NO", 7, "nb-NO"), ("FI", 6, "fi-FI"), ("IE", 6, "en-IE"), ("PT", 6, "pt-PT"), ("CZ", 6, "cs-CZ"),
    ("AR", 5, "es-AR"), ("IL", 5, "he-IL"), ("ZA", 5, "en-ZA"), ("VN", 5, "vi-VN"), ("PH", 5, "en-PH"),
    ("RO", 5, "ro-RO"), ("NZ", 4, "en-NZ"), ("GR", 4, "el-GR"), ("HU", 4, "hu-HU"), ("", 75, ""),
]
REGIONS_PER_COUNTRY = 24
CITIES_PER_REGION = 80


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else str(n)


def default_dir(n: int) -> Path:
    # FOOTFALL_BENCH_DATA_PREFIX: another place for the data directories (e.g. a copy to modify).
    return Path(f"{os.environ.get('FOOTFALL_BENCH_DATA_PREFIX', '/tmp/ff-bench-')}{label(n)}")


def _mean_events_per_visit() -> float:
    """Expected events per visit under the visit-length draw (numerically, on a fine grid)."""
    grid = 200_000
    multi = sum(MULTI_MIN + math.floor(((i + 0.5) / grid) ** MULTI_EXP * MULTI_SPAN) for i in range(grid)) / grid
    assert isinstance(multi, float)
    return SINGLE_PAGE_SHARE + (1 - SINGLE_PAGE_SHARE) * multi


def _mean_visits_per_visitor_day() -> float:
    return float(sum(VISITS_P**j for j in range(MAX_VISITS)))


def _day_weights(days: list[dt.date], today_fraction: float) -> list[float]:
    """Relative traffic per day: weekdays busier, slow growth, today only as far as it went."""
    weights = []
    for i, day in enumerate(days):
        w = (0.75 if day.weekday() >= 5 else 1.05) * (1 + 0.2 * i / max(1, len(days) - 1))
        weights.append(w * (today_fraction if i == len(days) - 1 else 1.0))
    return weights


def _values_sql(rows: list[tuple[Any, ...]]) -> str:
    def lit(v: Any) -> str:
        return str(v) if isinstance(v, int | float) else "'" + str(v).replace("'", "''") + "'"

    return ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in rows)


def _slots(con: duckdb.DuckDBPyConnection, name: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    """A lookup table with one row per unit of weight (the weight is each row's 4th-from-last or
    named `w` column), numbered 0.. in `slot`, so a draw is an equi-join on floor(u * total)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name}_w AS SELECT * FROM (VALUES {_values_sql(rows)}) t({columns})")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT (row_number() OVER () - 1)::INT AS slot, * EXCLUDE (k) "
        f"FROM (SELECT *, unnest(range(w)) AS k FROM {name}_w ORDER BY ALL)"
    )


def _setup(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    # u(key, tag): a uniform draw in [0, 1) from 53 bits of a hash, the same for the same key.
    con.execute(
        f"CREATE OR REPLACE TEMP MACRO u(key, tag) AS (hash(key, tag, {seed}) >> 11)::DOUBLE / 9007199254740992.0"
    )
    # pick('a|b|c', x): the element at x in [0, 1) of a '|'-separated list.
    con.execute(
        "CREATE OR REPLACE TEMP MACRO pick(choices, x) AS "
        "string_split(choices, '|')[1 + floor(x * len(string_split(choices, '|')))::INT]"
    )
    _slots(con, "platforms", "device, os, browser, w, os_versions, browser_versions", PLATFORMS)
    _slots(con, "sources", "source, referrer_host, channel, w", SOURCES)
    _slots(con, "utms", "utm_source, utm_medium, source, channel, w", UTMS)
    _slots(con, "customs", "name, w, key1, values1, key2, values2", CUSTOM_EVENTS)
    _slots(con, "countries", "country, w, language", COUNTRIES)
    pages = [(i, p) for i, p in enumerate(NAMED_PAGES)]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE pages AS "
        f"SELECT * FROM (VALUES {_values_sql(pages)}) t(idx, path) UNION ALL "
        "SELECT i AS idx, CASE "
        " WHEN i < 1200 THEN '/blog/' || pick('how-to|why|the-guide-to|notes-on|release', u(i, 'slug'))"
        "   || '-' || md5(i::VARCHAR)[:6] || '-' || i"
        f" WHEN i < 1800 THEN '/docs/' || pick('{'|'.join(DOC_SECTIONS)}', u(i, 'sec')) || '/page-' || i"
        " ELSE '/tag/topic-' || i END AS path "
        f"FROM range({len(NAMED_PAGES)}, {PAGES}) t(i)"
    )


def _day_sql(day_index: int, day: dt.date, visitor_days: int, max_second: int, day_scale: float, p_event: float,
             engagement: float, hostname: str, site_id: int) -> str:
    """One UTC day's events: visitor-days -> visits -> events, inserted in time order."""
    day_start_s = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())
    n_plat = sum(p[3] for p in PLATFORMS)
    n_utm = sum(u[4] for u in UTMS)
    n_custom = sum(c[1] for c in CUSTOM_EVENTS)
    n_country = sum(c[1] for c in COUNTRIES)
    named_sources = sum(s[3] for s in SOURCES)
    engagement_rows = f"CASE WHEN u(ek, 'eng') < {engagement} THEN 2 ELSE 1 END" if engagement > 0 else "1"
    return f"""
    WITH vd AS (
        SELECT {day_index}::BIGINT * 1000000000 + i AS vk
        FROM range({visitor_days}) t(i)
    ), vd2 AS (
        SELECT vk,
            hash(vk, 'visitor') AS visitor_id,
            least({MAX_VISITS}, 1 + floor(ln(1 - u(vk, 'm')) / ln({VISITS_P}))::INT) AS m,
            -- diurnal: 80% around 14:00 UTC (sd ~4 h), 20% uniform over the day; squeezed into
            -- the part of the day that has passed when the day is today (day_scale < 1)
            floor({day_scale} * CASE WHEN u(vk, 'mix') < 0.8
                 THEN (50400 + 14400 * 2 * (u(vk, 't1') + u(vk, 't2') + u(vk, 't3') - 1.5) + 86400)::BIGINT % 86400
                 ELSE floor(u(vk, 't0') * 86400)::BIGINT END)::BIGINT AS t0,
            floor(u(vk, 'plat') * {n_plat})::INT AS plat,
            floor(u(vk, 'country') * {n_country})::INT AS ctry,
            floor(pow(u(vk, 'region'), 2.0) * {REGIONS_PER_COUNTRY})::INT AS region_no,
            floor(pow(u(vk, 'city'), 2.5) * {CITIES_PER_REGION})::INT AS city_no,
            u(vk, 'ver') AS ver
        FROM vd
    ), visits AS (
        SELECT vd2.*, vk * 16 + j AS sk,
            -- the j-th visit starts 95 min to 5 h 15 min after the (j-1)-th
            t0 + j * 5700 + floor(u(vk, 'gap') * 14400)::BIGINT * j AS start_s
        FROM (SELECT *, unnest(range(m)) AS j FROM vd2) vd2
    ), visits2 AS (
        SELECT v.*,
            hash(sk, 'session') AS session_id,
            CASE WHEN u(sk, 'single') < {SINGLE_PAGE_SHARE} THEN 1
                 ELSE {MULTI_MIN} + floor(pow(u(sk, 'len'), {MULTI_EXP}) * {MULTI_SPAN})::INT END AS n,
            5 + floor(u(sk, 'pace') * 115)::INT AS pace,
            floor(u(sk, 'src') * 1000)::INT AS src,
            u(sk, 'utm') < {UTM_SHARE} AS tagged,
            floor(u(sk, 'utmpick') * {n_utm})::INT AS utm,
            floor(pow(u(sk, 'entry'), 2.5) * {PAGES})::INT AS entry_idx
        FROM visits v
        WHERE start_s < {max_second}
    ), ev AS (
        SELECT v.*, sk * 32 + k AS ek
        FROM (SELECT *, unnest(range(n)) AS k FROM visits2) v
    ), ev2 AS (
        SELECT ev.*,
            {day_start_s} + start_s + k * pace + floor(u(ek, 'jit') * pace * 0.9)::BIGINT AS t_s,
            CASE WHEN k = 0 OR u(ek, 'kind') >= {p_event} THEN 'pageview' ELSE 'event' END AS kind,
            CASE WHEN k = 0 THEN entry_idx ELSE floor(pow(u(ek, 'page'), 3.2) * {PAGES})::INT END AS page_idx,
            floor(u(ek, 'custom') * {n_custom})::INT AS custom
        FROM ev
    ), ev3 AS (  -- engagement events, one after some pageviews, as Plausible's tracker sends them
        SELECT ev2.*, unnest(range(CASE WHEN kind = 'pageview' THEN {engagement_rows} ELSE 1 END)) AS e
        FROM ev2
    )
    SELECT
        uuidv7() AS event_id,
        {site_id}::UINTEGER AS site_id,
        make_timestamp((t_s * 1000000 + e * 20000000 + floor(u(ek, 'us') * 1000000))::BIGINT) AS ts,
        make_timestamp((t_s * 1000000 + e * 20000000 + 1500000)::BIGINT) AS received_at,
        CASE WHEN e = 1 THEN 'event' ELSE kind END AS kind,
        CASE WHEN e = 1 THEN 'engagement' WHEN kind = 'pageview' THEN 'pageview' ELSE c.name END AS name,
        '{hostname}' AS hostname,
        pg.path AS pathname,
        -- Only a visit's first hit has the outside referrer; later ones come from the site itself,
        -- which enrich.sources ignores (source '', channel direct), as live ingest stores them.
        CASE WHEN k > 0 THEN '{hostname}'
             WHEN tagged AND ut.channel IN ('email') THEN ''
             WHEN src < {named_sources} THEN s.referrer_host
             ELSE 'blog-' || floor(pow(u(sk, 'tail'), 3.0) * {TAIL_HOSTS})::INT || '.example.net' END AS referrer_host,
        CASE WHEN k > 0 OR tagged AND ut.channel IN ('email') OR src < {named_sources} THEN ''
             ELSE '/posts/' || floor(u(sk, 'tailpath') * 50)::INT END AS referrer_path,
        CASE WHEN k > 0 THEN '' WHEN tagged THEN ut.source WHEN src < {named_sources} THEN s.source
             ELSE 'blog-' || floor(pow(u(sk, 'tail'), 3.0) * {TAIL_HOSTS})::INT || '.example.net' END AS source,
        CASE WHEN k > 0 THEN 'direct' WHEN tagged THEN ut.channel WHEN src < {named_sources} THEN s.channel
             ELSE 'referral' END AS channel,
        CASE WHEN k = 0 AND tagged THEN ut.utm_source ELSE '' END AS utm_source,
        CASE WHEN k = 0 AND tagged THEN ut.utm_medium ELSE '' END AS utm_medium,
        CASE WHEN k > 0 OR NOT tagged THEN ''
             WHEN ut.channel = 'email' THEN 'weekly-' || (40 + floor(pow(u(sk, 'camp'), 2) * 12)::INT)
             ELSE pick('spring-sale|launch-2026|brand|retargeting|webinar-q4|black-friday', u(sk, 'camp')) END
            AS utm_campaign,
        CASE WHEN k = 0 AND tagged AND ut.utm_medium = 'cpc'
             THEN pick('analytics|privacy analytics|web stats', u(sk, 'term')) ELSE '' END AS utm_term,
        CASE WHEN k = 0 AND tagged AND u(sk, 'content') < 0.3
             THEN pick('header|footer|sidebar', u(sk, 'cont')) ELSE '' END AS utm_content,
        visitor_id,
        session_id,
        CASE WHEN kind = 'pageview' THEN md5(ek::VARCHAR)[:16] END AS page_id,
        NULL::VARCHAR AS user_id,
        p.browser,
        pick(p.browser_versions, ver) AS browser_version,
        p.os,
        pick(p.os_versions, ver) AS os_version,
        p.device,
        co.country,
        CASE WHEN co.country = '' OR region_no = {REGIONS_PER_COUNTRY - 1} THEN ''
             ELSE co.country || ' Region ' || region_no END AS region,
        CASE WHEN co.country = '' OR region_no = {REGIONS_PER_COUNTRY - 1} OR city_no = {CITIES_PER_REGION - 1} THEN ''
             ELSE co.country || ' City ' || region_no || '-' || city_no END AS city,
        co.language,
        CASE p.device WHEN 'desktop' THEN pick('1920|1920|1536|1440|1366|2560', ver)::INTEGER
                      WHEN 'mobile' THEN pick('390|393|412|375|414|360', ver)::INTEGER
                      WHEN 'tablet' THEN pick('820|768|1024', ver)::INTEGER END AS screen_width,
        CASE WHEN e = 1 THEN MAP {{'engagement_ms': (1000 + floor(pow(u(ek, 'eng_ms'), 2) * 300000)::INT)::VARCHAR,
                                  'scroll_depth': floor(u(ek, 'scroll') * 101)::INT::VARCHAR}}
             WHEN kind = 'pageview' THEN MAP {{}}::MAP(VARCHAR, VARCHAR)
             WHEN c.key2 = '' THEN MAP([c.key1], [{_prop_value('c.values1', 'p1')}])
             ELSE MAP([c.key1, c.key2], [{_prop_value('c.values1', 'p1')}, {_prop_value('c.values2', 'p2')}]) END
            AS props,
        CASE WHEN e = 0 AND kind = 'event' AND c.name = 'Purchase'
             THEN pick('19|19|49|49|99|490', u(ek, 'rev'))::DECIMAL(18, 4) END AS revenue_amount,
        CASE WHEN e = 0 AND kind = 'event' AND c.name = 'Purchase' THEN 'EUR' END AS revenue_currency,
        'plausible' AS source_api
    FROM ev3
    JOIN pages pg ON pg.idx = page_idx
    JOIN platforms p ON p.slot = plat
    JOIN countries co ON co.slot = ctry
    JOIN sources s ON s.slot = least(src, {named_sources - 1})
    JOIN utms ut ON ut.slot = utm
    JOIN customs c ON c.slot = custom
    ORDER BY ts
    """


def _prop_value(values: str, tag: str) -> str:
    """A property value: a power-law tail ('tail:/x-{}') or a pick from a '|' list."""
    return (
        f"CASE WHEN starts_with({values}, 'tail:') "
        f"THEN replace({values}[6:], '{{}}', floor(pow(u(ek, '{tag}t'), 3) * 500)::INT::VARCHAR) "
        f"ELSE pick({values}, u(ek, '{tag}')) END"
    )


def generate(n: int, path: Path, days: int = 30, seed: int = 1, engagement: float = 0.0,
             force: bool = False, threads: int = 2) -> dict[str, Any]:
    """Make (or reuse) a data directory of ~n events; returns its marker record."""
    wanted = {"gen_version": GEN_VERSION, "events_requested": n, "days": days, "seed": seed, "engagement": engagement}
    marker = path / MARKER
    if marker.exists() and not force:
        info: dict[str, Any] = json.loads(marker.read_text())
        if {k: info.get(k) for k in wanted} == wanted:
            log(f"reusing {path} ({info['events']:,} events, generated {info['generated_at']})")
            return info
        log(f"{path} holds other data ({ {k: info.get(k) for k in wanted} }); rebuilding it")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    started = time.monotonic()

    # The real schema, site and goals, through the project's own code.
    store = DuckDBStore(path / DB_NAME)
    ctx = Context(store=store)
    site = sites_add(ctx, SITE, timezone=TIMEZONE)
    for name, kind, value in GOALS:
        goals_add(ctx, SITE, name, kind, value)
    store.close()

    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    today = now.date()
    day_list = [today - dt.timedelta(days=days - 1 - i) for i in range(days)]
    today_seconds = int((now - dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)).total_seconds())
    weights = _day_weights(day_list, max(0.01, today_seconds / 86400))
    per_visit = _mean_events_per_visit()
    p_event = CUSTOM_SHARE / (1 - 1 / per_visit)  # only events after a visit's first can be custom
    events_per_visitor_day = per_visit * _mean_visits_per_visitor_day() * (1 + engagement * (1 - CUSTOM_SHARE))

    con = duckdb.connect(str(path / DB_NAME))
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = '6GB'")
    columns = [r[0] for r in con.execute("DESCRIBE events").fetchall()]
    assert sorted(columns) == sorted(STORED_FIELDS), "events table changed: update gen_events.py"
    _setup(con, seed)
    inserted, used = 0, 0.0  # events and visitor-days so far: the measured ratio steers later days
    for i, day in enumerate(day_list):
        ratio = inserted / used if used else events_per_visitor_day
        visitor_days = round(n * weights[i] / sum(weights) / ratio)
        # Visits start within their day (a visitor's id is per day, as the daily salt makes it);
        # today's start no later than 45 minutes ago, so no event lies in the future.
        max_second = today_seconds - 2700 if i == days - 1 else 86400
        sql = _day_sql(i, day, visitor_days, max_second, max_second / 86400, p_event, engagement, SITE, site["id"])
        t = time.monotonic()
        row = con.execute(f"INSERT INTO events BY NAME ({sql})").fetchone()
        added = int(row[0]) if row else 0
        if i < days - 1:  # today is cut short by the clock, not by the draw
            inserted, used = inserted + added, used + visitor_days
        log(f"day {i + 1}/{days} {day}: {visitor_days:,} visitor-days, {added:,} events "
            f"in {time.monotonic() - t:.1f} s")
    con.execute(f"DELETE FROM events WHERE ts >= make_timestamp({int(now.timestamp()) * 1_000_000})")
    con.execute("CHECKPOINT")
    counts = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE kind = 'pageview'), count(*) FILTER (WHERE kind = 'event'), "
        "count(DISTINCT visitor_id), count(DISTINCT session_id), min(ts), max(ts) FROM events"
    ).fetchone()
    assert counts is not None
    bounces = con.execute(
        "SELECT avg((n = 1 AND pv = 1)::INT) FROM (SELECT count(*) AS n, "
        "count(*) FILTER (WHERE kind = 'pageview') AS pv FROM events GROUP BY session_id)"
    ).fetchone()
    con.close()
    info = {
        **wanted,
        "events": counts[0], "pageviews": counts[1], "custom_events": counts[2], "visitors": counts[3],
        "visits": counts[4], "single_page_visit_share": round(float(bounces[0]) if bounces else 0.0, 4),
        "first_ts": str(counts[5]), "last_ts": str(counts[6]),
        "site": SITE, "site_id": site["id"], "timezone": TIMEZONE,
        "generated_at": now.isoformat().replace("+00:00", "Z"),
        "generate_seconds": round(time.monotonic() - started, 1),
        "db_bytes": (path / DB_NAME).stat().st_size,
    }
    marker.write_text(json.dumps(info, indent=2) + "\n")
    log(f"generated {path}: {json.dumps(info)}")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default /tmp/ff-bench-<N>)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engagement", type=float, default=0.0,
                        help="share of pageviews followed by an engagement event (Plausible's tracker sends ~1.0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--force", action="store_true", help="rebuild even if the directory holds this data")
    args = parser.parse_args()
    info = generate(args.events, args.dir or default_dir(args.events), days=args.days, seed=args.seed,
                    engagement=args.engagement, force=args.force, threads=args.threads)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
