"""The exports' chart of accounts: every name valid in Beancount, purpose codes readable back,
and each movement's postings balanced."""

from __future__ import annotations

import pytest

from projections.exports import chart

account = pytest.importorskip("beancount.core.account")

GRANTEES = [
    "牌坊村老年协会",
    "Green Hills Youth Club",
    "茶乡 合作社（二组）",
    "3rd Street",
    "…",
    "ß-clinic",
]
PURPOSES = {"elderly-care": "养老", "2025-flood": "2025年水灾救助", "x": "X"}


def test_every_account_name_is_valid_in_beancount() -> None:
    names = [a.name for a in chart.accounts(PURPOSES, GRANTEES) if ":" in a.name]
    invalid = [name for name in names if not account.is_valid(name)]
    assert not invalid
    assert len(set(names)) == len(names)


def test_purpose_codes_read_back_and_grantees_keep_their_letters() -> None:
    for code in PURPOSES:
        component = chart.purpose_component(code)
        assert component[0].isupper() or component[0].isdigit()
        assert component[:1].lower() + component[1:] == code
    assert chart.grant_account("牌坊村老年协会").endswith(":G-牌坊村老年协会")
    assert chart.grant_account("茶乡 合作社（二组）").endswith(":G-茶乡-合作社-二组")


@pytest.mark.parametrize(
    "kind",
    [
        "donation",
        "refund",
        "donation_reversal",
        "grant_commitment",
        "grant_release",
        "disbursement",
        "disbursement_reversal",
        "expense",
        "expense_reversal",
    ],
)
@pytest.mark.parametrize("purpose", ["", "elderly-care"])
def test_every_movement_balances(kind: str, purpose: str) -> None:
    postings = chart.postings(
        kind,
        1234,
        purpose=purpose,
        money=chart.BANK,
        category="administration",
        grantee="村卫生室",
    )
    assert sum(amount for _, amount in postings) == 0
    assert len(postings) == (4 if purpose and kind.startswith(("grant_", "expense")) else 2)
