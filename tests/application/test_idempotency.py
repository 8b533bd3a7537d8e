"""A retried command records nothing twice; a key reused for other content is refused."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.application import DonorIn, LedgerApp
from ledger.domain.errors import DuplicateCode, IdempotencyKeyReused

TEA = "tea-village"
pytestmark = pytest.mark.parametrize("store_url", ["memory", "sqlite"], indirect=True)


@pytest.fixture
def ledger(make_app: Any, store_url: str, open_tea: Any) -> LedgerApp:
    app = make_app(store_url)
    open_tea(app)
    return app


def events_in(app: LedgerApp) -> int:
    return app.recorder.max_notification_id() or 0


def donate(app: LedgerApp, key: str = "d1", **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "slug": TEA,
        "key": key,
        "amount_minor": 100_000,
        "received_on": "2026-11-20",
        "channel": "bank",
        "donor": DonorIn(name="王小明", contact="13800138000"),
        "actor": "treasurer",
    }
    fields.update(overrides)
    return app.record_donation(**fields)


def propose(app: LedgerApp, key: str = "g1", **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "slug": TEA,
        "key": key,
        "title": "老人食堂",
        "grantee_name": "牌坊村老年协会",
        "amount_minor": 30_000,
        "actor": "李主任",
    }
    fields.update(overrides)
    return app.propose_grant(**fields)


def committed_grant(app: LedgerApp) -> Any:
    donate(app, key="seed", amount_minor=500_000)
    grant = propose(app).value
    app.approve_grant(grant_id=grant.id, actor="王会计")
    return app.approve_grant(grant_id=grant.id, actor="张村长")


# -- funds ---------------------------------------------------------------------------------


def test_reopening_a_fund_with_the_same_content_returns_it(ledger: LedgerApp, open_tea: Any):
    before = events_in(ledger)

    again = open_tea(ledger)

    assert again.created is False
    assert again.value.slug == TEA
    assert events_in(ledger) == before


def test_reopening_a_fund_with_other_content_is_a_duplicate(ledger: LedgerApp, open_tea: Any):
    before = events_in(ledger)

    with pytest.raises(DuplicateCode):
        open_tea(ledger, name="另一个基金")
    with pytest.raises(DuplicateCode):
        open_tea(ledger, approvals_required=3)

    assert events_in(ledger) == before


# -- donations -----------------------------------------------------------------------------


def test_a_retried_donation_returns_the_original_receipt(ledger: LedgerApp):
    first = donate(ledger)
    after_first = events_in(ledger)

    again = donate(ledger)

    assert first.created is True
    assert again.created is False
    assert again.value.id == first.value.id
    assert again.value.receipt_no == first.value.receipt_no == f"{TEA}-2026-000001"
    assert events_in(ledger) == after_first
    assert ledger.get_fund(TEA).totals()["received"] == 100_000


def test_the_next_donation_after_a_retry_gets_the_next_receipt(ledger: LedgerApp):
    donate(ledger)
    donate(ledger)

    second = donate(ledger, key="d2")

    assert second.value.receipt_no == f"{TEA}-2026-000002"


@pytest.mark.parametrize(
    "change",
    [
        {"amount_minor": 100_001},
        {"received_on": "2026-11-21"},
        {"channel": "cash"},
        {"purpose": "education"},
        {"note": "另一笔"},
        {"donor": DonorIn(name="王小明", contact="13900000000")},
        {"donor": DonorIn(name="李四", contact="13800138000")},
        {"donor": DonorIn(anonymous=True)},
    ],
)
def test_a_donation_key_reused_for_other_content_is_refused(ledger: LedgerApp, change: Any):
    donate(ledger)
    before = events_in(ledger)

    with pytest.raises(IdempotencyKeyReused):
        donate(ledger, **change)

    assert events_in(ledger) == before
    assert ledger.get_fund(TEA).totals()["received"] == 100_000


def test_a_retried_donation_after_its_month_was_closed_still_returns_it(
    ledger: LedgerApp, clock: Any
):
    first = donate(ledger)
    clock.advance(days=10)  # 2026-12-07
    ledger.close_period(slug=TEA, period="2026-11", actor="treasurer")

    again = donate(ledger)

    assert again.created is False
    assert again.value.receipt_no == first.value.receipt_no


# -- refunds -------------------------------------------------------------------------------


def test_a_retried_refund_records_nothing_twice(ledger: LedgerApp):
    donation = donate(ledger).value
    first = ledger.refund_donation(
        donation_id=donation.id, key="r1", amount_minor=10_000, reason="捐错了", actor="t"
    )
    before = events_in(ledger)

    again = ledger.refund_donation(
        donation_id=donation.id, key="r1", amount_minor=10_000, reason="捐错了", actor="t"
    )

    assert first.created is True
    assert again.created is False
    assert events_in(ledger) == before
    assert ledger.get_donation(donation.id).refunded_minor == 10_000
    assert ledger.get_fund(TEA).totals()["refunded"] == 10_000


def test_a_refund_key_reused_for_another_amount_is_refused(ledger: LedgerApp):
    donation = donate(ledger).value
    ledger.refund_donation(
        donation_id=donation.id, key="r1", amount_minor=10_000, reason="捐错了", actor="t"
    )
    before = events_in(ledger)

    with pytest.raises(IdempotencyKeyReused):
        ledger.refund_donation(
            donation_id=donation.id, key="r1", amount_minor=20_000, reason="捐错了", actor="t"
        )

    assert events_in(ledger) == before
    assert ledger.get_fund(TEA).totals()["refunded"] == 10_000


# -- grants --------------------------------------------------------------------------------


def test_a_retried_proposal_returns_the_same_grant(ledger: LedgerApp):
    first = propose(ledger)
    before = events_in(ledger)

    again = propose(ledger)

    assert (first.created, again.created) == (True, False)
    assert again.value.id == first.value.id
    assert events_in(ledger) == before


def test_a_grant_key_reused_for_another_grant_is_refused(ledger: LedgerApp):
    propose(ledger)
    before = events_in(ledger)

    with pytest.raises(IdempotencyKeyReused):
        propose(ledger, amount_minor=30_001)
    with pytest.raises(IdempotencyKeyReused):
        propose(ledger, title="修路")

    assert events_in(ledger) == before


# -- disbursements -------------------------------------------------------------------------


def test_a_retried_disbursement_returns_the_same_tranche(ledger: LedgerApp):
    grant = committed_grant(ledger)
    pay = {"key": "p1", "amount_minor": 10_000, "method": "bank", "reference": "TX-1"}
    first = ledger.disburse(grant_id=grant.id, actor="treasurer", **pay)
    before = events_in(ledger)

    again = ledger.disburse(grant_id=grant.id, actor="treasurer", **pay)

    assert (first.created, again.created) == (True, False)
    assert again.value.tranche_no == first.value.tranche_no == 1
    assert events_in(ledger) == before
    assert ledger.get_grant(grant.id).disbursed_minor == 10_000
    assert ledger.get_fund(TEA).totals()["disbursed"] == 10_000


def test_a_disbursement_key_reused_for_another_amount_is_refused(ledger: LedgerApp):
    grant = committed_grant(ledger)
    ledger.disburse(
        grant_id=grant.id, key="p1", amount_minor=10_000, method="bank", reference="TX-1", actor="t"
    )
    before = events_in(ledger)

    with pytest.raises(IdempotencyKeyReused):
        ledger.disburse(
            grant_id=grant.id,
            key="p1",
            amount_minor=10_001,
            method="bank",
            reference="TX-1",
            actor="t",
        )

    assert events_in(ledger) == before
    assert ledger.get_grant(grant.id).disbursed_minor == 10_000


# -- expenses ------------------------------------------------------------------------------


def expense(app: LedgerApp, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "slug": TEA,
        "key": "e1",
        "amount_minor": 5_000,
        "category": "administration",
        "paid_on": "2026-11-25",
        "payee": "打印店",
        "description": "公示栏印刷",
        "actor": "treasurer",
    }
    fields.update(overrides)
    return app.record_expense(**fields)


def test_a_retried_expense_returns_the_same_expense(ledger: LedgerApp):
    donate(ledger)
    first = expense(ledger)
    before = events_in(ledger)

    again = expense(ledger)

    assert (first.created, again.created) == (True, False)
    assert again.value == first.value
    assert events_in(ledger) == before
    assert ledger.get_fund(TEA).totals()["expenses"] == 5_000


def test_an_expense_key_reused_for_another_payee_is_refused(ledger: LedgerApp):
    donate(ledger)
    expense(ledger)
    before = events_in(ledger)

    with pytest.raises(IdempotencyKeyReused):
        expense(ledger, payee="另一家打印店")

    assert events_in(ledger) == before
    assert ledger.get_fund(TEA).totals()["expenses"] == 5_000


def test_a_refund_key_reused_on_another_donation_never_makes_two_refunds_with_one_id(
    ledger: LedgerApp,
):
    first = donate(ledger, key="d1").value
    second = donate(ledger, key="d2").value
    ledger.refund_donation(
        donation_id=first.id, key="r1", amount_minor=1_000, reason="退款", actor="t"
    )

    try:
        ledger.refund_donation(
            donation_id=second.id, key="r1", amount_minor=1_000, reason="退款", actor="t"
        )
    except IdempotencyKeyReused:
        return  # one fix: the key names one refund in the whole fund
    # The other fix: the key is scoped to its donation, and the ids differ.
    first_ids = set(ledger.get_donation(first.id).refunds)
    second_ids = set(ledger.get_donation(second.id).refunds)
    assert not first_ids & second_ids
