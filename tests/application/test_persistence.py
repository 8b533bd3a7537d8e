"""What is stored is enough: a new process on the same file sees the same ledger, also for a
fund whose history is long enough to be snapshotted."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.application import SNAPSHOT_INTERVAL_FUND, SNAPSHOT_INTERVAL_OTHER, DonorIn, LedgerApp
from ledger.domain.common import fund_id

TEA = "tea-village"


def fund_state(app: LedgerApp) -> dict[str, Any]:
    fund = app.get_fund(TEA)
    return {
        "version": fund.version,
        "figures": fund.figures,
        "receipt_seq": fund.receipt_seq,
        "closed_periods": fund.closed_periods,
        "expenses": fund.expenses,
        "committee": fund.committee,
        "purposes": fund.purposes,
        "on_hand": {p: fund.on_hand_minor(p) for p in fund.figures},
        "available": {p: fund.available_minor(p) for p in fund.figures},
    }


def replay(app: LedgerApp, aggregate_id: Any) -> Any:
    """The aggregate rebuilt from every one of its stored events, no snapshot, no cache."""
    aggregate = None
    for domain_event in app.events.get(aggregate_id):
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def busy_history(app: LedgerApp, clock: Any) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    for i, (amount, purpose) in enumerate([(80_000, None), (30_000, "education"), (5_000, None)]):
        ids[f"d{i}"] = app.record_donation(
            slug=TEA,
            key=f"d{i}",
            amount_minor=amount,
            received_on="2026-11-1" + str(i),
            channel="bank",
            purpose=purpose,
            donor=DonorIn(name=f"捐赠人{i}", contact=f"1380000000{i}"),
            actor="t",
        ).value.id
    app.refund_donation(
        donation_id=ids["d2"], key="r", amount_minor=2_000, reason="多捐", actor="t"
    )
    app.reverse_donation(donation_id=ids["d1"], reason="录错基金", actor="t")
    grant = app.propose_grant(
        slug=TEA, key="g", title="路灯", grantee_name="村委", amount_minor=50_000, actor="李主任"
    ).value
    app.approve_grant(grant_id=grant.id, actor="王会计")
    app.approve_grant(grant_id=grant.id, actor="张村长")
    app.disburse(
        grant_id=grant.id, key="p1", amount_minor=20_000, method="bank", reference="T1", actor="t"
    )
    ids["grant"] = grant.id
    expense = app.record_expense(
        slug=TEA,
        key="e",
        amount_minor=3_000,
        category="administration",
        paid_on="2026-11-27",
        payee="打印店",
        description="公示",
        actor="t",
    ).value
    app.reverse_expense(slug=TEA, expense_id=expense, reason="重复", actor="t")
    clock.advance(days=10)
    app.close_period(slug=TEA, period="2026-11", actor="t")
    app.add_purpose(slug=TEA, code="roads", name="修路", actor="admin")
    app.close_grant(grant_id=grant.id, reason="完工", actor="李主任")
    return ids


def test_a_new_app_on_the_same_file_sees_the_same_ledger(
    make_app: Any, sqlite_url: str, open_tea: Any, clock: Any
):
    first = make_app(sqlite_url)
    open_tea(first)
    ids = busy_history(first, clock)
    expected = fund_state(first)
    grant = first.get_grant(ids["grant"])

    second = make_app(sqlite_url)

    assert fund_state(second) == expected
    assert vars(second.get_grant(ids["grant"])) == vars(grant)
    for key in ("d0", "d1", "d2"):
        assert vars(second.get_donation(ids[key])) == vars(first.get_donation(ids[key]))
    assert expected["figures"][""]["released"] == 30_000
    assert expected["figures"]["education"]["refunded"] == 30_000


def test_every_aggregate_equals_the_replay_of_its_events(
    make_app: Any, sqlite_url: str, open_tea: Any, clock: Any
):
    app = make_app(sqlite_url)
    open_tea(app)
    ids = busy_history(app, clock)

    assert vars(replay(app, fund_id(TEA))) == vars(app.get_fund(TEA))
    assert vars(replay(app, ids["grant"])) == vars(app.get_grant(ids["grant"]))
    for key in ("d0", "d1", "d2"):
        assert vars(replay(app, ids[key])) == vars(app.get_donation(ids[key]))


def test_a_long_fund_history_is_snapshotted_and_loads_in_a_new_app(
    make_app: Any, sqlite_url: str, sqlite_path: Path, open_tea: Any
):
    app = make_app(sqlite_url)
    open_tea(app)
    donations = SNAPSHOT_INTERVAL_FUND + 20
    for i in range(donations):
        app.record_donation(
            slug=TEA,
            key=f"d{i}",
            amount_minor=100 + i,
            received_on="2026-11-27",
            channel="cash",
            purpose="elderly-care" if i % 3 == 0 else None,
            actor="t",
        )
    expected = fund_state(app)
    assert expected["version"] == donations + 1
    with sqlite3.connect(sqlite_path) as conn:
        snapshots = conn.execute(
            "SELECT originator_version FROM stored_snapshots WHERE originator_id = ?",
            (fund_id(TEA).hex,),
        ).fetchall()
    assert snapshots == [(SNAPSHOT_INTERVAL_FUND,)]

    fresh = make_app(sqlite_url)

    assert fund_state(fresh) == expected
    assert fresh.get_fund(TEA).receipt_seq == {"2026": donations}
    assert sum(expected["figures"][p]["received"] for p in expected["figures"]) == sum(
        100 + i for i in range(donations)
    )
    # The snapshot path and the full replay agree.
    assert vars(replay(fresh, fund_id(TEA))) == vars(fresh.get_fund(TEA))
    # And the next donation continues the receipt sequence without a gap.
    nxt = fresh.record_donation(
        slug=TEA, key="next", amount_minor=1, received_on="2026-11-27", channel="cash", actor="t"
    )
    assert nxt.value.receipt_no == f"{TEA}-2026-{donations + 1:06d}"


def test_a_long_grant_history_is_snapshotted_and_loads_in_a_new_app(
    make_app: Any, sqlite_url: str, sqlite_path: Path, open_tea: Any
):
    app = make_app(sqlite_url)
    open_tea(app)
    app.record_donation(
        slug=TEA, key="d", amount_minor=100_000, received_on="2026-11-27", channel="bank", actor="t"
    )
    grant = app.propose_grant(
        slug=TEA, key="g", title="路灯", grantee_name="村委", amount_minor=50_000, actor="李主任"
    ).value
    app.approve_grant(grant_id=grant.id, actor="王会计")
    app.approve_grant(
        grant_id=grant.id, actor="张村长"
    )  # version 4: Proposed, 2 Approved, Committed
    for i in range(1, SNAPSHOT_INTERVAL_OTHER - 1):
        app.disburse(
            grant_id=grant.id,
            key=f"p{i}",
            amount_minor=100,
            method="cash",
            reference="r",
            actor="t",
        )
        if i % 10 == 0:
            app.reverse_disbursement(grant_id=grant.id, tranche_no=i, reason="退票", actor="t")
    expected = vars(app.get_grant(grant.id))
    assert expected["_version"] > SNAPSHOT_INTERVAL_OTHER
    with sqlite3.connect(sqlite_path) as conn:
        snapshots = conn.execute(
            "SELECT originator_version FROM stored_snapshots WHERE originator_id = ?",
            (grant.id.hex,),
        ).fetchall()
    assert snapshots == [(SNAPSHOT_INTERVAL_OTHER,)]

    fresh = make_app(sqlite_url)

    assert vars(fresh.get_grant(grant.id)) == expected
    assert vars(replay(fresh, grant.id)) == expected
    assert fresh.get_fund(TEA).figures[""]["disbursed"] == expected["disbursed_minor"]


def test_a_snapshot_is_written_only_with_the_events_it_sums_up(
    make_app: Any, make_failing_app: Any, sqlite_url: str, sqlite_path: Path, open_tea: Any
) -> None:
    """The snapshot is taken from the live fund when a save reaches the interval, and
    written once that save is durable: a failed write leaves no snapshot behind."""
    from eventsourcing.persistence import OperationalError

    app = make_failing_app(sqlite_url)
    open_tea(app)

    def donate(key: str) -> Any:
        return app.record_donation(
            slug=TEA, key=key, amount_minor=100, received_on="2026-11-27", channel="cash", actor="t"
        )

    for i in range(SNAPSHOT_INTERVAL_FUND - 2):
        donate(f"d{i}")
    assert app.get_fund(TEA).version == SNAPSHOT_INTERVAL_FUND - 1

    def snapshot_versions() -> list[int]:
        with sqlite3.connect(sqlite_path) as conn:
            rows = conn.execute(
                "SELECT originator_version FROM stored_snapshots WHERE originator_id = ?",
                (fund_id(TEA).hex,),
            ).fetchall()
        return [r[0] for r in rows]

    app.events.failure = OperationalError("disk I/O error")
    with pytest.raises(OperationalError):
        donate("lost")
    assert snapshot_versions() == []
    app.events.failure = None

    donate("kept")
    assert snapshot_versions() == [SNAPSHOT_INTERVAL_FUND]
    fresh = make_app(sqlite_url)
    assert fund_state(fresh) == fund_state(app)
    assert vars(replay(fresh, fund_id(TEA))) == vars(fresh.get_fund(TEA))
