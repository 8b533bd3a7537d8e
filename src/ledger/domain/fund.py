"""The Fund aggregate: a sub-ledger of the host charity, and every change of its money.

A fund keeps, per purpose (restricted money) and for unrestricted money (``UNRESTRICTED``),
the six running figures of ``ledger.domain.figures``; each money event moves its figure as
``figures.EFFECTS`` says, and ``on_hand`` and ``available`` follow from them there.
``available`` never goes below zero: every command that takes money out checks it first.
Each money event names the donation, grant or expense it belongs to; the other aggregate's
own event is saved in the same transaction, so the two never disagree.

The host charity's details (name, unified social credit code, public-fundraising status)
are recorded on the fund (``HostDetailsRecorded``); a fund opened without them has none
(``host_credit_code`` and ``host_public_fundraising`` are None) and keeps the host's name it
was opened with.

Longer than 500 lines because an aggregate, its events and its rules live together: nine
money events and five of structure, each a validating command beside the method that
records it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, tzinfo
from typing import Any

from eventsourcing.domain import Aggregate, event

from ledger.domain.common import (
    APPROVALS_REQUIRED_MAX,
    CODE_RE,
    COMMITTEE_SIZE_MAX,
    NAME_LEN_MAX,
    PERIOD_RE,
    PURPOSES_MAX,
    TEXT_LEN_MAX,
    check_business_date,
    check_date,
    check_period_open,
    check_slug,
    check_text,
    fund_id,
    identity_key,
    period_of,
)
from ledger.domain.credit_code import check_credit_code
from ledger.domain.errors import (
    AlreadyReversed,
    DuplicateCode,
    ExpenseNotFound,
    FigureLimitReached,
    InsufficientFunds,
    InvalidDate,
    InvalidField,
    PeriodNotEnded,
    UnknownPurpose,
)
from ledger.domain.figures import (
    EFFECTS,
    EXPENSE_CATEGORIES,
    FIGURE_MINOR_MAX,
    UNRESTRICTED,
    apply_effect,
    available_of,
    on_hand_of,
    room_left,
    total_of,
    zero_figures,
)
from ledger.domain.money import check_amount, exponent_of, format_amount


def check_committee(committee: object, approvals_required: object) -> tuple[list[str], int]:
    if not isinstance(committee, list) or len(committee) > COMMITTEE_SIZE_MAX:
        raise InvalidField(
            f"committee must be a list of at most {COMMITTEE_SIZE_MAX} names", field="committee"
        )
    members = [check_text("committee member", m, max_len=NAME_LEN_MAX) for m in committee]
    if len({identity_key(m) for m in members}) != len(members):
        raise InvalidField(
            "committee members must be distinct (compared in NFC)",
            field="committee",
        )
    if (
        isinstance(approvals_required, bool)
        or not isinstance(approvals_required, int)
        or not 1 <= approvals_required <= APPROVALS_REQUIRED_MAX
    ):
        raise InvalidField(
            f"approvals_required must be 1..{APPROVALS_REQUIRED_MAX}", field="approvals_required"
        )
    if approvals_required > len(members):
        raise InvalidField(
            "approvals_required is larger than the committee", field="approvals_required"
        )
    return members, approvals_required


@dataclass(frozen=True, slots=True)
class Expense:
    """One expense paid from a fund (its id is the key of ``Fund.expenses``)."""

    amount_minor: int
    purpose: str
    category: str
    reversed: bool
    request_sha256: str
    paid_on: str  # ISO date


class Fund(Aggregate):
    """One community fund. Its id is derived from its slug.

    ``class_version`` 4: expenses are ``Expense`` records with their payment date, and the
    host's credit code and public-fundraising status are kept. Snapshots of older versions
    (release 0.1's positional lists, and versions without the expense dates, which no
    upcaster could supply) are not read: ``snapshot_class_version_min`` makes the store pass
    over them, and the fund is replayed from its events (docs/architecture.md, "Snapshots").
    """

    class_version = 4
    snapshot_class_version_min = 4

    @staticmethod
    def create_id(slug: str) -> Any:
        return fund_id(slug)

    @classmethod
    def open(
        cls,
        *,
        slug: str,
        name: str,
        currency: str,
        description: str,
        host: str,
        committee: list[str],
        approvals_required: int,
        purposes: list[dict[str, str]],
        actor: str,
        request_sha256: str,
    ) -> Fund:
        check_slug("slug", slug)
        name = check_text("name", name, max_len=NAME_LEN_MAX)
        exponent_of(currency)
        description = check_text(
            "description", description, max_len=TEXT_LEN_MAX, required=False, multiline=True
        )
        host = check_text("host", host, max_len=NAME_LEN_MAX)
        members, approvals_required = check_committee(committee, approvals_required)
        if len(purposes) > PURPOSES_MAX:
            raise InvalidField(f"at most {PURPOSES_MAX} purposes", field="purposes")
        codes = [check_slug("purpose code", p.get("code"), CODE_RE) for p in purposes]
        purposes = [
            {
                "code": p["code"],
                "name": check_text("purpose name", p.get("name"), max_len=NAME_LEN_MAX),
            }
            for p in purposes
        ]
        if len(set(codes)) != len(codes):
            raise DuplicateCode("purpose codes must be distinct", field="purposes")
        return cls(
            slug=slug,
            name=name,
            currency=currency,
            description=description,
            host=host,
            committee=members,
            approvals_required=approvals_required,
            purposes=[{"code": p["code"], "name": p["name"]} for p in purposes],
            actor=actor,
            request_sha256=request_sha256,
        )

    @event("Opened")
    def __init__(
        self,
        *,
        slug: str,
        name: str,
        currency: str,
        description: str,
        host: str,
        committee: list[str],
        approvals_required: int,
        purposes: list[dict[str, str]],
        actor: str,
        request_sha256: str,
    ) -> None:
        self.slug = slug
        self.name = name
        self.currency = currency
        self.description = description
        self.host = host
        self.host_credit_code: str | None = None
        self.host_public_fundraising: bool | None = None
        self.committee = list(committee)
        self.approvals_required = approvals_required
        self.purposes: dict[str, str] = {p["code"]: p["name"] for p in purposes}
        self.request_sha256 = request_sha256
        self.figures: dict[str, dict[str, int]] = {UNRESTRICTED: zero_figures()}
        for code in self.purposes:
            self.figures[code] = zero_figures()
        self.receipt_seq: dict[str, int] = {}
        self.closed_periods: list[str] = []
        self.expenses: dict[str, Expense] = {}

    # -- queries -----------------------------------------------------------------------------

    def check_purpose(self, purpose: str | None) -> str:
        code = purpose or UNRESTRICTED
        if code != UNRESTRICTED and code not in self.purposes:
            raise UnknownPurpose(
                f"fund {self.slug} has no purpose {code!r}", purpose=code, fund=self.slug
            )
        return code

    def available_minor(self, purpose: str = UNRESTRICTED) -> int:
        return available_of(self.figures[purpose])

    def on_hand_minor(self, purpose: str = UNRESTRICTED) -> int:
        return on_hand_of(self.figures[purpose])

    def totals(self) -> dict[str, int]:
        return total_of(self.figures.values())

    def opened_on(self, tz: tzinfo) -> date:
        """The day the fund was opened, in the time zone ``tz``."""
        opened_at: datetime = self.created_on
        return opened_at.astimezone(tz).date()

    def check_business_date(self, label: str, day: date, *, today: date, tz: tzinfo) -> date:
        """``day`` is a date an entry of this fund may carry: not in the future (``today``,
        in ``tz``), not more than ``BUSINESS_DATE_GRACE_DAYS`` before the fund was opened."""
        # (never later than ``today``: a clock set back, as in a rehearsal, moves it too)
        opened_on = min(self.opened_on(tz), today)
        return check_business_date(label, day, opened_on=opened_on, today=today)

    def check_open(self, day: date) -> None:
        check_period_open(self.closed_periods, day)

    def _need_room(self, event_name: str, amount_minor: int) -> None:
        """Refuse an entry that would take a figure of the fund's totals (and so of a
        purpose, a month, a grant or the journal's balance) past ``FIGURE_MINOR_MAX``."""
        room = room_left(self.figures.values(), event_name)
        if room is not None and amount_minor > room:
            figure = EFFECTS[event_name].figure
            raise FigureLimitReached(
                f"this entry would take the fund's {figure} past "
                f"{format_amount(FIGURE_MINOR_MAX, currency=self.currency)}, the most a "
                f"running figure may reach; "
                f"{format_amount(max(room, 0), currency=self.currency)} is left",
                figure=figure,
                room=format_amount(max(room, 0), currency=self.currency),
                limit=format_amount(FIGURE_MINOR_MAX, currency=self.currency),
            )

    def _need_available(self, purpose: str, amount_minor: int, what: str) -> None:
        available = self.available_minor(purpose)
        if amount_minor > available:
            where = f"purpose {purpose!r}" if purpose else "unrestricted money"
            raise InsufficientFunds(
                f"{what} of {format_amount(amount_minor, currency=self.currency)} exceeds "
                f"the {format_amount(available, currency=self.currency)} available in {where}",
                purpose=purpose,
                available_minor=available,
                amount_minor=amount_minor,
                currency=self.currency,
            )

    # -- structure ---------------------------------------------------------------------------

    def add_purpose(self, *, code: str, name: str, actor: str) -> None:
        check_slug("purpose code", code, CODE_RE)
        name = check_text("purpose name", name, max_len=NAME_LEN_MAX)
        if code in self.purposes:
            raise DuplicateCode(f"fund {self.slug} already has purpose {code!r}", purpose=code)
        if len(self.purposes) >= PURPOSES_MAX:
            raise InvalidField(f"at most {PURPOSES_MAX} purposes", field="purposes")
        self._purpose_added(code=code, name=name, actor=actor)

    @event("PurposeAdded")
    def _purpose_added(self, code: str, name: str, actor: str) -> None:
        self.purposes[code] = name
        self.figures[code] = zero_figures()

    def change_committee(
        self, *, committee: list[str], approvals_required: int, actor: str
    ) -> None:
        members, required = check_committee(committee, approvals_required)
        self._committee_changed(committee=members, approvals_required=required, actor=actor)

    @event("CommitteeChanged")
    def _committee_changed(self, committee: list[str], approvals_required: int, actor: str) -> None:
        self.committee = list(committee)
        self.approvals_required = approvals_required

    def record_host_details(
        self, *, name: str, credit_code: str, public_fundraising: bool, actor: str
    ) -> bool:
        """Record the host charity's name, unified social credit code (GB 32100-2015) and
        whether it may raise funds publicly (公开募捐资格). The same details again record
        nothing (returns False)."""
        name = check_text("host name", name, max_len=NAME_LEN_MAX)  # as the text policy keeps it
        check_credit_code(credit_code)
        if not isinstance(public_fundraising, bool):
            raise InvalidField("public_fundraising must be yes or no", field="public_fundraising")
        name = name.strip()
        if (name, credit_code, public_fundraising) == (
            self.host,
            self.host_credit_code,
            self.host_public_fundraising,
        ):
            return False
        self._host_details_recorded(
            name=name, credit_code=credit_code, public_fundraising=public_fundraising, actor=actor
        )
        return True

    @event("HostDetailsRecorded")
    def _host_details_recorded(
        self, name: str, credit_code: str, public_fundraising: bool, actor: str
    ) -> None:
        self.host = name
        self.host_credit_code = credit_code
        self.host_public_fundraising = public_fundraising

    # -- donations ---------------------------------------------------------------------------

    def credit_donation(
        self, *, donation_id: str, amount_minor: int, purpose: str, received_on: date, actor: str
    ) -> str:
        """Credit a new donation and hand out its receipt number (gap-free per year)."""
        check_amount(amount_minor)
        code = self.check_purpose(purpose)
        self.check_open(received_on)
        self._need_room("DonationCredited", amount_minor)
        year = str(received_on.year)
        receipt_no = f"{self.slug}-{year}-{self.receipt_seq.get(year, 0) + 1:06d}"
        # Triggered directly, not through an ``@event`` method: the library's decorated-method
        # call checks the same arguments twice more (this is the hottest command).
        self.trigger_event(
            self.DonationCredited,
            donation_id=donation_id,
            amount_minor=amount_minor,
            purpose=code,
            receipt_no=receipt_no,
            occurred_on=received_on.isoformat(),
            actor=actor,
        )
        return receipt_no

    class DonationCredited(Aggregate.Event):
        donation_id: str
        amount_minor: int
        purpose: str
        receipt_no: str
        occurred_on: str
        actor: str

        def apply(self, aggregate: Any) -> None:
            apply_effect(aggregate.figures[self.purpose], "DonationCredited", self.amount_minor)
            year = self.receipt_no.rsplit("-", 2)[1]
            aggregate.receipt_seq[year] = aggregate.receipt_seq.get(year, 0) + 1

    def debit_refund(
        self,
        *,
        donation_id: str,
        refund_id: str,
        amount_minor: int,
        purpose: str,
        refunded_on: date,
        actor: str,
    ) -> None:
        check_amount(amount_minor)
        self.check_open(refunded_on)
        self._need_available(purpose, amount_minor, "refund")
        self._need_room("DonationRefundDebited", amount_minor)
        self._donation_refund_debited(
            donation_id=donation_id,
            refund_id=refund_id,
            amount_minor=amount_minor,
            purpose=purpose,
            occurred_on=refunded_on.isoformat(),
            actor=actor,
        )

    @event("DonationRefundDebited")
    def _donation_refund_debited(
        self,
        donation_id: str,
        refund_id: str,
        amount_minor: int,
        purpose: str,
        occurred_on: str,
        actor: str,
    ) -> None:
        apply_effect(self.figures[purpose], "DonationRefundDebited", amount_minor)

    def debit_reversal(
        self, *, donation_id: str, amount_minor: int, purpose: str, reversed_on: date, actor: str
    ) -> None:
        """Take back what is left of a donation recorded in error (counted as refunded)."""
        check_amount(amount_minor, allow_zero=True)
        self.check_open(reversed_on)
        self._need_available(purpose, amount_minor, "reversal")
        self._need_room("DonationReversalDebited", amount_minor)
        self._donation_reversal_debited(
            donation_id=donation_id,
            amount_minor=amount_minor,
            purpose=purpose,
            occurred_on=reversed_on.isoformat(),
            actor=actor,
        )

    @event("DonationReversalDebited")
    def _donation_reversal_debited(
        self, donation_id: str, amount_minor: int, purpose: str, occurred_on: str, actor: str
    ) -> None:
        apply_effect(self.figures[purpose], "DonationReversalDebited", amount_minor)

    # -- grants ------------------------------------------------------------------------------

    def commit_grant(
        self, *, grant_id: str, amount_minor: int, purpose: str, committed_on: date, actor: str
    ) -> None:
        check_amount(amount_minor)
        self.check_open(committed_on)
        self._need_available(purpose, amount_minor, "grant")
        self._need_room("GrantCommitted", amount_minor)
        self._grant_committed(
            grant_id=grant_id,
            amount_minor=amount_minor,
            purpose=purpose,
            occurred_on=committed_on.isoformat(),
            actor=actor,
        )

    @event("GrantCommitted")
    def _grant_committed(
        self, grant_id: str, amount_minor: int, purpose: str, occurred_on: str, actor: str
    ) -> None:
        apply_effect(self.figures[purpose], "GrantCommitted", amount_minor)

    def debit_disbursement(
        self,
        *,
        grant_id: str,
        tranche_no: int,
        amount_minor: int,
        purpose: str,
        paid_on: date,
        actor: str,
    ) -> None:
        """A tranche paid out of money already committed to the grant (no availability check:
        the grant checks that the tranche stays within its commitment)."""
        check_amount(amount_minor)
        self.check_open(paid_on)
        self._need_room("DisbursementDebited", amount_minor)
        self._disbursement_debited(
            grant_id=grant_id,
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            purpose=purpose,
            occurred_on=paid_on.isoformat(),
            actor=actor,
        )

    @event("DisbursementDebited")
    def _disbursement_debited(
        self,
        grant_id: str,
        tranche_no: int,
        amount_minor: int,
        purpose: str,
        occurred_on: str,
        actor: str,
    ) -> None:
        apply_effect(self.figures[purpose], "DisbursementDebited", amount_minor)

    def credit_disbursement_reversal(
        self,
        *,
        grant_id: str,
        tranche_no: int,
        amount_minor: int,
        purpose: str,
        reversed_on: date,
        actor: str,
    ) -> None:
        check_amount(amount_minor)
        self.check_open(reversed_on)
        self._disbursement_reversal_credited(
            grant_id=grant_id,
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            purpose=purpose,
            occurred_on=reversed_on.isoformat(),
            actor=actor,
        )

    @event("DisbursementReversalCredited")
    def _disbursement_reversal_credited(
        self,
        grant_id: str,
        tranche_no: int,
        amount_minor: int,
        purpose: str,
        occurred_on: str,
        actor: str,
    ) -> None:
        apply_effect(self.figures[purpose], "DisbursementReversalCredited", amount_minor)

    def release_grant(
        self, *, grant_id: str, amount_minor: int, purpose: str, released_on: date, actor: str
    ) -> None:
        check_amount(amount_minor)
        self.check_open(released_on)
        self._need_room("GrantReleased", amount_minor)
        self._grant_released(
            grant_id=grant_id,
            amount_minor=amount_minor,
            purpose=purpose,
            occurred_on=released_on.isoformat(),
            actor=actor,
        )

    @event("GrantReleased")
    def _grant_released(
        self, grant_id: str, amount_minor: int, purpose: str, occurred_on: str, actor: str
    ) -> None:
        apply_effect(self.figures[purpose], "GrantReleased", amount_minor)

    # -- expenses ----------------------------------------------------------------------------

    def record_expense(
        self,
        *,
        expense_id: str,
        amount_minor: int,
        category: str,
        paid_on: date,
        payee: str,
        description: str,
        purpose: str | None,
        actor: str,
        request_sha256: str,
    ) -> None:
        check_amount(amount_minor)
        if category not in EXPENSE_CATEGORIES:
            raise InvalidField(
                f"category must be one of {', '.join(EXPENSE_CATEGORIES)}", field="category"
            )
        payee = check_text("payee", payee, max_len=NAME_LEN_MAX)
        description = check_text("description", description, max_len=TEXT_LEN_MAX, multiline=True)
        code = self.check_purpose(purpose)
        self.check_open(paid_on)
        self._need_available(code, amount_minor, "expense")
        self._need_room("ExpenseRecorded", amount_minor)
        self._expense_recorded(
            expense_id=expense_id,
            amount_minor=amount_minor,
            category=category,
            payee=payee,
            description=description,
            purpose=code,
            occurred_on=paid_on.isoformat(),
            actor=actor,
            request_sha256=request_sha256,
        )

    @event("ExpenseRecorded")
    def _expense_recorded(
        self,
        expense_id: str,
        amount_minor: int,
        category: str,
        payee: str,
        description: str,
        purpose: str,
        occurred_on: str,
        actor: str,
        request_sha256: str,
    ) -> None:
        apply_effect(self.figures[purpose], "ExpenseRecorded", amount_minor)
        self.expenses[expense_id] = Expense(
            amount_minor=amount_minor,
            purpose=purpose,
            category=category,
            reversed=False,
            request_sha256=request_sha256,
            paid_on=occurred_on,
        )

    def reverse_expense(
        self, *, expense_id: str, reason: str, reversed_on: date, actor: str
    ) -> None:
        expense = self.expenses.get(expense_id)
        if expense is None:
            raise ExpenseNotFound(f"no expense {expense_id} in fund {self.slug}", id=expense_id)
        if expense.reversed:
            raise AlreadyReversed(f"expense {expense_id} is already reversed", id=expense_id)
        reason = check_text("reason", reason, max_len=TEXT_LEN_MAX, multiline=True)
        self.check_open(reversed_on)
        if reversed_on.isoformat() < expense.paid_on:
            raise InvalidField(
                f"an expense reversal cannot predate the expense ({expense.paid_on})",
                field="reversed_on",
                earliest=expense.paid_on,
            )
        self._expense_reversed(
            expense_id=expense_id,
            amount_minor=expense.amount_minor,
            purpose=expense.purpose,
            reason=reason,
            occurred_on=reversed_on.isoformat(),
            actor=actor,
        )

    @event("ExpenseReversed")
    def _expense_reversed(
        self,
        expense_id: str,
        amount_minor: int,
        purpose: str,
        reason: str,
        occurred_on: str,
        actor: str,
    ) -> None:
        apply_effect(self.figures[purpose], "ExpenseReversed", amount_minor)
        self.expenses[expense_id] = replace(self.expenses[expense_id], reversed=True)

    # -- periods -----------------------------------------------------------------------------

    def close_period(self, *, period: str, today: date, actor: str) -> None:
        if not isinstance(period, str) or not PERIOD_RE.fullmatch(period):
            raise InvalidField("period must be YYYY-MM", field="period")
        try:
            check_date("period", f"{period}-01")  # the year 0000 is no date
        except InvalidDate:
            raise InvalidField("period must be YYYY-MM", field="period") from None
        if period >= period_of(today):
            raise PeriodNotEnded(f"period {period} has not ended yet", period=period)
        if period in self.closed_periods:
            return  # closing twice changes nothing
        self._period_closed(period=period, occurred_on=today.isoformat(), actor=actor)

    @event("PeriodClosed")
    def _period_closed(self, period: str, occurred_on: str, actor: str) -> None:
        self.closed_periods.append(period)
        self.closed_periods.sort()
