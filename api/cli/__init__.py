"""The ``ledger`` command line: treasurers' commands on the ledger, from a shell.

Commands are grouped by what they act on, one module each: ``fund`` (``funds``),
``donation`` (``donations``), ``grant`` (``grants``), ``expense`` (``expenses``), ``token``
(``tokens``), ``projections``, ``export`` (``exports``), ``audit`` (``audit``), ``donor``
(``donations``: erasure); ``init``, ``demo``, ``serve`` and
``projector`` (``running``) are commands of the root. Amounts are decimal strings in the
fund's currency ("100.00"), dates ISO 8601. Settings come from ``LEDGER_*`` environment
variables (``ledger.settings``); the global ``--database-url`` and ``--key-dir`` options
override them.

Exit codes: 0 done; 1 the ledger refused the command (a one-line ``error: <message>
[<slug>]`` on stderr, the slug being the error's stable name) or something else failed;
2 the command line itself was wrong (unknown option, missing value). No traceback is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli import running
from api.cli.audit import audit_app
from api.cli.common import State
from api.cli.donations import donation_app, donor_app
from api.cli.expenses import expense_app
from api.cli.exports import export_app
from api.cli.funds import fund_app
from api.cli.grants import grant_app
from api.cli.group import LedgerGroup
from api.cli.projections import projections_app
from api.cli.tokens import token_app
from ledger.settings import get_settings

app = typer.Typer(
    cls=LedgerGroup,
    name="ledger",
    help="An event-sourced, verifiable ledger for small community funds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
running.register(app)
app.add_typer(fund_app, name="fund")
app.add_typer(donation_app, name="donation")
app.add_typer(grant_app, name="grant")
app.add_typer(expense_app, name="expense")
app.add_typer(token_app, name="token")
app.add_typer(projections_app, name="projections")
app.add_typer(export_app, name="export")
app.add_typer(audit_app, name="audit")
app.add_typer(donor_app, name="donor")


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
    state = State(settings.model_copy(update=update) if update else settings)
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    app()
