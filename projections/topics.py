"""The topics of the events the read models follow (the library's ``module:Class.Event``)."""

from __future__ import annotations

_FUND = "ledger.domain.fund:Fund."
_DONATION = "ledger.domain.donation:Donation."
_GRANT = "ledger.domain.grant:Grant."

FUND_OPENED = _FUND + "Opened"
PURPOSE_ADDED = _FUND + "PurposeAdded"
COMMITTEE_CHANGED = _FUND + "CommitteeChanged"
DONATION_CREDITED = _FUND + "DonationCredited"
DONATION_REFUND_DEBITED = _FUND + "DonationRefundDebited"
DONATION_REVERSAL_DEBITED = _FUND + "DonationReversalDebited"
GRANT_COMMITTED = _FUND + "GrantCommitted"
GRANT_RELEASED = _FUND + "GrantReleased"
DISBURSEMENT_DEBITED = _FUND + "DisbursementDebited"
DISBURSEMENT_REVERSAL_CREDITED = _FUND + "DisbursementReversalCredited"
EXPENSE_RECORDED = _FUND + "ExpenseRecorded"
EXPENSE_REVERSED = _FUND + "ExpenseReversed"
PERIOD_CLOSED = _FUND + "PeriodClosed"

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

# Fund events that move money (or commit it): each is one journal line.
MONEY_TOPICS = (
    DONATION_CREDITED,
    DONATION_REFUND_DEBITED,
    DONATION_REVERSAL_DEBITED,
    GRANT_COMMITTED,
    GRANT_RELEASED,
    DISBURSEMENT_DEBITED,
    DISBURSEMENT_REVERSAL_CREDITED,
    EXPENSE_RECORDED,
    EXPENSE_REVERSED,
)
