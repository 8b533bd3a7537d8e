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
