"""A fund's books for Beancount and hledger: ``GET /api/funds/{slug}/exports/ledger.beancount``
and ``…/ledger.journal``, streamed. Public without donor details; auditors with them
(docs/interop.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from api.deps import ReaderCaller, ServicesDep
from api.errors import problem_responses
from api.funds import SlugPath
from api.schemas import QueryDate
from api.writes import Services
from projections.exports.ledgerfiles import (
    DonorDetails,
    LedgerLines,
    beancount_lines,
    check_span,
    hledger_lines,
)

router = APIRouter(prefix="/api/funds/{slug}/exports", tags=["reports"])

TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"
LINES_PER_CHUNK = 2000
DateFrom = Annotated[QueryDate | None, Query(alias="from", description="First business day")]
DateTo = Annotated[QueryDate | None, Query(alias="to", description="Last business day")]
RESPONSES = {
    200: {"content": {TEXT_MEDIA_TYPE: {"schema": {"type": "string"}}}, "description": "The file"},
    **problem_responses(401, 404, 422),
}


@router.get(
    "/ledger.beancount",
    response_class=StreamingResponse,
    summary="The fund's books as a Beancount file",
    description="Every money movement a balanced transaction; balance assertions at every "
    "month end. Auditors' files add the donors' details.",
    responses=RESPONSES,
)
async def beancount_file(
    caller: ReaderCaller,
    slug: SlugPath,
    services: ServicesDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> Response:
    return await _file(services, slug, caller, beancount_lines, "beancount", date_from, date_to)


@router.get(
    "/ledger.journal",
    response_class=StreamingResponse,
    summary="The fund's books as an hledger journal",
    description="Every money movement a balanced transaction; balance assertions at every "
    "month end. Auditors' files add the donors' details.",
    responses=RESPONSES,
)
async def hledger_file(
    caller: ReaderCaller,
    slug: SlugPath,
    services: ServicesDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> Response:
    return await _file(services, slug, caller, hledger_lines, "journal", date_from, date_to)


async def _file(
    services: Services,
    slug: str,
    caller: object,
    lines: LedgerLines,
    suffix: str,
    date_from: date | None,
    date_to: date | None,
) -> Response:
    check_span(date_from, date_to)
    auditor = getattr(caller, "role", None) == "auditor"
    details: DonorDetails | None = services.donor_details if auditor else None
    return await services.exports.respond(
        lambda: _chunks(services, slug, lines, date_from, date_to, details),
        media_type=TEXT_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{slug}.{suffix}"'},
    )


def _chunks(
    services: Services,
    slug: str,
    lines: LedgerLines,
    date_from: date | None,
    date_to: date | None,
    details: DonorDetails | None,
) -> Iterator[bytes]:
    with services.read() as conn:
        chunk: list[str] = []
        for line in lines(conn, slug, date_from=date_from, date_to=date_to, donor_details=details):
            chunk.append(line)
            if len(chunk) >= LINES_PER_CHUNK:
                yield ("\n".join(chunk) + "\n").encode("utf-8")
                chunk = []
        yield ("\n".join(chunk) + "\n").encode("utf-8")


__all__ = ["router"]
