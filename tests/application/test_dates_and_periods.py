"""Business dates: nothing in a closed month, nothing in the future, and a refused command
never takes away what was recorded before it."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.application import DonorIn, LedgerApp
from ledger.domain.errors import (
    DateInFuture,
    IdempotencyKeyReused,
    InsufficientFunds,
    PeriodClosed,
    PeriodNotEnded,
    RefundTooLarge,
    UnknownPurpose,
)

TEA = "tea-village"
pytestmark = pytest.mark.parametrize("store_url", ["memory", "sqlite"], indirect=True)


@pytest.fixture
def ledger(make_app: Any, store_url: str, open_tea: Any) -> LedgerApp:
    app = make_app(store_url)
    open_tea(app)
    return app


def events_in(app: LedgerApp) -> int:
    return app.recorder.max_notification_id() or 0


def all_events(app: LedgerApp) -> list[Any]:
    """Every stored event, in the log's order (ids, versions, topics, stored bytes)."""
    return [
        (n.id, n.originator_id, n.originator_version, n.topic, n.state)
        for n in app.recorder.select_notifications(start=1, limit=10_000)
    ]


def donate(app: LedgerApp, key: str, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "slug": TEA,
        "key": key,
        "amount_minor": 100_000,
        "received_on": "2026-11-20",
        "channel": "cash",
        "donor": DonorIn(name="张三"),
        "actor": "treasurer",
    }
    fields.update(overrides)
    return app.record_donation(**fields)


# -- closed periods ------------------------------------------------------------------------


def test_a_donation_dated_in_a_closed_period_is_refused_and_nothing_is_recorded(
    ledger: LedgerApp, clock: Any
):
    donate(ledger, "nov-1")
    clock.advance(days=5)  # 2026-12-02
    ledger.close_period(slug=TEA, period="2026-11", actor="treasurer")
    before = all_events(ledger)

    with pytest.raises(PeriodClosed):
        donate(ledger, "late", received_on="2026-11-30")

    assert all_events(ledger) == before
    fund = ledger.get_fund(TEA)
    assert fund.totals()["received"] == 100_000
    assert fund.receipt_seq == {"2026": 1}


def test_a_donation_dated_the_first_day_after_a_closed_period_is_recorded(
    ledger: LedgerApp, clock: Any
):
    clock.advance(days=5)  # 2026-12-02
    ledger.close_period(slug=TEA, period="2026-11", actor="treasurer")

    recorded = donate(ledger, "dec-1", received_on="2026-12-01")

    assert recorded.created is True
    assert recorded.value.receipt_no == f"{TEA}-2026-000001"


def test_the_current_month_cannot_be_closed(ledger: LedgerApp):
    before = events_in(ledger)

    with pytest.raises(PeriodNotEnded):
        ledger.close_period(slug=TEA, period="2026-11", actor="treasurer")

    assert events_in(ledger) == before


def test_closing_a_period_twice_records_it_once(ledger: LedgerApp):
    ledger.close_period(slug=TEA, period="2026-10", actor="treasurer")
    before = events_in(ledger)

    ledger.close_period(slug=TEA, period="2026-10", actor="treasurer")

    assert events_in(ledger) == before
    assert ledger.get_fund(TEA).closed_periods == ["2026-10"]


def test_an_expense_and_a_refund_dated_in_a_closed_period_are_refused(
    ledger: LedgerApp, clock: Any
):
    donation = donate(ledger, "nov-1").value
    clock.advance(days=5)
    ledger.close_period(slug=TEA, period="2026-11", actor="treasurer")
    before = events_in(ledger)

    with pytest.raises(PeriodClosed):
        ledger.refund_donation(
            donation_id=donation.id,
            key="r1",
            amount_minor=1_000,
            refunded_on="2026-11-29",
            reason="退回",
            actor="t",
        )
    with pytest.raises(PeriodClosed):
        ledger.record_expense(
            slug=TEA,
            key="e1",
            amount_minor=1_000,
            category="program",
            paid_on="2026-11-29",
            payee="某人",
            description="补记",
            actor="t",
        )

    assert events_in(ledger) == before
    # The correction is recorded in the open month.
    ledger.refund_donation(
        donation_id=donation.id,
        key="r1",
        amount_minor=1_000,
        refunded_on="2026-12-01",
        reason="退回（更正 2026-11）",
        actor="t",
    )
    assert ledger.get_fund(TEA).totals()["refunded"] == 1_000


# -- the future ----------------------------------------------------------------------------


def test_a_donation_dated_tomorrow_is_refused(ledger: LedgerApp):
    before = events_in(ledger)

    with pytest.raises(DateInFuture):
        donate(ledger, "tomorrow", received_on="2026-11-28")

    assert events_in(ledger) == before


def test_a_donation_dated_today_is_recorded(ledger: LedgerApp):
    assert donate(ledger, "today", received_on="2026-11-27").created is True


def test_today_is_the_shanghai_day_not_the_utc_day(ledger: LedgerApp, clock: Any):
    # 2026-11-28 01:00 in Shanghai is still 2026-11-27 in UTC.
    clock.advance(hours=15)

    assert donate(ledger, "early", received_on="2026-11-28").created is True


@pytest.mark.parametrize("command", ["refund", "expense", "disburse", "reverse_expense"])
def test_other_business_dates_in_the_future_are_refused(ledger: LedgerApp, command: str):
    donation = donate(ledger, "d1").value
    grant = ledger.propose_grant(
        slug=TEA, key="g1", title="路灯", grantee_name="村委", amount_minor=10_000, actor="李主任"
    ).value
    ledger.approve_grant(grant_id=grant.id, actor="王会计")
    ledger.approve_grant(grant_id=grant.id, actor="张村长")
    expense_id = ledger.record_expense(
        slug=TEA,
        key="e1",
        amount_minor=1_000,
        category="program",
        paid_on="2026-11-27",
        payee="某人",
        description="材料",
        actor="t",
    ).value
    before = events_in(ledger)
    tomorrow = "2026-11-28"
    commands = {
        "refund": lambda: ledger.refund_donation(
            donation_id=donation.id,
            key="r1",
            amount_minor=1,
            refunded_on=tomorrow,
            reason="x",
            actor="t",
        ),
        "expense": lambda: ledger.record_expense(
            slug=TEA,
            key="e2",
            amount_minor=1,
            category="program",
            paid_on=tomorrow,
            payee="p",
            description="d",
            actor="t",
        ),
        "disburse": lambda: ledger.disburse(
            grant_id=grant.id,
            key="p1",
            amount_minor=1,
            paid_on=tomorrow,
            method="cash",
            reference="r",
            actor="t",
        ),
        "reverse_expense": lambda: ledger.reverse_expense(
            slug=TEA, expense_id=expense_id, reason="x", reversed_on=tomorrow, actor="t"
        ),
    }

    with pytest.raises(DateInFuture):
        commands[command]()

    assert events_in(ledger) == before


# -- refused commands lose nothing ---------------------------------------------------------


def test_refused_commands_never_lose_what_was_recorded_before(ledger: LedgerApp, clock: Any):
    first = donate(ledger, "d1", amount_minor=50_000)
    second = donate(ledger, "d2", amount_minor=20_000, purpose="education")
    grant = ledger.propose_grant(
        slug=TEA, key="g1", title="书包", grantee_name="村小", amount_minor=60_000, actor="李主任"
    ).value
    recorded = all_events(ledger)
    figures = ledger.get_fund(TEA).figures

    refusals: list[tuple[type[Exception], Any]] = [
        (IdempotencyKeyReused, lambda: donate(ledger, "d1", amount_minor=1)),
        (DateInFuture, lambda: donate(ledger, "d3", received_on="2027-01-01")),
        (UnknownPurpose, lambda: donate(ledger, "d4", purpose="roads")),
        (
            RefundTooLarge,
            lambda: ledger.refund_donation(
                donation_id=second.value.id, key="r", amount_minor=20_001, reason="x", actor="t"
            ),
        ),
        (
            InsufficientFunds,
            lambda: ledger.record_expense(
                slug=TEA,
                key="e1",
                amount_minor=50_001,
                category="program",
                paid_on="2026-11-27",
                payee="p",
                description="d",
                actor="t",
            ),
        ),
    ]
    ledger.approve_grant(grant_id=grant.id, actor="王会计")
    recorded = all_events(ledger)
    refusals.append(
        (InsufficientFunds, lambda: ledger.approve_grant(grant_id=grant.id, actor="张村长"))
    )
    for error, command in refusals:
        with pytest.raises(error):
            command()
        assert all_events(ledger) == recorded
        assert ledger.get_fund(TEA).figures == figures

    assert ledger.get_donation(first.value.id).receipt_no == f"{TEA}-2026-000001"
    assert ledger.get_donation(second.value.id).amount_minor == 20_000
    assert ledger.get_grant(grant.id).status == "proposed"
    third = donate(ledger, "d5", amount_minor=10_000)
    assert third.value.receipt_no == f"{TEA}-2026-000003"
    assert ledger.get_fund(TEA).totals()["received"] == 80_000
