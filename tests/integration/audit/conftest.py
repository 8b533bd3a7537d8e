"""A ledger with every kind of money event, on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger.application import DonorIn, LedgerApp

TEA = "tea-village"
EDU = "education"


def fill(app: LedgerApp, open_tea: Callable[..., Any]) -> None:
    """Two funds; donations (one named, so encrypted), a refund, a reversal, a grant paid in
    tranches with one bounced and closed, expenses with one reversed."""
    open_tea(app)
    app.open_fund(
        slug="river", name="河边基金", currency="CNY", host="示例公益基金会",
        committee=["甲", "乙"], approvals_required=1, actor="admin",
    )  # fmt: skip
    app.record_donation(
        slug=TEA, key="d1", amount_minor=100_000, received_on="2026-11-02", channel="bank",
        donor=DonorIn(name="张三", contact="13800000000"), actor="t",
    )  # fmt: skip
    edu = app.record_donation(
        slug=TEA, key="d2", amount_minor=50_000, received_on="2026-11-03", channel="wechat",
        purpose=EDU, actor="t",
    ).value  # fmt: skip
    wrong = app.record_donation(
        slug=TEA, key="d3", amount_minor=7_000, received_on="2026-11-04", channel="cash",
        actor="t",
    ).value  # fmt: skip
    app.record_donation(
        slug="river", key="r1", amount_minor=30_000, received_on="2026-11-05", channel="alipay",
        actor="t",
    )  # fmt: skip
    app.refund_donation(donation_id=edu.id, key="f1", amount_minor=5_000, reason="退款", actor="t")
    app.reverse_donation(donation_id=wrong.id, reason="录入错误", actor="t")
    grant = app.propose_grant(
        slug=TEA, key="g1", title="村小图书角", purpose=EDU, grantee_name="牌坊村小学",
        amount_minor=40_000, actor="李主任",
    ).value  # fmt: skip
    app.approve_grant(grant_id=grant.id, actor="王会计")
    app.approve_grant(grant_id=grant.id, actor="张村长")
    for n, amount in enumerate((15_000, 10_000), 1):
        app.disburse(
            grant_id=grant.id, key=f"p{n}", amount_minor=amount, method="bank",
            reference=f"TX{n}", actor="t",
        )  # fmt: skip
    app.reverse_disbursement(grant_id=grant.id, tranche_no=2, reason="退票", actor="t")
    app.close_grant(grant_id=grant.id, reason="项目结束", actor="李主任")
    expense = app.record_expense(
        slug=TEA, key="e1", amount_minor=2_000, category="administration",
        paid_on="2026-11-20", payee="文具店", description="纸张", actor="t",
    ).value  # fmt: skip
    app.record_expense(
        slug="river", key="e2", amount_minor=1_000, category="program", paid_on="2026-11-21",
        payee="村委会", description="清洁", actor="t",
    )  # fmt: skip
    app.reverse_expense(slug=TEA, expense_id=expense, reason="重复", actor="t")


@pytest.fixture(name="fill")
def fill_fixture() -> Callable[[LedgerApp, Callable[..., Any]], None]:
    """``fill(app, open_tea)``: the history above."""
    return fill


@pytest.fixture
def busy_app(make_app: Any, sqlite_url: str, open_tea: Callable[..., Any]) -> LedgerApp:
    app: LedgerApp = make_app(sqlite_url)
    fill(app, open_tea)
    return app
