"""Donations: record one, list a fund's (masked for the public, full for auditors), refund,
reverse."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from api.auth import Caller
from api.deps import (
    DEFAULT_LIMIT,
    READER,
    AdminCaller,
    Cursor,
    IdempotencyKey,
    Limit,
    ReaderCaller,
    ServicesDep,
    TreasurerCaller,
)
from api.errors import problem_responses
from api.funds import REPLAYED, SlugPath
from api.money import amount_minor
from api.reads import donation_row, donation_rows
from api.schemas import (
    DonationCreated,
    DonationIn,
    DonationPage,
    DonationReversedOut,
    DonorDetailsOut,
    RefundCreated,
    RefundIn,
    ReversalIn,
)
from api.views import (
    donation_created,
    donation_full_out,
    donation_public_out,
    donation_reversed,
    refund_created,
)
from api.writes import Services, json_response
from ledger.application import DonorIn
from ledger.domain.common import entity_id
from ledger.domain.errors import DonationNotFound
from projections.queries import fund_row

router = APIRouter(tags=["donations"])

DonationIdPath = Annotated[str, Path(max_length=64, description="The donation's id")]


@router.post(
    "/api/funds/{slug}/donations",
    status_code=201,
    response_model=DonationCreated,
    summary="Record a donation",
    responses={**REPLAYED, **problem_responses(400, 401, 403, 404, 409, 413, 422)},
)
async def record_donation(
    caller: TreasurerCaller,
    key: IdempotencyKey,
    slug: SlugPath,
    body: DonationIn,
    services: ServicesDep,
) -> Response:
    # The command runs on the event loop and awaits its group commit (``write_async``):
    # the hottest route, with no worker-thread hand-off.
    currency = services.currency_of(slug)
    minor = amount_minor(body.amount, currency=currency)
    donor = body.donor
    recorded = await services.write_async(
        lambda: services.ledger.record_donation(
            slug=slug,
            key=key,
            amount_minor=minor,
            received_on=body.received_on,
            channel=body.channel,
            purpose=body.purpose,
            donor=DonorIn(
                name=donor.name,
                contact=donor.contact,
                anonymous=donor.anonymous,
                public_name=donor.public_name,
            ),
            external_ref=body.external_ref,
            note=body.note,
            in_kind=body.in_kind.model_dump() if body.in_kind is not None else None,
            actor=caller.name,
        )
    )
    return json_response(
        donation_created(recorded.value), status_code=201 if recorded.created else 200
    )


@router.get(
    "/api/funds/{slug}/donations",
    response_model=DonationPage,
    summary="A fund's donations, newest first",
    description="Without a token (or with a committee token): the public view, donors "
    "masked. Treasurers and admins of this fund (a token limited to other funds sees the "
    "public view): every field but the donor's details; auditors: the donor's decrypted "
    "name and contact too.",
    responses=problem_responses(401, 404, 422),
)
def list_donations(
    caller: ReaderCaller,
    slug: SlugPath,
    services: ServicesDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> DonationPage:
    with services.read() as conn:
        fund = fund_row(conn, slug)
        rows, next_cursor = donation_rows(
            conn, fund["fund_id"], limit=limit, cursor=cursor, cursors=services.cursors
        )
    if caller is None or not _sees_internal_fields(caller, slug):
        return DonationPage(items=[donation_public_out(r) for r in rows], next_cursor=next_cursor)
    items = [
        donation_full_out(r, _donor_details(services, r) if caller.role == "auditor" else None)
        for r in rows
    ]
    return DonationPage(items=list(items), next_cursor=next_cursor)


def _sees_internal_fields(caller: Caller, slug: str) -> bool:
    """Auditors read every fund in full; treasurers and admins only the funds their token
    may act for (elsewhere they see what the public sees)."""
    if caller.role not in READER.elevated:
        return False
    return caller.role == "auditor" or caller.may_act_for(slug)


def _donor_details(services: Services, row: dict[str, object]) -> DonorDetailsOut | None:
    if not row["donor_details_kept"]:
        return None
    personal = services.donor_details(str(row["donation_id"]))
    if personal is None:
        return None
    return DonorDetailsOut(name=personal.name, contact=personal.contact)


def _donation_fund(services: Services, caller: Caller, donation_id: str) -> tuple[str, str]:
    """The donation's fund and currency; the caller must be allowed to write there."""
    try:
        with services.lookup() as conn:
            row = donation_row(conn, donation_id)
        slug, currency = str(row["fund_slug"]), str(row["currency"])
    except DonationNotFound:
        donation = services.ledger.get_donation(donation_id)  # not projected yet, or unknown
        slug, currency = donation.fund_slug, donation.currency
    caller.check_fund(slug)
    return slug, currency


@router.post(
    "/api/donations/{donation_id}/refunds",
    status_code=201,
    response_model=RefundCreated,
    summary="Refund part or all of a donation",
    responses={**REPLAYED, **problem_responses(400, 401, 403, 404, 409, 413, 422)},
)
def refund_donation(
    caller: TreasurerCaller,
    key: IdempotencyKey,
    donation_id: DonationIdPath,
    body: RefundIn,
    services: ServicesDep,
    response: Response,
) -> RefundCreated:
    slug, currency = _donation_fund(services, caller, donation_id)
    minor = amount_minor(body.amount, currency=currency)
    recorded = services.write(
        lambda: services.ledger.refund_donation(
            donation_id=donation_id,
            key=key,
            amount_minor=minor,
            refunded_on=body.refunded_on,
            reason=body.reason,
            actor=caller.name,
        )
    )
    if not recorded.created:
        response.status_code = 200
    donation = recorded.value
    refund_id = str(entity_id(f"{slug}:{donation.id}", "refund", key))
    return refund_created(donation, refund_id=refund_id, reason=body.reason)


@router.post(
    "/api/donations/{donation_id}/reversal",
    response_model=DonationReversedOut,
    summary="Reverse a donation recorded in error (whole; nothing is edited)",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
def reverse_donation(
    caller: TreasurerCaller,
    donation_id: DonationIdPath,
    body: ReversalIn,
    services: ServicesDep,
) -> DonationReversedOut:
    _donation_fund(services, caller, donation_id)
    donation = services.write(
        lambda: services.ledger.reverse_donation(
            donation_id=donation_id,
            reason=body.reason,
            reversed_on=body.reversed_on,
            actor=caller.name,
        )
    )
    with services.lookup() as conn:
        row = donation_row(conn, str(donation.id))
    reversed_on = row["reversed_on"] or body.reversed_on or services.today()
    return donation_reversed(donation, reversed_on=reversed_on, reason=body.reason)


class ErasureOut(BaseModel):
    id: str
    receipt_no: str
    donor_erased: bool


@router.post(
    "/api/donations/{donation_id}/erasure",
    response_model=ErasureOut,
    summary="Erase a donor's name and contact for good (crypto-shredding; admin)",
    description="Deletes the donor's data key and records DonorErased. The event log and its "
    "signed roots stay intact; the name can no longer be decrypted anywhere.",
    responses=problem_responses(401, 403, 404, 413, 422),
)
def erase_donor(
    caller: AdminCaller, donation_id: DonationIdPath, services: ServicesDep
) -> ErasureOut:
    donation = services.write(
        lambda: services.ledger.erase_donor(donation_id=donation_id, actor=caller.name)
    )
    return ErasureOut(
        id=str(donation.id), receipt_no=donation.receipt_no, donor_erased=donation.donor_erased
    )
