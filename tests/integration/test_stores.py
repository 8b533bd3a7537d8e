"""Every store keeps the same books: memory, SQLite and PostgreSQL, one scenario."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from ledger.application import DonorIn, LedgerApp
from ledger.privacy import PersonalData
from ledger.store import DonorKeyRecorder

TEA = "tea-village"
SQLITE_SYNCHRONOUS_FULL = 2

# What the scenario below leaves in the books, on every store.
EXPECTED = {
    "figures": {
        "": {
            "received": 160_000,
            "refunded": 10_000,
            "committed": 80_000,
            "released": 50_000,
            "disbursed": 30_000,
            "expenses": 5_000,
            "on_hand": 115_000,
            "available": 115_000,
        },
        "education": {
            "received": 60_000,
            "refunded": 0,
            "committed": 40_000,
            "released": 0,
            "disbursed": 15_000,
            "expenses": 0,
            "on_hand": 45_000,
            "available": 20_000,
        },
        "elderly-care": {
            "received": 20_000,
            "refunded": 20_000,
            "committed": 0,
            "released": 0,
            "disbursed": 0,
            "expenses": 0,
            "on_hand": 0,
            "available": 0,
        },
    },
    "receipts": [f"{TEA}-2026-00000{i}" for i in range(1, 6)],
    "grants": [("closed", 80_000, 30_000, 50_000), ("committed", 40_000, 15_000, 0)],
    "closed_periods": ["2026-10"],
    "version": 19,  # opened, 5 credits, refund, reversal, 2 commits, 3 tranches,
    # a tranche reversal, a release, 2 expenses, an expense reversal, a closed period
}


def scenario(app: LedgerApp, open_tea: Any) -> dict[str, Any]:
    open_tea(app)
    donations = []
    for key, amount, purpose, day in [
        ("d1", 100_000, None, "2026-11-02"),
        ("d2", 50_000, None, "2026-11-03"),
        ("d3", 60_000, "education", "2026-11-05"),
        ("d4", 20_000, "elderly-care", "2026-11-06"),
        ("d5", 10_000, None, "2026-11-07"),
    ]:
        donations.append(
            app.record_donation(
                slug=TEA,
                key=key,
                amount_minor=amount,
                received_on=day,
                channel="bank",
                purpose=purpose,
                donor=DonorIn(name="王小明", contact="13800138000"),
                actor="t",
            ).value
        )
    app.record_donation(  # a retry: nothing new
        slug=TEA,
        key="d1",
        amount_minor=100_000,
        received_on="2026-11-02",
        channel="bank",
        donor=DonorIn(name="王小明", contact="13800138000"),
        actor="t",
    )
    app.refund_donation(
        donation_id=donations[4].id, key="r1", amount_minor=10_000, reason="多捐", actor="t"
    )
    app.reverse_donation(donation_id=donations[3].id, reason="录错", actor="t")
    grants = []
    for key, amount, purpose in [("g1", 80_000, None), ("g2", 40_000, "education")]:
        grant = app.propose_grant(
            slug=TEA,
            key=key,
            title="项目",
            purpose=purpose,
            grantee_name="村委",
            amount_minor=amount,
            actor="李主任",
        ).value
        app.approve_grant(grant_id=grant.id, actor="王会计")
        app.approve_grant(grant_id=grant.id, actor="张村长")
        grants.append(grant.id)
    for grant_id, key, amount in [
        (grants[0], "p1", 30_000),
        (grants[0], "p2", 10_000),
        (grants[1], "p3", 15_000),
    ]:
        app.disburse(
            grant_id=grant_id, key=key, amount_minor=amount, method="bank", reference=key, actor="t"
        )
    app.reverse_disbursement(grant_id=grants[0], tranche_no=2, reason="退票", actor="t")
    app.close_grant(grant_id=grants[0], reason="完工", actor="李主任")
    expense = app.record_expense(
        slug=TEA,
        key="e1",
        amount_minor=5_000,
        category="administration",
        paid_on="2026-11-20",
        payee="打印店",
        description="公示栏",
        actor="t",
    ).value
    app.record_expense(
        slug=TEA,
        key="e2",
        amount_minor=2_000,
        category="program",
        paid_on="2026-11-21",
        payee="五金店",
        description="工具",
        actor="t",
    )
    app.reverse_expense(
        slug=TEA,
        expense_id=app.record_expense(
            slug=TEA,
            key="e2",
            amount_minor=2_000,
            category="program",
            paid_on="2026-11-21",
            payee="五金店",
            description="工具",
            actor="t",
        ).value,
        reason="退货",
        actor="t",
    )
    assert expense
    app.close_period(slug=TEA, period="2026-10", actor="t")
    return summary(app, [d.id for d in donations], grants)


def summary(app: LedgerApp, donation_ids: list[Any], grant_ids: list[Any]) -> dict[str, Any]:
    fund = app.get_fund(TEA)
    figures = {}
    for purpose, f in fund.figures.items():
        figures[purpose] = {
            **f,
            "on_hand": fund.on_hand_minor(purpose),
            "available": fund.available_minor(purpose),
        }
    grants = [app.get_grant(g) for g in grant_ids]
    details = {app.donor_details(app.get_donation(d)) for d in donation_ids}
    assert details == {PersonalData(name="王小明", contact="13800138000")}
    return {
        "figures": figures,
        "receipts": [app.get_donation(d).receipt_no for d in donation_ids],
        "grants": [
            (g.status, g.committed_minor, g.disbursed_minor, g.released_minor) for g in grants
        ],
        "closed_periods": fund.closed_periods,
        "version": fund.version,
    }


def test_the_same_scenario_keeps_the_same_books_on_every_store(
    make_app: Any, store_url: str, open_tea: Any
):
    app = make_app(store_url)

    books = scenario(app, open_tea)

    assert books == EXPECTED


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
def test_a_second_app_on_the_same_store_reads_the_same_books(
    make_app: Any, store_url: str, open_tea: Any
):
    first = make_app(store_url)
    scenario(first, open_tea)
    notifications = first.recorder.select_notifications(1, 1000)
    donation_ids = [n.originator_id for n in notifications if n.topic.endswith("Received")]
    grant_ids = [n.originator_id for n in notifications if n.topic.endswith("Proposed")]

    second = make_app(store_url)

    assert summary(second, donation_ids, grant_ids) == EXPECTED
    assert len({n.originator_id for n in notifications}) == 1 + 5 + 2  # fund, gifts, grants


# -- SQLite durability ---------------------------------------------------------------------


def test_sqlite_is_in_wal_mode_with_synchronous_full(make_app: Any, sqlite_url: str, sqlite_path):
    app = make_app(sqlite_url)
    app.open_fund(slug=TEA, name="n", currency="CNY", host="h", committee=["a", "b"], actor="admin")

    with sqlite3.connect(sqlite_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    def recorder_pragmas() -> tuple[str, int]:
        with app.recorder.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA journal_mode")
            mode = c.fetchone()[0]
            c.execute("PRAGMA synchronous")
            return mode, c.fetchone()[0]

    assert recorder_pragmas() == ("wal", SQLITE_SYNCHRONOUS_FULL)
    # Another thread may get another connection: it must be as durable.
    seen: list[tuple[str, int]] = []
    thread = threading.Thread(target=lambda: seen.append(recorder_pragmas()))
    thread.start()
    thread.join(timeout=30)
    assert seen == [("wal", SQLITE_SYNCHRONOUS_FULL)]


# -- the donor key table -------------------------------------------------------------------


def donate_with_details(app: LedgerApp, open_tea: Any) -> Any:
    open_tea(app)
    return app.record_donation(
        slug=TEA,
        key="d1",
        amount_minor=100,
        received_on="2026-11-27",
        channel="cash",
        donor=DonorIn(name="李四", contact="13900000000"),
        actor="t",
    ).value


def test_the_donor_key_table_exists_on_every_store(
    make_app: Any, store_url: str, open_tea: Any, tmp_path: Path
):
    app = make_app(store_url)
    donation = donate_with_details(app, open_tea)

    assert isinstance(app.recorder, DonorKeyRecorder)
    assert app.donor_keys.select_donor_key(donation.donor_id) is not None
    if store_url.startswith("sqlite"):
        path = store_url.split(":///", 1)[1]
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT donor_id FROM donor_keys").fetchall()
        assert rows == [(donation.donor_id,)]
    elif store_url.startswith("postgresql"):
        parts = urlsplit(store_url)
        schema = parse_qs(parts.query)["schema"][0]
        with psycopg.connect(parts._replace(query="").geturl()) as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (schema,),
                )
            }
            assert "ledger_donor_keys" in tables
            rows = conn.execute(f'SELECT donor_id FROM "{schema}".ledger_donor_keys').fetchall()
        assert rows == [(donation.donor_id,)]

    app.erase_donor(donation_id=donation.id, actor="auditor")

    assert app.donor_keys.select_donor_key(donation.donor_id) is None
    assert app.donor_details(app.get_donation(donation.id)) is None


def test_an_erased_donor_key_is_gone_from_the_sqlite_files(
    make_app: Any, sqlite_url: str, sqlite_path: Any, open_tea: Any
):
    """Crypto-shredding holds only if the key's bytes leave the file: the event store's
    connections overwrite what they delete (``secure_delete``, whatever the build's
    default) and the write-ahead log, which held the key's page, is truncated."""
    app = make_app(sqlite_url)
    donation = donate_with_details(app, open_tea)
    wrapped = app.donor_keys.select_donor_key(donation.donor_id)
    assert wrapped is not None
    files = [Path(f"{sqlite_path}{suffix}") for suffix in ("", "-wal")]

    def holding_the_key() -> list[str]:
        return [f.name for f in files if f.exists() and wrapped in f.read_bytes()]

    assert holding_the_key()  # (the check can fail: the key is there before)
    with app.recorder.datastore.transaction(commit=False) as c:
        c.execute("PRAGMA secure_delete")
        assert c.fetchone()[0] == 1

    app.erase_donor(donation_id=donation.id, actor="auditor")

    assert holding_the_key() == []
    assert app.donor_details(app.get_donation(donation.id)) is None
