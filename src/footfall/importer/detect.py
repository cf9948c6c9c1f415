"""Which format a log is in, from its first lines: the format that parses most of them.

Formats are tried in `FORMATS` order, most specific first (vhost_combined before combined
before common), and a tie goes to the earlier one. W3C logs (IIS, CloudFront) declare
themselves in their `#Fields:` directive.
"""

from __future__ import annotations

from footfall.importer.formats import FORMATS, Directive, Format

SAMPLE_LINES = 50


class UnknownFormat(ValueError):
    pass


def detect(lines: list[str]) -> Format:
    for line in lines:
        if line.startswith("#Fields:"):
            return FORMATS["cloudfront" if "x-edge-location" in line else "iis"]
    sample = [line for line in lines[:SAMPLE_LINES] if line.strip() and not line.startswith("#")]
    if not sample:
        raise UnknownFormat("the file has no lines to tell its format by")
    best: tuple[int, Format] | None = None
    for fmt in FORMATS.values():
        parse = fmt.parser()
        parsed = 0
        for line in sample:
            try:
                record = parse(line)
            except (Directive, ValueError, KeyError, TypeError, OverflowError):
                continue
            if record is not None and record.ip and record.method:
                parsed += 1
        if parsed and (best is None or parsed > best[0]):
            best = (parsed, fmt)
    if best is None or best[0] * 2 < len(sample):
        names = ", ".join(FORMATS)
        raise UnknownFormat(
            f"could not tell the log format from its first {len(sample)} lines; give --format ({names}) or --pattern"
        )
    return best[1]
