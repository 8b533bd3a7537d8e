"""What every read model extends: a ``Projection`` (some tables, and what each event topic
does to them) and the rows it keeps (``Rows``, ``Appends``).

A read model reads like this::

    class GrantsProjection(Projection[Tables]):
        name = "grants"
        version = 1                      # bump it when the tables or handlers change
        table_names = ("rm_grants", ...)
        handles = {GRANT_PROPOSED: "proposed", ...}

        def __init__(self, tables):
            super().__init__(tables)
            self.grants = self.rows(tables.grants)

        def proposed(self, notification_id, oid, e):
            self.grants.add(oid, {"grant_id": oid, "title": e.title, ...})

A handler gets the event's notification id, its originator id as text and the domain event
the application's mapper makes of it: ``e.timestamp`` an aware ``datetime``,
``e.originator_id`` the recorder's id, every other attribute as the event stored it. That
holds live and in a rebuild, on SQLite and on PostgreSQL: how rows are encoded for a
database is the writer's business (``projections.engine``). A handler changes rows only
through its ``Rows`` and ``Appends`` and may read with ``self.conn`` (the batch's
connection); it raises ``InvariantBroken`` where the log breaks a rule the read model
relies on.

A projection that must see the log as stored (a Merkle log hashes each event's bytes) sets
``follows_log``: its ``record`` is then called with every notification of the log, in
order, as the recorder holds it (id, topic, originator id and version, ``state`` bytes);
the others never pay for it.

Tracking: which notification a projection has reached (``position``) is kept by the
projector in ``rm_projections`` (``projections.tracking``), written in the transaction
that writes the rows; ``trusted``, ``complete`` and the caches let it skip reading back
what this process wrote itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, ClassVar, Generic, TypeVar

from eventsourcing.persistence import Notification
from sqlalchemy import Connection, Index, String, Table, and_, bindparam, select, type_coerce

from projections.columns import IsoDate
from projections.errors import InvariantBroken

ROWS_CACHED_MAX = 50_000  # per table, between batches

Key = Any
Row = dict[str, Any]
Handler = Callable[[int, str, Any], None]  # (notification id, originator id, event)
# The set of tables a projection is made with (``projections.tables.Tables``: the live
# ones or a rebuild's); a parameter, so that this contract knows nothing of the ledger.
TablesT = TypeVar("TablesT")


class Part:
    """What a projection keeps of one of its tables during a batch."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def committed(self) -> None:
        """The batch is written: keep what is worth keeping for the next."""
        raise NotImplementedError

    def reset(self, *, empty: bool) -> None:
        """Drop everything (``empty``: the table is known to be empty)."""
        raise NotImplementedError


class Rows(Part):
    """The rows of one table that a projection touches, keyed by primary key.

    ``get`` serves from memory or loads the row; ``add`` and ``changed`` mark what the
    batch writes (``new``: inserts; ``dirty``: full-row updates by key). Between batches at
    most ``cached_max`` rows are kept (oldest first out). While ``complete`` (the table
    was empty when the cache started and nothing was evicted since) a key not in memory is
    not in the table. A loaded row holds what a handler would have put in it: business
    dates as ISO text, instants as aware datetimes.
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
        self._dates = [c.name for c in table.c if isinstance(c.type, IsoDate)]
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
        for name in self._dates:  # (PostgreSQL gives a ``date`` for the text)
            value = row[name]
            if value is not None and not isinstance(value, str):
                row[name] = value.isoformat()
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

    def committed(self) -> None:
        self.rows = []

    def reset(self, *, empty: bool) -> None:
        self.rows = []


class Projection(Generic[TablesT]):
    """A read model: some tables, and what each event topic does to them.

    Subclasses set ``name``, ``version`` (bump it when the tables or the handlers change:
    the projection is then rebuilt), ``table_names`` (base names in ``Tables``) and map
    topics to handler method names in ``handles`` (or add to ``self.handlers`` in
    ``__init__``). See the module's docstring for what a handler gets.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    table_names: ClassVar[tuple[str, ...]]
    handles: ClassVar[dict[str, str]]
    follows_log: ClassVar[bool] = False  # ``record`` every notification as stored

    def __init__(self, tables: TablesT) -> None:
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

    def record(self, notification: Notification) -> None:
        """With ``follows_log``: one notification of the log, as the recorder holds it."""
        raise NotImplementedError

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
        """Make the indexes a rebuild left for later, before a lookup that needs them."""
        for index in self.deferred_indexes:
            index.create(self.conn, checkfirst=True)

    def after_commit(self) -> None:
        """Hook: trim private caches."""

    def after_reset(self) -> None:
        """Hook: drop private caches."""
