"""``ledger export beancount|hledger FUND``: a fund's books for the auditors' own tools.

    ledger export beancount tea-village --to tea-village.beancount
    ledger export hledger tea-village --from 2026-07-01 --to-date 2026-09-30 > q3.journal

Written from the read models (docs/interop.md). On SQLite they are first brought up to date in
this process; on PostgreSQL the projector keeps them current, and a lag is reported on
stderr. ``--with-donors`` (this command holds the key directory) adds the donors' decrypted
details, as the auditors' export over HTTP does.

``export_app`` is the ``ledger export`` group.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from api.cli.group import command_group
from ledger.application import LedgerApp
from ledger.domain.errors import InvalidField
from ledger.privacy import PersonalData
from ledger.settings import Settings
from ledger.store import parse_url
from projections.db import make_engine
from projections.exports.ledgerfiles import (
    LedgerLines,
    beancount_lines,
    check_span,
    hledger_lines,
)
from projections.queries import fund_row
from projections.registry import ensure_schema
from projections.runner import ProjectionRunner
from projections.status import projection_status

CATCH_UP_TIMEOUT_S = 600.0

export_app = command_group("A fund's books for Beancount or hledger (docs/interop.md).")

FundArg = Annotated[str, typer.Argument(metavar="FUND", help="The fund's slug.")]
ToOpt = Annotated[
    Path | None, typer.Option("--to", metavar="FILE", help="Write here (default: stdout).")
]
FromOpt = Annotated[
    str | None, typer.Option("--from", metavar="DATE", help="First business day (YYYY-MM-DD).")
]
ToDateOpt = Annotated[
    str | None, typer.Option("--to-date", metavar="DATE", help="Last business day (YYYY-MM-DD).")
]
DonorsOpt = Annotated[
    bool,
    typer.Option("--with-donors", help="Add the donors' decrypted names and contacts (auditors)."),
]


@export_app.command("beancount")
def export_beancount(
    ctx: typer.Context,
    fund: FundArg,
    to: ToOpt = None,
    date_from: FromOpt = None,
    date_to: ToDateOpt = None,
    with_donors: DonorsOpt = False,
) -> None:
    """The fund's books as a Beancount file (check it with ``bean-check``)."""
    _export(ctx, beancount_lines, fund, to, date_from, date_to, with_donors)


@export_app.command("hledger")
def export_hledger(
    ctx: typer.Context,
    fund: FundArg,
    to: ToOpt = None,
    date_from: FromOpt = None,
    date_to: ToDateOpt = None,
    with_donors: DonorsOpt = False,
) -> None:
    """The fund's books as an hledger journal (check it with ``hledger check -s``)."""
    _export(ctx, hledger_lines, fund, to, date_from, date_to, with_donors)


def _day(label: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidField(f"{label} must be a date YYYY-MM-DD", field=label) from None


def _export(
    ctx: typer.Context,
    lines: LedgerLines,
    slug: str,
    to: Path | None,
    date_from_text: str | None,
    date_to_text: str | None,
    with_donors: bool,
) -> None:
    date_from, date_to = _day("from", date_from_text), _day("to-date", date_to_text)
    check_span(date_from, date_to)
    settings: Settings = ctx.find_root().obj.settings
    if parse_url(settings.database_url).kind == "memory":
        raise InvalidField("an export needs a database (sqlite:// or postgresql://)", field="url")
    app = LedgerApp(settings)
    engine = make_engine(settings.database_url)
    try:
        _bring_up_to_date(app, engine, settings)

        def details(donation_id: str) -> PersonalData | None:
            return app.donor_details(app.get_donation(donation_id))

        with engine.connect() as conn:
            fund_row(conn, slug)  # the fund's error before a file is made
            with _output(to) as out:
                for line in lines(
                    conn,
                    slug,
                    date_from=date_from,
                    date_to=date_to,
                    donor_details=details if with_donors else None,
                ):
                    out.write(line)
                    out.write("\n")
    finally:
        engine.dispose()
        app.close()
    if to is not None:
        typer.echo(f"wrote {to}", err=True)


def _bring_up_to_date(app: LedgerApp, engine: Any, settings: Settings) -> None:
    if parse_url(settings.database_url).kind == "sqlite":
        ProjectionRunner(app, engine).catch_up(timeout_s=CATCH_UP_TIMEOUT_S)
        return
    ensure_schema(engine)
    lag = max((s.lag for s in projection_status(app, engine)), default=0)
    if lag:
        typer.echo(f"warning: the read models are {lag} events behind the log", err=True)


@contextmanager
def _output(to: Path | None) -> Iterator[TextIO]:
    if to is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    partial = to.with_name(to.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as f:
            yield f
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(to)
