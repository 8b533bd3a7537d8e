"""The CSV exports of a fund: ``donations``, ``grants``, ``disbursements``, ``expenses`` or
``journal``.

``export_csv(conn, slug, kind)`` writes UTF-8 with a byte order mark (so spreadsheet
programs read the Chinese text right), amounts as decimal strings. The public export of
donations shows the donor's public name only; ``full=True`` (auditors) adds the internal
columns. ``iter_csv`` gives the same in chunks, for streaming.

Every cell goes through ``csv_cell`` (``CsvWriter``): a text cell that a spreadsheet would
run as a formula (it starts with ``= + - @``, a tab or a carriage return) gets a leading
single quote, as OWASP recommends; amounts, which we format ourselves as plain decimal
strings ("-5.00"), stay numbers a spreadsheet can sum.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select

from ledger.domain.errors import InvalidField
from ledger.domain.money import format_amount
from projections.queries import fund_row
from projections.tables import LIVE

BOM = "\ufeff"
# Formula injection (OWASP "CSV Injection"): a spreadsheet runs a cell that starts with one
# of these as a formula. Such a text cell is written with a leading single quote, which the
# spreadsheet shows as text. A plain decimal number ("-5.00", an amount we formatted) is left
# as it is: it cannot be a formula, and an accountant must be able to sum it.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER_RE = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?$")
EXPORT_KINDS = ("donations", "grants", "disbursements", "expenses", "journal")


Column = tuple[str, Callable[[dict[str, Any]], Any]]


def _money(column: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: format_amount(int(row[column]), currency=row["currency"])


def _text(column: str) -> Callable[[dict[str, Any]], Any]:
    def get(row: dict[str, Any]) -> Any:
        value = row[column]
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, datetime | date):
            return value.isoformat()
        return value

    return get


DONATION_COLUMNS: list[Column] = [
    ("receipt_no", _text("receipt_no")),
    ("received_on", _text("received_on")),
    ("amount", _money("amount_minor")),
    ("currency", _text("currency")),
    ("channel", _text("channel")),
    ("purpose", _text("purpose")),
    ("donor", _text("donor_public_name")),
    ("in_kind_description", _text("in_kind_description")),
    ("refunded", _money("refunded_minor")),
    ("reversed", _money("reversed_minor")),
    ("status", _text("status")),
]
DONATION_COLUMNS_FULL: list[Column] = [
    *DONATION_COLUMNS,
    ("donation_id", _text("donation_id")),
    ("donor_id", _text("donor_id")),
    ("donor_anonymous", _text("donor_anonymous")),
    ("donor_details_kept", _text("donor_details_kept")),
    ("donor_erased", _text("donor_erased")),
    ("external_ref", _text("external_ref")),
    ("note", _text("note")),
    ("in_kind_valuation_basis", _text("in_kind_valuation_basis")),
    ("reversed_on", _text("reversed_on")),
    ("reversal_reason", _text("reversal_reason")),
    ("recorded_at", _text("recorded_at")),
    ("recorded_by", _text("recorded_by")),
]
GRANT_COLUMNS: list[Column] = [
    ("grant_id", _text("grant_id")),
    ("title", _text("title")),
    ("grantee", _text("grantee_name")),
    ("purpose", _text("purpose")),
    ("status", _text("status")),
    ("amount", _money("amount_minor")),
    ("committed", _money("committed_minor")),
    ("disbursed", _money("disbursed_minor")),
    ("released", _money("released_minor")),
    ("currency", _text("currency")),
    ("proposed_on", _text("proposed_on")),
    ("committed_on", _text("committed_on")),
    ("ended_on", _text("ended_on")),
    ("closing_reason", _text("closing_reason")),
    ("approvals", _text("approvals")),
]
GRANT_COLUMNS_FULL: list[Column] = [
    *GRANT_COLUMNS,
    ("grantee_id", _text("grantee_id")),
    ("proposed_by", _text("proposed_by")),
    ("description", _text("description")),
]
DISBURSEMENT_COLUMNS: list[Column] = [
    ("grant_id", _text("grant_id")),
    ("grant_title", _text("title")),
    ("grantee", _text("grantee_name")),
    ("tranche_no", _text("tranche_no")),
    ("paid_on", _text("paid_on")),
    ("amount", _money("amount_minor")),
    ("currency", _text("currency")),
    ("method", _text("method")),
    ("reference", _text("reference")),
    ("evidence_sha256", _text("evidence_sha256")),
    ("reversed", _text("reversed")),
    ("reversed_on", _text("reversed_on")),
    ("reversal_reason", _text("reversal_reason")),
]
EXPENSE_COLUMNS: list[Column] = [
    ("expense_id", _text("expense_id")),
    ("paid_on", _text("paid_on")),
    ("amount", _money("amount_minor")),
    ("currency", _text("currency")),
    ("category", _text("category")),
    ("purpose", _text("purpose")),
    ("payee", _text("payee")),
    ("description", _text("description")),
    ("reversed", _text("reversed")),
    ("reversed_on", _text("reversed_on")),
    ("reversal_reason", _text("reversal_reason")),
]
JOURNAL_COLUMNS: list[Column] = [
    ("line_no", _text("line_no")),
    ("occurred_on", _text("occurred_on")),
    ("recorded_at", _text("recorded_at")),
    ("kind", _text("kind")),
    ("reference", _text("reference")),
    ("detail", _text("detail")),
    ("purpose", _text("purpose")),
    ("category", _text("category")),
    ("figure", _text("figure")),
    ("figure_change", _money("figure_delta_minor")),
    ("amount", _money("amount_minor")),
    ("balance", _money("balance_minor")),
    ("available", _money("available_minor")),
    ("currency", _text("currency")),
    ("memo", _text("memo")),
    ("notification_id", _text("notification_id")),
]


def _rows(
    conn: Connection,
    kind: str,
    fund: dict[str, Any],
    date_from: date | None,
    date_to: date | None,
) -> Iterator[dict[str, Any]]:
    fund_id, currency = fund["fund_id"], fund["currency"]

    def within(column: Any) -> list[Any]:
        conditions = []
        if date_from is not None:
            conditions.append(column >= date_from)
        if date_to is not None:
            conditions.append(column <= date_to)
        return conditions

    if kind == "donations":
        d = LIVE.donations
        query = (
            select(d)
            .where(d.c.fund_id == fund_id, *within(d.c.received_on))
            .order_by(d.c.received_on, d.c.receipt_no)
        )
    elif kind == "grants":
        g = LIVE.grants
        query = (
            select(g)
            .where(g.c.fund_id == fund_id, *within(g.c.proposed_on))
            .order_by(g.c.proposed_on, g.c.grant_id)
        )
    elif kind == "disbursements":
        t, g = LIVE.grant_tranches, LIVE.grants
        query = (
            select(t, g.c.title, g.c.grantee_name, g.c.currency)
            .join(g, g.c.grant_id == t.c.grant_id)
            .where(t.c.fund_id == fund_id, *within(t.c.paid_on))
            .order_by(t.c.paid_on, t.c.grant_id, t.c.tranche_no)
        )
    elif kind == "expenses":
        e = LIVE.expenses
        query = (
            select(e)
            .where(e.c.fund_id == fund_id, *within(e.c.paid_on))
            .order_by(e.c.paid_on, e.c.recorded_at, e.c.expense_id)
        )
    elif kind == "journal":
        j = LIVE.journal
        query = (
            select(j).where(j.c.fund_id == fund_id, *within(j.c.occurred_on)).order_by(j.c.line_no)
        )
    else:
        raise InvalidField(f"no export {kind!r} (one of {', '.join(EXPORT_KINDS)})", field="kind")
    approvals = _approvals(conn, fund_id) if kind == "grants" else {}
    for row in conn.execute(query.execution_options(yield_per=1000)).mappings():
        out = dict(row)
        out.setdefault("currency", currency)
        if kind == "grants":
            out["approvals"] = "; ".join(approvals.get(out["grant_id"], []))
        yield out


def _approvals(conn: Connection, fund_id: str) -> dict[str, list[str]]:
    a, g = LIVE.grant_approvals, LIVE.grants
    out: dict[str, list[str]] = {}
    rows = conn.execute(
        select(a.c.grant_id, a.c.member, a.c.approved_on)
        .join(g, g.c.grant_id == a.c.grant_id)
        .where(g.c.fund_id == fund_id)
        .order_by(a.c.grant_id, a.c.recorded_at)
    )
    for grant_id, member, approved_on in rows:
        out.setdefault(grant_id, []).append(f"{member} {approved_on.isoformat()}")
    return out


def _columns(kind: str, full: bool) -> list[Column]:
    if kind == "donations":
        return DONATION_COLUMNS_FULL if full else DONATION_COLUMNS
    if kind == "grants":
        return GRANT_COLUMNS_FULL if full else GRANT_COLUMNS
    return {
        "disbursements": DISBURSEMENT_COLUMNS,
        "expenses": EXPENSE_COLUMNS,
        "journal": JOURNAL_COLUMNS,
    }[kind]


def csv_cell(value: Any) -> Any:
    """A cell as a spreadsheet may open it safely: text that a spreadsheet would run as a
    formula gets a leading ``'``; numbers and plain decimal strings stay as they are."""
    if (
        isinstance(value, str)
        and value.startswith(CSV_FORMULA_STARTS)
        and not _PLAIN_NUMBER_RE.match(value)
    ):
        return "'" + value
    return value


class CsvWriter:
    """``csv.writer`` whose every cell goes through ``csv_cell``: every CSV of the ledger
    (the exports over HTTP and the command line) is written with it."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._writer = csv.writer(buffer, lineterminator="\r\n")

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow([csv_cell(value) for value in row])


def iter_csv(
    conn: Connection,
    slug: str,
    kind: str,
    *,
    full: bool = False,
    date_from: date | None = None,
    date_to: date | None = None,
) -> Iterator[bytes]:
    """The export as UTF-8 chunks, the first starting with the byte order mark."""
    if kind not in EXPORT_KINDS:
        raise InvalidField(f"no export {kind!r} (one of {', '.join(EXPORT_KINDS)})", field="kind")
    fund = fund_row(conn, slug)
    columns = _columns(kind, full)
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    buffer.write(BOM)
    writer.writerow([name for name, _ in columns])
    for i, row in enumerate(_rows(conn, kind, fund, date_from, date_to)):
        writer.writerow([get(row) for _, get in columns])
        if i % 1000 == 999:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def export_csv(
    conn: Connection,
    slug: str,
    kind: str,
    *,
    full: bool = False,
    date_from: date | None = None,
    date_to: date | None = None,
) -> bytes:
    return b"".join(iter_csv(conn, slug, kind, full=full, date_from=date_from, date_to=date_to))
