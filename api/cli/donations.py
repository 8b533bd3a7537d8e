"""``ledger donation …``: record donations, refund and reverse them, show one."""

from __future__ import annotations

from typing import Annotated, Any

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
)
from api.cli.group import command_group
from ledger.application import DonorIn
from ledger.domain.donation import Donation
from ledger.domain.money import format_amount, parse_amount

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
    data = donation_document(recorded.value) | {"created": recorded.created}
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
    currency = app.get_donation(donation_id).currency
    recorded = app.refund_donation(
        donation_id=donation_id,
        key=key,
        amount_minor=parse_amount(amount, currency=currency),
        refunded_on=refunded_on,
        reason=reason,
        actor=actor,
    )
    data = donation_document(recorded.value) | {"created": recorded.created}
    emit(fmt, data, verb(recorded.created, "recorded the refund"))


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
    emit(fmt, donation_document(donation), "reversed the donation")


@donation_app.command("show")
def donation_show(
    ctx: typer.Context, donation_id: DonationIdArg, fmt: FormatOpt = OutputFormat.text
) -> None:
    """Show a donation as the public sees it (no donor details)."""
    emit(fmt, donation_document(ledger(ctx).get_donation(donation_id)), "donation")


def donation_document(donation: Donation) -> dict[str, Any]:
    """What anyone may see of a donation: the donor only as shown to the public."""
    currency = donation.currency
    return {
        "id": str(donation.id),
        "fund": donation.fund_slug,
        "receipt_no": donation.receipt_no,
        "amount": format_amount(donation.amount_minor, currency=currency),
        "currency": currency,
        "received_on": donation.received_on,
        "channel": donation.channel,
        "purpose": donation.purpose or None,
        "donor": donation.donor_public_name,
        "refunded": format_amount(donation.refunded_minor, currency=currency),
        "reversed": donation.reversed,
        "in_kind": donation.in_kind,
    }
