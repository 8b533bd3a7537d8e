"""Tampering with the store, on SQLite and PostgreSQL, caught by ``ledger audit verify``: a
flipped byte of a stored state, a deleted row, an inserted row, two rows swapped, the tail cut
off, a forged checkpoint signature, a checkpoint of another log — each naming the right leaf
(or none, for a checkpoint). And the verifier's figures are the read models' figures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from api.cli import app as cli_app
from ledger.application import LedgerApp
from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.note import Ed25519Signer
from ledger.audit.verify import verify_export_file
from ledger.domain.figures import FIGURE_NAMES
from ledger.settings import get_settings
from projections.audit import ensure_signing_key, sign_now
from projections.db import make_engine
from projections.queries import fund_figures
from projections.registry import ensure_schema
from projections.runner import ProjectionRunner

STORES = ["sqlite", "postgres"]


class Store:
    """Raw SQL on the event store's table, whichever the database (ids: rowid on SQLite,
    notification_id on PostgreSQL)."""

    def __init__(self, app: LedgerApp, url: str) -> None:
        self.app = app
        self.url = url
        self.pg = url.startswith("postgres")
        table = app.recorder.events_table_name
        if self.pg:
            schema = url.split("schema=")[1].split("&")[0]
            self.table = f'"{schema}"."{table}"'
            self.id = "notification_id"
        else:
            self.table = table
            self.id = "rowid"

    def execute(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        if self.pg:
            import psycopg

            with psycopg.connect(self.url.split("?")[0], autocommit=False) as db:
                for sql, params in statements:
                    db.execute(sql.replace("?", "%s"), params)
        else:
            import sqlite3

            path = self.url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as db:
                for sql, params in statements:
                    db.execute(sql, params)

    def ids(self) -> list[int]:
        return [n.id for n in self.app.recorder.select_notifications(1, 100_000)]

    def flip_byte(self, nid: int, at: int = 10) -> None:
        state = next(n.state for n in self.app.recorder.select_notifications(nid, 1))
        changed = bytearray(state)
        changed[at] ^= 0x01
        self.execute((f"UPDATE {self.table} SET state = ? WHERE {self.id} = ?",
                      (bytes(changed), nid)))  # fmt: skip

    def delete(self, nid: int) -> None:
        self.execute((f"DELETE FROM {self.table} WHERE {self.id} = ?", (nid,)))

    def insert_before(self, nid: int) -> None:
        """Make room at ``nid`` (every later id one up) and put a forged event there: a copy
        of the event now at ``nid + 1`` under another aggregate version."""
        later = [i for i in self.ids() if i >= nid]
        moves = [
            (f"UPDATE {self.table} SET {self.id} = ? WHERE {self.id} = ?", (i + 1, i))
            for i in sorted(later, reverse=True)
        ]
        insert = (
            f"INSERT INTO {self.table} ({self.id}, originator_id, originator_version, topic, "
            f"state) SELECT ?, originator_id, originator_version + 1000, topic, state "
            f"FROM {self.table} WHERE {self.id} = ?",
            (nid, nid + 1),
        )
        self.execute(*moves, insert)

    def swap(self, a: int, b: int) -> None:
        hold = -1
        self.execute(
            (f"UPDATE {self.table} SET {self.id} = ? WHERE {self.id} = ?", (hold, a)),
            (f"UPDATE {self.table} SET {self.id} = ? WHERE {self.id} = ?", (a, b)),
            (f"UPDATE {self.table} SET {self.id} = ? WHERE {self.id} = ?", (b, hold)),
        )

    def truncate_from(self, nid: int) -> None:
        self.execute((f"DELETE FROM {self.table} WHERE {self.id} >= ?", (nid,)))


@pytest.fixture
def signed_log(
    make_app: Any,
    store_url: str,
    open_tea: Callable[..., Any],
    fill: Callable[..., None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[LedgerApp, Store, list[Path], str]]:
    """A filled ledger, its Merkle log caught up, and two checkpoints signed (at 20 events and
    at the end), written to files; the environment points ``ledger`` at it."""
    app: LedgerApp = make_app(store_url)
    signer = ensure_signing_key(app.settings.key_dir, app.settings.audit_origin)
    fill(app, open_tea)
    engine = make_engine(store_url)
    runner = ProjectionRunner(app, engine)
    files = []
    try:
        ensure_schema(engine)
        runner.projector.step(limit=20)
        files.append(sign_now(engine, signer).note)
        runner.catch_up()
        files.append(sign_now(engine, signer).note)
    finally:
        engine.dispose()
    paths = []
    for n, note in enumerate(files, 1):
        path = tmp_path / f"cp{n}.txt"
        path.write_text(note)
        paths.append(path)
    monkeypatch.setenv("LEDGER_DATABASE_URL", store_url)
    monkeypatch.setenv("LEDGER_KEY_DIR", str(app.settings.key_dir))
    get_settings.cache_clear()
    yield app, Store(app, store_url), paths, signer.verifier.vkey
    get_settings.cache_clear()


def cli(*args: str) -> Result:
    return CliRunner().invoke(cli_app, list(args))


def export_and_verify(tmp_path: Path, checkpoints: list[Path], vkey: str) -> Result:
    export = tmp_path / "log.jsonl"
    exported = cli("audit", "export", str(export))
    assert exported.exit_code == 0, exported.stderr
    args = ["audit", "verify", str(export), "--public-key", vkey]
    for path in checkpoints:
        args += ["--checkpoint", str(path)]
    return cli(*args)


def refused(result: Result, index: int | None, reason: str) -> None:
    assert result.exit_code == 3, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    where = "" if index is None else f"leaf {index}: "
    assert lines[0].startswith(f"error: {where}"), lines[0]
    assert reason in lines[0], lines[0]


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_the_untouched_log_verifies_and_its_figures_are_the_read_models(
    signed_log: Any, tmp_path: Path, store_url: str
) -> None:
    _, _, checkpoints, vkey = signed_log
    result = export_and_verify(tmp_path, checkpoints, vkey)
    assert result.exit_code == 0, result.stderr
    report = verify_export_file(
        tmp_path / "log.jsonl", checkpoints=[p.read_text() for p in checkpoints], public_key=vkey
    )
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            for slug, fund in report.funds.items():
                figures = fund_figures(conn, slug)
                assert {n: fund.total[n] for n in FIGURE_NAMES} == figures.totals.by_name()
                assert fund.total["on_hand"] == figures.totals.on_hand_minor
                assert fund.total["available"] == figures.totals.available_minor
                for code, purpose in figures.purposes.items():
                    assert {n: fund.by_purpose[code][n] for n in FIGURE_NAMES} == (
                        purpose.by_name()
                    )
    finally:
        engine.dispose()
    assert len(report.funds) == 2


@pytest.mark.parametrize("store_url", STORES, indirect=True)
@pytest.mark.parametrize(
    ("tamper", "index", "says"),
    [
        ("flip", 5, "not the one the log recorded"),
        ("delete", 5, "not the one the log recorded"),
        ("insert", 5, "not the one the log recorded"),
        ("swap", 4, "not the one the log recorded"),
        ("truncate", 15, "the export ends"),
    ],
)
def test_tampering_with_the_store_is_caught_at_the_right_leaf(
    signed_log: Any, tmp_path: Path, tamper: str, index: int, says: str
) -> None:
    _, store, checkpoints, vkey = signed_log
    ids = store.ids()
    if tamper == "flip":
        store.flip_byte(ids[5])
    elif tamper == "delete":
        store.delete(ids[5])
    elif tamper == "insert":
        store.insert_before(ids[5])
    elif tamper == "swap":
        store.swap(ids[4], ids[9])
    else:
        store.truncate_from(ids[15])
    result = export_and_verify(tmp_path, checkpoints, vkey)
    refused(result, index, says)


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_a_forged_checkpoint_and_another_logs_are_refused(signed_log: Any, tmp_path: Path) -> None:
    _, _, checkpoints, vkey = signed_log
    note = checkpoints[-1].read_text()
    body, _, signature = note.rpartition(" ")
    raw = bytearray(signature.encode())
    raw[10] = ord("A") if raw[10] != ord("A") else ord("B")
    forged = tmp_path / "forged.txt"
    forged.write_text(body + " " + raw.decode())
    refused(export_and_verify(tmp_path, [forged], vkey), None, "checkpoint")

    other = Ed25519Signer.generate("another.example.org/log")
    theirs = tmp_path / "theirs.txt"
    theirs.write_text(sign_checkpoint(Checkpoint(other.name, 3, b"\x01" * 32), other))
    refused(export_and_verify(tmp_path, [theirs], vkey), None, "checkpoint")
    # Signed by another key under this log's name: not this log's key either.
    impostor = Ed25519Signer.generate(vkey.split("+")[0])
    theirs.write_text(sign_checkpoint(Checkpoint(impostor.name, 3, b"\x01" * 32), impostor))
    refused(export_and_verify(tmp_path, [theirs], vkey), None, "checkpoint")
