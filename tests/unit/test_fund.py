"""Fund: opening, purposes, the money pools, receipts, periods and expenses.

The builders (``open_fund``, ``funded``, ...) come from conftest.py as factory fixtures; the
fund they open has the committee alice, bob, carol and the purposes ``elderly-care`` and
``school``. Amounts are CNY fen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.application import project_aggregate
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger.domain.common import (
    APPROVALS_REQUIRED_MAX,
    COMMITTEE_SIZE_MAX,
    PURPOSES_MAX,
    fund_id,
)
from ledger.domain.errors import (
    AlreadyReversed,
    AmountNotPositive,
    DuplicateCode,
    ExpenseNotFound,
    GrantOverdrawn,
    InsufficientFunds,
    InvalidField,
    InvalidState,
    PeriodClosed,
    PeriodNotEnded,
    UnknownCurrency,
    UnknownPurpose,
)
from ledger.domain.figures import UNRESTRICTED
from ledger.domain.fund import Fund
from ledger.domain.grant import COMMITTED, Grant

ACTOR = "treasurer"
DAY = date(2024, 3, 15)


def record_expense(fund: Fund, amount_minor: int, **overrides: Any) -> str:
    fields: dict[str, Any] = {
        "expense_id": f"expense-{len(fund.expenses) + 1}",
        "amount_minor": amount_minor,
        "category": "program",
        "paid_on": DAY,
        "payee": "Grocer",
        "description": "Rice for the lunch programme",
        "purpose": None,
        "actor": ACTOR,
        "request_sha256": "e" * 64,
    }
    fields.update(overrides)
    fund.record_expense(**fields)
    return str(fields["expense_id"])


def credit(fund: Fund, amount_minor: int, *, purpose: str = "", on: date = DAY) -> str:
    return fund.credit_donation(
        donation_id=f"donation-{amount_minor}",
        amount_minor=amount_minor,
        purpose=purpose,
        received_on=on,
        actor=ACTOR,
    )


def refund(fund: Fund, amount_minor: int, *, purpose: str = "", on: date = DAY) -> None:
    fund.debit_refund(
        donation_id="donation-1",
        refund_id="refund-1",
        amount_minor=amount_minor,
        purpose=purpose,
        refunded_on=on,
        actor=ACTOR,
    )


def commit(fund: Fund, amount_minor: int, *, purpose: str = "", on: date = DAY) -> None:
    fund.commit_grant(
        grant_id="grant-1", amount_minor=amount_minor, purpose=purpose, committed_on=on, actor="bob"
    )


def reverse_donation(fund: Fund, amount_minor: int, *, purpose: str = "", on: date = DAY) -> None:
    fund.debit_reversal(
        donation_id="donation-1",
        amount_minor=amount_minor,
        purpose=purpose,
        reversed_on=on,
        actor=ACTOR,
    )


# -- opening ---------------------------------------------------------------------------------


def test_opening_a_fund_records_what_it_was_opened_with(
    open_fund: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = open_fund(slug="river-fund", committee=["alice", "bob"], approvals_required=2)

    assert fund.id == fund_id("river-fund")
    assert fund.committee == ["alice", "bob"]
    assert fund.approvals_required == 2
    assert fund.purposes == {"elderly-care": "养老", "school": "助学"}
    assert set(fund.figures) == {UNRESTRICTED, "elderly-care", "school"}
    assert all(fund.available_minor(p) == 0 for p in fund.figures)
    (opened,) = fund.collect_events()
    assert type(opened).__qualname__ == "Fund.Opened"
    assert opened.actor == "treasurer"  # type: ignore[attr-defined]
    assert opened.slug == "river-fund"  # type: ignore[attr-defined]


@pytest.mark.parametrize("slug", ["a", "7", "river-fund", "fund-2024", "a" * 40, "a-b-c"])
def test_a_slug_of_lowercase_letters_digits_and_inner_dashes_is_accepted(
    open_fund: Callable[..., Fund], slug: str
) -> None:
    assert open_fund(slug=slug).slug == slug


@pytest.mark.parametrize(
    "slug",
    ["", "-river", "river-", "River", "river_fund", "river fund", "a" * 41, "河", "river\n", 7],
    ids=repr,
)
def test_a_slug_outside_the_pattern_is_refused(open_fund: Callable[..., Fund], slug: str) -> None:
    with pytest.raises(InvalidField) as excinfo:
        open_fund(slug=slug)
    assert excinfo.value.facts["field"] == "slug"


def test_a_fund_in_an_unknown_currency_is_refused(open_fund: Callable[..., Fund]) -> None:
    with pytest.raises(UnknownCurrency):
        open_fund(currency="XYZ")


@pytest.mark.parametrize("approvals_required", [1, 2, 3])
def test_approvals_required_from_one_to_the_committee_size_is_accepted(
    open_fund: Callable[..., Fund], approvals_required: int
) -> None:
    fund = open_fund(committee=["alice", "bob", "carol"], approvals_required=approvals_required)
    assert fund.approvals_required == approvals_required


@pytest.mark.parametrize("approvals_required", [0, -1, 4, True, "2", 2.0], ids=repr)
def test_approvals_required_outside_one_to_the_committee_size_is_refused(
    open_fund: Callable[..., Fund], approvals_required: object
) -> None:
    with pytest.raises(InvalidField) as excinfo:
        open_fund(committee=["alice", "bob", "carol"], approvals_required=approvals_required)
    assert excinfo.value.facts["field"] == "approvals_required"


def test_approvals_required_is_capped_even_for_a_large_committee(
    open_fund: Callable[..., Fund],
) -> None:
    committee = [f"member-{i}" for i in range(APPROVALS_REQUIRED_MAX + 1)]
    assert open_fund(committee=committee, approvals_required=APPROVALS_REQUIRED_MAX)
    with pytest.raises(InvalidField):
        open_fund(committee=committee, approvals_required=APPROVALS_REQUIRED_MAX + 1)


def test_a_committee_of_the_largest_size_is_accepted_and_one_more_refused(
    open_fund: Callable[..., Fund],
) -> None:
    committee = [f"member-{i}" for i in range(COMMITTEE_SIZE_MAX)]
    assert len(open_fund(committee=committee).committee) == COMMITTEE_SIZE_MAX
    with pytest.raises(InvalidField):
        open_fund(committee=[*committee, "one-more"])


@pytest.mark.parametrize(
    "committee",
    [["alice", "alice"], ["alice", " alice"], ["alice", "bob", "alice "]],
    ids=repr,
)
def test_a_committee_with_the_same_member_twice_is_refused(
    open_fund: Callable[..., Fund], committee: list[str]
) -> None:
    with pytest.raises(InvalidField) as excinfo:
        open_fund(committee=committee, approvals_required=1)
    assert excinfo.value.facts["field"] == "committee"


@pytest.mark.parametrize("member", ["", "   ", None, "bo\x00b"], ids=repr)
def test_a_committee_member_without_a_proper_name_is_refused(
    open_fund: Callable[..., Fund], member: object
) -> None:
    with pytest.raises(InvalidField):
        open_fund(committee=["alice", member], approvals_required=1)


def test_committee_names_are_kept_without_surrounding_blanks(
    open_fund: Callable[..., Fund],
) -> None:
    assert open_fund(committee=[" alice", "bob "]).committee == ["alice", "bob"]


def test_purposes_with_the_same_code_twice_are_refused(open_fund: Callable[..., Fund]) -> None:
    purposes = [{"code": "school", "name": "助学"}, {"code": "school", "name": "学校"}]
    with pytest.raises(DuplicateCode):
        open_fund(purposes=purposes)


@pytest.mark.parametrize(
    "purpose",
    [
        {"code": "School", "name": "助学"},
        {"code": "-school", "name": "助学"},
        {"code": "s" * 33, "name": "助学"},
        {"code": "school\n", "name": "助学"},
        {"code": "school", "name": ""},
        {"name": "助学"},
    ],
    ids=repr,
)
def test_a_purpose_with_a_bad_code_or_no_name_is_refused(
    open_fund: Callable[..., Fund], purpose: dict[str, str]
) -> None:
    with pytest.raises(InvalidField):
        open_fund(purposes=[purpose])


def test_a_purpose_code_of_the_longest_length_is_accepted(open_fund: Callable[..., Fund]) -> None:
    fund = open_fund(purposes=[{"code": "s" * 32, "name": "助学"}])
    assert "s" * 32 in fund.purposes


def test_a_fund_may_open_with_the_most_purposes_and_not_one_more(
    open_fund: Callable[..., Fund],
) -> None:
    purposes = [{"code": f"p{i}", "name": f"P{i}"} for i in range(PURPOSES_MAX)]
    assert len(open_fund(purposes=purposes).purposes) == PURPOSES_MAX
    with pytest.raises(InvalidField):
        open_fund(purposes=[*purposes, {"code": "extra", "name": "Extra"}])


# -- purposes and committee ------------------------------------------------------------------


def test_adding_a_purpose_opens_an_empty_pool_for_it(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded()
    fund.add_purpose(code="clinic", name="医疗", actor=ACTOR)

    assert fund.purposes["clinic"] == "医疗"
    assert fund.available_minor("clinic") == 0
    assert fund.check_purpose("clinic") == "clinic"
    assert event_names(fund) == ["Fund.PurposeAdded"]


def test_adding_a_purpose_that_exists_is_refused_and_records_nothing(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded()
    with pytest.raises(DuplicateCode):
        fund.add_purpose(code="school", name="学校", actor=ACTOR)
    assert fund.purposes["school"] == "助学"
    assert event_names(fund) == []


def test_adding_a_purpose_beyond_the_most_a_fund_may_have_is_refused(
    open_fund: Callable[..., Fund],
) -> None:
    purposes = [{"code": f"p{i}", "name": f"P{i}"} for i in range(PURPOSES_MAX - 1)]
    fund = open_fund(purposes=purposes)
    fund.add_purpose(code="last", name="Last", actor=ACTOR)
    with pytest.raises(InvalidField):
        fund.add_purpose(code="one-more", name="One more", actor=ACTOR)


def test_an_unknown_purpose_is_refused_and_no_purpose_means_unrestricted(
    funded: Callable[..., Fund],
) -> None:
    fund = funded()
    assert fund.check_purpose(None) == UNRESTRICTED
    assert fund.check_purpose("") == UNRESTRICTED
    with pytest.raises(UnknownPurpose) as excinfo:
        fund.check_purpose("clinic")
    assert excinfo.value.facts["purpose"] == "clinic"


def test_changing_the_committee_records_the_new_members_and_approvals_required(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded()
    fund.change_committee(committee=["dave", "erin"], approvals_required=1, actor=ACTOR)
    assert fund.committee == ["dave", "erin"]
    assert fund.approvals_required == 1
    assert event_names(fund) == ["Fund.CommitteeChanged"]


def test_changing_the_committee_to_fewer_members_than_approvals_required_is_refused(
    funded: Callable[..., Fund],
) -> None:
    fund = funded()
    with pytest.raises(InvalidField):
        fund.change_committee(committee=["dave"], approvals_required=2, actor=ACTOR)
    assert fund.committee == ["alice", "bob", "carol"]


# -- donations and receipts ------------------------------------------------------------------


def test_crediting_a_donation_adds_to_the_received_money_of_its_purpose(
    funded: Callable[..., Fund],
) -> None:
    fund = funded()
    receipt_no = fund.credit_donation(
        donation_id="d-1", amount_minor=5000, purpose="school", received_on=DAY, actor="clerk"
    )

    assert fund.figures["school"]["received"] == 5000
    assert fund.available_minor("school") == 5000
    assert fund.available_minor(UNRESTRICTED) == 0
    (credited,) = fund.collect_events()
    assert type(credited).__qualname__ == "Fund.DonationCredited"
    assert credited.donation_id == "d-1"  # type: ignore[attr-defined]
    assert credited.amount_minor == 5000  # type: ignore[attr-defined]
    assert credited.purpose == "school"  # type: ignore[attr-defined]
    assert credited.receipt_no == receipt_no  # type: ignore[attr-defined]
    assert credited.occurred_on == "2024-03-15"  # type: ignore[attr-defined]
    assert credited.actor == "clerk"  # type: ignore[attr-defined]


def test_crediting_a_donation_to_an_unknown_purpose_is_refused(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded()
    with pytest.raises(UnknownPurpose):
        credit(fund, 5000, purpose="clinic")
    assert event_names(fund) == []


@pytest.mark.parametrize("amount_minor", [0, -1])
def test_crediting_a_donation_of_no_money_is_refused(
    funded: Callable[..., Fund], amount_minor: int
) -> None:
    with pytest.raises(AmountNotPositive):
        credit(funded(), amount_minor)


def test_receipt_numbers_are_the_slug_the_year_and_a_six_digit_sequence(
    funded: Callable[..., Fund],
) -> None:
    fund = funded(slug="river-fund")
    receipt_no = credit(fund, 100, on=date(2024, 5, 1))
    assert receipt_no == "river-fund-2024-000001"
    assert re.fullmatch(r"river-fund-2024-\d{6}", receipt_no)


def test_receipt_numbers_follow_each_other_without_gaps_within_a_year(
    funded: Callable[..., Fund],
) -> None:
    fund = funded()
    numbers = [credit(fund, 100, on=date(2024, month, 1)) for month in (1, 6, 12)]
    assert numbers == [
        "river-fund-2024-000001",
        "river-fund-2024-000002",
        "river-fund-2024-000003",
    ]


def test_receipt_numbers_restart_at_one_in_a_new_year_and_continue_in_the_old(
    funded: Callable[..., Fund],
) -> None:
    fund = funded()
    credit(fund, 100, on=date(2024, 12, 31))
    credit(fund, 100, on=date(2024, 12, 31))
    assert credit(fund, 100, on=date(2025, 1, 1)) == "river-fund-2025-000001"
    assert credit(fund, 100, on=date(2024, 12, 30)) == "river-fund-2024-000003"
    assert credit(fund, 100, on=date(2025, 1, 2)) == "river-fund-2025-000002"


def test_a_refused_donation_uses_up_no_receipt_number(funded: Callable[..., Fund]) -> None:
    fund = funded()
    credit(fund, 100, on=date(2024, 1, 10))
    fund.close_period(period="2024-01", today=date(2024, 2, 5), actor=ACTOR)
    with pytest.raises(PeriodClosed):
        credit(fund, 100, on=date(2024, 1, 20))
    with pytest.raises(UnknownPurpose):
        credit(fund, 100, purpose="clinic", on=date(2024, 2, 1))
    assert credit(fund, 100, on=date(2024, 2, 1)) == "river-fund-2024-000002"


def test_the_receipt_sequence_is_the_count_of_credited_donations_per_year(
    funded: Callable[..., Fund],
) -> None:
    fund = funded()
    for month in range(1, 8):
        credit(fund, 100, on=date(2024, month, 3))
    credit(fund, 100, on=date(2023, 12, 3))
    assert fund.receipt_seq == {"2024": 7, "2023": 1}


# -- available never goes below zero ---------------------------------------------------------


def test_a_refund_of_exactly_the_available_money_is_accepted(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded(("", 10_000))
    refund(fund, 10_000)
    assert fund.available_minor() == 0
    assert event_names(fund) == ["Fund.DonationRefundDebited"]


def test_a_refund_one_fen_over_the_available_money_is_refused(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded(("", 10_000))
    with pytest.raises(InsufficientFunds) as excinfo:
        refund(fund, 10_001)
    assert excinfo.value.facts == {
        "purpose": "",
        "available_minor": 10_000,
        "amount_minor": 10_001,
        "currency": "CNY",
    }
    assert fund.available_minor() == 10_000
    assert event_names(fund) == []


def test_a_refund_is_refused_when_the_money_is_committed_to_a_grant(
    funded: Callable[..., Fund],
) -> None:
    fund = funded(("", 10_000))
    commit(fund, 9_000)
    refund(fund, 1_000)
    with pytest.raises(InsufficientFunds):
        refund(fund, 1)


def test_an_expense_of_exactly_the_available_money_is_accepted(
    funded: Callable[..., Fund],
) -> None:
    fund = funded(("", 10_000))
    record_expense(fund, 10_000)
    assert fund.available_minor() == 0


def test_an_expense_one_fen_over_the_available_money_is_refused(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded(("", 10_000))
    with pytest.raises(InsufficientFunds):
        record_expense(fund, 10_001)
    assert fund.expenses == {}
    assert event_names(fund) == []


def test_committing_a_grant_of_exactly_the_available_money_is_accepted(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded(("", 10_000))
    commit(fund, 10_000)
    assert fund.available_minor() == 0
    assert fund.on_hand_minor() == 10_000
    assert event_names(fund) == ["Fund.GrantCommitted"]


def test_committing_a_grant_one_fen_over_the_available_money_is_refused(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded(("", 10_000))
    with pytest.raises(InsufficientFunds):
        commit(fund, 10_001)
    assert fund.figures[UNRESTRICTED]["committed"] == 0
    assert event_names(fund) == []


def test_reversing_a_donation_takes_back_at_most_the_available_money(
    funded: Callable[..., Fund],
) -> None:
    fund = funded(("", 10_000))
    commit(fund, 4_000)
    with pytest.raises(InsufficientFunds):
        reverse_donation(fund, 6_001)
    reverse_donation(fund, 6_000)
    assert fund.available_minor() == 0
    assert fund.figures[UNRESTRICTED]["refunded"] == 6_000


def test_reversing_a_fully_refunded_donation_takes_back_nothing(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded(("", 10_000))
    reverse_donation(fund, 0)
    assert fund.available_minor() == 10_000
    assert event_names(fund) == ["Fund.DonationReversalDebited"]


def test_a_negative_reversal_is_refused(funded: Callable[..., Fund]) -> None:
    with pytest.raises(AmountNotPositive):
        reverse_donation(funded(("", 10_000)), -1)


# -- purposes are separate pools -------------------------------------------------------------


def test_money_of_one_purpose_cannot_pay_an_expense_of_another(
    funded: Callable[..., Fund],
) -> None:
    fund = funded(("elderly-care", 10_000))
    with pytest.raises(InsufficientFunds) as excinfo:
        record_expense(fund, 1, purpose="school")
    assert excinfo.value.facts["purpose"] == "school"


def test_restricted_money_cannot_pay_an_unrestricted_expense(funded: Callable[..., Fund]) -> None:
    fund = funded(("elderly-care", 10_000))
    with pytest.raises(InsufficientFunds):
        record_expense(fund, 1, purpose=None)


def test_unrestricted_money_cannot_pay_a_restricted_expense(funded: Callable[..., Fund]) -> None:
    fund = funded(("", 10_000))
    with pytest.raises(InsufficientFunds):
        record_expense(fund, 1, purpose="school")


def test_an_expense_of_a_purpose_draws_only_on_that_purpose(funded: Callable[..., Fund]) -> None:
    fund = funded(("", 3_000), ("school", 5_000), ("elderly-care", 7_000))
    record_expense(fund, 5_000, purpose="school")
    assert fund.available_minor("school") == 0
    assert fund.available_minor("elderly-care") == 7_000
    assert fund.available_minor(UNRESTRICTED) == 3_000


def test_a_grant_for_a_purpose_is_limited_by_that_purpose_alone(
    funded: Callable[..., Fund],
) -> None:
    fund = funded(("", 50_000), ("school", 5_000))
    with pytest.raises(InsufficientFunds):
        commit(fund, 5_001, purpose="school")
    commit(fund, 5_000, purpose="school")
    assert fund.available_minor("school") == 0
    assert fund.available_minor(UNRESTRICTED) == 50_000


def test_a_refund_draws_on_the_pool_of_the_donation_purpose(funded: Callable[..., Fund]) -> None:
    fund = funded(("", 50_000), ("school", 5_000))
    with pytest.raises(InsufficientFunds):
        refund(fund, 5_001, purpose="school")
    refund(fund, 5_000, purpose="school")
    assert fund.available_minor("school") == 0
    assert fund.available_minor(UNRESTRICTED) == 50_000


# -- on hand and available -------------------------------------------------------------------


def test_on_hand_and_available_follow_their_formulas_through_a_grant_life(
    funded: Callable[..., Fund],
) -> None:
    """on_hand = received - refunded - disbursed - expenses;
    available = received - refunded - committed + released - expenses."""
    fund = funded(("", 100_000))
    assert (fund.on_hand_minor(), fund.available_minor()) == (100_000, 100_000)

    commit(fund, 60_000)
    assert (fund.on_hand_minor(), fund.available_minor()) == (100_000, 40_000)

    fund.debit_disbursement(
        grant_id="grant-1", tranche_no=1, amount_minor=20_000, purpose="", paid_on=DAY, actor=ACTOR
    )
    assert (fund.on_hand_minor(), fund.available_minor()) == (80_000, 40_000)

    record_expense(fund, 10_000)
    assert (fund.on_hand_minor(), fund.available_minor()) == (70_000, 30_000)

    refund(fund, 5_000)
    assert (fund.on_hand_minor(), fund.available_minor()) == (65_000, 25_000)

    fund.credit_disbursement_reversal(
        grant_id="grant-1",
        tranche_no=1,
        amount_minor=20_000,
        purpose="",
        reversed_on=DAY,
        actor=ACTOR,
    )
    assert (fund.on_hand_minor(), fund.available_minor()) == (85_000, 25_000)

    fund.release_grant(
        grant_id="grant-1", amount_minor=60_000, purpose="", released_on=DAY, actor=ACTOR
    )
    assert (fund.on_hand_minor(), fund.available_minor()) == (85_000, 85_000)
    assert fund.figures[UNRESTRICTED] == {
        "received": 100_000,
        "refunded": 5_000,
        "committed": 60_000,
        "released": 60_000,
        "disbursed": 0,
        "expenses": 10_000,
    }


def test_a_closed_grant_leaves_available_equal_to_on_hand(funded: Callable[..., Fund]) -> None:
    fund = funded(("", 100_000))
    commit(fund, 60_000)
    fund.debit_disbursement(
        grant_id="grant-1", tranche_no=1, amount_minor=45_000, purpose="", paid_on=DAY, actor=ACTOR
    )
    fund.release_grant(
        grant_id="grant-1", amount_minor=15_000, purpose="", released_on=DAY, actor=ACTOR
    )
    assert fund.on_hand_minor() == fund.available_minor() == 55_000


def test_totals_add_up_every_pool(funded: Callable[..., Fund]) -> None:
    fund = funded(("", 1_000), ("school", 2_000), ("elderly-care", 4_000))
    record_expense(fund, 500, purpose="elderly-care")
    totals = fund.totals()
    assert totals["received"] == 7_000
    assert totals["expenses"] == 500


# -- expenses --------------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["program", "administration", "fundraising"])
def test_an_expense_in_a_known_category_is_recorded(
    funded: Callable[..., Fund], category: str
) -> None:
    fund = funded(("", 10_000))
    expense_id = record_expense(fund, 2_500, category=category, actor="clerk")

    assert fund.figures[UNRESTRICTED]["expenses"] == 2_500
    expense = fund.expenses[expense_id]
    assert (expense.amount_minor, expense.purpose, expense.category, expense.reversed) == (
        2_500,
        UNRESTRICTED,
        category,
        False,
    )
    (recorded,) = fund.collect_events()
    assert type(recorded).__qualname__ == "Fund.ExpenseRecorded"
    assert recorded.amount_minor == 2_500  # type: ignore[attr-defined]
    assert recorded.category == category  # type: ignore[attr-defined]
    assert recorded.occurred_on == "2024-03-15"  # type: ignore[attr-defined]
    assert recorded.actor == "clerk"  # type: ignore[attr-defined]


@pytest.mark.parametrize("category", ["travel", "Program", "", "admin"])
def test_an_expense_in_an_unknown_category_is_refused(
    funded: Callable[..., Fund], category: str
) -> None:
    fund = funded(("", 10_000))
    with pytest.raises(InvalidField) as excinfo:
        record_expense(fund, 100, category=category)
    assert excinfo.value.facts["field"] == "category"


def test_an_expense_for_an_unknown_purpose_is_refused(funded: Callable[..., Fund]) -> None:
    with pytest.raises(UnknownPurpose):
        record_expense(funded(("", 10_000)), 100, purpose="clinic")


@pytest.mark.parametrize("field", ["payee", "description"])
def test_an_expense_without_payee_or_description_is_refused(
    funded: Callable[..., Fund], field: str
) -> None:
    with pytest.raises(InvalidField):
        record_expense(funded(("", 10_000)), 100, **{field: " "})


def test_reversing_an_expense_gives_its_money_back_to_its_pool(
    funded: Callable[..., Fund],
) -> None:
    fund = funded(("school", 10_000))
    expense_id = record_expense(fund, 4_000, purpose="school")
    fund.collect_events()

    fund.reverse_expense(expense_id=expense_id, reason="paid twice", reversed_on=DAY, actor="ann")

    assert fund.available_minor("school") == 10_000
    assert fund.expenses[expense_id].reversed
    (reversed_,) = fund.collect_events()
    assert type(reversed_).__qualname__ == "Fund.ExpenseReversed"
    assert reversed_.amount_minor == 4_000  # type: ignore[attr-defined]
    assert reversed_.purpose == "school"  # type: ignore[attr-defined]
    assert reversed_.reason == "paid twice"  # type: ignore[attr-defined]
    assert reversed_.actor == "ann"  # type: ignore[attr-defined]


def test_reversing_an_expense_twice_is_refused(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded(("", 10_000))
    expense_id = record_expense(fund, 4_000)
    fund.reverse_expense(expense_id=expense_id, reason="error", reversed_on=DAY, actor=ACTOR)
    fund.collect_events()

    with pytest.raises(AlreadyReversed):
        fund.reverse_expense(expense_id=expense_id, reason="error", reversed_on=DAY, actor=ACTOR)
    assert fund.available_minor() == 10_000
    assert event_names(fund) == []


def test_reversing_an_unknown_expense_is_refused(funded: Callable[..., Fund]) -> None:
    fund = funded(("", 10_000))
    with pytest.raises(ExpenseNotFound):
        fund.reverse_expense(expense_id="nope", reason="error", reversed_on=DAY, actor=ACTOR)


def test_reversing_an_expense_needs_a_reason(funded: Callable[..., Fund]) -> None:
    fund = funded(("", 10_000))
    expense_id = record_expense(fund, 4_000)
    with pytest.raises(InvalidField):
        fund.reverse_expense(expense_id=expense_id, reason="", reversed_on=DAY, actor=ACTOR)


# -- periods ---------------------------------------------------------------------------------


def test_closing_an_ended_month_records_it(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded()
    fund.close_period(period="2024-01", today=date(2024, 2, 1), actor="auditor")
    assert fund.closed_periods == ["2024-01"]
    (closed,) = fund.collect_events()
    assert type(closed).__qualname__ == "Fund.PeriodClosed"
    assert closed.period == "2024-01"  # type: ignore[attr-defined]
    assert closed.occurred_on == "2024-02-01"  # type: ignore[attr-defined]
    assert closed.actor == "auditor"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("period", "today"),
    [
        ("2024-01", date(2024, 1, 31)),
        ("2024-01", date(2024, 1, 1)),
        ("2024-02", date(2024, 1, 31)),
        ("2025-01", date(2024, 6, 1)),
    ],
)
def test_closing_the_current_or_a_future_month_is_refused(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]], period: str, today: date
) -> None:
    fund = funded()
    with pytest.raises(PeriodNotEnded):
        fund.close_period(period=period, today=today, actor=ACTOR)
    assert fund.closed_periods == []
    assert event_names(fund) == []


def test_closing_a_month_twice_records_nothing_the_second_time(
    funded: Callable[..., Fund], event_names: Callable[..., list[str]]
) -> None:
    fund = funded()
    fund.close_period(period="2024-01", today=date(2024, 2, 1), actor=ACTOR)
    fund.collect_events()
    fund.close_period(period="2024-01", today=date(2024, 3, 1), actor=ACTOR)
    assert fund.closed_periods == ["2024-01"]
    assert event_names(fund) == []


def test_closed_periods_are_kept_in_order(funded: Callable[..., Fund]) -> None:
    fund = funded()
    for period in ("2024-03", "2023-11", "2024-01"):
        fund.close_period(period=period, today=date(2024, 4, 2), actor=ACTOR)
    assert fund.closed_periods == ["2023-11", "2024-01", "2024-03"]


@pytest.mark.parametrize(
    "period",
    ["2024-1", "2024-13", "2024-00", "2024/01", "24-01-", "2024-01-01", "", 202401],
    ids=repr,
)
def test_closing_a_period_that_is_not_a_month_is_refused(
    funded: Callable[..., Fund], period: object
) -> None:
    with pytest.raises(InvalidField) as excinfo:
        funded().close_period(period=period, today=date(2030, 1, 1), actor=ACTOR)
    assert excinfo.value.facts["field"] == "period"


# Every entry a fund records, dated on ``day``. The fund has 100.00 unrestricted (credited on
# 2024-01-10), a grant of 50.00 committed with a 20.00 tranche paid, and an expense of 10.00
# (id "expense-1"), all in January 2024, which is then closed.
ENTRIES: dict[str, Callable[[Fund, date], object]] = {
    "donation credit": lambda f, day: credit(f, 100, on=day),
    "refund": lambda f, day: refund(f, 100, on=day),
    "donation reversal": lambda f, day: reverse_donation(f, 100, on=day),
    "grant commit": lambda f, day: commit(f, 100, on=day),
    "disbursement": lambda f, day: f.debit_disbursement(
        grant_id="grant-1", tranche_no=2, amount_minor=100, purpose="", paid_on=day, actor=ACTOR
    ),
    "disbursement reversal": lambda f, day: f.credit_disbursement_reversal(
        grant_id="grant-1",
        tranche_no=1,
        amount_minor=2_000,
        purpose="",
        reversed_on=day,
        actor=ACTOR,
    ),
    "grant release": lambda f, day: f.release_grant(
        grant_id="grant-1", amount_minor=3_000, purpose="", released_on=day, actor=ACTOR
    ),
    "expense": lambda f, day: record_expense(f, 100, expense_id="expense-2", paid_on=day),
    "expense reversal": lambda f, day: f.reverse_expense(
        expense_id="expense-1", reason="error", reversed_on=day, actor=ACTOR
    ),
}


@pytest.fixture
def fund_with_closed_january(funded: Callable[..., Fund]) -> Fund:
    fund = funded(("", 10_000), on=date(2024, 1, 10))
    commit(fund, 5_000, on=date(2024, 1, 11))
    fund.debit_disbursement(
        grant_id="grant-1",
        tranche_no=1,
        amount_minor=2_000,
        purpose="",
        paid_on=date(2024, 1, 12),
        actor=ACTOR,
    )
    record_expense(fund, 1_000, expense_id="expense-1", paid_on=date(2024, 1, 13))
    fund.close_period(period="2024-01", today=date(2024, 2, 20), actor=ACTOR)
    fund.collect_events()
    return fund


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("day", [date(2024, 1, 1), date(2024, 1, 31)], ids=str)
def test_an_entry_dated_inside_a_closed_period_is_refused(
    fund_with_closed_january: Fund,
    event_names: Callable[..., list[str]],
    entry: str,
    day: date,
) -> None:
    fund = fund_with_closed_january
    figures = {p: dict(f) for p, f in fund.figures.items()}
    with pytest.raises(PeriodClosed) as excinfo:
        ENTRIES[entry](fund, day)
    assert excinfo.value.facts["period"] == "2024-01"
    assert fund.figures == figures
    assert event_names(fund) == []


@pytest.mark.parametrize("entry", ENTRIES)
def test_an_entry_dated_the_first_day_after_a_closed_period_is_accepted(
    fund_with_closed_january: Fund, event_names: Callable[..., list[str]], entry: str
) -> None:
    fund = fund_with_closed_january
    ENTRIES[entry](fund, date(2024, 2, 1))
    (recorded,) = fund.collect_events()
    assert recorded.occurred_on == "2024-02-01"  # type: ignore[attr-defined]


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_month_between_two_closed_months_stays_open(
    funded: Callable[..., Fund], entry: str
) -> None:
    """Closing December and February refuses 31 December and still accepts 31 January."""
    fund = funded(("", 10_000), on=date(2024, 1, 10))
    commit(fund, 5_000, on=date(2024, 1, 11))
    fund.debit_disbursement(
        grant_id="grant-1",
        tranche_no=1,
        amount_minor=2_000,
        purpose="",
        paid_on=date(2024, 1, 12),
        actor=ACTOR,
    )
    record_expense(fund, 1_000, expense_id="expense-1", paid_on=date(2024, 1, 13))
    for period in ("2023-12", "2024-02"):
        fund.close_period(period=period, today=date(2024, 3, 1), actor=ACTOR)
    with pytest.raises(PeriodClosed):
        ENTRIES[entry](fund, date(2023, 12, 31))
    ENTRIES[entry](fund, date(2024, 1, 31))


def test_an_expense_of_a_closed_period_is_corrected_in_an_open_one(
    fund_with_closed_january: Fund,
) -> None:
    fund = fund_with_closed_january
    fund.reverse_expense(
        expense_id="expense-1", reason="wrong payee", reversed_on=date(2024, 2, 21), actor=ACTOR
    )
    assert fund.expenses["expense-1"].reversed
    assert fund.figures[UNRESTRICTED]["expenses"] == 0


# -- replay ----------------------------------------------------------------------------------


def test_a_fund_rebuilt_from_its_events_equals_the_live_fund(
    open_fund: Callable[..., Fund], replayed: Callable[..., Any]
) -> None:
    fund = open_fund()
    fund.add_purpose(code="clinic", name="医疗", actor=ACTOR)
    fund.change_committee(committee=["alice", "bob", "dave"], approvals_required=2, actor=ACTOR)
    credit(fund, 100_000, on=date(2024, 1, 5))
    credit(fund, 30_000, purpose="clinic", on=date(2024, 1, 6))
    credit(fund, 7_000, purpose="school", on=date(2025, 1, 6))
    refund(fund, 1_000, on=date(2024, 1, 7))
    reverse_donation(fund, 500, purpose="school", on=date(2025, 1, 8))
    commit(fund, 40_000, on=date(2024, 1, 8))
    fund.debit_disbursement(
        grant_id="grant-1",
        tranche_no=1,
        amount_minor=10_000,
        purpose="",
        paid_on=date(2024, 1, 9),
        actor=ACTOR,
    )
    fund.credit_disbursement_reversal(
        grant_id="grant-1",
        tranche_no=1,
        amount_minor=10_000,
        purpose="",
        reversed_on=date(2024, 1, 10),
        actor=ACTOR,
    )
    fund.release_grant(
        grant_id="grant-1", amount_minor=40_000, purpose="", released_on=DAY, actor=ACTOR
    )
    expense_id = record_expense(fund, 2_000, purpose="clinic", paid_on=date(2024, 1, 20))
    record_expense(fund, 3_000, category="administration", paid_on=date(2024, 1, 21))
    fund.reverse_expense(expense_id=expense_id, reason="error", reversed_on=DAY, actor=ACTOR)
    fund.close_period(period="2024-01", today=DAY, actor=ACTOR)
    events = fund.collect_events()

    rebuilt = replayed(events)

    assert [type(e).__qualname__ for e in events] == [
        "Fund.Opened",
        "Fund.PurposeAdded",
        "Fund.CommitteeChanged",
        "Fund.DonationCredited",
        "Fund.DonationCredited",
        "Fund.DonationCredited",
        "Fund.DonationRefundDebited",
        "Fund.DonationReversalDebited",
        "Fund.GrantCommitted",
        "Fund.DisbursementDebited",
        "Fund.DisbursementReversalCredited",
        "Fund.GrantReleased",
        "Fund.ExpenseRecorded",
        "Fund.ExpenseRecorded",
        "Fund.ExpenseReversed",
        "Fund.PeriodClosed",
    ]
    assert isinstance(rebuilt, Fund)
    assert rebuilt.__dict__ == fund.__dict__
    assert credit(rebuilt, 1, on=date(2024, 2, 1)) == credit(fund, 1, on=date(2024, 2, 1))


# -- the fund against a plain reference model ------------------------------------------------

POOLS = (UNRESTRICTED, "school")


class FundAgainstReferenceModel(RuleBasedStateMachine):
    """Random sequences of money commands, on a fund and its grants wired the way the
    application wires them, checked against six plain counters per pool."""

    def __init__(self) -> None:
        super().__init__()
        self.fund = Fund.open(
            slug="model-fund",
            name="Model",
            currency="CNY",
            description="",
            host="Host",
            committee=["alice", "bob", "carol"],
            approvals_required=2,
            purposes=[{"code": "school", "name": "助学"}],
            actor=ACTOR,
            request_sha256="0",
        )
        self.model = {pool: dict.fromkeys(self.fund.figures[pool], 0) for pool in POOLS}
        self.expense_ids: list[tuple[str, str, int]] = []
        self.reversed_expenses: set[str] = set()
        self.grants: list[Grant] = []

    def available(self, pool: str) -> int:
        f = self.model[pool]
        return f["received"] - f["refunded"] - f["committed"] + f["released"] - f["expenses"]

    @rule(pool=st.sampled_from(POOLS), amount_minor=st.integers(1, 50_000))
    def credit(self, pool: str, amount_minor: int) -> None:
        credit(self.fund, amount_minor, purpose=pool)
        self.model[pool]["received"] += amount_minor

    @rule(pool=st.sampled_from(POOLS), amount_minor=st.integers(1, 50_000))
    def refund(self, pool: str, amount_minor: int) -> None:
        if amount_minor > self.available(pool):
            with pytest.raises(InsufficientFunds):
                refund(self.fund, amount_minor, purpose=pool)
            return
        refund(self.fund, amount_minor, purpose=pool)
        self.model[pool]["refunded"] += amount_minor

    @rule(pool=st.sampled_from(POOLS), amount_minor=st.integers(1, 50_000))
    def record_expense(self, pool: str, amount_minor: int) -> None:
        expense_id = f"expense-{len(self.expense_ids)}"
        if amount_minor > self.available(pool):
            with pytest.raises(InsufficientFunds):
                record_expense(self.fund, amount_minor, expense_id=expense_id, purpose=pool)
            return
        record_expense(self.fund, amount_minor, expense_id=expense_id, purpose=pool)
        self.expense_ids.append((expense_id, pool, amount_minor))
        self.model[pool]["expenses"] += amount_minor

    @precondition(lambda self: self.expense_ids)
    @rule(data=st.data())
    def reverse_expense(self, data: st.DataObject) -> None:
        expense_id, pool, amount_minor = data.draw(st.sampled_from(self.expense_ids))
        if expense_id in self.reversed_expenses:
            with pytest.raises(AlreadyReversed):
                self.fund.reverse_expense(
                    expense_id=expense_id, reason="error", reversed_on=DAY, actor=ACTOR
                )
            return
        self.fund.reverse_expense(
            expense_id=expense_id, reason="error", reversed_on=DAY, actor=ACTOR
        )
        self.reversed_expenses.add(expense_id)
        self.model[pool]["expenses"] -= amount_minor

    @rule(pool=st.sampled_from(POOLS), amount_minor=st.integers(1, 50_000))
    def commit_grant(self, pool: str, amount_minor: int) -> None:
        grant = Grant.propose(
            id=uuid4(),
            fund_id=str(self.fund.id),
            fund_slug=self.fund.slug,
            currency="CNY",
            title="Grant",
            description="",
            purpose=pool,
            grantee_name="Grantee",
            grantee_id=None,
            amount_minor=amount_minor,
            proposed_on=DAY,
            actor="alice",
            request_sha256="0",
        )
        for member in ("bob", "carol"):
            grant.approve(member=member, committee=self.fund.committee, note="", approved_on=DAY)
        assert grant.approvals_from(self.fund.committee) >= self.fund.approvals_required
        if amount_minor > self.available(pool):
            with pytest.raises(InsufficientFunds):
                commit(self.fund, amount_minor, purpose=pool)
            return
        commit(self.fund, amount_minor, purpose=pool)
        grant.commit(committed_on=DAY, actor="carol")
        self.grants.append(grant)
        self.model[pool]["committed"] += amount_minor

    @precondition(lambda self: self.grants)
    @rule(data=st.data(), amount_minor=st.integers(1, 50_000))
    def disburse(self, data: st.DataObject, amount_minor: int) -> None:
        grant = self.grants[data.draw(st.integers(0, len(self.grants) - 1))]
        if grant.status != COMMITTED:
            expected: type[Exception] | None = InvalidState
        elif amount_minor > grant.remaining_minor:
            expected = GrantOverdrawn
        else:
            expected = None
        fields: dict[str, Any] = {
            "tranche_id": str(uuid4()),
            "amount_minor": amount_minor,
            "paid_on": DAY,
            "method": "bank",
            "reference": "TX",
            "evidence_sha256": None,
            "actor": ACTOR,
            "request_sha256": "0",
        }
        if expected is not None:
            with pytest.raises(expected):
                grant.disburse(**fields)
            return
        tranche_no = grant.disburse(**fields)
        self.fund.debit_disbursement(
            grant_id=str(grant.id),
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            purpose=grant.purpose,
            paid_on=DAY,
            actor=ACTOR,
        )
        self.model[grant.purpose]["disbursed"] += amount_minor

    @precondition(lambda self: self.grants)
    @rule(data=st.data(), cancel=st.booleans())
    def end_grant(self, data: st.DataObject, cancel: bool) -> None:
        grant = self.grants[data.draw(st.integers(0, len(self.grants) - 1))]
        ending = grant.cancel if cancel else grant.close
        if grant.status != COMMITTED:
            with pytest.raises(InvalidState):
                ending(
                    reason="done",
                    **{"cancelled_on" if cancel else "closed_on": DAY},
                    actor=ACTOR,
                    committee=[ACTOR] if cancel else None,
                )
            return
        released = ending(
            reason="done",
            **{"cancelled_on" if cancel else "closed_on": DAY},
            actor=ACTOR,
            committee=[ACTOR] if cancel else None,
        )
        if released:
            self.fund.release_grant(
                grant_id=str(grant.id),
                amount_minor=released,
                purpose=grant.purpose,
                released_on=DAY,
                actor=ACTOR,
            )
        self.model[grant.purpose]["released"] += released

    @precondition(lambda self: any(g.tranches for g in self.grants))
    @rule(data=st.data())
    def reverse_tranche(self, data: st.DataObject) -> None:
        paid = [g for g in self.grants if g.tranches]
        grant = paid[data.draw(st.integers(0, len(paid) - 1))]
        tranche_no = data.draw(st.integers(1, len(grant.tranches)))
        if grant.tranches[tranche_no - 1].reversed:
            with pytest.raises(AlreadyReversed):
                grant.reverse_disbursement(
                    tranche_no=tranche_no, reason="bounced", reversed_on=DAY, actor=ACTOR
                )
            return
        amount_minor, released = grant.reverse_disbursement(
            tranche_no=tranche_no, reason="bounced", reversed_on=DAY, actor=ACTOR
        )
        self.fund.credit_disbursement_reversal(
            grant_id=str(grant.id),
            tranche_no=tranche_no,
            amount_minor=amount_minor,
            purpose=grant.purpose,
            reversed_on=DAY,
            actor=ACTOR,
        )
        if released:
            self.fund.release_grant(
                grant_id=str(grant.id),
                amount_minor=released,
                purpose=grant.purpose,
                released_on=DAY,
                actor=ACTOR,
            )
        self.model[grant.purpose]["disbursed"] -= amount_minor
        self.model[grant.purpose]["released"] += released

    @invariant()
    def figures_match_the_model_and_available_is_never_negative(self) -> None:
        for pool in POOLS:
            assert self.fund.figures[pool] == self.model[pool]
            assert self.fund.available_minor(pool) == self.available(pool) >= 0
            assert self.fund.on_hand_minor(pool) >= self.fund.available_minor(pool)

    @invariant()
    def each_grant_accounts_for_its_whole_commitment(self) -> None:
        for grant in self.grants:
            assert grant.committed_minor == (
                grant.disbursed_minor + grant.released_minor + grant.remaining_minor
            )

    def teardown(self) -> None:
        rebuilt = project_aggregate(None, self.fund.collect_events())
        assert rebuilt is not None
        assert rebuilt.__dict__ == self.fund.__dict__


TestFundAgainstReferenceModel = FundAgainstReferenceModel.TestCase
TestFundAgainstReferenceModel.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)


def test_an_expense_reversal_dated_before_the_expense_is_refused_and_the_same_day_accepted(
    funded: Callable[..., Fund],
) -> None:
    fund = funded(("", 10_000), on=date(2024, 1, 10))
    record_expense(fund, 1_000, expense_id="expense-1", paid_on=date(2024, 1, 13))
    fund.collect_events()
    with pytest.raises(InvalidField):
        fund.reverse_expense(
            expense_id="expense-1", reason="x", reversed_on=date(2024, 1, 12), actor=ACTOR
        )
    assert fund.collect_events() == []
    fund.reverse_expense(
        expense_id="expense-1", reason="x", reversed_on=date(2024, 1, 13), actor=ACTOR
    )
    assert fund.expenses["expense-1"].reversed
