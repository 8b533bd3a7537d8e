"""Rebuild read models from zero: into new tables, then swap.

1. Claim a new generation ``g`` for the projections (``build_*`` in ``rm_projections``) and
   create empty tables ``rm_x__g<g>``.
2. Replay the whole log, read in batches, into memory (the rows of the new tables kept in
   plain dicts: no lookups, no updates), then write what is kept (inserts only) with the
   build position, in one transaction, and create the secondary indexes. Rows only ever
   inserted (journal lines, refunds, approvals) are written batch by batch, while fresh in
   memory, and so are the rows of a table that outgrows what its projection keeps (the
   oldest then leave memory; a later change reads one back and updates it): memory stays
   bounded. The position is written only at the end. On SQLite the log is read from the
   events table and decoded for the read models (``Projector.read_decoded``), and those
   pages are written and committed by a page writer process (``PageWriter``) while this
   thread applies the next batch. A crash leaves only tables the next rebuild drops; the
   live tables keep serving readers and the live runner meanwhile.
3. Swap, in one transaction: process what the log gained since, drop the live tables,
   rename the new ones over them, and move the build's position, version and generation
   to the live row. A runner elsewhere sees the new generation and drops its cache.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import Connection, Engine, inspect, select, update
from sqlalchemy.schema import CreateTable

from projections.core import (
    BUILD_SLOT,
    Decoded,
    Page,
    Projection,
    Projector,
    RebuildSuperseded,
)
from projections.db import (
    SQLITE_BUSY_TIMEOUT_S,
    SQLITE_CACHE_KIB,
    SQLITE_SECURE_DELETE,
    store_of,
    write_engine,
)
from projections.page_writer import HEADER
from projections.schema import ensure_schema, lock_schema, projection_classes, tables_of
from projections.tables import make_tables, projection_state

log = logging.getLogger(__name__)

REBUILD_BATCH_EVENTS = 50_000
PAGES_QUEUED_MAX = 2  # pages handed to the page writer and not yet sent to it
WRITER_WAIT_S = 0.5  # how often a wait for the writer checks that it still runs
WRITER_JOIN_TIMEOUT_S = 60.0
_STOP = (0, b"")  # the page writer's thread ends when it takes this
Progress = Callable[[int, int], None]  # (position, head)


@dataclass(frozen=True, slots=True)
class RebuildResult:
    names: tuple[str, ...]
    generation: int
    position: int
    events: int
    elapsed_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


def rebuild(
    app: Application[Any],
    engine: Engine,
    names: Iterable[str] | None = None,
    *,
    batch_size: int = REBUILD_BATCH_EVENTS,
    progress: Progress | None = None,
) -> RebuildResult:
    """Rebuild the named projections (all by default) from the whole event log."""
    with _cyclic_gc_paused():
        return _rebuild(app, engine, names, batch_size=batch_size, progress=progress)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """A rebuild makes millions of short-lived objects and keeps large caches: the cyclic
    garbage collector's passes over them cost a third of the time. It makes no reference
    cycles worth collecting (reference counting frees what it drops), so the collector
    pauses while it runs, process-wide, and runs once after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            gc.collect(1)


def _rebuild(
    app: Application[Any],
    engine: Engine,
    names: Iterable[str] | None,
    *,
    batch_size: int,
    progress: Progress | None,
) -> RebuildResult:
    classes = projection_classes(names)
    started = time.perf_counter()
    ensure_schema(engine)
    engine_w = write_engine(engine)
    generation = _claim(engine_w, [c.name for c in classes])
    try:
        return _build(app, engine, classes, generation, batch_size, progress, started)
    except BaseException:
        _abandon(engine_w, [c.name for c in classes], generation)
        raise


def _abandon(engine_w: Engine, names: list[str], generation: int) -> None:
    """After a failed rebuild: drop its tables and its claim (best effort; the live tables
    were never touched)."""
    try:
        with engine_w.begin() as conn:
            lock_schema(conn)
            _drop_leftovers(conn, names, generation)
            conn.execute(
                update(projection_state)
                .where(
                    projection_state.c.name.in_(names),
                    projection_state.c.build_generation == generation,
                )
                .values(build_generation=None, build_version=None, build_position=None)
            )
    except Exception:
        log.exception("cleaning up after a failed rebuild failed; the next rebuild will")


class PageWriter:
    """The page writer of a rebuild on SQLite: a process of its own
    (``projections/page_writer.py``, standard library only) that owns the rebuild's write
    transactions while the log is replayed. Each page (a ``Page``: statements and rows,
    pickled) goes down its standard input and is written with ``executemany`` and committed
    there, one transaction per page, on the second core, while this process decodes and
    applies the next batch. (A thread would not overlap: binding rows takes the GIL back
    for every row; staging them here instead cost as much as writing them.)

    A thread here (``rebuild-pages``) sends the pages and reads the writer's
    acknowledgements, one page at a time; at most ``PAGES_QUEUED_MAX`` more wait here
    (memory stays bounded; the main thread waits for room). A failure of the process (its
    last line of standard error) or of the pipe stops the thread; the main thread's next
    ``submit`` or ``drain`` raises it. ``close`` stops both and waits for them; after a
    failure it kills the process (its open transaction is rolled back)."""

    def __init__(self, path: str) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                str(Path(__file__).with_name("page_writer.py")),
                path,
                str(SQLITE_BUSY_TIMEOUT_S * 1000),
                str(SQLITE_CACHE_KIB),
                SQLITE_SECURE_DELETE,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._pages: queue.Queue[tuple[int, bytes]] = queue.Queue(PAGES_QUEUED_MAX)
        self._done = threading.Condition()
        self._submitted = 0
        self._written = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rebuild-pages", daemon=True)
        self._thread.start()

    @classmethod
    def for_engine(cls, engine: Engine) -> PageWriter | None:
        """A writer for an engine of ``make_engine`` on SQLite; None for anything else."""
        store = store_of(engine)
        if engine.dialect.name != "sqlite" or store is None or store.kind != "sqlite":
            return None
        return cls(store.path)

    @property
    def pid(self) -> int:
        return self._process.pid

    def submit(self, page: Page) -> None:
        item = (self._submitted + 1, page.finish())
        while True:
            self._check()
            try:
                self._pages.put(item, timeout=WRITER_WAIT_S)
                break
            except queue.Full:
                continue
        self._submitted += 1

    def drain(self) -> None:
        with self._done:
            while self._written < self._submitted:
                self._check()
                self._done.wait(WRITER_WAIT_S)
        self._check()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive():
            raise RuntimeError("the rebuild's page writer stopped")

    def close(self) -> None:
        """Stop the writer (pages not yet written are dropped) and wait for it; after a
        failure, or if it does not stop in time, kill it."""
        self._stop.set()
        process = self._process
        if self._error is not None or self._written < self._submitted:
            process.kill()
        with contextlib.suppress(queue.Full):
            self._pages.put_nowait(_STOP)  # wakes the thread at once
        self._thread.join(WRITER_JOIN_TIMEOUT_S)
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]  # the end: the writer exits
        try:
            process.wait(WRITER_JOIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("the rebuild's page writer did not stop; killing it")
            process.kill()
            process.wait(WRITER_JOIN_TIMEOUT_S)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        if self._thread.is_alive():
            log.error("the rebuild's page thread did not stop")

    def _run(self) -> None:
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            # Until ``close`` hands over ``_STOP`` (or, where the queue was full, kills the
            # process: the next write or read here then fails).
            while (item := self._pages.get()) is not _STOP:
                number, data = item
                process.stdin.write(HEADER.pack(len(data)))
                process.stdin.write(data)
                process.stdin.flush()
                del item, data
                ack = process.stdout.read(HEADER.size)
                if len(ack) < HEADER.size or HEADER.unpack(ack)[0] != number:
                    raise self._failure()
                with self._done:
                    self._written = number
                    self._done.notify_all()
        except BaseException as e:
            error = e if self._stop.is_set() or not isinstance(e, OSError) else self._failure()
            self._fail(error)

    def _failure(self) -> RuntimeError:
        """What the writer process said before it ended (the last line of its error)."""
        process = self._process
        try:
            process.wait(WRITER_JOIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(WRITER_JOIN_TIMEOUT_S)
        said = process.stderr.read().decode(errors="replace") if process.stderr else ""
        lines = [line for line in said.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {process.returncode}"
        return RuntimeError(f"the rebuild's page writer failed: {reason}")

    def _fail(self, error: BaseException) -> None:
        with self._done:
            self._error = error
            self._done.notify_all()


def _build(
    app: Application[Any],
    engine: Engine,
    classes: list[type[Projection]],
    generation: int,
    batch_size: int,
    progress: Progress | None,
    started: float,
) -> RebuildResult:
    engine_w = write_engine(engine)
    shadow = make_tables(f"__g{generation}")
    projections = [cls(shadow) for cls in classes]
    projector = Projector(app, engine, projections, slot=BUILD_SLOT, generation=generation)
    writer = PageWriter.for_engine(engine)
    try:
        with engine_w.begin() as conn:
            # Keys and unique constraints now. Other indexes: with a page writer, now too
            # (it keeps them up to date off this thread: 29 s instead of 33 s at a million
            # events, where building them at the end took 3 s here); else once the rows
            # are in (faster than keeping them up to date).
            for p in projections:
                for table in tables_of(type(p), shadow):
                    conn.execute(CreateTable(table))
                    if writer is not None:
                        for index in table.indexes:
                            index.create(conn)
                    else:
                        p.deferred_indexes.extend(table.indexes)
        projector.defer_writes(writer)
        head = app.recorder.max_notification_id() or 0
        events = 0
        position = 0
        if progress:
            progress(0, head)
        for after, batch in _read(projector, batch_size):
            projector.process_decoded(batch, after=after)
            events += len(batch)
            position = batch[-1][0]
            if position >= head:
                head = app.recorder.max_notification_id() or position
            if progress:
                progress(position, max(head, position))
        projector.write_deferred()
    finally:
        if writer is not None:
            writer.close()
    with engine_w.begin() as conn:
        for p in projections:
            for index in p.deferred_indexes:
                index.create(conn, checkfirst=True)
            p.deferred_indexes = []
    position, more = _swap(engine_w, projector, generation, batch_size)
    events += more
    if progress:
        progress(position, max(head, position))
    elapsed = time.perf_counter() - started
    log.info(
        "rebuilt %s (generation %d) to notification %d: %d events in %.1f s",
        ", ".join(c.name for c in classes),
        generation,
        position,
        events,
        elapsed,
    )
    return RebuildResult(
        names=tuple(c.name for c in classes),
        generation=generation,
        position=position,
        events=events,
        elapsed_s=elapsed,
    )


def _read(projector: Projector, batch_size: int) -> Iterator[tuple[int, list[Decoded]]]:
    """The log from the start in decoded batches ``(after, events)``. In this thread: a
    reader thread one batch ahead cost more CPU (contention for the GIL) than it overlapped."""
    after = 0
    while events := projector.read_decoded(after, batch_size):
        yield after, events
        after = events[-1][0]


def _claim(engine_w: Engine, names: list[str]) -> int:
    """Take the next generation for ``names`` and drop what earlier, unfinished rebuilds
    of them left behind."""
    with engine_w.begin() as conn:
        lock_schema(conn)
        states = conn.execute(select(projection_state).with_for_update()).mappings().all()
        generation = 1 + max(
            (max(s["generation"], s["build_generation"] or 0) for s in states), default=0
        )
        _drop_leftovers(conn, names)
        for cls in projection_classes(names):
            conn.execute(
                update(projection_state)
                .where(projection_state.c.name == cls.name)
                .values(build_generation=generation, build_version=cls.version, build_position=0)
            )
    return generation


def _drop_leftovers(conn: Connection, names: list[str], generation: int | None = None) -> None:
    """Drop rebuild tables of these projections (of one ``generation``, or all)."""
    bases = {base for cls in projection_classes(names) for base in cls.table_names}
    pattern = re.compile(r"^(?P<base>rm_[a-z_]+?)__g(?P<generation>\d+)$")
    quote = conn.dialect.identifier_preparer.quote
    for table in inspect(conn).get_table_names():
        match = pattern.match(table)
        if not match or match["base"] not in bases:
            continue
        if generation is None or int(match["generation"]) == generation:
            conn.exec_driver_sql(f"DROP TABLE {quote(table)}")


def _swap(
    engine_w: Engine, projector: Projector, generation: int, batch_size: int
) -> tuple[int, int]:
    """Catch up and put the new tables in place, in one transaction; returns the position
    and how many notifications the catch-up covered."""
    events = 0
    with engine_w.begin() as conn:
        lock_schema(conn)
        states = {
            s["name"]: s
            for s in conn.execute(select(projection_state).with_for_update()).mappings()
        }
        positions = {}
        for p in projector.projections:
            if states[p.name]["build_generation"] != generation:
                raise RebuildSuperseded(f"another rebuild of {p.name!r} took over")
            positions[p.name] = int(states[p.name]["build_position"] or 0)
        while True:
            after = min(positions.values())
            notifications = projector.app.recorder.select_notifications(
                after + 1, batch_size, inclusive_of_start=True
            )
            if not notifications:
                break
            written = projector.process_in(conn, projector.decode(notifications), after=after)
            for p in written:
                p.batch_committed()  # written into this transaction: not to be written again
            positions = {p.name: p.position for p in projector.projections}
            events += len(notifications)
        quote = conn.dialect.identifier_preparer.quote
        for p in projector.projections:
            for base in type(p).table_names:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(base)}")
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(f'{base}__g{generation}')} RENAME TO {quote(base)}"
                )
            conn.execute(
                update(projection_state)
                .where(projection_state.c.name == p.name)
                .values(
                    version=type(p).version,
                    generation=generation,
                    position=positions[p.name],
                    build_generation=None,
                    build_version=None,
                    build_position=None,
                )
            )
    return max(positions.values()), events
