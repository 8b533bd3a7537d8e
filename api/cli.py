"""The ``ledger`` command line: treasurers' commands on the ledger, from a shell.

Commands are grouped by what they act on (``fund``, ``donation``, ``grant``, ``expense``) plus
``init`` and ``demo``. Amounts are decimal strings in the fund's currency ("100.00"), dates
ISO 8601. Settings come from ``LEDGER_*`` environment variables (``ledger.settings``); the
global ``--database-url`` and ``--key-dir`` options override them.

Exit codes: 0 done; 1 the ledger refused the command (a one-line ``error: <message>
[<slug>]`` on stderr, the slug being the error's stable name) or something else failed;
2 the command line itself was wrong (unknown option, missing value). No traceback is shown.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from api.export_commands import export_app
from api.tokens import TokenStore
from ledger.application import DonorIn, LedgerApp
from ledger.demo import DEMO_FUND_SLUG, load_demo
from ledger.domain.donation import Donation
from ledger.domain.errors import LedgerError
from ledger.domain.figures import FIGURE_NAMES, UNRESTRICTED, available_of, on_hand_of
from ledger.domain.fund import Fund
from ledger.domain.grant import Grant
from ledger.domain.money import format_amount, parse_amount
from ledger.engine.gc import tune_gc_for_server
from ledger.settings import Settings, get_settings
from ledger.store import parse_url
from projections.cli import projections_app
from projections.db import make_engine
from projections.registry import ensure_schema

EXIT_REFUSED = 1
EXIT_USAGE = 2


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


# -- errors: one line, a stable exit code, never a traceback ---------------------------------


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)


class _LedgerGroup(TyperGroup):
    """The root group: runs the command and maps whatever goes wrong to one line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run_args = {
            "args": args,
            "prog_name": prog_name,
            "complete_var": complete_var,
            "windows_expand_args": windows_expand_args,
            **extra,
        }
        if not standalone_mode:
            return super().main(standalone_mode=False, **run_args)
        try:
            rv = super().main(standalone_mode=False, **run_args)
        except typer.TyperException as e:  # Typer's (vendored) click errors, usage errors first
            if type(e).__name__ == "NoArgsIsHelpError":  # the help is the message (or shown)
                if e.format_message():
                    typer.echo(e.format_message(), err=True)
                sys.exit(EXIT_USAGE)
            usage_ctx = getattr(e, "ctx", None)
            hint = f" (see '{usage_ctx.command_path} --help')" if usage_ctx is not None else ""
            _fail(e.format_message() + hint, e.exit_code)
        except typer.Abort:
            _fail("aborted", EXIT_REFUSED)
        except LedgerError as e:
            _fail(f"{e.message} [{e.slug}]", EXIT_REFUSED)
        except Exception as e:  # a failure of the machinery, not a refusal: still one line
            _fail(f"{type(e).__name__}: {e} [internal-error]", EXIT_REFUSED)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_LedgerGroup,
    name="ledger",
    help="An event-sourced, verifiable ledger for small community funds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
fund_app = typer.Typer(help="Open funds, add purposes, close months, show figures.")
donation_app = typer.Typer(help="Record donations, refund and reverse them.")
grant_app = typer.Typer(help="Propose, approve, pay and close grants.")
expense_app = typer.Typer(help="Record and reverse a fund's expenses.")
token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.")
for _group, _name in (
    (fund_app, "fund"),
    (donation_app, "donation"),
    (grant_app, "grant"),
    (expense_app, "expense"),
    (token_app, "token"),
):
    _group.info.no_args_is_help = True
    app.add_typer(_group, name=_name)
# Reads its settings from LEDGER_* (not from --database-url): it is the projections' own.
app.add_typer(projections_app, name="projections")
app.add_typer(export_app, name="export")


# -- the application, made on first use and closed with the command --------------------------


@dataclass
class _State:
    settings: Settings
    _app: LedgerApp | None = None

    @property
    def app(self) -> LedgerApp:
        if self._app is None:
            self._app = LedgerApp(self.settings)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


def _prepare_storage(settings: Settings) -> None:
    """SQLite creates its file, not the folder it lives in (made by ``init`` and ``demo``)."""
    store = parse_url(settings.database_url)
    if store.kind == "sqlite":
        Path(store.path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _state(ctx: typer.Context) -> _State:
    state = ctx.find_root().obj
    assert isinstance(state, _State)
    return state


def _ledger(ctx: typer.Context) -> LedgerApp:
    return _state(ctx).app


@app.callback()
def _root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            help="sqlite:///path or postgresql://user@host:port/db "
            "(default: LEDGER_DATABASE_URL, else sqlite:///./ledger.db).",
        ),
    ] = None,
    key_dir: Annotated[
        Path | None,
        typer.Option(
            "--key-dir",
            metavar="DIR",
            help="Folder of the key files (default: LEDGER_KEY_DIR, else ./ledger-keys).",
        ),
    ] = None,
) -> None:
    settings = get_settings()
    update: dict[str, Any] = {}
    if database_url is not None:
        update["database_url"] = database_url
    if key_dir is not None:
        update["key_dir"] = key_dir
    state = _State(settings.model_copy(update=update) if update else settings)
    ctx.obj = state
    ctx.call_on_close(state.close)


# -- shared options --------------------------------------------------------------------------

ActorOpt = Annotated[
    str, typer.Option("--actor", metavar="NAME", help="Who records this (kept in the event).")
]
KeyOpt = Annotated[
    str,
    typer.Option(
        "--key",
        metavar="KEY",
        help="Idempotency key: the same key and content again records nothing new.",
    ),
]
FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", help="text for people, json for programs.")
]
AmountOpt = Annotated[
    str, typer.Option("--amount", metavar="DECIMAL", help="In the fund's currency, e.g. 100.00.")
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; kept in the event.")]


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]


# -- output ----------------------------------------------------------------------------------


def _console() -> Console:
    # No markup or emoji codes: names and notes are printed as given.
    return Console(highlight=False, markup=False, emoji=False)


def _emit(fmt: OutputFormat, data: dict[str, Any], headline: str) -> None:
    """JSON as it is, or a headline and ``key: value`` lines."""
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    typer.echo(headline)
    for key, value in data.items():
        if isinstance(value, (list, dict, bool)):
            value = json.dumps(value, ensure_ascii=False)
        elif value is None:
            value = "-"
        typer.echo(f"  {key}: {value}")


def _money(amount_minor: int, currency: str) -> str:
    return format_amount(amount_minor, currency=currency)


def _figure_strings(figures: dict[str, int], currency: str) -> dict[str, str]:
    shown = {name: _money(figures[name], currency) for name in FIGURE_NAMES}
    shown["on_hand"] = _money(on_hand_of(figures), currency)
    shown["available"] = _money(available_of(figures), currency)
    return shown


def fund_figures(fund: Fund) -> dict[str, Any]:
    """The fund's figures as decimal strings: ``totals``, ``unrestricted``, ``purposes``."""
    return {
        "totals": _figure_strings(fund.totals(), fund.currency),
        "unrestricted": _figure_strings(fund.figures[UNRESTRICTED], fund.currency),
        "purposes": {
            code: _figure_strings(fund.figures[code], fund.currency) for code in fund.purposes
        },
    }


def fund_document(fund: Fund) -> dict[str, Any]:
    return {
        "slug": fund.slug,
        "name": fund.name,
        "currency": fund.currency,
        "description": fund.description,
        "host": fund.host,
        "committee": list(fund.committee),
        "approvals_required": fund.approvals_required,
        "purposes": [{"code": code, "name": name} for code, name in fund.purposes.items()],
        "closed_periods": list(fund.closed_periods),
        "figures": fund_figures(fund),
    }


def _print_fund(fund: Fund) -> None:
    doc = fund_document(fund)
    console = _console()
    console.print(f"{fund.name} ({fund.slug}) · {fund.currency}")
    console.print(f"host: {fund.host}")
    console.print(
        f"committee: {', '.join(fund.committee)} "
        f"({fund.approvals_required} approvals commit a grant)"
    )
    console.print(f"closed periods: {', '.join(fund.closed_periods) or '-'}")
    figures = doc["figures"]
    columns: list[tuple[str, dict[str, str]]] = [
        ("total", figures["totals"]),
        ("unrestricted", figures["unrestricted"]),
    ]
    columns += [
        (f"{code}\n{name}", figures["purposes"][code]) for code, name in fund.purposes.items()
    ]
    table = Table(title=f"figures ({fund.currency})", title_justify="left")
    table.add_column("", no_wrap=True)
    for label, _ in columns:
        table.add_column(label, justify="right", overflow="fold")
    for name in (*FIGURE_NAMES, "on_hand", "available"):
        table.add_row(name, *(values[name] for _, values in columns))
    console.print(table)


def donation_document(donation: Donation) -> dict[str, Any]:
    """What anyone may see of a donation: the donor only as shown to the public."""
    currency = donation.currency
    return {
        "id": str(donation.id),
        "fund": donation.fund_slug,
        "receipt_no": donation.receipt_no,
        "amount": _money(donation.amount_minor, currency),
        "currency": currency,
        "received_on": donation.received_on,
        "channel": donation.channel,
        "purpose": donation.purpose or None,
        "donor": donation.donor_public_name,
        "refunded": _money(donation.refunded_minor, currency),
        "reversed": donation.reversed,
        "in_kind": donation.in_kind,
    }


def grant_document(grant: Grant) -> dict[str, Any]:
    currency = grant.currency
    return {
        "id": str(grant.id),
        "fund": grant.fund_slug,
        "title": grant.title,
        "purpose": grant.purpose or None,
        "grantee": grant.grantee_name,
        "status": grant.status,
        "amount": _money(grant.amount_minor, currency),
        "currency": currency,
        "disbursed": _money(grant.disbursed_minor, currency),
        "released": _money(grant.released_minor, currency),
        "approvals": [a["member"] for a in grant.approvals],
        "tranches": [
            {
                "no": no,
                "amount": _money(t.amount_minor, currency),
                "paid_on": t.paid_on,
                "method": t.method,
                "reference": t.reference,
                "reversed": t.reversed,
            }
            for no, t in enumerate(grant.tranches, start=1)
        ],
    }


def _verb(created: bool, done: str) -> str:
    return done if created else "already recorded with this key; nothing new"


# -- init and demo ---------------------------------------------------------------------------


def _shown_url(url: str) -> str:
    """The database URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _print_where(settings: Settings) -> None:
    store = parse_url(settings.database_url)
    if store.kind == "sqlite":
        typer.echo(f"database: {Path(store.path).expanduser().resolve()} (SQLite)")
    else:
        typer.echo(f"database: {_shown_url(settings.database_url)}")
    typer.echo(f"keys: {Path(settings.key_dir).expanduser().resolve()}")


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the database tables and the key folder (safe to run again)."""
    state = _state(ctx)
    _prepare_storage(state.settings)
    _ = state.app  # constructing the application creates the tables and the keys
    _prepare_read_side(state.settings)
    typer.echo("ledger ready")
    _print_where(state.settings)


def _prepare_read_side(settings: Settings) -> None:
    """The read models' and the API's tables (a SQL database only)."""
    if parse_url(settings.database_url).kind == "memory":
        return
    engine = make_engine(settings.database_url)
    try:
        ensure_schema(engine)
        TokenStore(engine).ensure_schema()
    finally:
        engine.dispose()


@app.command()
def demo(
    ctx: typer.Context,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Load the demo and print its figures only.")
    ] = False,
    host: HostOpt = DEFAULT_HOST,
    port: PortOpt = DEFAULT_PORT,
) -> None:
    """Load the 茶乡振兴基金 demo fund and serve the API (unless --no-serve).

    Three months of history, safe to run again; its figures are printed first.
    """
    state = _state(ctx)
    _prepare_storage(state.settings)
    ledger = state.app
    load_demo(ledger, today=ledger.today())
    _prepare_read_side(state.settings)
    _print_where(state.settings)
    typer.echo()
    _print_fund(ledger.get_fund(DEMO_FUND_SLUG))
    if no_serve:
        return
    state.close()  # the server opens its own
    typer.echo()
    typer.echo(
        f"serving on http://{host}:{port}/api/funds/{DEMO_FUND_SLUG} "
        "(writes need a token: ledger token create --name NAME --role treasurer)"
    )
    _serve(state.settings, host=host, port=port, workers=1, access_log=True)


# -- serving ---------------------------------------------------------------------------------


@app.command()
def serve(
    ctx: typer.Context,
    host: HostOpt = DEFAULT_HOST,
    port: PortOpt = DEFAULT_PORT,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Server processes.")] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = True,
) -> None:
    """Serve the HTTP API (JSON under /api); the projections run in the same process."""
    state = _state(ctx)
    _prepare_storage(state.settings)
    _serve(state.settings, host=host, port=port, workers=workers, access_log=access_log)


@app.command()
def projector(ctx: typer.Context) -> None:
    """Keep the read models current, in this process, until stopped (Ctrl-C): for
    deployments whose API runs several workers (LEDGER_PROJECTIONS_IN_PROCESS=false)."""
    from ledger.application import LedgerApp
    from projections.db import make_engine
    from projections.registry import ensure_schema
    from projections.runner import ProjectionRunner

    state = _state(ctx)
    _prepare_storage(state.settings)
    ledger = LedgerApp(state.settings)
    engine = make_engine(state.settings.database_url)
    ensure_schema(engine)
    tune_gc_for_server()
    runner = ProjectionRunner(ledger, engine).start()
    typer.echo(f"projecting {state.settings.database_url} (Ctrl-C to stop)", err=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while runner.running:
            runner.join(timeout_s=1.0)
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
        engine.dispose()
        ledger.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve(settings: Settings, *, host: str, port: int, workers: int, access_log: bool) -> None:
    import uvicorn

    from api.app import create_api

    if workers == 1:
        api = create_api(settings)
        tune_gc_for_server()
        uvicorn.run(api, host=host, port=port, access_log=access_log, log_level="info")
        return
    # Worker processes read their settings from the environment. Several workers would each
    # run the projections: a separate `ledger projector` process does that instead.
    os.environ["LEDGER_PROJECTIONS_IN_PROCESS"] = "false"
    typer.echo(
        "several workers: run `ledger projector` beside them to keep the read models current",
        err=True,
    )
    os.environ["LEDGER_DATABASE_URL"] = settings.database_url
    os.environ["LEDGER_KEY_DIR"] = str(settings.key_dir)
    os.environ["LEDGER_TIMEZONE"] = settings.timezone
    uvicorn.run(
        "api.app:create_api_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
    )


# -- tokens ----------------------------------------------------------------------------------


def _token_store(ctx: typer.Context) -> TokenStore:
    settings = _state(ctx).settings
    _prepare_storage(settings)
    engine = make_engine(settings.database_url)
    ctx.call_on_close(engine.dispose)
    store = TokenStore(engine)
    store.ensure_schema()
    return store


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option("--name", help="Who holds it; the actor of what they record.")
    ],
    role: Annotated[str, typer.Option("--role", help="admin, treasurer, committee or auditor.")],
    fund: Annotated[
        list[str] | None,
        typer.Option("--fund", metavar="SLUG", help="Limit writes to this fund (repeat)."),
    ] = None,
) -> None:
    """Create a token; it is printed once, as the last line, and stored only as a hash."""
    info, secret = _token_store(ctx).create(name=name, role=role, funds=fund or [])
    funds = ", ".join(info.funds) if info.funds else "every fund"
    typer.echo(f"created a {info.role} token for {info.name} (writes: {funds})")
    typer.echo("it is shown only this once; only its hash is stored:")
    typer.echo(secret)


@token_app.command("list")
def token_list(ctx: typer.Context, fmt: FormatOpt = OutputFormat.text) -> None:
    """List tokens (never their secrets), revoked ones too."""
    tokens = _token_store(ctx).list()
    rows: list[dict[str, Any]] = [
        {
            "name": t.name,
            "role": t.role,
            "funds": list(t.funds),
            "created_at": t.created_at.isoformat(),
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        }
        for t in tokens
    ]
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title="API tokens", title_justify="left")
    for column in ("name", "role", "funds", "created", "revoked"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["name"],
            r["role"],
            ", ".join(r["funds"]) or "every fund",
            r["created_at"][:19],
            (r["revoked_at"] or "-")[:19],
        )
    _console().print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name.")]
) -> None:
    """Revoke the active token of NAME (it stops working at once, within 1 s elsewhere)."""
    count = _token_store(ctx).revoke(name)
    typer.echo(f"revoked {count} token{'s' if count != 1 else ''} of {name}")


# -- funds -----------------------------------------------------------------------------------


def _purpose_pairs(values: list[str]) -> list[dict[str, str]]:
    purposes = []
    for value in values:
        code, sep, name = value.partition("=")
        if not sep or not code.strip() or not name.strip():
            raise typer.BadParameter(f"{value!r} is not CODE=NAME", param_hint="--purpose")
        purposes.append({"code": code.strip(), "name": name.strip()})
    return purposes


@fund_app.command("open")
def fund_open(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Short name in URLs, e.g. tea-village.")],
    name: Annotated[str, typer.Option("--name", help="The fund's name.")],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code, e.g. CNY.")],
    host: Annotated[str, typer.Option("--host", help="The host charity.")],
    committee: Annotated[
        list[str], typer.Option("--committee", metavar="NAME", help="A member (repeat).")
    ],
    actor: ActorOpt,
    approvals_required: Annotated[
        int,
        typer.Option("--approvals-required", metavar="N", help="Approvals that commit a grant."),
    ] = 2,
    purpose: Annotated[
        list[str] | None,
        typer.Option("--purpose", metavar="CODE=NAME", help="A restricted purpose (repeat)."),
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Open a fund."""
    purposes = _purpose_pairs(purpose or [])
    recorded = _ledger(ctx).open_fund(
        slug=slug,
        name=name,
        currency=currency,
        description=description,
        host=host,
        committee=committee,
        approvals_required=approvals_required,
        purposes=purposes,
        actor=actor,
    )
    fund = recorded.value
    _emit(
        fmt,
        {"slug": fund.slug, "name": fund.name, "created": recorded.created},
        "opened the fund" if recorded.created else "the fund is already open; nothing new",
    )


@fund_app.command("show")
def fund_show(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The fund's slug.")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Show a fund and its figures, per purpose and in total."""
    fund = _ledger(ctx).get_fund(slug)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(fund_document(fund), ensure_ascii=False, indent=2))
    else:
        _print_fund(fund)


@fund_app.command("purpose-add")
def fund_purpose_add(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The fund's slug.")],
    code: Annotated[str, typer.Option("--code", help="e.g. elderly-care.")],
    name: Annotated[str, typer.Option("--name", help="e.g. 养老.")],
    actor: ActorOpt,
) -> None:
    """Add a restricted purpose to a fund."""
    _ledger(ctx).add_purpose(slug=slug, code=code, name=name, actor=actor)
    typer.echo(f"added purpose {code} ({name}) to {slug}")


@fund_app.command("close-period")
def fund_close_period(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The fund's slug.")],
    period: Annotated[str, typer.Argument(metavar="YYYY-MM", help="A month that has ended.")],
    actor: ActorOpt,
) -> None:
    """Close a month: no entry may be dated in it afterwards."""
    fund = _ledger(ctx).close_period(slug=slug, period=period, actor=actor)
    typer.echo(f"closed periods of {slug}: {', '.join(fund.closed_periods)}")


# -- donations -------------------------------------------------------------------------------


@donation_app.command("record")
def donation_record(
    ctx: typer.Context,
    fund: Annotated[str, typer.Argument(help="The fund's slug.")],
    amount: AmountOpt,
    received_on: Annotated[str, typer.Option("--received-on", metavar="YYYY-MM-DD")],
    channel: Annotated[
        str, typer.Option("--channel", help="cash, bank, wechat, alipay, in_kind or other.")
    ],
    key: KeyOpt,
    actor: ActorOpt,
    purpose: Annotated[
        str | None, typer.Option("--purpose", metavar="CODE", help="Designate to a purpose.")
    ] = None,
    donor_name: Annotated[str | None, typer.Option("--donor-name", help="Kept encrypted.")] = None,
    donor_contact: Annotated[
        str | None, typer.Option("--donor-contact", help="Kept encrypted.")
    ] = None,
    anonymous: Annotated[
        bool, typer.Option("--anonymous", help="Show the donor as 爱心人士 to the public.")
    ] = False,
    public_name: Annotated[
        str | None, typer.Option("--public-name", help="The name the public sees (consented).")
    ] = None,
    external_ref: Annotated[
        str | None, typer.Option("--external-ref", help="e.g. the bank's transaction id.")
    ] = None,
    note: Annotated[str, typer.Option("--note")] = "",
    in_kind_description: Annotated[
        str | None, typer.Option("--in-kind-description", help="For --channel in_kind.")
    ] = None,
    valuation_basis: Annotated[
        str | None, typer.Option("--valuation-basis", help="For --channel in_kind.")
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Record a donation; prints its id and receipt number."""
    ledger = _ledger(ctx)
    currency = ledger.get_fund(fund).currency
    in_kind = None
    if in_kind_description is not None or valuation_basis is not None:
        in_kind = {
            "description": in_kind_description or "",
            "valuation_basis": valuation_basis or "",
        }
    recorded = ledger.record_donation(
        slug=fund,
        key=key,
        amount_minor=parse_amount(amount, currency=currency),
        received_on=received_on,
        channel=channel,
        purpose=purpose,
        donor=DonorIn(
            name=donor_name, contact=donor_contact, anonymous=anonymous, public_name=public_name
        ),
        external_ref=external_ref,
        note=note,
        in_kind=in_kind,
        actor=actor,
    )
    data = donation_document(recorded.value) | {"created": recorded.created}
    _emit(fmt, data, _verb(recorded.created, "recorded the donation"))


@donation_app.command("refund")
def donation_refund(
    ctx: typer.Context,
    donation_id: Annotated[str, typer.Argument(help="The donation's id.")],
    amount: AmountOpt,
    reason: ReasonOpt,
    key: KeyOpt,
    actor: ActorOpt,
    refunded_on: Annotated[
        str | None, typer.Option("--refunded-on", metavar="YYYY-MM-DD", help="Default: today.")
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Refund part or all of a donation."""
    ledger = _ledger(ctx)
    currency = ledger.get_donation(donation_id).currency
    recorded = ledger.refund_donation(
        donation_id=donation_id,
        key=key,
        amount_minor=parse_amount(amount, currency=currency),
        refunded_on=refunded_on,
        reason=reason,
        actor=actor,
    )
    data = donation_document(recorded.value) | {"created": recorded.created}
    _emit(fmt, data, _verb(recorded.created, "recorded the refund"))


@donation_app.command("reverse")
def donation_reverse(
    ctx: typer.Context,
    donation_id: Annotated[str, typer.Argument(help="The donation's id.")],
    reason: ReasonOpt,
    actor: ActorOpt,
    reversed_on: Annotated[
        str | None, typer.Option("--reversed-on", metavar="YYYY-MM-DD", help="Default: today.")
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Reverse a donation recorded in error (whole; nothing is edited)."""
    donation = _ledger(ctx).reverse_donation(
        donation_id=donation_id, reason=reason, reversed_on=reversed_on, actor=actor
    )
    _emit(fmt, donation_document(donation), "reversed the donation")


@donation_app.command("show")
def donation_show(
    ctx: typer.Context,
    donation_id: Annotated[str, typer.Argument(help="The donation's id.")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Show a donation as the public sees it (no donor details)."""
    _emit(fmt, donation_document(_ledger(ctx).get_donation(donation_id)), "donation")


# -- grants ----------------------------------------------------------------------------------

GrantIdArg = Annotated[str, typer.Argument(help="The grant's id.")]


@grant_app.command("propose")
def grant_propose(
    ctx: typer.Context,
    fund: Annotated[str, typer.Argument(help="The fund's slug.")],
    title: Annotated[str, typer.Option("--title")],
    amount: AmountOpt,
    grantee_name: Annotated[str, typer.Option("--grantee-name")],
    key: KeyOpt,
    actor: ActorOpt,
    grantee_id: Annotated[
        str | None, typer.Option("--grantee-id", help="e.g. an organisation code.")
    ] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", metavar="CODE", help="Default: unrestricted.")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Propose a grant; it commits money once enough committee members approve."""
    ledger = _ledger(ctx)
    currency = ledger.get_fund(fund).currency
    recorded = ledger.propose_grant(
        slug=fund,
        key=key,
        title=title,
        description=description,
        purpose=purpose,
        grantee_name=grantee_name,
        grantee_id=grantee_id,
        amount_minor=parse_amount(amount, currency=currency),
        actor=actor,
    )
    data = grant_document(recorded.value) | {"created": recorded.created}
    _emit(fmt, data, _verb(recorded.created, "proposed the grant"))


@grant_app.command("approve")
def grant_approve(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    actor: Annotated[str, typer.Option("--actor", metavar="NAME", help="A committee member.")],
    note: Annotated[str, typer.Option("--note")] = "",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Approve a grant as a committee member (not its proposer)."""
    grant = _ledger(ctx).approve_grant(grant_id=grant_id, note=note, actor=actor)
    _emit(fmt, grant_document(grant), f"approval by {actor} recorded")


@grant_app.command("reject")
def grant_reject(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    reason: ReasonOpt,
    actor: ActorOpt,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Reject a proposed grant."""
    grant = _ledger(ctx).reject_grant(grant_id=grant_id, reason=reason, actor=actor)
    _emit(fmt, grant_document(grant), "rejected the grant")


@grant_app.command("cancel")
def grant_cancel(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    reason: ReasonOpt,
    actor: ActorOpt,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Cancel a committed grant; what was not paid goes back to the fund."""
    grant = _ledger(ctx).cancel_grant(grant_id=grant_id, reason=reason, actor=actor)
    _emit(fmt, grant_document(grant), "cancelled the grant")


@grant_app.command("close")
def grant_close(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    reason: ReasonOpt,
    actor: ActorOpt,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Close a committed grant; the unspent amount goes back to the fund."""
    grant = _ledger(ctx).close_grant(grant_id=grant_id, reason=reason, actor=actor)
    _emit(fmt, grant_document(grant), "closed the grant")


@grant_app.command("disburse")
def grant_disburse(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    amount: AmountOpt,
    method: Annotated[str, typer.Option("--method", help="bank, cash, wechat, alipay or other.")],
    reference: Annotated[str, typer.Option("--reference", help="e.g. the bank transfer's id.")],
    key: KeyOpt,
    actor: ActorOpt,
    paid_on: Annotated[
        str | None, typer.Option("--paid-on", metavar="YYYY-MM-DD", help="Default: today.")
    ] = None,
    evidence_sha256: Annotated[
        str | None, typer.Option("--evidence-sha256", help="SHA-256 of the payment evidence.")
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Pay a tranche of a committed grant."""
    ledger = _ledger(ctx)
    currency = ledger.get_grant(grant_id).currency
    recorded = ledger.disburse(
        grant_id=grant_id,
        key=key,
        amount_minor=parse_amount(amount, currency=currency),
        paid_on=paid_on,
        method=method,
        reference=reference,
        evidence_sha256=evidence_sha256,
        actor=actor,
    )
    tranche = recorded.value
    data = grant_document(tranche.grant) | {
        "tranche_no": tranche.tranche_no,
        "created": recorded.created,
    }
    _emit(fmt, data, _verb(recorded.created, f"paid tranche {tranche.tranche_no}"))


@grant_app.command("reverse-disbursement")
def grant_reverse_disbursement(
    ctx: typer.Context,
    grant_id: GrantIdArg,
    tranche_no: Annotated[int, typer.Argument(help="The tranche's number (1, 2, ...).")],
    reason: ReasonOpt,
    actor: ActorOpt,
    reversed_on: Annotated[
        str | None, typer.Option("--reversed-on", metavar="YYYY-MM-DD", help="Default: today.")
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Reverse a tranche that came back (a bounced payment)."""
    grant = _ledger(ctx).reverse_disbursement(
        grant_id=grant_id,
        tranche_no=tranche_no,
        reason=reason,
        reversed_on=reversed_on,
        actor=actor,
    )
    _emit(fmt, grant_document(grant), f"reversed tranche {tranche_no}")


@grant_app.command("show")
def grant_show(
    ctx: typer.Context, grant_id: GrantIdArg, fmt: FormatOpt = OutputFormat.text
) -> None:
    """Show a grant with its approvals and tranches."""
    _emit(fmt, grant_document(_ledger(ctx).get_grant(grant_id)), "grant")


# -- expenses --------------------------------------------------------------------------------


@expense_app.command("record")
def expense_record(
    ctx: typer.Context,
    fund: Annotated[str, typer.Argument(help="The fund's slug.")],
    amount: AmountOpt,
    category: Annotated[
        str, typer.Option("--category", help="program, administration or fundraising.")
    ],
    paid_on: Annotated[str, typer.Option("--paid-on", metavar="YYYY-MM-DD")],
    payee: Annotated[str, typer.Option("--payee")],
    description: Annotated[str, typer.Option("--description")],
    key: KeyOpt,
    actor: ActorOpt,
    purpose: Annotated[
        str | None, typer.Option("--purpose", metavar="CODE", help="Default: unrestricted.")
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Record an expense of the fund."""
    ledger = _ledger(ctx)
    currency = ledger.get_fund(fund).currency
    amount_minor = parse_amount(amount, currency=currency)
    recorded = ledger.record_expense(
        slug=fund,
        key=key,
        amount_minor=amount_minor,
        category=category,
        paid_on=paid_on,
        payee=payee,
        description=description,
        purpose=purpose,
        actor=actor,
    )
    data = {
        "id": recorded.value,
        "fund": fund,
        "amount": _money(amount_minor, currency),
        "category": category,
        "purpose": purpose,
        "created": recorded.created,
    }
    _emit(fmt, data, _verb(recorded.created, "recorded the expense"))


@expense_app.command("reverse")
def expense_reverse(
    ctx: typer.Context,
    fund: Annotated[str, typer.Argument(help="The fund's slug.")],
    expense_id: Annotated[str, typer.Argument(help="The expense's id.")],
    reason: ReasonOpt,
    actor: ActorOpt,
    reversed_on: Annotated[
        str | None, typer.Option("--reversed-on", metavar="YYYY-MM-DD", help="Default: today.")
    ] = None,
) -> None:
    """Reverse an expense recorded in error."""
    _ledger(ctx).reverse_expense(
        slug=fund, expense_id=expense_id, reason=reason, reversed_on=reversed_on, actor=actor
    )
    typer.echo(f"reversed expense {expense_id}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
