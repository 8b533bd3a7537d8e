"""Reading the read models: a fund's figures now, as of a business date, as known at an
instant.

- ``fund_figures``: the live figures (``rm_funds`` / ``rm_fund_purposes``).
- ``figures_as_of(as_of=day)``: what happened up to that business day — the journal's lines
  with ``occurred_on <= day``, whenever they were recorded (a back-dated entry counts).
- ``figures_as_of(known_at=instant)``: what the ledger said at that instant — the lines
  recorded (event timestamp) at or before it, whatever their business date. Both together:
  what the ledger said at ``known_at`` about the days up to ``as_of``.
- ``figures_known_at_replay``: the same ``known_at`` answer from the events themselves,
  replaying the fund aggregate up to the last event recorded at or before the instant
  (auditors' cross-check; the two agree because a fund's events are recorded in order).

Figures are ``int`` minor units; the edges format them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from sqlalchemy import Connection, func, select

from ledger.domain.common import fund_id as fund_id_of
from ledger.domain.errors import FundNotFound
from ledger.domain.figures import EXPENSE_CATEGORIES
from ledger.domain.fund import Fund
from projections.tables import LIVE

UNRESTRICTED = ""
FIGURES = ("received", "refunded", "committed", "released", "disbursed", "expenses")


@dataclass(frozen=True, slots=True)
class Figures:
    """One set of a fund's figures (the whole fund, unrestricted money, or one purpose)."""

    received_minor: int = 0
    refunded_minor: int = 0
    committed_minor: int = 0
    released_minor: int = 0
    disbursed_minor: int = 0
    expenses_minor: int = 0
    expenses_by_category_minor: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(EXPENSE_CATEGORIES, 0)
    )

    @property
    def on_hand_minor(self) -> int:
        """Received and not paid out (refunds, tranches, expenses)."""
        return (
            self.received_minor - self.refunded_minor - self.disbursed_minor - self.expenses_minor
        )

    @property
    def available_minor(self) -> int:
        """On hand, less what is committed to grants and not yet paid."""
        return (
            self.received_minor
            - self.refunded_minor
            - self.committed_minor
            + self.released_minor
            - self.expenses_minor
        )

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Figures:
        return cls(
            received_minor=int(row["received_minor"]),
            refunded_minor=int(row["refunded_minor"]),
            committed_minor=int(row["committed_minor"]),
            released_minor=int(row["released_minor"]),
            disbursed_minor=int(row["disbursed_minor"]),
            expenses_minor=int(row["expenses_minor"]),
            expenses_by_category_minor={
                c: int(row[f"expenses_{c}_minor"]) for c in EXPENSE_CATEGORIES
            },
        )

    @classmethod
    def from_sums(cls, sums: Mapping[str, int], by_category: Mapping[str, int]) -> Figures:
        return cls(
            **{f"{name}_minor": int(sums.get(name, 0)) for name in FIGURES},
            expenses_by_category_minor={c: int(by_category.get(c, 0)) for c in EXPENSE_CATEGORIES},
        )

    def plus(self, other: Figures) -> Figures:
        return Figures(
            **{
                f"{n}_minor": getattr(self, f"{n}_minor") + getattr(other, f"{n}_minor")
                for n in FIGURES
            },
            expenses_by_category_minor={
                c: self.expenses_by_category_minor.get(c, 0)
                + other.expenses_by_category_minor.get(c, 0)
                for c in EXPENSE_CATEGORIES
            },
        )

    def as_dict(self) -> dict[str, Any]:
        """All figures in minor units, the two derived ones included."""
        out = asdict(self)
        out["on_hand_minor"] = self.on_hand_minor
        out["available_minor"] = self.available_minor
        return out


@dataclass(frozen=True, slots=True)
class FundFigures:
    fund_id: str
    slug: str
    currency: str
    totals: Figures
    unrestricted: Figures
    purposes: dict[str, Figures]  # by purpose code

    def as_dict(self) -> dict[str, Any]:
        return {
            "fund_id": self.fund_id,
            "slug": self.slug,
            "currency": self.currency,
            "totals": self.totals.as_dict(),
            "unrestricted": self.unrestricted.as_dict(),
            "purposes": {code: f.as_dict() for code, f in self.purposes.items()},
        }


def fund_row(conn: Connection, slug: str) -> dict[str, Any]:
    row = conn.execute(select(LIVE.funds).where(LIVE.funds.c.slug == slug)).mappings().first()
    if row is None:
        raise FundNotFound(f"no fund {slug}", fund=slug)
    return dict(row)


def purpose_names(conn: Connection, fund_id: str) -> dict[str, str]:
    p = LIVE.fund_purposes
    rows = conn.execute(
        select(p.c.purpose, p.c.name).where(p.c.fund_id == fund_id).order_by(p.c.purpose)
    )
    return {str(code): str(name) for code, name in rows}


def _assemble(fund: Mapping[str, Any], per_purpose: dict[str, Figures]) -> FundFigures:
    totals = Figures()
    for figures in per_purpose.values():
        totals = totals.plus(figures)
    return FundFigures(
        fund_id=fund["fund_id"],
        slug=fund["slug"],
        currency=fund["currency"],
        totals=totals,
        unrestricted=per_purpose.get(UNRESTRICTED, Figures()),
        purposes={code: f for code, f in per_purpose.items() if code != UNRESTRICTED},
    )


def fund_figures(conn: Connection, slug: str) -> FundFigures:
    """The fund's figures now (as far as the read model has got)."""
    fund = fund_row(conn, slug)
    p = LIVE.fund_purposes
    rows = conn.execute(select(p).where(p.c.fund_id == fund["fund_id"])).mappings()
    per_purpose = {r["purpose"]: Figures.from_row(r) for r in rows}
    return FundFigures(
        fund_id=fund["fund_id"],
        slug=fund["slug"],
        currency=fund["currency"],
        totals=Figures.from_row(fund),
        unrestricted=per_purpose.get(UNRESTRICTED, Figures()),
        purposes={code: f for code, f in sorted(per_purpose.items()) if code != UNRESTRICTED},
    )


def all_fund_figures(conn: Connection) -> list[FundFigures]:
    slugs = conn.execute(select(LIVE.funds.c.slug).order_by(LIVE.funds.c.slug)).scalars()
    return [fund_figures(conn, slug) for slug in list(slugs)]


def figures_as_of(
    conn: Connection,
    slug: str,
    *,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> FundFigures:
    """The fund's figures from its journal lines dated up to ``as_of`` and recorded up to
    ``known_at`` (either or both; neither: the current figures)."""
    fund = fund_row(conn, slug)
    j = LIVE.journal
    query = (
        select(j.c.purpose, j.c.figure, j.c.category, func.sum(j.c.figure_delta_minor))
        .where(j.c.fund_id == fund["fund_id"])
        .group_by(j.c.purpose, j.c.figure, j.c.category)
    )
    if as_of is not None:
        query = query.where(j.c.occurred_on <= as_of)
    if known_at is not None:
        query = query.where(j.c.recorded_at <= known_at)
    sums: dict[str, dict[str, int]] = {code: {} for code in purpose_names(conn, fund["fund_id"])}
    categories: dict[str, dict[str, int]] = {code: {} for code in sums}
    for purpose, figure, category, total in conn.execute(query):
        per = sums.setdefault(purpose, {})
        per[figure] = per.get(figure, 0) + int(total)
        if figure == "expenses":
            cats = categories.setdefault(purpose, {})
            cats[category] = cats.get(category, 0) + int(total)
    per_purpose = {
        code: Figures.from_sums(sums[code], categories.get(code, {})) for code in sorted(sums)
    }
    return _assemble(fund, per_purpose)


def figures_known_at_replay(app: Application[Any], slug: str, instant: datetime) -> FundFigures:
    """What the ledger said at ``instant``: the fund aggregate replayed up to its last event
    recorded at or before it."""
    aggregate_id: UUID = fund_id_of(slug)
    version = None
    for event in app.events.get(aggregate_id):
        if getattr(event, "timestamp") > instant:  # noqa: B009 - not in the Protocol
            break
        version = event.originator_version
    if version is None:
        raise FundNotFound(f"no fund {slug} at {instant.isoformat()}", fund=slug)
    fund: Any = app.repository.get(aggregate_id, version=version)
    if not isinstance(fund, Fund):
        raise FundNotFound(f"no fund {slug}", fund=slug)
    by_category: dict[str, dict[str, int]] = {}
    for expense in fund.expenses.values():
        if not expense.reversed:
            cats = by_category.setdefault(expense.purpose, {})
            cats[expense.category] = cats.get(expense.category, 0) + expense.amount_minor
    per_purpose = {
        code: Figures.from_sums(f, by_category.get(code, {}))
        for code, f in sorted(fund.figures.items())
    }
    row = {"fund_id": str(fund.id), "slug": fund.slug, "currency": fund.currency}
    return _assemble(row, per_purpose)
