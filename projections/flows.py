"""Monthly flows per fund and purpose, by the month of the business date.

``in`` (donations received), ``refunded`` (refunds and reversals of donations),
``committed``, ``released``, ``disbursed`` (net of reversed tranches) and ``expenses`` (net
of reversed expenses). A correction dated in a later month counts in that month: closed
months never change.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ledger.domain.figures import EFFECTS, column
from projections import topics as t
from projections.projection import Projection
from projections.tables import FLOW_COLUMNS, FLOW_NAME_OF, Tables


class FlowsProjection(Projection[Tables]):
    name = "flows"
    version = 1
    table_names = ("rm_monthly_flows",)
    handles: ClassVar[dict[str, str]] = {}  # one bound handler per money event (EFFECTS)

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self.flows = self.rows(tables.monthly_flows)
        for name, effect in EFFECTS.items():
            flow = column(FLOW_NAME_OF[effect.figure])
            self.handlers[t.fund_topic(name)] = self._handler(flow, effect.sign)

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
