"""An event log written by release 0.1.0 still loads, and the ledger goes on from it.

``tests/data/release-0.1/`` (see ``tests/data/make_release_log.py``) holds the demo fund's
SQLite event log with a snapshot of every aggregate in 0.1.0's state layout (tranches,
expenses and refunds as positional lists, snapshot class version 1), its key folder, and
``expected.json``: what each aggregate held, in plain terms. Each test works on a copy.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.application import DonorIn, LedgerApp
from ledger.demo import load_demo
from ledger.domain.common import fund_id
from ledger.engine.commands import replay
from ledger.settings import Settings

RELEASE = Path(__file__).parent.parent / "data" / "release-0.1"
EXPECTED: dict[str, dict[str, dict[str, Any]]] = json.loads((RELEASE / "expected.json").read_text())
AFTER_RELEASE = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)  # the day after the log's last entry


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    folder = tmp_path / "release-0.1"
    shutil.copytree(RELEASE, folder)
    return folder


@pytest.fixture
def open_copy(copy: Path) -> Iterator[Any]:
    apps: list[LedgerApp] = []

    def open_() -> LedgerApp:
        settings = Settings(
            database_url=f"sqlite:///{copy / 'ledger.db'}", key_dir=copy / "ledger-keys"
        )
        app = LedgerApp(settings, clock=lambda: AFTER_RELEASE)
        apps.append(app)
        return app

    yield open_
    for app in reversed(apps):
        app.close()


def fund_facts(fund: Any) -> dict[str, Any]:
    return {
        "slug": fund.slug,
        "figures": fund.figures,
        "expenses": {
            expense_id: {
                "amount_minor": e.amount_minor,
                "purpose": e.purpose,
                "category": e.category,
                "reversed": e.reversed,
            }
            for expense_id, e in fund.expenses.items()
        },
        "version": fund.version,
    }


def grant_facts(grant: Any) -> dict[str, Any]:
    return {
        "status": grant.status,
        "disbursed_minor": grant.disbursed_minor,
        "released_minor": grant.released_minor,
        "tranches": [
            {
                "tranche_id": t.tranche_id,
                "amount_minor": t.amount_minor,
                "paid_on": t.paid_on,
                "method": t.method,
                "reference": t.reference,
                "evidence_sha256": t.evidence_sha256,
                "reversed": t.reversed,
                "request_sha256": t.request_sha256,
            }
            for t in grant.tranches
        ],
        "version": grant.version,
    }


def donation_facts(donation: Any) -> dict[str, Any]:
    return {
        "amount_minor": donation.amount_minor,
        "refunds": {
            refund_id: {
                "amount_minor": r.amount_minor,
                "refunded_on": r.refunded_on,
                "request_sha256": r.request_sha256,
            }
            for refund_id, r in donation.refunds.items()
        },
        "version": donation.version,
    }


FACTS = {"funds": fund_facts, "grants": grant_facts, "donations": donation_facts}
EVERY_AGGREGATE = [(kind, oid) for kind in sorted(EXPECTED) for oid in sorted(EXPECTED[kind])]


def test_the_log_holds_old_snapshots_of_every_aggregate(copy: Path) -> None:
    """The point of the other tests: the snapshots are in 0.1.0's layout."""
    with sqlite3.connect(copy / "ledger.db") as conn:
        rows = conn.execute("SELECT originator_id, state FROM stored_snapshots").fetchall()
    snapshots = {UUID(str(oid)): json.loads(stored) for oid, stored in rows}
    assert {str(oid) for oid in snapshots} == {oid for _, oid in EVERY_AGGREGATE}
    records = {"Fund": "expenses", "Grant": "tranches", "Donation": "refunds"}
    tranches = 0
    for snapshot in snapshots.values():
        state = snapshot["state"]
        assert "class_version" not in state
        held = state[records[snapshot["topic"].rsplit(":", 1)[1]]]
        held = list(held.values()) if isinstance(held, dict) else held
        assert all(isinstance(record, list) for record in held)
        tranches += len(held) if snapshot["topic"].endswith("Grant") else 0
    assert tranches > 0


# The old snapshots a class can still read (upcast) and those it passes over (its state now
# holds dates the old layout never kept): docs/architecture.md, "Snapshots".
UPCAST = {"donations", "grants"}
PASSED_OVER = {"funds"}


@pytest.mark.parametrize(("kind", "oid"), EVERY_AGGREGATE)
def test_every_aggregate_loads_from_its_old_snapshot_or_from_its_events(
    open_copy: Any, kind: str, oid: str
) -> None:
    app = open_copy()
    aggregate_id = UUID(oid)
    usable = list(app.snapshots.get(aggregate_id, desc=True, limit=1))
    from_events = replay(None, app.events.get(aggregate_id))
    through_repository = app.repository.get(aggregate_id)
    loaded_all = [from_events, through_repository]
    if kind in UPCAST:
        assert len(usable) == 1
        loaded_all.append(usable[0].mutate(None))
    else:
        assert kind in PASSED_OVER
        assert usable == []

    expected = EXPECTED[kind][oid]
    for loaded in loaded_all:
        facts = FACTS[kind](loaded)
        for name, value in expected.items():
            assert facts[name] == value, name
        assert vars(loaded) == vars(from_events)


def test_the_ledger_goes_on_from_the_old_log(open_copy: Any) -> None:
    app = open_copy()
    grant_id = next(UUID(g) for g, facts in EXPECTED["grants"].items() if facts["tranches"])
    fund_before = app.get_fund("tea-village")
    last = app.recorder.max_notification_id()

    reversed_grant = app.reverse_disbursement(
        grant_id=grant_id, tranche_no=1, reason="退票", actor="treasurer"
    )
    donation = app.record_donation(
        slug="tea-village",
        key="after-release-1",
        amount_minor=12_300,
        received_on="2026-11-21",
        channel="wechat",
        donor=DonorIn(name="新捐赠人", contact="13900000000"),
        actor="treasurer",
    ).value
    expense_id = next(
        e
        for e, facts in EXPECTED["funds"][str(fund_id("tea-village"))]["expenses"].items()
        if not facts["reversed"]
    )
    fund = app.reverse_expense(
        slug="tea-village", expense_id=expense_id, reason="重复", actor="treasurer"
    )

    assert reversed_grant.tranches[0].reversed
    paid = EXPECTED["grants"][str(grant_id)]["tranches"][0]["amount_minor"]
    assert (
        reversed_grant.disbursed_minor
        == EXPECTED["grants"][str(grant_id)]["disbursed_minor"] - paid
    )
    next_receipt = fund_before.receipt_seq["2026"] + 1
    assert donation.receipt_no == f"tea-village-2026-{next_receipt:06d}"
    assert fund.expenses[expense_id].reversed
    assert fund.version == fund_before.version + 3
    assert app.recorder.max_notification_id() == last + 5  # grant + fund, donation + fund, fund
    assert app.donor_details(app.get_donation(donation.id)).name == "新捐赠人"  # type: ignore[union-attr]

    # New snapshots (today's layout) load in a new process, beside the old ones.
    for aggregate_id in (grant_id, fund.id, donation.id):
        app.take_snapshot(aggregate_id)
    fresh = open_copy()
    assert vars(fresh.get_grant(grant_id)) == vars(app.get_grant(grant_id))
    assert vars(fresh.get_fund("tea-village")) == vars(app.get_fund("tea-village"))
    assert vars(fresh.get_donation(donation.id)) == vars(app.get_donation(donation.id))


def test_replaying_release_0_1s_commands_records_nothing_new(open_copy: Any) -> None:
    """The demo's commands again, with their keys: the same ids and request fingerprints as
    0.1.0 computed, so every one is answered as a retry."""
    app = open_copy()
    last = app.recorder.max_notification_id()

    load_demo(app, today=AFTER_RELEASE.date())

    assert app.recorder.max_notification_id() == last
