"""The Merkle log kept by its projection (``projections.audit``): one leaf per stored event in
log order, gap-free; roots and proofs at any size from the stored nodes; rebuilt identical;
on PostgreSQL with concurrent writers, the leaves are the log in its final order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from ledger.application import LedgerApp
from ledger.audit.leaf import leaf_data, leaf_hash_of, read_records
from ledger.audit.merkle import CompactTree, leaf_hash, verify_consistency, verify_inclusion
from projections.audit import (
    CHECKPOINT_EVERY,
    all_checkpoints,
    check_signed_roots,
    consistency,
    ensure_signing_key,
    inclusion,
    leaves_after,
    root_of_size,
    sign_now,
    tree_size,
)
from projections.db import make_engine
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from projections.tables import LIVE

WRITERS = 4
DONATIONS_PER_WRITER = 12


def _log_tree(app: LedgerApp) -> tuple[list[Any], CompactTree]:
    records = list(read_records(app.recorder))
    return records, CompactTree(leaf_hash_of(i, r) for i, r in enumerate(records))


def _nodes(engine: Any) -> list[tuple[int, int, bytes]]:
    nodes = LIVE.audit_nodes
    with engine.connect() as conn:
        rows = conn.execute(select(nodes).order_by(nodes.c.level, nodes.c.idx)).all()
    return [(int(a), int(b), bytes(c)) for a, b, c in rows]


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
def test_the_projection_keeps_the_tree_of_the_log_and_rebuilds_it_identical(
    make_app: Any, store_url: str, open_tea: Callable[..., Any], fill: Callable[..., None]
) -> None:
    app: LedgerApp = make_app(store_url)
    fill(app, open_tea)
    engine = make_engine(store_url)
    try:
        ProjectionRunner(app, engine, batch_size=3).catch_up()
        records, tree = _log_tree(app)
        with engine.connect() as conn:
            assert tree_size(conn) == len(records) > 20
            leaves = leaves_after(conn, -1, 10_000)
            assert [leaf.leaf_index for leaf in leaves] == list(range(len(records)))
            assert [leaf.notification_id for leaf in leaves] == [r.notification_id for r in records]
            for size in range(1, len(records) + 1):
                assert root_of_size(conn, size) == tree.root(size)
                for index in (0, size // 2, size - 1):
                    proof = inclusion(conn, index, size)
                    data = leaf_data(index, records[index])
                    verify_inclusion(leaf_hash(data), index, size, proof, tree.root(size))
                if size > 1:
                    proof = consistency(conn, size - 1, size)
                    verify_consistency(size - 1, size, proof, tree.root(size - 1), tree.root(size))
        before = _nodes(engine)
        rebuild(app, engine, ["audit"], batch_size=5)
        assert _nodes(engine) == before
    finally:
        engine.dispose()


def test_checkpoints_every_hundred_events_and_on_demand(
    make_app: Any, sqlite_url: str, open_tea: Callable[..., Any], tmp_path: Any
) -> None:
    app: LedgerApp = make_app(sqlite_url)
    signer = ensure_signing_key(app.settings.key_dir, app.settings.audit_origin)
    assert (app.settings.key_dir / "audit-signing.key").stat().st_mode & 0o777 == 0o600
    open_tea(app)
    for n in range(130):
        app.record_donation(
            slug="tea-village", key=f"k{n}", amount_minor=100, received_on="2026-11-02",
            channel="cash", actor="t",
        )  # fmt: skip
    engine = make_engine(sqlite_url)
    try:
        ProjectionRunner(app, engine, batch_size=40).catch_up()
        with engine.connect() as conn:
            size = tree_size(conn)
            sizes = [c.size for c in all_checkpoints(conn)]
        assert sizes == list(range(CHECKPOINT_EVERY, size + 1, CHECKPOINT_EVERY))
        latest = sign_now(engine, signer)
        assert latest.size == size
        assert sign_now(engine, signer) == latest  # one checkpoint per size
        check_signed_roots(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_concurrent_writers_on_postgres_give_the_log_in_its_final_order(
    make_app: Any, pg_url: str, open_tea: Callable[..., Any]
) -> None:
    setup: LedgerApp = make_app(pg_url)
    slugs = [f"fund-{w}" for w in range(WRITERS)]
    for slug in slugs:
        open_tea(setup, slug=slug)
    apps = [make_app(pg_url) for _ in range(WRITERS)]
    engine = make_engine(pg_url)
    failures: list[BaseException] = []
    start = threading.Barrier(WRITERS)

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

    runner = ProjectionRunner(setup, engine, batch_size=5, coalesce_s=0, poll_interval_s=0.01)
    try:
        with runner:
            threads = [
                threading.Thread(target=write, args=(a, s))
                for a, s in zip(apps, slugs, strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not failures, failures
            head = setup.recorder.max_notification_id() or 0
            runner.wait_for(head, timeout_s=60)
        records, tree = _log_tree(setup)
        with engine.connect() as conn:
            leaves = leaves_after(conn, -1, 10_000)
            assert [leaf.notification_id for leaf in leaves] == [r.notification_id for r in records]
            assert root_of_size(conn, len(records)) == tree.root()
        assert len(records) == WRITERS + WRITERS * DONATIONS_PER_WRITER * 2
    finally:
        engine.dispose()
