"""The `footfall` command line.

Management commands go through `control.call`: to the running server's control socket when
one holds the data directory, else straight to the store. Every command takes --data-dir;
every command that prints data takes --json.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from footfall import control, manage
from footfall.api.auth import SCOPES
from footfall.config import Settings, cli_flag, describe, load_settings
from footfall.importer.command import import_command

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Footfall: privacy-first web analytics.")
sites_app = typer.Typer(no_args_is_help=True, help="Sites: domain, time zone, tracking id.")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens: scopes and sites; secrets shown once.")
app.add_typer(sites_app, name="sites")
app.add_typer(tokens_app, name="tokens")
users_app = typer.Typer(no_args_is_help=True, help="Dashboard accounts: sign-in names, passwords (argon2), roles.")
app.add_typer(users_app, name="users")
goals_app = typer.Typer(
    no_args_is_help=True, help="Goals: conversions by event name or page path, counted at query time."
)
app.add_typer(goals_app, name="goals")
funnels_app = typer.Typer(
    no_args_is_help=True, help="Funnels: ordered steps (pages or events) shown on the dashboard."
)
app.add_typer(funnels_app, name="funnels")

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Optional[Path],  # noqa: UP045 - typer reads the annotation at run time
    typer.Option("--data-dir", help="Data directory [env: FOOTFALL_DATA_DIR; default ./footfall-data]"),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _settings(**flags: Any) -> Settings:
    """Settings from flags, environment and file; a bad value is a clear error, not a traceback."""
    try:
        return load_settings(**flags)
    except Exception as exc:
        err.print(f"[red]error:[/red] invalid setting: {exc}")
        raise typer.Exit(2) from None


def _call(data_dir: Path | None, op: str, **args: Any) -> Any:
    settings = _settings(data_dir=data_dir)
    try:
        return control.call(settings, op, args)
    except manage.ManageError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except Exception as exc:
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in columns))
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# -- serve --------------------------------------------------------------------------------


def _serve(**flags: Any) -> None:
    from footfall.server import run_server

    run_server(_settings(**flags))


def _settings_options() -> inspect.Signature:
    """One --flag per setting, generated from `Settings`, so flags never drift from config."""
    params = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(
                    None, cli_flag(name), help=f"{field.description} [env: FOOTFALL_{name.upper()}]"
                ),
                annotation=Optional[annotation],  # noqa: UP045
            )
        )
    return inspect.Signature(params)


_serve.__signature__ = _settings_options()  # type: ignore[attr-defined]
app.command("serve", help="Start the server (ingest API, control socket, writer).")(_serve)


@app.command("config")
def config_cmd(data_dir: DataDir = None, as_json: Json = False) -> None:
    """Every setting: environment variable, flag, default and current value."""
    rows = [vars(r) for r in describe(_settings(data_dir=data_dir))]
    if as_json:
        _print_json(rows)
    else:
        _table(rows, ["name", "env", "flag", "default", "current", "description"], "Footfall settings")


# -- sites --------------------------------------------------------------------------------

SITE_COLUMNS = ["id", "domain", "timezone", "tracking_id", "created_at"]


@sites_app.command("add")
def sites_add(
    domain: str,
    timezone: Annotated[str, typer.Option("--timezone", "--tz", help="IANA time zone of the site's reports.")] = "UTC",
    tracking_id: Annotated[Optional[str], typer.Option(help="Tracking id; generated when omitted.")] = None,  # noqa: UP045
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Add a site by its domain."""
    site = _call(data_dir, "sites.add", domain=domain, timezone=timezone, tracking_id=tracking_id)
    if as_json:
        _print_json(site)
    else:
        out.print(f"added site [bold]{site['domain']}[/bold] (tracking id {site['tracking_id']}, {site['timezone']})")


@sites_app.command("list")
def sites_list(data_dir: DataDir = None, as_json: Json = False) -> None:
    """List sites."""
    sites = _call(data_dir, "sites.list")
    if as_json:
        _print_json(sites)
    else:
        _table(sites, SITE_COLUMNS)


@sites_app.command("show")
def sites_show(site: str, data_dir: DataDir = None, as_json: Json = False) -> None:
    """Show one site, its event count, the tokens that may touch it, and the key or id each
    tracking contract and SDK sends."""
    record = _call(data_dir, "sites.show", site=site)
    if as_json:
        _print_json(record)
        return
    _table([record], [*SITE_COLUMNS, "events", "tokens", "settings"])
    table = Table(title="What to send", show_header=False)
    for what, value in record["integrations"].items():
        table.add_row(what, value)
    out.print(table)


@sites_app.command("server-key")
def sites_server_key(
    site: str,
    revoke: Annotated[bool, typer.Option("--revoke", help="Remove the key: the server API refuses all calls.")] = False,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Make the site's secret key for the server API (/api/v1/track, /identify, /user-id). A
    key it had stops working at once. The key is shown once."""
    record = _call(data_dir, "sites.server_key", site=site, revoke=revoke)
    if as_json:
        _print_json(record)
    elif revoke:
        out.print(f"{record['domain']}: server key {'revoked' if record['revoked'] else 'was not set'}")
    else:
        replaced = " (the old key no longer works)" if record["replaced"] else ""
        out.print(f"server key for [bold]{record['domain']}[/bold]{replaced}; shown once, store it now:")
        sys.stdout.write(record["server_key"] + "\n")


@sites_app.command("update")
def sites_update(
    site: str,
    exclude_ip: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="IP or CIDR whose hits are not counted; repeat for more; '' clears."),
    ] = None,
    exclude_country: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="ISO country code whose hits are not counted; repeat; '' clears."),
    ] = None,
    exclude_path: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="Path glob (e.g. '/admin/*') whose hits are not counted; repeat; '' clears."),
    ] = None,
    query_param: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="Query parameter kept as property query.NAME (e.g. q); repeat; '' clears."),
    ] = None,
    monthly_pageview_cap: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=0, help="Pageviews a month past which the collect API answers 402; 0 removes the cap."),
    ] = None,
    allow_forwarded_for: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--allow-forwarded-for/--no-allow-forwarded-for",
            help="On /e/{trackingCode}, take the visitor's IP from X-Forwarded-For even from untrusted callers.",
        ),
    ] = None,
    respect_dnt: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--respect-dnt/--ignore-dnt", help="Browser hits with DNT: 1 or Sec-GPC: 1 are not tracked."),
    ] = None,
    identified_visitors: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--identified-visitors/--no-identified-visitors",
            help="Keep traits from the server API's /identify (emails only hashed); turning it off deletes them.",
        ),
    ] = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Change a site's exclusions, the query parameters it keeps, its monthly pageview cap and
    what it keeps of identified visitors."""
    record = _call(
        data_dir, "sites.update", site=site, exclude_ips=exclude_ip, exclude_countries=exclude_country,
        exclude_paths=exclude_path, query_params=query_param, monthly_pageview_cap=monthly_pageview_cap,
        allow_forwarded_for=allow_forwarded_for, respect_dnt=respect_dnt, identified_visitors=identified_visitors,
    )
    if as_json:
        _print_json(record)
    else:
        out.print(f"updated [bold]{record['domain']}[/bold]: {record['settings'] or 'default settings'}")


@sites_app.command("remove")
def sites_remove(
    site: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Remove a site and delete all of its events."""
    if not yes and not typer.confirm(f"Remove {site} and delete all of its events?", default=False):
        raise typer.Exit(1)
    result = _call(data_dir, "sites.remove", site=site)
    if as_json:
        _print_json(result)
    else:
        out.print(f"removed {result['removed']} ({result['events_deleted']} events deleted)")


@sites_app.command("share")
def sites_share(
    site: str,
    link_id: Annotated[
        Optional[int],  # noqa: UP045
        typer.Argument(metavar="[ID]", help="With --revoke: the link to revoke (see `sites shares`); omit for all."),
    ] = None,
    revoke: Annotated[bool, typer.Option("--revoke", help="Revoke the site's share links instead.")] = False,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Make a public read-only link to the site's dashboard: /share/<token>, shown once (only
    its hash is kept). With --revoke, stop one (ID) or all of the site's links at once."""
    if revoke:
        result = _call(data_dir, "shares.revoke", site=site, link_id=link_id)
        if as_json:
            _print_json(result)
        else:
            ids = ", ".join(str(i) for i in result["revoked"]) or "none were live"
            out.print(f"{result['site']}: share links revoked: {ids}")
        return
    if link_id is not None:
        raise typer.BadParameter("an ID goes with --revoke; `footfall sites share SITE` makes a new link")
    record = _call(data_dir, "shares.create", site=site)
    if as_json:
        _print_json(record)
        return
    out.print(f"share link {record['id']} for [bold]{record['site']}[/bold]: anyone with it can read the dashboard.")
    out.print("Shown once (only its hash is kept); revoke it with `footfall sites share SITE --revoke ID`:")
    sys.stdout.write(record["path"] + "\n")


@sites_app.command("shares")
def sites_shares(site: str, data_dir: DataDir = None, as_json: Json = False) -> None:
    """A site's share links (never their tokens), live and revoked."""
    links = _call(data_dir, "shares.list", site=site)
    if as_json:
        _print_json(links)
    else:
        _table(links, ["id", "created_at", "revoked_at", "active"])


# -- users --------------------------------------------------------------------------------

USER_COLUMNS = ["id", "email", "role", "created_at", "last_login_at"]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
]


def _new_password(from_stdin: bool) -> str:
    """The password from stdin's first line, or asked for twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt="Password again")
    return password


@users_app.command("add")
def users_add(
    email: str,
    role: Annotated[str, typer.Option(help="owner, admin (may change things in the dashboard) or viewer.")] = "viewer",
    password_stdin: PasswordStdin = False,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Add a dashboard account (an email address or a user name)."""
    user = _call(data_dir, "users.add", email=email, password=_new_password(password_stdin), role=role)
    if as_json:
        _print_json(user)
    else:
        out.print(f"added [bold]{user['email']}[/bold] ({user['role']}, id {user['id']})")


@users_app.command("list")
def users_list(data_dir: DataDir = None, as_json: Json = False) -> None:
    """List dashboard accounts (never their passwords)."""
    users = _call(data_dir, "users.list")
    if as_json:
        _print_json(users)
    else:
        _table(users, USER_COLUMNS)


@users_app.command("remove")
def users_remove(
    user: Annotated[str, typer.Argument(help="Email, user name or id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Remove a dashboard account; its sessions end at once. The last owner cannot be removed."""
    if not yes and not typer.confirm(f"Remove the account {user}?", default=False):
        raise typer.Exit(1)
    result = _call(data_dir, "users.remove", user=user)
    if as_json:
        _print_json(result)
    else:
        out.print(f"removed {result['removed']}")


@users_app.command("passwd")
def users_passwd(
    user: Annotated[str, typer.Argument(help="Email, user name or id.")],
    password_stdin: PasswordStdin = False,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Set an account's password; every session it had ends."""
    result = _call(data_dir, "users.passwd", user=user, password=_new_password(password_stdin))
    if as_json:
        _print_json(result)
    else:
        out.print(f"new password set for {result['email']}; its sessions are ended")


# -- tokens -------------------------------------------------------------------------------

TOKEN_COLUMNS = ["id", "name", "scopes", "sites", "created_at", "last_rotated_at"]


def _show_secret(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(record)
        return
    out.print(f"token [bold]{record['name']}[/bold] ({record['id']}), scopes {', '.join(record['scopes'])}")
    out.print("secret (shown once, store it now):")
    sys.stdout.write(record["token"] + "\n")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="A name to recognise the token by.")],
    scope: Annotated[list[str], typer.Option("--scope", help=f"One of {', '.join(SCOPES)}; repeat for more.")],
    site: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--site", help="A site it may touch; repeat for more; omit for all."),
    ] = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Create an API token. The secret is printed once and stored only as a hash."""
    _show_secret(_call(data_dir, "tokens.create", name=name, scopes=scope, sites=site), as_json)


@tokens_app.command("list")
def tokens_list(data_dir: DataDir = None, as_json: Json = False) -> None:
    """List tokens (never their secrets)."""
    tokens = _call(data_dir, "tokens.list")
    if as_json:
        _print_json(tokens)
    else:
        _table(tokens, TOKEN_COLUMNS)


@tokens_app.command("revoke")
def tokens_revoke(token: str, data_dir: DataDir = None, as_json: Json = False) -> None:
    """Revoke a token by id or name; it fails at once."""
    result = _call(data_dir, "tokens.revoke", token=token)
    if as_json:
        _print_json(result)
    else:
        out.print(f"revoked {result['name']} ({result['revoked']})")


@tokens_app.command("rotate")
def tokens_rotate(token: str, data_dir: DataDir = None, as_json: Json = False) -> None:
    """Give a token a new secret; the old one fails at once."""
    _show_secret(_call(data_dir, "tokens.rotate", token=token), as_json)


# -- stats --------------------------------------------------------------------------------


Many = Optional[list[str]]  # noqa: UP045 - typer reads the annotation at run time


@app.command("stats")
def stats_cmd(
    site: Annotated[str, typer.Option("--site", help="Domain, tracking id or id of the site.")],
    date_from: Annotated[
        Optional[str], typer.Option("--from", help="First day, YYYY-MM-DD, in the site's time zone.")  # noqa: UP045
    ] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="Last day, YYYY-MM-DD, inclusive.")] = None,  # noqa: UP045
    period: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="A named range instead of --from/--to: day, 24h, 7d, 28d, 30d, 91d, month, 6mo, 12mo, "
                          "year, all."),
    ] = None,
    metric: Annotated[Many, typer.Option(help="A Stats API metric (repeatable), e.g. visitors, bounce_rate.")] = None,
    dimension: Annotated[
        Many, typer.Option(help="Group by (repeatable): event:page, visit:source, time:day, event:props:plan ...")
    ] = None,
    filter_: Annotated[
        Many,
        typer.Option("--filter", help="dim==a|b, dim!=a, dim~=text, dim!~text, or a JSON filter (repeatable)."),
    ] = None,
    compare: Annotated[
        Optional[str], typer.Option(help="previous_period or year_over_year.")  # noqa: UP045
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows of top pages, or of a query's results.", min=1, max=10000)] = 10,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Visitors, visits, pageviews, events, bounce rate and visit duration, per day and page;
    or, with --metric/--dimension/--filter/--period/--compare, a Stats API v2 query's answer."""
    report = _call(
        data_dir, "stats", site=site, date_from=date_from, date_to=date_to, limit=limit, period=period,
        metrics=metric, dimensions=dimension, filters=filter_, compare=compare,
    )
    if as_json:
        _print_json(report)
        return
    if "results" in report:
        _print_query(report)
        return
    t = report["totals"]
    out.print(f"[bold]{report['site']}[/bold]  {report['from']} .. {report['to']}  ({report['timezone']})")
    _table(
        [{
            "visitors": t["visitors"], "visits": t["visits"], "pageviews": t["pageviews"],
            "events": t["events"], "bounce rate": f"{t['bounce_rate'] or 0}%",
            "visit duration": f"{t['visit_duration'] or 0}s",
        }],
        ["visitors", "visits", "pageviews", "events", "bounce rate", "visit duration"],
    )
    _table(report["days"], ["date", "visitors", "visits", "pageviews", "events"], "Per day")
    _table(report["top_pages"], ["page", "visitors", "pageviews"], "Top pages")
    if report["goals"]:
        _table(report["goals"], ["goal", "type", "value", "visitors", "completions", "conversion_rate"], "Goals")


def _print_query(report: dict[str, Any]) -> None:
    """A Stats API answer as a table: dimensions, metrics, and each metric's change."""
    query = report["query"]
    first, last = query["date_range"]
    out.print(f"[bold]{query['site_id']}[/bold]  {first} .. {last}")
    columns = [*query["dimensions"], *query["metrics"]]
    compared = "comparison_date_range" in query
    if compared:
        columns += [f"{m} change" for m in query["metrics"]]
    rows = []
    for result in report["results"]:
        values = [_money(v) for v in [*result["dimensions"], *result["metrics"]]]
        if compared:
            values += [_cell(c) + ("" if c is None or "rate" in m else "%")
                       for m, c in zip(query["metrics"], result["comparison"]["change"], strict=True)]
        rows.append(dict(zip(columns, values, strict=True)))
    _table(rows, columns)


def _money(value: Any) -> Any:
    return value["long"] if isinstance(value, dict) and "long" in value else value


# -- goals --------------------------------------------------------------------------------

GOAL_COLUMNS = ["id", "name", "type", "value"]


@goals_app.command("add")
def goals_add(
    site: str,
    name: Annotated[str, typer.Option(help="What the goal is called, e.g. 'Pro Signup'.")],
    event: Annotated[Optional[str], typer.Option(help="The event name that completes it.")] = None,  # noqa: UP045
    page: Annotated[Optional[str], typer.Option(help="The page path that completes it; * matches anything.")] = None,  # noqa: UP045
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Add a goal: an event (--event NAME) or a pageview (--page /path/*)."""
    if (event is None) == (page is None):
        raise typer.BadParameter("give one of --event or --page")
    kind, value = ("event", event) if event is not None else ("pageview", page)
    goal = _call(data_dir, "goals.add", site=site, name=name, type=kind, value=value)
    if as_json:
        _print_json(goal)
    else:
        out.print(f"added goal [bold]{goal['name']}[/bold] ({goal['id']}): {goal['type']} {goal['value']}")


@goals_app.command("list")
def goals_list(site: str, data_dir: DataDir = None, as_json: Json = False) -> None:
    """A site's goals."""
    goals = _call(data_dir, "goals.list", site=site)
    if as_json:
        _print_json(goals)
    else:
        _table(goals, GOAL_COLUMNS)


@goals_app.command("remove")
def goals_remove(site: str, goal: str, data_dir: DataDir = None, as_json: Json = False) -> None:
    """Remove a goal, by id or name."""
    result = _call(data_dir, "goals.remove", site=site, goal=goal)
    if as_json:
        _print_json(result)
    else:
        out.print(f"removed goal {result['removed']}")


# -- funnels ------------------------------------------------------------------------------


@funnels_app.command("add")
def funnels_add(
    site: str,
    name: Annotated[str, typer.Option(help="What the funnel is called, e.g. 'Signup'.")],
    step: Annotated[list[str], typer.Option(
        help="A step, in order: page:/path (* matches anything) or event:NAME; give 2 to 8.")],
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Add a funnel: --step page:/pricing --step event:signup ..."""
    steps = []
    for text in step:
        kind, sep, value = text.partition(":")
        if not sep or kind not in ("page", "event"):
            raise typer.BadParameter(f"a step is page:/path or event:NAME, not {text!r}")
        steps.append({"type": "pageview" if kind == "page" else "event", "value": value})
    funnel = _call(data_dir, "funnels.add", site=site, name=name, steps=steps)
    if as_json:
        _print_json(funnel)
    else:
        out.print(f"added funnel [bold]{funnel['name']}[/bold] ({funnel['id']}) with {len(funnel['steps'])} steps")


@funnels_app.command("list")
def funnels_list(site: str, data_dir: DataDir = None, as_json: Json = False) -> None:
    """A site's funnels."""
    funnels = _call(data_dir, "funnels.list", site=site)
    if as_json:
        _print_json(funnels)
    else:
        rows = [{**f, "steps": " → ".join(f"{s['type']} {s['value']}" for s in f["steps"])} for f in funnels]
        _table(rows, ["id", "name", "steps"])


@funnels_app.command("remove")
def funnels_remove(site: str, funnel: str, data_dir: DataDir = None, as_json: Json = False) -> None:
    """Remove a funnel, by id or name."""
    result = _call(data_dir, "funnels.remove", site=site, funnel=funnel)
    if as_json:
        _print_json(result)
    else:
        out.print(f"removed funnel {result['removed']}")


# -- import -------------------------------------------------------------------------------

app.command("import")(import_command)


def main() -> None:
    app()
