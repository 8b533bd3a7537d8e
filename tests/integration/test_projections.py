"""Read models on SQLite and PostgreSQL: they equal a rebuild from scratch, whatever stops
and failures happen on the way (exactly-once), and the runner behaves (retries, wait_for,
rebuild on a version change, LISTEN on PostgreSQL)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, inspect, select
from test_projections_support import (  # type: ignore[import-not-found]
    TEA,
    db_url,
    dump,
    engine,
    new_history,
    positions,
)

from ledger.domain.common import fund_id
from projections import core
from projections.core import (
    FastDecoder,
    ProjectionError,
    Projector,
    stored_id_text,
    stored_instant,
)
from projections.db import make_engine, open_store
from projections.journal import JournalProjection
from projections.queries import fund_figures
from projections.rebuild import PageWriter, Worker, plan, rebuild
from projections.runner import ProjectionRunner, projection_status
from projections.schema import PROJECTIONS, ensure_schema
from projections.tables import LIVE, PUBLIC_DONATION_COLUMNS, sqlite_instant

__all__ = ["db_url", "engine"]  # fixtures, re-exported for pytest


def _leftover_tables(engine: Engine) -> list[str]:
    """Tables of a rebuild (``rm_x__g<generation>``) still in the database."""
    with engine.connect() as conn:
        return [t for t in inspect(conn).get_table_names() if "__g" in t]


def settle(runner: ProjectionRunner, app: Any) -> None:
    assert runner.wait_for(app.recorder.max_notification_id(), timeout_s=30)


def test_live_read_models_equal_a_rebuild_and_the_aggregates(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=11).run(150)
    assert history.done > 100
    runner = ProjectionRunner(app, engine, batch_size=7)
    head = runner.catch_up()
    assert head == app.recorder.max_notification_id()
    live = dump(engine)
    assert len(live["rm_journal"]) > 50

    result = rebuild(app, engine)

    assert result.position == head
    assert dump(engine) == live
    with engine.connect() as conn:
        for slug in history.slugs:
            fund = app.get_fund(slug)
            figures = fund_figures(conn, slug)
            assert figures.unrestricted.received_minor == fund.figures[""]["received"]
            for code, f in figures.purposes.items():
                assert f.received_minor == fund.figures[code]["received"]
                assert f.committed_minor == fund.figures[code]["committed"]
                assert f.disbursed_minor == fund.figures[code]["disbursed"]
                assert f.available_minor == fund.available_minor(code)
            assert figures.totals.on_hand_minor == sum(
                fund.on_hand_minor(code) for code in fund.figures
            )


def test_stopping_and_crashing_at_random_points_projects_each_event_once(
    make_app: Any, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=5)
    rng = random.Random(3)
    ensure_schema(engine)
    crashes = 0
    real_flush = core.Projection.flush

    def flaky_flush(self: core.Projection, conn: Any) -> None:
        # Write this projection's rows, then fail before the commit: nothing may stay.
        nonlocal crashes
        real_flush(self, conn)
        if rng.random() < 0.15:
            crashes += 1
            raise RuntimeError("crash between the rows and the commit")

    monkeypatch.setattr(core.Projection, "flush", flaky_flush)
    for _round in range(12):
        history.run(rng.randrange(5, 25))
        runner = ProjectionRunner(
            app, engine, batch_size=rng.randrange(1, 9), backoff_s_first=0.001, attempts_max=50
        )
        runner.start()
        time.sleep(rng.random() * 0.05)
        runner.stop()  # wherever it happens to be
        assert runner.error is None
    monkeypatch.setattr(core.Projection, "flush", real_flush)
    runner = ProjectionRunner(app, engine)
    head = runner.catch_up()
    assert crashes > 0
    assert set(positions(engine).values()) == {head}
    live = dump(engine)

    rebuild(app, engine)

    assert dump(engine) == live


def test_a_redelivered_batch_changes_nothing(make_app: Any, db_url: str, engine: Engine) -> None:
    app = make_app(db_url)
    new_history(app, seed=2).run(40)
    ensure_schema(engine)
    projector = Projector(app, engine, [cls(LIVE) for cls in PROJECTIONS])
    notifications = app.recorder.select_notifications(1, 1000)
    projector.process(notifications, after=0)
    once = dump(engine)

    projector.process(notifications, after=0)  # the same events again
    for p in projector.projections:
        p.forget()  # and once more with nothing cached
    projector.process(notifications[: len(notifications) // 2], after=0)

    assert dump(engine) == once


def test_the_fast_decoder_gives_what_the_mapper_gives(make_app: Any, sqlite_url: str) -> None:
    app = make_app(sqlite_url)
    history = new_history(app, seed=4).run(80)
    app.erase_donor(donation_id=history.donations[0][1], actor="auditor")
    decoder = FastDecoder(app.mapper)
    notifications = app.recorder.select_notifications(1, 10_000)
    assert decoder.enabled
    for n in notifications:
        fast, slow = decoder(n), app.mapper.to_domain_event(n)
        assert type(fast) is type(slow)
        assert vars(fast) == vars(slow)


def test_reading_the_log_directly_gives_what_the_recorder_gives(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=5).run(80)
    projector = Projector(app, engine, [cls(LIVE) for cls in PROJECTIONS])
    direct = projector.read_decoded(3, 10_000) + projector.read_decoded(0, 3)
    assert len(direct) == app.recorder.max_notification_id()
    expected = projector.decode(app.recorder.select_notifications(1, 10_000))

    def comparable(d: Any) -> tuple[Any, ...]:
        event = d[2]
        return d[0], d[1], d[3], type(event), None if event is None else vars(event)

    direct.sort(key=lambda d: d[0])
    assert [comparable(d) for d in direct] == [comparable(d) for d in expected]
    assert any(d[2] is not None for d in direct)


def test_the_journal_balance_runs_in_log_order_and_ends_at_the_funds_on_hand(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=8).run(120)
    ProjectionRunner(app, engine).catch_up()
    j = LIVE.journal
    kinds: set[str] = set()
    with engine.connect() as conn:
        for slug in history.slugs:
            lines = (
                conn.execute(
                    select(j).where(j.c.fund_id == str(fund_id(slug))).order_by(j.c.notification_id)
                )
                .mappings()
                .all()
            )
            on_hand = available = 0
            for number, line in enumerate(lines, start=1):
                on_hand += line["amount_minor"]
                if line["figure"] in ("received", "released"):
                    available += line["figure_delta_minor"]
                elif line["figure"] in ("refunded", "committed", "expenses"):
                    available -= line["figure_delta_minor"]
                assert line["line_no"] == number
                assert line["balance_minor"] == on_hand >= 0
                assert line["available_minor"] == available >= 0
            fund = app.get_fund(slug)
            assert on_hand == sum(fund.on_hand_minor(code) for code in fund.figures)
            assert available == sum(fund.available_minor(code) for code in fund.figures)
            kinds |= {line["kind"] for line in lines}
    assert {"donation", "refund", "expense", "grant_commitment", "disbursement"} <= kinds


def test_the_public_donation_columns_hold_nothing_of_the_sealed_donor(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=9).run(60)
    ProjectionRunner(app, engine).catch_up()
    d = LIVE.donations
    assert "donor_id" not in PUBLIC_DONATION_COLUMNS
    assert not {c.name for c in d.columns} & {"donor_sealed", "donor_name", "donor_contact"}
    with engine.connect() as conn:
        rows = conn.execute(select(*[d.c[c] for c in PUBLIC_DONATION_COLUMNS])).all()
    text = repr(rows)
    assert rows
    for full_name in ("张三", "王小明", "赵丽华", "John Smith", "138-0000-0000", "v1."):
        assert full_name not in text
    assert "张*" in text or "王*明" in text


def test_erasing_a_donor_shows_in_the_donation_row(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=10).run(20)
    donation_id = next(
        d for _, d in history.donations if app.get_donation(d).donor_sealed is not None
    )
    runner = ProjectionRunner(app, engine)
    runner.catch_up()
    app.erase_donor(donation_id=donation_id, actor="auditor")
    runner.catch_up()
    with engine.connect() as conn:
        row = (
            conn.execute(select(LIVE.donations).where(LIVE.donations.c.donation_id == donation_id))
            .mappings()
            .one()
        )
    assert row["donor_erased"] is True
    assert row["donor_details_kept"] is False


def test_wait_for_returns_once_the_read_models_hold_the_write(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=12)
    with ProjectionRunner(app, engine, poll_interval_s=0.02) as runner:
        settle(runner, app)
        for _ in range(5):
            history.donate()
            position = app.recorder.max_notification_id()
            assert runner.wait_for(position, timeout_s=10)
            assert min(runner.positions().values()) >= position
            with engine.connect() as conn:
                received = fund_figures(conn, TEA).totals.received_minor
                fund = app.get_fund(TEA)
                assert received == fund.totals()["received"]
        assert runner.wait_for(position + 1000, timeout_s=0.2) is False
        assert all(lag == 0 for lag in runner.lag().values())


def test_a_failing_handler_is_retried_then_set_aside_while_the_others_go_on(
    make_app: Any,
    db_url: str,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(db_url)
    new_history(app, seed=13).run(30)
    money = ["ledger.domain.fund:Fund.ExpenseRecorded", "ledger.domain.fund:Fund.DonationCredited"]
    bad = app.recorder.select_notifications(1, 1000, topics=money)[3].id
    real = JournalProjection._handler

    def breaking(self: JournalProjection, *spec: Any) -> Any:
        handle = real(self, *spec)

        def wrapped(notification_id: int, oid: str, e: Any) -> None:
            if notification_id == bad:
                raise ValueError("a bug in the journal")
            handle(notification_id, oid, e)

        return wrapped

    caplog.set_level(logging.ERROR, logger="projections.runner")
    monkeypatch.setattr(JournalProjection, "_handler", breaking)
    runner = ProjectionRunner(app, engine, backoff_s_first=0.001, attempts_max=3)
    with runner:
        head = app.recorder.max_notification_id()
        assert runner.wait_for(head, timeout_s=30)  # all but the journal, once set aside
        deadline = time.monotonic() + 10
        while "journal" not in runner.projector.excluded and time.monotonic() < deadline:
            time.sleep(0.01)
    monkeypatch.undo()

    assert "journal" in runner.projector.excluded
    failure = runner.failures["journal"]
    assert failure.position == bad
    assert failure.attempts == 3
    assert f"at notification {bad}" in caplog.text
    states = {s.name: s for s in projection_status(app, engine, runner.failures)}
    assert states["journal"].position == bad - 1
    assert states["journal"].lag > 0
    assert states["journal"].failure is not None
    assert all(states[n].lag == 0 for n in ("funds", "donations", "grants", "flows"))

    # Fixed and restarted: the journal catches up from where it stopped.
    ProjectionRunner(app, engine).catch_up()
    live = dump(engine)
    rebuild(app, engine)
    assert dump(engine) == live


def test_a_transient_failure_is_retried_until_it_passes(
    make_app: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from projections.db import make_engine

    app = make_app(sqlite_url)
    new_history(app, seed=14).run(10)
    engine = make_engine(sqlite_url)
    failures = {"left": 8}
    real_flush = core.Projection.flush

    def busy(self: core.Projection, conn: Any) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        real_flush(self, conn)

    monkeypatch.setattr(core.Projection, "flush", busy)
    with ProjectionRunner(app, engine, backoff_s_first=0.001, attempts_max=2) as runner:
        assert runner.wait_for(app.recorder.max_notification_id(), timeout_s=30)
        assert not runner.projector.excluded
    engine.dispose()


def test_a_new_projection_version_rebuilds_its_tables_at_start(
    make_app: Any, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(db_url)
    new_history(app, seed=15).run(40)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)
    with engine.connect() as conn:
        generation = {s.name: s.generation for s in projection_status(app, engine)}
    monkeypatch.setattr(JournalProjection, "version", 2)
    assert {s.name for s in projection_status(app, engine) if s.stale} == {"journal"}

    with ProjectionRunner(app, engine) as runner:
        settle(runner, app)

    states = {s.name: s for s in projection_status(app, engine)}
    assert states["journal"].tables_version == 2
    assert states["journal"].generation > generation["journal"]
    assert states["funds"].generation == generation["funds"]
    assert dump(engine) == before
    del conn


def test_a_rebuild_under_live_writes_and_a_live_runner_loses_nothing(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=16).run(60)
    writer = threading.Thread(target=history.run, args=(150,))
    with ProjectionRunner(app, engine, poll_interval_s=0.01) as runner:
        writer.start()
        try:
            for _ in range(2):
                rebuild(app, engine, batch_size=16)
        finally:
            writer.join()
        settle(runner, app)
    live = dump(engine)
    rebuild(app, engine)
    assert dump(engine) == live


@pytest.mark.postgres
def test_postgres_runner_wakes_on_notify_and_one_runner_works_at_a_time(
    make_app: Any, pg_url: str
) -> None:
    from projections.db import make_engine

    app = make_app(pg_url)
    history = new_history(app, seed=17)
    engine = make_engine(pg_url)
    first = ProjectionRunner(app, engine, safety_poll_s=60)
    second = ProjectionRunner(app, engine, safety_poll_s=60)
    with first:
        settle(first, app)
        with second:
            time.sleep(0.3)
            assert first.active
            assert not second.active  # the advisory lock is held by the first
            for _ in range(3):
                history.donate()
                started = time.monotonic()
                # No poll for 60 s: only the NOTIFY can wake the first runner this fast.
                assert first.wait_for(app.recorder.max_notification_id(), timeout_s=5)
                assert time.monotonic() - started < 3
                # The standby runner answers from the tracking table.
                assert second.wait_for(app.recorder.max_notification_id(), timeout_s=5)
    engine.dispose()


def test_projection_error_names_the_projection_and_position() -> None:
    error = ProjectionError("journal", 42, ValueError("boom"))
    assert "journal" in str(error)
    assert "42" in str(error)
    assert not error.transient


def test_a_rebuild_that_fails_midway_leaves_the_live_tables_and_no_leftovers(
    make_app: Any, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(db_url)
    new_history(app, seed=18).run(60)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)
    batches = {"n": 0}
    real = Projector.process_decoded

    def failing(self: Projector, events: Any, *, after: int) -> None:
        batches["n"] += 1
        if batches["n"] == 3:
            raise RuntimeError("the disk is full")
        real(self, events, after=after)

    monkeypatch.setattr(Projector, "process_decoded", failing)
    with pytest.raises(RuntimeError, match="disk is full"):
        rebuild(app, engine, batch_size=10)
    monkeypatch.undo()

    assert dump(engine) == before
    assert _leftover_tables(engine) == []
    assert not any(s.rebuilding for s in projection_status(app, engine))
    result = rebuild(app, engine)
    assert result.position == app.recorder.max_notification_id()
    assert dump(engine) == before


def test_a_rebuild_that_keeps_few_rows_in_memory_equals_the_live_read_models(
    make_app: Any, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebuild writes the rows of a table that outgrows what its projection keeps and
    # reads them back when a later event changes them (a refund of an old donation).
    app = make_app(db_url)
    history = new_history(app, seed=23).run(200)
    app.erase_donor(donation_id=history.donations[0][1], actor="auditor")
    ProjectionRunner(app, engine, batch_size=9).catch_up()
    live = dump(engine)
    read_back = []
    real_rows, real_get = core.Projection.rows, core.Rows.get

    def few(self: core.Projection, table: Any, cached_max: int = 0) -> core.Rows:
        return real_rows(self, table, 2)

    def get(self: core.Rows, conn: Any, key: Any) -> Any:
        if key not in self.cache and not self.complete:
            read_back.append(key)
        return real_get(self, conn, key)

    monkeypatch.setattr(core.Projection, "rows", few)
    monkeypatch.setattr(core.Rows, "get", get)

    rebuild(app, engine, batch_size=11)

    assert read_back
    assert dump(engine) == live


def test_a_rebuild_on_sqlite_decodes_instants_and_ids_to_their_stored_text(
    make_app: Any, sqlite_url: str
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=6).run(60)
    projector = Projector(app, make_engine(sqlite_url), [cls(LIVE) for cls in PROJECTIONS])
    expected = projector.read_decoded(0, 10_000)
    projector.defer_writes()

    rows = projector.read_decoded(0, 10_000)

    assert [d[:2] + d[3:] for d in rows] == [d[:2] + d[3:] for d in expected]
    for (*_, event, oid), (*_, expected_event, _) in zip(rows, expected, strict=True):
        if event is None:
            assert expected_event is None
            continue
        assert type(event) is type(expected_event)
        assert event.timestamp == sqlite_instant(expected_event.timestamp)
        assert event.originator_id == oid == str(expected_event.originator_id)
        others = {k: v for k, v in vars(event).items() if k not in ("timestamp", "originator_id")}
        assert others == {
            k: v for k, v in vars(expected_event).items() if k not in ("timestamp", "originator_id")
        }


@pytest.mark.parametrize(
    "instant",
    [
        datetime(2026, 11, 28, 1, 22, 39, 80725, tzinfo=UTC),
        datetime(2026, 11, 28, 1, 22, 39, tzinfo=UTC),  # no microseconds: not cut
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 11, 28, 9, 22, 39, 80725, tzinfo=timezone(timedelta(hours=8))),
    ],
)
def test_a_stored_instant_is_what_the_writer_makes_of_the_decoded_datetime(
    instant: datetime,
) -> None:
    iso = instant.isoformat()
    assert sqlite_instant(stored_instant(iso)) == sqlite_instant(datetime.fromisoformat(iso))


@pytest.mark.parametrize(
    "stored", ["f9e91de773945da0b783876c328b24c2", "F9E91DE773945DA0B783876C328B24C2"]
)
def test_a_stored_id_as_text_is_the_recorders_conversion_as_text(stored: str) -> None:
    class Recorder:
        datastore = SimpleNamespace(originator_id_type="uuid")

        def convert_originator_id(self, originator_id: str) -> UUID:
            return UUID(originator_id)

    recorder: Any = Recorder()
    assert stored_id_text(recorder, stored) == str(UUID(stored))
    with pytest.raises(ValueError, match="hexadecimal"):
        stored_id_text(recorder, "not-hex-at-all-but-32-characters")


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rebuild-pages"]


def _page_writer_processes() -> list[int]:
    """This process's children that run the page writer (Linux: from /proc)."""
    children: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(pid) for pid in (task / "children").read_text().split()]
    found = []
    for pid in children:
        with contextlib.suppress(OSError):
            if b"page_writer.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def test_a_rebuild_on_sqlite_writes_its_pages_in_a_writer_process_that_stops(
    make_app: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=31).run(150)
    engine = make_engine(sqlite_url)
    ProjectionRunner(app, engine, batch_size=9).catch_up()
    live = dump(engine)
    seen: list[tuple[int, list[int]]] = []
    real_submit = PageWriter.submit

    def submit(self: PageWriter, page: core.Page) -> None:
        seen.append((self.pid, _page_writer_processes()))
        real_submit(self, page)

    monkeypatch.setattr(PageWriter, "submit", submit)

    rebuild(app, engine, batch_size=13)

    assert len(seen) > 3  # many pages, all to one process, a child of this one
    assert {pid for pid, _ in seen} == {seen[0][0]}
    assert all(children == [seen[0][0]] for _, children in seen)
    assert os.getpid() != seen[0][0]
    assert _writer_threads() == []
    assert _page_writer_processes() == []  # it ended (and was waited for)
    assert dump(engine) == live


def _duplicate_a_row(page: core.Page) -> None:
    """Make the page's first plain INSERT write its first row twice: the writer process
    then fails on the table's primary key, as a real write error would."""
    for i, (sql, rows, count) in enumerate(page.statements):
        if "ON CONFLICT" not in sql:
            page.statements[i] = (sql, [*rows, rows[0]], count + 1)
            return
    raise AssertionError("no INSERT in the page")


def test_a_writer_process_failing_midway_fails_the_rebuild_and_the_next_one_succeeds(
    make_app: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=32).run(150)
    engine = make_engine(sqlite_url)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)
    pages = {"n": 0}
    real_finish = core.Page.finish

    def failing(self: core.Page) -> bytes:
        pages["n"] += 1
        if pages["n"] == 3:
            _duplicate_a_row(self)
        return real_finish(self)

    monkeypatch.setattr(core.Page, "finish", failing)
    with pytest.raises(RuntimeError, match=r"page writer failed: .*UNIQUE constraint failed"):
        rebuild(app, engine, batch_size=10)
    monkeypatch.undo()

    assert pages["n"] >= 3
    assert _writer_threads() == []
    assert _page_writer_processes() == []
    assert dump(engine) == before
    assert _leftover_tables(engine) == []
    result = rebuild(app, engine)
    assert result.position == app.recorder.max_notification_id()
    assert dump(engine) == before


def test_a_page_whose_statement_writes_other_than_its_row_count_fails_the_rebuild(
    make_app: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=33).run(80)
    engine = make_engine(sqlite_url)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)
    real_add = core.Page.add

    def short(self: core.Page, writer: Any, chunks: Any, *, update: bool) -> None:
        real_add(self, writer, chunks, update=update)
        if self.statements:
            sql, rows, count = self.statements[-1]
            self.statements[-1] = (sql, rows, count + 1)

    monkeypatch.setattr(core.Page, "add", short)
    with pytest.raises(RuntimeError, match="rows, not"):
        rebuild(app, engine, batch_size=10)
    monkeypatch.undo()

    assert _writer_threads() == []
    assert _page_writer_processes() == []
    assert dump(engine) == before


def test_read_model_connections_zero_only_what_a_write_touches(sqlite_url: str) -> None:
    """``secure_delete=FAST`` for the read models (they hold nothing the log does not hold
    in clear): a rebuild's swap does not rewrite every page of the old tables."""
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 2  # FAST
    engine.dispose()


# -- a rebuild in worker processes ---------------------------------------------------------


def _opener(app: Any) -> Any:
    return functools.partial(open_store, app.settings)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):  # (a process that ended meanwhile has none)
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


def _worker_processes() -> list[int]:
    """This process's descendants that run a rebuild's worker (Linux: from /proc)."""
    found = []
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):
            if b"projections.rebuild_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def _processes_writing(path: str) -> list[int]:
    """Page writers on ``path`` anywhere on the machine (one whose parent died is not a
    descendant of this process any more)."""
    found = []
    for pid in (p.name for p in Path("/proc").iterdir() if p.name.isdigit()):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if any(a.endswith(b"page_writer.py") for a in cmdline) and path.encode() in cmdline:
                found.append(int(pid))
    return found


def test_the_plan_keeps_projections_of_shared_topics_together() -> None:
    by_name = {cls.name: cls for cls in PROJECTIONS}
    names = [[cls.name for cls in group] for group in plan(list(PROJECTIONS), 2)]
    # The fund's events feed three projections: one family, loaded by this process.
    assert names == [["funds", "flows", "journal"], ["donations", "grants"]]
    assert [[c.name for c in g] for g in plan(list(PROJECTIONS), 3)] == [
        ["funds", "flows", "journal"],
        ["donations"],
        ["grants"],
    ]
    assert plan(list(PROJECTIONS), 1) == [list(PROJECTIONS)]
    assert plan(list(PROJECTIONS), 64) == plan(list(PROJECTIONS), 3)
    journal, funds = by_name["journal"], by_name["funds"]
    assert plan([journal, funds], 2) == [[journal, funds]]  # one family, in the order given
    assert plan([by_name["grants"]], 2) == [[by_name["grants"]]]


def test_a_projector_reads_only_the_topics_it_follows_when_asked(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    from projections.donations import DonationsProjection
    from projections.tables import make_tables

    app = make_app(db_url)
    new_history(app, seed=41).run(60)
    head = app.recorder.max_notification_id()
    projector = Projector(app, engine, [DonationsProjection(make_tables("__t"))])
    every = projector.read_decoded(0, 10_000)
    followed = projector.read_decoded(0, 10_000, followed_only=True)
    assert len(every) == head
    assert followed == [e for e in every if e[1] in projector.topics]
    assert 0 < len(followed) < len(every)
    stop = followed[len(followed) // 2][0]
    assert projector.read_decoded(0, 10_000, stop=stop, followed_only=True) == [
        e for e in followed if e[0] <= stop
    ]
    assert projector.read_decoded(0, 3, followed_only=True) == followed[:3]


def test_a_rebuild_in_worker_processes_equals_the_live_read_models(
    make_app: Any, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=42).run(200)
    app.erase_donor(donation_id=history.donations[0][1], actor="auditor")
    head = ProjectionRunner(app, engine, batch_size=9).catch_up()
    live = dump(engine)
    workers: list[tuple[int, list[str], list[int]]] = []
    real_wait = Worker.wait

    def wait(self: Worker, tick: Any) -> int:
        workers.append((self.pid, self.names, _worker_processes()))
        return real_wait(self, tick)

    monkeypatch.setattr(Worker, "wait", wait)
    reports: list[tuple[int, int]] = []

    result = rebuild(
        app,
        engine,
        batch_size=17,
        opener=_opener(app),
        workers=2,
        progress=lambda position, total: reports.append((position, total)),
    )

    assert [(names, pid in running) for pid, names, running in workers] == [
        (["donations", "grants"], True)
    ]
    assert workers[0][0] != os.getpid()
    assert _worker_processes() == []  # it ended
    assert result.position == head
    assert result.events == head  # each event read once, by the process that follows it
    assert result.processes == 2
    assert reports[-1] == (head, head)
    assert [p for p, _ in reports] == sorted(p for p, _ in reports)
    assert dump(engine) == live


def test_a_rebuild_in_workers_under_live_writes_loses_nothing(
    make_app: Any, sqlite_url: str
) -> None:
    # The load stops at the head it saw; the swap catches up with what came since.
    app = make_app(sqlite_url)
    history = new_history(app, seed=43).run(120)
    engine = make_engine(sqlite_url)
    runner = ProjectionRunner(app, engine, batch_size=7).start()
    done = threading.Event()

    def write() -> None:
        while not done.is_set():
            history.run(3)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        rebuild(app, engine, batch_size=11, opener=_opener(app), workers=3)
    finally:
        done.set()
        writer.join(30)
    settle(runner, app)
    runner.stop()
    rebuilt = dump(engine)
    rebuild(app, engine)  # one process, from scratch: the reference
    assert dump(engine) == rebuilt


def _opener_that_fails_at_the_third_batch(settings: Any) -> Any:
    """Runs in the worker: its third batch raises there (as a full disk would)."""
    real = Projector.process_decoded
    batches = {"n": 0}

    def failing(self: Projector, events: Any, *, after: int) -> None:
        batches["n"] += 1
        if batches["n"] == 3:
            raise RuntimeError("the disk is full")
        real(self, events, after=after)

    Projector.process_decoded = failing  # type: ignore[method-assign]
    return open_store(settings)


def _opener_that_says_much(settings: Any) -> Any:
    """Runs in the worker: writes far more to standard error than a pipe holds."""
    for n in range(4_000):
        print(f"line {n} of what a chatty worker says " + "." * 40, file=sys.stderr)
    return open_store(settings)


def test_a_worker_that_writes_much_to_its_standard_error_finishes(
    make_app: Any, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # 4,000 lines, 320 kB: were they not read as they come, the worker would block on a
    # full pipe and the rebuild never end (the alarm fails the test instead).
    app = make_app(sqlite_url)
    new_history(app, seed=46).run(60)
    engine = make_engine(sqlite_url)
    head = ProjectionRunner(app, engine).catch_up()
    live = dump(engine)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the rebuild hung"))
    signal.alarm(120)
    try:
        with caplog.at_level(logging.INFO, logger="projections.rebuild"):
            result = rebuild(
                app,
                engine,
                opener=functools.partial(_opener_that_says_much, app.settings),
                workers=2,
            )
    finally:
        signal.alarm(0)
    assert result.position == head
    assert result.processes == 2
    assert dump(engine) == live
    said = [r.getMessage() for r in caplog.records if "rebuild worker" in r.getMessage()]
    assert len(said) == 4_000
    assert said[-1].endswith("line 3999 of what a chatty worker says " + "." * 40)


def test_a_worker_failing_fails_the_rebuild_and_leaves_the_live_tables(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=44).run(120)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)

    with pytest.raises(
        RuntimeError, match=r"worker for donations, grants failed: RuntimeError: the disk is full"
    ):
        rebuild(
            app,
            engine,
            batch_size=10,
            opener=functools.partial(_opener_that_fails_at_the_third_batch, app.settings),
            workers=2,
        )

    assert _worker_processes() == []
    assert _page_writer_processes() == []
    assert dump(engine) == before
    assert _leftover_tables(engine) == []
    assert not any(s.rebuilding for s in projection_status(app, engine))
    result = rebuild(app, engine, opener=_opener(app), workers=2)
    assert result.position == app.recorder.max_notification_id()
    assert dump(engine) == before


def test_this_process_failing_stops_the_workers_and_leaves_the_live_tables(
    make_app: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=45).run(120)
    engine = make_engine(sqlite_url)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)
    seen: list[list[int]] = []
    real = Projector.process_decoded

    def failing(self: Projector, events: Any, *, after: int) -> None:
        seen.append(_worker_processes())
        if len(seen) == 3:
            raise RuntimeError("out of memory")
        real(self, events, after=after)

    monkeypatch.setattr(Projector, "process_decoded", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        rebuild(app, engine, batch_size=10, opener=_opener(app), workers=2)
    monkeypatch.undo()

    assert len(seen[0]) == 1  # the worker ran meanwhile
    assert _worker_processes() == []  # and was stopped, with its page writer
    assert _processes_writing(sqlite_url.split(":///", 1)[1]) == []
    assert dump(engine) == before
    assert _leftover_tables(engine) == []
