"""The driver-level writer (``projections.engine.writer``): the rows it writes are those
SQLAlchemy Core writes, and it encodes for the database without changing the rows the
projection keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, select

from projections.columns import sqlite_instant
from projections.db import make_engine
from projections.engine.writer import TableWriter, writer_for
from projections.tables import make_tables


@pytest.mark.parametrize(
    "instant",
    [
        datetime(2026, 11, 28, 1, 22, 39, 80725, tzinfo=UTC),
        datetime(2026, 11, 28, 1, 22, 39, tzinfo=UTC),  # no microseconds: still fixed width
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 11, 28, 9, 22, 39, 80725, tzinfo=timezone(timedelta(hours=8))),
    ],
)
def test_an_instant_is_stored_on_sqlite_as_fixed_width_utc_text(instant: datetime) -> None:
    utc = instant.astimezone(UTC).replace(tzinfo=None)
    assert sqlite_instant(instant) == utc.isoformat(" ", "microseconds")
    assert len(sqlite_instant(instant)) == 26


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sqlite_instant(datetime(2026, 11, 28, 1, 22, 39))


def _engine(url: str) -> Engine:
    engine = make_engine(url)
    return engine


def test_the_writer_writes_what_core_writes_and_leaves_the_rows_as_they_were(
    sqlite_url: str,
) -> None:
    engine = _engine(sqlite_url)
    tables = make_tables("__w")
    table = tables.donation_refunds
    tables.metadata.create_all(engine, tables=[table])
    at = datetime(2026, 11, 28, 1, 22, 39, tzinfo=UTC)
    row: dict[str, Any] = {
        "refund_id": "r1",
        "donation_id": "d1",
        "fund_id": "f1",
        "amount_minor": 100,
        "refunded_on": "2026-11-27",
        "reason": "捐赠人要求退款",
        "recorded_at": at,
        "recorded_by": "treasurer",
    }
    core_row = {**row, "refund_id": "r2"}
    with engine.begin() as conn:
        writer = writer_for(table, conn.dialect)
        assert isinstance(writer, TableWriter)
        assert writer_for(table, conn.dialect) is writer  # compiled once
        writer.insert(conn, [row])
        conn.execute(table.insert(), [core_row])
    with engine.connect() as conn:
        written = conn.execute(select(table).order_by(table.c.refund_id)).mappings().all()
        raw = conn.exec_driver_sql(f"SELECT recorded_at FROM {table.name}").scalars().all()
    assert row["recorded_at"] is at  # the writer encoded the parameters, not the row
    assert {**written[0], "refund_id": "r2"} == dict(written[1])
    assert raw == ["2026-11-28 01:22:39.000000"] * 2
    engine.dispose()
