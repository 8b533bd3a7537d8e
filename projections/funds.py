"""Funds with their figures, per purpose and in total, and the expenses recorded on them.

``rm_fund_purposes`` holds one row per fund and purpose (``UNRESTRICTED``, ``""``:
unrestricted money) and ``rm_funds`` the fund's totals; both carry the figures of
``ledger.domain.figures`` (the expenses also per category) and the two derived ones. Each
money event moves its figure and the derived ones by its ``Effect``.

The expenses live here too (``rm_expenses``) because a reversal names only the expense, and
its category has to come from somewhere this projection owns.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ledger.domain.figures import EFFECTS, EXPENSE_CATEGORIES, UNRESTRICTED, Effect, column
from projections import topics as t
from projections.errors import InvariantBroken
from projections.projection import Projection, Row
from projections.tables import FIGURE_COLUMNS, Tables, expense_column

ON_HAND = column("on_hand")
AVAILABLE = column("available")


def zero_figures() -> dict[str, int]:
    return dict.fromkeys(FIGURE_COLUMNS, 0)


class FundsProjection(Projection[Tables]):
    name = "funds"
    version = 2  # 2: the host's credit code and public-fundraising status
    table_names = ("rm_funds", "rm_fund_purposes", "rm_expenses")
    handles: ClassVar[dict[str, str]] = {
        t.FUND_OPENED: "opened",
        t.PURPOSE_ADDED: "purpose_added",
        t.COMMITTEE_CHANGED: "committee_changed",
        t.PERIOD_CLOSED: "period_closed",
        t.HOST_DETAILS_RECORDED: "host_details_recorded",
        t.EXPENSE_RECORDED: "expense_recorded",
        t.EXPENSE_REVERSED: "expense_reversed",
        # and every other money event of ``ledger.domain.figures.EFFECTS``, in __init__
    }

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self.funds = self.rows(tables.funds, cached_max=10_000)
        self.purposes = self.rows(tables.fund_purposes, cached_max=50_000)
        self.expenses = self.rows(tables.expenses)
        for name, effect in EFFECTS.items():
            self.handlers.setdefault(t.fund_topic(name), self._money_handler(effect))

    # -- structure ---------------------------------------------------------------------------

    def opened(self, notification_id: int, oid: str, e: Any) -> None:
        fund_id = oid
        self.funds.add(
            fund_id,
            {
                "fund_id": fund_id,
                "slug": e.slug,
                "name": e.name,
                "currency": e.currency,
                "description": e.description,
                "host": e.host,
                "host_credit_code": None,
                "host_public_fundraising": None,
                "committee": list(e.committee),
                "approvals_required": e.approvals_required,
                "closed_periods": [],
                "opened_at": e.timestamp,
                "version": e.originator_version,
                **zero_figures(),
            },
        )
        self._add_purpose(fund_id, UNRESTRICTED, "")
        for purpose in e.purposes:
            self._add_purpose(fund_id, purpose["code"], purpose["name"])

    def _add_purpose(self, fund_id: str, code: str, name: str) -> None:
        self.purposes.add(
            (fund_id, code), {"fund_id": fund_id, "purpose": code, "name": name, **zero_figures()}
        )

    def purpose_added(self, notification_id: int, oid: str, e: Any) -> None:
        fund_id = oid
        self._touch_fund(oid, e)
        self._add_purpose(fund_id, e.code, e.name)

    def committee_changed(self, notification_id: int, oid: str, e: Any) -> None:
        fund = self._touch_fund(oid, e)
        fund["committee"] = list(e.committee)
        fund["approvals_required"] = e.approvals_required

    def host_details_recorded(self, notification_id: int, oid: str, e: Any) -> None:
        fund = self._touch_fund(oid, e)
        fund["host"] = e.name
        fund["host_credit_code"] = e.credit_code
        fund["host_public_fundraising"] = e.public_fundraising

    def period_closed(self, notification_id: int, oid: str, e: Any) -> None:
        fund = self._touch_fund(oid, e)
        fund["closed_periods"] = sorted({*fund["closed_periods"], e.period})

    def _touch_fund(self, oid: str, e: Any) -> Row:
        fund_id = oid
        fund = self.funds.need(self.conn, fund_id)
        fund["version"] = e.originator_version
        self.funds.changed(fund_id, fund)
        return fund

    # -- money -------------------------------------------------------------------------------

    def _money_handler(self, effect: Effect) -> Any:
        funds, purposes = self.funds, self.purposes
        fund_rows, purpose_rows = funds.cache, purposes.cache  # the same dicts, always
        figure, sign = column(effect.figure), effect.sign
        on_hand, available = effect.on_hand_sign, effect.available_sign

        def handle(notification_id: int, oid: str, e: Any) -> None:
            # _count with one figure, inlined, rows found in memory first: most events of
            # the log come here. The derived figures move with the event's effect.
            fund = fund_rows.get(oid) or funds.need(self.conn, oid)
            fund["version"] = e.originator_version
            funds.changed(oid, fund)
            key = (oid, e.purpose)
            row = purpose_rows.get(key) or purposes.need(self.conn, key)
            amount = e.amount_minor
            row[figure] += sign * amount
            fund[figure] += sign * amount
            row[ON_HAND] += on_hand * amount
            fund[ON_HAND] += on_hand * amount
            row[AVAILABLE] += available * amount
            fund[AVAILABLE] += available * amount
            purposes.changed(key, row)
            if row[AVAILABLE] < 0 or row[ON_HAND] < 0:
                self._negative(fund, e.purpose, row)

        return handle

    def expense_recorded(self, notification_id: int, oid: str, e: Any) -> None:
        fund_id = oid
        self.expenses.add(
            e.expense_id,
            {
                "expense_id": e.expense_id,
                "fund_id": fund_id,
                "amount_minor": e.amount_minor,
                "category": e.category,
                "payee": e.payee,
                "description": e.description,
                "purpose": e.purpose,
                "paid_on": e.occurred_on,
                "recorded_at": e.timestamp,
                "recorded_by": e.actor,
                "reversed": False,
                "reversed_on": None,
                "reversal_reason": None,
            },
        )
        self._count(oid, e, EFFECTS["ExpenseRecorded"], _category(e.category))

    def expense_reversed(self, notification_id: int, oid: str, e: Any) -> None:
        expense = self.expenses.need(self.conn, e.expense_id)
        if expense["reversed"]:
            raise InvariantBroken(f"expense {e.expense_id} reversed twice")
        expense["reversed"] = True
        expense["reversed_on"] = e.occurred_on
        expense["reversal_reason"] = e.reason
        self.expenses.changed(e.expense_id, expense)
        self._count(oid, e, EFFECTS["ExpenseReversed"], _category(expense["category"]))

    def _count(self, oid: str, e: Any, effect: Effect, category: str) -> None:
        """An expense's effect, and its category's share of ``expenses``."""
        fund_id = oid
        fund = self._touch_fund(oid, e)
        key = (fund_id, e.purpose)
        row = self.purposes.need(self.conn, key)
        amount = e.amount_minor
        for r in (row, fund):
            r[column(effect.figure)] += effect.sign * amount
            r[category] += effect.sign * amount
            r[ON_HAND] += effect.on_hand_sign * amount
            r[AVAILABLE] += effect.available_sign * amount
        self.purposes.changed(key, row)
        if row[AVAILABLE] < 0 or row[ON_HAND] < 0:
            self._negative(fund, e.purpose, row)

    def _negative(self, fund: Row, purpose: str, row: Row) -> None:
        raise InvariantBroken(
            f"fund {fund['slug']} purpose {purpose!r} would go negative "
            f"(on hand {row['on_hand_minor']}, available {row['available_minor']})"
        )


def _category(category: str) -> str:
    if category not in EXPENSE_CATEGORIES:
        raise InvariantBroken(f"unknown expense category {category!r}")
    return expense_column(category)
