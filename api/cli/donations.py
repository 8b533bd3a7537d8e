"""``ledger donation …``: record donations, refund and reverse them, show one."""

from __future__ import annotations

from datetime import date
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
    read_models,
    verb,
    with_created,
)
from api.cli.group import command_group
from api.reads import donation_row
from api.views import donation_created, donation_public_out, donation_reversed, refund_created
from ledger.application import DonorIn
from ledger.domain.common import entity_id
from ledger.domain.money import parse_amount

donation_app = command_group("Record donations, refund and reverse them.")

DonationIdArg = Annotated[str, typer.Argument(help="The donation's id.")]


@donation_app.command("record")
def donation_record(
    ctx: typer.Context,
    fund: FundArg,
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
    app = ledger(ctx)
    currency = app.get_fund(fund).currency
    in_kind = None
    if in_kind_description is not None or valuation_basis is not None:
        in_kind = {
            "description": in_kind_description or "",
            "valuation_basis": valuation_basis or "",
        }
    recorded = app.record_donation(
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
    data = with_created(donation_created(recorded.value), recorded.created)
    emit(fmt, data, verb(recorded.created, "recorded the donation"))


@donation_app.command("refund")
def donation_refund(
    ctx: typer.Context,
    donation_id: DonationIdArg,
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
    app = ledger(ctx)
    donation = app.get_donation(donation_id)
    currency = donation.currency
    recorded = app.refund_donation(
        donation_id=donation_id,
        key=key,
        amount_minor=parse_amount(amount, currency=currency),
        refunded_on=refunded_on,
        reason=reason,
        actor=actor,
    )
    refund_id = str(entity_id(f"{donation.fund_slug}:{donation.id}", "refund", key))
    refund = refund_created(recorded.value, refund_id=refund_id, reason=reason)
    emit(fmt, with_created(refund, recorded.created), verb(recorded.created, "recorded the refund"))


@donation_app.command("reverse")
def donation_reverse(
    ctx: typer.Context,
    donation_id: DonationIdArg,
    reason: ReasonOpt,
    actor: ActorOpt,
    reversed_on: ReversedOnOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Reverse a donation recorded in error (whole; nothing is edited)."""
    donation = ledger(ctx).reverse_donation(
        donation_id=donation_id, reason=reason, reversed_on=reversed_on, actor=actor
    )
    with read_models(ctx) as conn:
        row = donation_row(conn, donation_id)
    day = row["reversed_on"] or (reversed_on and date.fromisoformat(reversed_on))
    shown = donation_reversed(donation, reversed_on=day or ledger(ctx).today(), reason=reason)
    emit(fmt, shown, "reversed the donation")


@donation_app.command("show")
def donation_show(
    ctx: typer.Context, donation_id: DonationIdArg, fmt: FormatOpt = OutputFormat.text
) -> None:
    """Show a donation as the public sees it (no donor details), from the read models."""
    with read_models(ctx) as conn:
        row = donation_row(conn, donation_id)
    emit(fmt, donation_public_out(row), "donation")


donor_app = command_group("Donors' personal data: erase it for good.")


@donor_app.command("erase")
def donor_erase(
    ctx: typer.Context,
    donation_id: DonationIdArg,
    actor: ActorOpt = "admin",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Erase a donor's name and contact (crypto-shredding): the data key is deleted and
    DonorErased recorded. The log and its signed roots stay intact and still verify."""
    donation = ledger(ctx).erase_donor(donation_id=donation_id, actor=actor)
    with read_models(ctx) as conn:
        row = donation_row(conn, donation_id)
    emit(
        fmt,
        {"id": str(donation.id), "receipt_no": donation.receipt_no,
         "donor_erased": bool(row["donor_erased"])},
        "erased the donor's personal data",
    )  # fmt: skip
