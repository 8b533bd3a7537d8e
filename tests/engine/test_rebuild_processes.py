"""The rebuild's other processes: the page writer on SQLite and the worker processes.
They write what a rebuild in one process writes, stop when the rebuild ends, and a failure
in any of them fails the rebuild, leaving the live tables as they were. Faults come through
the rebuild's own boundaries: a sink wrapped around the page writer, a read model that
fails in the worker's list of projections."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from read_models_support import (  # type: ignore[import-not-found]
    DonationsOnAFullDisk,
    FailingAfter,
    break_handlers,
    db_url,
    dump,
    engine,
    new_history,
    replaced,
)
from sqlalchemy import Engine, inspect

from projections.db import make_engine, open_store
from projections.engine.pages import Page, PageWriter, Sink
from projections.errors import ProjectionError
from projections.funds import FundsProjection
from projections.rebuild import page_writer_for, rebuild
from projections.registry import PROJECTIONS
from projections.runner import ProjectionRunner
from projections.status import projection_status
from projections.tables import Tables

__all__ = ["db_url", "engine"]  # fixtures, re-exported for pytest


def _leftover_tables(engine: Engine) -> list[str]:
    """Tables of a rebuild (``rm_x__g<generation>``) still in the database."""
    with engine.connect() as conn:
        return [t for t in inspect(conn).get_table_names() if "__g" in t]


def wait_for_head(runner: ProjectionRunner, app: Any) -> None:
    assert runner.wait_for(app.recorder.max_notification_id(), timeout_s=30)


class WrappedSink:
    """The page writer, with a hook on each page before it is handed over."""

    def __init__(self, inner: Sink, before: Any) -> None:
        self.inner = inner
        self.before = before
        self.pages = 0

    def submit(self, page: Page) -> None:
        self.pages += 1
        self.before(self, page)
        self.inner.submit(page)

    def drain(self) -> None:
        self.inner.drain()

    def close(self) -> None:
        self.inner.close()


def wrapping(before: Any) -> Any:
    """A ``sinks`` for ``rebuild``: this process's page writer, wrapped."""

    def sinks(engine: Engine) -> WrappedSink | None:
        inner = page_writer_for(engine)
        return None if inner is None else WrappedSink(inner, before)

    return sinks


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
    make_app: Any, sqlite_url: str
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=31).run(150)
    engine = make_engine(sqlite_url)
    ProjectionRunner(app, engine, batch_size=9).catch_up()
    live = dump(engine)
    seen: list[tuple[int, list[int]]] = []

    def record(sink: WrappedSink, page: Page) -> None:
        assert isinstance(sink.inner, PageWriter)
        seen.append((sink.inner.pid, _page_writer_processes()))

    rebuild(app, engine, batch_size=13, sinks=wrapping(record))

    assert len(seen) > 3  # many pages, all to one process, a child of this one
    assert {pid for pid, _ in seen} == {seen[0][0]}
    assert all(children == [seen[0][0]] for _, children in seen)
    assert os.getpid() != seen[0][0]
    assert _writer_threads() == []
    assert _page_writer_processes() == []  # it ended (and was waited for)
    assert dump(engine) == live


def _duplicate_a_row(page: Page) -> None:
    """Make the page's first plain INSERT write its first row twice: the writer process
    then fails on the table's primary key, as a real write error would."""
    for i, (sql, rows, count) in enumerate(page.statements):
        if "ON CONFLICT" not in sql:
            page.statements[i] = (sql, [*rows, rows[0]], count + 1)
            return
    raise AssertionError("no INSERT in the page")


def test_a_writer_process_failing_midway_fails_the_rebuild_and_the_next_one_succeeds(
    make_app: Any, sqlite_url: str
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=32).run(150)
    engine = make_engine(sqlite_url)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)

    def third_page_duplicated(sink: WrappedSink, page: Page) -> None:
        if sink.pages == 3:
            _duplicate_a_row(page)

    with pytest.raises(RuntimeError, match=r"page writer failed: .*UNIQUE constraint failed"):
        rebuild(app, engine, batch_size=10, sinks=wrapping(third_page_duplicated))

    assert _writer_threads() == []
    assert _page_writer_processes() == []
    assert dump(engine) == before
    assert _leftover_tables(engine) == []
    result = rebuild(app, engine)
    assert result.position == app.recorder.max_notification_id()
    assert dump(engine) == before


def test_a_page_whose_statement_writes_other_than_its_row_count_fails_the_rebuild(
    make_app: Any, sqlite_url: str
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=33).run(80)
    engine = make_engine(sqlite_url)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)

    def one_row_short(sink: WrappedSink, page: Page) -> None:
        if page.statements:
            sql, rows, count = page.statements[-1]
            page.statements[-1] = (sql, rows, count + 1)

    with pytest.raises(RuntimeError, match="rows, not"):
        rebuild(app, engine, batch_size=10, sinks=wrapping(one_row_short))

    assert _writer_threads() == []
    assert _page_writer_processes() == []
    assert dump(engine) == before


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
            if b"projections.engine.rebuild_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
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


def test_a_rebuild_in_worker_processes_equals_the_live_read_models(
    make_app: Any, db_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(db_url)
    history = new_history(app, seed=42).run(200)
    app.erase_donor(donation_id=history.donations[0][1], actor="auditor")
    head = ProjectionRunner(app, engine, batch_size=9).catch_up()
    live = dump(engine)
    reports: list[tuple[int, int]] = []
    running: list[list[int]] = []

    def progress(position: int, total: int) -> None:
        reports.append((position, total))
        running.append(_worker_processes())

    with caplog.at_level(logging.INFO, logger="projections.engine.processes"):
        result = rebuild(
            app, engine, batch_size=17, opener=_opener(app), workers=2, progress=progress
        )

    started = [
        (int(m[1]), m[2])
        for r in caplog.records
        if (m := re.fullmatch(r"rebuild worker (\d+) loads (.*)", r.getMessage()))
    ]
    assert [names for _, names in started] == ["donations, grants, audit"]
    pid = started[0][0]
    assert pid != os.getpid()
    assert any(pid in r for r in running)  # it ran while this process loaded
    assert _worker_processes() == []  # it ended
    assert result.position == head
    # Each process reads only the events its family follows: the worker's family holds the
    # Merkle log (audit), which follows the whole log; this process's, the Fund's events only.
    fund_events = sum(
        1
        for n in app.recorder.select_notifications(1, head)
        if n.topic.startswith("ledger.domain.fund:")
    )
    assert head < result.events <= head + fund_events
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
    wait_for_head(runner, app)
    runner.stop()
    rebuilt = dump(engine)
    rebuild(app, engine)  # one process, from scratch: the reference
    assert dump(engine) == rebuilt


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
        with caplog.at_level(logging.INFO, logger="projections.engine.processes"):
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
    messages = [r.getMessage() for r in caplog.records]
    said = [m for m in messages if re.match(r"rebuild worker \d+: ", m)]
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
        RuntimeError,
        match=r"worker for donations, grants, audit failed: .*ProjectionError: projection "
        r"'donations' failed at notification \d+: RuntimeError\('the disk is full'\)",
    ):
        rebuild(
            app,
            engine,
            projections=replaced(PROJECTIONS, DonationsOnAFullDisk),
            batch_size=10,
            opener=_opener(app),
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
    make_app: Any, sqlite_url: str
) -> None:
    app = make_app(sqlite_url)
    new_history(app, seed=45).run(120)
    engine = make_engine(sqlite_url)
    ProjectionRunner(app, engine).catch_up()
    before = dump(engine)
    seen: list[list[int]] = []

    class FundsOutOfMemory(FundsProjection):
        """Loaded by this process; its 25th event runs out of memory."""

        def __init__(self, tables: Tables) -> None:
            super().__init__(tables)
            fail = FailingAfter(25, RuntimeError("out of memory"))

            def failing(notification_id: int) -> BaseException | None:
                error = fail(notification_id)
                if error is not None:
                    seen.append(_worker_processes())
                return error

            break_handlers(self, failing)

    with pytest.raises(ProjectionError, match="out of memory"):
        rebuild(
            app,
            engine,
            projections=replaced(PROJECTIONS, FundsOutOfMemory),
            batch_size=10,
            opener=_opener(app),
            workers=2,
        )

    assert len(seen[0]) == 1  # the worker ran meanwhile
    assert _worker_processes() == []  # and was stopped, with its page writer
    assert _processes_writing(sqlite_url.split(":///", 1)[1]) == []
    assert dump(engine) == before
    assert _leftover_tables(engine) == []
