"""Reading the read models for the API and the command line: pages of funds, donations and
grants, one fund, one grant, the fund of an expense. ``api.views`` turns the rows into what
is shown.

This is an adapter over ``projections.tables`` for what ``projections.queries`` does not
offer (paged lists, single rows); figures and reports come from ``projections`` itself.
Cursors are opaque to clients: the last row's sort key, signed for its list and fund
(``api.cursors``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from api.cursors import CursorSigner
from api.errors import InvalidCursor
from api.schemas import FundOut, GrantOut
from api.views import disclosure_of_row, fund_view, grant_view
from ledger.domain.disclosure import NOT_STARTED, OVERDUE
from ledger.domain.errors import DonationNotFound, ExpenseNotFound, GrantNotFound
from ledger.domain.grant import COMMITTED, ENDED_STATUSES
from projections.queries import fund_figures, fund_row, purpose_names
from projections.tables import LIVE

# -- cursors (signed and bound to their list and fund: api.cursors) -----------------------------


def _cursor_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidCursor("the cursor is not valid", field="cursor") from None


# -- funds -------------------------------------------------------------------------------------


def fund_out(conn: Connection, slug: str) -> FundOut:
    row = fund_row(conn, slug)
    return fund_view(row, purpose_names(conn, row["fund_id"]), fund_figures(conn, slug))


def fund_page(
    conn: Connection, *, limit: int, cursor: str | None, cursors: CursorSigner
) -> tuple[list[FundOut], str | None]:
    after = cursors.decode(cursor, "funds", "", str)
    f = LIVE.funds
    query = select(f.c.slug).order_by(f.c.slug).limit(limit + 1)
    if after:
        query = query.where(f.c.slug > after[0])
    slugs = list(conn.execute(query).scalars())
    more = len(slugs) > limit
    slugs = slugs[:limit]
    items = [fund_out(conn, slug) for slug in slugs]
    return items, cursors.encode("funds", "", slugs[-1]) if more else None


# -- donations ---------------------------------------------------------------------------------


def donation_rows(
    conn: Connection, fund_id: str, *, limit: int, cursor: str | None, cursors: CursorSigner
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first: by business date, then receipt number."""
    after = cursors.decode(cursor, "donations", fund_id, str, str)
    d = LIVE.donations
    query = (
        select(d)
        .where(d.c.fund_id == fund_id)
        .order_by(d.c.received_on.desc(), d.c.receipt_no.desc())
        .limit(limit + 1)
    )
    if after:
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
        cursors.encode(
            "donations", fund_id, rows[-1]["received_on"].isoformat(), rows[-1]["receipt_no"]
        )
        if more
        else None
    )
    return rows, next_cursor


def donation_row(conn: Connection, donation_id: str) -> dict[str, Any]:
    d = LIVE.donations
    row = conn.execute(select(d).where(d.c.donation_id == donation_id)).mappings().first()
    if row is None:
        raise DonationNotFound(f"no donation {donation_id}", id=donation_id)
    return dict(row)


# -- grants ------------------------------------------------------------------------------------


def _grants_out(conn: Connection, rows: list[dict[str, Any]], *, today: date) -> list[GrantOut]:
    if not rows:
        return []
    a, t, p = LIVE.grant_approvals, LIVE.grant_tranches, LIVE.grant_progress
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
    progress: dict[str, list[dict[str, Any]]] = {}
    for pr in conn.execute(
        select(p).where(p.c.grant_id.in_(ids)).order_by(p.c.grant_id, p.c.progress_no)
    ).mappings():
        progress.setdefault(pr["grant_id"], []).append(dict(pr))
    return [
        grant_view(
            r,
            approvals.get(r["grant_id"], []),
            tranches.get(r["grant_id"], []),
            progress.get(r["grant_id"], []),
            today=today,
        )
        for r in rows
    ]


def grant_row(conn: Connection, grant_id: str) -> dict[str, Any]:
    g = LIVE.grants
    row = conn.execute(select(g).where(g.c.grant_id == grant_id)).mappings().first()
    if row is None:
        raise GrantNotFound(f"no grant {grant_id}", id=grant_id)
    return dict(row)


def grant_out(conn: Connection, grant_id: str, *, today: date) -> GrantOut:
    return _grants_out(conn, [grant_row(conn, grant_id)], today=today)[0]


def grant_page(
    conn: Connection,
    fund_id: str,
    *,
    limit: int,
    cursor: str | None,
    cursors: CursorSigner,
    today: date,
    disclosure: str | None = None,
) -> tuple[list[GrantOut], str | None]:
    """Newest first: by proposal date, then id. ``disclosure``: only the grants whose
    disclosure status is that today (``overdue``: what the fund has failed to publish)."""
    after = cursors.decode(cursor, "grants", fund_id, str, str)
    g = LIVE.grants
    query = (
        select(g)
        .where(g.c.fund_id == fund_id)
        .order_by(g.c.proposed_on.desc(), g.c.grant_id.desc())
    )
    if after:
        day, grant_id = _cursor_date(after[0]), after[1]
        query = query.where(
            or_(g.c.proposed_on < day, and_(g.c.proposed_on == day, g.c.grant_id < grant_id))
        )
    if disclosure is None:
        rows = [dict(r) for r in conn.execute(query.limit(limit + 1)).mappings()]
    else:
        rows = _with_disclosure(conn, query, disclosure, today=today, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        cursors.encode("grants", fund_id, rows[-1]["proposed_on"].isoformat(), rows[-1]["grant_id"])
        if more
        else None
    )
    return _grants_out(conn, rows, today=today), next_cursor


# No deadline of the disclosure rule is nearer than this after the day it counts from
# (three calendar months are at least 89 days): an overdue grant's dates are older.
_OVERDUE_AFTER_DAYS_MIN = 89


def _with_disclosure(
    conn: Connection, query: Any, status: str, *, today: date, limit: int
) -> list[dict[str, Any]]:
    """The first ``limit`` rows of ``query`` whose disclosure status is ``status`` today:
    the database narrows the rows down, the domain's rule decides."""
    g = LIVE.grants
    if status == NOT_STARTED:
        query = query.where(g.c.committed_on.is_(None))
    else:
        query = query.where(g.c.committed_on.is_not(None))
    if status == OVERDUE:
        cutoff = today - timedelta(days=_OVERDUE_AFTER_DAYS_MIN)
        running = and_(
            g.c.status == COMMITTED,
            g.c.committed_on < cutoff,
            or_(g.c.last_progress_on.is_(None), g.c.last_progress_on < cutoff),
        )
        ended = and_(
            g.c.status.in_(ENDED_STATUSES), g.c.final_account_on.is_(None), g.c.ended_on < cutoff
        )
        query = query.where(or_(running, ended))
    out: list[dict[str, Any]] = []
    for found in conn.execute(query).mappings():
        row = dict(found)
        if disclosure_of_row(row, today).status == status:
            out.append(row)
            if len(out) >= limit:
                break
    return out


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
