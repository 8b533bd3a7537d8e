"""Rebuild read models from zero: into new tables, then swap.

1. Claim a new generation ``g`` for the projections (``build_*`` in ``rm_projections``) and
   create empty tables ``rm_x__g<g>``.
2. Load them with the log as it is now (up to its head, ``stop``). Projections that follow
   no topic in common load at once, in worker processes (``plan``, ``Worker``; with an
   ``opener``, one process per CPU): each process reads only the events its projections
   follow, and decodes each once for all of them. A process replays its events, read in
   batches, into memory (the rows of the new tables kept in plain dicts: no lookups, no
   updates), then writes what is kept (inserts only) with the build position, in one
   transaction, and creates the secondary indexes. Rows only ever inserted (journal
   lines, refunds, approvals) are written batch by batch, while fresh in memory, and so
   are the rows of a table that outgrows what its projection keeps (the oldest then leave
   memory; a later change reads one back and updates it): memory stays bounded. On
   SQLite the events table is read directly and decoded for the read models
   (``Projector.read_decoded``), and the pages of rows are written and committed by a
   page writer process (``PageWriter``) while the next batch is applied. A crash leaves
   only tables the next rebuild drops; the live tables keep serving readers and the live
   runner meanwhile.
3. Swap, in one transaction: process what the log gained since, drop the live tables,
   rename the new ones over them, and move the build's position, version and generation
   to the live row. A runner elsewhere sees the new generation and drops its cache.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import os
import pickle
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
from projections.tables import AFTER_LOAD, make_tables, projection_state

log = logging.getLogger(__name__)

REBUILD_BATCH_EVENTS = 50_000
WORKERS_FROM_EVENTS = 100_000  # a log this long is loaded by several processes by default
PAGES_QUEUED_MAX = 2  # pages handed to the page writer and not yet sent to it
WRITER_WAIT_S = 0.5  # how often a wait for the writer checks that it still runs
WRITER_JOIN_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 10.0  # for a worker told to stop, before it is killed
WORKER_ERROR_LINES = 40  # of a worker's standard error, kept for its failure
_STOP = (0, b"")  # the page writer's thread ends when it takes this
Progress = Callable[[int, int], None]  # (position, head)


class RebuildFailed(RuntimeError):
    """A process of the rebuild (a page writer, a worker) failed; the message ends with
    what it said last. The rebuild's tables are dropped; the live ones are untouched."""


@dataclass(frozen=True, slots=True)
class RebuildResult:
    names: tuple[str, ...]
    generation: int
    position: int
    events: int
    elapsed_s: float
    processes: int = 1  # that loaded at once: this one and its workers

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


Opener = Callable[[], tuple[Application[Any], Engine]]
"""Opens the same store again (an application and an engine), in a worker process of the
rebuild: a module-level function, or a ``functools.partial`` of one, that pickles."""


def rebuild(
    app: Application[Any],
    engine: Engine,
    names: Iterable[str] | None = None,
    *,
    batch_size: int = REBUILD_BATCH_EVENTS,
    progress: Progress | None = None,
    opener: Opener | None = None,
    workers: int | None = None,
) -> RebuildResult:
    """Rebuild the named projections (all by default) from the whole event log.

    With ``opener``, projections that follow no topic in common are loaded by up to
    ``workers`` processes at once (see ``plan``; by default one per CPU, from
    ``WORKERS_FROM_EVENTS`` events in the log)."""
    with _cyclic_gc_paused():
        return _rebuild(
            app,
            engine,
            names,
            batch_size=batch_size,
            progress=progress,
            workers=_worker_count(engine, opener, workers),
            # Asked for, workers always start; by default only where they pay for their
            # start (about a second each).
            workers_from=0 if workers is not None else WORKERS_FROM_EVENTS,
            opener=opener,
        )


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
    workers: int,
    workers_from: int,
    opener: Opener | None,
) -> RebuildResult:
    classes = projection_classes(names)
    started = time.perf_counter()
    ensure_schema(engine)
    engine_w = write_engine(engine)
    # The load covers the log up to here; the swap catches up with what came since.
    stop = app.recorder.max_notification_id() or 0
    groups = plan(classes, workers if stop >= workers_from else 1)
    generation = _claim(engine_w, [c.name for c in classes])
    try:
        return _build(
            app, engine, classes, groups, generation, stop, batch_size, progress, started, opener
        )
    except BaseException:
        _abandon(engine_w, [c.name for c in classes], generation)
        raise


def _worker_count(engine: Engine, opener: Opener | None, workers: int | None) -> int:
    """How many processes load at once: one without an opener, or on a store that a second
    process cannot open (SQLite in memory)."""
    store = store_of(engine)
    if opener is None or store is None or store.kind not in ("sqlite", "postgresql"):
        return 1
    if workers is None:
        # The CPUs this process may run on (a container's share, not the machine's).
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    return max(1, workers or os.cpu_count() or 1)


def plan(classes: list[type[Projection]], workers: int) -> list[list[type[Projection]]]:
    """Split the projections into at most ``workers`` groups to load at once.

    Projections that follow a topic in common stay together (each event is read and
    decoded once for all of them): those are the families (today the fund's events feed
    funds, journal and flows; donations and grants have their own). Families go, largest
    first, to the group with the fewest projections so far (a projection's count is the
    rough measure of its work: each applies and writes its own rows). The first group,
    the largest, is loaded by the calling process; the others by worker processes. Each
    has its own page writer on SQLite: a group's cost is its own, wherever it runs."""
    tables = make_tables("")
    topics = {cls: frozenset(cls(tables).handlers) for cls in classes}
    families: list[list[type[Projection]]] = []
    for cls in classes:
        joined = [f for f in families if any(topics[c] & topics[cls] for c in f)]
        merged = [c for f in joined for c in f] + [cls]
        families = [f for f in families if f not in joined] + [merged]
    families.sort(key=len, reverse=True)
    groups: list[list[type[Projection]]] = [[] for _ in range(min(workers, len(families)))]
    for family in families:
        min(groups, key=len).extend(family)
    order = {cls: i for i, cls in enumerate(classes)}
    return [sorted(g, key=order.__getitem__) for g in groups if g]


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
            raise RebuildFailed("the rebuild's page writer stopped")

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
        _wait_or_kill(process, WRITER_JOIN_TIMEOUT_S, "the rebuild's page writer")
        _close_pipes(process)
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

    def _failure(self) -> RebuildFailed:
        """What the writer process said before it ended (the last line of its error)."""
        process = self._process
        _wait_or_kill(process, WRITER_JOIN_TIMEOUT_S, "the failed page writer")
        said = process.stderr.read().decode(errors="replace") if process.stderr else ""
        lines = [line for line in said.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {process.returncode}"
        return RebuildFailed(f"the rebuild's page writer failed: {reason}")

    def _fail(self, error: BaseException) -> None:
        with self._done:
            self._error = error
            self._done.notify_all()


def _build(
    app: Application[Any],
    engine: Engine,
    classes: list[type[Projection]],
    groups: list[list[type[Projection]]],
    generation: int,
    stop: int,
    batch_size: int,
    progress: Progress | None,
    started: float,
    opener: Opener | None,
) -> RebuildResult:
    engine_w = write_engine(engine)
    shadow = make_tables(f"__g{generation}")
    projections = [cls(shadow) for cls in groups[0]]
    workers = []
    events = 0
    try:
        if len(groups) > 1:
            assert opener is not None
            workers = [
                Worker(opener, [c.name for c in g], generation, batch_size, stop)
                for g in groups[1:]
            ]

        def report(position: int) -> None:
            if progress:
                progress(min([position, *(w.position for w in workers)]), stop)

        events = load(app, engine, projections, generation, batch_size, stop, report)
        for w in workers:
            events += w.wait(lambda: report(stop))
    finally:
        for w in workers:
            w.close()
    # Every projection, those the workers loaded too: their tables and positions are in
    # the database; the swap reads what it needs of them.
    everyone = {type(p): p for p in projections}
    projector = Projector(
        app,
        engine,
        [everyone.get(cls) or cls(shadow) for cls in classes],
        slot=BUILD_SLOT,
        generation=generation,
    )
    position, more = _swap(engine_w, projector, generation, batch_size)
    events += more
    if progress:
        progress(position, position)
    elapsed = time.perf_counter() - started
    names = [p.name for p in projector.projections]
    log.info(
        "rebuilt %s (generation %d, %d process(es)) to notification %d: %d events in %.1f s",
        ", ".join(names),
        generation,
        len(groups),
        position,
        events,
        elapsed,
    )
    return RebuildResult(
        names=tuple(names),
        generation=generation,
        position=position,
        events=events,
        elapsed_s=elapsed,
        processes=len(groups),
    )


def load(
    app: Application[Any],
    engine: Engine,
    projections: list[Projection],
    generation: int,
    batch_size: int,
    stop: int,
    report: Callable[[int], None] | None = None,
) -> int:
    """Load ``projections`` (their tables of ``generation``, new and empty) with the log up
    to ``stop``, reading only the events they follow; the build position (``stop``) is
    written with the last rows. Returns how many events were read. On SQLite a page
    writer process writes the rows while the log is read (each process of a rebuild has
    its own)."""
    engine_w = write_engine(engine)
    projector = Projector(app, engine, projections, slot=BUILD_SLOT, generation=generation)
    writer = PageWriter.for_engine(engine)
    events = 0
    try:
        with engine_w.begin() as conn:
            # Keys and unique constraints now. Other indexes: with a page writer, now too
            # (it keeps them up to date off this thread: 29 s instead of 33 s at a million
            # events, where building them at the end took 3 s here), but for those marked
            # ``AFTER_LOAD`` (random keys: row by row they cost the writer more than they
            # cost built once at the end); else once the rows are in (faster than keeping
            # them up to date). A lookup that needs a deferred index first makes it then.
            for p in projections:
                for table in tables_of(type(p), p.tables):
                    conn.execute(CreateTable(table))
                    for index in table.indexes:
                        if writer is not None and not index.info.get(AFTER_LOAD):
                            index.create(conn)
                        else:
                            p.deferred_indexes.append(index)
        projector.defer_writes(writer)
        if report:
            report(0)
        after = 0
        while batch := projector.read_decoded(after, batch_size, stop=stop, followed_only=True):
            projector.process_decoded(batch, after=after)
            events += len(batch)
            after = batch[-1][0]
            if report:
                report(after)
        projector.advance(stop)
        projector.write_deferred()
    finally:
        if writer is not None:
            writer.close()
    with engine_w.begin() as conn:
        for p in projections:
            for index in p.deferred_indexes:
                index.create(conn, checkfirst=True)
            p.deferred_indexes = []
    return events


class Worker:
    """A process of the rebuild that loads some of its projections
    (``projections/rebuild_worker.py``: ``load`` there, on the store ``opener`` opens). The
    job goes down its standard input, pickled; it reports its position as lines
    (``position N``) and ends with ``done EVENTS``. Its standard error is read as it comes
    (a full pipe would stop it), logged here at INFO, and its last lines kept: a failure
    is raised by ``wait`` with the last one (all kept are logged as an error);
    ``close`` stops a worker still running."""

    def __init__(
        self, opener: Opener, names: list[str], generation: int, batch_size: int, stop: int
    ) -> None:
        self.names = names
        self.position = 0
        self._events: int | None = None
        # The same modules as this process (a benchmark or test may have put the code on
        # the path rather than installed it).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "projections.rebuild_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        job = pickle.dumps((opener, names, generation, batch_size, stop))
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(job)
            self._process.stdin.close()
        except OSError:
            pass  # it ended at once: ``wait`` says why
        self._said: collections.deque[str] = collections.deque(maxlen=WORKER_ERROR_LINES)
        self._threads = [
            threading.Thread(target=target, name=f"rebuild-worker-{self.pid}", daemon=True)
            for target in (self._read, self._read_errors)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            word, _, number = line.decode().partition(" ")
            if word == "position":
                self.position = int(number)
            elif word == "done":
                self._events = int(number)

    def _read_errors(self) -> None:
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line.strip():
                self._said.append(line)
                log.info("rebuild worker %d: %s", self.pid, line)

    def wait(self, tick: Callable[[], None]) -> int:
        """Wait for the worker to finish (``tick`` now and then); the events it read."""
        while True:
            try:
                self._process.wait(WRITER_WAIT_S)
                break
            except subprocess.TimeoutExpired:
                tick()
        for thread in self._threads:
            thread.join(WRITER_JOIN_TIMEOUT_S)
        if self._process.returncode != 0 or self._events is None:
            if self._said:
                log.error("rebuild worker %d failed:\n%s", self.pid, "\n".join(self._said))
            reason = self._said[-1] if self._said else f"exit status {self._process.returncode}"
            raise RebuildFailed(
                f"the rebuild's worker for {', '.join(self.names)} failed: {reason}"
            )
        return self._events

    def close(self) -> None:
        """Stop the worker if it still runs (it stops its page writer first), and wait."""
        process = self._process
        if process.poll() is None:
            process.terminate()
        _wait_or_kill(process, WORKER_STOP_TIMEOUT_S, "the rebuild's worker")
        for thread in self._threads:
            thread.join(WRITER_JOIN_TIMEOUT_S)
        _close_pipes(process)


def _wait_or_kill(process: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    """Wait for a process of the rebuild to end; kill it if it does not in time."""
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        log.error("%s (pid %d) did not stop; killing it", what, process.pid)
        process.kill()
        process.wait(WRITER_JOIN_TIMEOUT_S)


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def run_worker(
    opener: Opener,
    names: list[str],
    generation: int,
    batch_size: int,
    stop: int,
    report: Callable[[int], None],
) -> int:
    """A worker's side of ``Worker``: load ``names`` of ``generation`` up to ``stop``."""
    app, engine = opener()
    try:
        with _cyclic_gc_paused():
            shadow = make_tables(f"__g{generation}")
            projections = [cls(shadow) for cls in projection_classes(names)]
            return load(app, engine, projections, generation, batch_size, stop, report)
    finally:
        engine.dispose()
        app.close()


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
