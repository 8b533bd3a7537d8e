"""The generator of rich histories: valid, rich, deterministic, and the same history through
the use cases and in bulk."""

from __future__ import annotations

from typing import Any

from ledger.histories import record_history


def _figures(app: Any, slugs: list[str]) -> dict[str, Any]:
    return {slug: app.get_fund(slug).figures for slug in slugs}


def test_a_small_history_has_every_kind_of_entry(make_app: Any) -> None:
    app = make_app("memory://")
    counts = record_history(app, seed=5, movements=400)
    assert counts.movements >= 400
    for kind in (
        "donations",
        "in_kind",
        "restricted",
        "refunds",
        "reversals",
        "grants_rejected",
        "grants_committed",
        "grants_closed_unspent",
        "grants_cancelled",
        "tranches",
        "tranches_bounced",
        "expenses_reversed",
        "backdated",
        "periods_closed",
    ):
        assert getattr(counts, kind) > 0, kind
    assert set(counts.expenses) == {"program", "administration", "fundraising"}
    fund = app.get_fund(counts.slugs[0])
    assert fund.closed_periods
    assert all(fund.available_minor(code) >= 0 for code in fund.figures)


def test_the_same_seed_gives_the_same_history_both_ways(make_app: Any) -> None:
    by_use_cases, again, in_bulk = (make_app("memory://") for _ in range(3))
    first = record_history(by_use_cases, seed=11, movements=250, funds=2)
    second = record_history(again, seed=11, movements=250, funds=2)
    third = record_history(in_bulk, seed=11, movements=250, funds=2, bulk=True)
    assert first == second == third
    figures = _figures(by_use_cases, first.slugs)
    assert figures == _figures(again, first.slugs) == _figures(in_bulk, first.slugs)
