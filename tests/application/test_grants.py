"""A grant through the application, with the fund's figures after every step."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.domain.errors import (
    AlreadyApproved,
    GrantOverdrawn,
    InsufficientFunds,
    InvalidState,
    NotCommitteeMember,
    SelfApproval,
)

TEA = "tea-village"
EDU = "education"
pytestmark = pytest.mark.parametrize("store_url", ["memory", "sqlite"], indirect=True)


@pytest.fixture
def ledger(make_app: Any, store_url: str, open_tea: Any) -> LedgerApp:
    app = make_app(store_url)
    open_tea(app)
    app.record_donation(
        slug=TEA,
        key="d-free",
        amount_minor=100_000,
        received_on="2026-11-02",
        channel="bank",
        actor="t",
    )
    app.record_donation(
        slug=TEA,
        key="d-edu",
        amount_minor=50_000,
        received_on="2026-11-03",
        channel="wechat",
        purpose=EDU,
        actor="t",
    )
    return app


def events_in(app: LedgerApp) -> int:
    return app.recorder.max_notification_id() or 0


def figures(app: LedgerApp, purpose: str = "") -> dict[str, int]:
    fund = app.get_fund(TEA)
    f = dict(fund.figures[purpose])
    f["on_hand"] = fund.on_hand_minor(purpose)
    f["available"] = fund.available_minor(purpose)
    return f


def expect(app: LedgerApp, purpose: str = "", **values: int) -> None:
    """The purpose's figures: the named values, zero for the others not derived."""
    wanted = {
        "received": 0,
        "refunded": 0,
        "committed": 0,
        "released": 0,
        "disbursed": 0,
        "expenses": 0,
    }
    wanted.update(values)
    got = figures(app, purpose)
    assert got == wanted, f"{purpose or 'unrestricted'}: {got} != {wanted}"


def propose(app: LedgerApp, key: str = "g1", **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "slug": TEA,
        "key": key,
        "title": "村小图书角",
        "purpose": EDU,
        "grantee_name": "牌坊村小学",
        "amount_minor": 40_000,
        "actor": "李主任",
    }
    fields.update(overrides)
    return app.propose_grant(**fields).value


def test_a_grant_from_proposal_to_closure(ledger: LedgerApp):
    edu = {"received": 50_000}

    grant = propose(ledger)
    expect(ledger, EDU, **edu, on_hand=50_000, available=50_000)
    assert grant.status == "proposed"

    ledger.approve_grant(grant_id=grant.id, actor="王会计")
    expect(ledger, EDU, **edu, on_hand=50_000, available=50_000)
    assert ledger.get_grant(grant.id).status == "proposed"

    committed = ledger.approve_grant(grant_id=grant.id, actor="张村长")
    assert committed.status == "committed"
    assert [a["member"] for a in committed.approvals] == ["王会计", "张村长"]
    edu["committed"] = 40_000
    expect(ledger, EDU, **edu, on_hand=50_000, available=10_000)

    paid = ledger.disburse(
        grant_id=grant.id, key="p1", amount_minor=15_000, method="bank", reference="TX1", actor="t"
    )
    assert paid.value.tranche_no == 1
    edu["disbursed"] = 15_000
    expect(ledger, EDU, **edu, on_hand=35_000, available=10_000)

    ledger.disburse(
        grant_id=grant.id, key="p2", amount_minor=10_000, method="cash", reference="TX2", actor="t"
    )
    edu["disbursed"] = 25_000
    expect(ledger, EDU, **edu, on_hand=25_000, available=10_000)

    ledger.reverse_disbursement(grant_id=grant.id, tranche_no=2, reason="退票", actor="t")
    edu["disbursed"] = 15_000
    expect(ledger, EDU, **edu, on_hand=35_000, available=10_000)
    assert ledger.get_grant(grant.id).remaining_minor == 25_000

    with pytest.raises(GrantOverdrawn):
        ledger.disburse(
            grant_id=grant.id,
            key="p3",
            amount_minor=25_001,
            method="bank",
            reference="TX3",
            actor="t",
        )
    ledger.disburse(
        grant_id=grant.id, key="p3", amount_minor=25_000, method="bank", reference="TX3", actor="t"
    )
    edu["disbursed"] = 40_000
    expect(ledger, EDU, **edu, on_hand=10_000, available=10_000)

    ledger.reverse_disbursement(grant_id=grant.id, tranche_no=3, reason="退票", actor="t")
    edu["disbursed"] = 15_000
    expect(ledger, EDU, **edu, on_hand=35_000, available=10_000)

    closed = ledger.close_grant(grant_id=grant.id, reason="项目结束", actor="李主任")
    assert closed.status == "closed"
    edu["released"] = 25_000
    expect(ledger, EDU, **edu, on_hand=35_000, available=35_000)

    # A tranche that bounces after the closure goes straight back to the fund.
    ledger.reverse_disbursement(grant_id=grant.id, tranche_no=1, reason="退票", actor="t")
    edu.update(disbursed=0, released=40_000)
    expect(ledger, EDU, **edu, on_hand=50_000, available=50_000)

    # The unrestricted money was never touched.
    expect(ledger, "", received=100_000, on_hand=100_000, available=100_000)
    grant = ledger.get_grant(grant.id)
    assert (grant.committed_minor, grant.disbursed_minor, grant.released_minor) == (
        40_000,
        0,
        40_000,
    )


def test_a_cancelled_grant_releases_what_was_not_paid(ledger: LedgerApp):
    grant = propose(ledger, purpose=None, amount_minor=60_000)
    ledger.approve_grant(grant_id=grant.id, actor="王会计")
    ledger.approve_grant(grant_id=grant.id, actor="张村长")
    ledger.disburse(
        grant_id=grant.id, key="p1", amount_minor=20_000, method="bank", reference="T", actor="t"
    )

    cancelled = ledger.cancel_grant(grant_id=grant.id, reason="项目取消", actor="王会计")

    assert cancelled.status == "cancelled"
    expect(
        ledger,
        "",
        received=100_000,
        committed=60_000,
        disbursed=20_000,
        released=40_000,
        on_hand=80_000,
        available=80_000,
    )
    with pytest.raises(InvalidState):
        ledger.disburse(
            grant_id=grant.id, key="p2", amount_minor=1, method="bank", reference="T", actor="t"
        )


def test_a_rejected_grant_commits_nothing_and_cannot_be_approved(ledger: LedgerApp):
    grant = propose(ledger)

    ledger.reject_grant(grant_id=grant.id, reason="不符合宗旨", actor="王会计")

    with pytest.raises(InvalidState):
        ledger.approve_grant(grant_id=grant.id, actor="张村长")
    assert ledger.get_grant(grant.id).status == "rejected"
    expect(ledger, EDU, received=50_000, on_hand=50_000, available=50_000)


def test_only_other_committee_members_approve_and_each_once(ledger: LedgerApp):
    grant = propose(ledger)
    before = events_in(ledger)

    with pytest.raises(SelfApproval):
        ledger.approve_grant(grant_id=grant.id, actor="李主任")
    with pytest.raises(NotCommitteeMember):
        ledger.approve_grant(grant_id=grant.id, actor="路人甲")
    assert events_in(ledger) == before

    ledger.approve_grant(grant_id=grant.id, actor="王会计")
    with pytest.raises(AlreadyApproved):
        ledger.approve_grant(grant_id=grant.id, actor="王会计")
    assert ledger.get_grant(grant.id).status == "proposed"


def test_an_approval_that_would_overdraw_is_refused_and_not_recorded(ledger: LedgerApp):
    grant = propose(ledger, amount_minor=50_001)
    ledger.approve_grant(grant_id=grant.id, actor="王会计")
    before = events_in(ledger)

    with pytest.raises(InsufficientFunds):
        ledger.approve_grant(grant_id=grant.id, actor="张村长")

    assert events_in(ledger) == before
    refused = ledger.get_grant(grant.id)
    assert refused.status == "proposed"
    assert [a["member"] for a in refused.approvals] == ["王会计"]
    expect(ledger, EDU, received=50_000, on_hand=50_000, available=50_000)

    # One fen more for education, and the same member's approval commits it.
    ledger.record_donation(
        slug=TEA,
        key="d-edu-2",
        amount_minor=1,
        received_on="2026-11-27",
        channel="cash",
        purpose=EDU,
        actor="t",
    )
    committed = ledger.approve_grant(grant_id=grant.id, actor="张村长")
    assert committed.status == "committed"
    expect(ledger, EDU, received=50_001, committed=50_001, on_hand=50_001, available=0)


def test_restricted_money_does_not_cover_an_unrestricted_grant(ledger: LedgerApp):
    grant = propose(ledger, purpose=None, amount_minor=100_001)
    ledger.approve_grant(grant_id=grant.id, actor="王会计")

    with pytest.raises(InsufficientFunds):
        ledger.approve_grant(grant_id=grant.id, actor="张村长")


def test_the_exact_available_amount_can_be_committed(ledger: LedgerApp):
    grant = propose(ledger, amount_minor=50_000)
    ledger.approve_grant(grant_id=grant.id, actor="王会计")

    ledger.approve_grant(grant_id=grant.id, actor="张村长")

    expect(ledger, EDU, received=50_000, committed=50_000, on_hand=50_000, available=0)
    with pytest.raises(InsufficientFunds):
        ledger.record_expense(
            slug=TEA,
            key="e",
            amount_minor=1,
            category="program",
            paid_on="2026-11-27",
            payee="p",
            description="d",
            purpose=EDU,
            actor="t",
        )
