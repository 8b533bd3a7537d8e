"""The read models' SQLAlchemy engine, in the same database as the events.

``make_engine(url)`` takes the ledger's ``LEDGER_DATABASE_URL``:

- ``sqlite:///path``: the same file as the event store (WAL). Read-model transactions run
  with ``synchronous=NORMAL``: in WAL mode that keeps every commit atomic (rows and tracking
  position stay together) and only a power cut may lose the last commits, which the
  projection then processes again; the event store keeps its own ``FULL``. And with
  ``secure_delete=FAST`` (see ``SQLITE_SECURE_DELETE``). Writing
  transactions of the projector begin ``IMMEDIATE`` (``write_engine``): a deferred
  transaction that reads, then writes, fails at once if another connection committed
  in between.
- ``postgresql://user@host:port/db?schema=X``: the same database and schema (``search_path``),
  through psycopg 3.
- ``memory://`` has no SQL database: read models need SQLite or PostgreSQL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL

from ledger.application import LedgerApp, create_app
from ledger.domain.errors import InvalidInput
from ledger.settings import Settings
from ledger.store import StoreUrl, ensure_private_database_file, parse_url, sqlite_write_lock
from projections.engine.transactions import WRITE_OPTION

SQLITE_BUSY_TIMEOUT_S = 30
SQLITE_CACHE_KIB = 65_536  # per connection: index pages of large read models stay in memory
# Read models hold nothing the event log does not hold in clear (donor details stay sealed
# in the events): freed pages need not be zeroed, only what a write touches anyway. (Some
# builds, Debian's among them, zero every freed page: a rebuild's swap then rewrote every
# page of the old tables.) The event store's own connections keep ``ON``: a deleted donor
# key must not stay in the file.
SQLITE_SECURE_DELETE = "FAST"
_HELD_KEY = "ledger_write_locks_held"


_STORES: WeakKeyDictionary[Engine, StoreUrl] = WeakKeyDictionary()


def store_of(engine: Engine) -> StoreUrl | None:
    """The ledger database an engine of ``make_engine`` was made for."""
    return _STORES.get(engine)


def sqlalchemy_url(database_url: str) -> URL:
    store = parse_url(database_url)
    if store.kind == "sqlite":
        return URL.create("sqlite", database=store.path)
    if store.kind == "postgresql":
        return URL.create(
            "postgresql+psycopg",
            username=store.user or None,
            password=store.password or None,
            host=store.host,
            port=store.port,
            database=store.dbname,
        )
    raise InvalidInput(
        f"read models need SQLite or PostgreSQL, not {database_url!r}", url=database_url
    )


def psycopg_conninfo(store: StoreUrl) -> str:
    """A libpq URL for a plain psycopg connection (LISTEN, tests)."""
    auth = quote(store.user, safe="")
    if store.password:
        auth += ":" + quote(store.password, safe="")
    return f"postgresql://{auth}@{store.host}:{store.port}/{quote(store.dbname, safe='')}"


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """An engine on the event store's database; no connection is made until first use."""
    store = parse_url(database_url)
    url = sqlalchemy_url(database_url)
    if store.kind == "sqlite":
        ensure_private_database_file(store.path)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            **kwargs,
        )
        _sqlite_transactions(engine, store.path)
    else:
        engine = create_engine(
            url,
            connect_args={"options": f"-c search_path={store.schema or 'public'}"},
            pool_pre_ping=True,
            **kwargs,
        )
    _STORES[engine] = store
    return engine


def _sqlite_transactions(engine: Engine, path: str) -> None:
    """pysqlite's own transaction handling is switched off; SQLAlchemy's ``begin`` emits
    ``BEGIN`` (readers) or ``BEGIN IMMEDIATE`` (the projector). A write transaction first
    takes the file's in-process write lock (shared with the event store's recorder), and
    gives it back when its connection returns to the pool, after the commit."""
    write_lock = sqlite_write_lock(path)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA secure_delete = {SQLITE_SECURE_DELETE}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        if connection.get_execution_options().get(WRITE_OPTION):
            write_lock.acquire()
            held: list[Any] = connection.info.setdefault(_HELD_KEY, [])
            held.append(write_lock)
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                held.pop().release()
                raise
        else:
            connection.exec_driver_sql("BEGIN")

    @event.listens_for(engine.pool, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        for lock in reversed(record.info.pop(_HELD_KEY, [])):
            lock.release()


def open_store(settings: Settings) -> tuple[LedgerApp, Engine]:
    """The application and the read models' engine of ``settings`` (a rebuild's workers
    open the store with it again: ``functools.partial(open_store, settings)``)."""
    app = create_app(settings)
    return app, make_engine(settings.database_url)
