"""Which transactions take the write lock first.

``write_engine(engine)`` is the same engine with an execution option that
``projections.db``'s SQLite listener reads: its transactions begin ``IMMEDIATE``, after the
file's in-process write lock (a deferred transaction that reads, then writes, fails at once
if another connection committed in between). PostgreSQL ignores the option.
"""

from __future__ import annotations

from sqlalchemy import Engine

WRITE_OPTION = "ledger_projection_write"


def write_engine(engine: Engine) -> Engine:
    """The same engine, with transactions that take the write lock first on SQLite."""
    return engine.execution_options(**{WRITE_OPTION: True})
