"""The machinery every read model shares: a projection, its row cache, and the projector
that feeds a batch of the event log to projections in one transaction.

Exactly-once: a batch's rows and each projection's tracking position (``rm_projections``)
are written in one SQLAlchemy transaction, and inside that transaction the projector first
reads (and on PostgreSQL locks) the positions and skips every event at or below them. A
re-delivered event therefore changes nothing, and a batch that fails leaves nothing behind.

Speed: a projection keeps the rows it touches in memory (``Rows``) across batches, applies
a whole batch there, and writes each changed row once per batch with ``executemany``. The
cache is trusted only while the tracking row still says what this process last wrote
(same generation, same position); anything else — another process advanced it, a rebuild
swapped the tables, a batch failed — empties it.

Errors::

    ProjectionError            a handler or a flush failed; names the projection and position
      (its cause may be)
      InvariantBroken          the log breaks a rule the read model relies on (say a
                               negative balance): loud, never skipped
    RebuildSuperseded          another rebuild took over the same projection
"""

from __future__ import annotations

import io
import logging
import pickle
import sqlite3
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from operator import itemgetter
from typing import Any, ClassVar, Protocol, cast

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    Notification,
    find_id_convertor,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import resolve_topic
from orjson import loads as json_loads
from sqlalchemy import (
    Boolean,
    Connection,
    Dialect,
    Engine,
    Index,
    String,
    Table,
    and_,
    bindparam,
    event,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from projections.db import write_engine
from projections.tables import IsoDate, Tables, UtcDateTime, projection_state, sqlite_instant

log = logging.getLogger(__name__)

ROWS_CACHED_MAX = 50_000  # per table, between batches
BATCH_EVENTS_MAX = 5_000
IDS_CACHED_MAX = 100_000  # originator ids kept converted while reading the log
WRITE_CHUNK_ROWS = 20_000  # rows per executemany
_STORED_FORM = {str, type(None)}


class ProjectionError(Exception):
    """A projection failed on an event (``position``) or while writing a batch."""

    def __init__(self, name: str, position: int, cause: BaseException) -> None:
        super().__init__(f"projection {name!r} failed at notification {position}: {cause!r}")
        self.name = name
        self.position = position
        self.cause = cause

    @property
    def transient(self) -> bool:
        """A database that is busy or unreachable, rather than a bug or a broken invariant."""
        cause = self.cause
        if isinstance(
            cause, OperationalError | sqlite3.OperationalError | psycopg.OperationalError
        ):
            return True  # (the last two: raised by the driver's cursor, see TableWriter)
        return isinstance(cause, DBAPIError) and bool(cause.connection_invalidated)


class InvariantBroken(Exception):
    """A projection found the ledger breaking a rule it relies on (say a negative balance)."""


class RebuildSuperseded(Exception):
    """Another rebuild of the same projection started after this one."""


Key = Any
Row = dict[str, Any]


class TableWriter:
    """INSERT and UPDATE-by-key statements of one table, compiled once per dialect and run
    with the driver's ``executemany``: SQLAlchemy's per-row parameter handling costs more
    than the database's work on a rebuild. Values still go through each column type's own
    bind processor (dates, instants, JSON), so the rows are what Core would write."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        if dialect.paramstyle not in ("qmark", "format", "pyformat"):
            raise NotImplementedError(f"paramstyle {dialect.paramstyle}")
        columns = list(table.columns)
        self.names = [c.name for c in columns]
        self.key_names = [c.name for c in columns if c.primary_key]
        self.value_names = [c.name for c in columns if not c.primary_key]
        name = quote(table.name)
        self.insert_sql = (
            f"INSERT INTO {name} ({', '.join(quote(n) for n in self.names)}) "
            f"VALUES ({', '.join(mark for _ in self.names)})"
        )
        self.update_sql = (
            f"UPDATE {name} SET {', '.join(f'{quote(n)} = {mark}' for n in self.value_names)} "
            f"WHERE {' AND '.join(f'{quote(n)} = {mark}' for n in self.key_names)}"
        )
        # A rebuild's rows read back from the table and changed (SQLite's page writer):
        # all columns, in the table's order, updating the row with the same key.
        assignments = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in self.value_names)
        self.upsert_sql = (
            f"{self.insert_sql} ON CONFLICT ({', '.join(quote(n) for n in self.key_names)}) "
            + (f"DO UPDATE SET {assignments}" if assignments else "DO NOTHING")
        )
        # Both drivers take ``bool`` and ISO dates (text or ``date``) as they are. Instants
        # are converted in the row itself (the stored form is a valid value again); JSON
        # goes through its column type's processor on a copy.
        self._in_place: list[tuple[str, Callable[[Any], Any]]] = []
        processors: dict[str, Any] = {}
        for c in columns:
            if isinstance(c.type, IsoDate | Boolean):
                continue
            if isinstance(c.type, UtcDateTime):
                if dialect.name == "sqlite":
                    self._in_place.append((c.name, sqlite_instant))
                continue
            processors[c.name] = c.type._cached_bind_processor(dialect)
        self._in_place_at = [(self.names.index(name), f) for name, f in self._in_place]
        insert_order = self.names
        update_order = self.value_names + self.key_names
        self._insert_get = itemgetter(*insert_order)
        self._update_get = itemgetter(*update_order)
        self._insert_procs = [
            (i, f) for i, n in enumerate(insert_order) if (f := processors.get(n)) is not None
        ]
        self._update_procs = [
            (i, f) for i, n in enumerate(update_order) if (f := processors.get(n)) is not None
        ]

    def _tuples(
        self, rows: list[Row], get: Callable[[Row], Any], procs: list[tuple[int, Any]]
    ) -> list[Any]:
        for name, convert in self._in_place:
            # Instants already in their stored form (a rebuild's rows on SQLite: see
            # ``FastDecoder.decode_for_sqlite``) are left as they are; the check runs in C.
            if not set(map(type, map(itemgetter(name), rows))) <= _STORED_FORM:
                for row in rows:
                    row[name] = convert(row[name])
        if not procs:
            return list(map(get, rows))
        return [tuple(self._processed(get(row), procs)) for row in rows]

    def insert(self, conn: Connection, rows: Iterable[Row]) -> None:
        self._write(conn, self.insert_sql, rows, self._insert_get, self._insert_procs)

    def insert_tuples(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows given as tuples of all columns, in the table's order."""
        for chunk in self.tuple_chunks(rows):
            conn.exec_driver_sql(self.insert_sql, chunk)

    def tuple_chunks(self, rows: list[tuple[Any, ...]]) -> Iterator[list[Any]]:
        """The insert parameters of rows given as tuples, in chunks."""
        for start in range(0, len(rows), WRITE_CHUNK_ROWS):
            chunk = rows[start : start + WRITE_CHUNK_ROWS]
            for i, convert in self._in_place_at:
                if not set(map(type, map(itemgetter(i), chunk))) <= _STORED_FORM:
                    chunk = [(*r[:i], convert(r[i]), *r[i + 1 :]) for r in chunk]
            if self._insert_procs:
                chunk = [tuple(self._processed(r, self._insert_procs)) for r in chunk]
            yield chunk

    def row_chunks(self, rows: list[Row]) -> Iterator[list[Any]]:
        """The insert parameters (all columns, the table's order) of rows given as dicts,
        in chunks."""
        for start in range(0, len(rows), WRITE_CHUNK_ROWS):
            yield self._tuples(
                rows[start : start + WRITE_CHUNK_ROWS], self._insert_get, self._insert_procs
            )

    @staticmethod
    def _processed(row: Sequence[Any], procs: list[tuple[int, Any]]) -> list[Any]:
        values = list(row)
        for i, process in procs:
            values[i] = process(values[i])
        return values

    def update(self, conn: Connection, rows: Iterable[Row]) -> None:
        self._write(conn, self.update_sql, rows, self._update_get, self._update_procs)

    def _write(
        self,
        conn: Connection,
        sql: str,
        rows: Iterable[Row],
        get: Callable[[Row], Any],
        procs: list[tuple[int, Any]],
    ) -> None:
        # In chunks: the parameters of a rebuild's largest table would otherwise double
        # its memory for a moment.
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        # The driver's own cursor, in the connection's transaction: SQLAlchemy's statement
        # execution costs more than the database's work for the few rows of a live batch.
        cursor = conn.connection.cursor()
        try:
            for start in range(0, len(rows), WRITE_CHUNK_ROWS):
                cursor.executemany(
                    sql, self._tuples(rows[start : start + WRITE_CHUNK_ROWS], get, procs)
                )
        finally:
            cursor.close()


class Part:
    """What a projection keeps of one table during a batch."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._writers: dict[str, TableWriter] = {}

    def writer(self, conn: Connection) -> TableWriter:
        return self.writer_for(conn.dialect)

    def writer_for(self, dialect: Dialect) -> TableWriter:
        writer = self._writers.get(dialect.name)
        if writer is None:
            writer = self._writers[dialect.name] = TableWriter(self.table, dialect)
        return writer

    def flush(self, conn: Connection) -> None:
        raise NotImplementedError

    def stage(self, page: Page) -> None:
        """``flush``, into a rebuild's page (SQLite) instead."""
        raise NotImplementedError

    def committed(self) -> None:
        raise NotImplementedError

    def reset(self, *, empty: bool) -> None:
        raise NotImplementedError


class Rows(Part):
    """The rows of one table that a projection touches, keyed by primary key.

    ``get`` serves from memory or loads the row; ``add`` and ``changed`` mark what ``flush``
    writes (inserts, then full-row updates by key). Between batches at most ``cached_max``
    rows are kept (oldest first out). While ``complete`` (the table was empty when the
    cache started and nothing was evicted since) a key not in memory is not in the table.
    """

    def __init__(self, table: Table, cached_max: int = ROWS_CACHED_MAX) -> None:
        super().__init__(table)
        self.key_names = tuple(c.name for c in table.primary_key.columns)
        self.cached_max = cached_max
        self.cache: dict[Key, Row] = {}
        self.new: dict[Key, Row] = {}
        self.dirty: dict[Key, Row] = {}
        self.complete = False
        key_cols = [table.c[n] for n in self.key_names]
        # Loaded rows keep business dates as the driver gives them (ISO text on SQLite),
        # ready to be written back as they are.
        self._select = select(
            *(type_coerce(c, String) if isinstance(c.type, IsoDate) else c for c in table.c)
        ).where(and_(*(c == bindparam(f"k_{c.name}") for c in key_cols)))

    def get(self, conn: Connection, key: Key) -> Row | None:
        row = self.cache.get(key)
        if row is not None or self.complete:
            return row
        keys = key if isinstance(key, tuple) else (key,)
        params = {f"k_{n}": v for n, v in zip(self.key_names, keys, strict=True)}
        found = conn.execute(self._select, params).mappings().first()
        if found is None:
            return None
        row = dict(found)
        self.cache[key] = row
        return row

    def need(self, conn: Connection, key: Key) -> Row:
        row = self.get(conn, key)
        if row is None:
            raise InvariantBroken(f"{self.table.name} has no row {key!r}")
        return row

    def add(self, key: Key, row: Row) -> None:
        if key in self.cache:
            raise InvariantBroken(f"{self.table.name} already has a row {key!r}")
        self.cache[key] = row
        self.new[key] = row

    def changed(self, key: Key, row: Row) -> None:
        if key not in self.new:
            self.dirty[key] = row

    def flush(self, conn: Connection) -> None:
        writer = self.writer(conn)
        writer.insert(conn, self.new.values())
        writer.update(conn, self.dirty.values())

    def stage(self, page: Page) -> None:
        writer = self.writer_for(page.dialect)
        page.add(writer, writer.row_chunks(list(self.new.values())), update=False)
        page.add(writer, writer.row_chunks(list(self.dirty.values())), update=True)

    def committed(self) -> None:
        self.new.clear()
        self.dirty.clear()
        excess = len(self.cache) - self.cached_max
        if excess > 0:
            for key in list(islice(self.cache, excess + self.cached_max // 4)):
                del self.cache[key]
            self.complete = False

    def reset(self, *, empty: bool) -> None:
        self.cache.clear()
        self.new.clear()
        self.dirty.clear()
        self.complete = empty


class Appends(Part):
    """Rows only ever inserted (journal lines, approvals, refunds): a list per batch, each
    row a tuple of the values of ``columns`` (the table's, in its order; the projection
    names them, and they are checked against the table): no dict to build per row."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        super().__init__(table)
        if tuple(columns) != tuple(c.name for c in table.columns):
            raise ValueError(f"{table.name} has the columns {list(table.columns.keys())}")
        self.columns = tuple(columns)
        self.rows: list[tuple[Any, ...]] = []

    def flush(self, conn: Connection) -> None:
        self.writer(conn).insert_tuples(conn, self.rows)

    def stage(self, page: Page) -> None:
        writer = self.writer_for(page.dialect)
        page.add(writer, writer.tuple_chunks(self.rows), update=False)

    def committed(self) -> None:
        self.rows = []

    def reset(self, *, empty: bool) -> None:
        self.rows = []


class Page:
    """A page of a rebuild's rows (SQLite), for the page writer process
    (``projections.page_writer``): the statements and the parameters the driver would
    bind, with how many rows each must write, handed over pickled. Nothing the
    projections keep is shared: the rows are tuples of plain values."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.statements: list[tuple[str, list[Any], int]] = []  # (SQL, rows, row count)

    def add(self, writer: TableWriter, chunks: Iterable[list[Any]], *, update: bool) -> None:
        """Add rows (tuples of every column, in the table's order): inserted, or, with
        ``update``, rows read back from the table, updated by key."""
        sql = writer.upsert_sql if update else writer.insert_sql
        for chunk in chunks:
            if chunk:
                self.statements.append((sql, chunk, len(chunk)))

    def finish(self) -> bytes:
        """The page, pickled without a memo (its rows are flat tuples of plain values:
        several times faster than with one, or than ``marshal``)."""
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.fast = True
        pickler.dump(self.statements)
        return buffer.getvalue()


class Sink(Protocol):
    """Where a rebuild on SQLite hands its pages of rows (``projections.rebuild``'s
    ``PageWriter``, a process of its own): ``submit`` queues one, ``drain`` waits until
    every page handed over is committed (and raises what the writer raised)."""

    def submit(self, page: Page) -> None: ...

    def drain(self) -> None: ...


class FastDecoder:
    """The application mapper's ``to_domain_event``, without its slowest steps, for the
    events where that changes nothing: no cipher or compressor, the library's JSON
    transcoder's format and decoder, an event class at version 1, and no transcoded value
    but the timestamp. Anything else goes through the mapper itself. The result is the same
    object: the event's class with the same attributes (tests compare the two on whole
    histories)."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self.mapper = mapper
        transcoder = mapper.transcoder
        self.enabled = (
            mapper.cipher is None
            and mapper.compressor is None
            and isinstance(transcoder, JSONTranscoder)
            and type(transcoder).decode is JSONTranscoder.decode
            and type(transcoder.names.get("datetime_iso")) is DatetimeAsISO
        )
        self._classes: dict[str, Any] = {}
        self._convertors: dict[tuple[Any, type], Callable[[Any], Any]] = {}

    def _class_of(self, topic: str) -> Any:
        cls = resolve_topic(topic)
        if getattr(cls, "class_version", 1) != 1:
            cls = None
        self._classes[topic] = cls
        return cls

    def __call__(self, notification: Notification) -> Any:
        if not self.enabled:
            return self.mapper.to_domain_event(notification)
        return self.decode(
            notification.id,
            notification.originator_id,
            notification.originator_version,
            notification.topic,
            notification.state,
        )

    def decode(
        self, id_: int, originator_id: Any, originator_version: int, topic: str, state: bytes
    ) -> Any:
        """The event of a stored row's parts (``originator_id`` as the recorder gives it)."""
        plain = self._plain(topic, state)
        if plain is None:
            return self._slow(id_, originator_id, originator_version, topic, state)
        cls, event_state, iso = plain
        event_state["timestamp"] = datetime.fromisoformat(iso)
        id_type = type(originator_id)
        convert = self._convertors.get((cls, id_type))
        if convert is None:
            convert = self._convertors[cls, id_type] = find_id_convertor(
                cls, cast(Hashable, id_type)
            )
        return _event(cls, event_state, convert(originator_id), originator_version)

    def decode_for_sqlite(
        self, originator_id: str, originator_version: int, topic: str, state: bytes
    ) -> Any:
        """A rebuild's event on SQLite: ``decode``'s, but with its ``timestamp`` already in
        the form SQLite's read models store (``sqlite_instant``'s text) and ``originator_id``
        as text: what the handlers copy into rows, without a ``datetime`` and a ``UUID``
        that the writer would turn back into text. None where ``decode`` must do it."""
        plain = self._plain(topic, state)
        if plain is None:
            return None
        cls, event_state, iso = plain
        event_state["timestamp"] = stored_instant(iso)
        return _event(cls, event_state, originator_id, originator_version)

    def _plain(self, topic: str, state: bytes) -> tuple[Any, dict[str, Any], Any] | None:
        """The event class, the decoded state and its timestamp's ISO text, where the fast
        path gives what the mapper gives; None elsewhere."""
        if not self.enabled:
            return None
        cls = self._classes.get(topic, _UNSEEN)
        if cls is _UNSEEN:
            cls = self._class_of(topic)
        if cls is None or state.count(b'"_type_"') != 1:
            return None
        try:
            event_state = json_loads(state)
        except ValueError:  # what orjson refuses (say a lone surrogate), json may accept
            return None
        timestamp = event_state.get("timestamp")
        if type(timestamp) is not dict or timestamp.get("_type_") != "datetime_iso":
            return None
        return cls, event_state, timestamp["_data_"]

    def _slow(
        self, id_: int, originator_id: Any, originator_version: int, topic: str, state: bytes
    ) -> Any:
        return self.mapper.to_domain_event(
            Notification(
                id=id_,
                originator_id=originator_id,
                originator_version=originator_version,
                topic=topic,
                state=state,
            )
        )


_UNSEEN = object()


def _event(cls: Any, event_state: dict[str, Any], originator_id: Any, version: int) -> Any:
    """The event object the mapper would make of its class and decoded state."""
    event_state["originator_id"] = originator_id
    event_state["originator_version"] = version
    domain_event = object.__new__(cls)
    object.__setattr__(domain_event, "__dict__", event_state)
    return domain_event


def stored_instant(iso: Any) -> Any:
    """An event's ISO timestamp as SQLite's read models store it (``sqlite_instant`` of the
    datetime the mapper makes of it). The library writes UTC with microseconds
    (``2026-11-28T01:22:39.080725+00:00``): that form is cut, not parsed; any other gives
    the datetime, which the writer converts."""
    if type(iso) is str and len(iso) == 32 and iso[26:] == "+00:00" and iso[10] == "T":
        return f"{iso[:10]} {iso[11:26]}"
    return datetime.fromisoformat(iso)


def stored_id_text(recorder: SQLiteApplicationRecorder, stored_id: Any) -> str:
    """``str(recorder.convert_originator_id(stored_id))``, without a ``UUID`` for the form
    the recorder stores (32 hex digits)."""
    if (
        recorder.datastore.originator_id_type == "uuid"
        and type(stored_id) is str
        and len(stored_id) == 32
    ):
        try:
            digits = bytes.fromhex(stored_id).hex()  # validates, and lower case
        except ValueError:
            digits = ""
        if len(digits) == 32:
            d = digits
            return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:]}"
    return str(recorder.convert_originator_id(stored_id))


# (notification id, topic, domain event or None if no projection follows it, originator id)
Decoded = tuple[int, str, Any, str]


Handler = Callable[[int, str, Any], None]  # (notification id, originator id, event)


class Projection:
    """A read model: some tables, and what each event topic does to them.

    Subclasses set ``name``, ``version`` (bump it when the tables or the handlers change:
    the projection is then rebuilt), ``table_names`` (base names in ``Tables``) and map
    topics to handler method names in ``handles``. A handler gets the event's notification
    id, its originator id as text and the decoded domain event; it changes rows through
    ``Rows``/``Appends`` and may read with ``self.conn`` (the batch's connection). In a
    rebuild on SQLite the event's ``timestamp`` and ``originator_id`` are text (see
    ``FastDecoder.decode_for_sqlite``): a handler copies the timestamp into rows as it is
    and uses the ``oid`` argument, never computes with either.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    table_names: ClassVar[tuple[str, ...]]
    handles: ClassVar[dict[str, str]]

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.conn: Connection = None  # type: ignore[assignment]  # set for each batch
        self.handlers: dict[str, Handler] = {
            topic: getattr(self, method) for topic, method in self.handles.items()
        }
        self.parts: list[Part] = []
        # What this process last committed for the projection (generation, position);
        # None: nothing trusted, the cache is empty.
        self.trusted: tuple[int, int] | None = None
        self.position = 0
        # The caches hold every row since the tables were empty: a miss is an absence.
        self.complete = False
        # Secondary indexes a rebuild creates after loading; made at once if a lookup
        # needs them first.
        self.deferred_indexes: list[Index] = []

    def rows(self, table: Table, cached_max: int = ROWS_CACHED_MAX) -> Rows:
        part = Rows(table, cached_max)
        self.parts.append(part)
        return part

    def appends(self, table: Table, columns: Sequence[str]) -> Appends:
        part = Appends(table, columns)
        self.parts.append(part)
        return part

    def flush(self, conn: Connection) -> None:
        for part in self.parts:
            part.flush(conn)

    def batch_committed(self) -> None:
        for part in self.parts:
            part.committed()
        self.after_commit()

    def forget(self, *, empty: bool = False) -> None:
        """Drop everything cached: the next batch reads from the tables. ``empty``: the
        tables are known to be empty (position 0), so the caches start complete."""
        for part in self.parts:
            part.reset(empty=empty)
        self.complete = empty
        self.after_reset()
        self.trusted = None

    def need_indexes(self) -> None:
        for index in self.deferred_indexes:
            index.create(self.conn, checkfirst=True)

    def after_commit(self) -> None:
        """Hook: trim private caches."""

    def after_reset(self) -> None:
        """Hook: drop private caches."""


@dataclass(frozen=True, slots=True)
class Slot:
    """Which tracking columns a projector uses: the live tables', or a rebuild's."""

    position: str
    generation: str
    version: str


LIVE_SLOT = Slot("position", "generation", "version")
BUILD_SLOT = Slot("build_position", "build_generation", "build_version")


class Projector:
    """Feeds the event log to projections, one transaction per batch.

    ``step()`` reads the tracking rows, then the next batch of the log after the lowest
    position, decodes each event once with the application's mapper, and calls
    ``process``. Not thread-safe: one thread drives a projector.
    """

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        projections: Sequence[Projection],
        *,
        slot: Slot = LIVE_SLOT,
        generation: int | None = None,
    ) -> None:
        self.app = app
        self.engine = engine  # reads: deferred transactions
        self.engine_w = write_engine(engine)  # batches: take the write lock first
        self.projections = list(projections)
        self.slot = slot
        self.generation = generation  # a rebuild's own generation; None for live
        self.topics = frozenset(t for p in self.projections for t in p.handlers)
        self.dispatch: dict[str, list[tuple[Projection, Handler]]] = {}
        for p in self.projections:
            for topic, handler in p.handlers.items():
                self.dispatch.setdefault(topic, []).append((p, handler))
        self.decoder = FastDecoder(app.mapper)
        self._compile_state_statements()
        # The tracking rows as this projector's last committed batch left them (None:
        # unknown, read them). ``_next_states``: the same, until the batch commits.
        self._known_states: dict[str, dict[str, Any]] | None = None
        self._next_states: dict[str, dict[str, Any]] | None = None
        # Stored originator ids, converted as the recorder converts them, and as text.
        self._ids: dict[Any, tuple[Any, str]] = {}
        self._id_texts: dict[Any, str] = {}  # the same, as text only (a rebuild on SQLite)
        # A rebuild's mode: batches are applied in memory only, and ``write_deferred``
        # writes every row once, in one transaction, at the end.
        self.deferred = False
        # Where a rebuild on SQLite hands its pages of rows (None: written here).
        self.sink: Sink | None = None
        self.excluded: set[str] = set()  # failed: left alone until restarted
        self.awaiting_rebuild: set[str] = set()  # tables of another version

    def candidates(self, states: dict[str, dict[str, Any]]) -> list[Projection]:
        """The projections this projector may feed now."""
        slot = self.slot
        ready = []
        for p in self.projections:
            state = states.get(p.name)
            if p.name in self.excluded or state is None:
                continue
            if state[slot.version] != p.version:
                self.awaiting_rebuild.add(p.name)
                continue
            self.awaiting_rebuild.discard(p.name)
            ready.append(p)
        return ready

    def positions(self) -> dict[str, int]:
        """Positions of the projections whose tables this code made (a projection waiting
        for its rebuild has none)."""
        with self.engine.connect() as conn:
            states = self._states(conn, lock=False)
        return {
            p.name: int(states[p.name][self.slot.position] or 0)
            for p in self.projections
            if p.name in states and states[p.name][self.slot.version] == p.version
        }

    def step(self, *, limit: int = BATCH_EVENTS_MAX, stop: int | None = None) -> int:
        """Process the next batch; returns how many notifications it covered (0: none).

        The tracking rows are read again under the write lock before anything is written
        (``process_in``); the read here only decides where the next batch starts, and is
        skipped while this projector's own last batch is what they hold."""
        states = self._known_states
        if states is None:
            with self.engine.connect() as conn:
                states = self._states(conn, lock=False)
        ready = self.candidates(states)
        if not ready:
            return 0
        for p in ready:
            p.position = int(states[p.name][self.slot.position] or 0)
        after = min(p.position for p in ready)
        if stop is not None and stop <= after:
            return 0
        events = self.read_decoded(after, limit, stop=stop)
        if not events:
            return 0
        self.process_decoded(events, after=after)
        return len(events)

    def decode(self, notifications: Iterable[Notification]) -> list[Decoded]:
        to_event = self.decoder
        topics = self.topics
        return [
            (n.id, n.topic, to_event(n), str(n.originator_id))
            if n.topic in topics
            else (n.id, n.topic, None, "")
            for n in notifications
        ]

    def read_decoded(
        self, after: int, limit: int, *, stop: int | None = None, followed_only: bool = False
    ) -> list[Decoded]:
        """The log after ``after`` (at most ``limit`` notifications), decoded. On SQLite the
        events table is read directly, without the recorder's ``Notification`` objects;
        the events and ids are the same (the recorder's own id conversion).
        ``followed_only``: only the events of the topics the projections follow (the
        store filters; a rebuild that knows where it stops, see ``advance``)."""
        recorder = self.app.recorder
        wanted = sorted(self.topics) if followed_only else []
        if followed_only and not wanted:
            return []
        if not isinstance(recorder, SQLiteApplicationRecorder):
            return self.decode(
                recorder.select_notifications(
                    after + 1, limit, stop=stop, topics=wanted, inclusive_of_start=True
                )
            )
        where = f" AND topic IN ({', '.join('?' for _ in wanted)})" if wanted else ""
        statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {recorder.events_table_name} WHERE rowid>? AND rowid<=?{where} "
            "ORDER BY rowid LIMIT ?"
        )
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute(
                statement, (after, stop if stop is not None else 2**63 - 1, *wanted, limit)
            )
            rows = curs.fetchall()
        if self.deferred and self.engine.dialect.name == "sqlite":
            return self._decode_for_sqlite(recorder, rows)
        decode = self.decoder.decode
        convert_id = recorder.convert_originator_id
        ids = self._ids
        if len(ids) > IDS_CACHED_MAX:
            ids.clear()
        topics = self.topics
        out: list[Decoded] = []
        append = out.append
        for id_, originator_id, version, topic, state in rows:
            if topic in topics:
                known = ids.get(originator_id)
                if known is None:
                    oid = convert_id(originator_id)
                    known = ids[originator_id] = (oid, str(oid))
                append((id_, topic, decode(id_, known[0], version, topic, state), known[1]))
            else:
                append((id_, topic, None, ""))
        return out

    def _decode_for_sqlite(
        self, recorder: SQLiteApplicationRecorder, rows: list[Any]
    ) -> list[Decoded]:
        """A rebuild's rows of the events table, decoded for SQLite's read models
        (``FastDecoder.decode_for_sqlite``: timestamps and originator ids as text)."""
        fast = self.decoder.decode_for_sqlite
        decode = self.decoder.decode
        texts = self._id_texts
        if len(texts) > IDS_CACHED_MAX:
            texts.clear()
        topics = self.topics
        out: list[Decoded] = []
        append = out.append
        for id_, stored_id, version, topic, state in rows:
            if topic not in topics:
                append((id_, topic, None, ""))
                continue
            text = texts.get(stored_id)
            if text is None:
                text = texts[stored_id] = stored_id_text(recorder, stored_id)
            event = fast(text, version, topic, state)
            if event is None:
                oid = recorder.convert_originator_id(stored_id)
                event = decode(id_, oid, version, topic, state)
            append((id_, topic, event, text))
        return out

    def process(self, notifications: Sequence[Notification], *, after: int) -> None:
        """Apply ``notifications`` — all of the log after ``after`` up to the last one, in
        order — in one transaction."""
        self.process_decoded(self.decode(notifications), after=after)

    def process_decoded(self, events: Sequence[Decoded], *, after: int) -> None:
        if self.deferred:
            self._apply_deferred(events)
            return
        self._known_states = self._next_states = None
        try:
            with self.engine_w.begin() as conn:
                done = self.process_in(conn, events, after=after)
        except BaseException:
            self._next_states = None
            for p in self.projections:
                p.forget()
            raise
        self._known_states, self._next_states = self._next_states, None
        for p in done:
            p.batch_committed()

    def process_in(
        self, conn: Connection, events: Sequence[Decoded], *, after: int
    ) -> list[Projection]:
        """Apply decoded ``events`` (the log after ``after``) inside the caller's transaction;
        returns the projections that wrote something (to be told once it commits)."""
        if not events:
            return []
        states = self._states(conn, lock=True)
        projections = self._begin(conn, states, after=after)
        # What the tracking rows will hold after this batch, if every projection of this
        # projector takes part in it as expected (else the next step reads them).
        expected = len(projections) == len(self.candidates(states)) and all(
            p.trusted == (states[p.name][self.slot.generation], p.position) for p in projections
        )
        try:
            self._apply(projections, events)
            last_id = events[-1][0]
            slot = self.slot
            written = []
            for p in projections:
                if last_id <= p.position:
                    continue
                try:
                    p.flush(conn)
                except Exception as e:
                    raise ProjectionError(p.name, last_id, e) from e
                written.append(p)
            if written:
                # Every position in one statement, run once per projection by the driver.
                cursor = conn.connection.cursor()
                try:
                    cursor.executemany(self._position_sql, [(last_id, p.name) for p in written])
                finally:
                    cursor.close()
            for p in written:
                p.position = last_id
                p.trusted = (states[p.name][slot.generation], last_id)
                states[p.name][slot.position] = last_id
            if expected and self.generation is None:
                self._next_states = states
            return written
        finally:
            for p in projections:
                p.conn = None  # type: ignore[assignment]

    def defer_writes(self, sink: Sink | None = None) -> None:
        """Rebuild mode, for projections whose tables are new and empty: apply batches in
        memory, where the caches start complete (a key not in memory is not in the table:
        no lookups), and write each row once (inserts only) in ``write_deferred``, with
        the position. Rows only ever inserted are written batch by batch, while fresh in
        memory; so are the rows of a table that outgrows what its projection keeps
        (``Rows.cached_max``), its oldest then dropped from memory: memory stays bounded,
        and a row changed after that is read back and updated.

        ``sink`` (SQLite): those pages (``Page``) are handed to it, a process that writes
        and commits them while the next batch is applied here. Before this thread reads
        from the tables (a row read back), the sink is drained: the read sees every page
        handed over."""
        for p in self.projections:
            p.forget(empty=True)
            p.position = 0
        self.deferred = True
        self.sink = sink

    def _apply_deferred(self, events: Sequence[Decoded]) -> None:
        if not events:
            return
        try:
            # Rows dropped from memory are read back through their own connection (the
            # tables hold what earlier batches wrote; nothing is written here).
            with self.engine.connect() as reader:
                if self.sink is not None:
                    event.listen(reader, "begin", self._drain_before_read)
                for p in self.projections:
                    p.conn = reader
                self._apply(self.projections, events)
        except BaseException:
            for p in self.projections:
                p.forget()
            raise
        finally:
            for p in self.projections:
                p.conn = None  # type: ignore[assignment]
        last_id = events[-1][0]
        for p in self.projections:
            p.position = max(p.position, last_id)
        # The position is written at the end only, with the rest.
        due = [
            (p, part)
            for p in self.projections
            for part in p.parts
            if (isinstance(part, Appends) and part.rows)
            or (isinstance(part, Rows) and len(part.cache) > part.cached_max)
        ]
        if not due:
            return
        try:
            if self.sink is not None:
                self._stage(due, last_id)
            else:
                with self.engine_w.begin() as conn:
                    for p, part in due:
                        try:
                            part.flush(conn)
                        except Exception as e:
                            raise ProjectionError(p.name, last_id, e) from e
        except BaseException:
            for p in self.projections:
                p.forget()
            raise
        for _p, part in due:
            part.committed()

    def advance(self, position: int) -> None:
        """Rebuild mode: every event up to ``position`` has been applied (those read with
        ``followed_only``: the others change nothing here); ``write_deferred`` writes it."""
        for p in self.projections:
            p.position = max(p.position, position)

    def _stage(self, due: Sequence[tuple[Projection, Part]], last_id: int) -> None:
        sink = self.sink
        assert sink is not None
        page = Page(self.engine.dialect)
        for p, part in due:
            try:
                part.stage(page)
            except Exception as e:
                raise ProjectionError(p.name, last_id, e) from e
        sink.submit(page)

    def _drain_before_read(self, _conn: Connection) -> None:
        if self.sink is not None:
            self.sink.drain()

    def write_deferred(self) -> int:
        """Write what ``process_decoded`` applied in rebuild mode, with the position, in one
        transaction; returns the position (0: nothing was applied)."""
        slot = self.slot
        projections = [p for p in self.projections if p.position > 0]
        sink, self.sink = self.sink, None
        if sink is not None:
            try:
                sink.drain()  # the pages handed over come first
            except BaseException:
                self.deferred = False
                for p in self.projections:
                    p.forget()
                raise
        if not projections:
            self.deferred = False
            return 0
        try:
            with self.engine_w.begin() as conn:
                states = self._states(conn, lock=True)
                for p in projections:
                    state = states[p.name]
                    if self.generation is not None and state[slot.generation] != self.generation:
                        raise RebuildSuperseded(f"another rebuild of {p.name!r} took over")
                    if int(state[slot.position] or 0) != 0:
                        raise RebuildSuperseded(f"the tables of {p.name!r} are not new")
                    try:
                        p.flush(conn)
                        conn.execute(
                            update(projection_state)
                            .where(projection_state.c.name == p.name)
                            .values({slot.position: p.position})
                        )
                    except Exception as e:
                        raise ProjectionError(p.name, p.position, e) from e
                    p.trusted = (state[slot.generation], p.position)
        except BaseException:
            for p in self.projections:
                p.forget()
            raise
        finally:
            self.deferred = False
        for p in projections:
            p.batch_committed()
        return max(p.position for p in projections)

    def _apply(self, projections: list[Projection], events: Sequence[Decoded]) -> None:
        ready = set(projections)
        dispatch = {
            topic: [(p, h) for p, h in pairs if p in ready]
            for topic, pairs in self.dispatch.items()
        }
        if projections and events and max(p.position for p in projections) < events[0][0]:
            # Every event is new to every projection (a rebuild's batches, most live ones):
            # no position checks, and one ``try`` around the batch.
            notification_id, p = 0, projections[0]
            get = dispatch.get
            try:
                for notification_id, topic, domain_event, originator_id in events:
                    if domain_event is None:
                        continue
                    for p, handler in get(topic, ()):  # noqa: B007  (named in the error)
                        handler(notification_id, originator_id, domain_event)
            except Exception as e:
                raise ProjectionError(p.name, notification_id, e) from e
            return
        for notification_id, topic, domain_event, originator_id in events:
            if domain_event is None:
                continue
            for p, handler in dispatch.get(topic, ()):
                if notification_id <= p.position:
                    continue
                try:
                    handler(notification_id, originator_id, domain_event)
                except Exception as e:
                    raise ProjectionError(p.name, notification_id, e) from e

    def _states(self, conn: Connection, *, lock: bool) -> dict[str, dict[str, Any]]:
        # Read on every batch: the statement is compiled once (names are literals, the
        # columns plain integers and text), not built and cache-keyed each time.
        if not lock:  # (through SQLAlchemy: its errors are what readers expect)
            result = conn.exec_driver_sql(self._states_sql[False]).mappings()
            return {r["name"]: dict(r) for r in result}
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self._states_sql[True])
            names = [d[0] for d in cursor.description]
            return {r[0]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}
        finally:
            cursor.close()

    def _compile_state_statements(self) -> None:
        dialect = self.engine.dialect
        query = select(projection_state).where(
            projection_state.c.name.in_(sorted(p.name for p in self.projections))
        )

        def compiled(statement: Any) -> str:
            return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

        self._states_sql = {False: compiled(query), True: compiled(query.with_for_update())}
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        quote = dialect.identifier_preparer.quote
        self._position_sql = (
            f"UPDATE {quote(projection_state.name)} SET {quote(self.slot.position)} = {mark} "
            f"WHERE {quote('name')} = {mark}"
        )

    def _begin(
        self, conn: Connection, states: dict[str, dict[str, Any]], *, after: int
    ) -> list[Projection]:
        slot = self.slot
        ready = []
        for p in self.candidates(states):
            state = states[p.name]
            if self.generation is not None and state[slot.generation] != self.generation:
                raise RebuildSuperseded(f"another rebuild of {p.name!r} took over")
            position = int(state[slot.position] or 0)
            if position < after:
                continue  # this batch starts past its position: its own batch comes next
            if p.trusted != (state[slot.generation], position):
                # Rows and position are committed together: position 0 means no rows.
                p.forget(empty=position == 0)
            p.position = position
            p.conn = conn
            ready.append(p)
        return ready
