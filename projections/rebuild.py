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
   SQLite the pages of rows are written and committed by a page writer process
   (``PageWriter``) while the next batch is applied. The machinery (``Loader``, the page
   writer, the workers) is in ``projections.engine``. A crash leaves
   only tables the next rebuild drops; the live tables keep serving readers and the live
   runner meanwhile.
3. Swap, in one transaction: process what the log gained since, drop the live tables,
   rename the new ones over them, and move the build's position, version and generation
   to the live row. A runner elsewhere sees the new generation and drops its cache.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import Connection, Engine, inspect, select, update
from sqlalchemy.schema import CreateTable

from projections.db import (
    SQLITE_BUSY_TIMEOUT_S,
    SQLITE_CACHE_KIB,
    SQLITE_SECURE_DELETE,
    store_of,
)
from projections.engine.loader import Loader
from projections.engine.pages import PageWriter, Sink
from projections.engine.processes import Worker, cpus_usable, cyclic_gc_paused
from projections.engine.projector import BUILD_SLOT, Projector
from projections.engine.transactions import write_engine
from projections.errors import RebuildSuperseded
from projections.projection import Projection
from projections.registry import PROJECTIONS, ensure_schema, projection_classes, tables_of
from projections.tables import AFTER_LOAD, make_tables
from projections.tracking import lock_schema, projection_state

log = logging.getLogger(__name__)

REBUILD_BATCH_EVENTS = 50_000
WORKERS_FROM_EVENTS = 100_000  # a log this long is loaded by several processes by default
Progress = Callable[[int, int], None]  # (position, head)
Classes = Sequence[type[Projection[Any]]]


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
Sinks = Callable[[Engine], Sink | None]
"""Where this process hands its pages of rows on SQLite (``page_writer_for``)."""


def rebuild(
    app: Application[Any],
    engine: Engine,
    names: Iterable[str] | None = None,
    *,
    projections: Classes = PROJECTIONS,
    batch_size: int = REBUILD_BATCH_EVENTS,
    progress: Progress | None = None,
    opener: Opener | None = None,
    workers: int | None = None,
    sinks: Sinks | None = None,
) -> RebuildResult:
    """Rebuild the named projections (all by default) of ``projections`` from the whole
    event log.

    With ``opener``, projections that follow no topic in common are loaded by up to
    ``workers`` processes at once (see ``plan``; by default one per CPU, from
    ``WORKERS_FROM_EVENTS`` events in the log). ``sinks``: where this process hands its
    pages on SQLite (by default a page writer process, ``page_writer_for``)."""
    with cyclic_gc_paused():
        return _rebuild(
            app,
            engine,
            projection_classes(names, among=projections),
            batch_size=batch_size,
            progress=progress,
            workers=_worker_count(engine, opener, workers),
            # Asked for, workers always start; by default only where they pay for their
            # start (about a second each).
            workers_from=0 if workers is not None else WORKERS_FROM_EVENTS,
            opener=opener,
            sinks=sinks or page_writer_for,
        )


def _rebuild(
    app: Application[Any],
    engine: Engine,
    classes: list[type[Projection[Any]]],
    *,
    batch_size: int,
    progress: Progress | None,
    workers: int,
    workers_from: int,
    opener: Opener | None,
    sinks: Sinks,
) -> RebuildResult:
    started = time.perf_counter()
    ensure_schema(engine, classes)
    engine_w = write_engine(engine)
    # The load covers the log up to here; the swap catches up with what came since.
    stop = app.recorder.max_notification_id() or 0
    groups = plan(classes, workers if stop >= workers_from else 1)
    generation = _claim(engine_w, classes)
    try:
        events, loaded = _load_groups(
            app, engine, groups, generation, stop, batch_size, progress, opener, sinks
        )
        # This process's projections as loaded (their caches hold what they wrote), and
        # the others: their tables and positions are in the database, the catch-up reads
        # back what it needs.
        shadow = make_tables(f"__g{generation}")
        by_class = {type(p): p for p in loaded}
        projector = Projector(
            app,
            engine,
            [by_class.get(cls) or cls(shadow) for cls in classes],
            slot=BUILD_SLOT,
            generation=generation,
        )
        position, more = _swap(engine_w, projector, generation, batch_size)
    except BaseException:
        _abandon(engine_w, classes, generation)
        raise
    if progress:
        progress(position, position)
    elapsed = time.perf_counter() - started
    names = tuple(c.name for c in classes)
    log.info(
        "rebuilt %s (generation %d, %d process(es)) to notification %d: %d events in %.1f s",
        ", ".join(names),
        generation,
        len(groups),
        position,
        events + more,
        elapsed,
    )
    return RebuildResult(
        names=names,
        generation=generation,
        position=position,
        events=events + more,
        elapsed_s=elapsed,
        processes=len(groups),
    )


def _worker_count(engine: Engine, opener: Opener | None, workers: int | None) -> int:
    """How many processes load at once: one without an opener, or on a store that a second
    process cannot open (SQLite in memory)."""
    store = store_of(engine)
    if opener is None or store is None or store.kind not in ("sqlite", "postgresql"):
        return 1
    return max(1, workers or cpus_usable())


def plan(classes: list[type[Projection[Any]]], workers: int) -> list[list[type[Projection[Any]]]]:
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
    families: list[list[type[Projection[Any]]]] = []
    for cls in classes:
        joined = [f for f in families if any(topics[c] & topics[cls] for c in f)]
        merged = [c for f in joined for c in f] + [cls]
        families = [f for f in families if f not in joined] + [merged]
    families.sort(key=len, reverse=True)
    groups: list[list[type[Projection[Any]]]] = [[] for _ in range(min(workers, len(families)))]
    for family in families:
        min(groups, key=len).extend(family)
    order = {cls: i for i, cls in enumerate(classes)}
    return [sorted(g, key=order.__getitem__) for g in groups if g]


def _load_groups(
    app: Application[Any],
    engine: Engine,
    groups: list[list[type[Projection[Any]]]],
    generation: int,
    stop: int,
    batch_size: int,
    progress: Progress | None,
    opener: Opener | None,
    sinks: Sinks,
) -> tuple[int, list[Projection[Any]]]:
    """Load the first group here and the others in worker processes, at once; returns the
    events read and the projections loaded here."""
    workers = []
    try:
        if len(groups) > 1:
            assert opener is not None
            workers = [
                Worker(
                    functools.partial(run_worker, opener, group, generation, batch_size, stop),
                    ", ".join(c.name for c in group),
                )
                for group in groups[1:]
            ]

        def report(position: int) -> None:
            if progress:
                progress(min([position, *(w.position for w in workers)]), stop)

        shadow = make_tables(f"__g{generation}")
        projections = [cls(shadow) for cls in groups[0]]
        events = load(app, engine, projections, generation, batch_size, stop, report, sinks)
        for w in workers:
            events += w.wait(lambda: report(stop))
    finally:
        for w in workers:
            w.close()
    return events, projections


def load(
    app: Application[Any],
    engine: Engine,
    projections: list[Projection[Any]],
    generation: int,
    batch_size: int,
    stop: int,
    report: Callable[[int], None] | None = None,
    sinks: Sinks | None = None,
) -> int:
    """Load ``projections`` (their tables of ``generation``, new and empty) with the log up
    to ``stop``, reading only the events they follow; the build position (``stop``) is
    written with the last rows. Returns how many events were read. On SQLite a page
    writer process writes the rows while the log is read (each process of a rebuild has
    its own)."""
    engine_w = write_engine(engine)
    sink = (sinks or page_writer_for)(engine)
    try:
        with engine_w.begin() as conn:
            # Keys and unique constraints now. Other indexes: with a page writer, now too
            # (it keeps them up to date off this thread), but for those marked
            # ``AFTER_LOAD`` (random keys: row by row they cost the writer more than they
            # cost built once at the end); else once the rows are in (faster than keeping
            # them up to date). A lookup that needs a deferred index first makes it then.
            for p in projections:
                for table in tables_of(type(p), p.tables):
                    conn.execute(CreateTable(table))
                    for index in table.indexes:
                        if sink is not None and not index.info.get(AFTER_LOAD):
                            index.create(conn)
                        else:
                            p.deferred_indexes.append(index)
        loader = Loader(app, engine, projections, generation=generation, sink=sink)
        if report:
            report(0)
        after = 0
        events = 0
        while batch := loader.read_decoded(after, batch_size, stop=stop, followed_only=True):
            loader.process_decoded(batch, after=after)
            events += len(batch)
            after = batch[-1][0]
            if report:
                report(after)
        loader.advance(stop)
        loader.finish()
    finally:
        if sink is not None:
            sink.close()
    with engine_w.begin() as conn:
        for p in projections:
            for index in p.deferred_indexes:
                index.create(conn, checkfirst=True)
            p.deferred_indexes = []
    return events


def page_writer_for(engine: Engine) -> PageWriter | None:
    """A page writer process for an engine of ``make_engine`` on SQLite (with the read
    models' connection settings); None for anything else."""
    store = store_of(engine)
    if engine.dialect.name != "sqlite" or store is None or store.kind != "sqlite":
        return None
    return PageWriter(
        store.path,
        busy_timeout_ms=SQLITE_BUSY_TIMEOUT_S * 1000,
        cache_kib=SQLITE_CACHE_KIB,
        secure_delete=SQLITE_SECURE_DELETE,
    )


def run_worker(
    opener: Opener,
    classes: list[type[Projection[Any]]],
    generation: int,
    batch_size: int,
    stop: int,
    report: Callable[[int], None],
) -> int:
    """A worker process's job: load ``classes`` of ``generation`` up to ``stop``."""
    app, engine = opener()
    try:
        with cyclic_gc_paused():
            shadow = make_tables(f"__g{generation}")
            projections = [cls(shadow) for cls in classes]
            return load(app, engine, projections, generation, batch_size, stop, report)
    finally:
        engine.dispose()
        app.close()


def _claim(engine_w: Engine, classes: Classes) -> int:
    """Take the next generation for ``classes`` and drop what earlier, unfinished rebuilds
    of them left behind."""
    with engine_w.begin() as conn:
        lock_schema(conn)
        states = conn.execute(select(projection_state).with_for_update()).mappings().all()
        generation = 1 + max(
            (max(s["generation"], s["build_generation"] or 0) for s in states), default=0
        )
        _drop_leftovers(conn, classes)
        for cls in classes:
            conn.execute(
                update(projection_state)
                .where(projection_state.c.name == cls.name)
                .values(build_generation=generation, build_version=cls.version, build_position=0)
            )
    return generation


def _abandon(engine_w: Engine, classes: Classes, generation: int) -> None:
    """After a failed rebuild: drop its tables and its claim (best effort; the live tables
    were never touched)."""
    try:
        with engine_w.begin() as conn:
            lock_schema(conn)
            _drop_leftovers(conn, classes, generation)
            conn.execute(
                update(projection_state)
                .where(
                    projection_state.c.name.in_([c.name for c in classes]),
                    projection_state.c.build_generation == generation,
                )
                .values(build_generation=None, build_version=None, build_position=None)
            )
    except Exception:
        log.exception("cleaning up after a failed rebuild failed; the next rebuild will")


def _drop_leftovers(conn: Connection, classes: Classes, generation: int | None = None) -> None:
    """Drop rebuild tables of these projections (of one ``generation``, or all)."""
    bases = {base for cls in classes for base in cls.table_names}
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
