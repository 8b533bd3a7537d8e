"""The registry of read models, and the life of their tables: created on first use, marked
for a rebuild when a projection's version changes.

``PROJECTIONS`` is the list the runner, the rebuild and the status read by default; each
of them takes another list too (a test's read model, say).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, Table, insert, inspect, select, update

from projections.audit import CHECKPOINT_METADATA, AuditProjection
from projections.donations import DonationsProjection
from projections.engine.transactions import write_engine
from projections.errors import UnknownProjection
from projections.flows import FlowsProjection
from projections.funds import FundsProjection
from projections.grants import GrantsProjection
from projections.journal import JournalProjection
from projections.projection import Projection
from projections.tables import Tables, make_tables
from projections.tracking import STATE_METADATA, lock_schema, projection_state, read_states

PROJECTIONS: tuple[type[Projection[Any]], ...] = (
    FundsProjection,
    DonationsProjection,
    GrantsProjection,
    FlowsProjection,
    JournalProjection,
    AuditProjection,
)
PROJECTION_NAMES = tuple(p.name for p in PROJECTIONS)


def projection_classes(
    names: Iterable[str] | None = None, among: Sequence[type[Projection[Any]]] = PROJECTIONS
) -> list[type[Projection[Any]]]:
    """The projections ``among`` of these ``names`` (all of them: None), in their order."""
    if names is None:
        return list(among)
    known = [p.name for p in among]
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise UnknownProjection(f"no projection {', '.join(unknown)} (known: {', '.join(known)})")
    return [p for p in among if p.name in wanted]


def tables_of(cls: type[Projection[Any]], tables: Tables) -> list[Table]:
    by_name = tables.by_base_name()
    return [by_name[name] for name in cls.table_names]


def ensure_schema(
    engine: Engine, projections: Sequence[type[Projection[Any]]] = PROJECTIONS
) -> None:
    """Create the tracking table and, for a projection seen for the first time, its live
    tables (empty, at position 0). A projection whose live tables went missing is marked
    for a rebuild."""
    with write_engine(engine).begin() as conn:
        lock_schema(conn)
        STATE_METADATA.create_all(conn)
        CHECKPOINT_METADATA.create_all(conn)  # signed checkpoints: kept, never rebuilt
        rows = {r.name: r for r in conn.execute(select(projection_state))}
        live = make_tables()
        existing = set(inspect(conn).get_table_names())
        for cls in projections:
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


def stale_projections(engine: Engine, projections: Sequence[type[Projection[Any]]]) -> list[str]:
    """Those of ``projections`` whose live tables were made by another version of the
    code."""
    with engine.connect() as conn:
        states = read_states(conn)
    return [
        cls.name
        for cls in projections
        if cls.name in states and states[cls.name]["version"] != cls.version
    ]
