"""The journal: every change of a fund's money as one dated line, in log order.

A line carries the business date (``occurred_on``), the recording instant (``recorded_at``,
the event's timestamp), what happened (``kind``), what it refers to (``reference``: the
receipt number of a donation, the grant id, the expense id; ``detail``: the refund id or
the tranche number), the purpose, the figure it changes and by how much, the signed change
of the money on hand (``amount_minor``: commitments and releases move no money) and the
fund's running ``balance_minor`` (on hand) and ``available_minor`` after the line.

Summing lines gives a fund's figures at any business date or recording instant (see
``projections.queries``).
"""

from __future__ import annotations

from itertools import islice
from typing import Any, ClassVar

from sqlalchemy import select

from ledger.domain.figures import EFFECTS
from projections import topics as t
from projections.errors import InvariantBroken
from projections.projection import Projection
from projections.tables import Tables

LOOKUPS_CACHED_MAX = 200_000

# What the journal calls each money event's line (its figure and signs: ``EFFECTS``).
KIND_OF: dict[str, str] = {
    "DonationCredited": "donation",
    "DonationRefundDebited": "refund",
    "DonationReversalDebited": "donation_reversal",
    "GrantCommitted": "grant_commitment",
    "GrantReleased": "grant_release",
    "DisbursementDebited": "disbursement",
    "DisbursementReversalCredited": "disbursement_reversal",
    "ExpenseRecorded": "expense",
    "ExpenseReversed": "expense_reversal",
}
LINE_COLUMNS = (  # the order of the values of a line (``Appends`` checks it)
    "notification_id",
    "fund_id",
    "line_no",
    "occurred_on",
    "recorded_at",
    "kind",
    "reference",
    "entity_id",
    "detail",
    "purpose",
    "category",
    "figure",
    "figure_delta_minor",
    "amount_minor",
    "balance_minor",
    "available_minor",
    "memo",
    "recorded_by",
)


class JournalProjection(Projection[Tables]):
    name = "journal"
    version = 1
    table_names = ("rm_journal",)
    handles: ClassVar[dict[str, str]] = {}  # one bound handler per money event (KIND_OF)

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self.lines = self.appends(tables.journal, LINE_COLUMNS)
        # fund id -> [last line_no, on hand, available]
        self.balances: dict[str, list[int]] = {}
        self.receipts: dict[str, str] = {}  # donation id -> receipt number
        self.categories: dict[str, str] = {}  # expense id -> category
        if set(KIND_OF) != set(EFFECTS):
            raise ValueError("every money event needs a journal kind, and only those")
        for name, kind in KIND_OF.items():
            effect = EFFECTS[name]
            self.handlers[t.fund_topic(name)] = self._handler(
                kind, effect.figure, effect.sign, effect.on_hand_sign, effect.available_sign
            )

    def after_commit(self) -> None:
        for cache in (self.receipts, self.categories):
            excess = len(cache) - LOOKUPS_CACHED_MAX
            if excess > 0:
                for key in list(islice(cache, excess + LOOKUPS_CACHED_MAX // 4)):
                    del cache[key]
                self.complete = False

    def after_reset(self) -> None:
        self.balances.clear()
        self.receipts.clear()
        self.categories.clear()

    def _handler(self, kind: str, figure: str, sign: int, on_hand: int, available: int) -> Any:
        def handle(notification_id: int, oid: str, e: Any) -> None:
            fund_id = oid
            amount = e.amount_minor
            reference, entity_id, detail, category, memo = self._refer(kind, e)
            balance = self.balances.get(fund_id)
            if balance is None:
                balance = self.balances[fund_id] = self._last_balance(fund_id)
            balance[0] += 1
            balance[1] += on_hand * amount
            balance[2] += available * amount
            if balance[1] < 0 or balance[2] < 0:
                raise InvariantBroken(
                    f"fund {fund_id} would go negative at line {balance[0]} "
                    f"(on hand {balance[1]}, available {balance[2]})"
                )
            self.lines.rows.append(
                (
                    notification_id,
                    fund_id,
                    balance[0],
                    e.occurred_on,
                    e.timestamp,
                    kind,
                    reference,
                    entity_id,
                    detail,
                    e.purpose,
                    category,
                    figure,
                    sign * amount,
                    on_hand * amount,
                    balance[1],
                    balance[2],
                    memo,
                    e.actor,
                )
            )

        return handle

    def _refer(self, kind: str, e: Any) -> tuple[str, str, str, str, str]:
        """reference, entity id, detail, category, memo of a line."""
        if kind == "donation":
            self.receipts[e.donation_id] = e.receipt_no
            return e.receipt_no, e.donation_id, "", "", ""
        if kind in ("refund", "donation_reversal"):
            receipt_no = self._receipt_of(e.donation_id)
            detail = e.refund_id if kind == "refund" else ""
            return receipt_no, e.donation_id, detail, "", ""
        if kind in ("grant_commitment", "grant_release"):
            return e.grant_id, e.grant_id, "", "", ""
        if kind in ("disbursement", "disbursement_reversal"):
            return e.grant_id, e.grant_id, str(e.tranche_no), "", ""
        if kind == "expense":
            self.categories[e.expense_id] = e.category
            memo = f"{e.payee}: {e.description}"
            return e.expense_id, e.expense_id, "", e.category, memo
        category = self._category_of(e.expense_id)
        return e.expense_id, e.expense_id, "", category, e.reason

    def _last_balance(self, fund_id: str) -> list[int]:
        if self.complete:
            return [0, 0, 0]
        self.need_indexes()
        j = self.tables.journal
        row = self.conn.execute(
            select(j.c.line_no, j.c.balance_minor, j.c.available_minor)
            .where(j.c.fund_id == fund_id)
            .order_by(j.c.line_no.desc())
            .limit(1)
        ).first()
        return [0, 0, 0] if row is None else [int(row[0]), int(row[1]), int(row[2])]

    def _first_line(self, entity_id: str, kind: str, column: str) -> str:
        j = self.tables.journal
        value = None
        if not self.complete:
            self.need_indexes()
            value = self.conn.execute(
                select(j.c[column]).where(j.c.entity_id == entity_id, j.c.kind == kind).limit(1)
            ).scalar()
        if value is None:
            raise InvariantBroken(f"the journal has no {kind} {entity_id}")
        return str(value)

    def _receipt_of(self, donation_id: str) -> str:
        receipt_no = self.receipts.get(donation_id)
        if receipt_no is None:
            receipt_no = self.receipts[donation_id] = self._first_line(
                donation_id, "donation", "reference"
            )
        return receipt_no

    def _category_of(self, expense_id: str) -> str:
        category = self.categories.get(expense_id)
        if category is None:
            category = self.categories[expense_id] = self._first_line(
                expense_id, "expense", "category"
            )
        return category
