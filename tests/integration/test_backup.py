"""Backups taken under load, restored elsewhere: the events are all there up to the backup's
moment, and the read models rebuilt from them give the same figures as the aggregates.

SQLite: ``ledger backup FILE`` (the online backup API) while donations are recorded.
PostgreSQL: ``pg_dump`` of the ledger's schema while donations are recorded, restored into a
new database with ``pg_restore``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from ledger.application import LedgerApp
from ledger.backup import backup_sqlite
from ledger.domain.errors import InvalidInput
from ledger.settings import Settings
from ledger.store import parse_url
from projections.db import make_engine, psycopg_conninfo
from projections.queries import fund_figures
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from tests.conftest import TEA
from tests.read_models_support import dump

WRITES_BEFORE = 30


@contextmanager
def recording(app: LedgerApp) -> Iterator[tuple[list[str], threading.Event]]:
    """A thread recording donations until told to stop; yields the keys acknowledged so far
    and an event set once ``WRITES_BEFORE`` of them are."""
    done: list[str] = []
    started = threading.Event()
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.is_set() and i < 5_000:
            i += 1
            key = f"load-{i}"
            app.record_donation(
                slug=TEA,
                key=key,
                amount_minor=100 * (1 + i % 97),
                received_on="2026-01-15",
                channel="wechat",
                actor="treasurer",
            )
            done.append(key)
            if len(done) >= WRITES_BEFORE:
                started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert started.wait(60), "the load did not start"
        yield done, started
    finally:
        stop.set()
        thread.join(60)


def check_restored(settings: Settings, acknowledged_before: list[str]) -> None:
    """Every donation acknowledged before the backup began is there; the read models rebuilt
    from the restored events agree with the aggregates and with a second rebuild."""
    app = LedgerApp(settings)
    engine = make_engine(settings.database_url)
    try:
        ProjectionRunner(app, engine).catch_up()
        caught_up = dump(engine)
        rebuild(app, engine)
        assert dump(engine) == caught_up
        fund = app.get_fund(TEA)
        from ledger.domain.common import entity_id

        for key in acknowledged_before:
            app.get_donation(str(entity_id(TEA, "donation", key)))
        received = sum(f["received"] for f in fund.figures.values())
        with engine.connect() as conn:
            figures = fund_figures(conn, TEA)
        assert figures.totals.received_minor == received
        assert figures.totals.on_hand_minor == sum(fund.on_hand_minor(c) for c in fund.figures)
        donations = len(caught_up["rm_donations"])
        assert donations >= len(acknowledged_before)
    finally:
        engine.dispose()
        app.close()


def test_sqlite_backup_under_load_restores_elsewhere(
    make_app: Callable[..., LedgerApp],
    open_tea: Callable[..., Any],
    settings_for: Callable[[str, Path], Settings],
    tmp_path: Path,
) -> None:
    source = tmp_path / "live" / "ledger.db"
    source.parent.mkdir()
    app = make_app(f"sqlite:///{source}")
    open_tea(app)
    ProjectionRunner(app, make_engine(f"sqlite:///{source}")).catch_up()
    target = tmp_path / "backup.db"
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": f"sqlite:///{source}",
        "LEDGER_KEY_DIR": str(tmp_path / "keys"),
    }
    with recording(app) as (done, _):
        before = list(done)
        result = subprocess.run(
            [sys.executable, "-m", "api.cli", "backup", str(target)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "backed up" in result.stdout
        with pytest.raises(InvalidInput):
            backup_sqlite(source, target)  # never over an existing backup
    assert len(done) > len(before)  # the load went on during the backup
    restored = tmp_path / "elsewhere" / "ledger.db"
    restored.parent.mkdir()
    shutil.copyfile(target, restored)
    check_restored(settings_for(f"sqlite:///{restored}", tmp_path), before)


@pytest.mark.postgres
def test_pg_dump_under_load_restores_into_another_database(
    make_app: Callable[..., LedgerApp],
    open_tea: Callable[..., Any],
    settings_for: Callable[[str, Path], Settings],
    pg_url: str,
    tmp_path: Path,
) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore are not installed")
    app = make_app(pg_url)
    open_tea(app)
    store = parse_url(pg_url)
    conninfo = psycopg_conninfo(store)
    dump_file = tmp_path / "ledger.dump"
    with recording(app) as (done, _):
        before = list(done)
        subprocess.run(
            ["pg_dump", "--format=custom", f"--schema={store.schema}", "--file",
             str(dump_file), conninfo],
            check=True, timeout=120, capture_output=True,
        )  # fmt: skip
    assert len(done) > len(before)
    database = f"restore_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        parts = urlsplit(pg_url)
        restored_url = parts._replace(path=f"/{database}").geturl()
        subprocess.run(
            ["pg_restore", "--no-owner", "--dbname", psycopg_conninfo(parse_url(restored_url)),
             str(dump_file)],
            check=True, timeout=120, capture_output=True,
        )  # fmt: skip
        check_restored(settings_for(restored_url, tmp_path), before)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
