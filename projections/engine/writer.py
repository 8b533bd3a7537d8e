"""The driver-level SQL writer: a projection's rows written with the driver's ``executemany``.

SQLAlchemy's per-row parameter handling costs more than the database's work on a rebuild,
so each table's INSERT and UPDATE-by-key are compiled once per dialect and run on the
driver's own cursor, in the connection's transaction. Values still go through each column
type's own bind processing (instants, JSON), so the rows are what Core would write; the
encoding (an instant as SQLite's fixed-width text, say) is applied to the parameters, never
to the rows the projection keeps: handlers see the same values whatever the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Boolean, Connection, Dialect, Table

from projections.columns import IsoDate, UtcDateTime, sqlite_instant
from projections.projection import Appends, Part, Projection, Row, Rows

WRITE_CHUNK_ROWS = 20_000  # rows per executemany

Convert = list[tuple[int, Callable[[Any], Any]]]  # (position in the parameters, converter)


class TableWriter:
    """INSERT, UPDATE-by-key and (a rebuild's rows read back and changed) upsert of one
    table, for one dialect, with the parameters made from rows (dicts) or from tuples of
    every column in the table's order."""

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
        # All columns, in the table's order, updating the row with the same key.
        assignments = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in self.value_names)
        self.upsert_sql = (
            f"{self.insert_sql} ON CONFLICT ({', '.join(quote(n) for n in self.key_names)}) "
            + (f"DO UPDATE SET {assignments}" if assignments else "DO NOTHING")
        )
        # Both drivers take ``bool`` and ISO dates (text or ``date``) as they are, and
        # PostgreSQL's takes aware datetimes; SQLite's instants and JSON need converting.
        converters: dict[str, Callable[[Any], Any]] = {}
        for c in columns:
            if isinstance(c.type, IsoDate | Boolean):
                continue
            if isinstance(c.type, UtcDateTime):
                if dialect.name == "sqlite":
                    converters[c.name] = sqlite_instant
                continue
            process = c.type._cached_bind_processor(dialect)
            if process is not None:
                converters[c.name] = process
        insert_order = self.names
        update_order = self.value_names + self.key_names
        self._insert_get = itemgetter(*insert_order)
        self._update_get = itemgetter(*update_order)
        self._insert_convert = _positions(insert_order, converters)
        self._update_convert = _positions(update_order, converters)

    def insert(self, conn: Connection, rows: Iterable[Row]) -> None:
        self._write(conn, self.insert_sql, rows, self._insert_get, self._insert_convert)

    def update(self, conn: Connection, rows: Iterable[Row]) -> None:
        self._write(conn, self.update_sql, rows, self._update_get, self._update_convert)

    def insert_tuples(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows given as tuples of all columns, in the table's order."""
        for chunk in self.tuple_chunks(rows):
            conn.exec_driver_sql(self.insert_sql, chunk)

    def tuple_chunks(self, rows: list[tuple[Any, ...]]) -> Iterator[list[Any]]:
        """The insert parameters of rows given as tuples, in chunks."""
        convert = self._insert_convert
        for start in range(0, len(rows), WRITE_CHUNK_ROWS):
            chunk: list[Any] = rows[start : start + WRITE_CHUNK_ROWS]
            yield _converted_all(chunk, convert) if convert else chunk

    def row_chunks(self, rows: list[Row]) -> Iterator[list[Any]]:
        """The insert parameters (all columns, the table's order) of rows given as dicts,
        in chunks."""
        for start in range(0, len(rows), WRITE_CHUNK_ROWS):
            yield _params(
                rows[start : start + WRITE_CHUNK_ROWS], self._insert_get, self._insert_convert
            )

    def _write(
        self,
        conn: Connection,
        sql: str,
        rows: Iterable[Row],
        get: Callable[[Row], Any],
        convert: Convert,
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
                    sql, _params(rows[start : start + WRITE_CHUNK_ROWS], get, convert)
                )
        finally:
            cursor.close()


def _positions(order: Sequence[str], converters: dict[str, Callable[[Any], Any]]) -> Convert:
    return [(i, f) for i, n in enumerate(order) if (f := converters.get(n)) is not None]


def _params(rows: list[Row], get: Callable[[Row], Any], convert: Convert) -> list[Any]:
    if not convert:
        return list(map(get, rows))
    return _converted_all(list(map(get, rows)), convert)


def _converted_all(params: list[tuple[Any, ...]], convert: Convert) -> list[Any]:
    """``params`` with the values at the positions of ``convert`` converted (new tuples:
    the rows the projection keeps are left as they are)."""
    if len(convert) == 1:  # (the usual case, an instant on SQLite: in one comprehension)
        ((i, f),) = convert
        return [(*t[:i], f(t[i]), *t[i + 1 :]) for t in params]
    return [_converted(t, convert) for t in params]


def _converted(values: Sequence[Any], convert: Convert) -> tuple[Any, ...]:
    out = list(values)
    for i, f in convert:
        out[i] = f(out[i])
    return tuple(out)


_WRITERS: WeakKeyDictionary[Table, dict[str, TableWriter]] = WeakKeyDictionary()


def writer_for(table: Table, dialect: Dialect) -> TableWriter:
    """The table's writer for ``dialect``, compiled once."""
    by_dialect = _WRITERS.get(table)
    if by_dialect is None:
        by_dialect = _WRITERS[table] = {}
    writer = by_dialect.get(dialect.name)
    if writer is None:
        writer = by_dialect[dialect.name] = TableWriter(table, dialect)
    return writer


def write_part(conn: Connection, part: Part) -> None:
    """Write what a batch changed in one table: inserts, then full-row updates by key."""
    writer = writer_for(part.table, conn.dialect)
    if isinstance(part, Appends):
        writer.insert_tuples(conn, part.rows)
    elif isinstance(part, Rows):
        writer.insert(conn, part.new.values())
        writer.update(conn, part.dirty.values())
    else:
        raise TypeError(f"no writer for {type(part).__name__}")


def write_projection(conn: Connection, projection: Projection[Any]) -> None:
    """Write what a batch changed in every table of ``projection``."""
    for part in projection.parts:
        write_part(conn, part)
