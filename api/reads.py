"""Reading the read models for the API: pages of funds, donations and grants, one grant,
the fund of an expense — and the same shapes built from aggregates, so that a write's
answer and a later read look alike.

This is an adapter over ``projections.tables`` for what ``projections.queries`` does not
offer (paged lists, single rows); figures and reports come from ``projections`` itself.
Cursors are opaque to clients: URL-safe base64 of the last row's sort key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from api.errors import InvalidCursor
from api.schemas import (
    ApprovalOut,
    DonationFullOut,
    DonationPublicOut,
    DonorDetailsOut,
    FiguresOut,
    FundFiguresOut,
    FundOut,
    GranteeOut,
    GrantOut,
    PurposeOut,
    TrancheOut,
)
from ledger.domain.errors import DonationNotFound, ExpenseNotFound, GrantNotFound
from ledger.domain.figures import FIGURE_NAMES, UNRESTRICTED, available_of, on_hand_of
from ledger.domain.fund import Fund
from ledger.domain.grant import Grant
from ledger.domain.money import format_amount
from projections.queries import Figures, FundFigures, fund_figures, fund_row, purpose_names
from projections.tables import LIVE

CURSOR_VERSION = "c1"


# -- money and figures -------------------------------------------------------------------------


def money(amount_minor: int, currency: str) -> str:
    return format_amount(int(amount_minor), currency=currency)


def figures_from_minor(figures: Mapping[str, int], currency: str) -> FiguresOut:
    """From an aggregate's figures (``received``, ... in minor units)."""
    values = {name: money(figures[name], currency) for name in FIGURE_NAMES}
    return FiguresOut(
        **values,
        on_hand=money(on_hand_of(dict(figures)), currency),
        available=money(available_of(dict(figures)), currency),
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


# -- cursors -----------------------------------------------------------------------------------


def encode_cursor(*key: Any) -> str:
    raw = json.dumps([CURSOR_VERSION, *key], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *types: type) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidCursor("the cursor is not valid", field="cursor") from None
    if (
        not isinstance(values, list)
        or len(values) != len(types) + 1
        or values[0] != CURSOR_VERSION
        or not all(isinstance(v, t) for v, t in zip(values[1:], types, strict=True))
    ):
        raise InvalidCursor("the cursor is not valid", field="cursor")
    return values[1:]


def _cursor_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidCursor("the cursor is not valid", field="cursor") from None


# -- funds -------------------------------------------------------------------------------------


def fund_out(conn: Connection, slug: str) -> FundOut:
    row = fund_row(conn, slug)
    names = purpose_names(conn, row["fund_id"])
    return FundOut(
        slug=row["slug"],
        name=row["name"],
        currency=row["currency"],
        description=row["description"],
        host=row["host"],
        committee=list(row["committee"]),
        approvals_required=int(row["approvals_required"]),
        purposes=[
            PurposeOut(code=code, name=name)
            for code, name in sorted(names.items())
            if code != UNRESTRICTED
        ],
        closed_periods=sorted(row["closed_periods"]),
        figures=fund_figures_out(fund_figures(conn, slug)),
    )


def fund_out_from_aggregate(fund: Fund) -> FundOut:
    currency = fund.currency
    return FundOut(
        slug=fund.slug,
        name=fund.name,
        currency=currency,
        description=fund.description,
        host=fund.host,
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


def fund_page(
    conn: Connection, *, limit: int, cursor: str | None
) -> tuple[list[FundOut], str | None]:
    after = decode_cursor(cursor, str)
    f = LIVE.funds
    query = select(f.c.slug).order_by(f.c.slug).limit(limit + 1)
    if after is not None:
        query = query.where(f.c.slug > after[0])
    slugs = list(conn.execute(query).scalars())
    more = len(slugs) > limit
    slugs = slugs[:limit]
    items = [fund_out(conn, slug) for slug in slugs]
    return items, encode_cursor(slugs[-1]) if more else None


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


def donation_rows(
    conn: Connection, fund_id: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first: by business date, then receipt number."""
    after = decode_cursor(cursor, str, str)
    d = LIVE.donations
    query = (
        select(d)
        .where(d.c.fund_id == fund_id)
        .order_by(d.c.received_on.desc(), d.c.receipt_no.desc())
        .limit(limit + 1)
    )
    if after is not None:
        day, receipt_no = _cursor_date(after[0]), after[1]
        query = query.where(
            or_(
                d.c.received_on < day,
                and_(d.c.received_on == day, d.c.receipt_no < receipt_no),
            )
        )
    rows = [dict(r) for r in conn.execute(query).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(rows[-1]["received_on"].isoformat(), rows[-1]["receipt_no"]) if more else None
    )
    return rows, next_cursor


def donation_row(conn: Connection, donation_id: str) -> dict[str, Any]:
    d = LIVE.donations
    row = conn.execute(select(d).where(d.c.donation_id == donation_id)).mappings().first()
    if row is None:
        raise DonationNotFound(f"no donation {donation_id}", id=donation_id)
    return dict(row)


# -- grants ------------------------------------------------------------------------------------


def _grant_out(
    row: Mapping[str, Any],
    approvals: Sequence[Mapping[str, Any]],
    tranches: Sequence[Mapping[str, Any]],
) -> GrantOut:
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
    )


def _grants_out(conn: Connection, rows: list[dict[str, Any]]) -> list[GrantOut]:
    if not rows:
        return []
    a, t = LIVE.grant_approvals, LIVE.grant_tranches
    ids = [r["grant_id"] for r in rows]
    approvals: dict[str, list[dict[str, Any]]] = {}
    for ar in conn.execute(
        select(a).where(a.c.grant_id.in_(ids)).order_by(a.c.recorded_at, a.c.member)
    ).mappings():
        approvals.setdefault(ar["grant_id"], []).append(dict(ar))
    tranches: dict[str, list[dict[str, Any]]] = {}
    for tr in conn.execute(
        select(t).where(t.c.grant_id.in_(ids)).order_by(t.c.grant_id, t.c.tranche_no)
    ).mappings():
        tranches.setdefault(tr["grant_id"], []).append(dict(tr))
    return [
        _grant_out(r, approvals.get(r["grant_id"], []), tranches.get(r["grant_id"], []))
        for r in rows
    ]


def grant_row(conn: Connection, grant_id: str) -> dict[str, Any]:
    g = LIVE.grants
    row = conn.execute(select(g).where(g.c.grant_id == grant_id)).mappings().first()
    if row is None:
        raise GrantNotFound(f"no grant {grant_id}", id=grant_id)
    return dict(row)


def grant_out(conn: Connection, grant_id: str) -> GrantOut:
    return _grants_out(conn, [grant_row(conn, grant_id)])[0]


def grant_page(
    conn: Connection, fund_id: str, *, limit: int, cursor: str | None
) -> tuple[list[GrantOut], str | None]:
    """Newest first: by proposal date, then id."""
    after = decode_cursor(cursor, str, str)
    g = LIVE.grants
    query = (
        select(g)
        .where(g.c.fund_id == fund_id)
        .order_by(g.c.proposed_on.desc(), g.c.grant_id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        day, grant_id = _cursor_date(after[0]), after[1]
        query = query.where(
            or_(g.c.proposed_on < day, and_(g.c.proposed_on == day, g.c.grant_id < grant_id))
        )
    rows = [dict(r) for r in conn.execute(query).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(rows[-1]["proposed_on"].isoformat(), rows[-1]["grant_id"]) if more else None
    )
    return _grants_out(conn, rows), next_cursor


def grant_out_from_aggregate(grant: Grant) -> GrantOut:
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
    )


# -- expenses ----------------------------------------------------------------------------------


def expense_row(conn: Connection, expense_id: str) -> dict[str, Any]:
    """The expense with its fund's slug and currency."""
    e, f = LIVE.expenses, LIVE.funds
    row = (
        conn.execute(
            select(e, f.c.slug, f.c.currency)
            .join(f, f.c.fund_id == e.c.fund_id)
            .where(e.c.expense_id == expense_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise ExpenseNotFound(f"no expense {expense_id}", id=expense_id)
    return dict(row)
