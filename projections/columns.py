"""The column types of the read models' tables, and how each stores its values per database.

- ``IsoDate``: a business date; ``DATE`` on PostgreSQL, ``YYYY-MM-DD`` text on SQLite.
- ``UtcDateTime``: an instant; ``timestamptz`` on PostgreSQL, fixed-width UTC text on
  SQLite (``sqlite_instant``).
- ``money(name)``: ``BigInteger`` minor units, 0 by default.

Index and key names carry their table's name (``NAMING_CONVENTION``), so every generation
of a rebuild's tables has names of its own. Nothing here knows the ledger.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Date, DateTime, Dialect, LargeBinary, String
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}
_INSTANT_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


class IsoDate(TypeDecorator[date]):
    """A business date: ``DATE`` on PostgreSQL, ``YYYY-MM-DD`` text on SQLite (which sorts
    and compares like a date). Accepts ``date`` or ISO text; returns ``date``."""

    impl = Date
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(10))
        return dialect.type_descriptor(Date())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return value if isinstance(value, str) else value.isoformat()
        return date.fromisoformat(value) if isinstance(value, str) else value

    def process_result_value(self, value: Any, dialect: Dialect) -> date | None:
        if value is None or isinstance(value, date):
            return value
        return date.fromisoformat(value)


class UtcDateTime(TypeDecorator[datetime]):
    """An instant: ``timestamptz`` on PostgreSQL, fixed-width UTC ISO text on SQLite (which
    sorts and compares like the instant). Accepts aware datetimes; returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return sqlite_instant(value)
        if value is not None and value.tzinfo is None:
            raise ValueError(f"an instant must be timezone-aware, not {value!r}")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        instant: datetime = value
        return instant.astimezone(UTC) if instant.tzinfo else instant.replace(tzinfo=UTC)


def sqlite_instant(value: Any) -> Any:
    """An aware datetime as SQLite keeps it: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff`` (fixed
    width, so text order is time order). Text (already stored form) and None pass."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is UTC:
        # The usual case (every event's timestamp), made quick: the fields formatted
        # directly, not ``isoformat``, which asks the zone for its offset (slower: see
        # docs/benchmarks.md).
        return _INSTANT_TEXT % (
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        )
    if value.tzinfo is None:
        raise ValueError(f"an instant must be timezone-aware, not {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def money(name: str, **kwargs: Any) -> Column[int]:
    return Column(name, BigInteger, nullable=False, default=0, **kwargs)


class Hash(TypeDecorator[bytes]):
    """A hash's bytes (BLOB on SQLite, BYTEA on PostgreSQL), bound as plain ``bytes``: both
    drivers take them so, and a rebuild's pages (pickled) hold no driver wrapper."""

    impl = LargeBinary
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes(value)
