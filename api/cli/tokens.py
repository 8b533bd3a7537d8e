"""``ledger token …``: API tokens — create (shown once), list, revoke."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.common import FormatOpt, OutputFormat, console, prepare_storage, state
from api.cli.group import command_group
from api.tokens import TokenStore

token_app = command_group("API tokens: create (shown once), list, revoke.")


def _token_store(ctx: typer.Context) -> TokenStore:
    current = state(ctx)
    prepare_storage(current.settings)
    store = TokenStore(current.engine)
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
        typer.Option(
            "--fund",
            metavar="SLUG",
            help="A fund the token acts for (repeat; treasurer and committee tokens need one).",
        ),
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
    console().print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name.")]
) -> None:
    """Revoke the active token of NAME (it stops working at once, within 1 s elsewhere)."""
    count = _token_store(ctx).revoke(name)
    typer.echo(f"revoked {count} token{'s' if count != 1 else ''} of {name}")
