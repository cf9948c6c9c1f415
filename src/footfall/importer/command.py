"""`footfall import`: the command, its progress bar and its summary."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, Protocol

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from footfall.config import load_settings
from footfall.importer.formats import FORMATS, Format
from footfall.importer.pageviews import STATIC_EXTENSIONS, PageFilter
from footfall.importer.patterns import pattern_format

if TYPE_CHECKING:
    from footfall.importer.pipeline import Candidate, Summary
    from footfall.importer.reader import LogFile

# The rest of the importer (enrichment, the store, the server API) is imported when the
# command runs: every other `footfall` command starts faster for it.

err = Console(stderr=True)
out = Console()


class Sink(Protocol):
    def load(self, batch: list[Candidate], summary: Summary) -> None: ...
    def finish(self, summary: Summary) -> None: ...
    def close(self) -> None: ...


class LinesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        lines = task.fields.get("lines", 0)
        elapsed = task.elapsed or 0
        return Text(f"{lines:,} lines  {lines / elapsed:,.0f} lines/s" if elapsed else f"{lines:,} lines")


def import_command(
    files: Annotated[list[str], typer.Argument(help="Log files (plain, .gz or .bz2); - reads standard input.")],
    site: Annotated[str, typer.Option("--site", help="The site the traffic belongs to (its domain).")],
    fmt: Annotated[
        Optional[str],  # noqa: UP045 - typer reads the annotation at run time
        typer.Option("--format", help=f"One of {', '.join(FORMATS)}; detected from the first lines when omitted."),
    ] = None,
    pattern: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Your own format: nginx log_format text, or a regex with named groups "
            "(ip, time, request, status, referrer, agent, host).",
        ),
    ] = None,
    server: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Send through a running server's batch API (e.g. http://127.0.0.1:8000) instead of the data directory."
        ),
    ] = None,
    token: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="API token with site.manage_data, for --server [env: FOOTFALL_TOKEN].", envvar="FOOTFALL_TOKEN"
        ),
    ] = None,
    include_304: Annotated[bool, typer.Option("--include-304", help="Count 304 Not Modified as page views.")] = False,
    include_path: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="Only paths matching this glob (e.g. '/blog/*'); repeat for more."),
    ] = None,
    exclude_path: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="Leave out paths matching this glob; repeat for more."),
    ] = None,
    static_extensions: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Comma-separated extensions that are assets, not pages (replaces the built-in list)."),
    ] = None,
    any_host: Annotated[
        bool, typer.Option("--any-host", help="Import lines for every virtual host, not only the site's.")
    ] = False,
    max_errors: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=0, help="Stop after this many malformed lines (default: no limit)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Parse and summarize; write nothing.")] = False,
    workers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            min=0,
            help="Processes that parse files alongside this one [default: CPUs - 1, for files over 32 MB]; 0: none.",
        ),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
    data_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--data-dir", help="Data directory [env: FOOTFALL_DATA_DIR; default ./footfall-data]"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Import web-server access logs: page views land in the buckets of their own time, with
    the same enrichment, sessions and visitors as live traffic. Re-importing a file stores
    nothing twice."""
    from footfall.importer.local import CannotImport, DryRun, LocalImport
    from footfall.importer.parallel import default_workers
    from footfall.importer.pipeline import Source, Summary, TooManyErrors, candidates
    from footfall.importer.remote import RemoteImport

    try:
        chosen = _format(fmt, pattern)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for name in files:
        if name != "-" and not Path(name).is_file():
            raise typer.BadParameter(f"no such file: {name}")
    extensions = STATIC_EXTENSIONS
    if static_extensions is not None:
        extensions = frozenset(e.strip().lstrip(".").lower() for e in static_extensions.split(",") if e.strip())
    page_filter = PageFilter(
        site,
        include_304=include_304,
        static_extensions=extensions,
        include_paths=include_path or (),
        exclude_paths=exclude_path or (),
        any_host=any_host,
    )
    summary = Summary()
    sink: Sink
    try:
        settings = load_settings(data_dir=data_dir)
        if server is not None and not dry_run:
            if not token:
                raise CannotImport("--server needs --token (or FOOTFALL_TOKEN): a token with site.manage_data")
            sink = RemoteImport(server, token, site)
        elif dry_run:
            sink = DryRun(settings, site) if server is None else _CountOnly(site)
        else:
            sink = LocalImport(settings, site)
    except (CannotImport, ValueError) as exc:  # ValueError: a setting (env, TOML) is invalid
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        LinesPerSecond(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not progress,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def on_file(log: LogFile) -> None:
        tasks[log.name] = bar.add_task(Path(log.name).name if log.name != "-" else "stdin", total=log.size)

    def on_progress(name: str, lines: int, position: int) -> None:
        bar.update(tasks[name], completed=position, lines=lines)

    source = Source(files, page_filter, chosen, max_errors, on_progress=on_progress, on_file=on_file)
    failed: str | None = None
    now_us = time.time_ns() // 1000
    try:
        with bar:
            if isinstance(sink, LocalImport):
                sink.run(
                    source, summary, now_us, default_workers() if workers is None else workers, workers is not None
                )
            else:
                for batch in candidates(source, summary, now_us):
                    sink.load(batch, summary)
        sink.finish(summary)
    except TooManyErrors as exc:
        kept = "a dry run: nothing was written" if dry_run else "what was read before is imported"
        failed = f"{exc}; stopped at line {summary.lines:,} ({kept})"
    except (CannotImport, ValueError, OSError, EOFError) as exc:
        failed = str(exc)
    finally:
        sink.close()
    summary.seconds = time.monotonic() - summary.started
    report = summary.as_dict()
    report["dry_run"] = dry_run
    if failed:
        report["error"] = failed
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_summary(report, server is not None)
    if failed:
        err.print(f"[red]error:[/red] {failed}")
        raise typer.Exit(1)


def _format(fmt: str | None, pattern: str | None) -> Format | None:
    if pattern is not None:
        return pattern_format(pattern)
    if fmt is None:
        return None
    if fmt not in FORMATS:
        raise ValueError(f"unknown --format {fmt!r}: one of {', '.join(FORMATS)}, or give --pattern")
    return FORMATS[fmt]


class _CountOnly:
    """A dry run of a --server import: the counts this side can tell (bots by agent)."""

    def __init__(self, site: str) -> None:
        from footfall.importer.remote import RemoteImport

        self._remote = RemoteImport("http://localhost", "", site)

    def load(self, batch: list[Candidate], summary: Summary) -> None:
        self._remote.prepare(batch, summary)

    def finish(self, summary: Summary) -> None:
        pass

    def close(self) -> None:
        pass


def _print_summary(report: dict[str, object], remote: bool) -> None:
    table = Table(title="Import (dry run: nothing written)" if report["dry_run"] else "Import", show_header=False)
    rows = [
        ("lines read", f"{report['lines']:,}"),
        ("page views", f"{report['pageviews']:,}"),
        ("bots", f"{report['bots']:,}"),
        ("AI crawler fetches", f"{report['ai_fetches']:,}"),
        ("excluded", f"{report['excluded']:,}" if not remote else "counted by the server"),
        ("not page views", f"{report['not_pageviews']:,} {_reasons(report['not_pageviews_by_reason'])}"),
        ("malformed", f"{report['malformed']:,}"),
        ("already imported", f"{report['already_imported']:,}" if not remote else "dropped by the server"),
        ("time range", f"{report['first'] or '-'} .. {report['last'] or '-'}"),
        ("speed", f"{report['lines_per_second'] or 0:,} lines/s ({report['seconds']} s)"),
    ]
    if remote:
        rows.append(("rejected by the server", f"{report['rejected']:,}"))
    for what, value in rows:
        table.add_row(what, value)
    out.print(table)
    malformed = report["malformed_lines"]
    if isinstance(malformed, list) and malformed:
        out.print("malformed or rejected lines (the first ones):")
        for entry in malformed:
            out.print(f"  {entry}", markup=False, highlight=False)
    if isinstance(report["already_imported"], int) and report["already_imported"]:
        out.print(f"{report['already_imported']:,} records were already imported and were left as they were")


def _reasons(reasons: object) -> str:
    if not isinstance(reasons, dict) or not reasons:
        return ""
    return "(" + ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items())) + ")"
