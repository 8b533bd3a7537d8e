"""Monthly flows per fund and purpose, by the month of the business date.

``in`` (donations received), ``refunded`` (refunds and reversals of donations),
``committed``, ``released``, ``disbursed`` (net of reversed tranches) and ``expenses`` (net
of reversed expenses). A correction dated in a later month counts in that month: closed
months never change.
"""

from __future__ import annotations

from typing import Any, ClassVar

from projections import topics as t
from projections.projection import Projection
from projections.tables import FLOW_COLUMNS, Tables

FLOW_OF: dict[str, tuple[str, int]] = {
    t.DONATION_CREDITED: ("in_minor", 1),
    t.DONATION_REFUND_DEBITED: ("refunded_minor", 1),
    t.DONATION_REVERSAL_DEBITED: ("refunded_minor", 1),
    t.GRANT_COMMITTED: ("committed_minor", 1),
    t.GRANT_RELEASED: ("released_minor", 1),
    t.DISBURSEMENT_DEBITED: ("disbursed_minor", 1),
    t.DISBURSEMENT_REVERSAL_CREDITED: ("disbursed_minor", -1),
    t.EXPENSE_RECORDED: ("expenses_minor", 1),
    t.EXPENSE_REVERSED: ("expenses_minor", -1),
}


class FlowsProjection(Projection):
    name = "flows"
    version = 1
    table_names = ("rm_monthly_flows",)
    handles: ClassVar[dict[str, str]] = {}  # one bound handler per topic of FLOW_OF

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self.flows = self.rows(tables.monthly_flows)
        for topic, (column, sign) in FLOW_OF.items():
            self.handlers[topic] = self._handler(column, sign)

    def _handler(self, column: str, sign: int) -> Any:
        flows = self.flows
        kept = flows.cache  # the same dict, always

        def handle(notification_id: int, oid: str, e: Any) -> None:
            fund_id = oid
            key = (fund_id, e.occurred_on[:7], e.purpose)
            row = kept.get(key) or flows.get(self.conn, key)
            if row is None:
                row = {"fund_id": fund_id, "month": key[1], "purpose": e.purpose}
                row.update(dict.fromkeys(FLOW_COLUMNS, 0))
                self.flows.add(key, row)
            row[column] += sign * e.amount_minor
            flows.changed(key, row)

        return handle
