"""Grants: propose, approve, reject, cancel, close; pay tranches and reverse them; record
progress notes; read (with what each grant must publish: its disclosure)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api.auth import Caller
from api.deps import (
    DEFAULT_LIMIT,
    CloserCaller,
    CommitteeCaller,
    Cursor,
    IdempotencyKey,
    Limit,
    ProposerCaller,
    PublicCaller,
    ReporterCaller,
    ServicesDep,
    TreasurerCaller,
)
from api.errors import problem_responses
from api.funds import REPLAYED, SlugPath
from api.money import amount_minor
from api.reads import grant_out, grant_page, grant_row
from api.schemas import (
    ApprovalIn,
    DisbursementCreated,
    DisbursementIn,
    GrantIn,
    GrantOut,
    GrantPage,
    ProgressCreated,
    ProgressIn,
    ReasonIn,
    ReversalIn,
)
from api.tokens import COMMITTEE
from api.views import disbursement_created, grant_out_from_aggregate, progress_created
from api.writes import Services
from ledger.domain.disclosure import DISCLOSURE_STATUSES
from ledger.domain.errors import GrantNotFound
from ledger.domain.grant import TRANCHES_MAX
from projections.queries import fund_row

router = APIRouter(tags=["grants"])

GrantIdPath = Annotated[str, Path(max_length=64, description="The grant's id")]
TrancheNoPath = Annotated[int, Path(ge=1, le=TRANCHES_MAX, description="The tranche's number")]
ENDING = problem_responses(401, 403, 404, 409, 413, 422)
DisclosureQuery = Annotated[
    str | None,
    Query(
        pattern="^(" + "|".join(DISCLOSURE_STATUSES) + ")$",
        description="Only grants whose disclosure is this today (overdue: what the fund has "
        "not published in time)",
    ),
]


def _grant_fund(services: Services, caller: Caller, grant_id: str) -> tuple[str, str]:
    """The grant's fund and currency; the caller must be allowed to write there."""
    try:
        with services.lookup() as conn:
            row = grant_row(conn, grant_id)
        slug, currency = str(row["fund_slug"]), str(row["currency"])
    except GrantNotFound:
        grant = services.ledger.get_grant(grant_id)  # not projected yet, or unknown
        slug, currency = grant.fund_slug, grant.currency
    caller.check_fund(slug)
    return slug, currency


def _current(services: Services, grant_id: str) -> GrantOut:
    ledger = services.ledger
    grant = ledger.get_grant(grant_id)
    return grant_out_from_aggregate(
        grant, today=ledger.today(), ended_on=ledger.grant_ended_on(grant)
    )


@router.post(
    "/api/funds/{slug}/grants",
    status_code=201,
    response_model=GrantOut,
    summary="Propose a grant",
    responses={**REPLAYED, **problem_responses(400, 401, 403, 404, 409, 413, 422)},
)
def propose_grant(
    caller: ProposerCaller,
    key: IdempotencyKey,
    slug: SlugPath,
    body: GrantIn,
    services: ServicesDep,
    response: Response,
) -> GrantOut:
    minor = amount_minor(body.amount, currency=services.currency_of(slug))
    recorded = services.write(
        lambda: services.ledger.propose_grant(
            slug=slug,
            key=key,
            title=body.title,
            description=body.description,
            purpose=body.purpose,
            grantee_name=body.grantee.name,
            grantee_id=body.grantee.id,
            amount_minor=minor,
            actor=caller.name,
            as_member=caller.as_member,
        )
    )
    if not recorded.created:
        response.status_code = 200
    return _current(services, str(recorded.value.id))


@router.get(
    "/api/funds/{slug}/grants",
    response_model=GrantPage,
    summary="A fund's grants with approvals, tranches, progress and disclosure, newest first",
    responses=problem_responses(401, 404, 422),
)
def list_grants(
    _: PublicCaller,
    slug: SlugPath,
    services: ServicesDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    disclosure: DisclosureQuery = None,
) -> GrantPage:
    with services.read() as conn:
        fund = fund_row(conn, slug)
        items, next_cursor = grant_page(
            conn,
            fund["fund_id"],
            limit=limit,
            cursor=cursor,
            cursors=services.cursors,
            today=services.ledger.today(),
            disclosure=disclosure,
        )
    return GrantPage(items=items, next_cursor=next_cursor)


@router.get(
    "/api/grants/{grant_id}",
    response_model=GrantOut,
    summary="A grant with its approvals, tranches, progress notes and disclosure",
    responses=problem_responses(401, 404, 422),
)
def get_grant(_: PublicCaller, grant_id: GrantIdPath, services: ServicesDep) -> GrantOut:
    with services.read() as conn:
        return grant_out(conn, grant_id, today=services.ledger.today())


@router.post(
    "/api/grants/{grant_id}/approvals",
    response_model=GrantOut,
    summary="Approve as a committee member (commits the grant at approvals_required)",
    responses=ENDING,
)
def approve_grant(
    caller: CommitteeCaller, grant_id: GrantIdPath, body: ApprovalIn, services: ServicesDep
) -> GrantOut:
    _grant_fund(services, caller, grant_id)
    services.write(
        lambda: services.ledger.approve_grant(grant_id=grant_id, note=body.note, actor=caller.name)
    )
    return _current(services, grant_id)


@router.post(
    "/api/grants/{grant_id}/rejection",
    response_model=GrantOut,
    summary="Reject a proposed grant",
    responses=ENDING,
)
def reject_grant(
    caller: CommitteeCaller, grant_id: GrantIdPath, body: ReasonIn, services: ServicesDep
) -> GrantOut:
    _grant_fund(services, caller, grant_id)
    services.write(
        lambda: services.ledger.reject_grant(
            grant_id=grant_id, reason=body.reason, actor=caller.name
        )
    )
    return _current(services, grant_id)


@router.post(
    "/api/grants/{grant_id}/cancellation",
    response_model=GrantOut,
    summary="Cancel a committed grant (what was not paid returns to the fund)",
    responses=ENDING,
)
def cancel_grant(
    caller: CommitteeCaller, grant_id: GrantIdPath, body: ReasonIn, services: ServicesDep
) -> GrantOut:
    _grant_fund(services, caller, grant_id)
    services.write(
        lambda: services.ledger.cancel_grant(
            grant_id=grant_id, reason=body.reason, actor=caller.name
        )
    )
    return _current(services, grant_id)


@router.post(
    "/api/grants/{grant_id}/closure",
    response_model=GrantOut,
    summary="Close a committed grant (the unspent amount returns to the fund)",
    responses=ENDING,
)
def close_grant(
    caller: CloserCaller, grant_id: GrantIdPath, body: ReasonIn, services: ServicesDep
) -> GrantOut:
    _grant_fund(services, caller, grant_id)
    services.write(
        lambda: services.ledger.close_grant(
            grant_id=grant_id, reason=body.reason, actor=caller.name, as_member=caller.as_member
        )
    )
    return _current(services, grant_id)


@router.post(
    "/api/grants/{grant_id}/disbursements",
    status_code=201,
    response_model=DisbursementCreated,
    summary="Pay a tranche of a committed grant",
    responses={**REPLAYED, **problem_responses(400, 401, 403, 404, 409, 413, 422)},
)
def disburse(
    caller: TreasurerCaller,
    key: IdempotencyKey,
    grant_id: GrantIdPath,
    body: DisbursementIn,
    services: ServicesDep,
    response: Response,
) -> DisbursementCreated:
    _slug, currency = _grant_fund(services, caller, grant_id)
    minor = amount_minor(body.amount, currency=currency)
    recorded = services.write(
        lambda: services.ledger.disburse(
            grant_id=grant_id,
            key=key,
            amount_minor=minor,
            paid_on=body.paid_on,
            method=body.method,
            reference=body.reference,
            evidence_sha256=body.evidence_sha256,
            actor=caller.name,
        )
    )
    if not recorded.created:
        response.status_code = 200
    tranche = recorded.value
    return disbursement_created(tranche.grant, tranche.tranche_no)


@router.post(
    "/api/grants/{grant_id}/disbursements/{tranche_no}/reversal",
    response_model=GrantOut,
    summary="Reverse a tranche that came back (a bounced payment)",
    responses=ENDING,
)
def reverse_disbursement(
    caller: TreasurerCaller,
    grant_id: GrantIdPath,
    tranche_no: TrancheNoPath,
    body: ReversalIn,
    services: ServicesDep,
) -> GrantOut:
    _grant_fund(services, caller, grant_id)
    services.write(
        lambda: services.ledger.reverse_disbursement(
            grant_id=grant_id,
            tranche_no=tranche_no,
            reason=body.reason,
            reversed_on=body.reversed_on,
            actor=caller.name,
        )
    )
    return _current(services, grant_id)


@router.post(
    "/api/grants/{grant_id}/progress",
    status_code=201,
    response_model=ProgressCreated,
    summary="Record a dated progress note (final: the final account of an ended grant)",
    responses={**REPLAYED, **problem_responses(400, 401, 403, 404, 409, 413, 422)},
)
def record_progress(
    caller: ReporterCaller,
    key: IdempotencyKey,
    grant_id: GrantIdPath,
    body: ProgressIn,
    services: ServicesDep,
    response: Response,
) -> ProgressCreated:
    _grant_fund(services, caller, grant_id)
    recorded = services.write(
        lambda: services.ledger.record_progress(
            grant_id=grant_id,
            key=key,
            reported_on=body.on,
            note=body.note,
            evidence_sha256=list(body.evidence_sha256),
            final=body.final,
            actor=caller.name,
            as_committee_member=caller.role == COMMITTEE,
        )
    )
    if not recorded.created:
        response.status_code = 200
    progress = recorded.value
    return progress_created(progress.grant, progress.progress_no)
