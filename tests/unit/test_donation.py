"""Donation: the public name of a donor, in-kind gifts, refunds, reversal and donor erasure.

``receive_donation`` (conftest.py) records 100.00 CNY (10_000 fen) received on 2024-03-15 by
bank transfer, unrestricted, with a sealed donor; keyword arguments override any field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from ledger.domain.common import NAME_LEN_MAX
from ledger.domain.donation import (
    ANONYMOUS_LABEL,
    EXTERNAL_REF_LEN_MAX,
    Donation,
    mask_name,
    public_name_for,
)
from ledger.domain.errors import (
    AlreadyReversed,
    AmountNotPositive,
    InvalidField,
    InvalidState,
    RefundTooLarge,
)

DAY = date(2024, 3, 15)
IN_KIND = {"description": "200 winter coats", "valuation_basis": "supplier invoice 2024-118"}

Receive = Callable[..., Donation]


def refund(donation: Donation, amount_minor: int, **overrides: Any) -> None:
    fields: dict[str, Any] = {
        "refund_id": f"refund-{len(donation.refunds) + 1}",
        "amount_minor": amount_minor,
        "refunded_on": DAY,
        "reason": "donor asked",
        "actor": "treasurer",
        "request_sha256": "r" * 64,
    }
    fields.update(overrides)
    donation.refund(**fields)


# -- the donor's public name -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("王小明", "王*明"),
        ("欧阳娜娜", "欧**娜"),
        ("John Smith", "J*** S****"),
        ("  John   Smith ", "J*** S****"),
        ("Ann Lee Wong", "A** L** W***"),
        ("张", "张*"),
        ("", "*"),
    ],
)
def test_a_donor_name_is_masked_for_the_public(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_an_anonymous_donor_is_shown_as_a_caring_person_whatever_else_is_given() -> None:
    public = public_name_for(name="张三", anonymous=True, public_name="Zhang San")
    assert public == ANONYMOUS_LABEL == "爱心人士"


def test_a_chosen_public_name_is_shown_as_given() -> None:
    assert public_name_for(name="张三", anonymous=False, public_name=" 三哥 ") == "三哥"


def test_without_a_chosen_public_name_the_masked_name_is_shown() -> None:
    assert public_name_for(name="王小明", anonymous=False, public_name=None) == "王*明"


def test_a_donor_without_a_name_is_shown_as_a_caring_person() -> None:
    assert public_name_for(name=None, anonymous=False, public_name=None) == ANONYMOUS_LABEL
    assert public_name_for(name="", anonymous=False, public_name="") == ANONYMOUS_LABEL


def test_a_public_name_of_the_longest_length_is_accepted_and_one_more_refused() -> None:
    longest = "x" * NAME_LEN_MAX
    assert public_name_for(name=None, anonymous=False, public_name=longest) == longest
    with pytest.raises(InvalidField):
        public_name_for(name=None, anonymous=False, public_name=longest + "x")


# -- receiving -------------------------------------------------------------------------------


def test_receiving_a_donation_records_received_with_its_business_date_and_actor(
    receive_donation: Receive,
) -> None:
    donation = receive_donation(amount_minor=12_345, received_on=date(2024, 2, 29), actor="clerk")

    assert donation.amount_minor == 12_345
    assert donation.remaining_minor == 12_345
    assert donation.received_on == "2024-02-29"
    assert donation.recorded_by == "clerk"
    assert not donation.reversed
    (received,) = donation.collect_events()
    assert type(received).__qualname__ == "Donation.Received"
    assert received.amount_minor == 12_345  # type: ignore[attr-defined]
    assert received.occurred_on == "2024-02-29"  # type: ignore[attr-defined]
    assert received.actor == "clerk"  # type: ignore[attr-defined]


@pytest.mark.parametrize("amount_minor", [0, -100])
def test_a_donation_of_no_money_is_refused(receive_donation: Receive, amount_minor: int) -> None:
    with pytest.raises(AmountNotPositive):
        receive_donation(amount_minor=amount_minor)


@pytest.mark.parametrize("channel", ["cash", "bank", "wechat", "alipay", "other"])
def test_a_donation_through_a_known_channel_is_accepted(
    receive_donation: Receive, channel: str
) -> None:
    assert receive_donation(channel=channel).channel == channel


@pytest.mark.parametrize("channel", ["paypal", "Bank", ""])
def test_a_donation_through_an_unknown_channel_is_refused(
    receive_donation: Receive, channel: str
) -> None:
    with pytest.raises(InvalidField) as excinfo:
        receive_donation(channel=channel)
    assert excinfo.value.facts["field"] == "channel"


def test_an_in_kind_gift_with_description_and_valuation_basis_is_accepted(
    receive_donation: Receive,
) -> None:
    donation = receive_donation(channel="in_kind", in_kind=dict(IN_KIND))
    assert donation.in_kind == IN_KIND


@pytest.mark.parametrize(
    "in_kind",
    [
        None,
        {},
        {"description": "200 winter coats"},
        {"valuation_basis": "supplier invoice"},
        {"description": "", "valuation_basis": "supplier invoice"},
        {"description": "200 winter coats", "valuation_basis": "   "},
    ],
    ids=repr,
)
def test_an_in_kind_gift_without_description_and_valuation_basis_is_refused(
    receive_donation: Receive, in_kind: dict[str, str] | None
) -> None:
    with pytest.raises(InvalidField):
        receive_donation(channel="in_kind", in_kind=in_kind)


@pytest.mark.parametrize("channel", ["cash", "bank", "wechat", "alipay", "other"])
def test_in_kind_details_on_a_money_channel_are_refused(
    receive_donation: Receive, channel: str
) -> None:
    with pytest.raises(InvalidField) as excinfo:
        receive_donation(channel=channel, in_kind=dict(IN_KIND))
    assert excinfo.value.facts["field"] == "in_kind"


def test_an_external_reference_of_the_longest_length_is_accepted_and_one_more_refused(
    receive_donation: Receive,
) -> None:
    longest = "T" * EXTERNAL_REF_LEN_MAX
    assert receive_donation(external_ref=longest).external_ref == longest
    with pytest.raises(InvalidField):
        receive_donation(external_ref=longest + "T")


# -- refunds ---------------------------------------------------------------------------------


def test_a_partial_refund_leaves_the_rest_of_the_donation(receive_donation: Receive) -> None:
    donation = receive_donation(amount_minor=10_000)
    donation.collect_events()

    refund(donation, 2_500, refund_id="refund-a", actor="ann")

    assert donation.refunded_minor == 2_500
    assert donation.remaining_minor == 7_500
    (refunded,) = donation.collect_events()
    assert type(refunded).__qualname__ == "Donation.Refunded"
    assert refunded.refund_id == "refund-a"  # type: ignore[attr-defined]
    assert refunded.amount_minor == 2_500  # type: ignore[attr-defined]
    assert refunded.occurred_on == "2024-03-15"  # type: ignore[attr-defined]
    assert refunded.actor == "ann"  # type: ignore[attr-defined]


def test_a_full_refund_leaves_nothing(receive_donation: Receive) -> None:
    donation = receive_donation(amount_minor=10_000)
    refund(donation, 10_000)
    assert donation.remaining_minor == 0


def test_a_refund_of_exactly_the_remaining_amount_is_accepted(receive_donation: Receive) -> None:
    donation = receive_donation(amount_minor=10_000)
    refund(donation, 3_000)
    refund(donation, 7_000)
    assert donation.refunded_minor == 10_000
    assert donation.remaining_minor == 0


def test_a_refund_one_fen_over_the_remaining_amount_is_refused(
    receive_donation: Receive, event_names: Callable[..., list[str]]
) -> None:
    donation = receive_donation(amount_minor=10_000)
    refund(donation, 3_000)
    donation.collect_events()

    with pytest.raises(RefundTooLarge) as excinfo:
        refund(donation, 7_001)

    assert excinfo.value.facts == {
        "remaining_minor": 7_000,
        "amount_minor": 7_001,
        "currency": "CNY",
    }
    assert donation.remaining_minor == 7_000
    assert event_names(donation) == []


def test_a_refund_larger_than_the_donation_is_refused(receive_donation: Receive) -> None:
    with pytest.raises(RefundTooLarge):
        refund(receive_donation(amount_minor=10_000), 10_001)


def test_any_refund_after_a_full_refund_is_refused(receive_donation: Receive) -> None:
    donation = receive_donation(amount_minor=10_000)
    refund(donation, 10_000)
    with pytest.raises(RefundTooLarge):
        refund(donation, 1)


@pytest.mark.parametrize("amount_minor", [0, -1])
def test_a_refund_of_no_money_is_refused(receive_donation: Receive, amount_minor: int) -> None:
    with pytest.raises(AmountNotPositive):
        refund(receive_donation(), amount_minor)


def test_a_refund_needs_a_reason(receive_donation: Receive) -> None:
    with pytest.raises(InvalidField):
        refund(receive_donation(), 100, reason="")


def test_a_refund_on_the_day_of_the_donation_is_accepted(receive_donation: Receive) -> None:
    donation = receive_donation(received_on=date(2024, 3, 15))
    refund(donation, 100, refunded_on=date(2024, 3, 15))
    assert donation.refunded_minor == 100


def test_a_refund_dated_before_the_donation_is_refused(receive_donation: Receive) -> None:
    donation = receive_donation(received_on=date(2024, 3, 15))
    with pytest.raises(InvalidField) as excinfo:
        refund(donation, 100, refunded_on=date(2024, 3, 14))
    assert excinfo.value.facts["field"] == "refunded_on"


def test_a_refund_after_the_reversal_is_refused(
    receive_donation: Receive, event_names: Callable[..., list[str]]
) -> None:
    donation = receive_donation(amount_minor=10_000)
    donation.reverse(reason="recorded twice", reversed_on=DAY, actor="treasurer")
    donation.collect_events()
    with pytest.raises(AlreadyReversed):
        refund(donation, 1)
    assert event_names(donation) == []


# -- reversal --------------------------------------------------------------------------------


def test_reversing_a_donation_takes_back_all_of_it(receive_donation: Receive) -> None:
    donation = receive_donation(amount_minor=10_000)
    donation.collect_events()

    taken_back = donation.reverse(reason="recorded twice", reversed_on=DAY, actor="ann")

    assert taken_back == 10_000
    assert donation.reversed
    assert donation.reversal_reason == "recorded twice"
    assert donation.remaining_minor == 0
    (reversed_,) = donation.collect_events()
    assert type(reversed_).__qualname__ == "Donation.Reversed"
    assert reversed_.amount_minor == 10_000  # type: ignore[attr-defined]
    assert reversed_.reason == "recorded twice"  # type: ignore[attr-defined]
    assert reversed_.occurred_on == "2024-03-15"  # type: ignore[attr-defined]
    assert reversed_.actor == "ann"  # type: ignore[attr-defined]


def test_reversing_a_partly_refunded_donation_takes_back_the_unrefunded_rest(
    receive_donation: Receive,
) -> None:
    donation = receive_donation(amount_minor=10_000)
    refund(donation, 3_000)
    assert donation.reverse(reason="error", reversed_on=DAY, actor="treasurer") == 7_000
    assert donation.refunded_minor == 10_000


def test_reversing_a_fully_refunded_donation_takes_back_nothing(
    receive_donation: Receive,
) -> None:
    donation = receive_donation(amount_minor=10_000)
    refund(donation, 10_000)
    assert donation.reverse(reason="error", reversed_on=DAY, actor="treasurer") == 0
    assert donation.reversed


def test_reversing_a_donation_twice_is_refused(
    receive_donation: Receive, event_names: Callable[..., list[str]]
) -> None:
    donation = receive_donation()
    donation.reverse(reason="error", reversed_on=DAY, actor="treasurer")
    donation.collect_events()
    with pytest.raises(AlreadyReversed):
        donation.reverse(reason="error", reversed_on=DAY, actor="treasurer")
    assert event_names(donation) == []


def test_a_reversal_needs_a_reason(receive_donation: Receive) -> None:
    donation = receive_donation()
    with pytest.raises(InvalidField):
        donation.reverse(reason=" ", reversed_on=DAY, actor="treasurer")
    assert not donation.reversed


# -- donor erasure ---------------------------------------------------------------------------


def test_erasing_the_donor_drops_the_sealed_details_and_keeps_the_public_name(
    receive_donation: Receive,
) -> None:
    donation = receive_donation(donor_sealed="sealed-bytes", donor_public_name="张*")
    donation.collect_events()

    donation.erase_donor(actor="privacy-officer")

    assert donation.donor_sealed is None
    assert donation.donor_erased
    assert donation.donor_public_name == "张*"
    (erased,) = donation.collect_events()
    assert type(erased).__qualname__ == "Donation.DonorErased"
    assert erased.donor_id == donation.donor_id  # type: ignore[attr-defined]
    assert erased.actor == "privacy-officer"  # type: ignore[attr-defined]


def test_erasing_the_donor_twice_is_refused(
    receive_donation: Receive, event_names: Callable[..., list[str]]
) -> None:
    donation = receive_donation()
    donation.erase_donor(actor="privacy-officer")
    donation.collect_events()
    with pytest.raises(InvalidState):
        donation.erase_donor(actor="privacy-officer")
    assert event_names(donation) == []


# -- replay ----------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["bank", "in_kind"])
def test_a_donation_rebuilt_from_its_events_equals_the_live_donation(
    receive_donation: Receive, replayed: Callable[..., Any], channel: str
) -> None:
    in_kind = dict(IN_KIND) if channel == "in_kind" else None
    donation = receive_donation(amount_minor=10_000, channel=channel, in_kind=in_kind)
    refund(donation, 1_000)
    refund(donation, 2_000, refunded_on=date(2024, 4, 1))
    donation.reverse(reason="error", reversed_on=date(2024, 4, 2), actor="treasurer")
    donation.erase_donor(actor="privacy-officer")
    events = donation.collect_events()

    rebuilt = replayed(events)

    assert [type(e).__qualname__ for e in events] == [
        "Donation.Received",
        "Donation.Refunded",
        "Donation.Refunded",
        "Donation.Reversed",
        "Donation.DonorErased",
    ]
    assert isinstance(rebuilt, Donation)
    assert rebuilt.__dict__ == donation.__dict__
    assert rebuilt.remaining_minor == donation.remaining_minor == 0
