"""The import through a running server: page-view candidates sent to the batch API
(`POST /api/ingest/server/batch`, 1,000 records a request), where they are enriched, spooled
and stored like any server-side hit. Each record carries its line's id, so a re-import or a
retried request stores nothing twice.
"""

from __future__ import annotations

import datetime as dt
import http.client
import time
from urllib.parse import urlsplit

import msgspec

from footfall.enrich import bots, urls
from footfall.enrich.enricher import identify
from footfall.importer.local import CannotImport
from footfall.importer.pageviews import BAD_TARGET, page_address
from footfall.importer.pipeline import MALFORMED_SHOWN, Candidate, Summary
from footfall.ingest.server_api import MAX_BATCH_RECORDS

BATCH_PATH = "/api/ingest/server/batch"
RETRIES = 6
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_encode = msgspec.json.Encoder().encode


class BatchAnswer(msgspec.Struct):
    accepted: int
    rejected: list[dict[str, object]]


def rfc3339(ts_us: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=ts_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RemoteImport:
    def __init__(self, server: str, token: str, site: str) -> None:
        parts = urlsplit(server if "://" in server else f"http://{server}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CannotImport(f"--server must be an http(s) URL, not {server!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.domain = urls.normalize_host(site)
        self._conn: http.client.HTTPConnection | None = None

    def load(self, batch: list[Candidate], summary: Summary) -> None:
        records, numbers = self.prepare(batch, summary)
        for start in range(0, len(records), MAX_BATCH_RECORDS):
            answer = self._send(_encode(records[start : start + MAX_BATCH_RECORDS]))
            for item in answer.rejected:
                summary.rejected += 1
                index = item.get("index")
                number = numbers[start + index] if isinstance(index, int) else "?"
                if len(summary.malformed_lines) < MALFORMED_SHOWN:
                    summary.malformed_lines.append(f"line {number}: rejected by the server: {item.get('error')}")

    def prepare(self, batch: list[Candidate], summary: Summary) -> tuple[list[dict[str, object]], list[int]]:
        """The batch records of the candidates, their line numbers, and the counts this side
        can tell (bots and AI crawlers, by their agents; the server counts them too)."""
        records: list[dict[str, object]] = []
        numbers: list[int] = []
        for candidate in batch:
            line = candidate.line
            url = page_address(self.domain, line.target)
            try:
                urls.split_page_url(url)  # what the server would refuse, left out as in-process
            except ValueError:
                summary.not_pageviews[BAD_TARGET] += 1
                continue
            agent_text = line.agent or "-"  # the API requires an agent; "-" is the agentless bot
            agent = identify(agent_text)
            if isinstance(agent, bots.BotMatch):  # counted here for the summary; the server counts it too
                if agent.ai:
                    summary.ai_fetches += 1
                else:
                    summary.bots += 1
            else:
                summary.pageviews += 1
            record: dict[str, object] = {
                "type": "pageview",
                "url": url,
                "timestamp": rfc3339(line.ts_us),
                "visitor_ip": line.ip,
                "user_agent": agent_text,
                "id": candidate.line_id,
            }
            if line.referrer and len(line.referrer) <= urls.MAX_URL_LENGTH:  # longer: the API refuses it
                record["referrer"] = line.referrer
            records.append(record)
            numbers.append(candidate.number)
        return records, numbers

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=120)
        return self._conn

    def _send(self, body: bytes) -> BatchAnswer:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        failure = ""
        attempt = 0
        while attempt < RETRIES:
            try:
                conn = self._connection()
                conn.request("POST", self.prefix + BATCH_PATH, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                failure = f"{type(exc).__name__}: {exc}"
                time.sleep(min(0.5 * 2**attempt, 8))
                attempt += 1
                continue
            if response.status == 202:
                return msgspec.json.decode(payload, type=BatchAnswer)
            if response.status == 429:
                time.sleep(float(response.getheader("Retry-After") or 1))
                continue
            if response.status >= 500:
                failure = f"HTTP {response.status}"
                time.sleep(min(0.5 * 2**attempt, 8))
                attempt += 1
                continue
            raise CannotImport(
                f"the server refused the batch (HTTP {response.status}): {payload[:300].decode(errors='replace')}"
            )
        raise CannotImport(f"the server did not take the batch after {RETRIES} attempts ({failure})")

    def finish(self, summary: Summary) -> None:
        pass

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
