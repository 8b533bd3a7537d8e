"""What the API and the command line show: the read side's serializers, from read-model
rows (what ``GET`` answers and ``ledger … show`` prints) or from the aggregate a command
just changed (what a write answers), into the response models of ``api.schemas``.

Pure functions: the queries that fetch the rows are in ``api.reads``. Money leaves as
decimal strings in the fund's currency; the derived figures follow ``ledger.domain.figures``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from api.schemas import (
    ApprovalOut,
    DisbursementCreated,
    DisclosureOut,
    DonationCreated,
    DonationFullOut,
    DonationPublicOut,
    DonationReversedOut,
    DonorDetailsOut,
    ExpenseCreated,
    FiguresOut,
    FundFiguresOut,
    FundOut,
    GranteeOut,
    GrantOut,
    HostDetailsOut,
    InKindOut,
    ProgressCreated,
    ProgressOut,
    PurposeOut,
    RefundCreated,
    TrancheOut,
)
from ledger.domain.disclosure import Disclosure, disclosure_due
from ledger.domain.donation import Donation
from ledger.domain.figures import FIGURE_NAMES, UNRESTRICTED, available_of, on_hand_of
from ledger.domain.fund import Fund
from ledger.domain.grant import ENDED_STATUSES, Grant, ProgressNote
from ledger.domain.money import format_amount
from projections.queries import Figures, FundFigures

# -- money and figures -------------------------------------------------------------------------


def money(amount_minor: int, currency: str) -> str:
    return format_amount(int(amount_minor), currency=currency)


def figures_from_minor(figures: Mapping[str, int], currency: str) -> FiguresOut:
    """From an aggregate's figures (``received``, ... in minor units)."""
    values = {name: money(figures[name], currency) for name in FIGURE_NAMES}
    return FiguresOut(
        **values,
        on_hand=money(on_hand_of(figures), currency),
        available=money(available_of(figures), currency),
    )


def figures_out(f: Figures, currency: str) -> FiguresOut:
    return FiguresOut(
        received=money(f.received_minor, currency),
        refunded=money(f.refunded_minor, currency),
        committed=money(f.committed_minor, currency),
        released=money(f.released_minor, currency),
        disbursed=money(f.disbursed_minor, currency),
        expenses=money(f.expenses_minor, currency),
        on_hand=money(f.on_hand_minor, currency),
        available=money(f.available_minor, currency),
    )


def fund_figures_out(ff: FundFigures) -> FundFiguresOut:
    return FundFiguresOut(
        totals=figures_out(ff.totals, ff.currency),
        unrestricted=figures_out(ff.unrestricted, ff.currency),
        purposes={code: figures_out(f, ff.currency) for code, f in sorted(ff.purposes.items())},
    )


# -- funds -------------------------------------------------------------------------------------


def host_details(
    name: str, credit_code: str | None, public_fundraising: bool | None
) -> HostDetailsOut | None:
    if credit_code is None or public_fundraising is None:
        return None
    return HostDetailsOut(
        name=name, credit_code=credit_code, public_fundraising=bool(public_fundraising)
    )


def fund_view(row: Mapping[str, Any], names: Mapping[str, str], figures: FundFigures) -> FundOut:
    """A fund from its read-model row, its purposes' names and its figures."""
    return FundOut(
        slug=row["slug"],
        name=row["name"],
        currency=row["currency"],
        description=row["description"],
        host=row["host"],
        host_details=host_details(
            row["host"], row["host_credit_code"], row["host_public_fundraising"]
        ),
        committee=list(row["committee"]),
        approvals_required=int(row["approvals_required"]),
        purposes=[
            PurposeOut(code=code, name=name)
            for code, name in sorted(names.items())
            if code != UNRESTRICTED
        ],
        closed_periods=sorted(row["closed_periods"]),
        figures=fund_figures_out(figures),
    )


def fund_out_from_aggregate(fund: Fund) -> FundOut:
    currency = fund.currency
    return FundOut(
        slug=fund.slug,
        name=fund.name,
        currency=currency,
        description=fund.description,
        host=fund.host,
        host_details=host_details(fund.host, fund.host_credit_code, fund.host_public_fundraising),
        committee=list(fund.committee),
        approvals_required=fund.approvals_required,
        purposes=[PurposeOut(code=c, name=n) for c, n in sorted(fund.purposes.items())],
        closed_periods=sorted(fund.closed_periods),
        figures=FundFiguresOut(
            totals=figures_from_minor(fund.totals(), currency),
            unrestricted=figures_from_minor(fund.figures[UNRESTRICTED], currency),
            purposes={
                code: figures_from_minor(fund.figures[code], currency)
                for code in sorted(fund.purposes)
            },
        ),
    )


# -- donations ---------------------------------------------------------------------------------


def _donation_public(row: Mapping[str, Any]) -> dict[str, Any]:
    currency = row["currency"]
    return {
        "receipt_no": row["receipt_no"],
        "fund": row["fund_slug"],
        "amount": money(row["amount_minor"], currency),
        "currency": currency,
        "received_on": row["received_on"],
        "channel": row["channel"],
        "purpose": row["purpose"] or None,
        "donor": row["donor_public_name"],
        "in_kind_description": row["in_kind_description"],
        "refunded": money(row["refunded_minor"], currency),
        "reversed": money(row["reversed_minor"], currency),
        "status": row["status"],
    }


def donation_public_out(row: Mapping[str, Any]) -> DonationPublicOut:
    return DonationPublicOut(**_donation_public(row))


def donation_full_out(row: Mapping[str, Any], details: DonorDetailsOut | None) -> DonationFullOut:
    return DonationFullOut(
        **_donation_public(row),
        id=row["donation_id"],
        donor_id=row["donor_id"],
        donor_anonymous=bool(row["donor_anonymous"]),
        donor_erased=bool(row["donor_erased"]),
        external_ref=row["external_ref"],
        note=row["note"],
        in_kind_valuation_basis=row["in_kind_valuation_basis"],
        reversed_on=row["reversed_on"],
        reversal_reason=row["reversal_reason"],
        recorded_at=row["recorded_at"],
        recorded_by=row["recorded_by"],
        donor_details=details,
    )


def donation_created(donation: Donation) -> DonationCreated:
    """What never changes about a donation: the answer to its creation and to retries."""
    in_kind = donation.in_kind
    return DonationCreated(
        id=str(donation.id),
        fund=donation.fund_slug,
        receipt_no=donation.receipt_no,
        amount=money(donation.amount_minor, donation.currency),
        currency=donation.currency,
        received_on=donation.received_on,  # type: ignore[arg-type]
        channel=donation.channel,
        purpose=donation.purpose or None,
        donor=donation.donor_public_name,
        in_kind=InKindOut(**in_kind) if in_kind else None,
    )


def refund_created(donation: Donation, *, refund_id: str, reason: str) -> RefundCreated:
    refund = donation.refunds[refund_id]
    return RefundCreated(
        id=refund_id,
        donation_id=str(donation.id),
        receipt_no=donation.receipt_no,
        amount=money(refund.amount_minor, donation.currency),
        currency=donation.currency,
        refunded_on=refund.refunded_on,  # type: ignore[arg-type]
        reason=reason,
    )


def donation_reversed(donation: Donation, *, reversed_on: date, reason: str) -> DonationReversedOut:
    # A reversal takes back what was not refunded; the aggregate counts it as refunded.
    reversed_minor = donation.refunded_minor - sum(
        r.amount_minor for r in donation.refunds.values()
    )
    return DonationReversedOut(
        id=str(donation.id),
        receipt_no=donation.receipt_no,
        reversed=money(reversed_minor, donation.currency),
        currency=donation.currency,
        reversed_on=reversed_on,
        reason=donation.reversal_reason or reason,
    )


# -- grants ------------------------------------------------------------------------------------


def disclosure_out(disclosure: Disclosure) -> DisclosureOut:
    return DisclosureOut(
        status=disclosure.status,
        update_due_on=disclosure.update_due_on,
        final_account_due_on=disclosure.final_account_due_on,
    )


def disclosure_of_row(
    row: Mapping[str, Any], today: date, progress: Sequence[Mapping[str, Any]] | None = None
) -> Disclosure:
    """A grant's disclosure from its read-model row (and, if given, its progress notes; the
    row's latest and first final note say the same)."""
    if progress is None:
        updates = [d for d in (row["last_progress_on"],) if d is not None]
        finals = [d for d in (row["final_account_on"],) if d is not None]
    else:
        updates = [p["reported_on"] for p in progress]
        finals = [p["reported_on"] for p in progress if p["final"]]
    return disclosure_due(
        started_on=row["committed_on"],
        ended_on=row["ended_on"] if row["status"] in ENDED_STATUSES else None,
        updates=updates,
        final_accounts=finals,
        on=today,
    )


def grant_view(
    row: Mapping[str, Any],
    approvals: Sequence[Mapping[str, Any]],
    tranches: Sequence[Mapping[str, Any]],
    progress: Sequence[Mapping[str, Any]],
    *,
    today: date,
) -> GrantOut:
    """A grant from its read-model rows; what it must publish ``today``."""
    currency = row["currency"]
    return GrantOut(
        id=row["grant_id"],
        fund=row["fund_slug"],
        title=row["title"],
        description=row["description"],
        purpose=row["purpose"] or None,
        grantee=GranteeOut(name=row["grantee_name"], id=row["grantee_id"]),
        status=row["status"],
        amount=money(row["amount_minor"], currency),
        currency=currency,
        committed=money(row["committed_minor"], currency),
        disbursed=money(row["disbursed_minor"], currency),
        released=money(row["released_minor"], currency),
        proposed_on=row["proposed_on"],
        proposed_by=row["proposed_by"],
        closing_reason=row["closing_reason"],
        approvals=[
            ApprovalOut(member=a["member"], note=a["note"], approved_on=a["approved_on"])
            for a in approvals
        ],
        tranches=[
            TrancheOut(
                no=t["tranche_no"],
                amount=money(t["amount_minor"], currency),
                paid_on=t["paid_on"],
                method=t["method"],
                reference=t["reference"],
                evidence_sha256=t["evidence_sha256"],
                reversed=bool(t["reversed"]),
            )
            for t in tranches
        ],
        committed_on=row["committed_on"],
        ended_on=row["ended_on"] if row["status"] in ENDED_STATUSES else None,
        progress=[
            ProgressOut(
                no=p["progress_no"],
                on=p["reported_on"],
                note=p["note"],
                evidence_sha256=list(p["evidence_sha256"]),
                final=bool(p["final"]),
                recorded_by=p["recorded_by"],
            )
            for p in progress
        ],
        disclosure=disclosure_out(disclosure_of_row(row, today, progress)),
    )


def _progress_out(no: int, note: ProgressNote) -> ProgressOut:
    return ProgressOut(
        no=no,
        on=date.fromisoformat(note.reported_on),
        note=note.note,
        evidence_sha256=list(note.evidence_sha256),
        final=note.final,
        recorded_by=note.recorded_by,
    )


def grant_out_from_aggregate(grant: Grant, *, today: date, ended_on: date | None) -> GrantOut:
    """A grant from its aggregate; ``ended_on`` (not in its state: ``LedgerApp.grant_ended_on``)
    the day it was closed or cancelled."""
    currency = grant.currency
    return GrantOut(
        id=str(grant.id),
        fund=grant.fund_slug,
        title=grant.title,
        description=grant.description,
        purpose=grant.purpose or None,
        grantee=GranteeOut(name=grant.grantee_name, id=grant.grantee_id),
        status=grant.status,
        amount=money(grant.amount_minor, currency),
        currency=currency,
        committed=money(grant.committed_minor, currency),
        disbursed=money(grant.disbursed_minor, currency),
        released=money(grant.released_minor, currency),
        proposed_on=date.fromisoformat(grant.proposed_on),
        proposed_by=grant.proposer,
        closing_reason=grant.closing_reason,
        approvals=[
            ApprovalOut(
                member=a["member"], note=a["note"], approved_on=date.fromisoformat(a["approved_on"])
            )
            for a in grant.approvals
        ],
        tranches=[
            TrancheOut(
                no=no,
                amount=money(t.amount_minor, currency),
                paid_on=date.fromisoformat(t.paid_on),
                method=t.method,
                reference=t.reference,
                evidence_sha256=t.evidence_sha256,
                reversed=t.reversed,
            )
            for no, t in enumerate(grant.tranches, start=1)
        ],
        committed_on=_day(grant.committed_on),
        ended_on=ended_on if grant.status in ENDED_STATUSES else None,
        progress=[_progress_out(no, p) for no, p in enumerate(grant.progress, start=1)],
        disclosure=disclosure_out(grant.disclosure(today, ended_on=ended_on)),
    )


def progress_created(grant: Grant, progress_no: int) -> ProgressCreated:
    """The answer to recording a progress note (and to its retries)."""
    out = _progress_out(progress_no, grant.progress_note(progress_no))
    return ProgressCreated(grant_id=str(grant.id), **out.model_dump())


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def disbursement_created(grant: Grant, tranche_no: int) -> DisbursementCreated:
    paid = grant.tranche(tranche_no)
    return DisbursementCreated(
        grant_id=str(grant.id),
        tranche_no=tranche_no,
        amount=money(paid.amount_minor, grant.currency),
        currency=grant.currency,
        paid_on=paid.paid_on,  # type: ignore[arg-type]
        method=paid.method,
        reference=paid.reference,
        evidence_sha256=paid.evidence_sha256,
    )


# -- expenses ----------------------------------------------------------------------------------


def expense_created(
    expense_id: str,
    *,
    fund: str,
    amount_minor: int,
    currency: str,
    category: str,
    paid_on: date | str,
    payee: str,
    description: str,
    purpose: str | None,
) -> ExpenseCreated:
    """Same key, same content: the request is the original's, so is the answer."""
    return ExpenseCreated(
        id=expense_id,
        fund=fund,
        amount=money(amount_minor, currency),
        currency=currency,
        category=category,
        paid_on=paid_on,  # type: ignore[arg-type]
        payee=payee,
        description=description,
        purpose=purpose or None,
    )
