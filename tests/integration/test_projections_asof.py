"""A fund's figures as of a business date and as known at a recording instant, with
back-dated entries and corrections of a closed month."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import pytest
from read_models_support import (  # type: ignore[import-not-found]
    TEA,
    db_url,
    engine,
    instant,
    new_history,
    open_tea,
)
from sqlalchemy import Engine

from ledger.application import DonorIn
from ledger.domain.errors import FundNotFound, PeriodClosed
from projections.queries import (
    FundFigures,
    figures_as_of,
    figures_known_at_replay,
    fund_figures,
)
from projections.runner import ProjectionRunner

__all__ = ["db_url", "engine"]


def donate(app: Any, key: str, amount_minor: int, day: str, purpose: str | None = None) -> Any:
    return app.record_donation(
        slug=TEA,
        key=key,
        amount_minor=amount_minor,
        received_on=day,
        channel="bank",
        purpose=purpose,
        donor=DonorIn(name="王小明"),
        actor="treasurer",
    )


def same(a: FundFigures, b: FundFigures) -> None:
    assert a.totals.as_dict() == b.totals.as_dict()
    assert a.unrestricted.as_dict() == b.unrestricted.as_dict()
    assert {k: v.as_dict() for k, v in a.purposes.items()} == {
        k: v.as_dict() for k, v in b.purposes.items()
    }


def test_back_dated_entries_and_corrections_by_business_date_and_by_instant(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    runner = ProjectionRunner(app, engine)
    open_tea(app)
    t0 = instant()
    donate(app, "a", 100_000, "2026-03-10")
    expense = app.record_expense(
        slug=TEA,
        key="e",
        amount_minor=30_000,
        category="administration",
        paid_on="2026-03-20",
        payee="文具店",
        description="办公用品",
        actor="treasurer",
    ).value
    t1 = instant()
    app.close_period(slug=TEA, period="2026-03", actor="treasurer")
    with pytest.raises(PeriodClosed):
        donate(app, "late", 1_000, "2026-03-31")
    donate(app, "b", 50_000, "2026-02-15")  # back-dated into an open month
    # The March expense was a mistake: corrected in an open month, naming what it corrects.
    app.reverse_expense(
        slug=TEA, expense_id=expense, reason="2026-03 记错，冲销", actor="treasurer"
    )
    t2 = instant()
    donate(app, "c", 20_000, "2026-04-01", purpose="education")
    runner.catch_up()

    with engine.connect() as conn:
        march = figures_as_of(conn, TEA, as_of=date(2026, 3, 31))
        assert march.totals.received_minor == 150_000  # the back-dated gift counts
        assert march.totals.expenses_minor == 30_000  # corrected only in November
        assert march.totals.expenses_by_category_minor["administration"] == 30_000
        assert march.totals.on_hand_minor == 120_000

        march_then = figures_as_of(conn, TEA, as_of=date(2026, 3, 31), known_at=t1)
        assert march_then.totals.received_minor == 100_000  # the ledger did not know yet
        assert march_then.totals.on_hand_minor == 70_000

        february = figures_as_of(conn, TEA, as_of=date(2026, 2, 28))
        assert february.totals.received_minor == 50_000
        assert figures_as_of(conn, TEA, as_of=date(2026, 2, 28), known_at=t1).totals == (
            figures_as_of(conn, TEA, as_of=date(2026, 1, 1)).totals
        )

        now = figures_as_of(conn, TEA, as_of=date(2026, 11, 27))
        assert now.totals.expenses_minor == 0
        assert now.purposes["education"].received_minor == 20_000
        same(now, fund_figures(conn, TEA))

        at_t2 = figures_as_of(conn, TEA, known_at=t2)
        assert at_t2.totals.received_minor == 150_000
        assert at_t2.totals.expenses_minor == 0
        assert at_t2.purposes["education"].received_minor == 0
        for moment in (t1, t2):
            same(
                figures_as_of(conn, TEA, known_at=moment), figures_known_at_replay(app, TEA, moment)
            )
        empty = figures_as_of(conn, TEA, known_at=t0)
        assert empty.totals.received_minor == 0
        same(empty, figures_known_at_replay(app, TEA, t0))
    with pytest.raises(FundNotFound):
        figures_known_at_replay(app, "no-such-fund", t2)


def test_grants_commit_and_release_money_as_of_their_dates(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    open_tea(app)
    donate(app, "a", 100_000, "2026-05-01")
    grant = app.propose_grant(
        slug=TEA, key="g", title="修路", grantee_name="村委会", amount_minor=60_000, actor="李主任"
    ).value
    app.approve_grant(grant_id=grant.id, actor="王会计")
    app.approve_grant(grant_id=grant.id, actor="张村长")  # commits today (2026-11-27)
    app.disburse(
        grant_id=grant.id,
        key="t1",
        amount_minor=40_000,
        paid_on="2026-11-27",
        method="bank",
        reference="TR1",
        actor="treasurer",
    )
    app.close_grant(grant_id=grant.id, reason="完工", actor="李主任")  # releases 20,000
    ProjectionRunner(app, engine).catch_up()
    with engine.connect() as conn:
        before = figures_as_of(conn, TEA, as_of=date(2026, 11, 26)).totals
        assert (before.committed_minor, before.available_minor) == (0, 100_000)
        after = figures_as_of(conn, TEA, as_of=date(2026, 11, 27)).totals
        assert after.committed_minor == 60_000
        assert after.released_minor == 20_000
        assert after.disbursed_minor == 40_000
        assert after.on_hand_minor == 60_000
        assert after.available_minor == 60_000
        same(figures_as_of(conn, TEA), fund_figures(conn, TEA))


def test_journal_known_at_equals_a_replay_of_the_fund_at_every_instant(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=21)
    rng = random.Random(21)
    moments = []
    for _ in range(8):
        history.run(rng.randrange(5, 20))
        moments.append(instant())
    ProjectionRunner(app, engine).catch_up()
    with engine.connect() as conn:
        for moment in moments:
            for slug in history.slugs:
                same(
                    figures_as_of(conn, slug, known_at=moment),
                    figures_known_at_replay(app, slug, moment),
                )
        for slug in history.slugs:
            same(figures_as_of(conn, slug), fund_figures(conn, slug))
            live = app.get_fund(slug)
            assert fund_figures(conn, slug).totals.received_minor == live.totals()["received"]
