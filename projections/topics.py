"""The topics of the events the read models follow (the library's ``module:Class.Event``).

The Fund's money events are named by ``ledger.domain.figures.EFFECTS``; ``fund_topic``
gives their topics."""

from __future__ import annotations

_FUND = "ledger.domain.fund:Fund."
_DONATION = "ledger.domain.donation:Donation."
_GRANT = "ledger.domain.grant:Grant."

FUND_OPENED = _FUND + "Opened"
PURPOSE_ADDED = _FUND + "PurposeAdded"
COMMITTEE_CHANGED = _FUND + "CommitteeChanged"
EXPENSE_RECORDED = _FUND + "ExpenseRecorded"
EXPENSE_REVERSED = _FUND + "ExpenseReversed"
PERIOD_CLOSED = _FUND + "PeriodClosed"
HOST_DETAILS_RECORDED = _FUND + "HostDetailsRecorded"

DONATION_RECEIVED = _DONATION + "Received"
DONATION_REFUNDED = _DONATION + "Refunded"
DONATION_REVERSED = _DONATION + "Reversed"
DONOR_ERASED = _DONATION + "DonorErased"

GRANT_PROPOSED = _GRANT + "Proposed"
GRANT_APPROVED = _GRANT + "Approved"
GRANT_COMMITTED_ON_GRANT = _GRANT + "Committed"
GRANT_REJECTED = _GRANT + "Rejected"
GRANT_CANCELLED = _GRANT + "Cancelled"
GRANT_CLOSED = _GRANT + "Closed"
GRANT_DISBURSED = _GRANT + "Disbursed"
GRANT_DISBURSEMENT_REVERSED = _GRANT + "DisbursementReversed"
GRANT_PROGRESS_RECORDED = _GRANT + "ProgressRecorded"


def fund_topic(event_name: str) -> str:
    """The topic of one of the Fund's events, by its class name (``DonationCredited``)."""
    return _FUND + event_name
