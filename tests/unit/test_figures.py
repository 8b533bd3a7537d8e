"""The money rule (DESIGN §3, §5): the formulas written out here, independently of the module."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import figures as f
from ledger.domain.fund import Fund

amounts = st.integers(min_value=0, max_value=10**15)
figure_sets = st.fixed_dictionaries(dict.fromkeys(f.FIGURE_NAMES, amounts))


@given(figure_sets)
def test_on_hand_and_available_follow_the_design(x: dict[str, int]) -> None:
    assert f.on_hand_of(x) == x["received"] - x["refunded"] - x["disbursed"] - x["expenses"]
    assert f.available_of(x) == (
        x["received"] - x["refunded"] - x["committed"] + x["released"] - x["expenses"]
    )


def test_each_money_event_moves_the_figure_the_design_names() -> None:
    expected = {
        "DonationCredited": ("received", 1, 1, 1),
        "DonationRefundDebited": ("refunded", 1, -1, -1),
        "DonationReversalDebited": ("refunded", 1, -1, -1),
        "GrantCommitted": ("committed", 1, 0, -1),
        "GrantReleased": ("released", 1, 0, 1),
        "DisbursementDebited": ("disbursed", 1, -1, 0),
        "DisbursementReversalCredited": ("disbursed", -1, 1, 0),
        "ExpenseRecorded": ("expenses", 1, -1, -1),
        "ExpenseReversed": ("expenses", -1, 1, 1),
    }
    got = {
        name: (e.figure, e.sign, e.on_hand_sign, e.available_sign) for name, e in f.EFFECTS.items()
    }
    assert got == expected


def test_every_money_event_is_an_event_of_the_fund() -> None:
    for name in f.MONEY_EVENTS:
        assert isinstance(getattr(Fund, name), type), name


def test_apply_effect_and_totals() -> None:
    x = f.zero_figures()
    f.apply_effect(x, "DonationCredited", 500)
    f.apply_effect(x, "GrantCommitted", 200)
    f.apply_effect(x, "DisbursementDebited", 150)
    f.apply_effect(x, "DisbursementReversalCredited", 50)
    assert x == {**f.zero_figures(), "received": 500, "committed": 200, "disbursed": 100}
    assert f.with_derived(x)["on_hand"] == 400
    assert f.with_derived(x)["available"] == 300
    assert f.total_of([x, x])["received"] == 1000
    assert f.column("received") == "received_minor"


# -- the bound on running figures (issue 10, item 3) -----------------------------------------


def test_the_figure_bound_leaves_headroom_in_a_signed_64_bit_column() -> None:
    # The largest sum a read model or report makes of a fund's figures (on_hand's parts,
    # spending = disbursed + expenses) stays far inside what SQLite and PostgreSQL hold.
    assert f.INT64_MAX == 9_223_372_036_854_775_807
    assert 2 * f.FIGURE_MINOR_MAX * 40 < f.INT64_MAX
    from ledger.domain.money import AMOUNT_MINOR_MAX

    assert f.FIGURE_MINOR_MAX == 100 * AMOUNT_MINOR_MAX


def test_a_donation_up_to_the_figure_bound_is_credited_and_one_fen_more_is_refused() -> None:
    from datetime import date

    import pytest

    from ledger.domain.errors import FigureLimitReached
    from ledger.domain.money import AMOUNT_MINOR_MAX

    fund = Fund.open(
        slug="big",
        name="Big",
        currency="CNY",
        description="",
        host="h",
        committee=["a", "b"],
        approvals_required=1,
        purposes=[{"code": "edu", "name": "教育"}],
        actor="t",
        request_sha256="0" * 64,
    )
    day = date(2024, 3, 15)

    def credit(amount_minor: int, purpose: str = "") -> str:
        return fund.credit_donation(
            donation_id="d", amount_minor=amount_minor, purpose=purpose, received_on=day, actor="t"
        )

    for i in range(99):
        credit(AMOUNT_MINOR_MAX, "edu" if i % 2 else "")
    credit(AMOUNT_MINOR_MAX - 1)  # spread over purposes: the fund's total is what counts
    credit(1)
    assert fund.totals()["received"] == f.FIGURE_MINOR_MAX
    fund.collect_events()
    with pytest.raises(FigureLimitReached) as refused:
        credit(1, "edu")
    assert refused.value.facts["figure"] == "received"
    assert fund.collect_events() == []
    assert fund.totals()["received"] == f.FIGURE_MINOR_MAX


def test_committing_and_releasing_again_and_again_stops_at_the_bound() -> None:
    from datetime import date

    import pytest

    from ledger.domain.errors import FigureLimitReached
    from ledger.domain.money import AMOUNT_MINOR_MAX

    fund = Fund.open(
        slug="big",
        name="Big",
        currency="CNY",
        description="",
        host="h",
        committee=["a", "b"],
        approvals_required=1,
        purposes=[],
        actor="t",
        request_sha256="0" * 64,
    )
    day = date(2024, 3, 15)
    fund.credit_donation(
        donation_id="d", amount_minor=AMOUNT_MINOR_MAX, purpose="", received_on=day, actor="t"
    )
    # committed and released grow with every commitment that is released again
    for _ in range(100):
        fund.commit_grant(
            grant_id="g", amount_minor=AMOUNT_MINOR_MAX, purpose="", committed_on=day, actor="t"
        )
        fund.release_grant(
            grant_id="g", amount_minor=AMOUNT_MINOR_MAX, purpose="", released_on=day, actor="t"
        )
    assert fund.totals()["committed"] == f.FIGURE_MINOR_MAX
    with pytest.raises(FigureLimitReached):
        fund.commit_grant(grant_id="g", amount_minor=1, purpose="", committed_on=day, actor="t")
