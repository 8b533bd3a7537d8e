"""Funds: open one, list them with their figures, add a purpose, record the host's details,
close a month."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from api.deps import (
    DEFAULT_LIMIT,
    AdminCaller,
    Cursor,
    IdempotencyKey,
    Limit,
    PublicCaller,
    ServicesDep,
    TreasurerCaller,
)
from api.errors import problem_responses
from api.reads import fund_out, fund_page
from api.schemas import (
    PERIOD_PATTERN,
    SLUG_PATTERN,
    FundIn,
    FundOut,
    FundPage,
    HostIn,
    PurposeIn,
)
from api.views import fund_out_from_aggregate
from ledger.domain.common import fingerprint

router = APIRouter(prefix="/api/funds", tags=["funds"])

SlugPath = Annotated[str, Path(pattern=SLUG_PATTERN, description="The fund's slug")]
PeriodPath = Annotated[str, Path(pattern=PERIOD_PATTERN, description="A month, YYYY-MM")]

REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"description": "Already done with this Idempotency-Key and content: the original result"}
}


@router.post(
    "",
    status_code=201,
    response_model=FundOut,
    summary="Open a fund",
    responses={**REPLAYED, **problem_responses(400, 401, 403, 409, 413, 422)},
)
def open_fund(
    caller: AdminCaller,
    key: IdempotencyKey,
    body: FundIn,
    services: ServicesDep,
    response: Response,
) -> FundOut:
    caller.check_fund(body.slug)
    # Keys of openings before the FundOpening records were kept in ``api_fund_keys``.
    services.fund_keys.check(key, fingerprint(**body.model_dump(mode="json")))
    recorded = services.write(
        lambda: services.ledger.open_fund(
            slug=body.slug,
            name=body.name,
            currency=body.currency,
            description=body.description,
            host=body.host,
            committee=list(body.committee),
            approvals_required=body.approvals_required,
            purposes=[p.model_dump() for p in body.purposes],
            actor=caller.name,
            key=key,
        )
    )
    if not recorded.created:
        response.status_code = 200
    return fund_out_from_aggregate(services.ledger.get_fund(body.slug))


@router.get(
    "",
    response_model=FundPage,
    summary="Funds with their figures",
    responses=problem_responses(401, 422),
)
def list_funds(
    _: PublicCaller,
    services: ServicesDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> FundPage:
    with services.read() as conn:
        items, next_cursor = fund_page(conn, limit=limit, cursor=cursor, cursors=services.cursors)
    return FundPage(items=items, next_cursor=next_cursor)


@router.get(
    "/{slug}",
    response_model=FundOut,
    summary="A fund with its figures (totals, unrestricted, per purpose)",
    responses=problem_responses(401, 404, 422),
)
def get_fund(_: PublicCaller, slug: SlugPath, services: ServicesDep) -> FundOut:
    with services.read() as conn:
        return fund_out(conn, slug)


@router.post(
    "/{slug}/purposes",
    status_code=201,
    response_model=FundOut,
    summary="Add a restricted purpose",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
def add_purpose(
    caller: AdminCaller, slug: SlugPath, body: PurposeIn, services: ServicesDep
) -> FundOut:
    fund = services.write(
        lambda: services.ledger.add_purpose(
            slug=slug, code=body.code, name=body.name, actor=caller.name
        )
    )
    return fund_out_from_aggregate(services.ledger.get_fund(fund.slug))


@router.put(
    "/{slug}/host",
    response_model=FundOut,
    summary="Record the host charity's name, credit code and public-fundraising status",
    responses=problem_responses(401, 403, 404, 413, 422),
)
def record_host(
    caller: AdminCaller, slug: SlugPath, body: HostIn, services: ServicesDep
) -> FundOut:
    services.write(
        lambda: services.ledger.record_host_details(
            slug=slug,
            name=body.name,
            credit_code=body.credit_code,
            public_fundraising=body.public_fundraising,
            actor=caller.name,
        )
    )
    return fund_out_from_aggregate(services.ledger.get_fund(slug))


@router.post(
    "/{slug}/periods/{period}/close",
    response_model=FundOut,
    summary="Close a month: no entry may be dated in it afterwards",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
def close_period(
    caller: TreasurerCaller, slug: SlugPath, period: PeriodPath, services: ServicesDep
) -> FundOut:
    services.write(
        lambda: services.ledger.close_period(slug=slug, period=period, actor=caller.name)
    )
    return fund_out_from_aggregate(services.ledger.get_fund(slug))
