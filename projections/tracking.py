"""The tracking table, ``rm_projections``: where each projection is in the event log.

One row per projection: the ``version`` of the code that made its live tables, their
``generation`` (how many rebuilds ago), the ``position`` (the last notification id
processed), and while a rebuild runs, the same three for the tables being built
(``build_*``). A projection's rows and its position are written in one transaction, so
position 0 means no rows. The table is never rebuilt.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    select,
    text,
)

from projections.columns import NAMING_CONVENTION

NAME_LEN_MAX = 32

STATE_METADATA = MetaData(naming_convention=NAMING_CONVENTION)
projection_state = Table(
    "rm_projections",
    STATE_METADATA,
    Column("name", String(NAME_LEN_MAX), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),  # last notification id processed
    Column("build_generation", Integer),  # a rebuild in progress
    Column("build_version", Integer),
    Column("build_position", BigInteger),
)


def read_states(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every tracking row, by projection name."""
    return {r["name"]: dict(r) for r in conn.execute(select(projection_state)).mappings()}


def lock_schema(conn: Connection) -> None:
    """Serialise changes of the read models' tables between processes (SQLite: the write
    lock already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('ledger-read-models'))"))
