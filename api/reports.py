"""A fund's figures at a date or as known at an instant, its transparency report, and the
CSV exports."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Connection, func, select

from api.deps import PublicCaller, ReaderCaller, ServicesDep
from api.errors import problem_responses
from api.funds import SlugPath
from api.schemas import (
    UNRESTRICTED_REPORT_CODE,
    UNRESTRICTED_REPORT_NAME,
    ApprovalOut,
    BalanceOut,
    FlowsOut,
    MonthOut,
    PurposeReportOut,
    QueryDate,
    QueryInstant,
    ReportGrantOut,
    ReportOut,
    ReportTrancheOut,
)
from api.views import figures_out, fund_figures_out, money
from api.writes import Services
from ledger.domain.figures import UNRESTRICTED
from projections.exports.csv_files import (
    BOM,
    DONATION_COLUMNS_FULL,
    EXPORT_KINDS,
    CsvWriter,
    iter_csv,
)
from projections.exports.ledgerfiles import check_span
from projections.queries import figures_as_of, fund_row
from projections.reports import Flows, TransparencyReport, build_report
from projections.tables import LIVE

router = APIRouter(prefix="/api/funds/{slug}", tags=["reports"])

ExportKind = Literal[EXPORT_KINDS]  # type: ignore[valid-type]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
CSV_ROWS_PER_CHUNK = 1000


@router.get(
    "/balance",
    response_model=BalanceOut,
    summary="The fund's figures as of a business date and/or as known at an instant",
    responses=problem_responses(401, 404, 422),
)
def balance(
    _: PublicCaller,
    slug: SlugPath,
    services: ServicesDep,
    as_of: Annotated[
        QueryDate | None, Query(description="Entries dated up to this day (YYYY-MM-DD)")
    ] = None,
    known_at: Annotated[
        QueryInstant | None,
        Query(description="What the ledger said at this instant (ISO 8601 with offset)"),
    ] = None,
) -> BalanceOut:
    with services.read() as conn:
        figures = figures_as_of(conn, slug, as_of=as_of, known_at=known_at)
    return BalanceOut(
        fund=figures.slug,
        currency=figures.currency,
        as_of=as_of,
        known_at=known_at,
        figures=fund_figures_out(figures),
    )


@router.get(
    "/report",
    response_model=ReportOut,
    summary="The transparency report of a period",
    description="`from` defaults to the fund's first entry, `to` to today.",
    responses=problem_responses(401, 404, 422),
)
def report(
    _: PublicCaller,
    slug: SlugPath,
    services: ServicesDep,
    date_from: Annotated[QueryDate | None, Query(alias="from", description="First day")] = None,
    date_to: Annotated[QueryDate | None, Query(alias="to", description="Last day")] = None,
) -> ReportOut:
    with services.read() as conn:
        fund = fund_row(conn, slug)
        end = date_to or services.today()
        start = date_from or min(_first_day(conn, fund), end)
        built = build_report(conn, slug, date_from=start, date_to=end)
    return report_out(built)


def _first_day(conn: Connection, fund: dict[str, Any]) -> date:
    j = LIVE.journal
    first = conn.execute(
        select(func.min(j.c.occurred_on)).where(j.c.fund_id == fund["fund_id"])
    ).scalar()
    opened: date = fund["opened_at"].date()
    if first is None:
        return opened
    first_day = first if isinstance(first, date) else date.fromisoformat(str(first))
    return min(first_day, opened)


def _flows(f: Flows, currency: str) -> FlowsOut:
    return FlowsOut.model_validate(
        {
            "in": money(f.in_minor, currency),
            "refunded": money(f.refunded_minor, currency),
            "committed": money(f.committed_minor, currency),
            "released": money(f.released_minor, currency),
            "disbursed": money(f.disbursed_minor, currency),
            "expenses": money(f.expenses_minor, currency),
            "spending": money(f.spending_minor, currency),
            "expenses_by_category": {
                c: money(v, currency) for c, v in f.expenses_by_category_minor.items()
            },
        }
    )


def report_out(r: TransparencyReport) -> ReportOut:
    cur = r.currency
    return ReportOut.model_validate(
        dict(
            fund=r.slug,
            name=r.name,
            currency=cur,
            host=r.host,
            description=r.description,
            committee=list(r.committee),
            **{"from": r.date_from, "to": r.date_to},
            opening=fund_figures_out(r.opening),
            closing=fund_figures_out(r.closing),
            flows=_flows(r.flows, cur),
            purposes=[
                PurposeReportOut(
                    code=p.code or UNRESTRICTED_REPORT_CODE,
                    name=p.name or UNRESTRICTED_REPORT_NAME,
                    restricted=p.code != UNRESTRICTED,
                    opening=figures_out(p.opening, cur),
                    closing=figures_out(p.closing, cur),
                    flows=_flows(p.flows, cur),
                )
                for p in r.purposes
            ],
            months=[MonthOut(month=m.month, flows=_flows(m.flows, cur)) for m in r.months],
            grants=[
                ReportGrantOut(
                    id=g.grant_id,
                    title=g.title,
                    grantee=g.grantee_name,
                    purpose=g.purpose or None,
                    status=g.status,
                    amount=money(g.amount_minor, cur),
                    committed=money(g.committed_minor, cur),
                    disbursed=money(g.disbursed_minor, cur),
                    released=money(g.released_minor, cur),
                    proposed_on=g.proposed_on,
                    committed_on=g.committed_on,
                    ended_on=g.ended_on,
                    approvals=[ApprovalOut(**a) for a in g.approvals],
                    tranches=[
                        ReportTrancheOut(
                            no=t.tranche_no,
                            amount=money(t.amount_minor, cur),
                            paid_on=t.paid_on,
                            method=t.method,
                            reference=t.reference,
                            reversed=t.reversed,
                            reversed_on=t.reversed_on,
                            in_period=t.in_period,
                        )
                        for t in g.tranches
                    ],
                )
                for g in r.grants
            ],
            donations_count=r.donations_count,
            administration_share=(
                None if r.administration_share is None else str(r.administration_share)
            ),
            position=r.position,
        )
    )


@router.get(
    "/exports/{kind}.csv",
    response_class=StreamingResponse,
    summary="A CSV export: donations, grants, disbursements, expenses or journal",
    description="UTF-8 with a byte order mark. Auditors' exports add the internal columns, "
    "and for donations the donor's decrypted name and contact.",
    responses={
        200: {"content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}}, "description": "CSV"},
        **problem_responses(401, 404, 422),
    },
)
async def export(
    caller: ReaderCaller,
    slug: SlugPath,
    kind: Annotated[ExportKind, Path(description="What to export")],
    services: ServicesDep,
    date_from: Annotated[QueryDate | None, Query(alias="from")] = None,
    date_to: Annotated[QueryDate | None, Query(alias="to")] = None,
) -> Response:
    check_span(date_from, date_to)
    auditor = caller is not None and caller.role == "auditor"
    if auditor and kind == "donations":

        def build() -> Iterator[bytes]:
            return _donations_with_donors(services, slug, date_from, date_to)
    else:

        def build() -> Iterator[bytes]:
            return _stream(services, slug, kind, auditor, date_from, date_to)

    filename = f"{slug}-{kind}.csv"
    return await services.exports.respond(
        build,
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _stream(
    services: Services,
    slug: str,
    kind: str,
    full: bool,
    date_from: date | None,
    date_to: date | None,
) -> Iterator[bytes]:
    with services.read() as conn:
        yield from iter_csv(conn, slug, kind, full=full, date_from=date_from, date_to=date_to)


def _donations_with_donors(
    services: Services, slug: str, date_from: date | None, date_to: date | None
) -> Iterator[bytes]:
    """The auditors' donations export: every column, and the donor's details decrypted."""
    d = LIVE.donations
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    buffer.write(BOM)
    writer.writerow([name for name, _ in DONATION_COLUMNS_FULL] + ["donor_name", "donor_contact"])
    with services.read() as conn:
        fund = fund_row(conn, slug)
        query = select(d).where(d.c.fund_id == fund["fund_id"])
        if date_from is not None:
            query = query.where(d.c.received_on >= date_from)
        if date_to is not None:
            query = query.where(d.c.received_on <= date_to)
        rows = conn.execute(query.order_by(d.c.received_on, d.c.receipt_no)).mappings()
        for i, row in enumerate(rows):
            name, contact = _donor(services, row)
            writer.writerow([get(dict(row)) for _, get in DONATION_COLUMNS_FULL] + [name, contact])
            if i % CSV_ROWS_PER_CHUNK == CSV_ROWS_PER_CHUNK - 1:
                yield buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _donor(services: Services, row: Any) -> tuple[str, str]:
    personal = services.donor_details(row["donation_id"]) if row["donor_details_kept"] else None
    if personal is None:
        return "", ""
    return personal.name or "", personal.contact or ""
