"""Grants with their approvals and tranches.

Status follows the aggregate: ``proposed`` → ``committed`` → ``closed``, or ``rejected``
(before approval) or ``cancelled`` (after). A reversed tranche stays listed, flagged
``reversed``; ``disbursed_minor`` counts only tranches that were not reversed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ledger.domain.grant import CANCELLED, CLOSED, COMMITTED, PROPOSED, REJECTED
from projections import topics as t
from projections.errors import InvariantBroken
from projections.projection import Projection, Row
from projections.tables import Tables

# the order of the values of an approval and a progress note (``Appends`` checks it)
APPROVAL_COLUMNS = ("grant_id", "member", "note", "approved_on", "recorded_at")
PROGRESS_COLUMNS = (
    "grant_id",
    "progress_no",
    "progress_id",
    "fund_id",
    "reported_on",
    "note",
    "evidence_sha256",
    "final",
    "recorded_at",
    "recorded_by",
)


class GrantsProjection(Projection[Tables]):
    name = "grants"
    version = 2  # 2: progress notes, and what the disclosure rule needs
    table_names = ("rm_grants", "rm_grant_approvals", "rm_grant_tranches", "rm_grant_progress")
    handles: ClassVar[dict[str, str]] = {
        t.GRANT_PROPOSED: "proposed",
        t.GRANT_APPROVED: "approved",
        t.GRANT_COMMITTED_ON_GRANT: "grant_committed",
        t.GRANT_REJECTED: "rejected",
        t.GRANT_CANCELLED: "cancelled",
        t.GRANT_CLOSED: "closed",
        t.GRANT_DISBURSED: "disbursed",
        t.GRANT_DISBURSEMENT_REVERSED: "disbursement_reversed",
        t.GRANT_PROGRESS_RECORDED: "progress_recorded",
    }

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self.grants = self.rows(tables.grants, cached_max=20_000)
        self.approvals = self.appends(tables.grant_approvals, APPROVAL_COLUMNS)
        self.tranches = self.rows(tables.grant_tranches, cached_max=20_000)
        self.progress = self.appends(tables.grant_progress, PROGRESS_COLUMNS)

    def proposed(self, notification_id: int, oid: str, e: Any) -> None:
        grant_id = oid
        self.grants.add(
            grant_id,
            {
                "grant_id": grant_id,
                "fund_id": e.fund_id,
                "fund_slug": e.fund_slug,
                "currency": e.currency,
                "title": e.title,
                "description": e.description,
                "purpose": e.purpose,
                "grantee_name": e.grantee_name,
                "grantee_id": e.grantee_id,
                "amount_minor": e.amount_minor,
                "status": PROPOSED,
                "proposed_on": e.occurred_on,
                "proposed_by": e.actor,
                "recorded_at": e.timestamp,
                "approvals_count": 0,
                "committed_on": None,
                "committed_minor": 0,
                "disbursed_minor": 0,
                "released_minor": 0,
                "tranches_count": 0,
                "ended_on": None,
                "closing_reason": None,
                "progress_count": 0,
                "last_progress_on": None,
                "final_account_on": None,
            },
        )

    def _grant(self, grant_id: str) -> Row:
        row = self.grants.need(self.conn, grant_id)
        self.grants.changed(grant_id, row)
        return row

    def approved(self, notification_id: int, oid: str, e: Any) -> None:
        grant = self._grant(oid)
        grant["approvals_count"] += 1
        self.approvals.rows.append(
            (grant["grant_id"], e.member, e.note, e.occurred_on, e.timestamp)
        )

    def grant_committed(self, notification_id: int, oid: str, e: Any) -> None:
        grant = self._grant(oid)
        grant["status"] = COMMITTED
        grant["committed_on"] = e.occurred_on
        grant["committed_minor"] = e.amount_minor

    def rejected(self, notification_id: int, oid: str, e: Any) -> None:
        grant = self._grant(oid)
        grant["status"] = REJECTED
        grant["ended_on"] = e.occurred_on
        grant["closing_reason"] = e.reason

    def cancelled(self, notification_id: int, oid: str, e: Any) -> None:
        self._end(oid, e, CANCELLED)

    def closed(self, notification_id: int, oid: str, e: Any) -> None:
        self._end(oid, e, CLOSED)

    def _end(self, oid: str, e: Any, status: str) -> None:
        grant = self._grant(oid)
        grant["status"] = status
        grant["ended_on"] = e.occurred_on
        grant["closing_reason"] = e.reason
        grant["released_minor"] += e.released_minor

    def disbursed(self, notification_id: int, oid: str, e: Any) -> None:
        grant = self._grant(oid)
        grant["disbursed_minor"] += e.amount_minor
        grant["tranches_count"] += 1
        if grant["disbursed_minor"] > grant["committed_minor"]:
            raise InvariantBroken(f"grant {grant['grant_id']} disbursed beyond its commitment")
        key = (grant["grant_id"], e.tranche_no)
        self.tranches.add(
            key,
            {
                "grant_id": grant["grant_id"],
                "tranche_no": e.tranche_no,
                "tranche_id": e.tranche_id,
                "fund_id": grant["fund_id"],
                "amount_minor": e.amount_minor,
                "paid_on": e.occurred_on,
                "method": e.method,
                "reference": e.reference,
                "evidence_sha256": e.evidence_sha256,
                "recorded_at": e.timestamp,
                "recorded_by": e.actor,
                "reversed": False,
                "reversed_on": None,
                "reversal_reason": None,
            },
        )

    def disbursement_reversed(self, notification_id: int, oid: str, e: Any) -> None:
        grant = self._grant(oid)
        grant["disbursed_minor"] -= e.amount_minor
        grant["released_minor"] += e.released_minor
        key = (grant["grant_id"], e.tranche_no)
        tranche = self.tranches.need(self.conn, key)
        tranche["reversed"] = True
        tranche["reversed_on"] = e.occurred_on
        tranche["reversal_reason"] = e.reason
        self.tranches.changed(key, tranche)

    def progress_recorded(self, notification_id: int, oid: str, e: Any) -> None:
        grant = self._grant(oid)
        grant["progress_count"] += 1
        if grant["progress_count"] != e.progress_no:
            raise InvariantBroken(f"grant {oid} progress note {e.progress_no} out of order")
        day = e.occurred_on
        if grant["last_progress_on"] is None or day > grant["last_progress_on"]:
            grant["last_progress_on"] = day
        if e.final and (grant["final_account_on"] is None or day < grant["final_account_on"]):
            grant["final_account_on"] = day
        self.progress.rows.append(
            (
                oid,
                e.progress_no,
                e.progress_id,
                grant["fund_id"],
                day,
                e.note,
                list(e.evidence_sha256),
                e.final,
                e.timestamp,
                e.actor,
            )
        )
