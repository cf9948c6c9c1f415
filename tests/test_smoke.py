from tests.conftest import Site


def test_seed_pageview_lands_in_april(site: Site) -> None:
    r = site.post("/api/ingest/server/pageview", {
        "url": "https://www.example.com/docs/start?utm_source=newsletter",
        "timestamp": "2026-04-03T12:30:45Z",
        "visitor_ip": "203.0.113.42",
        "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15",
    })
    assert r.status_code == 202 and r.content == b""
    report = site.stats("2026-04-01", "2026-04-30")
    assert report["totals"]["pageviews"] == 1
    assert [d["date"] for d in report["days"] if d["pageviews"]] == ["2026-04-03"]
