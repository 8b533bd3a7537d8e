"""The read models' registry and their tables' life: created on first use, rebuilt when a
projection's version changes.

``rm_projections`` has one row per projection: the ``version`` of the code that made its
live tables, their ``generation`` (how many rebuilds ago), the ``position`` (last
notification id processed), and while a rebuild runs, the same three for the tables being
built (``build_*``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, inspect, select, text, update

from projections.core import Projection
from projections.db import write_engine
from projections.donations import DonationsProjection
from projections.flows import FlowsProjection
from projections.funds import FundsProjection
from projections.grants import GrantsProjection
from projections.journal import JournalProjection
from projections.tables import STATE_METADATA, Tables, make_tables, projection_state

PROJECTIONS: tuple[type[Projection], ...] = (
    FundsProjection,
    DonationsProjection,
    GrantsProjection,
    FlowsProjection,
    JournalProjection,
)
PROJECTION_NAMES = tuple(p.name for p in PROJECTIONS)


class UnknownProjection(ValueError):
    pass


def projection_classes(names: Iterable[str] | None = None) -> list[type[Projection]]:
    if names is None:
        return list(PROJECTIONS)
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in PROJECTION_NAMES]
    if unknown:
        raise UnknownProjection(
            f"no projection {', '.join(unknown)} (known: {', '.join(PROJECTION_NAMES)})"
        )
    return [p for p in PROJECTIONS if p.name in wanted]


def tables_of(cls: type[Projection], tables: Tables) -> list[Table]:
    by_name = tables.by_base_name()
    return [by_name[name] for name in cls.table_names]


def lock_schema(conn: Connection) -> None:
    """Serialise schema changes between processes (SQLite: the write lock already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('ledger-read-models'))"))


def ensure_schema(engine: Engine) -> None:
    """Create the tracking table and, for a projection seen for the first time, its live
    tables (empty, at position 0). A projection whose live tables went missing is marked
    for a rebuild."""
    with write_engine(engine).begin() as conn:
        lock_schema(conn)
        STATE_METADATA.create_all(conn)
        rows = {r.name: r for r in conn.execute(select(projection_state))}
        live = make_tables()
        existing = set(inspect(conn).get_table_names())
        for cls in PROJECTIONS:
            tables = tables_of(cls, live)
            if cls.name not in rows:
                live.metadata.create_all(conn, tables=tables)
                conn.execute(
                    insert(projection_state).values(
                        name=cls.name, version=cls.version, generation=0, position=0
                    )
                )
            elif any(t.name not in existing for t in tables):
                conn.execute(
                    update(projection_state)
                    .where(projection_state.c.name == cls.name)
                    .values(version=0)
                )


def read_states(conn: Connection) -> dict[str, dict[str, Any]]:
    return {r["name"]: dict(r) for r in conn.execute(select(projection_state)).mappings()}


def stale_projections(engine: Engine, names: Sequence[str] | None = None) -> list[str]:
    """Projections whose live tables were made by another version of the code."""
    with engine.connect() as conn:
        states = read_states(conn)
    return [
        cls.name
        for cls in projection_classes(names)
        if cls.name in states and states[cls.name]["version"] != cls.version
    ]
