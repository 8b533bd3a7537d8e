"""``ledger expense …``: record and reverse a fund's expenses."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import (
    ActorOpt,
    AmountOpt,
    FormatOpt,
    FundArg,
    KeyOpt,
    OutputFormat,
    ReasonOpt,
    ReversedOnOpt,
    emit,
    ledger,
    verb,
    with_created,
)
from api.cli.group import command_group
from api.views import expense_created
from ledger.domain.money import parse_amount

expense_app = command_group("Record and reverse a fund's expenses.")


@expense_app.command("record")
def expense_record(
    ctx: typer.Context,
    fund: FundArg,
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
    app = ledger(ctx)
    currency = app.get_fund(fund).currency
    amount_minor = parse_amount(amount, currency=currency)
    recorded = app.record_expense(
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
    expense = expense_created(
        recorded.value,
        fund=fund,
        amount_minor=amount_minor,
        currency=currency,
        category=category,
        paid_on=paid_on,
        payee=payee,
        description=description,
        purpose=purpose,
    )
    emit(
        fmt, with_created(expense, recorded.created), verb(recorded.created, "recorded the expense")
    )


@expense_app.command("reverse")
def expense_reverse(
    ctx: typer.Context,
    fund: FundArg,
    expense_id: Annotated[str, typer.Argument(help="The expense's id.")],
    reason: ReasonOpt,
    actor: ActorOpt,
    reversed_on: ReversedOnOpt = None,
) -> None:
    """Reverse an expense recorded in error."""
    ledger(ctx).reverse_expense(
        slug=fund, expense_id=expense_id, reason=reason, reversed_on=reversed_on, actor=actor
    )
    typer.echo(f"reversed expense {expense_id}")
