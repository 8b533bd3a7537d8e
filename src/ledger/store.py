"""The event store: the eventsourcing library's own recorders, chosen by one URL.

``LEDGER_DATABASE_URL`` is ``sqlite:///path``, ``postgresql://user@host:port/db`` (optionally
``?schema=name``) or ``memory://`` (the library's in-memory store, for tests). It becomes the
library's environment (``PERSISTENCE_MODULE`` and its settings).

The recorders below extend the library's application recorders with one table of their own,
``donor_keys`` (donor id → wrapped data key). A new donor's key is inserted in the same
transaction as the events that use it (the library passes ``save(**kwargs)`` down to
``_insert_events``), so a recorded donation never lacks its key, and a donation costs one
durable commit. Erasing a donor deletes its row: the key is then gone for good.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
)
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger.domain.errors import InvalidInput

log = logging.getLogger(__name__)

APP_NAME = "ledger"


@dataclass(frozen=True, slots=True)
class DonorKey:
    donor_id: str
    wrapped_key: bytes


@dataclass(frozen=True, slots=True)
class StoreUrl:
    kind: str  # "sqlite" | "postgresql" | "memory"
    path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = "public"


def parse_url(url: str) -> StoreUrl:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path (SQLAlchemy's convention)
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path:
            raise InvalidInput(f"no file in the SQLite URL {url!r}")
        return StoreUrl(kind="sqlite", path=unquote(path))
    if scheme in ("postgresql", "postgres"):
        query = parse_qs(parts.query)
        return StoreUrl(
            kind="postgresql",
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=parts.path.lstrip("/") or "postgres",
            schema=query.get("schema", ["public"])[0],
        )
    if scheme == "memory":
        return StoreUrl(kind="memory")
    raise InvalidInput(f"unsupported database URL {url!r} (sqlite:///, postgresql://, memory://)")


def eventsourcing_env(url: str) -> dict[str, str]:
    """The library's settings for a ledger database URL."""
    store = parse_url(url)
    if store.kind == "sqlite":
        return {
            "PERSISTENCE_MODULE": "ledger.store:LedgerSQLiteFactory",
            "SQLITE_DBNAME": store.path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "ledger.store:LedgerSQLiteRecorder",
        }
    if store.kind == "postgresql":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": store.dbname,
            "POSTGRES_HOST": store.host,
            "POSTGRES_PORT": str(store.port),
            "POSTGRES_USER": store.user,
            "POSTGRES_PASSWORD": store.password,
            "POSTGRES_SCHEMA": store.schema,
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "APPLICATION_RECORDER_TOPIC": "ledger.store:LedgerPostgresRecorder",
        }
    return {
        # The library's POPO factory ignores APPLICATION_RECORDER_TOPIC: use our own.
        "PERSISTENCE_MODULE": "ledger.store:LedgerMemoryFactory",
    }


_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def sqlite_write_lock(path: str) -> threading.RLock:
    """One lock per SQLite file in this process, taken by every writer of it (the event
    store and the read models): SQLite has one write lock per file, and a writer that meets
    it busy sleeps in millisecond steps; writers of one process queue here instead."""
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = threading.RLock()
        return lock


class DonorKeyRecorder:
    """What the application needs of a recorder besides events."""

    def select_donor_key(self, donor_id: str) -> bytes | None:
        raise NotImplementedError

    def delete_donor_key(self, donor_id: str) -> bool:
        raise NotImplementedError


DATABASE_FILE_MODE = 0o600


def ensure_private_database_file(path: str) -> None:
    """Create an SQLite database file readable by its owner only (SQLite would create it
    with the umask's mode, 0644 as a rule). SQLite gives its ``-wal`` and ``-shm`` files the
    database file's mode. An existing file is left as it is; ``:memory:`` and ``file:``
    URIs are not files of ours."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    # A missing folder is left for SQLite to report when it connects.
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_FILE_MODE))


class LedgerSQLitePool(SQLiteConnectionPool):
    """The library's pool, with ``synchronous=FULL`` set on every connection it opens (the
    library leaves it at the build's default; a commit must be on disk when it returns),
    and ``secure_delete=ON`` (builds differ in their default): what is deleted, a donor's
    key, is overwritten in the file, not left on a free page."""

    def _create_connection(self) -> SQLiteConnection:
        if not self.is_sqlite_memory_mode:
            ensure_private_database_file(self.db_name)
        connection = super()._create_connection()
        if not self.is_sqlite_memory_mode:
            # The connection is in autocommit mode: the pragmas run outside a transaction.
            cursor = connection.cursor()
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA secure_delete=ON")
        return connection


class LedgerSQLiteFactory(SQLiteFactory):
    """The library's SQLite factory with ``LedgerSQLitePool``."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        self.datastore.pool = LedgerSQLitePool(
            db_name=pool.db_name,
            lock_timeout=pool.lock_timeout,
            pool_size=pool.pool_size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.pool_timeout,
            max_age=pool.max_age,
            pre_ping=pool.pre_ping,
        )
        pool.close()


class LedgerSQLiteRecorder(SQLiteApplicationRecorder, DonorKeyRecorder):
    def __init__(self, datastore: Any, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)
        # Looked up once: resolving the path is not for every write.
        self.write_lock = sqlite_write_lock(datastore.pool.db_name)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self.write_lock:
            return super().insert_events(stored_events, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS donor_keys ("
            "donor_id TEXT PRIMARY KEY, wrapped_key BLOB NOT NULL) WITHOUT ROWID",
        ]

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        donor_keys: Sequence[DonorKey] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        for k in donor_keys:
            c.execute(
                "INSERT OR IGNORE INTO donor_keys (donor_id, wrapped_key) VALUES (?, ?)",
                (k.donor_id, k.wrapped_key),
            )
        return super()._insert_events(c, stored_events, **kwargs)

    def select_donor_key(self, donor_id: str) -> bytes | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT wrapped_key FROM donor_keys WHERE donor_id = ?", (donor_id,))
            row = c.fetchone()
            return bytes(row[0]) if row else None

    def delete_donor_key(self, donor_id: str) -> bool:
        """Delete the key (overwritten in its page: ``secure_delete``), then checkpoint the
        write-ahead log and truncate it, where the key's earlier page images still are
        (best effort: a reader that holds an old snapshot keeps the log until it ends, and
        the next checkpoint overwrites it)."""
        with self.write_lock:
            with self.datastore.transaction(commit=True) as c:
                c.execute("DELETE FROM donor_keys WHERE donor_id = ?", (donor_id,))
                deleted = bool(c.sqlite_cursor.rowcount)
            if deleted and not self.datastore.pool.is_sqlite_memory_mode:
                with self.datastore.get_connection(commit=True) as conn:
                    cursor = conn.cursor()  # (autocommit: a checkpoint runs outside one)
                    cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    busy, _, _ = cursor.fetchone()
                if busy:
                    log.warning("the write-ahead log could not be truncated after an erasure")
        return deleted


class LedgerPostgresRecorder(PostgresApplicationRecorder, DonorKeyRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.donor_keys_table = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier(f"{APP_NAME}_donor_keys")
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (donor_id text PRIMARY KEY, "
                "wrapped_key bytea NOT NULL)"
            ).format(self.donor_keys_table)
        )

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        donor_keys: Sequence[DonorKey] = (),
        **kwargs: Any,
    ) -> None:
        for k in donor_keys:
            curs.execute(
                SQL(
                    "INSERT INTO {} (donor_id, wrapped_key) VALUES (%s, %s) "
                    "ON CONFLICT (donor_id) DO NOTHING"
                ).format(self.donor_keys_table),
                (k.donor_id, k.wrapped_key),
            )
        super()._insert_events(curs, stored_events, **kwargs)

    def select_donor_key(self, donor_id: str) -> bytes | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT wrapped_key FROM {} WHERE donor_id = %s").format(self.donor_keys_table),
                (donor_id,),
            )
            row = curs.fetchone()
            return bytes(row["wrapped_key"]) if row else None

    def delete_donor_key(self, donor_id: str) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("DELETE FROM {} WHERE donor_id = %s").format(self.donor_keys_table),
                (donor_id,),
            )
            return bool(curs.rowcount)


class LedgerMemoryRecorder(POPOApplicationRecorder, DonorKeyRecorder):
    def __init__(self) -> None:
        super().__init__()
        self._donor_keys: dict[str, bytes] = {}
        self._keys_lock = threading.Lock()

    def _insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        donor_keys: Sequence[DonorKey] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        with self._database_lock:
            # Check uniqueness first so that a refused write leaves no key behind.
            self._assert_uniqueness(stored_events, **kwargs)
            with self._keys_lock:
                for k in donor_keys:
                    self._donor_keys.setdefault(k.donor_id, k.wrapped_key)
            return super()._insert_events(stored_events, **kwargs)

    def select_donor_key(self, donor_id: str) -> bytes | None:
        with self._keys_lock:
            return self._donor_keys.get(donor_id)

    def delete_donor_key(self, donor_id: str) -> bool:
        with self._keys_lock:
            return self._donor_keys.pop(donor_id, None) is not None


class LedgerMemoryFactory(POPOFactory):
    """The in-memory store with the ledger's recorder (the library's POPO factory always
    builds a plain ``POPOApplicationRecorder``, whatever ``APPLICATION_RECORDER_TOPIC`` says)."""

    def application_recorder(self) -> LedgerMemoryRecorder:
        return LedgerMemoryRecorder()
