"""The import's front half: files -> parsed lines -> page-view candidates, with the counts.

Everything per line happens here, in one tight loop per block of lines: parse, judge (is it a
page view?), check address and time, and give the line its stable id. What becomes of a
candidate (enriched and stored here, or sent to a server) is the sink's business.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hashlib import blake2b
from itertools import count
from typing import NamedTuple, cast

from footfall.importer.detect import SAMPLE_LINES, detect
from footfall.importer.formats import Directive, Format, LogLine
from footfall.importer.pageviews import PageFilter
from footfall.importer.reader import LogFile
from footfall.importer.times import clf_us
from footfall.ingest.http import canonical_ip
from footfall.ingest.server_api import EARLIEST_US, MAX_FUTURE_US

# A line's id is a digest of its text and how many identical lines came before it in the
# same second and 1 MB block (two identical requests in one second are two page views). It
# names the line wherever the file is imported from: a re-import, a rotated copy or the same
# file grown longer give the same ids (but for identical lines near a block boundary that
# moved), and the store keeps each once.
LINE_ID_BYTES = 16
MALFORMED_SHOWN = 20


class Candidate(NamedTuple):
    line: LogLine  # with the canonical address
    number: int  # line number in its file
    line_id: str  # hex digest, see LINE_ID_BYTES


class TooManyErrors(Exception):
    pass


@dataclass
class Summary:
    lines: int = 0
    bytes: int = 0
    malformed: int = 0
    malformed_lines: list[str] = field(default_factory=list)  # "file:line: reason", the first few
    not_pageviews: Counter[str] = field(default_factory=Counter)
    pageviews: int = 0
    bots: int = 0
    ai_fetches: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    already_imported: int = 0
    rejected: int = 0  # refused by the server
    first_us: int | None = None
    last_us: int | None = None
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    formats: dict[str, str] = field(default_factory=dict)  # file -> format name

    def merge(self, part: Summary) -> None:
        """Add the counts of a part of the input (judged elsewhere, e.g. in a worker process)."""
        self.malformed += part.malformed
        self.malformed_lines += part.malformed_lines[: max(0, MALFORMED_SHOWN - len(self.malformed_lines))]
        self.not_pageviews.update(part.not_pageviews)
        self.excluded.update(part.excluded)
        self.pageviews += part.pageviews
        self.bots += part.bots
        self.ai_fetches += part.ai_fetches
        if part.first_us is not None and (self.first_us is None or part.first_us < self.first_us):
            self.first_us = part.first_us
        if part.last_us is not None and (self.last_us is None or part.last_us > self.last_us):
            self.last_us = part.last_us

    def malformed_line(self, name: str, number: int, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_lines) < MALFORMED_SHOWN:
            self.malformed_lines.append(f"{name}:{number}: {reason}")

    def as_dict(self) -> dict[str, object]:
        seconds = self.seconds or (time.monotonic() - self.started)
        return {
            "lines": self.lines, "bytes": self.bytes, "pageviews": self.pageviews, "bots": self.bots,
            "ai_fetches": self.ai_fetches, "excluded": sum(self.excluded.values()),
            "excluded_by_reason": dict(self.excluded), "not_pageviews": sum(self.not_pageviews.values()),
            "not_pageviews_by_reason": dict(self.not_pageviews), "malformed": self.malformed,
            "malformed_lines": self.malformed_lines, "already_imported": self.already_imported,
            "rejected": self.rejected, "first": _iso(self.first_us), "last": _iso(self.last_us),
            "seconds": round(seconds, 3), "lines_per_second": round(self.lines / seconds) if seconds else None,
            "formats": self.formats,
        }  # fmt: skip


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // 1_000_000))


@dataclass
class Source:
    """What to read and how to judge it."""

    files: list[str]
    page_filter: PageFilter
    fmt: Format | None = None  # None: detect per file
    max_errors: int | None = None
    batch_lines: int = 50_000
    on_progress: Callable[[str, int, int], None] | None = None  # (file, lines read, bytes read)
    on_file: Callable[[LogFile], None] | None = None


def files(source: Source, summary: Summary) -> Iterator[tuple[LogFile, Format]]:
    """Each input, open, with its format (given, or detected from its first lines)."""
    for name in source.files:
        log = LogFile(name)
        try:
            fmt = source.fmt or detect(log.head(SAMPLE_LINES))
            summary.formats[name] = fmt.name
            if source.on_file is not None:
                source.on_file(log)
            yield log, fmt
            summary.bytes += log.position()
        finally:
            log.close()


def candidates(source: Source, summary: Summary, now_us: int) -> Iterator[list[Candidate]]:
    """Page-view candidates in batches, file after file, counting everything else."""
    for log, fmt in files(source, summary):
        yield from file_candidates(source, summary, log, fmt, now_us)


def file_candidates(
    source: Source, summary: Summary, log: LogFile, fmt: Format, now_us: int
) -> Iterator[list[Candidate]]:
    judge = block_judge(fmt, source.page_filter, log.name, now_us)
    batch: list[Candidate] = []
    for block in log.blocks():
        batch += judge(block.first_line, block.lines, block.text is not None, summary)
        after_block(source, summary, log.name, len(block.lines), block.position)
        if len(batch) >= source.batch_lines:
            yield batch
            batch = []
    if batch:
        yield batch


def after_block(source: Source, summary: Summary, name: str, lines: int, position: int) -> None:
    summary.lines += lines
    if source.max_errors is not None and summary.malformed > source.max_errors:
        raise TooManyErrors(f"more than {source.max_errors} malformed lines (--max-errors)")
    if source.on_progress is not None:
        source.on_progress(name, summary.lines, position)


Judge = Callable[[int, "list[str | None]", bool, Summary], list[Candidate]]


def block_judge(fmt: Format, page_filter: PageFilter, name: str, now_us: int) -> Judge:
    """A function of a block of one file's lines (its first line's number, the lines, whether
    all are valid UTF-8) that counts what is not a page view in the summary and returns the
    page-view candidates. It keeps per-file state between blocks (the format's, addresses)."""
    parse = fmt.parser()
    bulk = fmt.bulk.head.match if fmt.bulk is not None else None
    tail = fmt.bulk.tail.match if fmt.bulk is not None else None
    reject = page_filter.reject
    reject_fields = page_filter.reject_fields
    addresses: dict[str, str | None] = {}
    latest_us = now_us + MAX_FUTURE_US
    seen: dict[str, int] = {}  # lines of the current second -> how many times seen
    second = -1

    def judge(first: int, lines: list[str | None], utf8: bool, summary: Summary) -> list[Candidate]:
        nonlocal second
        # Repeats are counted within the block, whether blocks are judged here one after the
        # other or on worker processes: a line's id does not depend on how it was imported.
        seen.clear()
        second = -1
        batch: list[Candidate] = []
        not_pageviews = summary.not_pageviews

        def accept(line: LogLine, text: str, number: int) -> None:
            """A page view's line: check its address and time, give it its id, batch it."""
            nonlocal second
            ip = addresses.get(line.ip, "")
            if ip == "":
                ip = addresses[line.ip] = canonical_ip(line.ip)
                if len(addresses) > 200_000:
                    addresses.clear()
            if ip is None:
                summary.malformed_line(name, number, f"bad client address {line.ip[:60]!r}")
                return
            ts = line.ts_us
            if not EARLIEST_US <= ts <= latest_us:
                summary.malformed_line(name, number, "time before 1991 or in the future")
                return
            if summary.first_us is None or ts < summary.first_us:
                summary.first_us = ts
            if summary.last_us is None or ts > summary.last_us:
                summary.last_us = ts
            if ts // 1_000_000 != second:
                second = ts // 1_000_000
                seen.clear()
            repeat = seen.get(text, 0)
            seen[text] = repeat + 1
            digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=LINE_ID_BYTES)
            if repeat:
                digest.update(b"\x00%d" % repeat)
            line.ip = ip
            batch.append(Candidate(line, number, digest.hexdigest()))

        def one_by_one(first: int, lines: list[str | None] | list[str]) -> None:
            number = first - 1
            for text in lines:
                number += 1
                if not text:
                    if text is None:
                        summary.malformed_line(name, number, "not UTF-8")
                    continue
                try:
                    line = parse(text)
                except Directive:
                    continue
                except (ValueError, KeyError, TypeError, OverflowError, IndexError) as exc:
                    summary.malformed_line(name, number, f"cannot read: {exc}"[:200])
                    continue
                if line is None:
                    summary.malformed_line(name, number, f"not a {fmt.name} line: {text[:80]!r}")
                    continue
                why = reject(line)
                if why is not None:
                    not_pageviews[why] += 1
                    continue
                accept(line, text, number)

        def all_at_once(first: int, lines: list[str]) -> None:
            # The regex engine splits every line of the block (`map`, in C); most lines (assets,
            # redirects, errors) are judged on these strings and never become a LogLine.
            assert bulk is not None and tail is not None
            for number, text, m in zip(count(first), lines, map(bulk, lines)):
                if m is None or "\\" in text:  # escapes: the bulk pattern does not undo them
                    one_by_one(number, [text])
                    continue
                host, ip, moment, method, target, status = m.groups()
                code = int(status)
                why = reject_fields(method, code, target, host)
                if why is not None:
                    not_pageviews[why] += 1
                    continue
                rest = tail(text, m.end())
                if rest is None:
                    one_by_one(number, [text])
                    continue
                referrer, agent = rest.groups()
                try:
                    line = LogLine(
                        ip, clf_us(moment), method, target, code, "" if referrer == "-" else referrer, agent, host
                    )
                except ValueError as exc:
                    summary.malformed_line(name, number, f"cannot read: {exc}"[:200])
                    continue
                accept(line, text, number)

        if bulk is not None and utf8:  # valid UTF-8: no line is None
            all_at_once(first, cast("list[str]", lines))
        else:
            one_by_one(first, lines)
        return batch

    return judge
