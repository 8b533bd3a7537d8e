"""What the read models raise::

    ProjectionError            a handler or a write failed; names the projection and the
      (its ``cause`` may be)   notification id (``position``); ``transient`` if the
                               database was only busy or away
      InvariantBroken          the log breaks a rule the read model relies on (say a
                               negative balance): loud, never skipped
    RebuildSuperseded          another rebuild took over the same projection
    RebuildFailed              a process of the rebuild (a page writer, a worker) failed
    UnknownProjection          no projection of that name

None of them is a ``LedgerError``: they are the read side's own failures, not the
ledger's rules, and the edges report them as such.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.exc import DBAPIError, OperationalError


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


class RebuildFailed(RuntimeError):
    """A process of the rebuild (a page writer, a worker) failed; the message ends with
    what it said last. The rebuild's tables are dropped; the live ones are untouched."""


class UnknownProjection(ValueError):
    """No projection of that name (the message lists the known ones)."""
