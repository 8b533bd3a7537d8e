"""Donors' names and contacts never reach the event store in clear; erasure shreds them."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.application import DonorIn, LedgerApp
from ledger.privacy import PersonalData

TEA = "tea-village"
DONORS = [
    ("d1", "王小明", "13800138000"),
    ("d2", "李秀英", "lixiuying@example.cn"),
    ("d3", "Zhang Wei", "+86 139 0000 1111"),
]


@pytest.fixture
def ledger(make_app: Any, sqlite_url: str, open_tea: Any) -> LedgerApp:
    app = make_app(sqlite_url)
    open_tea(app)
    return app


def record_donors(app: LedgerApp) -> dict[str, Any]:
    donations = {}
    for key, name, contact in DONORS:
        donations[key] = app.record_donation(
            slug=TEA,
            key=key,
            amount_minor=10_000,
            received_on="2026-11-26",
            channel="wechat",
            donor=DonorIn(name=name, contact=contact),
            note="感谢支持",
            actor="treasurer",
        ).value
    return donations


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def stored_states(db: Path) -> list[bytes]:
    """Every row of the raw event store, and of the snapshot store if there is one."""
    with sqlite3.connect(db) as conn:
        states = [bytes(r[0]) for r in conn.execute("SELECT state FROM stored_events")]
        if "stored_snapshots" in tables(db):
            states += [bytes(r[0]) for r in conn.execute("SELECT state FROM stored_snapshots")]
    return states


def events_digest(db: Path, *, upto_rowid: int) -> str:
    digest = hashlib.sha256()
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
            "WHERE rowid <= ? ORDER BY rowid",
            (upto_rowid,),
        )
        for row in rows:
            digest.update(repr(row).encode())
    return digest.hexdigest()


def test_names_and_contacts_never_reach_the_store_in_clear(ledger: LedgerApp, sqlite_path: Path):
    record_donors(ledger)

    states = stored_states(sqlite_path)

    assert len(states) >= 1 + 2 * len(DONORS)
    # What the public may see is there in clear: the search does look at the right bytes.
    assert any("王*明".encode() in state for state in states)
    for _, name, contact in DONORS:
        for secret in (name, contact):
            needle = secret.encode("utf-8")
            assert not any(needle in state for state in states), secret
            # Not in the JSON-escaped form either (\u738b\u5c0f\u660e).
            escaped = secret.encode("ascii", "backslashreplace").replace(b"\\x", b"\\u00")
            assert not any(escaped.lower() in state.lower() for state in states), secret
    # The file itself (and its write-ahead log) holds them nowhere either.
    for path in sqlite_path.parent.glob(sqlite_path.name + "*"):
        raw = path.read_bytes()
        for _, name, contact in DONORS:
            assert name.encode("utf-8") not in raw, (path.name, name)
            assert contact.encode("utf-8") not in raw, (path.name, contact)


def test_the_public_name_is_masked_unless_chosen(ledger: LedgerApp):
    donations = record_donors(ledger)

    assert ledger.get_donation(donations["d1"].id).donor_public_name == "王*明"
    assert ledger.get_donation(donations["d3"].id).donor_public_name == "Z**** W**"


def test_donor_details_opens_them_for_auditors(ledger: LedgerApp):
    donations = record_donors(ledger)

    for key, name, contact in DONORS:
        donation = ledger.get_donation(donations[key].id)
        assert ledger.donor_details(donation) == PersonalData(name=name, contact=contact)


def test_an_anonymous_donation_without_details_has_none(ledger: LedgerApp):
    donation = ledger.record_donation(
        slug=TEA, key="anon", amount_minor=1, received_on="2026-11-26", channel="cash", actor="t"
    ).value

    assert donation.donor_public_name == "爱心人士"
    assert ledger.donor_details(donation) is None


def test_erasing_a_donor_shreds_the_key_and_keeps_the_events(
    ledger: LedgerApp, sqlite_path: Path, make_app: Any, sqlite_url: str
):
    donations = record_donors(ledger)
    target = ledger.get_donation(donations["d1"].id)
    last_rowid = ledger.recorder.max_notification_id()
    digest_before = events_digest(sqlite_path, upto_rowid=last_rowid)
    with sqlite3.connect(sqlite_path) as conn:
        assert conn.execute(
            "SELECT count(*) FROM donor_keys WHERE donor_id = ?", (target.donor_id,)
        ).fetchone() == (1,)

    ledger.erase_donor(donation_id=target.id, actor="auditor")

    erased = ledger.get_donation(target.id)
    assert erased.donor_erased is True
    assert ledger.donor_details(erased) is None
    # Even the sealed text of the original event no longer opens: its key is gone.
    assert ledger.donor_details(target) is None
    assert events_digest(sqlite_path, upto_rowid=last_rowid) == digest_before
    with sqlite3.connect(sqlite_path) as conn:
        assert conn.execute(
            "SELECT count(*) FROM donor_keys WHERE donor_id = ?", (target.donor_id,)
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM donor_keys").fetchone() == (len(DONORS) - 1,)
    # Other donors keep their details, also for a new process on the same file.
    fresh = make_app(sqlite_url)
    other = fresh.get_donation(donations["d2"].id)
    assert fresh.donor_details(other) == PersonalData(name="李秀英", contact="lixiuying@example.cn")
    assert fresh.donor_details(fresh.get_donation(target.id)) is None
    # The money stays in the books.
    assert fresh.get_fund(TEA).totals()["received"] == 10_000 * len(DONORS)


def test_erasing_twice_records_one_erasure(ledger: LedgerApp):
    donations = record_donors(ledger)
    ledger.erase_donor(donation_id=donations["d2"].id, actor="auditor")
    before = ledger.recorder.max_notification_id()

    ledger.erase_donor(donation_id=donations["d2"].id, actor="auditor")

    assert ledger.recorder.max_notification_id() == before


def test_a_retried_donation_after_erasure_still_answers_the_retry(ledger: LedgerApp):
    donations = record_donors(ledger)
    ledger.erase_donor(donation_id=donations["d1"].id, actor="auditor")

    again = ledger.record_donation(
        slug=TEA,
        key="d1",
        amount_minor=10_000,
        received_on="2026-11-26",
        channel="wechat",
        donor=DonorIn(name="王小明", contact="13800138000"),
        note="感谢支持",
        actor="treasurer",
    )

    assert again.created is False
    assert again.value.receipt_no == donations["d1"].receipt_no
    assert ledger.donor_details(again.value) is None
