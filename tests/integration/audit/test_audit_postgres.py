"""The verifiable log on PostgreSQL: leaves hold the bytea states as stored, an export
verifies; and the log's order is final once an event is visible, with concurrent writers
(the library's EXCLUSIVE insert lock, docs/audit.md), so a reader tailing the log in id order
appends every event exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from ledger.application import LedgerApp
from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.export import export_lines
from ledger.audit.leaf import StoredRecord, leaf_hash_of, read_records, record_of
from ledger.audit.merkle import CompactTree, Frontier
from ledger.audit.note import Ed25519Signer
from ledger.audit.verify import verify_export
from ledger.domain.figures import FIGURE_NAMES

pytestmark = pytest.mark.postgres

ORIGIN = "ledger.example.org/pg"
WRITERS = 4
DONATIONS_PER_WRITER = 15
TAIL_PAGE = 7
JOIN_TIMEOUT_S = 120
TAIL_PAUSE_S = 0.002


def test_a_postgres_log_exports_and_verifies(
    make_app: Any, pg_url: str, open_tea: Callable[..., Any], fill: Callable[..., None]
) -> None:
    app: LedgerApp = make_app(pg_url)
    fill(app, open_tea)
    records = list(read_records(app.recorder, page_size=5))
    with psycopg.connect(pg_url.split("?")[0]) as db:
        table = f'"{pg_url.split("schema=")[1]}"."{app.recorder.events_table_name}"'
        rows = db.execute(f"SELECT notification_id, state FROM {table} ORDER BY 1").fetchall()
    assert [(r.notification_id, r.state) for r in records] == [(i, bytes(s)) for i, s in rows]
    tree = CompactTree(leaf_hash_of(i, r) for i, r in enumerate(records))
    key = Ed25519Signer.generate(ORIGIN)
    checkpoints = [
        sign_checkpoint(Checkpoint(ORIGIN, s, tree.root(s)), key) for s in (7, tree.size)
    ]
    lines = list(export_lines(records, origin=ORIGIN, leaf_hashes=tree.levels[0]))
    report = verify_export(lines, checkpoints=checkpoints, public_key=key.verifier.vkey)
    for slug, fund in report.funds.items():
        aggregate = app.get_fund(slug)
        for purpose, figures in aggregate.figures.items():
            assert {n: fund.by_purpose[purpose][n] for n in FIGURE_NAMES} == figures


def test_a_reader_tailing_the_log_sees_it_in_its_final_order(
    make_app: Any, pg_url: str, open_tea: Callable[..., Any]
) -> None:
    setup = make_app(pg_url)
    slugs = [f"fund-{w}" for w in range(WRITERS)]
    for slug in slugs:
        open_tea(setup, slug=slug)
    apps = [make_app(pg_url) for _ in range(WRITERS)]
    start = threading.Barrier(WRITERS + 1)
    done = threading.Event()
    failures: list[BaseException] = []

    def write(app: LedgerApp, slug: str) -> None:
        try:
            start.wait(timeout=30)
            for n in range(DONATIONS_PER_WRITER):
                app.record_donation(
                    slug=slug, key=f"{slug}-{n}", amount_minor=100 + n,
                    received_on="2026-11-20", channel="cash", actor="t",
                )  # fmt: skip
        except BaseException as e:  # reported below
            failures.append(e)

    tailed: list[StoredRecord] = []
    frontier = Frontier()

    def tail() -> None:
        # What the audit projection does: read after the last position, append in id order.
        start.wait(timeout=30)
        last = 0
        while True:
            finished = done.is_set()
            page = setup.recorder.select_notifications(start=last + 1, limit=TAIL_PAGE)
            for notification in page:
                record = record_of(notification)
                tailed.append(record)
                frontier.append(leaf_hash_of(len(tailed) - 1, record))
                last = record.notification_id
            if finished and not page:
                return
            if not page:
                time.sleep(TAIL_PAUSE_S)

    threads = [
        threading.Thread(target=write, args=(a, s)) for a, s in zip(apps, slugs, strict=True)
    ]
    reader = threading.Thread(target=tail)
    for t in [*threads, reader]:
        t.start()
    for t in threads:
        t.join(timeout=JOIN_TIMEOUT_S)
    done.set()
    reader.join(timeout=JOIN_TIMEOUT_S)
    assert not failures, failures
    assert not reader.is_alive()
    assert not any(t.is_alive() for t in threads)

    final = list(read_records(setup.recorder))
    # Every event tailed once, none skipped: an id that became visible later below the
    # reader's position would be missing here.
    assert tailed == final
    assert len(final) == WRITERS + WRITERS * DONATIONS_PER_WRITER * 2
    assert frontier.root() == CompactTree(leaf_hash_of(i, r) for i, r in enumerate(final)).root()
