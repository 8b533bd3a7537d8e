"""The transparency report of a fund for a period (CSV: ``projections.exports.csv_files``).

``build_report(conn, slug, date_from=..., date_to=...)`` returns plain data (dataclasses;
``as_dict()`` for JSON): the fund, its figures at the start and the end of the period, the
period's flows in total, per purpose and per month, the grants with their approvals and
tranches, expenses by category and the administration share of spending. Every amount is
``int`` minor units; the edges format them.

Spending is what left the fund for its work in the period: grant tranches paid (net of
reversals) plus expenses of every category (net of reversals). The administration share is
administration expenses over spending, a ``Decimal`` rounded half-even to 4 places
(``None`` when nothing was spent).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from ledger.domain.errors import InvalidField
from ledger.domain.figures import EXPENSE_CATEGORIES, FIGURE_NAMES, UNRESTRICTED
from projections.queries import Figures, FundFigures, figures_as_of, fund_row, purpose_names
from projections.tables import FLOW_NAME_OF, LIVE
from projections.tracking import projection_state

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
