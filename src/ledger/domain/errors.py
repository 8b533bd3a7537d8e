"""The ledger's typed errors.

Every error carries its facts as attributes, and a stable ``slug`` that the edges use as
the problem ``type`` (HTTP) and in one-line messages (CLI)::

    LedgerError
    ├── InvalidInput            bad money, bad dates, unknown codes      → 422
    │   └── (many; see below)
    ├── NotFound                an unknown fund, donation, grant, ...    → 404
    ├── Forbidden               separation of duties (self-approval)     → 403
    ├── RuleViolated            a domain rule refuses the command        → 409
    │   ├── InsufficientFunds, GrantOverdrawn, RefundTooLarge, PeriodClosed, ...
    │   ├── FigureLimitReached     a fund's running figure would pass FIGURE_MINOR_MAX
    │   └── IdempotencyKeyReused
    └── Conflict                concurrent writers kept winning          → 409

The domain raises them; ``api/errors.py`` and the CLI map them, nothing else does.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    slug: ClassVar[str] = "ledger-error"
    title: ClassVar[str] = "Ledger error"

    def __init__(self, message: str, **facts: Any) -> None:
        super().__init__(message)
        self.message = message
        self.facts = facts

    def __str__(self) -> str:
        return self.message


class InvalidInput(LedgerError):
    slug = "invalid-input"
    title = "Invalid input"


class InvalidAmount(InvalidInput):
    slug = "invalid-amount"
    title = "Invalid amount"


class AmountNotPositive(InvalidAmount):
    slug = "amount-not-positive"
    title = "Amount must be positive"


class TooManyDecimals(InvalidAmount):
    slug = "too-many-decimals"
    title = "More fractional digits than the currency has"


class UnknownCurrency(InvalidInput):
    slug = "unknown-currency"
    title = "Unknown currency"


class InvalidDate(InvalidInput):
    slug = "invalid-date"
    title = "Invalid date"


class DateInFuture(InvalidDate):
    slug = "date-in-future"
    title = "Business date in the future"


class DateTooEarly(InvalidDate):
    slug = "date-too-early"
    title = "Business date before the window the fund allows"


class UnknownPurpose(InvalidInput):
    slug = "unknown-purpose"
    title = "Unknown purpose"


class InvalidField(InvalidInput):
    slug = "invalid-field"
    title = "Invalid field"


class InvalidCreditCode(InvalidField):
    slug = "invalid-credit-code"
    title = "Not a valid unified social credit code"


class NotFound(LedgerError):
    slug = "not-found"
    title = "Not found"


class FundNotFound(NotFound):
    slug = "fund-not-found"
    title = "Fund not found"


class DonationNotFound(NotFound):
    slug = "donation-not-found"
    title = "Donation not found"


class GrantNotFound(NotFound):
    slug = "grant-not-found"
    title = "Grant not found"


class ExpenseNotFound(NotFound):
    slug = "expense-not-found"
    title = "Expense not found"


class TrancheNotFound(NotFound):
    slug = "tranche-not-found"
    title = "Tranche not found"


class Forbidden(LedgerError):
    slug = "forbidden"
    title = "Forbidden"


class SelfApproval(Forbidden):
    slug = "self-approval"
    title = "The proposer may not approve their own grant"


class NotCommitteeMember(Forbidden):
    slug = "not-committee-member"
    title = "Only committee members may do this"


class RuleViolated(LedgerError):
    slug = "rule-violated"
    title = "A ledger rule refuses this"


class InsufficientFunds(RuleViolated):
    slug = "insufficient-funds"
    title = "Not enough available money"


class GrantOverdrawn(RuleViolated):
    slug = "grant-overdrawn"
    title = "Disbursements would exceed the committed amount"


class FigureLimitReached(RuleViolated):
    slug = "figure-limit-reached"
    title = "A running figure of the fund would pass the ledger's bound"


class RefundTooLarge(RuleViolated):
    slug = "refund-too-large"
    title = "Refunds would exceed the donation"


class PeriodClosed(RuleViolated):
    slug = "period-closed"
    title = "The period is closed"


class PeriodNotEnded(RuleViolated):
    slug = "period-not-ended"
    title = "Only a month that has ended can be closed"


class InvalidState(RuleViolated):
    slug = "invalid-state"
    title = "Not allowed in the current state"


class AlreadyReversed(InvalidState):
    slug = "already-reversed"
    title = "Already reversed"


class AlreadyApproved(InvalidState):
    slug = "already-approved"
    title = "This member has already approved"


class DuplicateCode(RuleViolated):
    slug = "duplicate"
    title = "Already exists"


class IdempotencyKeyReused(RuleViolated):
    slug = "idempotency-key-reused"
    title = "Idempotency key reused with different content"


class Conflict(LedgerError):
    slug = "conflict"
    title = "Concurrent changes kept conflicting"
