"""The transparency report of a fund for a period, and the CSV exports.

``build_report(conn, slug, date_from=..., date_to=...)`` returns plain data (dataclasses;
``as_dict()`` for JSON): the fund, its figures at the start and the end of the period, the
period's flows in total, per purpose and per month, the grants with their approvals and
tranches, expenses by category and the administration share of spending. Every amount is
``int`` minor units; the edges format them.

Spending is what left the fund for its work in the period: grant tranches paid (net of
reversals) plus expenses of every category (net of reversals). The administration share is
administration expenses over spending, a ``Decimal`` rounded half-even to 4 places
(``None`` when nothing was spent).

``export_csv(conn, slug, kind)`` writes ``donations``, ``grants``, ``disbursements``,
``expenses`` or ``journal`` as UTF-8 with a byte order mark (so spreadsheet programs read
the Chinese text right), amounts as decimal strings. The public export of donations shows
the donor's public name only; ``full=True`` (auditors) adds the internal columns.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from ledger.domain.errors import InvalidField
from ledger.domain.figures import EXPENSE_CATEGORIES, FIGURE_NAMES, UNRESTRICTED
from ledger.domain.money import format_amount
from projections.queries import Figures, FundFigures, figures_as_of, fund_row, purpose_names
from projections.tables import FLOW_NAME_OF, LIVE
from projections.tracking import projection_state

BOM = "\ufeff"
# Formula injection (OWASP "CSV Injection"): a spreadsheet runs a cell that starts with one
# of these as a formula. Such a text cell is written with a leading single quote, which the
# spreadsheet shows as text. A plain decimal number ("-5.00", an amount we formatted) is left
# as it is: it cannot be a formula, and an accountant must be able to sum it.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER_RE = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?$")
EXPORT_KINDS = ("donations", "grants", "disbursements", "expenses", "journal")
SHARE_PLACES = Decimal("0.0001")
FLOW_NAMES = tuple(FLOW_NAME_OF[name] for name in FIGURE_NAMES)


@dataclass(frozen=True, slots=True)
class Flows:
    """Money that moved in a span of business days (minor units, net of corrections)."""

    in_minor: int = 0
    refunded_minor: int = 0
    committed_minor: int = 0
    released_minor: int = 0
    disbursed_minor: int = 0
    expenses_minor: int = 0
    expenses_by_category_minor: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(EXPENSE_CATEGORIES, 0)
    )

    @property
    def spending_minor(self) -> int:
        return self.disbursed_minor + self.expenses_minor

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["spending_minor"] = self.spending_minor
        return out


class _FlowSum:
    def __init__(self) -> None:
        self.values = dict.fromkeys(FLOW_NAMES, 0)
        self.categories = dict.fromkeys(EXPENSE_CATEGORIES, 0)

    def add(self, figure: str, category: str, amount: int) -> None:
        self.values[FLOW_NAME_OF[figure]] += amount
        if figure == "expenses":
            self.categories[category] = self.categories.get(category, 0) + amount

    def freeze(self) -> Flows:
        return Flows(
            **{f"{n}_minor": v for n, v in self.values.items()},
            expenses_by_category_minor=dict(self.categories),
        )


@dataclass(frozen=True, slots=True)
class MonthFlows:
    month: str  # YYYY-MM
    flows: Flows


@dataclass(frozen=True, slots=True)
class PurposeReport:
    code: str  # "" for unrestricted money
    name: str
    opening: Figures
    closing: Figures
    flows: Flows


@dataclass(frozen=True, slots=True)
class TrancheReport:
    tranche_no: int
    amount_minor: int
    paid_on: date
    method: str
    reference: str
    reversed: bool
    reversed_on: date | None
    in_period: bool


@dataclass(frozen=True, slots=True)
class GrantReport:
    grant_id: str
    title: str
    grantee_name: str
    purpose: str
    status: str
    amount_minor: int
    committed_minor: int
    disbursed_minor: int
    released_minor: int
    proposed_on: date
    committed_on: date | None
    ended_on: date | None
    approvals: list[dict[str, Any]]
    tranches: list[TrancheReport]


@dataclass(frozen=True, slots=True)
class TransparencyReport:
    slug: str
    name: str
    currency: str
    host: str
    description: str
    committee: list[str]
    date_from: date
    date_to: date
    opening: FundFigures
    closing: FundFigures
    flows: Flows
    purposes: list[PurposeReport]
    months: list[MonthFlows]
    grants: list[GrantReport]
    donations_count: int
    administration_share: Decimal | None
    position: int  # the read model's position in the event log when the report was made

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["opening"] = self.opening.as_dict()
        out["closing"] = self.closing.as_dict()
        out["flows"] = self.flows.as_dict()
        for purpose, data in zip(self.purposes, out["purposes"], strict=True):
            data["opening"] = purpose.opening.as_dict()
            data["closing"] = purpose.closing.as_dict()
            data["flows"] = purpose.flows.as_dict()
        for month, data in zip(self.months, out["months"], strict=True):
            data["flows"] = month.flows.as_dict()
        return out


def administration_share(flows: Flows) -> Decimal | None:
    if flows.spending_minor <= 0:
        return None
    admin = flows.expenses_by_category_minor.get("administration", 0)
    share = Decimal(admin) / Decimal(flows.spending_minor)
    return share.quantize(SHARE_PLACES, rounding=ROUND_HALF_EVEN)


def build_report(
    conn: Connection, slug: str, *, date_from: date, date_to: date
) -> TransparencyReport:
    """The transparency report of ``slug`` for the business days ``date_from..date_to``."""
    if date_to < date_from:
        raise InvalidField("the period ends before it starts", field="to")
    fund = fund_row(conn, slug)
    fund_id = fund["fund_id"]
    names = purpose_names(conn, fund_id)
    opening = figures_as_of(conn, slug, as_of=date_from - timedelta(days=1))
    closing = figures_as_of(conn, slug, as_of=date_to)
    total, per_purpose, per_month = _period_flows(conn, fund_id, date_from, date_to)
    purposes = [
        PurposeReport(
            code=code,
            name=name,
            opening=_purpose_figures(opening, code),
            closing=_purpose_figures(closing, code),
            flows=per_purpose[code].freeze() if code in per_purpose else Flows(),
        )
        for code, name in names.items()
    ]
    d = LIVE.donations
    donations_count = conn.execute(
        select(func.count())
        .select_from(d)
        .where(d.c.fund_id == fund_id, d.c.received_on >= date_from, d.c.received_on <= date_to)
    ).scalar_one()
    flows = total.freeze()
    return TransparencyReport(
        slug=fund["slug"],
        name=fund["name"],
        currency=fund["currency"],
        host=fund["host"],
        description=fund["description"],
        committee=list(fund["committee"]),
        date_from=date_from,
        date_to=date_to,
        opening=opening,
        closing=closing,
        flows=flows,
        purposes=purposes,
        months=[MonthFlows(month=m, flows=s.freeze()) for m, s in sorted(per_month.items())],
        grants=_grants(conn, fund_id, date_from, date_to),
        donations_count=int(donations_count),
        administration_share=administration_share(flows),
        position=_position(conn),
    )


def _purpose_figures(figures: FundFigures, code: str) -> Figures:
    return figures.unrestricted if code == UNRESTRICTED else figures.purposes.get(code, Figures())


def _period_flows(
    conn: Connection, fund_id: str, date_from: date, date_to: date
) -> tuple[_FlowSum, dict[str, _FlowSum], dict[str, _FlowSum]]:
    j = LIVE.journal
    rows = conn.execute(
        select(
            j.c.occurred_on, j.c.purpose, j.c.figure, j.c.category, func.sum(j.c.figure_delta_minor)
        )
        .where(j.c.fund_id == fund_id, j.c.occurred_on >= date_from, j.c.occurred_on <= date_to)
        .group_by(j.c.occurred_on, j.c.purpose, j.c.figure, j.c.category)
    )
    total = _FlowSum()
    per_purpose: dict[str, _FlowSum] = {}
    per_month: dict[str, _FlowSum] = {}
    for day, purpose, figure, category, amount in rows:
        amount = int(amount)
        total.add(figure, category, amount)
        per_purpose.setdefault(purpose, _FlowSum()).add(figure, category, amount)
        month = day.isoformat()[:7]
        per_month.setdefault(month, _FlowSum()).add(figure, category, amount)
    return total, per_purpose, per_month


def _grants(conn: Connection, fund_id: str, date_from: date, date_to: date) -> list[GrantReport]:
    """Grants alive at some time in the period (proposed by its end, not ended before it)
    and grants with a tranche paid in it (business dates need not follow the proposal's)."""
    g, a, t = LIVE.grants, LIVE.grant_approvals, LIVE.grant_tranches
    paid_in_period = select(t.c.grant_id).where(
        t.c.fund_id == fund_id, t.c.paid_on >= date_from, t.c.paid_on <= date_to
    )
    grants = (
        conn.execute(
            select(g)
            .where(
                g.c.fund_id == fund_id,
                (
                    (g.c.proposed_on <= date_to)
                    & (g.c.ended_on.is_(None) | (g.c.ended_on >= date_from))
                )
                | g.c.grant_id.in_(paid_in_period),
            )
            .order_by(g.c.proposed_on, g.c.grant_id)
        )
        .mappings()
        .all()
    )
    ids = [row["grant_id"] for row in grants]
    approvals: dict[str, list[dict[str, Any]]] = {}
    tranches: dict[str, list[TrancheReport]] = {}
    if ids:
        for row in conn.execute(
            select(a).where(a.c.grant_id.in_(ids)).order_by(a.c.recorded_at)
        ).mappings():
            approvals.setdefault(row["grant_id"], []).append(
                {"member": row["member"], "note": row["note"], "approved_on": row["approved_on"]}
            )
        for row in conn.execute(
            select(t).where(t.c.grant_id.in_(ids)).order_by(t.c.grant_id, t.c.tranche_no)
        ).mappings():
            tranches.setdefault(row["grant_id"], []).append(
                TrancheReport(
                    tranche_no=row["tranche_no"],
                    amount_minor=row["amount_minor"],
                    paid_on=row["paid_on"],
                    method=row["method"],
                    reference=row["reference"],
                    reversed=bool(row["reversed"]),
                    reversed_on=row["reversed_on"],
                    in_period=date_from <= row["paid_on"] <= date_to,
                )
            )
    return [
        GrantReport(
            grant_id=row["grant_id"],
            title=row["title"],
            grantee_name=row["grantee_name"],
            purpose=row["purpose"],
            status=row["status"],
            amount_minor=row["amount_minor"],
            committed_minor=row["committed_minor"],
            disbursed_minor=row["disbursed_minor"],
            released_minor=row["released_minor"],
            proposed_on=row["proposed_on"],
            committed_on=row["committed_on"],
            ended_on=row["ended_on"],
            approvals=approvals.get(row["grant_id"], []),
            tranches=tranches.get(row["grant_id"], []),
        )
        for row in grants
    ]


def _position(conn: Connection) -> int:
    value = conn.execute(select(func.min(projection_state.c.position))).scalar()
    return int(value or 0)


# -- CSV ---------------------------------------------------------------------------------------

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
