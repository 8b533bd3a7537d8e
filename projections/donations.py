"""Donations and their refunds.

A donation's row keeps what the public may see (``PUBLIC_DONATION_COLUMNS``: receipt
number, amount, the donor's public name as chosen at recording, status) and what auditors
need besides (donor id, bank reference, note). The sealed donor details never reach a read
model: auditors open them through the application, with the donor's key.

Status: ``received`` → ``partially_refunded`` → ``refunded``; or ``reversed`` (recorded in
error, taken back whole).
"""

from __future__ import annotations

from typing import Any, ClassVar

from projections import topics as t
from projections.errors import InvariantBroken
from projections.projection import Projection
from projections.tables import Tables

RECEIVED = "received"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
REVERSED = "reversed"
DONATION_STATUSES = (RECEIVED, PARTIALLY_REFUNDED, REFUNDED, REVERSED)
REFUND_COLUMNS = (  # the order of the values of a refund (``Appends`` checks it)
    "refund_id",
    "donation_id",
    "fund_id",
    "amount_minor",
    "refunded_on",
    "reason",
    "recorded_at",
    "recorded_by",
)


class DonationsProjection(Projection[Tables]):
    name = "donations"
    version = 1
    table_names = ("rm_donations", "rm_donation_refunds")
    handles: ClassVar[dict[str, str]] = {
        t.DONATION_RECEIVED: "received",
        t.DONATION_REFUNDED: "refunded",
        t.DONATION_REVERSED: "reversed",
        t.DONOR_ERASED: "donor_erased",
    }

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self.donations = self.rows(tables.donations)
        self.refunds = self.appends(tables.donation_refunds, REFUND_COLUMNS)

    def received(self, notification_id: int, oid: str, e: Any) -> None:
        donation_id = oid
        in_kind = e.in_kind or {}
        self.donations.add(
            donation_id,
            {
                "donation_id": donation_id,
                "fund_id": e.fund_id,
                "fund_slug": e.fund_slug,
                "receipt_no": e.receipt_no,
                "currency": e.currency,
                "amount_minor": e.amount_minor,
                "received_on": e.occurred_on,
                "recorded_at": e.timestamp,
                "channel": e.channel,
                "purpose": e.purpose,
                "donor_public_name": e.donor_public_name,
                "donor_anonymous": bool(e.donor_anonymous),
                "donor_id": e.donor_id,
                "donor_details_kept": e.donor_sealed is not None,
                "donor_erased": False,
                "external_ref": e.external_ref,
                "note": e.note,
                "in_kind_description": in_kind.get("description"),
                "in_kind_valuation_basis": in_kind.get("valuation_basis"),
                "recorded_by": e.actor,
                "refunded_minor": 0,
                "reversed_minor": 0,
                "status": RECEIVED,
                "reversed_on": None,
                "reversal_reason": None,
            },
        )

    def refunded(self, notification_id: int, oid: str, e: Any) -> None:
        donation_id = oid
        row = self.donations.need(self.conn, donation_id)
        row["refunded_minor"] += e.amount_minor
        if row["refunded_minor"] > row["amount_minor"]:
            raise InvariantBroken(f"donation {row['receipt_no']} refunded beyond its amount")
        row["status"] = (
            REFUNDED if row["refunded_minor"] == row["amount_minor"] else (PARTIALLY_REFUNDED)
        )
        self.donations.changed(donation_id, row)
        self.refunds.rows.append(
            (
                e.refund_id,
                donation_id,
                row["fund_id"],
                e.amount_minor,
                e.occurred_on,
                e.reason,
                e.timestamp,
                e.actor,
            )
        )

    def reversed(self, notification_id: int, oid: str, e: Any) -> None:
        donation_id = oid
        row = self.donations.need(self.conn, donation_id)
        row["reversed_minor"] = e.amount_minor
        row["status"] = REVERSED
        row["reversed_on"] = e.occurred_on
        row["reversal_reason"] = e.reason
        self.donations.changed(donation_id, row)

    def donor_erased(self, notification_id: int, oid: str, e: Any) -> None:
        donation_id = oid
        row = self.donations.need(self.conn, donation_id)
        row["donor_erased"] = True
        row["donor_details_kept"] = False
        self.donations.changed(donation_id, row)
