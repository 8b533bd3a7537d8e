"""Read models on SQLite and PostgreSQL: they equal a rebuild from scratch, whatever stops
and failures happen on the way (exactly-once), and the runner behaves (retries, wait_for,
rebuild on a version change, LISTEN on PostgreSQL). Faults come from where they would in
production: a read model whose handler raises (passed in the runner's or the rebuild's list
of projections), a database that refuses a commit (an engine event)."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, ClassVar

import pytest
from eventsourcing.persistence import Notification
from read_models_support import (  # type: ignore[import-not-found]
    TEA,
    FailingAfter,
    break_handlers,
    db_url,
    dump,
    engine,
    new_history,
    positions,
    replaced,
)
from sqlalchemy import Engine, event, inspect, select
from sqlalchemy.exc import OperationalError

from ledger.domain.common import fund_id
from projections.db import make_engine
from projections.engine.projector import Projector
from projections.errors import ProjectionError
from projections.funds import FundsProjection
from projections.journal import JournalProjection
from projections.projection import Projection, Rows
from projections.queries import fund_figures
from projections.rebuild import plan, rebuild
from projections.registry import PROJECTIONS, ensure_schema
from projections.runner import ProjectionRunner
from projections.status import projection_status
from projections.tables import LIVE, PUBLIC_DONATION_COLUMNS, Tables

__all__ = ["db_url", "engine"]  # fixtures, re-exported for pytest


def _leftover_tables(engine: Engine) -> list[str]:
    """Tables of a rebuild (``rm_x__g<generation>``) still in the database."""
    with engine.connect() as conn:
        return [t for t in inspect(conn).get_table_names() if "__g" in t]


def wait_for_head(runner: ProjectionRunner, app: Any) -> None:
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
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=5)
    rng = random.Random(3)
    ensure_schema(engine)
    crashes = 0

    def crash_before_commit(conn: Any) -> None:
        # Every row and position of the batch is written: the commit fails, nothing stays.
        nonlocal crashes
        if rng.random() < 0.15:
            crashes += 1
            raise RuntimeError("crash between the rows and the commit")

    event.listen(engine, "commit", crash_before_commit)
    try:
        for _round in range(12):
            history.run(rng.randrange(5, 25))
            runner = ProjectionRunner(
                app, engine, batch_size=rng.randrange(1, 9), backoff_s_first=0.001
            )
            runner.start()
            time.sleep(rng.random() * 0.05)
            runner.stop()  # wherever it happens to be
            assert runner.error is None
    finally:
        event.remove(engine, "commit", crash_before_commit)
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
    batch = projector.read_decoded(0, 1000)
    projector.process_decoded(batch, after=0)
    once = dump(engine)

    projector.process_decoded(batch, after=0)  # the same events again
    for p in projector.projections:
        p.forget()  # and once more with nothing cached
    projector.process_decoded(batch[: len(batch) // 2], after=0)

    assert dump(engine) == once


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
        wait_for_head(runner, app)
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
    make_app: Any, db_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(db_url)
    new_history(app, seed=13).run(30)
    money = ["ledger.domain.fund:Fund.ExpenseRecorded", "ledger.domain.fund:Fund.DonationCredited"]
    bad = app.recorder.select_notifications(1, 1000, topics=money)[3].id

    class BrokenJournal(JournalProjection):
        """The journal with a bug that shows at one notification."""

        def __init__(self, tables: Tables) -> None:
            super().__init__(tables)
            break_handlers(self, lambda n: ValueError("a bug in the journal") if n == bad else None)

    caplog.set_level(logging.ERROR, logger="projections.runner")
    projections = replaced(PROJECTIONS, BrokenJournal)
    runner = ProjectionRunner(
        app, engine, projections=projections, backoff_s_first=0.001, attempts_max=3
    )
    with runner:
        head = app.recorder.max_notification_id()
        assert runner.wait_for(head, timeout_s=30)  # all but the journal, once set aside
        deadline = time.monotonic() + 10
        while "journal" not in runner.projector.excluded and time.monotonic() < deadline:
            time.sleep(0.01)

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


def test_a_transient_failure_is_retried_until_it_passes(make_app: Any, sqlite_url: str) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=14).run(10)
    engine = make_engine(sqlite_url)

    class BusyFunds(FundsProjection):
        """The funds read model on a database that is busy for its first eight reads."""

        def __init__(self, tables: Tables) -> None:
            super().__init__(tables)
            locked = OperationalError("SELECT", {}, Exception("database is locked"))
            failures = {"left": 8}

            def fail(notification_id: int) -> BaseException | None:
                failures["left"] -= 1
                return locked if failures["left"] >= 0 else None

            break_handlers(self, fail)

    projections = replaced(PROJECTIONS, BusyFunds)
    with ProjectionRunner(
        app, engine, projections=projections, backoff_s_first=0.001, attempts_max=2
    ) as runner:
        assert runner.wait_for(app.recorder.max_notification_id(), timeout_s=30)
        assert not runner.projector.excluded
        assert all(f.transient for f in runner.failures.values())
    engine.dispose()


def test_a_new_projection_version_rebuilds_its_tables_at_start(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=15).run(40)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)
    generation = {s.name: s.generation for s in projection_status(app, engine)}

    class JournalV2(JournalProjection):
        version = 2

    projections = replaced(PROJECTIONS, JournalV2)
    stale = projection_status(app, engine, projections=projections)
    assert {s.name for s in stale if s.stale} == {"journal"}

    with ProjectionRunner(app, engine, projections=projections) as runner:
        wait_for_head(runner, app)

    states = {s.name: s for s in projection_status(app, engine, projections=projections)}
    assert states["journal"].tables_version == 2
    assert states["journal"].generation > generation["journal"]
    assert states["funds"].generation == generation["funds"]
    assert dump(engine) == before


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
        wait_for_head(runner, app)
    live = dump(engine)
    rebuild(app, engine)
    assert dump(engine) == live


@pytest.mark.postgres
def test_postgres_runner_wakes_on_notify_and_one_runner_works_at_a_time(
    make_app: Any, pg_url: str
) -> None:
    app = make_app(pg_url)
    history = new_history(app, seed=17)
    engine = make_engine(pg_url)
    first = ProjectionRunner(app, engine, safety_poll_s=60)
    second = ProjectionRunner(app, engine, safety_poll_s=60)
    with first:
        wait_for_head(first, app)
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
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=18).run(60)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)

    class FundsOnAFullDisk(FundsProjection):
        def __init__(self, tables: Tables) -> None:
            super().__init__(tables)
            break_handlers(self, FailingAfter(25, RuntimeError("the disk is full")))

    with pytest.raises(ProjectionError, match="disk is full"):
        rebuild(app, engine, batch_size=10, projections=replaced(PROJECTIONS, FundsOnAFullDisk))

    assert dump(engine) == before
    assert _leftover_tables(engine) == []
    assert not any(s.rebuilding for s in projection_status(app, engine))
    result = rebuild(app, engine)
    assert result.position == app.recorder.max_notification_id()
    assert dump(engine) == before


def _keeping_few_rows(cls: type[Projection]) -> type[Projection]:
    """``cls``, keeping at most two rows of each table in memory between batches."""

    class KeepingFew(cls):  # type: ignore[valid-type,misc]
        def __init__(self, tables: Tables) -> None:
            super().__init__(tables)
            for part in self.parts:
                if isinstance(part, Rows):
                    part.cached_max = 2

    return KeepingFew


def test_a_rebuild_that_keeps_few_rows_in_memory_equals_the_live_read_models(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    # A rebuild writes the rows of a table that outgrows what its projection keeps and
    # reads them back when a later event changes them (a refund of an old donation).
    app = make_app(db_url)
    history = new_history(app, seed=23).run(200)
    app.erase_donor(donation_id=history.donations[0][1], actor="auditor")
    ProjectionRunner(app, engine, batch_size=9).catch_up()
    live = dump(engine)
    read_back: list[str] = []

    def reads(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "__g" in statement:
            read_back.append(statement)

    event.listen(engine, "before_cursor_execute", reads)
    try:
        rebuild(app, engine, batch_size=11, projections=[_keeping_few_rows(c) for c in PROJECTIONS])
    finally:
        event.remove(engine, "before_cursor_execute", reads)

    assert any("rm_donations__g" in s for s in read_back)
    assert dump(engine) == live


def test_read_model_connections_zero_only_what_a_write_touches(sqlite_url: str) -> None:
    """``secure_delete=FAST`` for the read models (they hold nothing the log does not hold
    in clear): a rebuild's swap does not rewrite every page of the old tables."""
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 2  # FAST
    engine.dispose()


def test_the_plan_keeps_projections_of_shared_topics_together() -> None:
    by_name = {cls.name: cls for cls in PROJECTIONS}
    names = [[cls.name for cls in group] for group in plan(list(PROJECTIONS), 2)]
    # The fund's events feed three projections: one family, loaded by this process.
    # The Merkle log (audit) follows every event: a family of its own.
    assert names == [["funds", "flows", "journal"], ["donations", "grants", "audit"]]
    assert [[c.name for c in g] for g in plan(list(PROJECTIONS), 4)] == [
        ["funds", "flows", "journal"],
        ["donations"],
        ["grants"],
        ["audit"],
    ]
    assert plan(list(PROJECTIONS), 1) == [list(PROJECTIONS)]
    assert plan(list(PROJECTIONS), 64) == plan(list(PROJECTIONS), 4)
    journal, funds = by_name["journal"], by_name["funds"]
    assert plan([journal, funds], 2) == [[journal, funds]]  # one family, in the order given
    assert plan([by_name["grants"]], 2) == [[by_name["grants"]]]


class LogRecorder(Projection):
    """A read model of the log as stored (what a Merkle log needs), kept in memory."""

    name = "log_recorder"
    version = 1
    table_names = ()
    handles: ClassVar[dict[str, str]] = {}
    follows_log = True
    seen: ClassVar[list[Notification]] = []

    def record(self, notification: Notification) -> None:
        type(self).seen.append(notification)


def test_a_projection_that_follows_the_log_gets_every_notification_as_stored(
    make_app: Any, db_url: str, engine: Engine
) -> None:
    app = make_app(db_url)
    new_history(app, seed=19).run(40)
    stored = app.recorder.select_notifications(1, 10_000)
    projections = [*PROJECTIONS, LogRecorder]
    ensure_schema(engine, projections)
    LogRecorder.seen = []

    runner = ProjectionRunner(app, engine, projections=projections, batch_size=7)
    runner.catch_up()

    assert LogRecorder.seen == stored  # id, topic, originator id and version, state bytes
    LogRecorder.seen = []
    rebuild(app, engine, projections=projections, batch_size=11)
    assert LogRecorder.seen == stored
    assert positions(engine)["log_recorder"] == stored[-1].id
