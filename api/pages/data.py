"""What the public pages show, read from the read models through the API's own queries
(``api.reads``, ``projections.queries``, ``projections.reports``) and serializers
(``api.views``, ``api.reports.report_out``): a page and ``GET /api/...`` show the same
figures because they come from the same functions.

Every query here is bounded (a page size, a month range, an index): a page costs the same on
a fund of ten thousand events and on one of a million.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from api.cursors import CursorSigner
from api.reads import donation_rows, fund_page, grant_out, grant_page, grant_row
from api.reports import report_out
from api.schemas import DonationPublicOut, FundOut, GrantOut, ReportOut
from api.views import donation_public_out, fund_view, money
from ledger.domain.errors import DonationNotFound, GrantNotFound
from projections.queries import FundFigures, fund_figures, fund_row, purpose_names
from projections.reports import SHARE_PLACES, build_report
from projections.tables import LIVE

CHART_MONTHS = 12
RECENT_DONATIONS = 10
FUND_GRANTS_MAX = 12
CORRECTIONS_MAX = 10
RECEIPT_USES_MAX = 20
FUNDS_ON_INDEX_MAX = 50
CORRECTION_KINDS = ("refund", "donation_reversal", "disbursement_reversal", "expense_reversal")
# The caps the rules would set (docs/pages.md): management expenses of a public-fundraising
# foundation (Charity Law art. 61), and the 2025 draft cap on fundraising costs.
ADMINISTRATION_CAP = Decimal("0.10")
FUNDRAISING_CAP = Decimal("0.03")
CAP_THRESHOLD_MINOR = 200_000_00  # caps do not bind below 200,000 CNY a year


@dataclass(frozen=True, slots=True)
class MonthRow:
    month: str  # YYYY-MM
    received: str
    refunded: str
    disbursed: str
    expenses: str
    received_minor: int
    out_minor: int  # refunded + disbursed + expenses


@dataclass(frozen=True, slots=True)
class Correction:
    kind: str
    occurred_on: date
    amount: str
    reference: str  # receipt number, grant id or expense id
    detail: str
    memo: str
    grant_id: str | None  # what it corrects, when it is a grant's tranche


@dataclass(frozen=True, slots=True)
class Spending:
    program: str
    administration: str
    fundraising: str
    administration_share: Decimal | None  # of spending (tranches + expenses)
    fundraising_share: Decimal | None  # of money received
    administration_cap: Decimal = ADMINISTRATION_CAP
    fundraising_cap: Decimal = FUNDRAISING_CAP
    below_threshold: bool = True  # management expenses ever recorded < 200,000 CNY


@dataclass(frozen=True, slots=True)
class FundPageData:
    fund: FundOut
    purpose_names: dict[str, str]
    months: list[MonthRow]
    grants: list[GrantOut]
    donations: list[DonationPublicOut]
    spending: Spending
    corrections: list[Correction]
    extra: dict[str, Any] = field(default_factory=dict)


def _share(part: int, whole: int) -> Decimal | None:
    if whole <= 0:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(SHARE_PLACES, rounding=ROUND_HALF_EVEN)


def fund_and_figures(conn: Connection, slug: str) -> tuple[FundOut, FundFigures, dict[str, str]]:
    """What ``GET /api/funds/{slug}`` answers, and the figures it was made from."""
    row = fund_row(conn, slug)
    names = purpose_names(conn, row["fund_id"])
    figures = fund_figures(conn, slug)
    return fund_view(row, names, figures), figures, names


def funds_index(
    conn: Connection, *, today: date, cursors: CursorSigner
) -> list[tuple[FundOut, list[MonthRow]]]:
    """The funds (what ``GET /api/funds`` answers) with their last twelve months' flows."""
    items, _ = fund_page(conn, limit=FUNDS_ON_INDEX_MAX, cursor=None, cursors=cursors)
    out = []
    for item in items:
        fund_id = fund_row(conn, item.slug)["fund_id"]
        out.append((item, monthly_flows(conn, fund_id, item.currency, today)))
    return out


def last_months(today: date, count: int = CHART_MONTHS) -> list[str]:
    months: list[str] = []
    year, month = today.year, today.month
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def monthly_flows(conn: Connection, fund_id: str, currency: str, today: date) -> list[MonthRow]:
    """The last twelve months (this one included) from the monthly flows read model."""
    months = last_months(today)
    m = LIVE.monthly_flows
    rows = conn.execute(
        select(
            m.c.month,
            func.sum(m.c.in_minor),
            func.sum(m.c.refunded_minor),
            func.sum(m.c.disbursed_minor),
            func.sum(m.c.expenses_minor),
        )
        .where(m.c.fund_id == fund_id, m.c.month >= months[0], m.c.month <= months[-1])
        .group_by(m.c.month)
    )
    sums = {r[0]: [int(v or 0) for v in r[1:]] for r in rows}
    out = []
    for month in months:
        received, refunded, disbursed, expenses = sums.get(month, [0, 0, 0, 0])
        out.append(
            MonthRow(
                month=month,
                received=money(received, currency),
                refunded=money(refunded, currency),
                disbursed=money(disbursed, currency),
                expenses=money(expenses, currency),
                received_minor=received,
                out_minor=refunded + disbursed + expenses,
            )
        )
    return out


def spending(figures: FundFigures) -> Spending:
    t = figures.totals
    cats = t.expenses_by_category_minor
    admin = cats.get("administration", 0)
    raising = cats.get("fundraising", 0)
    cur = figures.currency
    return Spending(
        program=money(cats.get("program", 0), cur),
        administration=money(admin, cur),
        fundraising=money(raising, cur),
        administration_share=_share(admin, t.disbursed_minor + t.expenses_minor),
        fundraising_share=_share(raising, t.received_minor - t.refunded_minor),
        below_threshold=admin < CAP_THRESHOLD_MINOR,
    )


def corrections(conn: Connection, fund_id: str, currency: str) -> list[Correction]:
    """The latest refunds and reversals, newest first (the journal's lines)."""
    j = LIVE.journal
    rows = conn.execute(
        select(j.c.kind, j.c.occurred_on, j.c.amount_minor, j.c.reference, j.c.detail, j.c.memo)
        .where(j.c.fund_id == fund_id, j.c.kind.in_(CORRECTION_KINDS))
        .order_by(j.c.line_no.desc())
        .limit(CORRECTIONS_MAX)
    ).all()
    return [
        Correction(
            kind=kind,
            occurred_on=day,
            amount=money(abs(int(amount)), currency),
            reference=reference,
            detail=detail,
            memo=memo,
            grant_id=reference if kind == "disbursement_reversal" else None,
        )
        for kind, day, amount, reference, detail, memo in rows
    ]


def fund_page_data(
    conn: Connection, slug: str, *, today: date, cursors: CursorSigner
) -> FundPageData:
    fund, figures, names = fund_and_figures(conn, slug)
    grants, _ = grant_page(
        conn, figures.fund_id, limit=FUND_GRANTS_MAX, cursor=None, cursors=cursors, today=today
    )
    rows, _ = donation_rows(
        conn, figures.fund_id, limit=RECENT_DONATIONS, cursor=None, cursors=cursors
    )
    return FundPageData(
        fund=fund,
        purpose_names=names,
        months=monthly_flows(conn, figures.fund_id, figures.currency, today),
        grants=grants,
        donations=[donation_public_out(r) for r in rows],
        spending=spending(figures),
        corrections=corrections(conn, figures.fund_id, figures.currency),
    )


def fund_grant(
    conn: Connection, slug: str, grant_id: str, *, today: date
) -> tuple[FundOut, GrantOut]:
    fund, figures, _ = fund_and_figures(conn, slug)
    row = grant_row(conn, grant_id)
    if row["fund_id"] != figures.fund_id:
        raise GrantNotFound(f"no grant {grant_id} in fund {slug}", id=grant_id)
    return fund, grant_out(conn, grant_id, today=today)


def donations_page(
    conn: Connection, slug: str, *, limit: int, cursor: str | None, cursors: CursorSigner
) -> tuple[FundOut, list[DonationPublicOut], str | None]:
    fund, figures, _ = fund_and_figures(conn, slug)
    rows, next_cursor = donation_rows(
        conn, figures.fund_id, limit=limit, cursor=cursor, cursors=cursors
    )
    return fund, [donation_public_out(r) for r in rows], next_cursor


# -- receipts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Use:
    """Money of the gift's purpose that left the fund on or after the gift's day."""

    kind: str  # "tranche" or "expense"
    day: date
    amount: str
    title: str  # the grant's title or the expense's category
    grantee: str  # the grantee, or the expense's payee
    grant_id: str | None
    reversed: bool


@dataclass(frozen=True, slots=True)
class ReceiptData:
    donation: DonationPublicOut
    fund: FundOut
    purpose_name: str
    uses: list[Use]


def receipt(conn: Connection, receipt_no: str) -> ReceiptData:
    d = LIVE.donations
    row = conn.execute(select(d).where(d.c.receipt_no == receipt_no)).mappings().first()
    if row is None:
        raise DonationNotFound(f"no donation with receipt {receipt_no}", receipt_no=receipt_no)
    donation = donation_public_out(dict(row))
    fund, _, names = fund_and_figures(conn, row["fund_slug"])
    return ReceiptData(
        donation=donation,
        fund=fund,
        purpose_name=names.get(row["purpose"], ""),
        uses=uses_since(conn, row["fund_id"], row["purpose"], row["received_on"], fund.currency),
    )


def uses_since(
    conn: Connection, fund_id: str, purpose: str, since: date, currency: str
) -> list[Use]:
    t, g, e = LIVE.grant_tranches, LIVE.grants, LIVE.expenses
    tranches = conn.execute(
        select(
            t.c.paid_on, t.c.amount_minor, t.c.reversed, g.c.title, g.c.grantee_name, g.c.grant_id
        )
        .join(g, g.c.grant_id == t.c.grant_id)
        .where(t.c.fund_id == fund_id, t.c.paid_on >= since, g.c.purpose == purpose)
        .order_by(t.c.paid_on, t.c.grant_id, t.c.tranche_no)
        .limit(RECEIPT_USES_MAX)
    ).all()
    expenses = conn.execute(
        select(e.c.paid_on, e.c.amount_minor, e.c.reversed, e.c.category, e.c.payee)
        .where(e.c.fund_id == fund_id, e.c.paid_on >= since, e.c.purpose == purpose)
        .order_by(e.c.paid_on, e.c.expense_id)
        .limit(RECEIPT_USES_MAX)
    ).all()
    uses = [
        Use("tranche", day, money(amount, currency), title, grantee, grant_id, bool(rev))
        for day, amount, rev, title, grantee, grant_id in tranches
    ] + [
        Use("expense", day, money(amount, currency), category, payee, None, bool(rev))
        for day, amount, rev, category, payee in expenses
    ]
    return sorted(uses, key=lambda u: u.day)[:RECEIPT_USES_MAX]


# -- reports -----------------------------------------------------------------------------------


def period_bounds(period: str) -> tuple[date, date]:
    """``2026-Q4`` or ``2026-11`` → its first and last day (the caller checked the form)."""
    year = int(period[:4])
    if "Q" in period:
        quarter = int(period[-1])
        first = date(year, 3 * quarter - 2, 1)
        months = 3
    else:
        first = date(year, int(period[5:7]), 1)
        months = 1
    end_month = first.month + months
    next_first = date(year + (end_month > 12), (end_month - 1) % 12 + 1, 1)
    return first, next_first - timedelta(days=1)


def period_report(conn: Connection, slug: str, period: str) -> ReportOut:
    """What ``GET /api/funds/{slug}/report?from=…&to=…`` answers for the period."""
    first, last = period_bounds(period)
    return report_out(build_report(conn, slug, date_from=first, date_to=last))


def donation_by_receipt_in_fund(
    conn: Connection, fund_id: str, receipt_no: str
) -> list[DonationPublicOut]:
    d = LIVE.donations
    row = (
        conn.execute(select(d).where(d.c.receipt_no == receipt_no, d.c.fund_id == fund_id))
        .mappings()
        .first()
    )
    return [] if row is None else [donation_public_out(dict(row))]
