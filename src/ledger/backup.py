"""Backups of a SQLite ledger, taken while it runs (SQLite's online backup API).

``backup_sqlite(source, target)`` copies the whole database — events, snapshots, wrapped
donor keys and read models — as of one moment: the copy is made in one step inside one read
transaction, which in WAL mode does not hold up writers (they append to the ``-wal`` file
meanwhile; a commit that returned before the backup began is in the copy). The copy is
written to ``<target>.partial`` and renamed when complete, so a target that exists is whole.

PostgreSQL has ``pg_dump`` for this (docs/operations.md). The key folder is backed up
separately, never beside the database.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ledger.domain.errors import InvalidInput


def backup_sqlite(source: str | Path, target: str | Path) -> int:
    """Copy the SQLite database ``source`` to the new file ``target``; returns its size in
    bytes. Refuses a target that exists (a backup is never overwritten by mistake)."""
    source, target = Path(source), Path(target)
    if not source.exists():
        raise InvalidInput(f"no database at {source}", path=str(source))
    if target.exists():
        raise InvalidInput(f"{target} exists; back up to a new file", path=str(target))
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: one step, one snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            dst.commit()
        finally:
            dst.close()
    finally:
        src.close()
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    partial.rename(target)
    return target.stat().st_size
