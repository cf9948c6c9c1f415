"""`Hit`: what every wire contract hands to enrichment.

A Hit still carries personal data (the visitor's IP and user agent). It lives only for the
duration of a request; enrichment turns it into an `Event`, which does not.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from footfall.enrich.urls import PageUrl

Kind = Literal["pageview", "event"]
PropValue = str | int | float | bool


class Hit(msgspec.Struct, kw_only=True):
    site_id: int
    kind: Kind
    page: PageUrl  # the page URL, already split and cleaned while resolving the site
    ts_us: int  # analytics time, microseconds since the Unix epoch, UTC
    received_us: int
    ip: str
    user_agent: str
    source_api: str
    name: str = ""
    referrer: str = ""
    language: str = ""
    session_id: str | None = None
    page_id: str | None = None
    user_id: str | None = None
    props: dict[str, PropValue] = msgspec.field(default_factory=dict)
    screen_width: int | None = None
    revenue_amount: float | None = None
    revenue_currency: str | None = None
    # Campaign values given outside the URL, for contracts that allow it (seed 001).
    utm: dict[str, str] | None = None
    # A visitor named by the caller (seed 004's user id), hashed in place of address and agent.
    visitor_key: str | None = None
    dnt: bool = False  # the visitor asked not to be tracked: nothing is stored, not even a count
