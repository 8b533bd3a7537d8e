"""``ledger fund …``: open funds, add purposes, record the host's details, close months,
show figures."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from api.cli.common import (
    ActorOpt,
    FormatOpt,
    FundArg,
    OutputFormat,
    console,
    emit,
    ledger,
    read_models,
)
from api.cli.group import command_group
from api.reads import fund_out
from api.schemas import FiguresOut, FundOut
from api.views import fund_out_from_aggregate
from ledger.domain.figures import DERIVED_NAMES, FIGURE_NAMES

fund_app = command_group(
    "Open funds, add purposes, record the host's details, close months, show figures."
)


class YesNo(StrEnum):
    yes = "yes"
    no = "no"


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
    recorded = ledger(ctx).open_fund(
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
    emit(
        fmt,
        {"slug": fund.slug, "name": fund.name, "created": recorded.created},
        "opened the fund" if recorded.created else "the fund is already open; nothing new",
    )


@fund_app.command("show")
def fund_show(ctx: typer.Context, slug: FundArg, fmt: FormatOpt = OutputFormat.text) -> None:
    """Show a fund and its figures, per purpose and in total (from the read models, as
    GET /api/funds/{slug} does)."""
    with read_models(ctx) as conn:
        fund = fund_out(conn, slug)
    if fmt is OutputFormat.json:
        emit(fmt, fund, "")
    else:
        print_fund(fund)


@fund_app.command("purpose-add")
def fund_purpose_add(
    ctx: typer.Context,
    slug: FundArg,
    code: Annotated[str, typer.Option("--code", help="e.g. elderly-care.")],
    name: Annotated[str, typer.Option("--name", help="e.g. 养老.")],
    actor: ActorOpt,
) -> None:
    """Add a restricted purpose to a fund."""
    ledger(ctx).add_purpose(slug=slug, code=code, name=name, actor=actor)
    typer.echo(f"added purpose {code} ({name}) to {slug}")


@fund_app.command("host")
def fund_host(
    ctx: typer.Context,
    slug: FundArg,
    name: Annotated[str, typer.Option("--name", help="The host charity's registered name.")],
    credit_code: Annotated[
        str,
        typer.Option(
            "--credit-code", metavar="CODE", help="统一社会信用代码 (18 characters, GB 32100-2015)."
        ),
    ],
    public_fundraising: Annotated[
        YesNo,
        typer.Option("--public-fundraising", help="Whether the host holds 公开募捐资格."),
    ],
    actor: ActorOpt,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Record the host charity's name, credit code and public-fundraising status."""
    fund = ledger(ctx).record_host_details(
        slug=slug,
        name=name,
        credit_code=credit_code,
        public_fundraising=public_fundraising is YesNo.yes,
        actor=actor,
    )
    details = fund_out_from_aggregate(fund).host_details
    assert details is not None  # just recorded
    emit(fmt, details, f"host of {slug}")


@fund_app.command("close-period")
def fund_close_period(
    ctx: typer.Context,
    slug: FundArg,
    period: Annotated[str, typer.Argument(metavar="YYYY-MM", help="A month that has ended.")],
    actor: ActorOpt,
) -> None:
    """Close a month: no entry may be dated in it afterwards."""
    fund = ledger(ctx).close_period(slug=slug, period=period, actor=actor)
    typer.echo(f"closed periods of {slug}: {', '.join(fund.closed_periods)}")


# -- showing a fund --------------------------------------------------------------------------


def print_fund(fund: FundOut) -> None:
    """The fund and a table of its figures: in total, unrestricted and per purpose."""
    out = console()
    out.print(f"{fund.name} ({fund.slug}) · {fund.currency}")
    out.print(f"host: {fund.host}")
    if fund.host_details is not None:
        fundraising = "yes" if fund.host_details.public_fundraising else "no"
        out.print(
            f"host credit code: {fund.host_details.credit_code} · "
            f"public fundraising (公开募捐资格): {fundraising}"
        )
    out.print(
        f"committee: {', '.join(fund.committee)} "
        f"({fund.approvals_required} approvals commit a grant)"
    )
    out.print(f"closed periods: {', '.join(fund.closed_periods) or '-'}")
    figures = fund.figures
    columns: list[tuple[str, FiguresOut]] = [
        ("total", figures.totals),
        ("unrestricted", figures.unrestricted),
    ]
    columns += [(f"{p.code}\n{p.name}", figures.purposes[p.code]) for p in fund.purposes]
    table = Table(title=f"figures ({fund.currency})", title_justify="left")
    table.add_column("", no_wrap=True)
    for label, _ in columns:
        table.add_column(label, justify="right", overflow="fold")
    for name in (*FIGURE_NAMES, *DERIVED_NAMES):
        table.add_row(name, *(getattr(values, name) for _, values in columns))
    out.print(table)
