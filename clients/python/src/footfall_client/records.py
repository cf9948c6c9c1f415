"""The records the client sends: one JSON object per pageview or event of Footfall's server API.

A record is built in the caller's thread (a request handler, for the middleware), so it is a
plain dict holding what the caller gave, with the time as a float. Everything that costs more
than a dict (formatting the timestamp, encoding JSON) waits for the sending thread.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import secrets
import time
from typing import Any

Record = dict[str, Any]
PropValue = str | int | float | bool

# A server-originated event (a webhook, a job) has no visitor. The server API still requires an
# address and an agent: these name one anonymous visitor, and the agent is not a bot signature
# (an agent like "footfall-client/0.1" would be counted as a bot and not stored).
NO_VISITOR_IP = "0.0.0.0"
NO_VISITOR_AGENT = "Footfall server event"

_TS = "timestamp"
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def when(timestamp: dt.datetime | float | None) -> float | dt.datetime:
    """The record's time as given (a datetime or Unix seconds), or now."""
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, dt.datetime) and timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware (the server stores UTC)")
    return timestamp


def pageview(
    url: str,
    visitor_ip: str,
    user_agent: str,
    referrer: str | None = None,
    timestamp: dt.datetime | float | None = None,
    **extra: Any,
) -> Record:
    record: Record = {"type": "pageview", "url": url, _TS: when(timestamp), "visitor_ip": visitor_ip,
                      "user_agent": user_agent}
    if referrer:
        record["referrer"] = referrer
    return _with(record, extra)


def event(
    name: str,
    url: str,
    properties: dict[str, PropValue] | None = None,
    visitor_ip: str | None = None,
    user_agent: str | None = None,
    timestamp: dt.datetime | float | None = None,
    **extra: Any,
) -> Record:
    if not name or not name.strip():
        raise ValueError("an event needs a name")
    record: Record = {"type": "event", "name": name, "url": url, _TS: when(timestamp),
                      "visitor_ip": visitor_ip or NO_VISITOR_IP, "user_agent": user_agent or NO_VISITOR_AGENT}
    if properties:
        record["properties"] = properties
    return _with(record, extra)


def _with(record: Record, extra: dict[str, Any]) -> Record:
    """Optional fields of the server API (language, session_id, page_id, screen_width, dnt, …);
    None means absent."""
    for key, value in extra.items():
        if value is not None:
            record[key] = value
    return record


def rfc3339(moment: float | dt.datetime) -> str:
    if isinstance(moment, dt.datetime):
        return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat().replace("+00:00", "Z")


def _wire(record: Record) -> Record:
    """The record as sent: its time formatted, and an id of its own. A retry resends the same
    bytes, so when an answer is lost after the server stored a batch, the server recognises the
    records by their ids and stores them once (the batch API's optional `id`)."""
    return {**record, _TS: rfc3339(record[_TS]), "id": f"{_ids.prefix}{next(_ids.counter):x}"}


class _Ids:
    """Record ids: random per process (a forked child draws its own), then a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(12) + "-"
        self.counter = itertools.count()


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.reset)


def encodable(record: Record) -> bool:
    try:
        _json.encode(_wire(record))
    except (TypeError, ValueError):
        return False
    return True


def encode_batch(records: list[Record]) -> bytes:
    """Records as the server API's JSON array (timestamps formatted here, off the request path)."""
    return _json.encode([_wire(r) for r in records]).encode()


def batch_bodies(records: list[Record], max_bytes: int) -> list[tuple[bytes, int]]:
    """Encode records into JSON array bodies of at most `max_bytes` each (the server refuses
    larger); returns (body, record count) pairs. One encoder call per body: per-record calls
    cost the sending thread four times as much, and it shares the GIL with the app. A record
    that alone exceeds the limit still goes, alone: the server names what is wrong with it."""
    return _split([_wire(r) for r in records], max_bytes)


def _split(items: list[Record], max_bytes: int) -> list[tuple[bytes, int]]:
    body = _json.encode(items).encode()
    if len(body) <= max_bytes or len(items) == 1:
        return [(body, len(items))]
    half = len(items) // 2
    return _split(items[:half], max_bytes) + _split(items[half:], max_bytes)
