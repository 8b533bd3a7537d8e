"""The writers of one SQLite file in one process queue on one lock, not on SQLite's
sleeping busy handler: the event store's recorder and the read models' write transactions."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from ledger.store import sqlite_write_lock
from projections.db import make_engine
from projections.engine.transactions import write_engine


def test_one_lock_per_file_whatever_the_spelling_of_its_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert sqlite_write_lock(str(tmp_path / "a.db")) is sqlite_write_lock(
        str(tmp_path / "sub" / ".." / "a.db")
    )
    assert sqlite_write_lock(str(tmp_path / "a.db")) is not sqlite_write_lock(
        str(tmp_path / "b.db")
    )


def test_a_read_model_write_holds_the_lock_until_its_commit(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    engine = make_engine(f"sqlite:///{path}")
    lock = sqlite_write_lock(str(path))
    taken_inside = threading.Event()

    def try_lock() -> None:
        if lock.acquire(timeout=0.2):
            lock.release()
        else:
            taken_inside.set()

    with write_engine(engine).begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        other = threading.Thread(target=try_lock)
        other.start()
        other.join(5)
    assert taken_inside.is_set()  # another thread could not write meanwhile

    assert lock.acquire(timeout=1)  # and it was given back after the commit
    lock.release()

    with engine.begin() as conn:  # readers do not take it
        other = threading.Thread(target=try_lock)
        taken_inside.clear()
        other.start()
        other.join(5)
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
    assert not taken_inside.is_set()
    engine.dispose()
